package task_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/task"
	"github.com/coditect/coditect/storage/tenant"
)

func ptr[T any](v T) *T { return &v }

func mustCreate(t *testing.T, f *fixture, title string, pl task.Plan) task.Task {
	t.Helper()
	tk, err := task.Create(f.ctx, f.admin, task.New{Title: title, Plan: pl})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// finish moves a claimed task of sc's agent to done.
func finish(t *testing.T, f *fixture, sc *tenant.Scope, tk task.Task) {
	t.Helper()
	var err error
	for _, to := range []task.State{task.InProgress, task.Review, task.Done} {
		if tk, err = task.Transition(f.ctx, sc, tk.ID, tk.Version, to, ""); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReadiness: a task is ready once every blocker is done; a cancelled
// blocker keeps it waiting; readiness shows in Get and List; ClaimNext
// takes the ready task only.
func TestReadiness(t *testing.T) {
	f := setup(t)
	dep := mustCreate(t, f, "schema", task.Plan{Priority: ptr(1)})
	other := mustCreate(t, f, "other", task.Plan{})
	top := mustCreate(t, f, "migrate", task.Plan{Priority: ptr(9), BlockedBy: &[]string{dep.ID, other.ID}})
	if got, _ := task.Get(f.ctx, f.admin, top.ID); got.Ready || !slices.Equal(got.Waiting, top.BlockedBy) {
		t.Fatalf("blocked task reads ready=%v waiting=%v", got.Ready, got.Waiting)
	}
	// The blocked task has the highest priority but is not ready: the
	// next ready one comes first.
	got, ok, _, err := task.ClaimNext(f.ctx, f.a, "")
	if err != nil || !ok || got.ID != dep.ID {
		t.Fatalf("first ClaimNext: %v %v %v; want %s", got.ID, ok, err, dep.ID)
	}
	finish(t, f, f.a, got)
	if _, err := task.Transition(f.ctx, f.admin, other.ID, other.Version, task.Cancelled, ""); err != nil {
		t.Fatal(err)
	}
	if _, ok, b, err := task.ClaimNext(f.ctx, f.a, ""); err != nil || ok || b.Waiting != 1 {
		t.Fatalf("with a cancelled blocker: ok=%v backlog=%+v err=%v; want nothing ready, 1 waiting", ok, b, err)
	}
	if _, err := task.Replan(f.ctx, f.admin, top.ID, top.Version, task.Plan{BlockedBy: &[]string{dep.ID}}); err != nil {
		t.Fatal(err)
	}
	page, err := task.List(f.ctx, f.admin, task.Filter{State: task.Open})
	if err != nil || len(page.Tasks) != 1 || !page.Tasks[0].Ready || len(page.Tasks[0].Waiting) != 0 {
		t.Fatalf("list of open tasks: %+v, %v", page.Tasks, err)
	}
	if got, ok, _, err := task.ClaimNext(f.ctx, f.b, ""); err != nil || !ok || got.ID != top.ID || got.Assignee != f.bID || got.State != task.Claimed {
		t.Fatalf("ClaimNext after its blocker is done: %+v %v %v", got, ok, err)
	}
}

// TestCyclesRefused: blocked_by and parent edges never close a cycle, and
// a refused plan changes nothing.
func TestCyclesRefused(t *testing.T) {
	f := setup(t)
	a := mustCreate(t, f, "a", task.Plan{})
	b := mustCreate(t, f, "b", task.Plan{BlockedBy: &[]string{a.ID}, Parent: ptr(a.ID)})
	c := mustCreate(t, f, "c", task.Plan{BlockedBy: &[]string{b.ID}, Parent: ptr(b.ID)})
	for name, pl := range map[string]task.Plan{
		"self":            {BlockedBy: &[]string{a.ID}},
		"a→c→b→a":         {BlockedBy: &[]string{c.ID}},
		"parent a→c→b→a":  {Parent: ptr(c.ID)},
		"self as parent":  {Parent: ptr(a.ID)},
		"missing blocker": {BlockedBy: &[]string{"tk_00000000000000000000000000"}},
	} {
		_, err := task.Replan(f.ctx, f.admin, a.ID, a.Version, pl)
		if err == nil || !(errors.Is(err, task.ErrInvalid) || errors.Is(err, task.ErrNotFound)) {
			t.Errorf("%s: %v; want refused", name, err)
		}
	}
	if got, _ := task.Get(f.ctx, f.admin, a.ID); got.Version != a.Version || len(got.BlockedBy) != 0 || got.Parent != "" {
		t.Errorf("refused plans changed the task: %+v", got)
	}
	if _, err := task.Replan(f.ctx, f.admin, c.ID, c.Version, task.Plan{BlockedBy: &[]string{a.ID, b.ID}}); err != nil {
		t.Errorf("an acyclic second blocker: %v", err)
	}
}

// TestCrossTenantIDsRefused: another tenant's task ids are not found as
// blockers or parents.
func TestCrossTenantIDsRefused(t *testing.T) {
	f := setup(t)
	other := agenttest.Scope(t, f.s, "globex", "bob")
	theirs, err := task.Create(f.ctx, other, task.New{Title: "theirs"})
	if err != nil {
		t.Fatal(err)
	}
	for name, pl := range map[string]task.Plan{"blocked_by": {BlockedBy: &[]string{theirs.ID}}, "parent": {Parent: ptr(theirs.ID)}} {
		if _, err := task.Create(f.ctx, f.admin, task.New{Title: "mine", Plan: pl}); !errors.Is(err, task.ErrNotFound) {
			t.Errorf("%s of another tenant's task: %v; want ErrNotFound", name, err)
		}
	}
	if page, _ := task.List(f.ctx, f.admin, task.Filter{}); len(page.Tasks) != 0 {
		t.Errorf("refused creations wrote %d tasks", len(page.Tasks))
	}
}

// TestPriorityOrderAndSkills: ClaimNext takes ready tasks highest priority
// first, oldest first within one, skipping tasks whose skills the agent
// lacks, and says what it passed over.
func TestPriorityOrderAndSkills(t *testing.T) {
	f := setup(t)
	gopher, gs := agenttest.Agent(t, f.ctx, f.admin, "gopher", agent.Registration{Capabilities: []string{"go", "sql"}})
	low := mustCreate(t, f, "low", task.Plan{Priority: ptr(-5)})
	mid1 := mustCreate(t, f, "mid1", task.Plan{})
	high := mustCreate(t, f, "high", task.Plan{Priority: ptr(7)})
	rust := mustCreate(t, f, "rust", task.Plan{Priority: ptr(100), Skills: &[]string{"rust"}})
	goSQL := mustCreate(t, f, "go+sql", task.Plan{Priority: ptr(50), Skills: &[]string{"go", "sql"}})
	mid2 := mustCreate(t, f, "mid2", task.Plan{})
	var order []string
	for {
		got, ok, b, err := task.ClaimNext(f.ctx, gs, "")
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			if b.Unskilled != 1 || b.Held != 5 || b.Waiting != 0 {
				t.Errorf("backlog %+v; want 1 unskilled (rust), 5 held", b)
			}
			break
		}
		if got.Assignee != gopher.ID {
			t.Fatalf("claimed for %s", got.Assignee)
		}
		order = append(order, got.Title)
	}
	// mid1 and mid2 share a priority: their order is their ids'.
	want := []string{goSQL.Title, high.Title, mid1.Title, mid2.Title, low.Title}
	if len(order) == len(want) && order[2] == mid2.Title {
		want[2], want[3] = mid2.Title, mid1.Title
	}
	if !slices.Equal(order, want) {
		t.Fatalf("claim order %v; want %v", order, want)
	}
	if got, ok, _, err := task.ClaimNext(f.ctx, f.a, ""); ok || err != nil {
		t.Fatalf("agent without rust took %v (%v)", got.Title, err)
	}
	_ = rust
}

// TestClaimNextRace: agents calling ClaimNext at once each get a different
// task; no task is claimed twice.
func TestClaimNextRace(t *testing.T) {
	f := setup(t)
	const tasks, agents = 6, 12
	for i := range tasks {
		mustCreate(t, f, fmt.Sprint("t", i), task.Plan{Priority: ptr(i % 3)})
	}
	var scopes []*tenant.Scope
	for i := range agents {
		_, sc := agenttest.Agent(t, f.ctx, f.admin, fmt.Sprint("r", i), agent.Registration{})
		scopes = append(scopes, sc)
	}
	var mu sync.Mutex
	claimed := map[string]string{}
	empty := 0
	var wg sync.WaitGroup
	for _, sc := range scopes {
		wg.Go(func() {
			got, ok, _, err := task.ClaimNext(f.ctx, sc, "")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Error(err)
			case !ok:
				empty++
			case claimed[got.ID] != "":
				t.Errorf("task %s claimed by %s and %s", got.ID, claimed[got.ID], got.Assignee)
			default:
				claimed[got.ID] = got.Assignee
			}
		})
	}
	wg.Wait()
	if len(claimed) != tasks || empty != agents-tasks {
		t.Fatalf("%d tasks claimed, %d empty-handed; want %d and %d", len(claimed), empty, tasks, agents-tasks)
	}
	for id, who := range claimed {
		if got, _ := task.Get(f.ctx, f.admin, id); got.Assignee != who || got.Version != 2 {
			t.Errorf("task %s: assignee %s version %d; the claim said %s", id, got.Assignee, got.Version, who)
		}
	}
}
