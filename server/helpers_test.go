package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/tenant"
)

// The two protocol eras a client may speak.
const (
	eraLegacy = "2025-11-25" // initialize handshake
	eraModern = "2026-07-28" // server/discover, per-request _meta
)

// coreTools are the tools of the default toolset.
var coreTools = []string{"audit_query", "note", "session_end", "session_list", "session_start", "whoami"}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// client is an official-SDK MCP client session plus the tools it listed.
type client struct {
	t     testing.TB
	cs    *mcp.ClientSession
	tools map[string]*mcp.Tool
}

func connect(t testing.TB, transport mcp.Transport, name, era string) *client {
	t.Helper()
	ctx := testContext(t)
	c := mcp.NewClient(&mcp.Implementation{Name: name, Version: "9.9.9"}, nil)
	cs, err := c.Connect(ctx, transport, &mcp.ClientSessionOptions{ProtocolVersion: era})
	if err != nil {
		t.Fatalf("connect (%s): %v", era, err)
	}
	t.Cleanup(func() { cs.Close() })
	if got := cs.InitializeResult().ProtocolVersion; got != era {
		t.Fatalf("negotiated protocol %s, want %s", got, era)
	}
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl := &client{t: t, cs: cs, tools: map[string]*mcp.Tool{}}
	for _, tool := range res.Tools {
		cl.tools[tool.Name] = tool
	}
	return cl
}

// names returns the listed tool names, sorted.
func (c *client) names() []string {
	var out []string
	for n := range c.tools {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// call calls a tool and returns its structured content (nil for a tool
// error), its text and whether it was a tool error. A successful result is
// checked against the tool's listed output schema.
func (c *client) call(name string, args any) (map[string]any, string, bool) {
	c.t.Helper()
	res, err := c.cs.CallTool(testContext(c.t), &mcp.CallToolParams{Name: name, Arguments: args})
	return c.result(name, res, err)
}

// result interprets a tools/call result as call does; tests that call from
// several goroutines at once collect the raw results and interpret them on
// the test's goroutine.
func (c *client) result(name string, res *mcp.CallToolResult, err error) (map[string]any, string, bool) {
	c.t.Helper()
	if err != nil {
		c.t.Fatalf("%s: protocol error %v", name, err)
	}
	var text []string
	for _, ct := range res.Content {
		if tc, ok := ct.(*mcp.TextContent); ok {
			text = append(text, tc.Text)
		}
	}
	if len(text) != 1 || text[0] == "" {
		c.t.Errorf("%s: want exactly one non-empty text block, got %q", name, text)
	}
	if res.IsError {
		if res.StructuredContent != nil {
			c.t.Errorf("%s: a tool error carries structured content", name)
		}
		return nil, strings.Join(text, "\n"), true
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		c.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		c.t.Fatalf("%s: structuredContent %s is not an object", name, b)
	}
	tool := c.tools[name]
	if tool == nil || tool.OutputSchema == nil {
		c.t.Fatalf("%s: no output schema listed", name)
	}
	sb, _ := json.Marshal(tool.OutputSchema)
	var s jsonschema.Schema
	if err := json.Unmarshal(sb, &s); err != nil {
		c.t.Fatal(err)
	}
	rs, err := s.Resolve(nil)
	if err != nil {
		c.t.Fatalf("%s: output schema: %v", name, err)
	}
	if err := rs.Validate(m); err != nil {
		c.t.Errorf("%s: structuredContent %s violates the output schema: %v", name, b, err)
	}
	return m, strings.Join(text, "\n"), false
}

// Tool hints as the listing must state them.
var (
	readOnlyTools = map[string]bool{"whoami": true, "session_list": true, "audit_query": true,
		"agents_list": true, "task_list": true, "fs_read": true, "fs_list": true, "fs_search": true, "fs_find": true,
		"ide_diagnostics": true, "ide_definition": true, "ide_references": true, "ide_hover": true, "ide_symbols": true, "ide_context": true}
	destructiveTools = map[string]bool{"fs_write": true, "fs_edit": true, "fs_move": true, "fs_delete": true}
	// idempotentTools besides the read-only ones: calling again with the
	// same arguments changes nothing more.
	idempotentTools = map[string]bool{"agent_update": true, "session_join": true, "lease_release": true,
		"inbox": true, "fs_write": true, "fs_edit": true, "fs_move": true, "fs_delete": true, "ide_open": true}
)

// checkListing checks the listed tools and their annotations.
func (c *client) checkListing(want []string) {
	c.t.Helper()
	if got := c.names(); !slices.Equal(got, want) {
		c.t.Fatalf("tools %v, want %v", got, want)
	}
	for name, tool := range c.tools {
		a := tool.Annotations
		ro := readOnlyTools[name]
		if a == nil || a.DestructiveHint == nil || a.OpenWorldHint == nil || *a.OpenWorldHint || *a.DestructiveHint != destructiveTools[name] ||
			a.ReadOnlyHint != ro || a.IdempotentHint != (ro || idempotentTools[name]) {
			c.t.Errorf("%s: annotations %+v", name, a)
		}
		if tool.Description == "" || tool.InputSchema == nil {
			c.t.Errorf("%s: no description or input schema", name)
		}
	}
}

// exercise calls every core tool once, as a well-behaved agent would, in
// a session in the directory ws, and returns the session id it worked in.
func (c *client) exercise(wantTenant, wantUser, ws string) string {
	c.t.Helper()
	c.checkListing(coreTools)
	m, _, isErr := c.call("whoami", map[string]any{})
	if isErr || m["tenant"] != wantTenant || m["user"] != wantUser || m["agent_id"] == nil || m["client"] == nil {
		c.t.Fatalf("whoami = %v", m)
	}
	m, text, isErr := c.call("session_start", map[string]any{"title": "Fix the login redirect", "workspace": ws})
	if isErr {
		c.t.Fatalf("session_start: %s", text)
	}
	sid := m["session_id"].(string)
	if _, text, isErr = c.call("note", map[string]any{"text": "302 not 301", "kind": "decision", "session_id": sid}); isErr {
		c.t.Fatalf("note: %s", text)
	}
	if m, text, isErr = c.call("session_list", map[string]any{"state": "open"}); isErr || len(m["sessions"].([]any)) == 0 {
		c.t.Fatalf("session_list: %v %s", m, text)
	}
	if m, text, isErr = c.call("audit_query", map[string]any{"session_id": sid}); isErr || len(m["events"].([]any)) != 2 {
		c.t.Fatalf("audit_query: %v %s", m, text)
	}
	if m, text, isErr = c.call("session_end", map[string]any{"session_id": sid, "status": "completed"}); isErr || m["state"] != "ended" {
		c.t.Fatalf("session_end: %v %s", m, text)
	}
	return sid
}

// events returns the tenant's events of kind, oldest first.
func events(t testing.TB, sc *tenant.Scope, f audit.Filter) []audit.Event {
	t.Helper()
	var out []audit.Event
	q := audit.Query{Filter: f, Limit: audit.MaxLimit}
	for {
		p, err := sc.Log().Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Events...)
		if p.Next == "" {
			return out
		}
		q.Cursor = p.Next
	}
}

// checkAudit checks that the tenant's log holds one tool.called event per
// core tool, each attributed to one agent registered for clientName, and
// that the session-bound calls are indexed under sid.
func checkAudit(t testing.TB, sc *tenant.Scope, clientName, sid string) {
	t.Helper()
	calls := events(t, sc, audit.Filter{Kind: "tool.called"})
	byTool := map[string]int{}
	agents := map[string]bool{}
	for _, ev := range calls {
		byTool[ev.Attrs["tool"].(string)]++
		agents[ev.Agent] = true
		if ev.Attrs["client"] != clientName || ev.Attrs["outcome"] != "ok" || ev.Attrs["duration_ms"] == nil {
			t.Errorf("tool.called %+v", ev)
		}
	}
	for _, name := range coreTools {
		if byTool[name] != 1 {
			t.Errorf("%d tool.called events for %s, want 1 (%v)", byTool[name], name, byTool)
		}
	}
	if len(agents) != 1 || agents[""] {
		t.Errorf("tool calls attributed to agents %v, want one registered agent", agents)
	}
	reg := events(t, sc, audit.Filter{Kind: "agent.registered"})
	if len(reg) == 0 || reg[0].Attrs["client"] != clientName {
		t.Errorf("agent.registered events %+v", reg)
	}
	inSession := events(t, sc, audit.Filter{Kind: "tool.called", Session: sid})
	if len(inSession) != 3 { // note, audit_query, session_end
		t.Errorf("%d tool calls indexed under the session, want 3", len(inSession))
	}
}

// syncBuffer is a bytes.Buffer safe for a subprocess's writes and the
// test's reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

// answerLine is one answer a stdio server writes, as the tests read it.
type answerLine struct {
	ID     json.RawMessage `json:"id"`
	Result struct {
		IsError bool `json:"isError"`
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
		StructuredContent map[string]any `json:"structuredContent"`
	} `json:"result"`
	Error json.RawMessage `json:"error"`
}

// text is the answer's text content.
func (a answerLine) text() string {
	var b strings.Builder
	for _, c := range a.Result.Content {
		b.WriteString(c.Text)
	}
	return b.String()
}
