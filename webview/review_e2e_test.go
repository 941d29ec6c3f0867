package webview_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/internal/testbin"
	"github.com/coditect/coditect/storage/review"
)

// The review view in a browser: webview/e2e/review.mjs drives Chromium
// against the real `coditect serve` while an agent (`coditect mcp`) writes
// under a review policy on src/auth/**, so that its writes become
// proposals. One dashboard accepts a proposal while a second, whose timers
// stand still, follows the decision on the feed; a proposal whose file
// changed meanwhile is refused as a conflict; another is rejected with a
// reason that reaches the agent's inbox; a viewer sees no decision
// controls and the server refuses the viewer's accept.
//
// CODITECT_SCREENSHOTS=docs/img keeps review.png and review-narrow.png.

const (
	loginBefore = "package auth\n\n// Login checks a password and redirects.\nfunc Login(user, pass string) string {\n\treturn \"/home\"\n}\n"
	loginAfter  = "package auth\n\n// Login checks a password and redirects to <b>next</b>, keeping the query.\nfunc Login(user, pass, next string) string {\n\treturn next\n}\n"
	tokenBefore = "package auth\n\nconst tokenTTL = 3600\n"
	tokenAfter  = "package auth\n\nconst tokenTTL = 86400 // a day\n"
	cookieAfter = "package auth\n\nconst cookieName = \"sid\"\n"
)

func TestReviewInBrowser(t *testing.T) {
	node := browserTools(t)
	bin := testbin.Coditect(t)
	dir := t.TempDir()
	store := "sqlite://" + filepath.ToSlash(filepath.Join(dir, "coditect.db"))
	ws := filepath.Join(dir, "webapp")
	auth := filepath.Join(ws, "src", "auth")
	if err := os.MkdirAll(auth, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"login.go": loginBefore, "token.go": tokenBefore, "cookie.go": "package auth\n"} {
		if err := os.WriteFile(filepath.Join(auth, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root, err := filepath.EvalSymlinks(ws)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	srv := startDaemon(t, ctx, bin, store, "127.0.0.1:0", ws)
	if srv.token == "" {
		t.Fatal("the first start printed no login URL with a token")
	}
	builder := startAgent(t, ctx, bin, store, "builder", "qwen2.5-coder-7b-instruct")
	sess := builder.call(t, "session_start", map[string]any{"title": "Fix the login redirect", "workspace": ws})
	projectID, _ := sess["project"].(string)
	if projectID == "" {
		t.Fatalf("session_start named no project: %v", sess)
	}
	setReviewPolicy(t, ctx, store, projectID, "src/auth/**")

	// The builder's changes under the policy become proposals; the files
	// stay as they were.
	propose := func(tool string, args map[string]any) {
		t.Helper()
		args["session_id"] = sess["session_id"]
		text := builder.callText(t, tool, args)
		t.Logf("%s %s: %s", tool, args["path"], text)
	}
	propose("fs_edit", map[string]any{"path": "src/auth/login.go", "edits": []any{
		map[string]any{"search": "redirects.\nfunc Login(user, pass string) string {\n\treturn \"/home\"", "replace": "redirects to <b>next</b>, keeping the query.\nfunc Login(user, pass, next string) string {\n\treturn next"},
	}})
	propose("fs_write", map[string]any{"path": "src/auth/token.go", "content": tokenAfter})
	propose("fs_write", map[string]any{"path": "src/auth/cookie.go", "content": cookieAfter})
	for name, want := range map[string]string{"login.go": loginBefore, "token.go": tokenBefore, "cookie.go": "package auth\n"} {
		if got := readFile(t, filepath.Join(auth, name)); got != want {
			t.Fatalf("%s was written before a person decided: %q", name, got)
		}
	}

	shots := t.TempDir()
	if d := os.Getenv("CODITECT_SCREENSHOTS"); d != "" {
		shots = filepath.Join(testbin.Root(), d)
	}
	result := runBrowserScript(t, ctx, node, "review.mjs", []string{"CODITECT_LOGIN_URL=" + srv.url + "/#token=" + srv.token,
		"CODITECT_CHROMIUM=" + chromiumPath, "CODITECT_SHOTS=" + shots, "CODITECT_PROJECT_ROOT=" + root, "CODITECT_PROJECT=" + projectID},
		func(req browserRequest) map[string]any {
			reply := map[string]any{"ok": true}
			switch req.Op {
			case "file": // what a file of the project holds now
				reply["content"] = readFile(t, filepath.Join(root, filepath.FromSlash(req.Path)))
			case "touch": // a person changes a file on disk behind a proposal
				if err := os.WriteFile(filepath.Join(root, filepath.FromSlash(req.Path)), []byte(req.Text), 0o644); err != nil {
					t.Fatal(err)
				}
			case "inbox": // the builder reads its messages
				reply["messages"] = builder.call(t, "inbox", map[string]any{"limit": 50})["messages"]
			case "viewer":
				reply["token"] = viewerToken(t, ctx, bin, store)
			default:
				t.Fatalf("review.mjs asked for %q", req.Op)
			}
			return reply
		}, srv.stderr)
	t.Logf("browser: %v", result)
	if got := readFile(t, filepath.Join(auth, "login.go")); got != loginAfter {
		t.Errorf("after the accept login.go holds %q, want the proposal's %q", got, loginAfter)
	}
	if got := readFile(t, filepath.Join(auth, "token.go")); got != tokenBefore {
		t.Errorf("after the reject token.go holds %q, want it unchanged", got)
	}
	for _, f := range []string{"review.png", "review-narrow.png"} {
		if fi, err := os.Stat(filepath.Join(shots, f)); err != nil || fi.Size() < 10_000 {
			t.Errorf("screenshot %s: %v", f, err)
		}
	}
	srv.stop(t)
}

// setReviewPolicy makes every agent's change of files matching glob in
// the project a proposal, as the local operator of the default tenant, in
// a process other than the daemon.
func setReviewPolicy(t *testing.T, ctx context.Context, store, projectID, glob string) {
	t.Helper()
	sc, st := e2eScope(t, ctx, store)
	defer st.Close()
	if _, err := review.SetPolicy(ctx, sc, projectID, []review.Rule{{Glob: glob}}); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// callText calls a tool and returns its text, whether the tool reports an
// error or not (a change that became a proposal may say so either way).
func (a *mcpAgent) callText(t *testing.T, tool string, args map[string]any) string {
	t.Helper()
	var res struct {
		IsError bool `json:"isError"`
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(a.rpc(t, "tools/call", map[string]any{"name": tool, "arguments": args}), &res); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, c := range res.Content {
		b.WriteString(c.Text)
	}
	if res.IsError {
		return "(isError) " + b.String()
	}
	return b.String()
}
