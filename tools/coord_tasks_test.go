package tools

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/task"
	"github.com/coditect/coditect/storage/tenant"
)

// move is one task call in a walk: who calls, and the state asked for
// ("claimed" is task_claim, any other task_update).
type move struct {
	who   string
	state string
}

// do makes move mv on task id at version as sc, returning the reply.
func (mv move) do(t *testing.T, sc *tenant.Scope, id string, version float64) (map[string]any, string, error) {
	t.Helper()
	if mv.state == string(task.Claimed) {
		return call(t, sc, "task_claim", fmt.Sprintf(`{"task_id":%q,"version":%d}`, id, int64(version)))
	}
	return call(t, sc, "task_update", fmt.Sprintf(`{"task_id":%q,"version":%d,"state":%q}`, id, int64(version), mv.state))
}

// TestTaskHintsWalk walks the task state machine through the tools along
// the hints of their replies: for every reply (task_create, task_claim,
// task_update) and every state its "next" lists, that move, made by the
// caller the reply was for at the version it gave, succeeds; and the
// reply's text offers exactly those moves.
func TestTaskHintsWalk(t *testing.T) {
	e := setup(t)
	callers := map[string]*tenant.Scope{"creator": e.alice, "worker": asAgent(t, e.alice, "worker", ""), "other": asAgent(t, e.alice, "other", "")}
	type node struct {
		path  []move // from a new task
		who   string // whom the last reply was for
		reply map[string]any
		text  string
	}
	// replay makes a new task and walks path, returning the last reply.
	replay := func(t *testing.T, path []move) (map[string]any, string) {
		t.Helper()
		m, text := mustCall(t, callers["creator"], "task_create", `{"title":"walked"}`)
		for _, mv := range path {
			var err error
			if m, text, err = mv.do(t, callers[mv.who], m["task_id"].(string), m["version"].(float64)); err != nil {
				t.Fatalf("replaying %v: %s", path, text)
			}
		}
		return m, text
	}
	m, text := replay(t, nil)
	queue := []node{{who: "creator", reply: m, text: text}}
	// The worker's claim of the open task is the other way in.
	m, text = replay(t, []move{{"worker", "claimed"}})
	queue = append(queue, node{path: []move{{"worker", "claimed"}}, who: "worker", reply: m, text: text})
	seen := map[string]bool{}
	states := map[string]bool{}
	hints := 0
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		st, assignee := n.reply["state"].(string), n.reply["assignee"]
		states[st] = true
		key := fmt.Sprintf("%s %s %v", n.who, st, assignee == callers[n.who].Principal().Agent)
		if seen[key] || len(n.path) > 8 {
			continue
		}
		seen[key] = true
		next := anyStrings(n.reply["next"])
		// The text offers exactly next: task_claim for claimed, the other
		// states through task_update.
		if slices.Contains(next, "claimed") != strings.Contains(n.text, "task_claim with version") {
			t.Errorf("%v: next %v, text %q", n.path, next, n.text)
		}
		for _, s := range task.States() {
			if s == task.Claimed {
				continue
			}
			offered := strings.Contains(n.text, "task_update with version") && strings.Contains(n.text[strings.Index(n.text, "task_update with version"):], string(s))
			if offered != slices.Contains(next, string(s)) {
				t.Errorf("%v: next %v, but the text %q offers %s: %v", n.path, next, n.text, s, offered)
			}
		}
		for _, h := range next {
			hints++
			mv := move{n.who, h}
			path := append(slices.Clone(n.path), mv)
			prev, _ := replay(t, n.path)
			m, text, err := mv.do(t, callers[n.who], prev["task_id"].(string), prev["version"].(float64))
			if err != nil {
				t.Errorf("%v: the hinted %s by %s failed: %s", n.path, h, n.who, text)
				continue
			}
			if m["state"] != h {
				t.Errorf("%v: moved to %v, want %s", path, m["state"], h)
			}
			queue = append(queue, node{path: path, who: n.who, reply: m, text: text})
		}
	}
	for _, s := range task.States() {
		if !states[string(s)] {
			t.Errorf("the walk never reached %s", s)
		}
	}
	t.Logf("%d replies walked, %d hints followed", len(seen), hints)
}

// anyStrings returns a JSON array of strings as decoded into an any.
func anyStrings(v any) []string {
	s, _ := v.([]any)
	out := make([]string, 0, len(s))
	for _, x := range s {
		out = append(out, x.(string))
	}
	return out
}

// TestTaskConflictsNameTheParty: every refusal of a task or lease call
// names the real other party — agent id and name, "you", or the person —
// and the call that will succeed.
func TestTaskConflictsNameTheParty(t *testing.T) {
	e := setup(t)
	creator := e.alice
	cID := creator.Principal().Agent
	worker := asAgent(t, e.alice, "worker", "")
	wID := worker.Principal().Agent
	other := asAgent(t, e.alice, "other", "")
	w := newWorkspace(t, creator)
	// A task the creator made and the worker holds, in progress at version 3.
	m, _ := mustCall(t, creator, "task_create", `{"title":"held"}`)
	held := m["task_id"].(string)
	mustCall(t, worker, "task_claim", `{"task_id":"`+held+`","version":1}`)
	mustCall(t, worker, "task_update", `{"task_id":"`+held+`","version":2,"state":"in_progress"}`)
	// A task a person made (the local operator, acting as no agent).
	person, err := e.dir.Local(t.Context(), "t1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	byPerson, err := task.Create(t.Context(), person, task.New{Title: "the person's"})
	if err != nil {
		t.Fatal(err)
	}
	mustCall(t, worker, "task_claim", `{"task_id":"`+byPerson.ID+`","version":1}`)
	// The worker holds a.go.
	m, _ = mustCall(t, worker, "lease_acquire", w.args("resource", "a.go"))
	tok := int64(m["token"].(float64))
	upd := func(id string, v int, st string) string {
		return fmt.Sprintf(`{"task_id":%q,"version":%d,"state":%q}`, id, v, st)
	}
	for _, c := range []struct {
		name       string
		sc         *tenant.Scope
		tool, args string
		want       Outcome
		wants      []string
		notWants   []string
	}{
		{"a stranger moves a held task", other, "task_update", upd(held, 3, "open"), OutcomeForbidden,
			[]string{"not yours to move", "agent " + wID + " (worker)", "its creator (agent " + cID + " (tester))", "message_send", "task_list"}, []string{"(you)"}},
		{"a stranger at a stale version", other, "task_update", upd(held, 2, "review"), OutcomeConflict,
			[]string{"now version 3", "agent " + wID + " (worker)", "message_send", "task_list (state open)"}, nil},
		{"a stranger claims it", other, "task_claim", `{"task_id":"` + held + `","version":3}`, OutcomeConflict,
			[]string{"cannot be claimed", "agent " + wID + " (worker)", "message_send", "task_list"}, nil},
		{"the assignee at a stale version", worker, "task_update", upd(held, 2, "review"), OutcomeConflict,
			[]string{"assigned to you", "call again with version 3", "task_update with version 3 and state open, review, blocked or cancelled"}, []string{"pick another", "has it"}},
		{"the assignee claims it again", worker, "task_claim", `{"task_id":"` + held + `","version":2}`, OutcomeConflict,
			[]string{"assigned to you", "already yours", "task_update with version 3"}, []string{"pick another"}},
		{"the assignee asks for an illegal move", worker, "task_update", upd(held, 3, "done"), OutcomeConflict,
			[]string{"cannot move to done", "assigned to you", "task_update with version 3 and state open, review, blocked or cancelled"}, nil},
		{"a stranger moves a person's task", other, "task_update", upd(byPerson.ID, 2, "cancelled"), OutcomeForbidden,
			[]string{"agent " + wID + " (worker)", "its creator (user alice)"}, nil},
		{"the person's agent moves the person's task", creator, "task_update", upd(byPerson.ID, 2, "cancelled"), OutcomeForbidden,
			[]string{"agent " + wID + " (worker)", "its creator (user alice)"}, nil},
		{"a wrong token of one's own", worker, "lease_renew", w.args("resource", "a.go", "token", 99), OutcomeNotFound,
			[]string{"token 99 is no lease of yours", fmt.Sprintf("You hold it with token %d", tok), fmt.Sprintf("call again with token %d", tok)}, []string{wID, "lease_acquire"}},
		{"another's token", other, "lease_release", w.args("resource", "a.go", "token", tok), OutcomeNotFound,
			[]string{"no lease of yours", "agent " + wID + " (worker) holds it", "message_send"}, []string{"take it with lease_acquire"}},
		{"no token, held by another", other, "lease_release", w.args("resource", "a.go"), OutcomeNotFound,
			[]string{"you hold no lease", "agent " + wID + " (worker) holds it", "message_send"}, []string{"take it with lease_acquire"}},
		{"nobody holds it", other, "lease_renew", w.args("resource", "b.go", "token", 5), OutcomeNotFound,
			[]string{"Nobody holds it now", "lease_acquire"}, nil},
		{"a conflict", other, "lease_acquire", w.args("resource", "*.go"), OutcomeConflict,
			[]string{"agent " + wID + " (worker) holds it through its lease on \"a.go\"", "message_send"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			text := mustFail(t, c.sc, c.tool, c.args, c.want, c.wants...)
			for _, nw := range c.notWants {
				if strings.Contains(text, nw) {
					t.Errorf("%q says %q", text, nw)
				}
			}
		})
	}
	// The refusals changed nothing: the worker still has both. The board
	// names the assignee.
	if m, text := mustCall(t, worker, "task_list", `{"mine":true}`); len(m["tasks"].([]any)) != 2 || strings.Count(text, "assigned to you") != 2 {
		t.Errorf("the worker's tasks: %s", text)
	}
	if _, text := mustCall(t, other, "task_list", `{}`); strings.Count(text, "assigned to agent "+wID+" (worker)") != 2 {
		t.Errorf("the board as another sees it: %s", text)
	}
	// The creator and the assignee may move it; the reply says what next.
	_, text := mustCall(t, creator, "task_update", upd(held, 3, "review"))
	if !strings.Contains(text, "assigned to agent "+wID+" (worker)") || !strings.Contains(text, "task_update with version 4 and state in_progress, done or cancelled") {
		t.Errorf("the creator's move: %s", text)
	}
}
