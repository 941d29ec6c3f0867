package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv/sqlite"
	"github.com/coditect/coditect/storage/tenant"
)

// listBudget is the most bytes the default tools/list result may take: a
// small model reads it on every turn.
const listBudget = 6 << 10

// setBudget is the most bytes one opt-in toolset's definitions may add.
const setBudget = 12 << 10

// listSize returns the size of the tools/list result of sets.
func listSize(t *testing.T, sets []Toolset) (int, []mcp.Tool) {
	t.Helper()
	var defs []mcp.Tool
	for _, s := range sets {
		for _, tool := range s.Tools {
			defs = append(defs, tool.Def)
		}
	}
	b, err := json.Marshal(mcp.ListToolsResult{Tools: defs})
	if err != nil {
		t.Fatal(err)
	}
	return len(b), defs
}

func TestToolsListSize(t *testing.T) {
	sets, err := Select(nil, Config{})
	if err != nil {
		t.Fatal(err)
	}
	n, defs := listSize(t, sets)
	t.Logf("default tools/list result: %d tools, %d bytes (budget %d)", len(defs), n, listBudget)
	if n > listBudget {
		t.Errorf("the default tools/list is %d bytes, over the budget of %d", n, listBudget)
	}
	all, err := Select([]string{"all"}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	n, defs = listSize(t, all)
	t.Logf("full catalog (--toolsets all): %d tools, %d bytes", len(defs), n)
	for _, s := range all {
		sn, sdefs := listSize(t, []Toolset{s})
		t.Logf("  toolset %-6s %2d tools, %5d bytes", s.Name, len(sdefs), sn)
		if s.Name != "core" && sn > setBudget {
			t.Errorf("toolset %s is %d bytes, over the budget of %d", s.Name, sn, setBudget)
		}
		for _, d := range sdefs {
			one, _ := json.Marshal(d)
			t.Logf("    %-14s %4d bytes", d.Name, len(one))
		}
	}
}

func TestToolDefinitions(t *testing.T) {
	seen := map[string]bool{}
	for _, set := range Catalog(Config{}) {
		for _, tool := range set.Tools {
			d := tool.Def
			t.Run(d.Name, func(t *testing.T) {
				if seen[d.Name] {
					t.Fatalf("duplicate tool name")
				}
				seen[d.Name] = true
				// One sentence a small model can act on.
				if n := strings.Count(d.Description, ". "); n > 0 || !strings.HasSuffix(d.Description, ".") || len(d.Description) > 120 {
					t.Errorf("description %q: want one sentence of at most 120 bytes", d.Description)
				}
				a := d.Annotations
				if a.ReadOnlyHint == nil || a.DestructiveHint == nil || a.IdempotentHint == nil || a.OpenWorldHint == nil {
					t.Fatalf("annotations %+v: all four hints must be set", a)
				}
				if *a.OpenWorldHint {
					t.Errorf("openWorldHint is true; no tool reaches outside the store")
				}
				if *a.ReadOnlyHint && *a.DestructiveHint {
					t.Errorf("a read-only tool cannot be destructive")
				}
				for what, raw := range map[string]json.RawMessage{"input": d.RawInputSchema, "output": d.RawOutputSchema} {
					var s jsonschema.Schema
					if err := json.Unmarshal(raw, &s); err != nil {
						t.Fatalf("%s schema: %v", what, err)
					}
					if s.Type != "object" {
						t.Errorf("%s schema type %q, want object", what, s.Type)
					}
					if what == "output" && len(s.Properties) == 0 {
						t.Errorf("output schema has no properties (the struct-tag gotcha?)")
					}
					for _, r := range s.Required {
						if s.Properties[r] == nil {
							t.Errorf("%s schema requires %q, which it does not declare", what, r)
						}
					}
					if _, err := s.Resolve(nil); err != nil {
						t.Errorf("%s schema does not resolve: %v", what, err)
					}
				}
				if tool.example != "" {
					if !json.Valid([]byte(tool.example)) {
						t.Errorf("example %s is not JSON", tool.example)
					}
				}
			})
		}
	}
}

func TestSelect(t *testing.T) {
	for _, c := range []struct {
		names []string
		want  string // joined names, or an error substring
	}{
		{nil, "core"},
		{[]string{"core"}, "core"},
		{[]string{" Core ", ""}, "core"},
		{[]string{"all"}, "core,coord,files,ide"},
		{[]string{"files", "core"}, "core,files"},
		{[]string{"nope"}, `unknown toolset "nope"`},
		{[]string{""}, "no toolset selected"},
	} {
		sets, err := Select(c.names, Config{})
		var got string
		if err != nil {
			got = err.Error()
		} else {
			var names []string
			for _, s := range sets {
				names = append(names, s.Name)
			}
			got = strings.Join(names, ",")
		}
		if !strings.Contains(got, c.want) {
			t.Errorf("Select(%q) = %q, want %q", c.names, got, c.want)
		}
	}
}

func TestRedactArgs(t *testing.T) {
	long := strings.Repeat("x", 1000)
	for _, c := range []struct {
		in      string
		want    []string // substrings of the recorded JSON
		notWant []string
	}{
		{`{"title":"t","token":"cdt_abcdefghijklmnopqrstuvwxyz012345"}`, []string{`"token":"[redacted]"`, `"title":"t"`}, []string{"cdt_abc"}},
		{`{"Authorization":"Bearer abcdefgh123","password":"p","api_key":"k","nested":{"client_secret":"s"}}`,
			[]string{`"Authorization":"[redacted]"`, `"password":"[redacted]"`, `"api_key":"[redacted]"`, `"client_secret":"[redacted]"`}, []string{"abcdefgh123", `"p"`, `"k"`, `"s"`}},
		{`{"text":"use cdt_abcdefghijklmnopqrstuvwxyz0123 and Bearer xyz.abc.def123"}`, []string{"[redacted]"}, []string{"cdt_abcdefghij", "xyz.abc"}},
		{`{"text":"` + long + `"}`, []string{"…"}, []string{long}},
		{`{"a":"` + long + `","b":"` + long + `","c":"` + long + `","d":"` + long + `","e":"` + long + `","f":"` + long + `","g":"` + long + `","h":"` + long + `","i":"` + long + `"}`,
			[]string{`"_truncated":true`, `"_keys":["a","b"`}, []string{long}},
		{`not json`, []string{`"_unparsed":true`}, nil},
		{``, []string{`{}`}, nil},
		{`null`, []string{`{}`}, nil},
		{`{"session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T","n":12345678901234567890}`, []string{`"session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T"`, `12345678901234567890`}, nil},
	} {
		b, err := json.Marshal(RedactArgs(json.RawMessage(c.in)))
		if err != nil {
			t.Fatal(err)
		}
		got := string(b)
		if len(got) > maxAuditArgs+200 {
			t.Errorf("%.40s: recorded %d bytes", c.in, len(got))
		}
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%.60s: recorded %.200s, want it to contain %s", c.in, got, w)
			}
		}
		for _, w := range c.notWant {
			if strings.Contains(got, w) {
				t.Errorf("%.60s: recorded %.200s, must not contain %.40s", c.in, got, w)
			}
		}
	}
}

// TestRedactArgsAddedKey: the record leaves out a top-level
// idempotency_key the transport added (one with its prefix), and keeps a
// key of the caller's own, a nested one and one that is not a string.
func TestRedactArgsAddedKey(t *testing.T) {
	const added = "core-ABCD-"
	for in, want := range map[string]string{
		`{"text":"x","idempotency_key":"core-ABCD-0000000000000007"}`: `{"text":"x"}`,
		`{"idempotency_key":"core-ABCD-0000000000000007"}`:            `{}`,
		`{"text":"x","idempotency_key":"mine"}`:                       `{"idempotency_key":"mine","text":"x"}`,
		`{"text":"x","idempotency_key":"core-EFGH-0000000000000007"}`: `{"idempotency_key":"core-EFGH-0000000000000007","text":"x"}`,
		`{"idempotency_key":7}`:                                       `{"idempotency_key":7}`,
		`{"nested":{"idempotency_key":"core-ABCD-0000000000000007"}}`: `{"nested":{"idempotency_key":"core-ABCD-0000000000000007"}}`,
		`["core-ABCD-0000000000000007"]`:                              `["core-ABCD-0000000000000007"]`,
	} {
		b, err := json.Marshal(redactArgs(json.RawMessage(in), added))
		if err != nil || string(b) != want {
			t.Errorf("%s: recorded %s (%v), want %s", in, b, err, want)
		}
		// Without a prefix (a direct process, HTTP) every key is the caller's.
		if b, _ := json.Marshal(redactArgs(json.RawMessage(in), "")); strings.Contains(in, "core-ABCD") && !strings.Contains(string(b), "core-ABCD") {
			t.Errorf("%s: without a prefix, recorded %s", in, b)
		}
	}
}

// TestSentSize: the size of the arguments a caller sent, without the key
// the transport put first among them.
func TestSentSize(t *testing.T) {
	const added = "core-ABCD-"
	key := `"idempotency_key":"core-ABCD-0000000000000007"`
	for _, c := range []struct {
		args  string
		added string
		want  int
	}{
		{`{` + key + `,"text":"x"}`, added, len(`{"text":"x"}`)},
		{`{` + key + `}`, added, len(`{}`)},
		{`{` + key + `,"text":"x"}`, "", len(`{` + key + `,"text":"x"}`)},
		{`{"idempotency_key":"mine","text":"x"}`, added, len(`{"idempotency_key":"mine","text":"x"}`)},
		{`{"text":"x",` + key + `}`, added, len(`{"text":"x",` + key + `}`)},
		{`{"idempotency_key":"core-ABCD-`, added, len(`{"idempotency_key":"core-ABCD-`)},
		{`{` + key, added, len(`{` + key)},
		{`{` + key + ` `, added, len(`{` + key + ` `)},
	} {
		if got := sentSize([]byte(c.args), c.added); got != c.want {
			t.Errorf("sentSize(%s, %q) = %d, want %d", c.args, c.added, got, c.want)
		}
	}
}

// env is a store with tenant t1 (alice, acting as a registered agent) and
// tenant t2 (bob).
type env struct {
	alice, bob *tenant.Scope
	dir        *tenant.Directory
}

func setup(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"), sqlite.Options{Synchronous: sqlite.SyncNormal})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	dir := tenant.NewDirectory(st, "test")
	alice, err := dir.Local(ctx, "t1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	ag, err := agent.Register(ctx, alice, agent.Registration{Name: "tester", Client: "go-test", Model: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	if alice, err = alice.WithAgent(ag.ID); err != nil {
		t.Fatal(err)
	}
	bob, err := dir.Local(ctx, "t2", "bob")
	if err != nil {
		t.Fatal(err)
	}
	return &env{alice: alice, bob: bob, dir: dir}
}

func findTool(t *testing.T, name string) *Tool {
	t.Helper()
	for _, s := range Catalog(Config{}) {
		for _, tool := range s.Tools {
			if tool.Name() == name {
				return tool
			}
		}
	}
	t.Fatalf("no tool %q", name)
	return nil
}

// call runs a tool through the production middleware and checks a
// successful result against the tool's output schema.
func call(t *testing.T, sc *tenant.Scope, name, args string) (map[string]any, string, error) {
	t.Helper()
	return callTool(t, sc, nil, findTool(t, name), args)
}

// callTool is call for a given tool (of a toolset built with its own
// Config), with the caller's Self when self is not nil.
func callTool(t *testing.T, sc *tenant.Scope, self *Self, tool *Tool, args string) (map[string]any, string, error) {
	t.Helper()
	name := tool.Name()
	h := Chain(Heartbeat(0, nil), Audit(nil, nil))(tool.Handler)
	c := &Call{Caller: Caller{Scope: sc, Client: mcp.Implementation{Name: "go-test", Version: "1"}, Self: self},
		Tool: tool, Args: json.RawMessage(args), Started: time.Now()}
	res, err := h(context.Background(), c)
	if err != nil {
		return nil, errorText(name, err), err
	}
	b, err := json.Marshal(res.Structured)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var s jsonschema.Schema
	if err := json.Unmarshal(tool.Def.RawOutputSchema, &s); err != nil {
		t.Fatal(err)
	}
	rs, err := s.Resolve(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Validate(m); err != nil {
		t.Errorf("%s: structured content %s does not match the output schema: %v", name, b, err)
	}
	if res.Text == "" {
		t.Errorf("%s: empty text block", name)
	}
	return m, res.Text, nil
}

// counts returns the number of events of each kind in sc's tenant.
func counts(t *testing.T, sc *tenant.Scope) map[string]int {
	t.Helper()
	out := map[string]int{}
	q := audit.Query{Limit: audit.MaxLimit}
	for {
		p, err := sc.Log().Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range p.Events {
			out[ev.Kind]++
		}
		if p.Next == "" {
			return out
		}
		q.Cursor = p.Next
	}
}

func TestCoreTools(t *testing.T) {
	e := setup(t)
	m, text, err := call(t, e.alice, "whoami", `{}`)
	if err != nil || m["tenant"] != "t1" || m["user"] != "alice" || m["agent_name"] != "tester" || m["model"] != "m1" || !strings.Contains(text, "tenant t1") {
		t.Fatalf("whoami = %v, %q, %v", m, text, err)
	}
	if ps := m["projects"].([]any); len(ps) != 0 {
		t.Fatalf("whoami lists projects %v before any", ps)
	}
	// The local operator's first session in a directory registers it as
	// a project, named after it.
	ws := filepath.Join(t.TempDir(), "proj")
	if err := os.Mkdir(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	m, text, err = call(t, e.alice, "session_start", `{"title":"Fix the login redirect","workspace":"`+ws+`","purpose":"users loop"}`)
	if err != nil {
		t.Fatal(text)
	}
	sid, _ := m["session_id"].(string)
	if len(sid) != 26 || m["state"] != "open" || m["project"] != "proj" || m["dir"] != "." || !strings.Contains(text, sid) || !strings.Contains(text, "project proj") {
		t.Fatalf("session_start = %v, %q", m, text)
	}
	m, text, err = call(t, e.alice, "whoami", `{}`)
	if ps := m["projects"].([]any); err != nil || len(ps) != 1 || ps[0].(map[string]any)["name"] != "proj" ||
		len(ps[0].(map[string]any)["roots"].([]any)) != 1 || !strings.Contains(text, "proj (") {
		t.Fatalf("whoami = %v, %q, %v", m, text, err)
	}
	m, _, err = call(t, e.alice, "note", `{"text":"Chose a 302","kind":"decision","session_id":"`+strings.ToLower(sid)+`","path":"auth/login.go"}`)
	if err != nil || m["kind"] != "decision.recorded" || m["session_id"] != sid {
		t.Fatalf("note = %v, %v", m, err)
	}
	if _, _, err = call(t, e.alice, "note", `{"text":"plain note"}`); err != nil {
		t.Fatal(err)
	}
	m, _, err = call(t, e.alice, "session_list", `{"state":"open","mine":true}`)
	if err != nil || len(m["sessions"].([]any)) != 1 {
		t.Fatalf("session_list = %v, %v", m, err)
	}
	m, text, err = call(t, e.alice, "audit_query", `{"session_id":"`+sid+`"}`)
	if err != nil {
		t.Fatal(err)
	}
	evs := m["events"].([]any)
	kinds := []string{}
	for _, ev := range evs {
		kinds = append(kinds, ev.(map[string]any)["kind"].(string))
	}
	// Newest first; tool.called hidden unless asked for.
	if strings.Join(kinds, ",") != "decision.recorded,session.started" || !strings.Contains(text, "decision.recorded") {
		t.Fatalf("audit_query kinds = %v\n%s", kinds, text)
	}
	m, _, err = call(t, e.alice, "audit_query", `{"kind":"tool.called","limit":2}`)
	if err != nil || len(m["events"].([]any)) != 2 || m["next"] == nil {
		t.Fatalf("audit_query tool.called = %v, %v", m, err)
	}
	// Follow the cursor.
	m2, _, err := call(t, e.alice, "audit_query", `{"kind":"tool.called","limit":2,"cursor":"`+m["next"].(string)+`"}`)
	if err != nil || len(m2["events"].([]any)) != 2 || m2["events"].([]any)[0].(map[string]any)["id"] == m["events"].([]any)[1].(map[string]any)["id"] {
		t.Fatalf("second page = %v, %v", m2, err)
	}
	m, text, err = call(t, e.alice, "session_end", `{"session_id":"`+sid+`","status":"completed","summary":"done"}`)
	if err != nil || m["state"] != "ended" || m["status"] != "completed" || !strings.Contains(text, "completed") {
		t.Fatalf("session_end = %v, %q, %v", m, text, err)
	}

	// Every call was audited, attributed to the agent, the session-bound
	// ones under the session.
	c := counts(t, e.alice)
	if c["tool.called"] != 10 || c["note.added"] != 1 || c["decision.recorded"] != 1 {
		t.Errorf("event counts %v", c)
	}
	p, err := e.alice.Log().Query(context.Background(), audit.Query{Filter: audit.Filter{Kind: "tool.called", Session: sid}, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 3 { // note, audit_query (session), session_end
		t.Errorf("%d tool.called events in the session, want 3", len(p.Events))
	}
	for _, ev := range p.Events {
		if ev.Agent != e.alice.Principal().Agent || ev.User != "alice" || ev.Attrs["outcome"] != "ok" || ev.Attrs["client"] != "go-test" {
			t.Errorf("tool.called event %+v", ev)
		}
	}
	// The agent's heartbeat moved.
	ag, err := agent.Get(context.Background(), e.alice, e.alice.Principal().Agent)
	if err != nil || ag.Liveness != agent.Alive {
		t.Errorf("agent after calls: %+v, %v", ag, err)
	}
}

func TestBadArguments(t *testing.T) {
	e := setup(t)
	m, _, err := call(t, e.alice, "session_start", `{"title":"real","workspace":"`+t.TempDir()+`"}`)
	if err != nil {
		t.Fatal(err)
	}
	sid := m["session_id"].(string)
	big := strings.Repeat("a", MaxArgs+1)
	for _, c := range []struct {
		tool, args string
		want       []string // substrings of the error text
	}{
		{"whoami", `{"x":1}`, []string{`unknown argument "x"`, "takes: session_id"}},
		{"whoami", `[1]`, []string{"must be a JSON object"}},
		{"session_start", `{}`, []string{`"title" is required`, "takes: title, project, workspace, purpose", `Example: {"title"`}},
		{"session_start", `{"title":"t"}`, []string{`"project" or "workspace" is required`, "whoami"}},
		{"session_start", `{"title":"t","project":"nope"}`, []string{`no project "nope"`, "your projects:"}},
		{"session_start", `{"title":"t","workspace":"src/app"}`, []string{"not an absolute path", "/home/me/project"}},
		{"session_start", `{"title":7,"workspace":"/w"}`, []string{`"title" must be a string, not a number`}},
		{"session_start", `{"title":"` + strings.Repeat("t", 201) + `","workspace":"/w"}`, []string{"limit is 200 bytes"}},
		{"session_start", `{"title":"a\nb","workspace":"/w"}`, []string{"control characters"}},
		{"session_start", `{"title":"` + big + `"}`, []string{"limit is 65536 bytes"}},
		{"session_start", `{"title":"t","workspace":"/w"`, []string{"not valid JSON"}},
		{"session_end", `{"session_id":"` + sid + `"}`, []string{`"status" is required`, "completed, failed or cancelled"}},
		{"session_end", `{"session_id":"` + sid + `","status":"done"}`, []string{`"status" must be one of completed, failed, cancelled`}},
		{"session_end", `{"session_id":"nope","status":"completed"}`, []string{"not a session id", "session_list"}},
		{"session_end", `{"session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T","status":"completed"}`, []string{"no session 01JZ3K5V8Q2W7X9Y4N6M1P0R3T", "list sessions"}},
		{"session_list", `{"limit":500}`, []string{`"limit" must be between 1 and 50`}},
		{"session_list", `{"limit":"ten"}`, []string{`"limit" must be a whole number, not a string`}},
		{"session_list", `{"state":"running"}`, []string{"open, ended, abandoned"}},
		{"note", `{}`, []string{`"text" is required`, "Example:"}},
		{"note", `{"text":"x","kind":"idea"}`, []string{`"note" or "decision"`}},
		{"note", `{"text":"` + strings.Repeat("n", 2001) + `"}`, []string{"limit is 2000 bytes"}},
		{"note", `{"text":"x","session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T"}`, []string{"no session"}},
		{"audit_query", `{"kind":"notes"}`, []string{`"kind" "notes" is not an event kind`, "note.added"}},
		{"audit_query", `{"cursor":"zzz"}`, []string{"not a cursor"}},
	} {
		before := counts(t, e.alice)
		_, text, err := call(t, e.alice, c.tool, c.args)
		if err == nil {
			t.Errorf("%s %.60s: no error", c.tool, c.args)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(text, w) {
				t.Errorf("%s %.60s: error %q, want it to contain %q", c.tool, c.args, text, w)
			}
		}
		if o := Classify(err); o != OutcomeInvalid && o != OutcomeNotFound {
			t.Errorf("%s %.60s: outcome %s", c.tool, c.args, o)
		}
		// Nothing but the tool.called record was written.
		after := counts(t, e.alice)
		for k, n := range after {
			want := before[k]
			if k == "tool.called" {
				want++
			}
			if n != want {
				t.Errorf("%s %.60s: %s events %d -> %d", c.tool, c.args, k, before[k], n)
			}
		}
	}
	// The refused calls are audited with their outcome and no huge values.
	p, err := e.alice.Log().Query(context.Background(), audit.Query{Filter: audit.Filter{Kind: "tool.called"}, Order: audit.NewestFirst, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range p.Events {
		b, _ := json.Marshal(ev)
		if len(b) > 4096 {
			t.Errorf("tool.called event of %d bytes", len(b))
		}
	}
}

func TestTenantIsolation(t *testing.T) {
	e := setup(t)
	m, _, err := call(t, e.alice, "session_start", `{"title":"secret work","workspace":"`+t.TempDir()+`"}`)
	if err != nil {
		t.Fatal(err)
	}
	sid := m["session_id"].(string)
	if _, _, err := call(t, e.alice, "note", `{"text":"alice private note","session_id":"`+sid+`"}`); err != nil {
		t.Fatal(err)
	}
	m, _, err = call(t, e.bob, "session_list", `{}`)
	if err != nil || len(m["sessions"].([]any)) != 0 {
		t.Errorf("bob lists %v, %v", m, err)
	}
	for _, kind := range []string{"", "tool.called", "note.added"} {
		args := `{}`
		if kind != "" {
			args = `{"kind":"` + kind + `"}`
		}
		m, text, err := call(t, e.bob, "audit_query", args)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(text, "alice") || strings.Contains(text, "secret") || strings.Contains(text, sid) {
			t.Errorf("bob's audit_query %s shows alice's data: %s", args, text)
		}
		for _, ev := range m["events"].([]any) {
			if u := ev.(map[string]any)["user"]; u != nil && u != "bob" {
				t.Errorf("bob sees an event of %v", u)
			}
		}
	}
	for _, c := range []struct{ tool, args string }{
		{"audit_query", `{"session_id":"` + sid + `"}`},
		{"note", `{"text":"bob writes into alice's session","session_id":"` + sid + `"}`},
		{"session_end", `{"session_id":"` + sid + `","status":"cancelled"}`},
	} {
		m, text, err := call(t, e.bob, c.tool, c.args)
		if c.tool == "audit_query" {
			if err != nil || len(m["events"].([]any)) != 0 {
				t.Errorf("bob %s: %v %v", c.tool, m, err)
			}
			continue
		}
		if !errors.Is(err, errNotFoundSentinel(err)) || !strings.Contains(text, "no session") {
			t.Errorf("bob %s: %q, %v; want not found", c.tool, text, err)
		}
	}
	// Alice's session is untouched.
	if c := counts(t, e.alice); c["session.ended"] != 0 || c["note.added"] != 1 {
		t.Errorf("alice's counts after bob: %v", c)
	}
}

// errNotFoundSentinel returns err when it classifies as not found, so that
// errors.Is(err, errNotFoundSentinel(err)) reads as "is a not-found".
func errNotFoundSentinel(err error) error {
	if Classify(err) == OutcomeNotFound {
		return err
	}
	return errors.New("not a not-found error")
}

func TestViewerCannotWrite(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	if _, err := e.dir.CreateUser(ctx, "t1", "vic", ""); err != nil {
		t.Fatal(err)
	}
	secret, _, err := e.dir.IssueToken(ctx, "t1", "vic", tenant.RoleViewer, tenant.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vic, err := e.dir.Authenticate(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	before := counts(t, e.alice)
	for _, c := range []struct{ tool, args string }{
		{"note", `{"text":"x"}`},
		{"session_start", `{"title":"t","workspace":"/w"}`},
	} {
		_, text, err := call(t, vic, c.tool, c.args)
		if Classify(err) != OutcomeForbidden || !strings.Contains(text, "viewer") {
			t.Errorf("viewer %s: %q (%v)", c.tool, text, Classify(err))
		}
	}
	if _, _, err := call(t, vic, "whoami", `{}`); err != nil {
		t.Errorf("viewer whoami: %v", err)
	}
	after := counts(t, e.alice)
	if after["note.added"] != before["note.added"] || after["session.started"] != before["session.started"] {
		t.Errorf("a viewer wrote: %v -> %v", before, after)
	}
}

// TestAuditQueue: concurrent calls' records share commits, and each call
// returns only once its own record is committed (no Flush needed); a write
// tool's record likewise; Close commits what is queued.
func TestAuditQueue(t *testing.T) {
	e := setup(t)
	q := NewAuditQueue(0, nil)
	tool := findTool(t, "audit_query") // read-only, and its path filter tells the calls apart
	h := Audit(nil, q)(tool.Handler)
	const n = 600
	var mu sync.Mutex
	var missing []string
	done := make(chan struct{})
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			sc := e.alice
			if i%3 == 0 {
				sc = e.bob
			}
			c := &Call{Caller: Caller{Scope: sc}, Tool: tool, Args: json.RawMessage(fmt.Sprintf(`{"path":"f%d.go"}`, i)), Started: time.Now()}
			if _, err := h(context.Background(), c); err != nil {
				t.Error(err)
				return
			}
			// The call's own record is durable when it returns (checked
			// for a sample: each check reads a page of the log).
			if i%25 == 0 && !hasCall(t, sc, i) {
				mu.Lock()
				missing = append(missing, fmt.Sprint(i))
				mu.Unlock()
			}
		}()
	}
	for range n {
		<-done
	}
	if len(missing) > 0 {
		t.Errorf("%d calls returned before their record was committed: %v", len(missing), missing)
	}
	if a, b := counts(t, e.alice)["tool.called"], counts(t, e.bob)["tool.called"]; a != n-n/3 || b != n/3 {
		t.Errorf("on return: %d + %d tool.called events, want %d + %d", a, b, n-n/3, n/3)
	}
	// Group commit: 600 concurrent records took fewer than 600 commits.
	// (The head counter counts events, so compare distinct commit versions.)
	if c := commits(t, e.alice, e.bob); c >= n {
		t.Errorf("%d concurrent records took %d commits: no group commit", n, c)
	} else {
		t.Logf("%d concurrent records in %d commits", n, c)
	}
	// A write tool's record is committed before the call returns.
	c := &Call{Caller: Caller{Scope: e.alice}, Tool: findTool(t, "note"), Args: json.RawMessage(`{"text":"x"}`), Started: time.Now()}
	if _, err := Audit(nil, q)(c.Tool.Handler)(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if got := counts(t, e.alice)["tool.called"]; got != n-n/3+1 {
		t.Errorf("note's record not committed on return: %d", got)
	}
	if err := q.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// hasCall reports whether sc's log holds the tool.called record of the
// call whose arguments were {"path":"f<i>.go"}.
func hasCall(t *testing.T, sc *tenant.Scope, i int) bool {
	t.Helper()
	p, err := sc.Log().Query(context.Background(), audit.Query{Filter: audit.Filter{Kind: "tool.called"}, Order: audit.NewestFirst, Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range p.Events {
		if a, ok := ev.Attrs["args"].(map[string]any); ok && a["path"] == fmt.Sprintf("f%d.go", i) {
			return true
		}
	}
	return false
}

// commits counts the distinct commit versions of the scopes' tool.called
// events.
func commits(t *testing.T, scs ...*tenant.Scope) int {
	t.Helper()
	seen := map[string]bool{}
	for _, sc := range scs {
		q := audit.Query{Filter: audit.Filter{Kind: "tool.called"}, Limit: audit.MaxLimit}
		for {
			p, err := sc.Log().Query(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range p.Events {
				seen[ev.ID[:20]] = true // the commit version; the rest is the order in the commit
			}
			if p.Next == "" {
				break
			}
			q.Cursor = p.Next
		}
	}
	return len(seen)
}
