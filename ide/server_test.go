package ide_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/coditect/coditect/ide"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
)

// The tests drive ide.Serve in-process through a real JSON-RPC client
// (sourcegraph/jsonrpc2 with VS Code framing) over pipes. They never sleep:
// a request's answer proves every notification before it has applied
// (dispatch order), and server notifications are awaited with a deadline.

const wait = 20 * time.Second

type result struct {
	code int
	err  error
}

type client struct {
	t     testing.TB
	sc    *tenant.Scope
	conn  *jsonrpc2.Conn
	in    *io.PipeWriter // the server's input
	notes chan *jsonrpc2.Request
	done  chan result
	root  string
}

// start serves a connection for sc with a workspace root directory.
func start(t testing.TB, sc *tenant.Scope, opts ide.Options) *client {
	t.Helper()
	sr, cw := io.Pipe()
	cr, sw := io.Pipe()
	c := &client{t: t, sc: sc, in: cw, notes: make(chan *jsonrpc2.Request, 4096), done: make(chan result, 1)}
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c.root = root
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		code, err := ide.Serve(ctx, sc, sr, sw, opts)
		sw.Close()
		c.done <- result{code, err}
	}()
	c.conn = jsonrpc2.NewConn(ctx, jsonrpc2.NewBufferedStream(pipeRWC{cr, cw}, jsonrpc2.VSCodeObjectCodec{}),
		jsonrpc2.HandlerWithError(func(_ context.Context, _ *jsonrpc2.Conn, req *jsonrpc2.Request) (any, error) {
			c.notes <- req
			return nil, nil
		}))
	t.Cleanup(func() {
		cw.Close()
		cancel()
		c.conn.Close()
	})
	return c
}

type pipeRWC struct {
	r *io.PipeReader
	w *io.PipeWriter
}

func (p pipeRWC) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p pipeRWC) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p pipeRWC) Close() error                { p.r.Close(); return p.w.Close() }

func (c *client) call(method string, params, result any) error {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return c.conn.Call(ctx, method, params, result)
}

func (c *client) mustCall(method string, params, result any) {
	c.t.Helper()
	if err := c.call(method, params, result); err != nil {
		c.t.Fatalf("%s: %v", method, err)
	}
}

func (c *client) notify(method string, params any) {
	c.t.Helper()
	if err := c.conn.Notify(context.Background(), method, params); err != nil {
		c.t.Fatalf("notify %s: %v", method, err)
	}
}

// sync returns once every notification sent before has applied.
func (c *client) sync() {
	c.t.Helper()
	c.mustCall("workspace/executeCommand", map[string]any{"command": "coditect.status"}, nil)
}

func (c *client) initialize(opts map[string]any) map[string]any {
	c.t.Helper()
	var res map[string]any
	c.mustCall("initialize", map[string]any{
		"processId": nil, "clientInfo": map[string]string{"name": "go-test", "version": "1"},
		"rootUri": fileURI(c.root), "capabilities": map[string]any{}, "initializationOptions": opts,
	}, &res)
	c.notify("initialized", map[string]any{})
	return res
}

// note waits for a server notification of method that satisfies ok.
func (c *client) note(method string, ok func(json.RawMessage) bool) json.RawMessage {
	c.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case n := <-c.notes:
			if n.Method == method && n.Params != nil && ok(*n.Params) {
				return *n.Params
			}
		case <-deadline:
			c.t.Fatalf("no %s notification within %v", method, wait)
		}
	}
}

func (c *client) exit() result {
	c.t.Helper()
	select {
	case r := <-c.done:
		return r
	case <-time.After(wait):
		c.t.Fatal("the server did not end")
	}
	return result{}
}

func fileURI(p string) string { return (&url.URL{Scheme: "file", Path: p}).String() }

func code(err error) int64 {
	var e *jsonrpc2.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// fileKey is the project key of a file in a project of sc's tenant: what
// marks and evidence are keyed by.
func fileKey(t testing.TB, sc *tenant.Scope, path string) string {
	t.Helper()
	pl, err := project.Resolve(context.Background(), sc, path)
	if err != nil {
		t.Fatal(err)
	}
	return pl.File().String()
}

// place resolves a file into its project.
func place(t testing.TB, sc *tenant.Scope, path string) project.Place {
	t.Helper()
	pl, err := project.Resolve(context.Background(), sc, path)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// editors returns the unsaved-edit marks of a file, by its project key
// (or by the absolute path an untracked document would have had).
func editors(t *testing.T, sc *tenant.Scope, path string) []attrib.Editing {
	t.Helper()
	key := path
	if pl, err := project.Resolve(context.Background(), sc, path); err == nil {
		key = pl.File().String()
	}
	var out []attrib.Editing
	err := sc.Store().View(context.Background(), func(tx kv.ReadTx) error {
		var err error
		out, err = attrib.Editors(tx, sc, key, time.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func scope(t *testing.T) *tenant.Scope {
	s, _ := agenttest.Open(t)
	return agenttest.Scope(t, s, "acme", "ada")
}

// TestLifecycle walks the state machine: requests before initialize,
// initialize twice, unknown methods, bad params, shutdown twice, requests
// after shutdown, exit.
func TestLifecycle(t *testing.T) {
	c := start(t, scope(t), ide.Options{Version: "1.2.3"})
	if err := c.call("textDocument/hover", map[string]any{}, nil); code(err) != -32002 {
		t.Fatalf("hover before initialize: %v, want ServerNotInitialized", err)
	}
	if err := c.call("shutdown", nil, nil); code(err) != -32002 {
		t.Fatalf("shutdown before initialize: %v, want ServerNotInitialized", err)
	}
	if err := c.call("initialize", map[string]any{"processId": "nope"}, nil); code(err) != -32602 {
		t.Fatalf("initialize with a bad processId: %v, want InvalidParams", err)
	}
	res := c.initialize(nil)
	caps, _ := res["capabilities"].(map[string]any)
	sync, _ := caps["textDocumentSync"].(map[string]any)
	if sync["change"] != float64(2) || sync["openClose"] != true || sync["willSave"] != true || caps["hoverProvider"] != true ||
		res["serverInfo"].(map[string]any)["version"] != "1.2.3" {
		t.Fatalf("initialize result %v", res)
	}
	if err := c.call("initialize", map[string]any{}, nil); code(err) != -32600 {
		t.Fatalf("second initialize: %v, want InvalidRequest", err)
	}
	if err := c.call("textDocument/definition", map[string]any{}, nil); code(err) != -32601 {
		t.Fatalf("unknown method: %v, want MethodNotFound", err)
	}
	if err := c.call("$/unknown", nil, nil); code(err) != -32601 {
		t.Fatalf("unknown $/ request: %v, want MethodNotFound", err)
	}
	c.notify("unknown/notification", map[string]any{"x": 1})
	for _, bad := range []any{nil, "text", map[string]any{"textDocument": 5}, map[string]any{"textDocument": map[string]any{"uri": "file:///a"}}} {
		if err := c.call("textDocument/hover", bad, nil); code(err) != -32602 {
			t.Fatalf("hover %v: %v, want InvalidParams", bad, err)
		}
	}
	if err := c.call("workspace/executeCommand", map[string]any{"command": "rm -rf"}, nil); code(err) != -32602 {
		t.Fatalf("unknown command: %v, want InvalidParams", err)
	}
	var null json.RawMessage
	c.mustCall("shutdown", nil, &null)
	c.mustCall("shutdown", nil, &null)
	if string(null) != "null" {
		t.Fatalf("shutdown result %s, want null", null)
	}
	if err := c.call("textDocument/hover", map[string]any{}, nil); code(err) != -32600 {
		t.Fatalf("hover after shutdown: %v, want InvalidRequest", err)
	}
	c.notify("exit", nil)
	if r := c.exit(); r.code != ide.ExitOK || r.err != nil {
		t.Fatalf("exit after shutdown: %+v, want 0", r)
	}
}

// TestExitCodes: exit without shutdown is 1; the client vanishing counts
// as shutdown then exit (0) and releases the unsaved-edit marks.
func TestExitCodes(t *testing.T) {
	c := start(t, scope(t), ide.Options{})
	c.initialize(nil)
	c.notify("exit", nil)
	if r := c.exit(); r.code != ide.ExitNoShutdown || r.err != nil {
		t.Fatalf("exit without shutdown: %+v, want 1", r)
	}

	sc := scope(t)
	c = start(t, sc, ide.Options{})
	c.initialize(nil)
	f := filepath.Join(c.root, "a.txt")
	writeFile(t, f, "one\n")
	c.open(f, "one\n")
	c.change(f, 2, edit(0, 3, 0, 3, "!"))
	c.sync()
	if eds := editors(t, sc, f); len(eds) != 1 {
		t.Fatalf("marks while dirty: %+v", eds)
	}
	c.in.Close()
	if r := c.exit(); r.code != ide.ExitOK || r.err != nil {
		t.Fatalf("client vanished: %+v, want 0", r)
	}
	if eds := editors(t, sc, f); len(eds) != 0 {
		t.Fatalf("marks after the client vanished: %+v", eds)
	}
}

func writeFile(t testing.TB, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (c *client) open(path, text string) {
	c.t.Helper()
	c.notify("textDocument/didOpen", map[string]any{"textDocument": map[string]any{"uri": fileURI(path), "languageId": "text", "version": 1, "text": text}})
}

func edit(l1, c1, l2, c2 int, text string) map[string]any {
	return map[string]any{"range": map[string]any{"start": map[string]int{"line": l1, "character": c1}, "end": map[string]int{"line": l2, "character": c2}}, "text": text}
}

func (c *client) change(path string, version int, changes ...map[string]any) {
	c.t.Helper()
	c.notify("textDocument/didChange", map[string]any{"textDocument": map[string]any{"uri": fileURI(path), "version": version}, "contentChanges": changes})
}

func (c *client) doc(path string) map[string]any {
	return map[string]any{"textDocument": map[string]any{"uri": fileURI(path)}}
}

// TestTextSync: incremental edits are tracked exactly (the saved hash is
// the hash of the expected text); a dirty buffer holds a mark, which
// undoing to the saved text, saving and closing clear; a save records the
// human's evidence before and after it reaches the disk.
func TestTextSync(t *testing.T) {
	sc := scope(t)
	c := start(t, sc, ide.Options{})
	c.initialize(nil)
	f := filepath.Join(c.root, "main.go")
	writeFile(t, f, "package main\n\nfunc main() {}\n")
	c.open(f, "package main\n\nfunc main() {}\n")
	c.sync()
	if eds := editors(t, sc, f); len(eds) != 0 {
		t.Fatalf("clean buffer marked: %+v", eds)
	}
	// Type, then undo back to the saved text: clean again.
	c.change(f, 2, edit(2, 13, 2, 13, "\n\tprintln(\"hé😀\")\n"))
	c.sync()
	if eds := editors(t, sc, f); len(eds) != 1 || eds[0].User != "ada" || eds[0].Client != "go-test 1" {
		t.Fatalf("dirty buffer marks: %+v", eds)
	}
	c.change(f, 3, edit(2, 13, 4, 0, ""))
	c.sync()
	if eds := editors(t, sc, f); len(eds) != 0 {
		t.Fatalf("buffer back to the saved text still marked: %+v", eds)
	}
	// Several edits in one didChange (as Neovim merges quick edits).
	c.change(f, 4, edit(0, 8, 0, 12, "demo"), edit(2, 13, 2, 13, "\n\tx := \"😀\"\n\t_ = x\n"), edit(3, 6, 3, 10, "`😀😀`"))
	want := "package demo\n\nfunc main() {\n\tx := `😀😀`\n\t_ = x\n}\n"
	c.notify("textDocument/willSave", map[string]any{"textDocument": map[string]any{"uri": fileURI(f)}, "reason": 1})
	c.sync()
	// willSave recorded the evidence before the bytes reached the disk.
	recs, err := attrib.Get(context.Background(), sc, fileKey(t, sc, f))
	if err != nil || len(recs) != 1 || recs[0].Source != attrib.IDESave || recs[0].Hash != attrib.Hash([]byte(want)) {
		t.Fatalf("evidence after willSave: %+v, %v (want the hash of %q)", recs, err, want)
	}
	writeFile(t, f, want)
	c.notify("textDocument/didSave", c.doc(f))
	c.sync()
	if eds := editors(t, sc, f); len(eds) != 0 {
		t.Fatalf("saved buffer still marked: %+v", eds)
	}
	evs := history(t, c, f)
	kinds := []string{}
	for _, ev := range evs {
		kinds = append(kinds, ev.Kind)
	}
	if strings.Join(kinds, ",") != "ide.saved,ide.edited,ide.edited,ide.opened" {
		t.Fatalf("events %v", kinds)
	}
	if evs[0].Attrs["hash"] != attrib.Hash([]byte(want)) || evs[0].Attribution.Actor != audit.ActorHuman {
		t.Fatalf("ide.saved %+v", evs[0])
	}
	// Events name the project and the path relative to its root.
	if pl := place(t, sc, f); evs[0].Project != pl.Project.ID || evs[0].Path != "main.go" || evs[0].Attrs["abs"] != f {
		t.Fatalf("ide.saved in project %q at %q (abs %v), want %s main.go", evs[0].Project, evs[0].Path, evs[0].Attrs["abs"], pl.Project.ID)
	}
	// Dirty again, then closed without saving: the mark goes.
	c.change(f, 5, edit(0, 0, 0, 0, "// x\n"))
	c.sync()
	if len(editors(t, sc, f)) != 1 {
		t.Fatal("no mark after a new edit")
	}
	c.notify("textDocument/didClose", c.doc(f))
	c.sync()
	if eds := editors(t, sc, f); len(eds) != 0 {
		t.Fatalf("closed buffer still marked: %+v", eds)
	}
	// A change to a document that is not open, or with a bad range, is
	// logged, not fatal.
	c.change(f, 6, edit(0, 0, 0, 0, "x"))
	c.sync()
}

func history(t *testing.T, c *client, path string) []audit.Event {
	t.Helper()
	var res struct {
		Events []audit.Event `json:"events"`
	}
	c.mustCall("workspace/executeCommand", map[string]any{"command": "coditect.file.history", "arguments": []any{map[string]string{"uri": fileURI(path)}}}, &res)
	return res.Events
}

// TestActivitySignal: with a client that sends the keyboard signal, a
// save without human activity before it is not the human's evidence.
func TestActivitySignal(t *testing.T) {
	sc := scope(t)
	c := start(t, sc, ide.Options{})
	c.initialize(map[string]any{"humanActivity": true})
	f := filepath.Join(c.root, "a.txt")
	writeFile(t, f, "a\n")
	c.open(f, "a\n")
	c.change(f, 2, edit(0, 0, 0, 0, "tool "))
	c.notify("textDocument/willSave", c.doc(f))
	c.notify("textDocument/didSave", c.doc(f))
	c.sync()
	if recs, _ := attrib.Get(context.Background(), sc, fileKey(t, sc, f)); len(recs) != 0 {
		t.Fatalf("a save without keyboard activity left human evidence: %+v", recs)
	}
	if evs := history(t, c, f); evs[0].Kind != "ide.saved" || evs[0].Attrs["human"] != false {
		t.Fatalf("ide.saved %+v", evs[0])
	}
	c.notify("coditect/activity", c.doc(f))
	c.change(f, 3, edit(0, 0, 0, 0, "human "))
	c.notify("textDocument/didSave", c.doc(f))
	c.sync()
	recs, _ := attrib.Get(context.Background(), sc, fileKey(t, sc, f))
	if len(recs) != 1 || recs[0].Hash != attrib.Hash([]byte("human tool a\n")) {
		t.Fatalf("a save after keyboard activity: %+v", recs)
	}
}

// TestCancelAndConcurrency: a request blocked in a handler does not hold
// up other requests, and $/cancelRequest ends it with RequestCancelled.
func TestCancelAndConcurrency(t *testing.T) {
	started := make(chan struct{}, 1)
	dash := ide.DashboardFunc(func(ctx context.Context, _ *tenant.Scope) (string, error) {
		started <- struct{}{}
		<-ctx.Done()
		return "", ctx.Err()
	})
	c := start(t, scope(t), ide.Options{Dashboard: dash})
	c.initialize(nil)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	w, err := c.conn.DispatchCall(ctx, "workspace/executeCommand", map[string]any{"command": "coditect.dashboard"}, jsonrpc2.PickID(jsonrpc2.ID{Num: 4242}))
	if err != nil {
		t.Fatal(err)
	}
	<-started
	c.sync() // answered while the dashboard request is blocked
	c.notify("$/cancelRequest", map[string]any{"id": 4242})
	if err := w.Wait(ctx, nil); code(err) != -32800 {
		t.Fatalf("cancelled request: %v, want RequestCancelled", err)
	}
	c.notify("$/cancelRequest", map[string]any{"id": 99999}) // unknown: ignored
	c.notify("$/cancelRequest", "garbage")
	c.sync()
}

// TestHoverAndEvents: hover and code lens name the agent that last
// changed a file; an agent's lease on an open file and its refused write
// reach the client as coditect/event and window/showMessage.
func TestHoverAndEvents(t *testing.T) {
	sc := scope(t)
	ctx := context.Background()
	ag, agentSc := agenttest.Agent(t, ctx, sc, "builder", agent.Registration{Name: "builder", Client: "lmstudio", Model: "qwen2.5-coder-7b"})
	c := start(t, sc, ide.Options{})
	c.initialize(nil)
	f := filepath.Join(c.root, "src", "a.go")
	if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, f, "package a\n")
	var hover json.RawMessage
	c.mustCall("textDocument/hover", map[string]any{"textDocument": map[string]string{"uri": fileURI(f)}, "position": map[string]int{"line": 0, "character": 0}}, &hover)
	if string(hover) != "null" {
		t.Fatalf("hover without history: %s", hover)
	}
	pl := place(t, sc, f)
	ev := agentSc.Event("file.modified", "modified a.go")
	ev.Project, ev.Path = pl.Project.ID, "src/a.go"
	ev.Session = "01JZ3K5V8Q2W7X9Y4N6M1P0R3T"
	ev.Attribution = &audit.Attribution{Actor: audit.ActorAgent, AgentID: ag.ID, Model: "qwen2.5-coder-7b", Evidence: "agent_write", Confidence: 1}
	if _, err := sc.Log().Append(ctx, ev); err != nil {
		t.Fatal(err)
	}
	var h struct {
		Contents struct{ Kind, Value string } `json:"contents"`
	}
	c.mustCall("textDocument/hover", map[string]any{"textDocument": map[string]string{"uri": fileURI(f)}, "position": map[string]int{"line": 0, "character": 0}}, &h)
	for _, want := range []string{"agent **builder**", "qwen2.5-coder-7b", "01JZ3K5V8Q2W7X9Y4N6M1P0R3T", "file.modified", "agent_write"} {
		if !strings.Contains(h.Contents.Value, want) {
			t.Errorf("hover %q lacks %q", h.Contents.Value, want)
		}
	}
	var lenses []struct {
		Command struct{ Title, Command string } `json:"command"`
	}
	c.mustCall("textDocument/codeLens", c.doc(f), &lenses)
	if len(lenses) != 1 || !strings.Contains(lenses[0].Command.Title, "agent builder (qwen2.5-coder-7b)") || lenses[0].Command.Command != "coditect.file.history" {
		t.Fatalf("code lens %+v", lenses)
	}

	// The human opens and edits the file; the agent takes a lease on it.
	c.open(f, "package a\n")
	c.change(f, 2, edit(1, 0, 1, 0, "// mine\n"))
	c.sync()
	glob := project.File{Project: pl.Project.ID, Rel: "src/*.go"}.String()
	if _, err := lease.Acquire(ctx, agentSc, lease.Request{Resource: glob, Mode: lease.Exclusive, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	c.note(ide.EventMethod, func(p json.RawMessage) bool { return strings.Contains(string(p), `"lease.acquired"`) })
	msg := c.note("window/showMessage", func(json.RawMessage) bool { return true })
	var sm struct {
		Type    int    `json:"type"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(msg, &sm)
	if sm.Type != 2 || !strings.Contains(sm.Message, "builder") || !strings.Contains(sm.Message, "a.go") || !strings.Contains(sm.Message, "unsaved") {
		t.Fatalf("showMessage %+v", sm)
	}
	// A refused write, as the files toolset records it.
	call := agentSc.Event("tool.called", "fs_write refused")
	call.Project, call.Path = pl.Project.ID, "src/a.go"
	call.Attrs = map[string]any{"tool": "fs_write", "outcome": "conflict", "unsaved_edits": 1}
	if _, err := sc.Log().Append(ctx, call); err != nil {
		t.Fatal(err)
	}
	msg = c.note("window/showMessage", func(p json.RawMessage) bool { return strings.Contains(string(p), "refused") })
	if !strings.Contains(string(msg), "builder") {
		t.Fatalf("refusal message %s", msg)
	}
	// Events elsewhere do not reach this workspace: another project's
	// file of the same relative path, a path of no project.
	elsewhere, err := project.Register(ctx, sc, "elsewhere", t.TempDir(), project.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other := sc.Event("note.added", "elsewhere")
	other.Project, other.Path = elsewhere.Project.ID, "b.go"
	stray := sc.Event("note.added", "stray")
	stray.Path = "/elsewhere/x.go"
	mine := sc.Event("note.added", "here")
	mine.Project, mine.Path = pl.Project.ID, "b.go"
	if _, err := sc.Log().Append(ctx, other, stray, mine); err != nil {
		t.Fatal(err)
	}
	got := c.note(ide.EventMethod, func(p json.RawMessage) bool { return strings.Contains(string(p), "note.added") })
	if !strings.Contains(string(got), `"here"`) {
		t.Fatalf("first note event %s, want the workspace's", got)
	}
}

// TestSessionAndDashboardCommands: start/end a session for the workspace,
// the dashboard URL, agents and status.
func TestSessionAndDashboardCommands(t *testing.T) {
	sc := scope(t)
	c := start(t, sc, ide.Options{Dashboard: ide.DashboardFunc(func(context.Context, *tenant.Scope) (string, error) {
		return "http://127.0.0.1:1/s3cret/#token=x", nil
	})})
	c.initialize(nil)
	var se struct {
		ID, Workspace, State string
	}
	c.mustCall("workspace/executeCommand", map[string]any{"command": "coditect.session.start"}, &se)
	if se.ID == "" || se.Workspace != c.root || se.State != "open" {
		t.Fatalf("session.start %+v", se)
	}
	var again struct{ ID string }
	c.mustCall("workspace/executeCommand", map[string]any{"command": "coditect.session.start"}, &again)
	if again.ID != se.ID {
		t.Fatalf("second start gave %s, want the open %s", again.ID, se.ID)
	}
	var st map[string]any
	c.mustCall("workspace/executeCommand", map[string]any{"command": "coditect.status"}, &st)
	if st["session"] != se.ID || st["user"] != "ada" {
		t.Fatalf("status %v", st)
	}
	var dash map[string]string
	c.mustCall("workspace/executeCommand", map[string]any{"command": "coditect.dashboard"}, &dash)
	if dash["url"] != "http://127.0.0.1:1/s3cret/#token=x" {
		t.Fatalf("dashboard %v", dash)
	}
	var ags map[string]any
	c.mustCall("workspace/executeCommand", map[string]any{"command": "coditect.agents"}, &ags)
	if _, ok := ags["agents"].([]any); !ok {
		t.Fatalf("agents %v", ags)
	}
	if err := c.call("workspace/executeCommand", map[string]any{"command": "coditect.session.end", "arguments": []any{map[string]string{"status": "exploded"}}}, nil); code(err) != -32602 {
		t.Fatalf("bad status: %v", err)
	}
	var ended struct{ State string }
	c.mustCall("workspace/executeCommand", map[string]any{"command": "coditect.session.end"}, &ended)
	if ended.State != "ended" {
		t.Fatalf("session.end %+v", ended)
	}
	if err := c.call("workspace/executeCommand", map[string]any{"command": "coditect.session.end"}, nil); code(err) != -32803 {
		t.Fatalf("end without a session: %v", err)
	}
}

// BenchmarkHover10kHistory measures hover on a file with 10,000 events in
// its history (1,000 with -short), the newest a change by an agent; it
// reports the p99 latency.
func BenchmarkHover10kHistory(b *testing.B) {
	n := 10_000
	if testing.Short() {
		n = 1_000
	}
	s, _ := agenttest.Open(b)
	sc := agenttest.Scope(b, s, "acme", "ada")
	ctx := context.Background()
	ag, agentSc := agenttest.Agent(b, ctx, sc, "builder", agent.Registration{Name: "builder", Client: "lmstudio", Model: "qwen"})
	c := start(b, sc, ide.Options{})
	f := filepath.Join(c.root, "hot.go")
	pl, err := project.Register(ctx, sc, "", c.root, project.RootOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for done := 0; done < n; {
		batch := make([]audit.Event, 0, 1000)
		for ; len(batch) < cap(batch) && done < n; done++ {
			ev := agentSc.Event("file.modified", "modified hot.go")
			ev.Project, ev.Path = pl.Project.ID, "hot.go"
			ev.Attribution = &audit.Attribution{Actor: audit.ActorAgent, AgentID: ag.ID, Model: "qwen", Evidence: "agent_write", Confidence: 1}
			if done%2 == 1 {
				ev.Kind = "tool.called"
				ev.Attrs = map[string]any{"tool": "fs_read", "outcome": "ok"}
			}
			batch = append(batch, ev)
		}
		if _, err := sc.Log().Append(ctx, batch...); err != nil {
			b.Fatal(err)
		}
	}
	c.initialize(nil)
	params := map[string]any{"textDocument": map[string]string{"uri": fileURI(f)}, "position": map[string]int{"line": 0, "character": 0}}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		var h map[string]any
		if err := c.call("textDocument/hover", params, &h); err != nil || h == nil {
			b.Fatalf("hover: %v %v", h, err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkDidChangeThroughput10k measures didChange through the whole
// server (framing, decoding, the ordered queue, the buffer, the dirty
// check) on a 10,000-line file: one keystroke per op, then a request that
// waits for all of them to apply.
func BenchmarkDidChangeThroughput10k(b *testing.B) {
	sc := agenttest.Scope(b, must(agenttest.Open(b)), "acme", "ada")
	c := start(b, sc, ide.Options{})
	c.initialize(nil)
	var sb strings.Builder
	for i := range 10_000 {
		fmt.Fprintf(&sb, "\tfmt.Println(\"line %d %s\")\n", i, strings.Repeat("x", i%40))
	}
	f := filepath.Join(c.root, "big.go")
	writeFile(b, f, sb.String())
	c.open(f, sb.String())
	c.sync()
	b.ResetTimer()
	for i := range b.N {
		c.change(f, i+2, edit(5000, 3, 5000, 3, "a"))
	}
	c.sync()
}

func must(s kv.Store, _ string) kv.Store { return s }
