package tools

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/tenant"
)

// finders returns fs_search and fs_find of a files toolset built with cfg.
func finders(cfg Config) (search, find *Tool) {
	fd := finder{f: newFiles(cfg), timeout: findTimeout}
	return fd.searchTool(), fd.findTool()
}

// callOK calls tool, which must succeed.
func callOK(t *testing.T, sc *tenant.Scope, tool *Tool, args string) (map[string]any, string) {
	t.Helper()
	m, text, err := callTool(t, sc, nil, tool, args)
	if err != nil {
		t.Fatalf("%s %s: %s", tool.Name(), args, text)
	}
	return m, text
}

// callFail calls tool, which must fail with outcome want and a text
// holding every one of wants.
func callFail(t *testing.T, sc *tenant.Scope, tool *Tool, args string, want Outcome, wants ...string) string {
	t.Helper()
	_, text, err := callTool(t, sc, nil, tool, args)
	if err == nil {
		t.Fatalf("%s %s: succeeded, want %s", tool.Name(), args, want)
	}
	if o := Classify(err); o != want {
		t.Errorf("%s %s: outcome %s, want %s (%s)", tool.Name(), args, o, want, text)
	}
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s %s: error %q, want it to contain %q", tool.Name(), args, text, w)
		}
	}
	return text
}

// writeTree writes files (path -> content) under root.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		full := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// searchTree is a repository whose every hiding place holds the word
// HandleLogin: ignored by the root .gitignore, by a nested one, by
// .git/info/exclude and by the defaults, binary, too large, and behind
// symbolic links (one leading out of the workspace, one inside it).
// Only app/login.go, keep.log and main.go may be found.
var searchTree = map[string]string{
	".git/HEAD":         "ref: refs/heads/main\n",
	".git/info/exclude": "excluded.go\n",
	".git/config":       "HandleLogin in git's own files\n",
	".gitignore":        "*.log\n!keep.log\nbuild/\n",
	"main.go":           "package main\n\nfunc main() {\n\tHandleLogin()\n}\n",
	"app/login.go":      "package app\n\n// HandleLogin logs in.\nfunc HandleLogin(w http.ResponseWriter) {\n\treturn\n}\n",
	"a.log":             "HandleLogin failed\n",
	"keep.log":          "HandleLogin kept\n",
	"build/out.go":      "HandleLogin built\n",
	"sub/.gitignore":    "secret.txt\n",
	"sub/secret.txt":    "HandleLogin secret\n",
	"sub/plain.txt":     "nothing here\n",
	"excluded.go":       "HandleLogin excluded\n",
	"node_modules/x.js": "HandleLogin()\n",
	"blob.bin":          "HandleLogin\x00\x01\x02",
	"big.txt":           strings.Repeat("HandleLogin is big\n", 400),
}

func newSearchWorkspace(t *testing.T, sc *tenant.Scope) workspace {
	t.Helper()
	w := newWorkspace(t, sc)
	writeTree(t, w.root, searchTree)
	writeTree(t, w.outside, map[string]string{"leak.go": "HandleLogin outside\n"})
	for link, target := range map[string]string{"out": w.outside, "outfile.go": filepath.Join(w.outside, "leak.go"), "alias.go": "main.go"} {
		if err := os.Symlink(target, filepath.Join(w.root, link)); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// matchPaths lists the paths of a search's matches, one per matching line.
func matchPaths(m map[string]any) []string {
	var out []string
	for _, x := range m["matches"].([]any) {
		mm := x.(map[string]any)
		out = append(out, fmt.Sprintf("%s:%v", mm["path"], mm["line"]))
	}
	return out
}

// TestSearchFindsWhatGitSees: fs_search finds the pattern in the files git
// would show, in path order, with context; ignored, binary, too large and
// linked files stay out, and the counts say what was skipped.
func TestSearchFindsWhatGitSees(t *testing.T) {
	e := setup(t)
	a := e.alice
	w := newSearchWorkspace(t, a)
	search, _ := finders(Config{MaxFileRead: 4096})

	m, text := callOK(t, a, search, w.args("pattern", "HandleLogin"))
	t.Logf("fs_search HandleLogin:\n%s", text)
	want := []string{"app/login.go:3", "app/login.go:4", "keep.log:1", "main.go:4"}
	if got := matchPaths(m); !slices.Equal(got, want) {
		t.Fatalf("matches %v, want %v\n%s", got, want, text)
	}
	if m["total_matches"].(float64) != 4 || m["total_files"].(float64) != 3 || m["skipped_binary"].(float64) != 1 ||
		m["skipped_large"].(float64) != 1 || m["case_sensitive"] != true {
		t.Errorf("counts %v", m)
	}
	for _, s := range []string{
		"app/login.go-2- \n", "app/login.go:3: // HandleLogin logs in.\n", "app/login.go:4: func HandleLogin(w http.ResponseWriter) {\n",
		"app/login.go-5- \treturn\n--\nkeep.log:1: HandleLogin kept\n--\nmain.go-3- func main() {\nmain.go:4: \tHandleLogin()\nmain.go-5- }\n",
		"4 matching lines in 3 files", "Skipped 1 binary files and 1 files over the size limit",
	} {
		if !strings.Contains(text, s) {
			t.Errorf("text lacks %q:\n%s", s, text)
		}
	}
	// A line shows once: line 4 is a match, not the context of line 3.
	if n := strings.Count(text, "app/login.go"); n != 4 || strings.Contains(text, "app/login.go-4-") {
		t.Errorf("app/login.go shows %d lines, want 4 (lines 2 to 5, each once):\n%s", n, text)
	}
	first := m["matches"].([]any)[0].(map[string]any)
	if first["text"] != "// HandleLogin logs in." || !slices.Equal(first["before"].([]any), []any{""}) ||
		!slices.Equal(first["after"].([]any), []any{"func HandleLogin(w http.ResponseWriter) {"}) {
		t.Errorf("first match %v", first)
	}
	if strings.Contains(text, "outside") || strings.Contains(text, "alias.go") {
		t.Errorf("a symbolic link was followed:\n%s", text)
	}
	ev := lastCall(t, a, "fs_search")
	if ev.Attrs["outcome"] != "ok" || ev.Attrs["matches"] != float64(4) || ev.Session != w.sid {
		t.Errorf("tool.called %+v", ev)
	}

	for _, c := range []struct {
		name string
		args []any
		want []string
	}{
		// Smart case: a pattern without capitals ignores case.
		{"lower case", []any{"pattern", "handlelogin", "glob", "*.go"}, []string{"app/login.go:3", "app/login.go:4", "main.go:4"}},
		{"capitals", []any{"pattern", "HANDLELOGIN"}, nil},
		{"case_sensitive false", []any{"pattern", "HANDLELOGIN", "case_sensitive", false, "glob", "main.go"}, []string{"main.go:4"}},
		{"case_sensitive true", []any{"pattern", "handlelogin", "case_sensitive", true}, nil},
		{"regex", []any{"pattern", `^func \w+Login\(`, "regex", true}, []string{"app/login.go:4"}},
		{"regex escapes are not capitals", []any{"pattern", `handle\S+\(w`, "regex", true}, []string{"app/login.go:4"}},
		{"regex across lines counts only within one", []any{"pattern", `logs in\.\s+func`, "regex", true}, nil},
		{"literal is literal", []any{"pattern", "HandleLogin(w"}, []string{"app/login.go:4"}},
		{"glob by path", []any{"pattern", "HandleLogin", "glob", "app/**"}, []string{"app/login.go:3", "app/login.go:4"}},
		{"path", []any{"pattern", "HandleLogin", "path", "app"}, []string{"app/login.go:3", "app/login.go:4"}},
		{"one file", []any{"pattern", "HandleLogin", "path", "main.go"}, []string{"main.go:4"}},
		// Naming an ignored folder searches it; the rules below it still apply.
		{"ignored folder named", []any{"pattern", "HandleLogin", "path", "build"}, []string{"build/out.go:1"}},
		{"defaults named", []any{"pattern", "HandleLogin", "path", "node_modules"}, []string{"node_modules/x.js:1"}},
		{"nested .gitignore", []any{"pattern", "HandleLogin", "path", "sub"}, nil},
	} {
		m, text := callOK(t, a, search, w.args(c.args...))
		if got := matchPaths(m); !slices.Equal(got, c.want) {
			t.Errorf("%s: matches %v, want %v\n%s", c.name, got, c.want, text)
		}
	}
	_, text = callOK(t, a, search, w.args("pattern", "HANDLELOGIN"))
	if !strings.Contains(text, "No line matches") || !strings.Contains(text, "case_sensitive false") {
		t.Errorf("a miss because of case does not say so: %s", text)
	}
	_, text = callOK(t, a, search, w.args("pattern", "Handle.*Login"))
	if !strings.Contains(text, "regex true") {
		t.Errorf("a literal that looks like a regular expression does not say so: %s", text)
	}
}

// TestSearchCapped: past max_results (and the output budget) a search shows
// the first matches in path order and counts the rest.
func TestSearchCapped(t *testing.T) {
	e := setup(t)
	a := e.alice
	w := newWorkspace(t, a)
	files := map[string]string{}
	for i := range 30 {
		files[fmt.Sprintf("f%02d.txt", i)] = "needle one\nhay\nneedle two\nneedle three\n"
	}
	writeTree(t, w.root, files)
	search, _ := finders(Config{})
	m, text := callOK(t, a, search, w.args("pattern", "needle", "max_results", 5, "context", 0))
	want := []string{"f00.txt:1", "f00.txt:3", "f00.txt:4", "f01.txt:1", "f01.txt:3"}
	if got := matchPaths(m); !slices.Equal(got, want) || m["total_matches"].(float64) != 90 || m["total_files"].(float64) != 30 {
		t.Errorf("matches %v, total %v in %v files, want %v of 90 in 30", got, m["total_matches"], m["total_files"], want)
	}
	if !strings.Contains(text, "85 more matches in 29 files not shown") || strings.Contains(text, "hay") {
		t.Errorf("text:\n%s", text)
	}
	// Long lines and many matches stay within the output budget.
	long := map[string]string{}
	for i := range 10 {
		long[fmt.Sprintf("long%d.txt", i)] = strings.Repeat("needle "+strings.Repeat("x", 1000)+"\n", 40)
	}
	writeTree(t, w.root, long)
	m, text = callOK(t, a, search, w.args("pattern", "needle", "glob", "long*", "max_results", 200, "context", 5))
	if len(text) > maxFoundOutput || len(m["matches"].([]any)) >= 200 || !strings.Contains(text, "more matches in") {
		t.Errorf("%d bytes of text, %d matches shown: %s", len(text), len(m["matches"].([]any)), text[max(0, len(text)-300):])
	}
	if mm := m["matches"].([]any)[0].(map[string]any); len(mm["text"].(string)) > maxShownLine+4 {
		t.Errorf("a shown line is %d bytes", len(mm["text"].(string)))
	}
}

// TestSearchStopsAtDeadline: a search past its deadline says where it
// stopped and how to narrow it.
func TestSearchStopsAtDeadline(t *testing.T) {
	e := setup(t)
	a := e.alice
	w := newWorkspace(t, a)
	writeTree(t, w.root, map[string]string{"a.txt": "needle\n", "b/c.txt": "needle\n"})
	fd := finder{f: newFiles(Config{}), timeout: 0}
	m, text := callOK(t, a, fd.searchTool(), w.args("pattern", "needle"))
	if m["timed_out"] != true || !strings.Contains(text, "The search stopped after") || !strings.Contains(text, "narrow it with path or glob") {
		t.Errorf("fs_search past its deadline: %v\n%s", m, text)
	}
	m, text = callOK(t, a, fd.findTool(), w.args("glob", "*.txt"))
	if m["timed_out"] != true || !strings.Contains(text, "stopped after") {
		t.Errorf("fs_find past its deadline: %v\n%s", m, text)
	}
}

// TestFindFiles: fs_find lists files and directories by glob or name, in
// path order, skipping what git ignores and every symbolic link.
func TestFindFiles(t *testing.T) {
	e := setup(t)
	a := e.alice
	w := newSearchWorkspace(t, a)
	writeTree(t, w.root, map[string]string{"app/loginflow/step.go": "package loginflow\n", "app/login_test.go": "package app\n"})
	_, find := finders(Config{})
	paths := func(m map[string]any) []string {
		var out []string
		for _, x := range m["entries"].([]any) {
			e := x.(map[string]any)
			out = append(out, e["path"].(string)+map[bool]string{true: "/"}[e["type"] == "dir"])
		}
		return out
	}
	for _, c := range []struct {
		name string
		args []any
		want []string
	}{
		{"by name glob", []any{"glob", "*.go"}, []string{"app/login.go", "app/login_test.go", "app/loginflow/step.go", "main.go"}},
		{"by path glob", []any{"glob", "app/**/*_test.go"}, []string{"app/login_test.go"}},
		{"by part of the name", []any{"name", "LOGIN"}, []string{"app/login.go", "app/login_test.go", "app/loginflow/"}},
		{"both", []any{"name", "login", "glob", "*.go"}, []string{"app/login.go", "app/login_test.go"}},
		{"alternatives", []any{"glob", "*.{log,txt}"}, []string{"keep.log", "sub/plain.txt", "big.txt"}},
		{"under a path", []any{"path", "sub"}, []string{"sub/.gitignore", "sub/plain.txt"}},
	} {
		m, text := callOK(t, a, find, w.args(c.args...))
		got := paths(m)
		want := slices.Clone(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) || m["total"].(float64) != float64(len(want)) {
			t.Errorf("%s: %v (total %v), want %v\n%s", c.name, got, m["total"], want, text)
		}
	}
	m, text := callOK(t, a, find, w.args("glob", "*", "max_results", 2))
	if len(m["entries"].([]any)) != 2 || m["total"].(float64) < 10 || !strings.Contains(text, "more not shown") {
		t.Errorf("capped: %v\n%s", m, text)
	}
	m, _ = callOK(t, a, find, w.args("glob", "*.go"))
	if e := m["entries"].([]any)[0].(map[string]any); e["size"].(float64) != float64(len(searchTree["app/login.go"])) {
		t.Errorf("entry %v", e)
	}
	_, text = callOK(t, a, find, w.args("name", "nothing-like-it"))
	if !strings.Contains(text, "Nothing found") {
		t.Errorf("miss: %s", text)
	}
}

// TestFindingRefusals: the finding tools refuse what the other files tools
// refuse, audited the same way, and never show a protected path inside the
// workspace; bad arguments write nothing but the call's record.
func TestFindingRefusals(t *testing.T) {
	e := setup(t)
	a := e.alice
	w := newSearchWorkspace(t, a)
	store := filepath.Join(w.root, "data", "coditect.db")
	writeTree(t, w.root, map[string]string{"data/coditect.db": "HandleLogin in the store\n", "data/notes.txt": "HandleLogin noted\n"})
	search, find := finders(Config{Protected: []string{store}})
	for _, c := range []struct {
		tool   *Tool
		path   string
		reason string
	}{
		{search, "../" + filepath.Base(w.outside), "leaves the root (..)"},
		{search, w.outside, "absolute path"},
		{search, "out", "symbolic link out"},
		{find, "out", "symbolic link out"},
		{search, "outfile.go", "symbolic link out"},
		{search, "data/coditect.db", "protected path"},
		{find, "data/coditect.db", "protected path"},
	} {
		args := w.args("path", c.path)
		if c.tool == search {
			args = w.args("pattern", "HandleLogin", "path", c.path)
		}
		text := callFail(t, a, c.tool, args, OutcomeForbidden)
		if strings.Contains(text, "outside") && !strings.Contains(text, "outside the workspace") {
			t.Errorf("%s %s leaked: %s", c.tool.Name(), c.path, text)
		}
		if ev := lastCall(t, a, c.tool.Name()); ev.Attrs["outcome"] != "forbidden" || ev.Attrs["refused"] != c.reason {
			t.Errorf("%s %s: audited as %+v, want refused %q", c.tool.Name(), c.path, ev.Attrs, c.reason)
		}
	}
	m, text := callOK(t, a, search, w.args("pattern", "HandleLogin", "path", "data"))
	if got := matchPaths(m); !slices.Equal(got, []string{"data/notes.txt:1"}) || strings.Contains(text, "store") {
		t.Errorf("a search shows a protected file: %v\n%s", got, text)
	}
	m, _ = callOK(t, a, find, w.args("path", "data"))
	if es := m["entries"].([]any); len(es) != 1 || es[0].(map[string]any)["path"] != "data/notes.txt" {
		t.Errorf("fs_find lists a protected file: %v", es)
	}

	for _, c := range []struct {
		tool  *Tool
		args  string
		wants []string
	}{
		{search, w.args(), []string{`"pattern" is required`}},
		{search, w.args("pattern", "a\nb"), []string{"one line"}},
		{search, w.args("pattern", "("), []string{"not a valid regular expression"}},
		{search, w.args("pattern", "(", "regex", true), []string{"not a valid regular expression", "missing closing )", "RE2"}},
		{search, w.args("pattern", "(?=x)", "regex", true), []string{"not a valid regular expression", "RE2"}},
		{search, w.args("pattern", "x", "context", 9), []string{`"context" must be between 0 and 5`}},
		{search, w.args("pattern", "x", "max_results", 500), []string{`"max_results" must be between 1 and 200`}},
		{search, w.args("pattern", "x", "glob", "/etc/*"), []string{"relative to the workspace root"}},
		{search, w.args("pattern", "x", "glob", "[a"), []string{"not a valid glob"}},
		{find, w.args("glob", "{a,b}{c,d}{e,f}{g,h}"), []string{"too many {a,b} alternatives"}},
		{find, w.args("glob", "../*"), []string{"relative to the workspace root"}},
		{find, w.args("max_results", -1), []string{`"max_results" must be between 1 and 1000`}},
	} {
		if c.args == w.args("pattern", "(") {
			// A literal "(" is fine: only regex true compiles it.
			callOK(t, a, c.tool, c.args)
			continue
		}
		before := counts(t, a)
		callFail(t, a, c.tool, c.args, OutcomeInvalid, c.wants...)
		after := counts(t, a)
		for k, n := range after {
			if want := before[k] + map[bool]int{true: 1}[k == "tool.called"]; n != want {
				t.Errorf("%s %s: %s events %d -> %d", c.tool.Name(), c.args, k, before[k], n)
			}
		}
	}
	// Another tenant sees none of it.
	callFail(t, asAgent(t, e.bob, "bob", ""), search, w.args("pattern", "HandleLogin"), OutcomeNotFound, "no session")
}

// TestSearchReadsTheEntryListed: when a protected path lies inside the
// workspace, a search reads a file only if it is still the entry the walk
// listed, so a symbolic link swapped in after the listing cannot lead it
// to the protected file.
func TestSearchReadsTheEntryListed(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a.txt": "listed\n", "store.db": "protected\n"})
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	listed, err := root.Lstat("a.txt")
	if err != nil {
		t.Fatal(err)
	}
	// The walk listed a.txt; by the time it is read, a.txt leads to the
	// store (a link swapped in).
	if err := os.Rename(filepath.Join(dir, "a.txt"), filepath.Join(dir, "old.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("store.db", filepath.Join(dir, "a.txt")); err != nil {
		t.Fatal(err)
	}
	e := entry{dir: root, name: "a.txt", rel: "a.txt", d: fs.FileInfoToDirEntry(listed)}
	var buf []byte
	for _, guard := range []bool{false, true} {
		b, why := (&tree{root: root, guard: guard}).readText(e, DefaultMaxFile, &buf)
		if guard && (b != nil || why != "unreadable") {
			t.Errorf("guarded: read %q (%s), want the swapped file refused", b, why)
		}
		if !guard {
			// Without a protected path inside, a link within the
			// workspace leads to one of its own files.
			t.Logf("unguarded: read %q", b)
		}
	}
}
