package tools

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/bridge"
	"github.com/coditect/coditect/storage/tenant"
)

// ideBudget is the most bytes the ide toolset's definitions may take:
// less than the other opt-in toolsets, since a host adds it to them.
const ideBudget = 8 << 10

// hoverContents is the editor's hover: a rune cut by ideHoverBudget.
var hoverContents = "```go\nfunc main()\n```\n" + strings.Repeat("doc ", ideHoverBudget/4-7) + "x" + strings.Repeat("é", 2000)

func TestIDEToolsListBudget(t *testing.T) {
	n, defs := listSize(t, []Toolset{IDE(Config{})})
	t.Logf("ide toolset: %d tools, %d bytes (budget %d)", len(defs), n, ideBudget)
	if n > ideBudget {
		t.Errorf("the ide toolset is %d bytes, over the budget of %d", n, ideBudget)
	}
	if len(defs) != 7 {
		t.Errorf("%d ide tools, want 7", len(defs))
	}
	for _, s := range DefaultToolsets() {
		if s == "ide" {
			t.Error("the ide toolset is in the default set")
		}
	}
}

// fakeEditor is the editor's language provider stand-in: it answers each
// kind from fixed data and keeps the requests it saw.
type fakeEditor struct {
	mu   sync.Mutex
	seen []bridge.Request
}

func (e *fakeEditor) last() bridge.Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.seen[len(e.seen)-1]
}

func (e *fakeEditor) handle(_ context.Context, r bridge.Request) (bridge.Result, error) {
	e.mu.Lock()
	e.seen = append(e.seen, r)
	e.mu.Unlock()
	at := func(p string, line int) bridge.Location { return bridge.Location{Path: p, Line: line, Column: 1} }
	switch r.Kind {
	case bridge.KindDiagnostics:
		return bridge.Result{Diagnostics: []bridge.Diagnostic{
			{Location: at("src/a.go", 3), Severity: 1, Message: "undefined: y", Source: "compiler"},
			{Location: at("../escape.go", 1), Severity: 2, Message: "outside"},
		}}, nil
	case bridge.KindDefinition:
		return bridge.Result{Locations: []bridge.Location{at("src/a.go", 1)}}, nil
	case bridge.KindReferences:
		var ls []bridge.Location
		for i := range r.Params.Limit {
			ls = append(ls, at("src/a.go", i+1))
		}
		return bridge.Result{Locations: ls, More: 7}, nil
	case bridge.KindHover:
		return bridge.Result{Contents: hoverContents}, nil
	case bridge.KindSymbols:
		return bridge.Result{Symbols: []bridge.Symbol{{Name: "main", Kind: 12, Location: at("src/a.go", 3)}}}, nil
	case bridge.KindContext:
		return bridge.Result{Editors: []bridge.OpenEditor{{Path: "src/a.go", FirstLine: 1, LastLine: 40}},
			Active: &bridge.Active{Path: "src/a.go", Selection: bridge.Location{Path: "src/a.go", Line: 3, Column: 1, EndLine: 3, EndColumn: 5}, Text: "func"}}, nil
	case bridge.KindOpen:
		return bridge.Result{Shown: true}, nil
	}
	return bridge.Result{}, fmt.Errorf("unknown kind %s", r.Kind)
}

// connectEditor connects an editor of human (whose agent-less scope it
// takes) to project pid, serving ed until the test ends.
func connectEditor(t *testing.T, human *tenant.Scope, pid string, share bool, ed *fakeEditor) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := bridge.Connect(ctx, human, bridge.Presence{Editor: "ed-" + human.Principal().User, Client: "Visual Studio Code 1.96",
		Kind: bridge.EditorVSCode, Projects: []string{pid}, Kinds: bridge.Kinds, Share: share}, bridge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx, ed.handle) }()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = e.Close(context.Background())
	})
}

func TestIDETools(t *testing.T) {
	e := setup(t)
	a := e.alice
	w := newWorkspace(t, a)
	pname := projectNameOf(t, a, w.pid)

	// No editor: the tool says so at once, naming the user and project.
	text := mustFail(t, a, "ide_definition", w.args("symbol", "main"), OutcomeError,
		"no editor of alice is connected to project "+pname+"; open it in VS Code with the Coditect extension")
	if strings.Contains(text, "server-side") {
		t.Errorf("no editor told as a server problem: %s", text)
	}

	human, err := e.dir.Local(context.Background(), "t1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	ed := &fakeEditor{}
	connectEditor(t, human, w.pid, false, ed)

	// Diagnostics after the agent's write wait for the written content.
	content := "package main\n\nfunc main() { y }\n"
	mustCall(t, a, "fs_write", w.args("path", "src/a.go", "content", content))
	m, text := mustCall(t, a, "ide_diagnostics", w.args("path", "src/a.go", "severity_min", "warning"))
	r := ed.last()
	wantHash := strings.TrimPrefix(attrib.Hash([]byte(content)), "sha256:")
	if r.Kind != bridge.KindDiagnostics || r.Params.Path != "src/a.go" || r.Params.SeverityMin != 2 || len(r.Params.WaitFor) != 1 ||
		r.Params.WaitFor[0] != (bridge.Wait{Path: "src/a.go", SHA256: wantHash}) || r.Session != w.sid || r.AgentLabel != "tester (m1)" {
		t.Fatalf("request %+v", r)
	}
	items := m["items"].([]any)
	if len(items) != 1 || m["elsewhere"] != float64(1) || items[0].(map[string]any)["severity"] != "error" ||
		!strings.Contains(text, "src/a.go:3:1 error: undefined: y") || !strings.Contains(text, "1 outside your workspace") {
		t.Fatalf("ide_diagnostics = %v\n%s", m, text)
	}
	// The whole project: the session's latest writes.
	mustCall(t, a, "ide_diagnostics", w.args())
	if r := ed.last(); r.Params.Path != "" || len(r.Params.WaitFor) != 1 || r.Params.WaitFor[0].Path != "src/a.go" {
		t.Fatalf("whole-project request %+v", r)
	}

	// A write the file no longer holds (the human changed it since) is
	// not waited for: the editor would never see it.
	if err := os.WriteFile(filepath.Join(w.root, "src", "a.go"), []byte("package main // the human's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCall(t, a, "ide_diagnostics", w.args("path", "src/a.go"))
	if r := ed.last(); len(r.Params.WaitFor) != 0 {
		t.Fatalf("waits for a superseded write: %+v", r.Params.WaitFor)
	}

	// Positions travel 1-based; a missing column is the line's first.
	m, text = mustCall(t, a, "ide_definition", w.args("path", "src/a.go", "line", 3))
	if r := ed.last(); r.Params.Line != 3 || r.Params.Column != 1 || r.Params.Path != "src/a.go" {
		t.Fatalf("request %+v", r)
	}
	if locs := m["locations"].([]any); len(locs) != 1 || !strings.Contains(text, "src/a.go:1:1") || !strings.Contains(text, "alice (Visual Studio Code 1.96)") {
		t.Fatalf("ide_definition = %v\n%s", m, text)
	}
	m, text = mustCall(t, a, "ide_references", w.args("symbol", "main", "limit", 3))
	if len(m["locations"].([]any)) != 3 || m["more"] != float64(7) || !strings.Contains(text, "7 more not shown") {
		t.Fatalf("ide_references = %v\n%s", m, text)
	}
	m, text = mustCall(t, a, "ide_hover", w.args("path", "src/a.go", "line", 3, "column", 6))
	// The contents are cut on a rune boundary, and the bytes left out
	// counted exactly.
	if c := m["contents"].(string); len(c) > ideHoverBudget+100 || !strings.Contains(text, "func main()") ||
		!strings.HasSuffix(c, fmt.Sprintf("\n… %d more bytes", len(hoverContents)-strings.Index(c, "\n… "))) ||
		!strings.HasPrefix(hoverContents, c[:strings.Index(c, "\n… ")]) || !utf8.ValidString(c) {
		t.Fatalf("ide_hover: %d bytes\n%s", len(c), text)
	}
	if m, _ = mustCall(t, a, "ide_symbols", w.args("query", "main")); m["symbols"].([]any)[0].(map[string]any)["kind"] != "function" {
		t.Fatalf("ide_symbols = %v", m)
	}
	if m, _ = mustCall(t, a, "ide_context", w.args()); m["active"].(map[string]any)["path"] != "src/a.go" {
		t.Fatalf("ide_context = %v", m)
	}
	m, _ = mustCall(t, a, "ide_open", w.args("path", "src/a.go", "line", 3, "message", "look"))
	if r := ed.last(); m["shown"] != true || r.Params.Message != "look" || r.Params.Line != 3 || r.Params.Column != 0 {
		t.Fatalf("ide_open = %v, request %+v", m, r)
	}
	if ev := lastCall(t, a, "ide_open"); ev.Attrs["editor_user"] != "alice" || ev.Attrs["outcome"] != "ok" || ev.Path != "src/a.go" {
		t.Errorf("tool.called %+v", ev)
	}

	// Bad arguments reach no editor.
	n := ed.count()
	mustFail(t, a, "ide_definition", w.args("path", "src/a.go"), OutcomeInvalid, `send "path" and "line"`)
	mustFail(t, a, "ide_symbols", w.args(), OutcomeInvalid, `"query"`)
	mustFail(t, a, "ide_open", w.args(), OutcomeInvalid, `"path" is required`)
	mustFail(t, a, "ide_hover", w.args("path", "../x.go", "line", 1), OutcomeForbidden, "leaves the workspace")
	mustFail(t, a, "ide_hover", w.args("path", w.outside+"/secret.txt", "line", 1), OutcomeForbidden, "absolute path")
	mustFail(t, a, "ide_hover", w.args("path", "src/a.go", "line", 0), OutcomeInvalid)
	mustFail(t, a, "ide_hover", `{"symbol":"main"}`, OutcomeInvalid, "session_id")
	if ed.count() != n {
		t.Errorf("bad arguments reached the editor: %d requests", ed.count()-n)
	}
}

// TestIDEOtherTenant: bob of another tenant, whose session is in a
// project of his own, never reaches alice's editor.
func TestIDEOtherTenant(t *testing.T) {
	e := setup(t)
	w := newWorkspace(t, e.alice)
	human, err := e.dir.Local(context.Background(), "t1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	ed := &fakeEditor{}
	connectEditor(t, human, w.pid, true, ed)
	// bob cannot even name alice's session.
	mustFail(t, e.bob, "ide_context", w.args(), OutcomeNotFound)
	if ed.count() != 0 {
		t.Fatal("another tenant reached the editor")
	}
}

func projectNameOf(t *testing.T, sc *tenant.Scope, id string) string {
	t.Helper()
	c := &Call{Caller: Caller{Scope: sc}}
	return c.projectName(context.Background(), id)
}

func (e *fakeEditor) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.seen)
}
