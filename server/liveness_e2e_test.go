package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/server"
	"github.com/coditect/coditect/server/servertest"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/webview"
)

// modelSession starts a session of c's for the agent name and model, as
// a model behind a host that speaks for several does, and returns its id.
func modelSession(t *testing.T, c *client, ws, name, model string) string {
	t.Helper()
	m, text := c.ok("session_start", map[string]any{"title": "work of " + name, "workspace": ws, "agent": name, "model": model})
	if !strings.Contains(text, "as agent "+name) {
		t.Errorf("session_start text %q does not say it acts as %s", text, name)
	}
	return m["session_id"].(string)
}

// whoIn returns the agent id and name whoami shows for session sid.
func whoIn(t *testing.T, c *client, sid string) (id, name, model string) {
	t.Helper()
	m, _ := c.ok("whoami", map[string]any{"session_id": sid})
	id, _ = m["agent_id"].(string)
	name, _ = m["agent_name"].(string)
	model, _ = m["model"].(string)
	return id, name, model
}

// TestTwoModelsOneProcessE2E: one `coditect mcp` process (as LM Studio
// runs one per mcp.json entry for all its chats) carries two models, each
// with its own session started with its agent name and model. Every call
// that passes a session's id acts as that session's agent: whoami, the
// tool.called events, the lease fs_write takes; the second model is
// refused on the file the first leased, with the first's name and id. A
// call without a session_id acts as the host's own agent, and a session
// handle of another client's agent does not make it act as that agent.
func TestTwoModelsOneProcessE2E(t *testing.T) {
	e := newStdioEnv(t)
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "auth.go"), []byte("package auth\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, _ := e.command(t, nil, "--tenant", "acme", "--user", "alice", "--toolsets", "all")
	host := connect(t, &mcp.CommandTransport{Command: cmd}, "lmstudio", eraModern)
	hostID := host.agentID()

	qwenSID := modelSession(t, host, ws, "qwen-coder", "qwen2.5-coder-7b")
	llamaSID := modelSession(t, host, ws, "llama-coder", "llama-3.1-8b")
	qwenID, qwenName, qwenModel := whoIn(t, host, qwenSID)
	llamaID, llamaName, llamaModel := whoIn(t, host, llamaSID)
	if qwenName != "qwen-coder" || qwenModel != "qwen2.5-coder-7b" || llamaName != "llama-coder" || llamaModel != "llama-3.1-8b" {
		t.Fatalf("whoami in the sessions: %s %s (%s), %s %s (%s)", qwenID, qwenName, qwenModel, llamaID, llamaName, llamaModel)
	}
	if qwenID == llamaID || qwenID == hostID || llamaID == hostID {
		t.Fatalf("agents: host %s, qwen %s, llama %s: want three", hostID, qwenID, llamaID)
	}

	m, _ := host.ok("fs_write", map[string]any{"session_id": qwenSID, "path": "auth.go", "content": "package auth // qwen\n"})
	if m["lease_taken"] != true {
		t.Errorf("qwen's write took no lease: %v", m)
	}
	text := host.fail("fs_write", map[string]any{"session_id": llamaSID, "path": "auth.go", "content": "package auth // llama\n"},
		"qwen-coder", qwenID)
	t.Logf("llama refused: %s", text)
	if got, _ := os.ReadFile(filepath.Join(ws, "auth.go")); string(got) != "package auth // qwen\n" {
		t.Errorf("auth.go = %q after llama's refused write", got)
	}
	host.ok("lease_acquire", map[string]any{"session_id": llamaSID, "resource": "notes.md"})

	// Tasks too: qwen creates and claims one; llama may not move it.
	tm, _ := host.ok("task_create", map[string]any{"session_id": qwenSID, "title": "harden auth"})
	taskID := tm["task_id"].(string)
	tm, _ = host.ok("task_claim", map[string]any{"session_id": qwenSID, "task_id": taskID, "version": tm["version"]})
	if tm["assignee"] != qwenID {
		t.Errorf("task claimed through qwen's session is assigned to %v, want %s", tm["assignee"], qwenID)
	}
	host.fail("task_update", map[string]any{"session_id": llamaSID, "task_id": taskID, "version": tm["version"], "state": "done"}, qwenID)
	if mine, _ := host.ok("task_list", map[string]any{"session_id": qwenSID, "mine": true}); len(mine["tasks"].([]any)) != 1 {
		t.Errorf("qwen's tasks: %v, want the one it claimed", mine["tasks"])
	}
	if mine, _ := host.ok("task_list", map[string]any{"session_id": llamaSID, "mine": true}); len(mine["tasks"].([]any)) != 0 {
		t.Errorf("llama's tasks: %v, want none", mine["tasks"])
	}

	sc := e.local(t, "acme", "alice")
	if err := checkLeaseHolder(sc, "auth.go", qwenID); err != nil {
		t.Error(err)
	}
	if hs, err := lease.List(context.Background(), sc, llamaID); err != nil || len(hs) != 1 || !strings.HasSuffix(hs[0].Resource, "notes.md") {
		t.Errorf("llama's leases: %+v %v", hs, err)
	}
	// Every call is attributed to the agent its session_id speaks for.
	bySession := map[string]string{qwenSID: qwenID, llamaSID: llamaID}
	for sid, want := range bySession {
		for _, ev := range events(t, sc, audit.Filter{Session: sid}) {
			if ev.Agent != want {
				t.Errorf("%s event %s in session %s is attributed to %s, want %s", ev.Kind, ev.Summary, sid, ev.Agent, want)
			}
		}
	}
	byAgent := map[string]int{}
	for _, ev := range events(t, sc, audit.Filter{Kind: "lease.acquired"}) {
		byAgent[ev.Agent]++
	}
	if byAgent[qwenID] != 1 || byAgent[llamaID] != 1 || len(byAgent) != 2 {
		t.Errorf("lease.acquired events by agent: %v, want one of qwen %s and one of llama %s", byAgent, qwenID, llamaID)
	}
	// A call without a session_id is the host's own.
	if m, _ := host.ok("whoami", map[string]any{}); m["agent_id"] != hostID {
		t.Errorf("whoami without a session: %v, want the host agent %s", m["agent_id"], hostID)
	}

	// Another client of the same user passing qwen's handle acts as itself.
	cmd2, _ := e.command(t, nil, "--tenant", "acme", "--user", "alice", "--toolsets", "all")
	other := connect(t, &mcp.CommandTransport{Command: cmd2}, "claude-desktop", eraModern)
	if id, _, _ := whoIn(t, other, qwenSID); id != other.agentID() {
		t.Errorf("another client passing qwen's session acts as %s, want its own agent %s", id, other.agentID())
	}
	other.fail("fs_write", map[string]any{"session_id": qwenSID, "path": "auth.go", "content": "x"}, "qwen-coder")

	host.fail("session_start", map[string]any{"title": "t", "workspace": ws, "model": "m"}, `"model" goes with "agent"`)
}

// checkLeaseHolder reports whether the file rel of the only project is
// leased by agent want.
func checkLeaseHolder(sc *tenant.Scope, rel, want string) error {
	hs, err := lease.List(context.Background(), sc, want)
	if err != nil {
		return err
	}
	for _, h := range hs {
		if f, ok := project.ParseFile(h.Resource); ok && f.Rel == rel {
			return nil
		}
	}
	return &holderError{rel: rel, want: want, got: hs}
}

type holderError struct {
	rel, want string
	got       []lease.Holder
}

func (e *holderError) Error() string {
	b, _ := json.Marshal(e.got)
	return "no lease of " + e.want + " on " + e.rel + ": " + string(b)
}

// TestStdinEOFMarksOfflineE2E: when the host closes a `coditect mcp`
// process's stdin, the agents it acted as (the host's own and one it
// spoke for in a session) are offline at once, not "alive" for another
// TTL; agents_list and the REST API show them offline, and another agent
// takes over a lease of theirs at once (lease.reclaimed), without waiting
// for the lease to expire or the agent to go.
func TestStdinEOFMarksOfflineE2E(t *testing.T) {
	e := newStdioEnv(t)
	ws := t.TempDir()
	cmd, _ := e.command(t, nil, "--tenant", "acme", "--user", "alice", "--toolsets", "all")
	gone := connect(t, &mcp.CommandTransport{Command: cmd}, "lmstudio", eraModern)
	sid := modelSession(t, gone, ws, "qwen-coder", "qwen2.5-coder-7b")
	qwenID, _, _ := whoIn(t, gone, sid)
	hostID := gone.agentID()
	gone.ok("lease_acquire", map[string]any{"session_id": sid, "resource": "auth.go", "ttl_seconds": 3600})

	cmd2, _ := e.command(t, nil, "--tenant", "acme", "--user", "alice", "--agent", "watcher", "--toolsets", "all")
	watcher := connect(t, &mcp.CommandTransport{Command: cmd2}, "claude-desktop", eraModern)
	m, _ := watcher.ok("session_start", map[string]any{"title": "watch", "workspace": ws})
	wsid := m["session_id"].(string)
	watcher.fail("lease_acquire", map[string]any{"session_id": wsid, "resource": "auth.go"}, "qwen-coder")

	sc := e.local(t, "acme", "alice")
	closed := time.Now()
	if err := gone.cs.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	ctx := testContext(t)
	for _, id := range []string{hostID, qwenID} {
		if err := waitLiveness(ctx, sc, id, agent.Offline); err != nil {
			t.Fatalf("agent %s: %v", id, err)
		}
	}
	t.Logf("agents offline %v after stdin closed", time.Since(closed).Round(time.Millisecond))
	if n := len(events(t, sc, audit.Filter{Kind: "agent.offline"})); n != 2 {
		t.Errorf("%d agent.offline events, want 2", n)
	}

	list, text := watcher.ok("agents_list", map[string]any{})
	shown := map[string]string{}
	for _, a := range list["agents"].([]any) {
		am := a.(map[string]any)
		shown[am["agent_id"].(string)] = am["liveness"].(string)
	}
	if shown[hostID] != "offline" || shown[qwenID] != "offline" {
		t.Errorf("agents_list shows %v:\n%s", shown, text)
	}
	if got := restLiveness(t, e, sc); got[hostID] != "offline" || got[qwenID] != "offline" {
		t.Errorf("GET /api/v1/agents shows %v", got)
	}

	reclaimed := time.Now()
	watcher.ok("lease_acquire", map[string]any{"session_id": wsid, "resource": "auth.go"})
	t.Logf("lease of the offline agent reclaimed in %v", time.Since(reclaimed).Round(time.Millisecond))
	rec := events(t, sc, audit.Filter{Kind: "lease.reclaimed"})
	if len(rec) != 1 || !strings.Contains(rec[0].Summary, "holder offline") || !strings.Contains(rec[0].Summary, qwenID) {
		t.Errorf("lease.reclaimed events %+v", rec)
	}
}

// waitLiveness waits until agent id has liveness want, or ctx ends.
func waitLiveness(ctx context.Context, sc *tenant.Scope, id string, want agent.Liveness) error {
	var last agent.Agent
	for {
		a, err := agent.Get(ctx, sc, id)
		if err == nil && a.Liveness == want {
			return nil
		}
		last = a
		select {
		case <-ctx.Done():
			return &livenessError{want: want, got: last.Liveness}
		case <-time.After(5 * time.Millisecond):
		}
	}
}

type livenessError struct{ want, got agent.Liveness }

func (e *livenessError) Error() string {
	return "liveness " + string(e.got) + ", want " + string(e.want)
}

// restLiveness returns the agents' liveness by id as GET /api/v1/agents
// shows it to an admin of the tenant.
func restLiveness(t *testing.T, e *stdioEnv, sc *tenant.Scope) map[string]string {
	t.Helper()
	secret, _, err := sc.IssueToken(context.Background(), "alice", tenant.RoleAdmin, tenant.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(webview.New(e.dir, webview.Options{}))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/agents", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Agents []struct {
			ID       string `json:"id"`
			Liveness string `json:"liveness"`
		} `json:"agents"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/agents: %d %v", resp.StatusCode, err)
	}
	out := map[string]string{}
	for _, a := range body.Agents {
		out[a.ID] = a.Liveness
	}
	return out
}

// TestHTTPSessionEndMarksOffline: a legacy HTTP client that ends its MCP
// session (DELETE on close, as the official SDK does) takes its agents
// offline at once: the host's own and the one it spoke for in a session.
// A 2026-07-28 client, which speaks for a model of its own through a
// session handle as well, has no session to end; its agent stays alive
// until its TTL passes.
func TestHTTPSessionEndMarksOffline(t *testing.T) {
	ts := servertest.New(t, server.Options{Toolsets: []string{"all"}}, server.HTTPOptions{})
	secret := ts.Token(t, "acme", "alice", tenant.RoleMember)
	ws := t.TempDir()
	ts.Project(t, "acme", "app", ws)
	sc := ts.Scope(t, secret)

	legacy := connect(t, httpTransport(ts, secret), "legacy-host", eraLegacy)
	sid := modelSession(t, legacy, ws, "qwen-coder", "qwen2.5-coder-7b")
	qwenID, _, _ := whoIn(t, legacy, sid)
	hostID := legacy.agentID()
	modern := connect(t, httpTransport(ts, secret), "modern-host", eraModern)
	modernID := modern.agentID()
	// A token's principal speaks for several models as a local one does.
	llamaSID := modelSession(t, modern, ws, "llama-coder", "llama-3.1-8b")
	if id, name, _ := whoIn(t, modern, llamaSID); name != "llama-coder" || id == modernID || id == qwenID {
		t.Errorf("whoami in the modern client's session: %s %s", id, name)
	}

	closed := time.Now()
	if err := legacy.cs.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	if err := modern.cs.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	ctx := testContext(t)
	for _, id := range []string{hostID, qwenID} {
		if err := waitLiveness(ctx, sc, id, agent.Offline); err != nil {
			t.Fatalf("agent %s: %v", id, err)
		}
	}
	t.Logf("HTTP agents offline %v after the client closed", time.Since(closed).Round(time.Millisecond))
	if a, err := agent.Get(ctx, sc, modernID); err != nil || a.Liveness != agent.Alive {
		t.Errorf("the modern client's agent: %+v %v, want alive until its TTL", a, err)
	}

	// The host coming back is alive from its first call, also within the
	// heartbeat interval of its last beat before it left.
	back := connect(t, httpTransport(ts, secret), "legacy-host", eraLegacy)
	if id := back.agentID(); id != hostID {
		t.Fatalf("the host came back as %s, want %s", id, hostID)
	}
	if err := waitLiveness(ctx, sc, hostID, agent.Alive); err != nil {
		t.Errorf("the host back: %v", err)
	}
}

// TestBoundTokenSpeaksOnlyForItsAgent: a token bound to an agent cannot
// start a session for another agent, and nothing is registered for it.
func TestBoundTokenSpeaksOnlyForItsAgent(t *testing.T) {
	ts := servertest.New(t, server.Options{}, server.HTTPOptions{})
	ts.Token(t, "acme", "alice", tenant.RoleMember)
	ws := t.TempDir()
	ts.Project(t, "acme", "app", ws)
	secret, _, err := ts.Dir.IssueToken(context.Background(), "acme", "alice", tenant.RoleMember, tenant.TokenOptions{Agent: "ag_06H4E3JS1WP2HZGQ0RBPVH68XM"})
	if err != nil {
		t.Fatal(err)
	}
	c := connect(t, httpTransport(ts, secret), "bound-host", eraModern)
	c.fail("session_start", map[string]any{"title": "t", "workspace": ws, "agent": "qwen-coder", "model": "q"},
		"token is bound to agent ag_06H4E3JS1WP2HZGQ0RBPVH68XM", "leave agent out")
	as, err := agent.List(context.Background(), ts.Scope(t, secret), agent.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if a.Name == "qwen-coder" {
			t.Errorf("an agent was registered for the refused name: %+v", a)
		}
	}
}
