package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/server"
	"github.com/coditect/coditect/server/servertest"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/tenant"
)

func httpTransport(ts *servertest.Server, secret string) *mcp.StreamableClientTransport {
	return &mcp.StreamableClientTransport{Endpoint: ts.URL, HTTPClient: servertest.BearerClient(secret), MaxRetries: -1}
}

func TestHTTPBothEras(t *testing.T) {
	for _, era := range []string{eraLegacy, eraModern} {
		t.Run(era, func(t *testing.T) {
			ts := servertest.New(t, server.Options{HeartbeatEvery: -1}, server.HTTPOptions{})
			secret := ts.Token(t, "acme", "alice", tenant.RoleMember)
			ws := t.TempDir()
			ts.Project(t, "acme", "app", ws)
			c := connect(t, httpTransport(ts, secret), "http-client-"+era, era)
			sid := c.exercise("acme", "alice", ws)
			if err := ts.MCP.Flush(testContext(t)); err != nil {
				t.Fatal(err)
			}
			checkAudit(t, ts.Scope(t, secret), "http-client-"+era, sid)
		})
	}
}

// post sends one raw JSON-RPC request to the endpoint.
func post(t *testing.T, url string, header map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

func TestHTTPRefusals(t *testing.T) {
	ts := servertest.New(t, server.Options{}, server.HTTPOptions{AllowedOrigins: []string{"vscode-webview://*"}})
	secret := ts.Token(t, "acme", "alice", tenant.RoleMember)
	revoked := ts.Token(t, "acme", "mallory", tenant.RoleMember)
	sc := ts.Scope(t, revoked)
	if err := ts.Dir.RevokeToken(testContext(t), "acme", sc.Principal().TokenID); err != nil {
		t.Fatal(err)
	}
	before := len(events(t, ts.Scope(t, secret), audit.Filter{}))
	for _, c := range []struct {
		name       string
		header     map[string]string
		status     int
		wantBody   string
		wantHeader string
	}{
		{"no token", nil, 401, `Authorization: Bearer`, `Bearer realm="coditect"`},
		{"basic auth", map[string]string{"Authorization": "Basic YTpi"}, 401, "Unauthorized", `Bearer realm="coditect"`},
		{"unknown token", map[string]string{"Authorization": "Bearer cdt_nope"}, 401, "unknown or malformed token", `error="invalid_token"`},
		{"revoked token", map[string]string{"Authorization": "Bearer " + revoked}, 401, "revoked", `error="invalid_token"`},
		{"rebinding host", map[string]string{"Authorization": "Bearer " + secret, "Host": "evil.example:80"}, 403, "not a loopback name", ""},
		{"foreign origin", map[string]string{"Authorization": "Bearer " + secret, "Origin": "https://evil.example"}, 403, "Origin", ""},
		{"loopback origin", map[string]string{"Authorization": "Bearer " + secret, "Origin": "http://localhost:5173"}, 200, `"protocolVersion":"2025-11-25"`, ""},
		{"allowed origin", map[string]string{"Authorization": "Bearer " + secret, "Origin": "vscode-webview://abc123"}, 200, `"serverInfo"`, ""},
		{"no origin", map[string]string{"Authorization": "Bearer " + secret}, 200, `"instructions"`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := post(t, ts.URL, c.header, initialize)
			if resp.StatusCode != c.status || !strings.Contains(body, c.wantBody) {
				t.Fatalf("status %d body %q; want %d with %q", resp.StatusCode, body, c.status, c.wantBody)
			}
			if c.wantHeader != "" && !strings.Contains(resp.Header.Get("WWW-Authenticate"), c.wantHeader) {
				t.Errorf("WWW-Authenticate %q, want %q", resp.Header.Get("WWW-Authenticate"), c.wantHeader)
			}
			if c.status != 200 {
				var msg struct {
					JSONRPC string `json:"jsonrpc"`
					Error   struct {
						Code    int    `json:"code"`
						Message string `json:"message"`
					} `json:"error"`
				}
				if err := json.Unmarshal([]byte(body), &msg); err != nil || msg.JSONRPC != "2.0" || msg.Error.Code == 0 {
					t.Errorf("refusal body %q is not a JSON-RPC error", body)
				}
			}
		})
	}
	// The refused requests reached nothing.
	after := events(t, ts.Scope(t, secret), audit.Filter{})
	for _, ev := range after[before:] {
		if ev.User == "mallory" || ev.Kind == "tool.called" {
			t.Errorf("a refused request left %+v", ev)
		}
	}

	// The official client fails to connect without a token, in both eras.
	for _, era := range []string{eraLegacy, eraModern} {
		c := mcp.NewClient(&mcp.Implementation{Name: "anon", Version: "1"}, nil)
		_, err := c.Connect(testContext(t), &mcp.StreamableClientTransport{Endpoint: ts.URL, MaxRetries: -1}, &mcp.ClientSessionOptions{ProtocolVersion: era})
		if err == nil || !strings.Contains(err.Error(), "Unauthorized") {
			t.Errorf("%s: unauthenticated connect: %v", era, err)
		}
	}

	// An oversized body is refused before it is parsed.
	big := `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"` + strings.Repeat("a", server.DefaultMaxBody) + `"}}`
	resp, body := post(t, ts.URL, map[string]string{"Authorization": "Bearer " + secret}, big)
	if resp.StatusCode < 400 && !strings.Contains(body, "error") {
		t.Errorf("oversized body: %d %q", resp.StatusCode, body)
	}
}

func TestHTTPTenantIsolation(t *testing.T) {
	ts := servertest.New(t, server.Options{}, server.HTTPOptions{})
	secretA := ts.Token(t, "tenant-a", "alice", tenant.RoleAdmin)
	secretB := ts.Token(t, "tenant-b", "bob", tenant.RoleAdmin)
	wsA := t.TempDir()
	ts.Project(t, "tenant-a", "plans", wsA)
	for _, era := range []string{eraLegacy, eraModern} {
		a := connect(t, httpTransport(ts, secretA), "client-a", era)
		b := connect(t, httpTransport(ts, secretB), "client-b", era)
		m, _, _ := a.call("session_start", map[string]any{"title": "tenant A secret plan", "workspace": wsA})
		sid := m["session_id"].(string)
		if _, text, isErr := a.call("note", map[string]any{"text": "A-only note", "session_id": sid}); isErr {
			t.Fatal(text)
		}
		m, _, _ = b.call("whoami", map[string]any{})
		if m["tenant"] != "tenant-b" {
			t.Errorf("%s: B is %v", era, m)
		}
		m, text, _ := b.call("session_list", map[string]any{})
		if len(m["sessions"].([]any)) != 0 || strings.Contains(text, "secret plan") {
			t.Errorf("%s: B lists A's sessions: %s", era, text)
		}
		for _, args := range []map[string]any{{}, {"session_id": sid}, {"kind": "note.added"}, {"kind": "tool.called", "limit": 50}, {"agent": a.agentID()}} {
			m, text, isErr := b.call("audit_query", args)
			if isErr {
				t.Fatalf("%s: audit_query %v: %s", era, args, text)
			}
			for _, ev := range m["events"].([]any) {
				e := ev.(map[string]any)
				if e["user"] != nil && e["user"] != "bob" {
					t.Errorf("%s: B's audit_query %v returned %v", era, args, e)
				}
			}
			if strings.Contains(text, "A-only") || strings.Contains(text, "alice") {
				t.Errorf("%s: B's audit_query %v shows A: %s", era, args, text)
			}
		}
		for _, c := range []struct {
			tool string
			args map[string]any
		}{
			{"note", map[string]any{"text": "B into A", "session_id": sid}},
			{"session_end", map[string]any{"session_id": sid, "status": "cancelled"}},
		} {
			if _, text, isErr := b.call(c.tool, c.args); !isErr || !strings.Contains(text, "no session") {
				t.Errorf("%s: B %s on A's session: %q", era, c.tool, text)
			}
		}
		if m, _, _ := a.call("audit_query", map[string]any{"session_id": sid}); len(m["events"].([]any)) != 2 {
			t.Errorf("%s: A's session events changed: %v", era, m)
		}
	}
	// Nothing of B's tenant refers to A.
	if err := ts.MCP.Flush(testContext(t)); err != nil {
		t.Fatal(err)
	}
	for _, ev := range events(t, ts.Scope(t, secretB), audit.Filter{}) {
		if ev.User == "alice" || strings.Contains(ev.Summary, "A-only") {
			t.Errorf("B's log holds %+v", ev)
		}
	}
}

// agentID returns the caller's agent id (whoami).
func (c *client) agentID() string {
	m, _, _ := c.call("whoami", map[string]any{})
	id, _ := m["agent_id"].(string)
	return id
}

func TestHTTPBadArguments(t *testing.T) {
	ts := servertest.New(t, server.Options{}, server.HTTPOptions{})
	secret := ts.Token(t, "acme", "alice", tenant.RoleMember)
	c := connect(t, httpTransport(ts, secret), "bad-args", eraModern)
	sc := ts.Scope(t, secret)
	c.agentID() // registers the agent (agent.registered) before counting
	for _, tc := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{"session_start", map[string]any{}, `"title" is required`},
		{"session_start", map[string]any{"title": "t", "workspace": "relative/dir"}, "not an absolute path"},
		{"note", map[string]any{"text": strings.Repeat("x", 3000)}, "limit is 2000 bytes"},
		{"note", map[string]any{"text": "x", "secret": "hunter2"}, `unknown argument "secret"`},
		{"session_end", map[string]any{"session_id": "abc", "status": "completed"}, "not a session id"},
		{"audit_query", map[string]any{"limit": 9999}, "between 1 and 50"},
	} {
		if err := ts.MCP.Flush(testContext(t)); err != nil {
			t.Fatal(err)
		}
		before := events(t, sc, audit.Filter{})
		_, text, isErr := c.call(tc.tool, tc.args)
		if err := ts.MCP.Flush(testContext(t)); err != nil {
			t.Fatal(err)
		}
		if !isErr || !strings.Contains(text, tc.want) || !strings.Contains(text, "takes") {
			t.Errorf("%s %v: isError=%v %q; want a tool error saying %q and what the tool takes", tc.tool, tc.args, isErr, text, tc.want)
		}
		after := events(t, sc, audit.Filter{})
		if len(after) != len(before)+1 || after[len(after)-1].Kind != "tool.called" || after[len(after)-1].Attrs["outcome"] != "invalid_arguments" {
			t.Errorf("%s: wrote more than its tool.called record: %d -> %d events", tc.tool, len(before), len(after))
		}
		if args, _ := json.Marshal(after[len(after)-1].Attrs["args"]); strings.Contains(string(args), "hunter2") {
			t.Errorf("a secret argument reached the audit log: %s", args)
		}
	}
	// An unknown tool is a protocol error, not a tool call.
	if _, err := c.cs.CallTool(testContext(t), &mcp.CallToolParams{Name: "fs_write", Arguments: map[string]any{}}); err == nil {
		t.Errorf("calling an unknown tool succeeded")
	}
}

// TestHTTPBatchRefused: a JSON-RPC batch is refused with a clear error,
// whatever whitespace leads it; a body that only starts like one gets the
// parse error, and a request after whitespace is served.
func TestHTTPBatchRefused(t *testing.T) {
	ts := servertest.New(t, server.Options{}, server.HTTPOptions{})
	auth := map[string]string{"Authorization": "Bearer " + ts.Token(t, "acme", "alice", tenant.RoleMember)}
	for _, c := range []struct {
		body   string
		status int
		want   string
	}{
		{`[{"jsonrpc":"2.0","id":3,"method":"ping"}]`, 400, `"code":-32600,"message":"JSON-RPC batches are not supported`},
		{" \n\t[" + initialize + "]", 400, "batches are not supported"},
		{`[]`, 400, "batches are not supported"},
		{`[not json`, 400, `"code":-32700`},
		{" \n" + initialize, 200, `"protocolVersion"`},
		// A request's id is a string or a number, as over stdio.
		{`{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`, 400, `"code":-32600,"message":"invalid request: the id of a request must be a string or a number, not an object"`},
		{`{"jsonrpc":"2.0","id" : [1],"method":"tools/call","params":{"name":"whoami"}}`, 400, "not an array"},
		{`{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"whoami"}}`, 400, "not null"},
		{`{"jsonrpc":"2.0","\u0069d":true,"method":"ping"}`, 400, "not a boolean"},
		// An id deeper in the message is not the request's.
		{strings.Replace(initialize, `"capabilities":{}`, `"capabilities":{"x":{"id":{}}}`, 1), 200, `"protocolVersion"`},
	} {
		resp, body := post(t, ts.URL, auth, c.body)
		if resp.StatusCode != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%.40q: %d %q, want %d with %q", c.body, resp.StatusCode, body, c.status, c.want)
		}
	}
}
