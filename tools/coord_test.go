package tools

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
)

// asAgent registers an agent of sc's user and returns sc acting as it.
func asAgent(t *testing.T, sc *tenant.Scope, name, model string) *tenant.Scope {
	t.Helper()
	ag, err := agent.Register(context.Background(), sc, agent.Registration{Name: name, Client: "go-test", Model: model})
	if err != nil {
		t.Fatal(err)
	}
	out, err := sc.WithAgent(ag.ID)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// mustCall calls a tool that must succeed.
func mustCall(t *testing.T, sc *tenant.Scope, name, args string) (map[string]any, string) {
	t.Helper()
	m, text, err := call(t, sc, name, args)
	if err != nil {
		t.Fatalf("%s %s: %s", name, args, text)
	}
	return m, text
}

// mustFail calls a tool that must fail with outcome want and an error
// text containing every substring of wants.
func mustFail(t *testing.T, sc *tenant.Scope, name, args string, want Outcome, wants ...string) string {
	t.Helper()
	_, text, err := call(t, sc, name, args)
	if err == nil {
		t.Fatalf("%s %s: succeeded, want %s", name, args, want)
	}
	if o := Classify(err); o != want {
		t.Errorf("%s %s: outcome %s, want %s (%s)", name, args, o, want, text)
	}
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s %s: error %q, want it to contain %q", name, args, text, w)
		}
	}
	return text
}

func TestCoordTools(t *testing.T) {
	e := setup(t)
	a := e.alice
	aID := a.Principal().Agent
	b := asAgent(t, a, "peer", "m2")
	bID := b.Principal().Agent
	// The tenant's only project is the one path and glob leases are in.
	_, pid := newProject(t, a, "app")

	// Agents see each other, alive, the caller marked.
	m, text := mustCall(t, a, "agents_list", `{}`)
	if m["total"].(float64) != 2 || !strings.Contains(text, "tester") || !strings.Contains(text, "peer") || !strings.Contains(text, "[you]") {
		t.Fatalf("agents_list = %v\n%s", m, text)
	}
	for _, ag := range m["agents"].([]any) {
		ag := ag.(map[string]any)
		if ag["liveness"] != "alive" || (ag["you"] == true) != (ag["agent_id"] == aID) {
			t.Errorf("agent %v", ag)
		}
	}
	if m, _ := mustCall(t, a, "agents_list", `{"liveness":"gone"}`); m["total"].(float64) != 0 {
		t.Errorf("gone agents: %v", m)
	}

	// An agent describes itself; whoami through the process's Self shows it.
	self := NewSelf(agent.Agent{ID: aID, Name: "tester", Model: "m1"})
	m, _, err := callTool(t, a, self, findTool(t, "agent_update"), `{"model":"qwen2.5-coder-7b","capabilities":["go","review"],"cohort":"backend"}`)
	if err != nil || m["agent_id"] != aID || m["model"] != "qwen2.5-coder-7b" || m["cohort"] != "backend" {
		t.Fatalf("agent_update = %v, %v", m, err)
	}
	if m, _, _ := callTool(t, a, self, findTool(t, "whoami"), `{}`); m["model"] != "qwen2.5-coder-7b" {
		t.Errorf("whoami after agent_update = %v", m)
	}
	if m, _ := mustCall(t, b, "agents_list", `{"cohort":"backend"}`); m["total"].(float64) != 1 {
		t.Errorf("cohort backend: %v", m)
	}

	// Leases: one holder at a time, a conflict names the holder, tokens grow.
	m, text = mustCall(t, a, "lease_acquire", `{"resource":"src/a.go","ttl_seconds":300}`)
	tok := int64(m["token"].(float64))
	if m["mode"] != "exclusive" || tok != 1 || !strings.Contains(text, "token 1") {
		t.Fatalf("lease_acquire = %v %s", m, text)
	}
	mustFail(t, b, "lease_acquire", `{"resource":"src/**"}`, OutcomeConflict,
		aID, "(tester)", "exclusive", "alive", "until", "message_send")
	if m, _ := mustCall(t, a, "lease_renew", `{"resource":"src/a.go"}`); int64(m["token"].(float64)) != tok {
		t.Errorf("lease_renew changed the token: %v", m)
	}
	mustFail(t, a, "lease_renew", `{"resource":"src/a.go","token":99}`, OutcomeNotFound, "no lease")
	if m, _ := mustCall(t, a, "lease_release", `{"resource":"src/a.go"}`); m["released"] != true || int64(m["token"].(float64)) != tok {
		t.Errorf("lease_release = %v", m)
	}
	mustFail(t, a, "lease_release", `{"resource":"src/a.go"}`, OutcomeNotFound, "you hold no lease", "lease_acquire")
	if m, _ := mustCall(t, b, "lease_acquire", `{"resource":"src/a.go","mode":"shared"}`); int64(m["token"].(float64)) != 2 {
		t.Errorf("the next grant's token = %v, want 2", m["token"])
	}
	mustCall(t, a, "lease_acquire", `{"resource":"task:tk_1","mode":"shared"}`)
	// Leases show paths relative to the project root, and its name.
	if evs := events(t, a, audit.Filter{Kind: "tool.called"}); true {
		for _, ev := range evs {
			if s := fmt.Sprint(ev.Attrs); strings.Contains(s, "@"+pid) {
				t.Errorf("a tool.called event shows the project prefix: %v", ev.Attrs)
			}
		}
	}
	// Messages by name, replies, acks.
	m, _ = mustCall(t, a, "message_send", `{"to":"peer","subject":"hello","body":"can you review src/a.go?"}`)
	msgID := m["message_id"].(string)
	if rs := m["recipients"].([]any); len(rs) != 1 || rs[0] != bID {
		t.Fatalf("message_send recipients %v", rs)
	}
	m, text = mustCall(t, b, "inbox", `{}`)
	msgs := m["messages"].([]any)
	if len(msgs) != 1 || m["unread"].(float64) != 1 || !strings.Contains(text, "can you review") || !strings.Contains(text, `"ack":["`+msgID+`"]`) {
		t.Fatalf("inbox = %v\n%s", m, text)
	}
	if got := msgs[0].(map[string]any); got["from"] != aID || got["from_name"] != "tester" || got["subject"] != "hello" {
		t.Errorf("message %v", got)
	}
	mustCall(t, b, "message_send", `{"reply_to":"`+msgID+`","body":"on it"}`)
	m, _ = mustCall(t, b, "inbox", `{"ack":["`+msgID+`"]}`)
	if m["acked"].(float64) != 1 || m["unread"].(float64) != 0 || len(m["messages"].([]any)) != 0 {
		t.Errorf("inbox after ack = %v", m)
	}
	m, _ = mustCall(t, a, "inbox", `{"limit":5}`)
	if msgs := m["messages"].([]any); len(msgs) != 1 || msgs[0].(map[string]any)["thread"] != msgID || msgs[0].(map[string]any)["reply_to"] != msgID {
		t.Errorf("alice's inbox = %v", m)
	}
	if m, _ := mustCall(t, a, "message_send", `{"to":"all","body":"standup"}`); len(m["recipients"].([]any)) != 1 {
		t.Errorf("to all: %v", m)
	}
	mustFail(t, a, "message_send", `{"to":"cohort:backend","body":"anyone?"}`, OutcomeInvalid, "no members other than the sender")
	mustCall(t, b, "agent_update", `{"cohort":"backend"}`)
	if m, _ := mustCall(t, a, "message_send", `{"to":"cohort:backend","body":"hi team"}`); len(m["recipients"].([]any)) != 1 {
		t.Errorf("to the cohort: %v", m)
	}

	// Tasks: create, list, one claim wins, transitions at the current version.
	m, _ = mustCall(t, a, "task_create", `{"title":"Fix the redirect","description":"auth/login.go returns 301"}`)
	tid := m["task_id"].(string)
	if m["state"] != "open" || m["version"].(float64) != 1 {
		t.Fatalf("task_create = %v", m)
	}
	m, text = mustCall(t, b, "task_list", `{"state":"open"}`)
	if len(m["tasks"].([]any)) != 1 || !strings.Contains(text, tid) {
		t.Fatalf("task_list = %v", m)
	}
	m, _ = mustCall(t, b, "task_claim", `{"task_id":"`+tid+`","version":1}`)
	if m["assignee"] != bID || m["state"] != "claimed" || m["version"].(float64) != 2 {
		t.Fatalf("task_claim = %v", m)
	}
	mustFail(t, a, "task_claim", `{"task_id":"`+tid+`","version":1}`, OutcomeConflict, "version 2", "agent "+bID+" (peer)", "task_list")
	mustFail(t, a, "task_claim", `{"task_id":"`+tid+`","version":2}`, OutcomeConflict, "cannot be claimed", "agent "+bID+" (peer)", "as its creator", "task_update with version 2")
	if _, text := mustCall(t, a, "task_next", `{}`); !strings.Contains(text, "Nothing ready") {
		t.Errorf("task_next with the only task claimed: %s", text)
	}
	m, _ = mustCall(t, b, "task_update", `{"task_id":"`+tid+`","version":2,"state":"in_progress","note":"starting"}`)
	if m["state"] != "in_progress" || m["version"].(float64) != 3 {
		t.Errorf("task_update = %v", m)
	}
	mustFail(t, b, "task_update", `{"task_id":"`+tid+`","version":2,"state":"review"}`, OutcomeConflict, "version 3")
	if m, _ := mustCall(t, b, "task_list", `{"mine":true}`); len(m["tasks"].([]any)) != 1 {
		t.Errorf("mine: %v", m)
	}
	if m, _ := mustCall(t, a, "task_list", `{"mine":true}`); len(m["tasks"].([]any)) != 0 {
		t.Errorf("alice's: %v", m)
	}
	// A task of a project, and the board of one project.
	m, text = mustCall(t, a, "task_create", `{"title":"Fix the web redirect","project":"app"}`)
	if m["project"] != "app" || !strings.Contains(text, "project app") {
		t.Errorf("task_create in a project = %v, %s", m, text)
	}
	if m, _ := mustCall(t, a, "task_list", `{"project":"`+pid+`"}`); len(m["tasks"].([]any)) != 1 || m["tasks"].([]any)[0].(map[string]any)["project"] != "app" {
		t.Errorf("task_list of app = %v", m)
	}
	mustFail(t, a, "task_list", `{"project":"nope"}`, OutcomeNotFound, `no project "nope"`, "app (")
	mustFail(t, a, "task_create", `{"title":"x","project":"nope"}`, OutcomeNotFound, `no project "nope"`)

	// Joining a session.
	m, _ = mustCall(t, a, "session_start", `{"title":"pairing","project":"app"}`)
	sid := m["session_id"].(string)
	_, text = mustCall(t, b, "session_join", `{"session_id":"`+sid+`"}`)
	if !strings.Contains(text, "2 participant(s)") {
		t.Errorf("session_join: %s", text)
	}
	mustCall(t, b, "session_join", `{"session_id":"`+sid+`"}`) // again: no-op

	// The audit trail: every call recorded, lease calls with their token.
	evs := events(t, a, audit.Filter{Kind: "tool.called"})
	byTool := map[string]int{}
	for _, ev := range evs {
		byTool[ev.Attrs["tool"].(string)]++
		if strings.HasPrefix(ev.Attrs["tool"].(string), "lease_") && ev.Attrs["outcome"] == "ok" && ev.Attrs["fencing_token"] == nil {
			t.Errorf("lease call without its token: %+v", ev.Attrs)
		}
	}
	for _, tool := range Coord().Tools {
		if byTool[tool.Name()] == 0 {
			t.Errorf("no tool.called event for %s", tool.Name())
		}
	}
}

// newProject registers a new directory as a project of sc's tenant (sc
// being the local operator or an admin) and returns its root and id.
func newProject(t *testing.T, sc *tenant.Scope, name string) (root, id string) {
	t.Helper()
	pl, err := project.Register(context.Background(), sc, name, t.TempDir(), project.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pl.Root, pl.Project.ID
}

// events returns the tenant's events matching f, oldest first.
func events(t *testing.T, sc *tenant.Scope, f audit.Filter) []audit.Event {
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

func TestCoordBadArguments(t *testing.T) {
	e := setup(t)
	a := e.alice
	b := asAgent(t, a, "peer", "")
	newProject(t, a, "app")
	m, _ := mustCall(t, a, "task_create", `{"title":"t"}`)
	tid := m["task_id"].(string)
	for _, c := range []struct {
		tool, args string
		want       Outcome
		wants      []string
	}{
		{"agents_list", `{"liveness":"dead"}`, OutcomeInvalid, []string{"alive, stale, offline, gone"}},
		{"agent_update", `{}`, OutcomeInvalid, []string{"at least one of model, capabilities or cohort"}},
		{"agent_update", `{"capabilities":["a\nb"]}`, OutcomeInvalid, []string{"control characters"}},
		{"lease_acquire", `{}`, OutcomeInvalid, []string{`"resource" is required`, "Example:"}},
		{"lease_acquire", `{"resource":"/etc/passwd"}`, OutcomeInvalid, []string{"absolute path", "src/a.go"}},
		{"lease_acquire", `{"resource":"src/../a.go"}`, OutcomeInvalid, []string{`not a clean path`}},
		{"lease_acquire", `{"resource":"src/[a.go"}`, OutcomeInvalid, []string{`"src/[a.go"`, "malformed pattern"}},
		{"lease_acquire", `{"resource":"a.go","project":"nope"}`, OutcomeNotFound, []string{`no project "nope"`, "your projects: app ("}},
		{"lease_acquire", `{"resource":"a.go","session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T"}`, OutcomeNotFound, []string{"no session"}},
		{"lease_acquire", `{"resource":"a.go","mode":"mine"}`, OutcomeInvalid, []string{"exclusive, shared"}},
		{"lease_acquire", `{"resource":"a.go","ttl_seconds":100000}`, OutcomeInvalid, []string{"between 1 and 86400"}},
		{"lease_acquire", `{"resource":"a.go","ttl_seconds":"long"}`, OutcomeInvalid, []string{"whole number"}},
		{"lease_release", `{"resource":"a.go","token":-1}`, OutcomeInvalid, []string{"positive token"}},
		{"lease_renew", `{"resource":"a.go","token":5}`, OutcomeNotFound, []string{"token 5 is no lease of yours", "Nobody holds it now", "lease_acquire"}},
		{"message_send", `{}`, OutcomeInvalid, []string{`"body" is required`}},
		{"message_send", `{"body":"x"}`, OutcomeInvalid, []string{`"to" is required`, "agents_list"}},
		{"message_send", `{"to":"nobody","body":"x"}`, OutcomeNotFound, []string{`no active agent is named "nobody"`, "agents_list"}},
		{"message_send", `{"to":"ag_01JZ3K5V8Q2W7X9Y4N6M1P0R3T","body":"x"}`, OutcomeNotFound, []string{"no agent", "agents_list"}},
		{"message_send", `{"to":"cohort:","body":"x"}`, OutcomeInvalid, []string{"names no cohort"}},
		{"message_send", `{"reply_to":"000000000000000000000000","body":"x"}`, OutcomeInvalid, []string{"not a message id"}},
		{"message_send", `{"reply_to":"0000000000001a2b00000000","body":"x"}`, OutcomeNotFound, []string{"not in your inbox"}},
		{"message_send", `{"to":"peer","body":"` + strings.Repeat("b", 33000) + `"}`, OutcomeInvalid, []string{"limit is 32768 bytes"}},
		{"inbox", `{"ack":["nope"]}`, OutcomeInvalid, []string{"not a message id"}},
		{"inbox", `{"ack":["0000000000001a2b00000000"]}`, OutcomeNotFound, []string{"not in the inbox", "ack takes"}},
		{"inbox", `{"wait_seconds":600}`, OutcomeInvalid, []string{"between 0 and 60"}},
		{"task_create", `{}`, OutcomeInvalid, []string{`"title" is required`}},
		{"task_list", `{"state":"doing"}`, OutcomeInvalid, []string{"open, claimed, in_progress"}},
		{"task_claim", `{"task_id":"` + tid + `"}`, OutcomeInvalid, []string{`"version" is required`, "task_list"}},
		{"task_claim", `{"version":1}`, OutcomeInvalid, []string{`"task_id" is required`}},
		{"task_claim", `{"task_id":"tk_01JZ3K5V8Q2W7X9Y4N6M1P0R3T","version":1}`, OutcomeNotFound, []string{"no task", "task_list"}},
		{"task_update", `{"task_id":"` + tid + `","version":1,"state":"claimed"}`, OutcomeInvalid, []string{"task_claim"}},
		{"task_update", `{"task_id":"` + tid + `","version":1}`, OutcomeInvalid, []string{`send a state`}},
		{"task_update", `{"task_id":"` + tid + `","version":1,"state":"in_progress"}`, OutcomeConflict, []string{"cannot move to in_progress", "task_claim with version 1"}},
		{"session_join", `{}`, OutcomeInvalid, []string{`"session_id" is required`}},
		{"session_join", `{"session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T"}`, OutcomeNotFound, []string{"no session"}},
	} {
		before := counts(t, a)
		mustFail(t, b, c.tool, c.args, c.want, c.wants...)
		after := counts(t, a)
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
}

func TestCoordTenantIsolation(t *testing.T) {
	e := setup(t)
	a := e.alice
	aID := a.Principal().Agent
	b := asAgent(t, e.bob, "bobs-agent", "")
	newProject(t, e.bob, "bobs")
	m, _ := mustCall(t, a, "session_start", `{"title":"a's","workspace":"`+t.TempDir()+`"}`)
	sid := m["session_id"].(string)
	m, _ = mustCall(t, a, "task_create", `{"title":"secret task"}`)
	tid := m["task_id"].(string)
	mustCall(t, a, "lease_acquire", `{"resource":"src/a.go"}`)
	peer := asAgent(t, a, "peer", "")
	mustCall(t, peer, "message_send", `{"to":"tester","body":"A-only message"}`)

	// B sees nothing of A's tenant.
	m, text := mustCall(t, b, "agents_list", `{"retired":true}`)
	if m["total"].(float64) != 1 || strings.Contains(text, aID) || strings.Contains(text, "tester") {
		t.Errorf("B's agents_list shows A's agents: %s", text)
	}
	if m, _ := mustCall(t, b, "task_list", `{}`); len(m["tasks"].([]any)) != 0 {
		t.Errorf("B lists A's tasks: %v", m)
	}
	if m, _ := mustCall(t, b, "inbox", `{}`); len(m["messages"].([]any)) != 0 {
		t.Errorf("B reads A's messages: %v", m)
	}
	// The same resource is another lease in B's tenant: token 1, no conflict.
	if m, _ := mustCall(t, b, "lease_acquire", `{"resource":"src/a.go"}`); m["token"].(float64) != 1 {
		t.Errorf("B's lease = %v", m)
	}
	// B cannot touch A's agents, tasks, sessions or leases by id.
	mustFail(t, b, "message_send", `{"to":"`+aID+`","body":"B to A"}`, OutcomeNotFound, "no agent")
	mustFail(t, b, "message_send", `{"to":"tester","body":"B to A"}`, OutcomeNotFound, "no active agent")
	mustFail(t, b, "task_claim", `{"task_id":"`+tid+`","version":1}`, OutcomeNotFound, "no task")
	mustFail(t, b, "task_update", `{"task_id":"`+tid+`","version":1,"state":"cancelled"}`, OutcomeNotFound, "no task")
	mustFail(t, b, "session_join", `{"session_id":"`+sid+`"}`, OutcomeNotFound, "no session")
	mustCall(t, b, "lease_release", `{"resource":"src/a.go","token":1}`) // B's own lease
	if c := counts(t, a); c["task.claimed"] != 0 || c["session.joined"] != 0 || c["lease.released"] != 0 {
		t.Errorf("A's tenant changed: %v", c)
	}
	// A's agent still holds its lease, and its inbox still has its message.
	if m, _ := mustCall(t, a, "inbox", `{}`); len(m["messages"].([]any)) != 1 {
		t.Errorf("A's inbox = %v", m)
	}
	mustFail(t, peer, "lease_acquire", `{"resource":"src/a.go"}`, OutcomeConflict, aID)
}

func TestViewerCoordination(t *testing.T) {
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
	mustCall(t, vic, "agents_list", `{}`)
	mustCall(t, vic, "task_list", `{}`)
	for _, c := range []struct{ tool, args string }{
		{"lease_acquire", `{"resource":"a.go"}`},
		{"message_send", `{"to":"tester","body":"x"}`},
		{"task_create", `{"title":"x"}`},
		{"agent_update", `{"model":"x"}`},
		{"inbox", `{}`},
	} {
		text := mustFail(t, vic, c.tool, c.args, OutcomeForbidden)
		if !strings.Contains(text, "viewer") && !strings.Contains(text, "no agent") {
			t.Errorf("viewer %s: %q", c.tool, text)
		}
	}
}

// TestOneClaimWins: of several agents claiming one task at one version at
// once, exactly one gets it and the others are told who did.
func TestOneClaimWins(t *testing.T) {
	e := setup(t)
	m, _ := mustCall(t, e.alice, "task_create", `{"title":"contended"}`)
	tid := m["task_id"].(string)
	const n = 6
	type res struct {
		m    map[string]any
		text string
		err  error
	}
	results := make(chan res, n)
	for i := range n {
		sc := asAgent(t, e.alice, fmt.Sprintf("claimer-%d", i), "")
		go func() {
			m, text, err := call(t, sc, "task_claim", `{"task_id":"`+tid+`","version":1}`)
			results <- res{m, text, err}
		}()
	}
	wins := 0
	var winner string
	var losers []string
	for range n {
		r := <-results
		if r.err == nil {
			wins++
			winner = r.m["assignee"].(string)
			continue
		}
		if Classify(r.err) != OutcomeConflict {
			t.Errorf("a losing claim: %s (%s)", r.text, Classify(r.err))
		}
		losers = append(losers, r.text)
	}
	if wins != 1 {
		t.Fatalf("%d claims won", wins)
	}
	for _, l := range losers {
		if !strings.Contains(l, winner) {
			t.Errorf("loser's error %q does not name the winner %s", l, winner)
		}
	}
}
