package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/internal/testbin"
	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
)

// The IDE bridge end to end: agents on the official MCP Go SDK call the
// ide tools of a real `coditect mcp`; the editor is a real LSP client
// (ide/vscode/test/bridge_editor.mjs on Node's vscode-jsonrpc, or raw
// frames for a plain LSP client) answering through a real `coditect ide`
// on the same store.

// bridgeFixture is the fixture workspace's Go file.
const bridgeFixture = `package main

import "fmt"

func main() {
	fmt.Println(greet("world"))
}

// greet says hello.
func greet(name string) string {
	return "hello, " + name
}
`

// startBridgeEditor runs bridge_editor.mjs, the editor of user in ws,
// until it is ready.
func startBridgeEditor(t testing.TB, ctx context.Context, env []string, bin, store, tenantID, user, ws, share string) *nodeProc {
	t.Helper()
	node := needNode(t, "vscode-jsonrpc")
	e := startNode(t, ctx, node, extensionDir(), env, filepath.Join(extensionDir(), "test", "bridge_editor.mjs"), bin, store, tenantID, user, ws, share)
	e.next(func(l string) bool { return l == "ready" })
	return e
}

// request returns the editor's record of its next answered request.
func (e *nodeProc) request(kind string) map[string]any {
	e.t.Helper()
	var m map[string]any
	e.next(func(l string) bool {
		m = nil
		return json.Unmarshal([]byte(l), &m) == nil && m["kind"] == kind
	})
	return m
}

// startAgent is the agent builder of user in ws, with a session there.
func startAgent(t testing.TB, ctx context.Context, env []string, bin, store, tenantID, user, ws string) *mcpAgent {
	t.Helper()
	a := startMCP(t, ctx, env, bin, "--store", store, "--tenant", tenantID, "--user", user, "--toolsets", "core,files,ide",
		"--agent", "builder", "--model", "qwen2.5-coder-7b")
	a.sid = a.ok("session_start", map[string]any{"title": "bridge", "workspace": ws})["session_id"].(string)
	return a
}

// bridgeSetup is a store, a fixture workspace and the processes' env.
func bridgeSetup(t testing.TB) (bin, store, ws string, env []string) {
	t.Helper()
	bin = testbin.Coditect(t)
	ws, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store = "sqlite://" + filepath.Join(t.TempDir(), "coditect.db")
	if err := os.WriteFile(filepath.Join(ws, "main.go"), []byte(bridgeFixture), 0o644); err != nil {
		t.Fatal(err)
	}
	env = append(os.Environ(), "CODITECT_TOKEN=", "XDG_DATA_HOME="+t.TempDir())
	return bin, store, ws, env
}

// ideRecords returns the bridge's request and answer records left in a
// tenant of the store.
func ideRecords(t *testing.T, ctx context.Context, store, tenantID string) int {
	t.Helper()
	s, err := storage.Open(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sp, err := keyspace.Tenant(tenantID)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = s.View(ctx, func(tx kv.ReadTx) error {
		n = 0
		for _, sub := range []keyspace.Subspace{sp.AllIDERequests(), sp.AllIDEAnswers()} {
			b, e := sub.Range()
			it := tx.GetRange(b, e, kv.RangeOptions{})
			for it.Next() {
				n++
			}
			if err := it.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// ideOutcomes returns "user:kind:outcome" of the ide.request events of a
// tenant, oldest first.
func ideOutcomes(t *testing.T, ctx context.Context, store, tenantID string) []string {
	t.Helper()
	s, err := storage.Open(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sc, err := tenant.NewDirectory(s, "test").LookupLocal(ctx, tenantID, "ada")
	if err != nil {
		t.Fatal(err)
	}
	page, err := sc.Log().Query(ctx, audit.Query{Filter: audit.Filter{Kind: "ide.request"}, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range page.Events {
		out = append(out, fmt.Sprintf("%s:%s:%s", ev.User, ev.Attrs["kind"], ev.Attrs["outcome"]))
	}
	return out
}

// TestBridgeE2E calls each ide tool through `coditect mcp` and the
// editor's answer through `coditect ide`; then the deadline, another
// user's agent without sharing, and another tenant.
func TestBridgeE2E(t *testing.T) {
	bin, store, ws, env := bridgeSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*ideWait)
	defer cancel()

	// No editor yet: the agent is told at once.
	a := startAgent(t, ctx, env, bin, store, "t1", "ada", ws)
	start := time.Now()
	a.fail("ide_context", nil, "no editor of ada is connected to project", "open it in VS Code with the Coditect extension")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("no editor took %s", d)
	}

	ed := startBridgeEditor(t, ctx, env, bin, store, "t1", "ada", ws, "noshare")

	m, text := a.okText("ide_definition", map[string]any{"path": "main.go", "line": 6, "column": 15})
	if r := ed.request("definition"); r["uri"] != "main.go" || r["agent"] != "builder (qwen2.5-coder-7b)" || r["user"] != "ada" ||
		fmt.Sprint(r["position"]) != "map[character:14 line:5]" {
		t.Errorf("the editor saw %v", r)
	}
	locs, _ := m["locations"].([]any)
	if len(locs) != 1 || fmt.Sprint(locs[0]) != "map[column:6 end_column:11 end_line:10 line:10 path:main.go]" {
		t.Fatalf("ide_definition = %v\n%s", m, text)
	}
	m, text = a.okText("ide_references", map[string]any{"symbol": "greet", "limit": 2})
	if locs, _ := m["locations"].([]any); len(locs) != 2 || m["more"] != float64(1) || !strings.Contains(text, "1 more not shown") {
		t.Fatalf("ide_references = %v\n%s", m, text)
	}
	if m = a.ok("ide_hover", map[string]any{"symbol": "greet"}); !strings.Contains(fmt.Sprint(m["contents"]), "func greet(name string) string") {
		t.Fatalf("ide_hover = %v", m)
	}
	m = a.ok("ide_symbols", map[string]any{"path": "main.go"})
	if syms, _ := m["symbols"].([]any); len(syms) != 2 || syms[1].(map[string]any)["name"] != "greet" || syms[1].(map[string]any)["kind"] != "function" {
		t.Fatalf("ide_symbols = %v", m)
	}
	if m = a.ok("ide_symbols", map[string]any{"query": "gre"}); len(m["symbols"].([]any)) != 1 {
		t.Fatalf("ide_symbols query = %v", m)
	}
	m = a.ok("ide_context", nil)
	if act, _ := m["active"].(map[string]any); act["path"] != "main.go" || act["text"] != "main" || len(m["editors"].([]any)) != 1 {
		t.Fatalf("ide_context = %v", m)
	}
	if m = a.ok("ide_open", map[string]any{"path": "main.go", "line": 10, "message": "is the greeting right?"}); m["shown"] != true {
		t.Fatalf("ide_open = %v", m)
	}
	// Diagnostics after the agent's write: the editor is asked to wait for
	// the written content.
	a.ok("fs_write", map[string]any{"path": "bad.go", "content": "package main\n\nvar x = undefinedThing\n"})
	m, text = a.okText("ide_diagnostics", nil)
	if r := ed.request("diagnostics"); r["waitFor"] != float64(1) {
		t.Errorf("the editor was asked to wait for %v writes, want 1", r["waitFor"])
	}
	if items, _ := m["items"].([]any); len(items) != 1 || !strings.Contains(text, "bad.go:3:9 error: undefined: undefinedThing") {
		t.Fatalf("ide_diagnostics = %v\n%s", m, text)
	}

	// Deadlines: an editor that never answers costs the timeout, leaves
	// no record, and the next request is answered.
	start = time.Now()
	a.fail("ide_hover", map[string]any{"symbol": "hang", "timeout_s": 1}, "did not answer within 1s")
	if d := time.Since(start); d < time.Second || d > 4*time.Second {
		t.Errorf("the unanswered request took %s, want about 1s", d)
	}
	// The editor was told to stop working on it ($/cancelRequest).
	ed.next(func(l string) bool { return strings.HasPrefix(l, `{"cancelled":"hover"`) })
	if n := ideRecords(t, ctx, store, "t1"); n != 0 {
		t.Errorf("%d request records left behind", n)
	}
	a.ok("ide_hover", map[string]any{"symbol": "greet"})

	// Another user's agent: nothing without sharing.
	b := startAgent(t, ctx, env, bin, store, "t1", "bob", ws)
	b.fail("ide_context", nil, "sharing is off")
	// Another tenant whose user has the same name: not even a project.
	c := startAgent(t, ctx, env, bin, store, "t2", "ada", t.TempDir())
	c.fail("ide_context", nil, "no editor of ada is connected")

	got := strings.Join(ideOutcomes(t, ctx, store, "t1"), " ")
	want := "ada:context:no_editor ada:definition:answered ada:references:answered ada:hover:answered ada:symbols:answered ada:symbols:answered " +
		"ada:context:answered ada:open:answered ada:diagnostics:answered ada:hover:timeout ada:hover:answered bob:context:refused"
	if got != want {
		t.Errorf("audit of tenant t1:\n%s\nwant\n%s", got, want)
	}
	if got := strings.Join(ideOutcomes(t, ctx, store, "t2"), " "); got != "ada:context:no_editor" {
		t.Errorf("audit of tenant t2: %s", got)
	}
}

// TestBridgeSharedE2E: with sharing on, another user's agent is answered
// by the human's editor.
func TestBridgeSharedE2E(t *testing.T) {
	bin, store, ws, env := bridgeSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*ideWait)
	defer cancel()
	startBridgeEditor(t, ctx, env, bin, store, "t1", "ada", ws, "share")
	b := startAgent(t, ctx, env, bin, store, "t1", "bob", ws)
	if m, text := b.okText("ide_hover", map[string]any{"symbol": "greet"}); !strings.Contains(text, "from the editor of ada") {
		t.Fatalf("ide_hover = %v\n%s", m, text)
	}
}

// TestBridgePlainLSPE2E: a plain LSP client (no bridge capability, as
// Neovim) cannot answer ide_definition, which fails clearly, and shows
// ide_open through window/showMessageRequest, then window/showDocument
// without taking focus when the human clicks Open.
func TestBridgePlainLSPE2E(t *testing.T) {
	bin, store, ws, env := bridgeSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*ideWait)
	defer cancel()
	p := startIDE(t, bin, store, ws)
	p.send(map[string]any{"id": 1, "method": "initialize", "params": map[string]any{"processId": nil, "rootUri": fileURL(ws),
		"clientInfo":   map[string]any{"name": "Neovim", "version": "0.7.2"},
		"capabilities": map[string]any{"window": map[string]any{"showDocument": map[string]any{"support": true}}}}})
	p.response(1)
	p.send(map[string]any{"method": "initialized", "params": map[string]any{}})
	p.send(map[string]any{"id": 2, "method": "workspace/executeCommand", "params": map[string]any{"command": "coditect.status"}})
	p.response(2)

	a := startAgent(t, ctx, env, bin, store, "t1", "ada", ws)
	a.fail("ide_definition", map[string]any{"symbol": "greet"},
		"the editor of ada (Neovim 0.7.2, plain LSP) cannot answer ide_definition; use VS Code with the Coditect extension")
	if m := a.ok("ide_open", map[string]any{"path": "main.go", "line": 10, "message": "look here"}); m["shown"] != true {
		t.Fatalf("ide_open = %v", m)
	}
	req := p.next(func(m map[string]any) bool { return m["method"] == "window/showMessageRequest" })
	params := req["params"].(map[string]any)
	if msg := params["message"].(string); !strings.Contains(msg, "builder (qwen2.5-coder-7b) (for ada) asks you to look at main.go:10") || !strings.Contains(msg, "look here") {
		t.Errorf("showMessageRequest %v", params)
	}
	p.send(map[string]any{"id": req["id"], "result": map[string]any{"title": "Open"}})
	doc := p.next(func(m map[string]any) bool { return m["method"] == "window/showDocument" })
	dp := doc["params"].(map[string]any)
	if dp["uri"] != fileURL(filepath.Join(ws, "main.go")) || dp["takeFocus"] != false {
		t.Errorf("showDocument %v", dp)
	}
	p.send(map[string]any{"id": doc["id"], "result": map[string]any{"success": true}})
	p.send(map[string]any{"id": 3, "method": "shutdown"})
	p.response(3)
	p.send(map[string]any{"method": "exit"})
	if code := p.wait(); code != 0 {
		t.Errorf("exit code %d", code)
	}
	// Gone with the editor: the agent is told at once.
	a.fail("ide_open", map[string]any{"path": "main.go"}, "no editor of ada is connected")
}

// TestBridgeKilledEditorE2E: an editor whose `coditect ide` is killed
// (no shutdown, nothing cleared) costs an agent at most its timeout, and
// within the presence's lifetime (5 s) counts as not connected.
func TestBridgeKilledEditorE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a presence to lapse (5 s)")
	}
	bin, store, ws, env := bridgeSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*ideWait)
	defer cancel()
	p := startHoverEditor(t, bin, store, ws)
	a := startAgent(t, ctx, env, bin, store, "t1", "ada", ws)
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
	killed := time.Now()
	for {
		start := time.Now()
		_, text, isErr := a.call("ide_hover", map[string]any{"symbol": "greet", "timeout_s": 1})
		if !isErr {
			t.Fatalf("a killed editor answered: %s", text)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("a call to the killed editor took %s", d)
		}
		if strings.Contains(text, "no editor of ada is connected") {
			break
		}
		if !strings.Contains(text, "did not answer within 1s") {
			t.Fatalf("unexpected error: %s", text)
		}
		if time.Since(killed) > 10*time.Second {
			t.Fatalf("the killed editor still counts %s later", time.Since(killed))
		}
	}
	t.Logf("the killed editor stopped counting after %s", time.Since(killed).Round(100*time.Millisecond))
	if n := ideRecords(t, ctx, store, "t1"); n != 0 {
		t.Errorf("%d request records left behind", n)
	}
}

// startHoverEditor starts a `coditect ide` whose client declares the
// bridge for hover only and never answers it, and waits until the server
// is running (its editor is announced on initialized).
func startHoverEditor(t *testing.T, bin, store, ws string) *ideProc {
	t.Helper()
	p := startIDE(t, bin, store, ws)
	p.send(map[string]any{"id": 1, "method": "initialize", "params": map[string]any{"processId": nil, "rootUri": fileURL(ws),
		"capabilities": map[string]any{"experimental": map[string]any{"coditect": map[string]any{"bridge": map[string]any{"kinds": []string{"hover"}}}}}}})
	p.response(1)
	p.send(map[string]any{"method": "initialized", "params": map[string]any{}})
	p.send(map[string]any{"id": 2, "method": "workspace/executeCommand", "params": map[string]any{"command": "coditect.status"}})
	p.response(2)
	return p
}
