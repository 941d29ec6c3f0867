package server_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestSmallModelSession scripts what a small local model does through one
// LM Studio host process (the real `coditect mcp`, the official MCP Go SDK
// client): it finds a function with fs_search, reads only the lines
// around it, changes it with one fs_edit of two replacements, and a
// second model behind the same process is refused on the same file, by
// the first model's name. Every step's reply is small: nothing returns
// the whole 400-line file.
func TestSmallModelSession(t *testing.T) {
	e := newStdioEnv(t)
	ws := t.TempDir()
	var src strings.Builder
	src.WriteString("package auth\n\nimport \"net/url\"\n\n")
	for i := range 190 {
		fmt.Fprintf(&src, "// filler%d keeps the file long.\nvar filler%d = %d\n", i, i, i)
	}
	src.WriteString("// redirectTarget is where a user goes after logging in.\nfunc redirectTarget(next string) string {\n\tu, err := url.Parse(next)\n\tif err != nil || u.Host != \"\" {\n\t\treturn \"/\"\n\t}\n\treturn u.Path\n}\n")
	if err := os.MkdirAll(filepath.Join(ws, "src", "auth"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(ws, "src", "auth", "login.go")
	if err := os.WriteFile(file, []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, _ := e.command(t, nil, "--tenant", "acme", "--user", "alice", "--toolsets", "core,coord,files")
	host := connect(t, &mcp.CommandTransport{Command: cmd}, "lmstudio", eraModern)
	qwen := modelSession(t, host, ws, "qwen-coder", "qwen2.5-coder-7b")
	llama := modelSession(t, host, ws, "llama-coder", "llama-3.1-8b")

	// Find the function.
	m, text := host.ok("fs_search", map[string]any{"session_id": qwen, "pattern": "func redirectTarget"})
	matches, _ := m["matches"].([]any)
	if len(matches) != 1 {
		t.Fatalf("fs_search: %v", m)
	}
	hit := matches[0].(map[string]any)
	line := int(hit["line"].(float64))
	if hit["path"] != "src/auth/login.go" || line != 386 || !strings.Contains(text, "src/auth/login.go:386:") {
		t.Fatalf("fs_search found %v at %d: %s", hit["path"], line, text)
	}
	// Read only the lines around it.
	m, text = host.ok("fs_read", map[string]any{"session_id": qwen, "path": "src/auth/login.go", "start_line": line - 1, "end_line": line + 6})
	content, _ := m["content"].(string)
	if !strings.HasPrefix(content, "// redirectTarget") || strings.Contains(content, "filler") || len(text) > 1024 {
		t.Fatalf("fs_read of lines %d-%d: %d bytes of text, content %q", line-1, line+6, len(text), content)
	}
	if !strings.Contains(text, fmt.Sprintf("%d│", line)) {
		t.Errorf("fs_read's text has no line numbers: %s", text)
	}
	// Two replacements in one edit, copied from what fs_read showed.
	host.ok("fs_edit", map[string]any{"session_id": qwen, "path": "src/auth/login.go", "edits": []any{
		map[string]any{"search": "// redirectTarget is where a user goes after logging in.", "replace": "// redirectTarget is where a user goes after logging in, query kept."},
		map[string]any{"search": "\treturn u.Path\n", "replace": "\treturn u.RequestURI()\n"},
	}})
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), "query kept.") || !strings.Contains(string(got), "return u.RequestURI()") || strings.Contains(string(got), "return u.Path") {
		t.Fatalf("after the edit:\n%s", got[len(got)-300:])
	}
	// The second model, behind the same process, is refused on the file,
	// and told who holds it.
	qwenID, _, _ := whoIn(t, host, qwen)
	refusal := host.fail("fs_edit", map[string]any{"session_id": llama, "path": "src/auth/login.go", "search": "query kept.", "replace": "query dropped."},
		"qwen-coder", qwenID)
	t.Logf("the second model is told: %s", refusal)
	if after, _ := os.ReadFile(file); string(after) != string(got) {
		t.Error("the refused edit changed the file")
	}
}
