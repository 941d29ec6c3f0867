package gitignore

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// ignoreRepo lays out a repository whose ignore files exercise the corners
// of gitignore(5): nested files and negations, "**" at the start, middle and
// end, directory-only patterns, anchoring, escapes, trailing spaces,
// bracket expressions and a re-inclusion git refuses (a file inside an
// excluded directory).
var ignoreRepo = map[string]string{
	".gitignore": strings.Join([]string{
		"*.log", "!important.log", "build/", "/root-only.txt", "doc/*.txt", "**/cache", "foo/**", "!foo/keep.txt",
		"a/**/b", `\#hash`, `\!bang`, `trailing\ `, "sp   ", "[!x]y.txt", "[^x]z.txt", "out", "!out/keep",
		"# a comment", "", "**/deep/**/x.c", `lit\*star`, "q?.dat", "only-dir/", "nest/a/b", "m/**/n/o", "x**y",
		"*/one", "br[a-c]", "Case.TXT", "build2/", "!build2/keep", "keepdir/**", "!keepdir/**/", "!keepdir/**/*.go",
		"**/g/**/h/**/i", "[[:digit:]]*.num", "[a-]dash", "uni[é]", "uni?", "uni??x", "crlf\r", "unclosed[",
		"nodot", "re-ign/", "!re-ign/", "*.bak/", "\\\\back",
	}, "\n") + "\n",
	"sub/.gitignore":        "*.md\n!README.md\n/anchored.txt\nnested/\n!important.log\n!nodot\n",
	"sub/deeper/.gitignore": "!*.md\nsecret\n/x/*.tmp\n",
	".git/info/exclude":     "excluded-by-info\n!re-included-by-gitignore\n",
}

// ignorePaths are the paths checked; a path with children is a directory.
var ignorePaths = []string{
	"a.log", "important.log", "sub/important.log", "x/important.log", "build/x.o", "src/build/y", "build.txt",
	"root-only.txt", "sub/root-only.txt", "doc/a.txt", "doc/sub/a.txt", "x/doc/a.txt",
	"cache/z", "p/q/cache/z", "foo/a", "foo/keep.txt", "foo/sub/keep.txt",
	"a/b/c", "a/x/b", "a/x/y/b", "ab/b", "#hash", "!bang", "trailing ", "trailing", "sp", "sp   ",
	"ay.txt", "xy.txt", "az.txt", "xz.txt", "out/keep", "out/other", "comment", "# a comment",
	"deep/x.c", "w/deep/k/l/x.c", "deep/x.cc", "lit*star", "litXstar", "q1.dat", "q12.dat",
	"only-dir/f", "z/only-dir/f", "only-file/only-dir", "nest/a/b/c", "x/nest/a/b",
	"sub/a.md", "sub/README.md", "sub/deeper/b.md", "sub/deeper/secret", "sub/deeper/x/a.tmp", "sub/deeper/y/x/a.tmp",
	"sub/anchored.txt", "sub/deeper/anchored.txt", "anchored.txt", "sub/nested/f", "sub/x/nested/f", "nested/f", "a.md",
	"m/n/o", "m/n/x/n/o", "m/q/n/x/n/o", "m/n/n/o", "xAAy", "x/y", "xy", "a/one", "a/b2/one", "one",
	"bra", "brd", "case.txt", "Case.TXT", "build2/keep", "build2/x", "keepdir/a/b.go", "keepdir/a/b.txt", "keepdir/c.go",
	"g/h/i", "g/g/h/x/h/i", "z/g/q/h/i/j", "7.num", "x.num", "-dash", "adash", "bdash", "unié", "unie", "uniéx",
	"crlf", "unclosed[", "unclosedx", "excluded-by-info", "re-included-by-gitignore", "sub/nodot", "nodot",
	"re-ign/f", "f.bak/g", "f.bak", `\back`, "back",
}

// gitEnv runs git without the user's or the system's configuration.
func gitEnv(t *testing.T) []string {
	home := t.TempDir()
	return append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null")
}

func needGit(t *testing.T) string {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git is not installed: the ignore rules are proved against `git check-ignore` (apt-get install git)")
	}
	return git
}

// layout writes files and the paths (directories for those with children)
// under root.
func layout(t *testing.T, root string, files map[string]string, paths []string) map[string]bool {
	t.Helper()
	dirs := map[string]bool{}
	for _, p := range paths {
		for d := filepath.Dir(p); d != "."; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	for name, content := range files {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range paths {
		full := filepath.Join(root, p)
		if dirs[p] {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dirs
}

// checkIgnore returns the paths (relative to dir) git ignores.
func checkIgnore(t *testing.T, git, dir string, env []string, paths []string, extra ...string) map[string]bool {
	t.Helper()
	args := append([]string{"-C", dir}, extra...)
	args = append(args, "check-ignore", "--stdin", "-z")
	cmd := exec.Command(git, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(strings.Join(paths, "\x00") + "\x00")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 { // 1: nothing ignored
			t.Fatalf("git check-ignore: %v: %s", err, errb.String())
		}
	}
	got := map[string]bool{}
	for _, p := range strings.Split(out.String(), "\x00") {
		if p != "" {
			got[p] = true
		}
	}
	return got
}

func initRepo(t *testing.T, git string, env []string) string {
	t.Helper()
	root := t.TempDir()
	cmd := exec.Command(git, "init", "-q", root)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git init: %v: %s", err, out)
	}
	return root
}

// TestIgnoreAgreesWithGit checks every path of the table against `git
// check-ignore`, with the workspace at the repository's top level and in a
// subdirectory (where the .gitignore files above it still apply).
func TestIgnoreAgreesWithGit(t *testing.T) {
	git := needGit(t)
	env := gitEnv(t)
	root := initRepo(t, git, env)
	dirs := layout(t, root, ignoreRepo, ignorePaths)

	for _, ws := range []string{"", "sub"} {
		t.Run("workspace=/"+ws, func(t *testing.T) {
			wsRoot := filepath.Join(root, ws)
			var paths []string
			for _, p := range ignorePaths {
				if rel, ok := strings.CutPrefix(p, ws+"/"); ws == "" || ok {
					if ws == "" {
						rel = p
					}
					paths = append(paths, rel)
				}
			}
			want := checkIgnore(t, git, wsRoot, env, paths)
			rules, err := New(wsRoot, Options{})
			if err != nil {
				t.Fatal(err)
			}
			// The walk loads nested .gitignore files as it finds them.
			for _, d := range []string{"", "sub", "sub/deeper"} {
				if rel, ok := strings.CutPrefix(d, ws); ok {
					rules.LoadDir(strings.TrimPrefix(rel, "/"))
				}
			}
			agree := 0
			for _, p := range paths {
				full := p
				if ws != "" {
					full = ws + "/" + p
				}
				got := rules.Ignored(p, dirs[full])
				if got != want[p] {
					t.Errorf("%q: ignored=%v, git check-ignore says %v", p, got, want[p])
				} else {
					agree++
				}
			}
			t.Logf("%d of %d paths agree with git check-ignore", agree, len(paths))
		})
	}
}

// TestIgnoreEverythingThenReinclude: the idiom "ignore all but some
// files", where directories must be re-included for their files to be.
func TestIgnoreEverythingThenReinclude(t *testing.T) {
	git := needGit(t)
	env := gitEnv(t)
	root := initRepo(t, git, env)
	paths := []string{"a.go", "Makefile", "src/b.go", "src/LICENSE", "src/x/c.go", "vendor/d.go", "vendor/e.txt", "docs/f.md"}
	dirs := layout(t, root, map[string]string{".gitignore": "*\n!*/\n!*.go\nvendor/\n!vendor/\n/vendor/*.txt\n", "docs/.gitignore": "!*\n"}, paths)
	want := checkIgnore(t, git, root, env, paths)
	rules, err := New(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rules.LoadDir("")
	rules.LoadDir("docs")
	for _, p := range paths {
		if got := rules.Ignored(p, dirs[p]); got != want[p] {
			t.Errorf("%q: ignored=%v, git check-ignore says %v", p, got, want[p])
		}
	}
	if !want["Makefile"] || want["src/x/c.go"] {
		t.Errorf("the table lost its point: git says Makefile=%v src/x/c.go=%v", want["Makefile"], want["src/x/c.go"])
	}
}

// TestDefaultsAgreeWithGit gives git the defaults as its
// core.excludesFile (the lowest-ranked ignore source, as they are ours) and
// checks a repository that re-includes one of them.
func TestDefaultsAgreeWithGit(t *testing.T) {
	git := needGit(t)
	env := gitEnv(t)
	root := initRepo(t, git, env)
	excludes := filepath.Join(t.TempDir(), "excludes")
	if err := os.WriteFile(excludes, []byte(strings.Join(Defaults, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	paths := []string{
		"node_modules/x/index.js", "web/node_modules/y.js", "__pycache__/m.pyc", "pkg/m.pyc", "pkg/m.py",
		"target/debug/app", "crates/a/target/x", "dist/app.js", "web/dist/app.js", "build/out.o", "src/main.go",
		".venv/bin/python", ".idea/workspace.xml", "a.go.swp", "a.go~", ".#a.go", "#a.go#", "4913", "sub/4913",
		".DS_Store", "vendor/keep.go", "coverage/lcov.info", ".cache/x", "docs/build/index.html",
	}
	dirs := layout(t, root, map[string]string{".gitignore": "!dist/\n"}, paths)
	want := checkIgnore(t, git, root, env, paths, "-c", "core.excludesFile="+excludes)
	rules, err := New(root, Options{Defaults: Defaults})
	if err != nil {
		t.Fatal(err)
	}
	rules.LoadDir("")
	for _, p := range paths {
		if got := rules.Ignored(p, dirs[p]); got != want[p] {
			t.Errorf("%q: ignored=%v, git check-ignore says %v", p, got, want[p])
		}
	}
	if want["dist/app.js"] || !want["web/node_modules/y.js"] {
		t.Errorf("the table lost its point: git says dist/app.js=%v web/node_modules/y.js=%v", want["dist/app.js"], want["web/node_modules/y.js"])
	}
}

// TestUserIgnores: the caller's patterns outrank every .gitignore, ".git"
// is always ignored, and so are the caller's paths (the store, the events
// file) with everything below them.
func TestUserIgnores(t *testing.T) {
	root := t.TempDir()
	layout(t, root, map[string]string{".gitignore": "*.gen\n!keep.tmp\n"}, nil)
	rules, err := New(root, Options{Patterns: []string{"*.tmp", "!special.gen", "logs/"}, Paths: []string{filepath.Join(root, "events.jsonl"), filepath.Join(root, "store")}})
	if err != nil {
		t.Fatal(err)
	}
	rules.LoadDir("")
	tests := []struct {
		path  string
		isDir bool
		want  bool
	}{
		{"keep.tmp", false, true},     // the user's *.tmp outranks the repository's !keep.tmp
		{"special.gen", false, false}, // the user's negation outranks *.gen
		{"other.gen", false, true},
		{"logs/a", false, true},
		{"logs", false, false}, // directory-only
		{".git", true, true},
		{".git/config", false, true},
		{"sub/.git/HEAD", false, true},
		{"events.jsonl", false, true},
		{"sub/events.jsonl", false, false},
		{"store/coditect.db", false, true}, // below an ignored path
		{"main.go", false, false},
	}
	for _, tt := range tests {
		if got := rules.Ignored(tt.path, tt.isDir); got != tt.want {
			t.Errorf("Ignored(%q, dir=%v) = %v, want %v", tt.path, tt.isDir, got, tt.want)
		}
	}
	if _, err := New(root, Options{Patterns: []string{"unclosed["}}); err != nil {
		t.Logf("a pattern that matches nothing: %v", err)
	}
}

// TestGlobRegexp pins the translation of the wildmatch corners.
func TestGlobRegexp(t *testing.T) {
	tests := []struct {
		glob      string
		match, no []string
	}{
		{"**/a", []string{"a", "x/a", "x/y/a"}, []string{"xa", "a/x"}},
		{"a/**", []string{"a/x", "a/x/y"}, []string{"a", "ab/x"}},
		{"a/**/b", []string{"a/b", "a/x/b", "a/x/y/b"}, []string{"a/xb", "ab"}},
		{"a**b", []string{"ab", "axxb"}, []string{"a/b"}},
		{"[!a]", []string{"b"}, []string{"a", "/"}},
		{"[a-c]x", []string{"ax", "bx"}, []string{"dx"}},
		// Reversed ranges: git's wildmatch matches only the first
		// character (checked against git check-ignore); RE2 refuses them.
		{"[~-0]", []string{"~"}, []string{"0", "a"}},
		{"[z-a]x", []string{"zx"}, []string{"ax", "bx"}},
		{"[]]", []string{"]"}, []string{"a"}},
		{`\[x`, []string{"[x"}, []string{`\[x`}},
		{"?", []string{"a"}, []string{"/", "ab"}},
	}
	for _, tt := range tests {
		p, ok := parseLine(tt.glob, "")
		if !ok {
			t.Fatalf("%q did not parse", tt.glob)
		}
		p.anchored = true
		for _, m := range tt.match {
			if !p.match(m, false) {
				t.Errorf("%q does not match %q", tt.glob, m)
			}
		}
		for _, m := range tt.no {
			if p.match(m, false) {
				t.Errorf("%q matches %q", tt.glob, m)
			}
		}
	}
	if !slices.Contains(Defaults, "node_modules/") {
		t.Error("node_modules is not among the defaults")
	}
}

// TestTop: with Options.Top the rules consult nothing above it: neither
// the repository around it nor an ignore file a symbolic link leads out
// to.
func TestTop(t *testing.T) {
	repo, outside := t.TempDir(), t.TempDir()
	layout(t, repo, map[string]string{".git/HEAD": "ref: refs/heads/main\n", ".gitignore": "*.secret\n", "sub/a.secret": "", "sub/leak.txt": ""}, nil)
	if err := os.WriteFile(filepath.Join(outside, "ignore"), []byte("leak.txt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "ignore"), filepath.Join(repo, "sub", ".gitignore")); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(repo, "sub")
	for _, c := range []struct {
		top                  string
		wantSecret, wantLeak bool
	}{
		{"", true, true},    // git's view: the repository's rules, the link followed
		{repo, true, false}, // the repository is inside the top; the link leads out of it
		{sub, false, false}, // nothing above sub, no link out
	} {
		rules, err := New(sub, Options{Top: c.top})
		if err != nil {
			t.Fatal(err)
		}
		rules.LoadDir("")
		if got := rules.Ignored("a.secret", false); got != c.wantSecret {
			t.Errorf("top %q: a.secret ignored=%v, want %v", c.top, got, c.wantSecret)
		}
		if got := rules.Ignored("leak.txt", false); got != c.wantLeak {
			t.Errorf("top %q: leak.txt ignored=%v, want %v", c.top, got, c.wantLeak)
		}
	}
}
