package tools

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/coditect/coditect/storage/tenant"
)

// TestTaskNext: through the middleware, task_next claims the ready task of
// highest priority, refuses work whose blocker is not done, tells a caller
// with nothing ready why, and hands each of several concurrent callers a
// different task.
func TestTaskNext(t *testing.T) {
	e := setup(t)
	worker := asAgent(t, e.alice, "worker", "")
	dep, _ := mustCall(t, e.alice, "task_create", `{"title":"schema"}`)
	blocked, _ := mustCall(t, e.alice, "task_create", fmt.Sprintf(`{"title":"migrate","priority":5,"blocked_by":[%q]}`, dep["task_id"]))
	if blocked["ready"] == true {
		t.Fatalf("a task with an open blocker reads ready: %v", blocked)
	}
	m, text := mustCall(t, worker, "task_next", `{}`)
	got := m["task"].(map[string]any)
	if got["task_id"] != dep["task_id"] || got["state"] != "claimed" {
		t.Fatalf("task_next took %v (%s); want the unblocked %v", got["task_id"], text, dep["task_id"])
	}
	m, text = mustCall(t, worker, "task_next", `{}`)
	if m["task"] != nil || m["waiting"] != float64(1) || !strings.Contains(text, "Nothing ready") {
		t.Fatalf("with the blocker claimed: %v %s", m, text)
	}
	list, text := mustCall(t, e.alice, "task_list", `{"state":"open"}`)
	if !strings.Contains(text, "waiting on "+dep["task_id"].(string)) || list["tasks"].([]any)[0].(map[string]any)["blocked_by"] == nil {
		t.Errorf("task_list does not show the dependency: %s", text)
	}
	v := got["version"].(float64)
	for _, st := range []string{"in_progress", "review", "done"} {
		r, _ := mustCall(t, worker, "task_update", fmt.Sprintf(`{"task_id":%q,"version":%d,"state":%q}`, got["task_id"], int64(v), st))
		v = r["version"].(float64)
	}
	m, _ = mustCall(t, worker, "task_next", `{}`)
	if m["task"] == nil || m["task"].(map[string]any)["task_id"] != blocked["task_id"] {
		t.Fatalf("once its blocker is done: %v", m)
	}

	// A cycle through task_update is refused.
	a, _ := mustCall(t, e.alice, "task_create", `{"title":"a"}`)
	b, _ := mustCall(t, e.alice, "task_create", fmt.Sprintf(`{"title":"b","blocked_by":[%q]}`, a["task_id"]))
	mustFail(t, e.alice, "task_update", fmt.Sprintf(`{"task_id":%q,"version":1,"blocked_by":[%q]}`, a["task_id"], b["task_id"]), OutcomeInvalid, "cycle")
	mustFail(t, e.alice, "task_update", fmt.Sprintf(`{"task_id":%q,"version":1,"priority":2,"blocked_by":["tk_00000000000000000000000000"]}`, a["task_id"]),
		OutcomeNotFound, "blocked_by tk_00000000000000000000000000 names no task")
	mustFail(t, e.alice, "task_update", fmt.Sprintf(`{"task_id":%q,"version":9,"priority":2}`, a["task_id"]), OutcomeConflict, "call again with version 1")

	// Skills the caller has not declared keep a ready task from it.
	r, _ := mustCall(t, e.alice, "task_update", fmt.Sprintf(`{"task_id":%q,"version":1,"skills":["rust"]}`, a["task_id"]))
	if m, text := mustCall(t, worker, "task_next", `{}`); m["task"] != nil || m["unskilled"] != float64(1) {
		t.Fatalf("task_next with a rust task and no rust: %v %s", m, text)
	}
	mustCall(t, e.alice, "task_update", fmt.Sprintf(`{"task_id":%q,"version":%d,"skills":[]}`, a["task_id"], int64(r["version"].(float64))))

	// Concurrent callers: every open task goes to exactly one of them.
	const n = 6
	var callers []*testCaller
	for i := range n {
		callers = append(callers, &testCaller{sc: asAgent(t, e.alice, fmt.Sprint("racer", i), "")})
	}
	var wg sync.WaitGroup
	for _, c := range callers {
		wg.Go(func() { c.m, c.text, c.err = call(t, c.sc, "task_next", `{}`) })
	}
	wg.Wait()
	seen := map[any]bool{}
	for _, c := range callers {
		if c.err != nil {
			t.Fatalf("task_next: %s", c.text)
		}
		if tk, ok := c.m["task"].(map[string]any); ok {
			if seen[tk["task_id"]] {
				t.Fatalf("task %v handed out twice", tk["task_id"])
			}
			seen[tk["task_id"]] = true
		}
	}
	// a is open and ready; b waits on a.
	if len(seen) != 1 || !seen[a["task_id"]] {
		t.Fatalf("concurrent task_next took %v; want only %v", seen, a["task_id"])
	}
}

// testCaller is one concurrent caller and its reply.
type testCaller struct {
	sc   *tenant.Scope
	m    map[string]any
	text string
	err  error
}
