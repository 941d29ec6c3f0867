package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReviewExtension compiles the VS Code extension with tsc and runs
// ide/vscode/test/review_handlers.mjs on Node: the extension's review UI
// (src/review.ts) picks, shows, accepts and rejects the proposals of an
// agent (a real `coditect mcp`, through the official MCP SDK client) under
// a review policy set with the CLI, against a real `coditect ide`; a new
// proposal reaches it as a notification, and a decision made elsewhere (the
// CLI) closes its diff. Skipped without node or the extension's npm
// packages (ide/vscode/setup.sh).
func TestReviewExtension(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*ideWait)
	defer cancel()
	node, out := compileExtension(t, ctx)

	bin := ideBinary(t)
	store, ws := ideWorkspace(t)
	auth := filepath.Join(ws, "src", "auth")
	if err := os.MkdirAll(auth, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"login.go": "package auth\n\nfunc Login(user, pass string) string {\n\treturn \"/home\"\n}\n",
		"token.go": "package auth\n\nconst tokenTTL = 3600\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(auth, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(), "CODITECT_TOKEN=", "XDG_DATA_HOME="+t.TempDir(), "TMPDIR="+t.TempDir())
	identity := []string{"--store", store, "--tenant", "rv", "--user", "ada"}
	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, append(args, "--store", store, "--tenant", "rv", "--as", "ada")...)
		cmd.Env = env
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("coditect %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return string(b)
	}

	// The agent, through coditect mcp.
	call := startMCP(t, ctx, env, bin, append([]string{"--toolsets", "core,coord,files", "--agent", "builder", "--model", "qwen2.5-coder-7b"}, identity...)...).ok
	sess := call("session_start", map[string]any{"title": "Fix the login redirect", "workspace": ws})
	sid, _ := sess["session_id"].(string)
	proj, _ := sess["project"].(string)
	cli("project", "policy", "set", proj, "--glob", "src/auth/**")
	call("fs_edit", map[string]any{"session_id": sid, "path": "src/auth/login.go",
		"search": "func Login(user, pass string) string {\n\treturn \"/home\"", "replace": "func Login(user, pass, next string) string {\n\treturn next"})
	call("fs_write", map[string]any{"session_id": sid, "path": "src/auth/token.go", "content": "package auth\n\nconst tokenTTL = 86400\n"})

	editor := startNode(t, ctx, node, extensionDir(), env, filepath.Join(extensionDir(), "test", "review_handlers.mjs"), out, bin, store, ws)
	for l := range editor.rest() {
		switch {
		case l == "propose":
			call("fs_write", map[string]any{"session_id": sid, "path": "src/auth/cookie.go", "content": "package auth\n\nconst cookieName = \"sid\"\n"})
		case strings.HasPrefix(l, "reject-elsewhere "):
			cli("review", "reject", strings.TrimPrefix(l, "reject-elsewhere "), "--reason", "cookies wait for the privacy review")
		default:
			continue
		}
		editor.send("ok")
	}
	var results struct {
		Errors []string          `json:"errors"`
		IDs    map[string]string `json:"ids"`
	}
	last := editor.finish(&results)
	t.Logf("review_handlers.mjs: %s", last)

	// The accepted edit is on disk; the agent read both reasons.
	if b, _ := os.ReadFile(filepath.Join(auth, "login.go")); !strings.Contains(string(b), "func Login(user, pass, next string) string") {
		t.Errorf("login.go after the accept: %q", b)
	}
	if _, err := os.Stat(filepath.Join(auth, "cookie.go")); !os.IsNotExist(err) {
		t.Errorf("the rejected cookie.go exists: %v", err)
	}
	inbox, _ := json.Marshal(call("inbox", map[string]any{"limit": 50}))
	for _, reason := range []string{"The person changed token.go meanwhile; redo it on top", "cookies wait for the privacy review"} {
		if !strings.Contains(string(inbox), reason) {
			t.Errorf("the agent's inbox lacks %q: %s", reason, inbox)
		}
	}
	if !strings.Contains(cli("review", "list", "--all"), results.IDs["login"]) {
		t.Errorf("review list --all does not show the accepted %s", results.IDs["login"])
	}
}
