package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/tools"
)

// The protocol eras agents speak; they alternate, so both stay under load.
var eras = []string{"2025-11-25", "2026-07-28"}

// callTimeout bounds one tool call; a call that takes longer is a
// protocol error the test reports.
const callTimeout = 30 * time.Second

// agent is one simulated agent: an MCP client session (its own `coditect
// mcp` process over stdio, or a client of the daemon's /mcp) and the
// ledger of what it was told, which the audit check compares with the log.
type agent struct {
	name      string
	transport string // "stdio" or "http"
	cs        *mcp.ClientSession
	cmd       *exec.Cmd   // the stdio process
	stderr    *tailBuffer // its stderr
	id        string      // agent_id, from whoami
	rng       *rand.Rand
	lat       *hists // per tool, shared by all agents

	// The ledger, written by the agent's goroutine only.
	calls   map[string]int // callKey(tool, ok, args) -> calls the client saw end so
	unknown map[string]int // callKey(tool, true, args) of calls that ended in a protocol error
	muts    map[string]int // mutKey(kind, key) -> mutation events the log must hold
	errs    []string       // protocol errors, for the report
	ok, bad int            // tool results: success, tool error

	// Loop state.
	seq      int
	sid      string  // the open work session
	leaseRes string  // the held lease
	leaseTok float64 // its fencing token, 0 when none
	ack      []string
	task     map[string]any // a task seen open, to claim
	claimed  string         // the claimed task
	claimVer float64
}

func newAgent(name, transport string, seed uint64, lat *hists) *agent {
	return &agent{name: name, transport: transport, lat: lat, rng: rand.New(rand.NewPCG(seed, 0x50a4)),
		calls: map[string]int{}, unknown: map[string]int{}, muts: map[string]int{}}
}

// connectStdio starts `coditect mcp` for a and connects to it.
func (a *agent) connectStdio(ctx context.Context, e *env, era string) error {
	cmd := exec.Command(e.bin, "mcp", "--tenant", soakTenant, "--user", soakUser, "--agent", a.name, "--toolsets", "core,coord")
	cmd.Env = e.environ()
	a.stderr = newTailBuffer(16 << 10)
	cmd.Stderr = a.stderr
	a.cmd = cmd
	return a.connect(ctx, &mcp.CommandTransport{Command: cmd}, era)
}

// connectHTTP connects a to the daemon's /mcp with the bearer token.
func (a *agent) connectHTTP(ctx context.Context, url string, hc *http.Client, era string) error {
	return a.connect(ctx, &mcp.StreamableClientTransport{Endpoint: url + "/mcp", HTTPClient: hc, MaxRetries: -1}, era)
}

func (a *agent) connect(ctx context.Context, t mcp.Transport, era string) error {
	c := mcp.NewClient(&mcp.Implementation{Name: a.name, Version: "soak"}, nil)
	cs, err := c.Connect(ctx, t, &mcp.ClientSessionOptions{ProtocolVersion: era})
	if err != nil {
		return fmt.Errorf("%s: connect: %w", a.name, err)
	}
	a.cs = cs
	m, ok := a.call(ctx, "whoami", map[string]any{})
	if !ok || m["agent_id"] == nil {
		return fmt.Errorf("%s: whoami = %v, %v", a.name, m, a.errs)
	}
	a.id = m["agent_id"].(string)
	return nil
}

// callKey names a call in the ledger: the tool, whether it succeeded and
// its arguments as the audit log records them (redacted, cut, canonical).
func callKey(tool string, ok bool, args string) string {
	return fmt.Sprintf("%s\x00%t\x00%s", tool, ok, args)
}

func mutKey(kind, key string) string { return kind + "\x00" + key }

// recordedArgs is args as a tool.called event holds them.
func recordedArgs(args map[string]any) string {
	b, err := json.Marshal(args)
	if err != nil {
		panic(err)
	}
	return canonical(tools.RedactArgs(b))
}

// canonical encodes a decoded JSON value with sorted keys; numbers decoded
// with UseNumber keep their literal form.
func canonical(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// call calls a tool, records it in the ledger and the latency histogram,
// and returns its structured content and whether it succeeded.
func (a *agent) call(ctx context.Context, tool string, args map[string]any) (map[string]any, bool) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	start := time.Now()
	res, err := a.cs.CallTool(cctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	d := time.Since(start)
	rec := recordedArgs(args)
	if err != nil {
		a.unknown[callKey(tool, true, rec)]++
		a.errs = append(a.errs, fmt.Sprintf("%s %s: %v", a.name, tool, err))
		return nil, false
	}
	a.lat.get(tool).add(d)
	a.calls[callKey(tool, !res.IsError, rec)]++
	if res.IsError {
		a.bad++
		return nil, false
	}
	a.ok++
	var m map[string]any
	if b, err := json.Marshal(res.StructuredContent); err == nil {
		json.Unmarshal(b, &m)
	}
	return m, true
}

// run calls tools, one per tick, until it made max calls or ctx ends.
func (a *agent) run(ctx context.Context, every time.Duration, max int, peers []string) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := range max {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		a.step(ctx, i, peers)
	}
}

// step is one call of a work cycle that reads like an agent's: open a
// session, note, take, renew and drop a lease on a contended resource,
// message a peer, read and ack the inbox, create a task, claim one of the
// open ones and finish it, query the log, list sessions and agents, end
// the session. Every free-text argument carries the agent's name and a
// sequence number, so the mutation events are told apart exactly.
func (a *agent) step(ctx context.Context, i int, peers []string) {
	a.seq++
	marker := fmt.Sprintf("%s#%d", a.name, a.seq)
	switch i % 15 {
	case 0:
		if m, ok := a.call(ctx, "session_start", map[string]any{"title": "soak " + marker, "project": soakProject}); ok {
			a.sid = m["session_id"].(string)
			a.muts[mutKey("session.started", a.sid)]++
		}
	case 1:
		args := map[string]any{"text": "soak note " + marker}
		if a.sid != "" {
			args["session_id"] = a.sid
		}
		if _, ok := a.call(ctx, "note", args); ok {
			a.muts[mutKey("note.added", args["text"].(string))]++
		}
	case 2:
		res := fmt.Sprintf("soak/shared-%d.go", a.rng.IntN(8))
		if m, ok := a.call(ctx, "lease_acquire", map[string]any{"resource": res, "project": soakProject, "ttl_seconds": 30}); ok {
			a.leaseRes, a.leaseTok = res, m["token"].(float64)
			a.muts[mutKey("lease.acquired", res)]++
		}
	case 3:
		if a.leaseTok == 0 {
			a.call(ctx, "audit_query", map[string]any{"limit": 5})
			return
		}
		if _, ok := a.call(ctx, "lease_renew", map[string]any{"resource": a.leaseRes, "project": soakProject, "token": a.leaseTok, "ttl_seconds": 60}); ok {
			a.muts[mutKey("lease.renewed", a.leaseRes)]++
		}
	case 4:
		if a.leaseTok == 0 {
			a.call(ctx, "agents_list", map[string]any{"liveness": "alive"})
			return
		}
		if m, ok := a.call(ctx, "lease_release", map[string]any{"resource": a.leaseRes, "project": soakProject, "token": a.leaseTok}); ok && m["released"] == true {
			a.muts[mutKey("lease.released", a.leaseRes)]++
		}
		a.leaseRes, a.leaseTok = "", 0
	case 5:
		subject := "soak " + marker
		to := peers[a.rng.IntN(len(peers))]
		if to == a.name {
			to = "all"
		}
		if _, ok := a.call(ctx, "message_send", map[string]any{"to": to, "subject": subject, "body": "ping from " + a.name}); ok {
			a.muts[mutKey("message.sent", subject)]++
		}
	case 6:
		args := map[string]any{"limit": 20}
		if len(a.ack) > 0 {
			args["ack"] = a.ack
		}
		m, ok := a.call(ctx, "inbox", args)
		a.ack = nil
		if !ok {
			return
		}
		if n, _ := m["acked"].(float64); n > 0 {
			a.muts[mutKey("message.acked", "")]++
		}
		for _, msg := range m["messages"].([]any) {
			a.ack = append(a.ack, msg.(map[string]any)["message_id"].(string))
		}
	case 7:
		if m, ok := a.call(ctx, "task_create", map[string]any{"title": "soak task " + marker, "description": "made by the soak test"}); ok {
			a.muts[mutKey("task.created", m["task_id"].(string))]++
		}
	case 8:
		a.task = nil
		if m, ok := a.call(ctx, "task_list", map[string]any{"state": "open", "limit": 5}); ok {
			if ts := m["tasks"].([]any); len(ts) > 0 {
				a.task = ts[a.rng.IntN(len(ts))].(map[string]any)
			}
		}
	case 9:
		if a.task == nil {
			a.call(ctx, "session_list", map[string]any{"mine": true, "limit": 5})
			return
		}
		id := a.task["task_id"].(string)
		if m, ok := a.call(ctx, "task_claim", map[string]any{"task_id": id, "version": a.task["version"]}); ok {
			a.claimed, a.claimVer = id, m["version"].(float64)
			a.muts[mutKey("task.claimed", id)]++
		}
	case 10:
		if a.claimed == "" {
			a.call(ctx, "whoami", map[string]any{})
			return
		}
		if _, ok := a.call(ctx, "task_update", map[string]any{"task_id": a.claimed, "version": a.claimVer, "state": "in_progress", "note": "soak " + marker}); ok {
			a.muts[mutKey("task.updated", a.claimed)]++
		}
		a.claimed = ""
	case 11:
		args := map[string]any{"limit": 10}
		if a.sid != "" {
			args["session_id"] = a.sid
		}
		a.call(ctx, "audit_query", args)
	case 12:
		a.call(ctx, "session_list", map[string]any{"state": "open", "limit": 5})
	case 13:
		a.call(ctx, "whoami", map[string]any{})
	case 14:
		if a.sid == "" {
			return
		}
		if _, ok := a.call(ctx, "session_end", map[string]any{"session_id": a.sid, "status": "completed"}); ok {
			a.muts[mutKey("session.ended", a.sid)]++
		}
		a.sid = ""
	}
}

// close ends the session; a stdio process exits once its stdin closes,
// after it committed its queued audit records, and must exit 0.
func (a *agent) close() error {
	if a.cs == nil {
		return nil
	}
	err := a.cs.Close()
	if a.cmd != nil {
		if ps := a.cmd.ProcessState; ps == nil || !ps.Success() {
			return fmt.Errorf("%s: coditect mcp exited with %v (%v); stderr:\n%s", a.name, ps, err, a.stderr)
		}
		return nil
	}
	return err
}

// bearer is an http.Client that presents secret on every request, with a
// connection pool as large as the number of agents sharing it.
func bearer(secret string, conns int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conns
	return &http.Client{Transport: bearerTransport{secret: secret, base: tr}}
}

type bearerTransport struct {
	secret string
	base   http.RoundTripper
}

func (t bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.secret)
	return t.base.RoundTrip(r)
}

// agentSet runs the agents and merges what they report.
type agentSet []*agent

func (as agentSet) names() []string {
	var out []string
	for _, a := range as {
		out = append(out, a.name)
	}
	return out
}

func (as agentSet) run(ctx context.Context, every time.Duration, max int) {
	var wg sync.WaitGroup
	peers := as.names()
	for _, a := range as {
		wg.Go(func() { a.run(ctx, every, max, peers) })
	}
	wg.Wait()
}

func (as agentSet) errors() []string {
	var out []string
	for _, a := range as {
		out = append(out, a.errs...)
	}
	return out
}
