package ide_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/coditect/coditect/ide"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/bridge"
	"github.com/coditect/coditect/storage/errclass"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
)

// bridgeClient is an editor driving ide.Serve in-process that answers the
// server's requests with answer (coditect/ide, window/showMessageRequest,
// window/showDocument) and keeps them.
type bridgeClient struct {
	*client
	mu   sync.Mutex
	reqs []*jsonrpc2.Request
	got  chan string // the methods of the server's requests, in order
}

func startBridgeClient(t *testing.T, sc *tenant.Scope, answer func(method string, params json.RawMessage) (any, error)) *bridgeClient {
	t.Helper()
	sr, cw := io.Pipe()
	cr, sw := io.Pipe()
	bc := &bridgeClient{client: &client{t: t, sc: sc, in: cw, notes: make(chan *jsonrpc2.Request, 4096), done: make(chan result, 1)}, got: make(chan string, 64)}
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bc.root = root
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		code, err := ide.Serve(ctx, sc, sr, sw, ide.Options{})
		sw.Close()
		bc.done <- result{code, err}
	}()
	bc.conn = jsonrpc2.NewConn(ctx, jsonrpc2.NewBufferedStream(pipeRWC{cr, cw}, jsonrpc2.VSCodeObjectCodec{}),
		jsonrpc2.AsyncHandler(jsonrpc2.HandlerWithError(func(_ context.Context, _ *jsonrpc2.Conn, req *jsonrpc2.Request) (any, error) {
			if req.Notif {
				bc.notes <- req
				return nil, nil
			}
			bc.mu.Lock()
			bc.reqs = append(bc.reqs, req)
			bc.mu.Unlock()
			var p json.RawMessage
			if req.Params != nil {
				p = *req.Params
			}
			res, err := answer(req.Method, p)
			bc.got <- req.Method
			return res, err
		})))
	t.Cleanup(func() {
		cw.Close()
		cancel()
		bc.conn.Close()
	})
	return bc
}

func (bc *bridgeClient) initialize(caps map[string]any) {
	bc.t.Helper()
	bc.mustCall("initialize", map[string]any{
		"processId": nil, "clientInfo": map[string]string{"name": "Neovim", "version": "0.7.2"},
		"rootUri": fileURI(bc.root), "capabilities": caps,
	}, nil)
	bc.notify("initialized", map[string]any{})
	bc.sync() // initialized has applied: the editor is announced
}

// params returns the params of the server's last request of method.
func (bc *bridgeClient) params(method string, v any) {
	bc.t.Helper()
	bc.mu.Lock()
	defer bc.mu.Unlock()
	for i := len(bc.reqs) - 1; i >= 0; i-- {
		if bc.reqs[i].Method == method {
			if err := json.Unmarshal(*bc.reqs[i].Params, v); err != nil {
				bc.t.Fatal(err)
			}
			return
		}
	}
	bc.t.Fatalf("no %s request", method)
}

// waitMethod waits for the server's request of method to be answered.
func (bc *bridgeClient) waitMethod(method string) {
	bc.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case m := <-bc.got:
			if m == method {
				return
			}
		case <-deadline:
			bc.t.Fatalf("no %s request within %v", method, wait)
		}
	}
}

// agentOf registers an agent of sc's user and returns its scope.
func agentOf(t *testing.T, sc *tenant.Scope) *tenant.Scope {
	t.Helper()
	_, as := agenttest.Agent(t, context.Background(), sc, "builder", agent.Registration{TTL: time.Minute, Model: "qwen2.5-coder-7b"})
	return as
}

func projectOf(t *testing.T, sc *tenant.Scope, dir string) project.Project {
	t.Helper()
	pl, err := project.Resolve(context.Background(), sc, dir)
	if err != nil {
		t.Fatal(err)
	}
	return pl.Project
}

// The fixture's line 2 has a character outside the BMP before the symbol
// f: its 1-based character column 12 is UTF-16 character 12 (0-based; 11
// without the emoji's second unit).
const bridgeSource = "package main\n// é😀 x := f()\nfunc f() int { return 1 }\n"

func TestBridgeVSCode(t *testing.T) {
	sc := scope(t)
	var mainURI string // set before the first request
	answer := func(method string, p json.RawMessage) (any, error) {
		if method != "coditect/ide" {
			return nil, nil
		}
		var r struct {
			Kind string `json:"kind"`
			URI  string `json:"uri"`
		}
		_ = json.Unmarshal(p, &r)
		switch r.Kind {
		case "definition":
			return map[string]any{"locations": []any{
				map[string]any{"uri": r.URI, "range": map[string]any{"start": map[string]int{"line": 1, "character": 12}, "end": map[string]int{"line": 1, "character": 13}}},
				map[string]any{"uri": "file:///etc/passwd", "range": map[string]any{"start": map[string]int{"line": 0, "character": 0}, "end": map[string]int{"line": 0, "character": 0}}},
			}}, nil
		case "references":
			var locs []any
			for i := range 30 {
				locs = append(locs, map[string]any{"uri": mainURI, "range": map[string]any{"start": map[string]int{"line": i % 3, "character": 0}, "end": map[string]int{"line": i % 3, "character": 1}}})
			}
			return map[string]any{"locations": locs}, nil
		case "diagnostics": // far over the answer's size bound
			var items []any
			for i := range 50 {
				items = append(items, map[string]any{"uri": mainURI, "severity": 1, "message": strings.Repeat("m", 3000),
					"range": map[string]any{"start": map[string]int{"line": i % 3, "character": 0}, "end": map[string]int{"line": i % 3, "character": 1}}})
			}
			return map[string]any{"items": items}, nil
		case "context":
			return nil, &jsonrpc2.Error{Code: -32803, Message: "the human does not share the editor's context", Data: rawJSON(`{"class":"forbidden"}`)}
		}
		return map[string]any{}, nil
	}
	c := startBridgeClient(t, sc, answer)
	if err := os.WriteFile(filepath.Join(c.root, "main.go"), []byte(bridgeSource), 0o644); err != nil {
		t.Fatal(err)
	}
	mainURI = fileURI(filepath.Join(c.root, "main.go"))
	c.initialize(map[string]any{"experimental": map[string]any{"coditect": map[string]any{"bridge": map[string]any{"kinds": bridge.Kinds, "share": false}}}})
	pj := projectOf(t, sc, c.root)
	as := agentOf(t, sc)
	ctx := context.Background()

	got, err := bridge.Ask(ctx, as, bridge.Question{Kind: bridge.KindDefinition, Project: pj.ID, ProjectName: pj.Name, AgentLabel: "builder (qwen2.5-coder-7b)",
		Params: bridge.Params{Path: "main.go", Line: 2, Column: 12}})
	if err != nil {
		t.Fatal(err)
	}
	var w struct {
		Kind, URI, Agent, User, Project string
		Position                        struct{ Line, Character int }
		Limit                           int
		TimeoutMs                       int64
	}
	c.params("coditect/ide", &w)
	if w.Kind != "definition" || w.URI != fileURI(filepath.Join(c.root, "main.go")) || w.Position.Line != 1 || w.Position.Character != 12 ||
		w.Agent != "builder (qwen2.5-coder-7b)" || w.User != "ada" || w.Project != pj.Name || w.Limit != bridge.DefaultLimit || w.TimeoutMs <= 0 {
		t.Fatalf("coditect/ide params %+v", w)
	}
	want := bridge.Location{Path: "main.go", Line: 2, Column: 12, EndLine: 2, EndColumn: 13}
	if len(got.Result.Locations) != 1 || got.Result.Locations[0] != want || got.Result.Elsewhere != 1 || got.Editor.Kind != bridge.EditorVSCode {
		t.Fatalf("definition %+v, want %+v and 1 elsewhere", got.Result, want)
	}
	got, err = bridge.Ask(ctx, as, bridge.Question{Kind: bridge.KindReferences, Project: pj.ID, Params: bridge.Params{Symbol: "f", Limit: 10}})
	if err != nil || len(got.Result.Locations) != 10 || got.Result.More != 20 {
		t.Fatalf("references %+v %v", got.Result, err)
	}
	got, err = bridge.Ask(ctx, as, bridge.Question{Kind: bridge.KindDiagnostics, Project: pj.ID})
	if b, _ := json.Marshal(got.Result); err != nil || len(b) > bridge.MaxAnswer || got.Result.More == 0 ||
		len(got.Result.Diagnostics)+got.Result.More != 50 {
		t.Fatalf("diagnostics: %d bytes, %d items, %d more, %v", len(b), len(got.Result.Diagnostics), got.Result.More, err)
	}
	_, err = bridge.Ask(ctx, as, bridge.Question{Kind: bridge.KindContext, Project: pj.ID})
	if !errors.Is(err, errclass.Forbidden) || !strings.Contains(err.Error(), "does not share the editor's context") {
		t.Fatalf("context: %v", err)
	}
	// The sharing setting follows the extension's notification.
	c.notify("coditect/bridgeSettings", map[string]any{"share": true})
	c.sync()
	eds, err := bridge.Editors(ctx, sc)
	if err != nil || len(eds) != 1 || !eds[0].Share || eds[0].User != "ada" {
		t.Fatalf("editors %+v %v", eds, err)
	}
	// Shutdown disconnects the editor at once.
	c.mustCall("shutdown", nil, nil)
	if eds, err := bridge.Editors(ctx, sc); err != nil || len(eds) != 0 {
		t.Fatalf("editors after shutdown %+v %v", eds, err)
	}
	if _, err := bridge.Ask(ctx, as, bridge.Question{Kind: bridge.KindHover, Project: pj.ID, ProjectName: pj.Name, Params: bridge.Params{Symbol: "f"}}); !errors.Is(err, bridge.ErrNoEditor) {
		t.Fatalf("after shutdown: %v", err)
	}
}

// TestBridgePlainLSP: a client without the bridge capability (Neovim)
// answers open through showMessageRequest and showDocument (not taking
// focus) and context from its open documents; anything else fails
// clearly.
func TestBridgePlainLSP(t *testing.T) {
	sc := scope(t)
	c := startBridgeClient(t, sc, func(method string, _ json.RawMessage) (any, error) {
		switch method {
		case "window/showMessageRequest":
			return map[string]string{"title": "Open"}, nil
		case "window/showDocument":
			return map[string]bool{"success": true}, nil
		}
		return nil, nil
	})
	file := filepath.Join(c.root, "main.go")
	if err := os.WriteFile(file, []byte(bridgeSource), 0o644); err != nil {
		t.Fatal(err)
	}
	c.initialize(map[string]any{"window": map[string]any{"showDocument": map[string]any{"support": true}}})
	pj := projectOf(t, sc, c.root)
	as := agentOf(t, sc)
	ctx := context.Background()

	_, err := bridge.Ask(ctx, as, bridge.Question{Kind: bridge.KindDefinition, Project: pj.ID, Params: bridge.Params{Symbol: "f"}})
	if !errors.Is(err, bridge.ErrUnsupported) ||
		!strings.Contains(err.Error(), "the editor of ada (Neovim 0.7.2, plain LSP) cannot answer ide_definition; use VS Code with the Coditect extension") {
		t.Fatalf("definition: %v", err)
	}
	got, err := bridge.Ask(ctx, as, bridge.Question{Kind: bridge.KindOpen, Project: pj.ID, ProjectName: pj.Name, AgentLabel: "builder",
		Params: bridge.Params{Path: "main.go", Line: 3, Message: "is this right?"}})
	if err != nil || !got.Result.Shown {
		t.Fatalf("open %+v %v", got, err)
	}
	c.waitMethod("window/showDocument")
	var msg struct {
		Type    int
		Message string
		Actions []struct{ Title string }
	}
	c.params("window/showMessageRequest", &msg)
	if len(msg.Actions) != 1 || msg.Actions[0].Title != "Open" || !strings.Contains(msg.Message, "builder (for ada) asks you to look at main.go:3") ||
		!strings.Contains(msg.Message, "is this right?") {
		t.Fatalf("showMessageRequest %+v", msg)
	}
	var doc struct {
		URI       string `json:"uri"`
		TakeFocus *bool  `json:"takeFocus"`
		Selection struct{ Start struct{ Line int } }
	}
	c.params("window/showDocument", &doc)
	if doc.URI != fileURI(file) || doc.TakeFocus == nil || *doc.TakeFocus || doc.Selection.Start.Line != 2 {
		t.Fatalf("showDocument %+v", doc)
	}

	c.notify("textDocument/didOpen", map[string]any{"textDocument": map[string]any{"uri": fileURI(file), "languageId": "go", "version": 1, "text": bridgeSource}})
	c.sync()
	got, err = bridge.Ask(ctx, as, bridge.Question{Kind: bridge.KindContext, Project: pj.ID})
	if err != nil || len(got.Result.Editors) != 1 || got.Result.Editors[0].Path != "main.go" || got.Result.Active != nil {
		t.Fatalf("context %+v %v", got.Result, err)
	}
}

func rawJSON(s string) *json.RawMessage {
	m := json.RawMessage(s)
	return &m
}

// lastID returns the JSON-RPC id of the server's last request of method.
func (bc *bridgeClient) lastID(method string) jsonrpc2.ID {
	bc.t.Helper()
	bc.mu.Lock()
	defer bc.mu.Unlock()
	for i := len(bc.reqs) - 1; i >= 0; i-- {
		if bc.reqs[i].Method == method {
			return bc.reqs[i].ID
		}
	}
	bc.t.Fatalf("no %s request", method)
	return jsonrpc2.ID{}
}

// cancelOf waits until the server cancels the request id with
// $/cancelRequest, at most until deadline.
func (bc *bridgeClient) cancelOf(id jsonrpc2.ID, deadline time.Time) {
	bc.t.Helper()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		select {
		case n := <-bc.notes:
			var p struct {
				ID json.RawMessage `json:"id"`
			}
			if n.Method == "$/cancelRequest" && n.Params != nil && json.Unmarshal(*n.Params, &p) == nil {
				want, _ := json.Marshal(id)
				if string(p.ID) == string(want) {
					return
				}
				bc.t.Logf("$/cancelRequest of %s, waiting for %s", p.ID, want)
			}
		case <-timer.C:
			bc.t.Fatalf("no $/cancelRequest of %s by %s", id, deadline.Format(time.RFC3339Nano))
		}
	}
}

// TestBridgeCancel: the editor is told to stop working on a request
// ($/cancelRequest naming its coditect/ide request) when the request's
// deadline passes, and when the asking agent withdraws it before.
func TestBridgeCancel(t *testing.T) {
	sc := scope(t)
	release := make(chan struct{})
	arrived := make(chan struct{}, 4)
	c := startBridgeClient(t, sc, func(method string, _ json.RawMessage) (any, error) {
		if method != "coditect/ide" {
			return nil, nil
		}
		arrived <- struct{}{}
		<-release // an editor that never answers in time
		return nil, &jsonrpc2.Error{Code: -32800, Message: "cancelled"}
	})
	t.Cleanup(func() { close(release) }) // runs before the client's cleanup
	c.initialize(map[string]any{"experimental": map[string]any{"coditect": map[string]any{"bridge": map[string]any{"kinds": bridge.Kinds}}}})
	pj := projectOf(t, sc, c.root)
	as := agentOf(t, sc)
	awaitArrival := func() {
		t.Helper()
		select {
		case <-arrived:
		case <-time.After(wait):
			t.Fatalf("no coditect/ide request within %v", wait)
		}
	}

	// The deadline passes.
	const timeout = time.Second
	errs := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := bridge.Ask(context.Background(), as, bridge.Question{Kind: bridge.KindHover, Project: pj.ID, Params: bridge.Params{Symbol: "hang"}, Timeout: timeout})
		errs <- err
	}()
	awaitArrival()
	id := c.lastID("coditect/ide")
	c.cancelOf(id, start.Add(timeout+3*time.Second))
	if d := time.Since(start); d < timeout-100*time.Millisecond {
		t.Errorf("cancelled after %s, before the deadline (%s)", d, timeout)
	}
	if err := <-errs; !errors.Is(err, bridge.ErrTimeout) {
		t.Fatalf("ask: %v", err)
	}

	// The agent's call is cancelled long before its deadline.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, err := bridge.Ask(ctx, as, bridge.Question{Kind: bridge.KindHover, Project: pj.ID, Params: bridge.Params{Symbol: "hang"}, Timeout: bridge.MaxTimeout})
		errs <- err
	}()
	awaitArrival()
	id2 := c.lastID("coditect/ide")
	if id2 == id {
		t.Fatalf("the second request has the first's id %s", id)
	}
	withdrawn := time.Now()
	cancel()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ask: %v", err)
	}
	c.cancelOf(id2, withdrawn.Add(bridge.MaxTimeout/4))
	t.Logf("the withdrawn request was cancelled %s after the withdrawal", time.Since(withdrawn))
}
