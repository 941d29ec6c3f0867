package server_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/storage/audit"
)

// searchRepo is a git repository whose ignore rules, binary file and
// symbolic links all hide the word Checkout; the files that show it are
// those listed in searchShown.
var searchRepo = map[string]string{
	".gitignore":          "*.log\n/vendor/\n!keep.log\n",
	"cmd/main.go":         "package main\n\nfunc main() {\n\tcart.Checkout(ctx)\n}\n",
	"cart/cart.go":        "package cart\n\n// Checkout pays for the cart.\nfunc Checkout(ctx context.Context) error {\n\treturn nil\n}\n",
	"cart/cart_test.go":   "package cart\n\nfunc TestCheckout(t *testing.T) {}\n",
	"cart/.gitignore":     "generated.go\n",
	"cart/generated.go":   "func Checkout2() {}\n",
	"debug.log":           "Checkout failed\n",
	"keep.log":            "Checkout kept\n",
	"vendor/lib/lib.go":   "func Checkout() {}\n",
	"assets/logo.png":     "\x89PNG\x00Checkout",
	"docs/README.md":      "Call Checkout once.\n",
	".git/info/exclude":   "scratch.go\n",
	"scratch.go":          "Checkout scratch\n",
	"web/src/checkout.ts": "export function checkout() {}\n",
}

var searchShown = []string{"cart/cart.go", "cart/cart_test.go", "cmd/main.go", "docs/README.md", "keep.log"}

// TestSearchE2E: through the real binary and the official SDK client, an
// agent finds files by glob and name and code by text and regular
// expression; the results agree with `git grep` on which files hold the
// word, ignored, binary and linked files stay out, refusals are audited as
// forbidden, and every call is recorded.
func TestSearchE2E(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git is not installed: the search is checked against git grep (apt-get install git)")
	}
	for _, era := range []string{eraLegacy, eraModern} {
		t.Run(era, func(t *testing.T) {
			e := newStdioEnv(t)
			ws, outside := t.TempDir(), t.TempDir()
			home := t.TempDir()
			gitEnv := append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
			runGit := func(args ...string) string {
				cmd := exec.Command(git, append([]string{"-C", ws}, args...)...)
				cmd.Env = gitEnv
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("git %v: %v", args, err)
				}
				return string(out)
			}
			runGit("init", "-q")
			for name, content := range searchRepo {
				full := filepath.Join(ws, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(outside, "secret.go"), []byte("Checkout secret\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			for link, target := range map[string]string{"out": outside, "linked.go": filepath.Join(outside, "secret.go")} {
				if err := os.Symlink(target, filepath.Join(ws, link)); err != nil {
					t.Fatal(err)
				}
			}
			// git's view: the untracked files that are not ignored, text only.
			byGit := strings.Fields(runGit("grep", "-l", "-I", "--untracked", "Checkout"))
			slices.Sort(byGit)
			if !slices.Equal(byGit, searchShown) {
				t.Fatalf("git grep finds %v; the table expects %v", byGit, searchShown)
			}

			cmd, _ := e.command(t, nil, "--tenant", "acme", "--user", "alice", "--agent", "finder", "--model", "qwen2.5-coder-7b", "--toolsets", "core,files")
			c := connect(t, &mcp.CommandTransport{Command: cmd}, "lmstudio", era)
			for _, name := range []string{"fs_search", "fs_find"} {
				a := c.tools[name].Annotations
				if a == nil || !a.ReadOnlyHint || a.DestructiveHint == nil || *a.DestructiveHint {
					t.Errorf("%s annotations %+v", name, a)
				}
			}
			m, _ := c.ok("session_start", map[string]any{"title": "find checkout", "workspace": ws})
			sid := m["session_id"].(string)
			args := func(kv ...any) map[string]any {
				m := map[string]any{"session_id": sid}
				for i := 0; i+1 < len(kv); i += 2 {
					m[kv[i].(string)] = kv[i+1]
				}
				return m
			}

			// The files that hold the word: the same as git's.
			m, text := c.ok("fs_search", args("pattern", "Checkout"))
			var files []string
			for _, x := range m["matches"].([]any) {
				if p := x.(map[string]any)["path"].(string); !slices.Contains(files, p) {
					files = append(files, p)
				}
			}
			if !slices.Equal(files, byGit) || m["skipped_binary"] != float64(1) {
				t.Errorf("fs_search finds %v (skipped_binary %v), git grep %v\n%s", files, m["skipped_binary"], byGit, text)
			}
			if !strings.Contains(text, "cart/cart.go:4: func Checkout(ctx context.Context) error {") ||
				!strings.Contains(text, "cart/cart.go-5- \treturn nil") || strings.Contains(text, "secret") {
				t.Errorf("fs_search text:\n%s", text)
			}
			// A regular expression, narrowed by glob: the definition only.
			m, text = c.ok("fs_search", args("pattern", `^func Checkout\(\w+ context\.`, "regex", true, "glob", "*.go", "context", 0))
			if ms := m["matches"].([]any); len(ms) != 1 || !strings.HasPrefix(text, "cart/cart.go:4: func Checkout(") {
				t.Errorf("regex search: %v\n%s", ms, text)
			}
			// Small letters ignore case.
			m, _ = c.ok("fs_search", args("pattern", "checkout", "path", "web"))
			if ms := m["matches"].([]any); len(ms) != 1 || m["case_sensitive"] != false {
				t.Errorf("smart case: %v", m)
			}

			m, text = c.ok("fs_find", args("glob", "*_test.go"))
			if es := m["entries"].([]any); len(es) != 1 || es[0].(map[string]any)["path"] != "cart/cart_test.go" {
				t.Errorf("fs_find by glob: %v\n%s", es, text)
			}
			m, text = c.ok("fs_find", args("name", "checkout"))
			if es := m["entries"].([]any); len(es) != 1 || es[0].(map[string]any)["path"] != "web/src/checkout.ts" {
				t.Errorf("fs_find by name: %v\n%s", es, text)
			}

			c.fail("fs_search", args("pattern", "Checkout", "path", "out"), "symbolic link")
			c.fail("fs_find", args("path", "../"+filepath.Base(outside)), "leaves the workspace")
			c.fail("fs_search", args("pattern", "(?<=x)y", "regex", true), "not a valid regular expression", "RE2")
			if err := c.cs.Close(); err != nil {
				t.Logf("close: %v", err)
			}

			sc := e.local(t, "acme", "alice")
			outcomes := map[string][]string{}
			for _, ev := range events(t, sc, audit.Filter{Kind: "tool.called"}) {
				name := ev.Attrs["tool"].(string)
				if name == "fs_search" || name == "fs_find" {
					outcomes[name] = append(outcomes[name], ev.Attrs["outcome"].(string))
					if ev.Session != sid || ev.Attrs["client"] != "lmstudio" {
						t.Errorf("tool.called %+v", ev)
					}
				}
			}
			if want := []string{"ok", "ok", "ok", "forbidden", "invalid_arguments"}; !slices.Equal(outcomes["fs_search"], want) {
				t.Errorf("fs_search outcomes %v, want %v", outcomes["fs_search"], want)
			}
			if want := []string{"ok", "ok", "forbidden"}; !slices.Equal(outcomes["fs_find"], want) {
				t.Errorf("fs_find outcomes %v, want %v", outcomes["fs_find"], want)
			}
		})
	}
}
