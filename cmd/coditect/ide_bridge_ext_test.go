package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestIDEBridgeExtension compiles the VS Code extension with tsc and runs
// ide/vscode/test/bridge_handlers.mjs on Node: the extension's own bridge
// handlers (src/bridge.ts), with the vscode API and language providers
// supplied by that file over a fixture workspace, answer coditect/ide
// requests over vscode-jsonrpc; then the same handlers answer a real
// `coditect ide` while an agent calls the ide tools through a real
// `coditect mcp` with the official MCP SDK client. Skipped without node or
// the extension's npm packages (ide/vscode/setup.sh).
func TestIDEBridgeExtension(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*ideWait)
	defer cancel()
	node, out := compileExtension(t, ctx)

	bin := ideBinary(t)
	store, _ := ideWorkspace(t)
	env := append(os.Environ(), "CODITECT_TOKEN=", "XDG_DATA_HOME="+t.TempDir(), "TMPDIR="+t.TempDir())
	editor := startNode(t, ctx, node, extensionDir(), env, filepath.Join(extensionDir(), "test", "bridge_handlers.mjs"), out, bin, store)
	// The handler-level checks run first; "ready WS" says the handlers
	// now answer `coditect ide` for the workspace WS.
	ws := strings.TrimPrefix(editor.next(func(l string) bool { return strings.HasPrefix(l, "ready ") }), "ready ")

	// The agent, through coditect mcp.
	agent := startMCP(t, ctx, env, bin, "--store", store, "--tenant", "node", "--user", "ada", "--toolsets", "core,files,ide",
		"--agent", "builder", "--model", "qwen2.5-coder-7b")
	call := agent.ok
	sid := call("session_start", map[string]any{"title": "the area", "workspace": ws})["session_id"].(string)
	// got returns a field of a result as plain JSON values, for comparing.
	got := func(m map[string]any, key string) any {
		b, _ := json.Marshal(m[key])
		var v any
		_ = json.Unmarshal(b, &v)
		return v
	}
	// want compares as JSON values.
	want := func(what string, g, w any) {
		t.Helper()
		var gv, wv any
		gb, _ := json.Marshal(g)
		wb, _ := json.Marshal(w)
		_ = json.Unmarshal(gb, &gv)
		_ = json.Unmarshal(wb, &wv)
		if !reflect.DeepEqual(gv, wv) {
			t.Errorf("%s:\n got %s\nwant %s", what, gb, wb)
		}
	}
	type loc = map[string]any

	// fmt.Println(c.Area()): Area's definition, a LocationLink in the editor.
	r := call("ide_definition", map[string]any{"session_id": sid, "path": "main.go", "line": 11, "column": 17})
	want("ide_definition", got(r, "locations"), []loc{{"path": "shapes/shapes.go", "line": 9, "column": 17, "end_line": 9, "end_column": 21}})

	r = call("ide_references", map[string]any{"session_id": sid, "symbol": "Circle", "limit": 4})
	want("ide_references", got(r, "locations"), []loc{
		{"path": "main.go", "line": 13, "column": 21, "end_line": 13, "end_column": 27},
		{"path": "shapes/shapes.go", "line": 3, "column": 4, "end_line": 3, "end_column": 10},
		{"path": "shapes/shapes.go", "line": 4, "column": 6, "end_line": 4, "end_column": 12},
		{"path": "shapes/shapes.go", "line": 9, "column": 9, "end_line": 9, "end_column": 15},
	})
	want("ide_references more", r["more"], float64(2))

	r = call("ide_symbols", map[string]any{"session_id": sid, "path": "shapes/shapes.go"})
	want("ide_symbols", got(r, "symbols"), []loc{
		{"name": "Circle", "kind": "struct", "path": "shapes/shapes.go", "line": 4},
		{"name": "Area", "kind": "method", "container": "Circle", "path": "shapes/shapes.go", "line": 9},
		{"name": "Unit", "kind": "function", "path": "shapes/shapes.go", "line": 14},
	})

	r = call("ide_hover", map[string]any{"session_id": sid, "path": "main.go", "line": 10, "column": 15})
	if c, _ := r["contents"].(string); !strings.Contains(c, "func Unit() Circle") {
		t.Errorf("ide_hover: %v", r)
	}

	r = call("ide_context", map[string]any{"session_id": sid})
	if a, _ := r["active"].(map[string]any); a["path"] != "main.go" || a["text"] != "c := shapes.Unit()\n\tfmt.Println(c.Area())" {
		t.Errorf("ide_context: %v", r)
	}

	r = call("ide_open", map[string]any{"session_id": sid, "path": "shapes/shapes.go", "line": 9, "end_line": 11, "message": "is pi precise enough?"})
	want("ide_open", r["shown"], true)

	// The agent breaks shapes.go; the problems are those of its write.
	src, err := os.ReadFile(filepath.Join(ws, "shapes", "shapes.go"))
	if err != nil {
		t.Fatal(err)
	}
	call("fs_write", map[string]any{"session_id": sid, "path": "shapes/shapes.go", "content": strings.Replace(string(src), "return Circle{R: 1}", "return undefUnit", 1)})
	r = call("ide_diagnostics", map[string]any{"session_id": sid, "path": "shapes/shapes.go"})
	want("ide_diagnostics", got(r, "items"), []loc{{"path": "shapes/shapes.go", "line": 15, "column": 9, "end_line": 15, "end_column": 18,
		"severity": "error", "message": "undefined: undefUnit", "source": "compiler", "code": "UndeclaredName"}})

	// Done: the harness shuts `coditect ide` down and reports.
	agent.cs.Close()
	var results struct {
		Coditect struct {
			Notifications []string `json:"notifications"`
		} `json:"coditect"`
	}
	last := editor.finish(&results)
	want("the notification", results.Coditect.Notifications, []string{"builder (qwen2.5-coder-7b) asks you to look at shapes/shapes.go:9–11: is pi precise enough?"})
	t.Logf("bridge_handlers.mjs: %s", last)
}
