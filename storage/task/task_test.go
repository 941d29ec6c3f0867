package task_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/task"
	"github.com/coditect/coditect/storage/tenant"
)

func TestMain(m *testing.M) {
	agenttest.Main(m, map[string]agenttest.Role{"claimer": claimer})
}

type fixture struct {
	s     kv.Store
	ctx   context.Context
	admin *tenant.Scope
	a, b  *tenant.Scope
	aID   string
	bID   string
}

func setup(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{}
	f.s, _ = agenttest.Open(t)
	f.ctx = agenttest.Context(t, agenttest.NewClock())
	f.admin = agenttest.Scope(t, f.s, "acme", "alice")
	a, as := agenttest.Agent(t, f.ctx, f.admin, "a", agent.Registration{})
	b, bs := agenttest.Agent(t, f.ctx, f.admin, "b", agent.Registration{})
	f.a, f.b, f.aID, f.bID = as, bs, a.ID, b.ID
	return f
}

func TestLifecycle(t *testing.T) {
	f := setup(t)
	tk, err := task.Create(f.ctx, f.admin, task.New{Title: "Fix the watcher", Description: "It drops events.\nSee issue 7."})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tk.ID, "tk_") || tk.State != task.Open || tk.Version != 1 || tk.CreatedBy != "alice" {
		t.Fatalf("created %+v", tk)
	}
	tk, err = task.Claim(f.ctx, f.a, tk.ID, 1)
	if err != nil || tk.State != task.Claimed || tk.Assignee != f.aID || tk.Version != 2 {
		t.Fatalf("claim: %+v, %v", tk, err)
	}
	for _, to := range []task.State{task.InProgress, task.Blocked, task.InProgress, task.Review, task.InProgress, task.Review, task.Done} {
		tk, err = task.Transition(f.ctx, f.a, tk.ID, tk.Version, to, "moving on")
		if err != nil || tk.State != to {
			t.Fatalf("to %s: %+v, %v", to, tk, err)
		}
	}
	if tk.Version != 9 {
		t.Fatalf("version %d after 8 changes", tk.Version)
	}
	_, err = task.Transition(f.ctx, f.a, tk.ID, tk.Version, task.Open, "")
	var te *task.TransitionError
	if !errors.As(err, &te) || te.From != task.Done || len(te.Allowed) != 0 || !strings.Contains(err.Error(), "none: it is final") {
		t.Fatalf("reopening a done task: %v", err)
	}
	got, err := task.Get(f.ctx, f.b, tk.ID)
	if err != nil || !reflect.DeepEqual(got, tk) {
		t.Fatalf("Get: %+v, %v; want %+v", got, err, tk)
	}
	hist, err := task.History(f.ctx, f.admin, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range hist {
		kinds = append(kinds, ev.Kind)
	}
	want := []string{"task.created", "task.claimed"}
	for range 7 {
		want = append(want, "task.updated")
	}
	if !slices.Equal(kinds, want) {
		t.Fatalf("history %q, want %q", kinds, want)
	}
	if hist[1].Agent != f.aID || hist[1].Attrs["assignee"] != f.aID {
		t.Fatalf("claim event %+v", hist[1])
	}
}

func TestTransitions(t *testing.T) {
	// Walk to each state, then try every target from it.
	paths := map[task.State][]task.State{
		task.Open:       nil,
		task.Claimed:    {task.Claimed},
		task.InProgress: {task.Claimed, task.InProgress},
		task.Review:     {task.Claimed, task.InProgress, task.Review},
		task.Done:       {task.Claimed, task.InProgress, task.Review, task.Done},
		task.Blocked:    {task.Blocked},
		task.Cancelled:  {task.Cancelled},
	}
	allowed := map[task.State][]task.State{
		task.Open:       {task.Blocked, task.Cancelled},
		task.Claimed:    {task.InProgress, task.Open, task.Blocked, task.Cancelled},
		task.InProgress: {task.Review, task.Open, task.Blocked, task.Cancelled},
		task.Review:     {task.Done, task.InProgress, task.Cancelled},
		task.Blocked:    {task.Open, task.Cancelled}, // in_progress needs an assignee, claimed needs Claim
		task.Cancelled:  {task.Open},
		task.Done:       nil,
	}
	f := setup(t)
	walk := func(t *testing.T, from task.State) task.Task {
		tk, err := task.Create(f.ctx, f.admin, task.New{Title: "t"})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range paths[from] {
			if s == task.Claimed {
				tk, err = task.Claim(f.ctx, f.a, tk.ID, tk.Version)
			} else {
				tk, err = task.Transition(f.ctx, f.a, tk.ID, tk.Version, s, "")
			}
			if err != nil {
				t.Fatalf("walking to %s: %v", from, err)
			}
		}
		return tk
	}
	for _, from := range task.States() {
		for _, to := range task.States() {
			t.Run(string(from)+"→"+string(to), func(t *testing.T) {
				tk := walk(t, from)
				got, err := task.Transition(f.ctx, f.a, tk.ID, tk.Version, to, "")
				if slices.Contains(allowed[from], to) {
					if err != nil || got.State != to {
						t.Fatalf("%v", err)
					}
					if to == task.Open && got.Assignee != "" {
						t.Fatalf("reopened with assignee %q", got.Assignee)
					}
					return
				}
				var te *task.TransitionError
				if !errors.As(err, &te) || !errors.Is(err, task.ErrTransition) {
					t.Fatalf("got %+v, %v; want a *TransitionError", got, err)
				}
				if !slices.Equal(te.Allowed, task.Allowed(from)) || !strings.Contains(err.Error(), "may go to") {
					t.Fatalf("error %q does not list the allowed states", err)
				}
				if after, _ := task.Get(f.ctx, f.a, tk.ID); !reflect.DeepEqual(after, tk) {
					t.Fatalf("a refused transition changed the task: %+v", after)
				}
			})
		}
	}
}

func TestClaimVersionsAndAssign(t *testing.T) {
	f := setup(t)
	tk, _ := task.Create(f.ctx, f.admin, task.New{Title: "t"})
	if _, err := task.Claim(f.ctx, f.a, tk.ID, 1); err != nil {
		t.Fatal(err)
	}
	_, err := task.Claim(f.ctx, f.b, tk.ID, 1)
	var ve *task.VersionError
	if !errors.As(err, &ve) || ve.Current.Version != 2 || ve.Current.Assignee != f.aID || !strings.Contains(err.Error(), "assigned to "+f.aID) {
		t.Fatalf("stale claim: %v", err)
	}
	if _, err := task.Claim(f.ctx, f.b, tk.ID, 2); !errors.Is(err, task.ErrTransition) {
		t.Fatalf("claiming a claimed task at its version: %v", err)
	}
	if _, err := task.Claim(f.ctx, f.admin, tk.ID, 2); !errors.Is(err, task.ErrInvalid) {
		t.Fatalf("claim without an agent: %v", err)
	}
	// Reassign, unassign, assign.
	tk, err = task.Assign(f.ctx, f.admin, tk.ID, 2, f.bID)
	if err != nil || tk.Assignee != f.bID || tk.State != task.Claimed {
		t.Fatalf("reassign: %+v, %v", tk, err)
	}
	tk, err = task.Assign(f.ctx, f.admin, tk.ID, tk.Version, "")
	if err != nil || tk.Assignee != "" || tk.State != task.Open {
		t.Fatalf("unassign: %+v, %v", tk, err)
	}
	tk, err = task.Assign(f.ctx, f.admin, tk.ID, tk.Version, f.aID)
	if err != nil || tk.Assignee != f.aID || tk.State != task.Claimed {
		t.Fatalf("assign: %+v, %v", tk, err)
	}
	if _, err := task.Assign(f.ctx, f.admin, tk.ID, tk.Version, "ag_nobody"); !errors.Is(err, agent.ErrNotFound) {
		t.Fatalf("assign to an unknown agent: %v", err)
	}
	hist, _ := task.History(f.ctx, f.admin, tk.ID)
	var assignees []string
	for _, ev := range hist {
		if ev.Kind == "task.assigned" || ev.Kind == "task.claimed" {
			a, _ := ev.Attrs["assignee"].(string)
			assignees = append(assignees, ev.Kind+":"+a)
		}
	}
	want := []string{"task.claimed:" + f.aID, "task.assigned:" + f.bID, "task.assigned:", "task.assigned:" + f.aID}
	if !slices.Equal(assignees, want) {
		t.Fatalf("assignment history %q, want %q", assignees, want)
	}
}

func TestClaimRaceInProcess(t *testing.T) {
	f := setup(t)
	tk, _ := task.Create(f.ctx, f.admin, task.New{Title: "t"})
	var scopes []*tenant.Scope
	for i := range 16 {
		_, sc := agenttest.Agent(t, f.ctx, f.admin, fmt.Sprint("r", i), agent.Registration{})
		scopes = append(scopes, sc)
	}
	var wins, stale, other int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, sc := range scopes {
		wg.Go(func() {
			_, err := task.Claim(f.ctx, sc, tk.ID, tk.Version)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, task.ErrVersion):
				stale++
			default:
				other++
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins != 1 || stale != len(scopes)-1 {
		t.Fatalf("%d winners, %d stale, %d other", wins, stale, other)
	}
}

// claimer is a child process: args are the store path, the task id, its
// version and the number of goroutines. Each goroutine, as its own agent,
// claims the task once the parent says "go"; it prints "won" or "lost".
func claimer(args []string, out io.Writer, in *bufio.Reader) error {
	version, _ := strconv.ParseInt(args[2], 10, 64)
	goroutines, _ := strconv.Atoi(args[3])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := agenttest.OpenPath(ctx, args[0])
	if err != nil {
		return err
	}
	defer s.Close()
	sc, err := tenant.NewDirectory(s, "claimer").Local(ctx, "acme", "alice")
	if err != nil {
		return err
	}
	var scopes []*tenant.Scope
	for i := range goroutines {
		a, err := agent.Register(ctx, sc, agent.Registration{Name: fmt.Sprintf("p%d-g%d", os.Getpid(), i), Client: "claimer"})
		if err != nil {
			return err
		}
		as, _ := sc.WithAgent(a.ID)
		scopes = append(scopes, as)
	}
	fmt.Fprintln(out, "ready")
	if _, err := in.ReadString('\n'); err != nil {
		return err
	}
	errs := make(chan error, goroutines)
	var wg sync.WaitGroup
	for _, as := range scopes {
		wg.Go(func() {
			_, err := task.Claim(ctx, as, args[1], version)
			switch {
			case err == nil:
				fmt.Fprintf(out, "won %s\n", as.Principal().Agent)
			case errors.Is(err, task.ErrVersion):
				fmt.Fprintln(out, "lost")
			default:
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	fmt.Fprintln(out, "done")
	return nil
}

// TestClaimRaceAcrossProcesses: 3 processes × 8 goroutines claim one task
// at one version: exactly one wins, and the task and its history agree.
func TestClaimRaceAcrossProcesses(t *testing.T) {
	const procs, goroutines = 3, 8
	s, path := agenttest.Open(t)
	ctx := agenttest.Context(t, nil)
	admin := agenttest.Scope(t, s, "acme", "alice")
	tk, err := task.Create(ctx, admin, task.New{Title: "contested"})
	if err != nil {
		t.Fatal(err)
	}
	var children []*agenttest.Child
	for range procs {
		children = append(children, agenttest.Start(t, "claimer", path, tk.ID, strconv.FormatInt(tk.Version, 10), strconv.Itoa(goroutines)))
	}
	for _, c := range children {
		c.Expect(t, "ready", time.Minute)
	}
	for _, c := range children {
		c.Send(t, "go")
	}
	var winners []string
	lost := 0
	for _, c := range children {
		for _, line := range c.Wait(t, time.Minute) {
			switch {
			case strings.HasPrefix(line, "won "):
				winners = append(winners, strings.TrimPrefix(line, "won "))
			case line == "lost":
				lost++
			}
		}
	}
	if len(winners) != 1 || lost != procs*goroutines-1 {
		t.Fatalf("winners %q, %d lost; want exactly one winner", winners, lost)
	}
	got, err := task.Get(ctx, admin, tk.ID)
	if err != nil || got.Assignee != winners[0] || got.State != task.Claimed || got.Version != 2 {
		t.Fatalf("task after the race: %+v, %v", got, err)
	}
	hist, _ := task.History(ctx, admin, tk.ID)
	if len(hist) != 2 || hist[1].Kind != "task.claimed" || hist[1].Agent != winners[0] {
		t.Fatalf("history %+v", hist)
	}
}

func TestList(t *testing.T) {
	f := setup(t)
	var all []task.Task
	for i := range 7 {
		tk, err := task.Create(f.ctx, f.admin, task.New{Title: fmt.Sprint("t", i)})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, tk)
	}
	// t0, t1 claimed by a; t2 by b and in progress; t3 cancelled.
	must := func(tk task.Task, err error) task.Task {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	all[0] = must(task.Claim(f.ctx, f.a, all[0].ID, 1))
	all[1] = must(task.Claim(f.ctx, f.a, all[1].ID, 1))
	all[2] = must(task.Claim(f.ctx, f.b, all[2].ID, 1))
	all[2] = must(task.Transition(f.ctx, f.b, all[2].ID, 2, task.InProgress, ""))
	all[3] = must(task.Transition(f.ctx, f.admin, all[3].ID, 1, task.Cancelled, "dup"))

	titles := func(f task.Filter, sc *tenant.Scope) []string {
		t.Helper()
		var out []string
		for {
			page, err := task.List(context.Background(), sc, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, tk := range page.Tasks {
				out = append(out, tk.Title)
			}
			if page.Next == "" {
				slices.Sort(out)
				return out
			}
			f.After = page.Next
		}
	}
	for _, tc := range []struct {
		name string
		f    task.Filter
		want []string
	}{
		{"all", task.Filter{}, []string{"t0", "t1", "t2", "t3", "t4", "t5", "t6"}},
		{"all, pages of 2", task.Filter{Limit: 2}, []string{"t0", "t1", "t2", "t3", "t4", "t5", "t6"}},
		{"open", task.Filter{State: task.Open}, []string{"t4", "t5", "t6"}},
		{"open, pages of 1", task.Filter{State: task.Open, Limit: 1}, []string{"t4", "t5", "t6"}},
		{"claimed", task.Filter{State: task.Claimed}, []string{"t0", "t1"}},
		{"a's", task.Filter{Assignee: f.aID}, []string{"t0", "t1"}},
		{"b's in progress", task.Filter{Assignee: f.bID, State: task.InProgress}, []string{"t2"}},
		{"b's claimed", task.Filter{Assignee: f.bID, State: task.Claimed}, nil},
		{"done", task.Filter{State: task.Done}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := titles(tc.f, f.admin); !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestBadInputWritesNothing(t *testing.T) {
	f := setup(t)
	tk, _ := task.Create(f.ctx, f.admin, task.New{Title: "t"})
	before := agenttest.SnapshotAll(t, f.s)
	for _, tc := range []struct {
		name string
		call func() error
		want error
		says string
	}{
		{"empty title", func() error { _, err := task.Create(f.ctx, f.admin, task.New{}); return err }, task.ErrInvalid, "title is empty"},
		{"long title", func() error {
			_, err := task.Create(f.ctx, f.admin, task.New{Title: strings.Repeat("t", task.MaxTitle+1)})
			return err
		}, task.ErrInvalid, "exceeds"},
		{"newline in title", func() error { _, err := task.Create(f.ctx, f.admin, task.New{Title: "a\nb"}); return err }, task.ErrInvalid, "control"},
		{"long description", func() error {
			_, err := task.Create(f.ctx, f.admin, task.New{Title: "t", Description: strings.Repeat("d", task.MaxDescription+1)})
			return err
		}, task.ErrInvalid, "description"},
		{"binary description", func() error {
			_, err := task.Create(f.ctx, f.admin, task.New{Title: "t", Description: "\xff"})
			return err
		}, task.ErrInvalid, "UTF-8"},
		{"empty id", func() error { _, err := task.Get(f.ctx, f.admin, ""); return err }, task.ErrInvalid, "empty task id"},
		{"unknown id", func() error { _, err := task.Get(f.ctx, f.admin, "tk_nope"); return err }, task.ErrNotFound, "tk_nope"},
		{"version 0", func() error { _, err := task.Claim(f.ctx, f.a, tk.ID, 0); return err }, task.ErrInvalid, "version"},
		{"stale version", func() error { _, err := task.Claim(f.ctx, f.a, tk.ID, 7); return err }, task.ErrVersion, "not 7"},
		{"unknown state", func() error { _, err := task.Transition(f.ctx, f.a, tk.ID, 1, "finished", ""); return err }, task.ErrInvalid, "send one of"},
		{"claimed via Transition", func() error { _, err := task.Transition(f.ctx, f.a, tk.ID, 1, task.Claimed, ""); return err }, task.ErrTransition, "Claim"},
		{"long note", func() error {
			_, err := task.Transition(f.ctx, f.a, tk.ID, 1, task.Blocked, strings.Repeat("n", task.MaxNote+1))
			return err
		}, task.ErrInvalid, "note"},
		{"open to in progress", func() error {
			_, err := task.Transition(f.ctx, f.a, tk.ID, 1, task.InProgress, "")
			return err
		}, task.ErrTransition, "may go to claimed, blocked, cancelled"},
		{"assign bad id", func() error { _, err := task.Assign(f.ctx, f.admin, tk.ID, 1, "\xff"); return err }, task.ErrInvalid, "UTF-8"},
		{"unassign unassigned", func() error { _, err := task.Assign(f.ctx, f.admin, tk.ID, 1, ""); return err }, task.ErrInvalid, "already"},
		{"list bad state", func() error { _, err := task.List(f.ctx, f.admin, task.Filter{State: "x"}); return err }, task.ErrInvalid, "state"},
		{"list bad limit", func() error { _, err := task.List(f.ctx, f.admin, task.Filter{Limit: 1001}); return err }, task.ErrInvalid, "limit"},
		{"list bad cursor", func() error { _, err := task.List(f.ctx, f.admin, task.Filter{After: "\xff"}); return err }, task.ErrInvalid, "Next"},
		{"history bad id", func() error { _, err := task.History(f.ctx, f.admin, ""); return err }, task.ErrInvalid, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("%v; want %v saying %q", err, tc.want, tc.says)
			}
		})
	}
	if after := agenttest.SnapshotAll(t, f.s); after != before {
		t.Fatal("bad input changed the store")
	}
	viewer := agenttest.RoleScope(t, f.s, "acme", "victor", tenant.RoleViewer)
	before = agenttest.SnapshotAll(t, f.s) // RoleScope wrote the viewer and its token
	va, _ := viewer.WithAgent(f.aID)
	if _, err := task.Create(f.ctx, viewer, task.New{Title: "t"}); !errors.Is(err, tenant.ErrForbidden) {
		t.Errorf("viewer Create: %v", err)
	}
	if _, err := task.Claim(f.ctx, va, tk.ID, 1); !errors.Is(err, tenant.ErrForbidden) {
		t.Errorf("viewer Claim: %v", err)
	}
	if after := agenttest.SnapshotAll(t, f.s); after != before {
		t.Fatal("bad input changed the store")
	}
	if _, err := task.Get(f.ctx, viewer, tk.ID); err != nil {
		t.Errorf("viewer Get: %v", err)
	}
}

// TestIsolation: tenant A, holding B's real task and agent ids, can
// neither read nor change B's tasks.
func TestIsolation(t *testing.T) {
	s, _ := agenttest.Open(t)
	ctx := agenttest.Context(t, nil)
	adminA := agenttest.Scope(t, s, "a", "alice")
	adminB := agenttest.Scope(t, s, "b", "alice")
	_, a := agenttest.Agent(t, ctx, adminA, "coder", agent.Registration{})
	bAgent, b := agenttest.Agent(t, ctx, adminB, "coder", agent.Registration{})
	bt, err := task.Create(ctx, adminB, task.New{Title: "B's secret"})
	if err != nil {
		t.Fatal(err)
	}
	if bt, err = task.Claim(ctx, b, bt.ID, bt.Version); err != nil {
		t.Fatal(err)
	}
	bBegin, bEnd := adminB.Space().Range()
	before := agenttest.Snapshot(t, s, bBegin, bEnd)

	for name, call := range map[string]func() error{
		"Get":        func() error { _, err := task.Get(ctx, adminA, bt.ID); return err },
		"Claim":      func() error { _, err := task.Claim(ctx, a, bt.ID, bt.Version); return err },
		"Transition": func() error { _, err := task.Transition(ctx, a, bt.ID, bt.Version, task.InProgress, ""); return err },
		"Assign":     func() error { _, err := task.Assign(ctx, adminA, bt.ID, bt.Version, ""); return err },
	} {
		if err := call(); !errors.Is(err, task.ErrNotFound) {
			t.Errorf("A's %s of B's task: %v; want ErrNotFound", name, err)
		}
	}
	for _, f := range []task.Filter{{}, {Assignee: bAgent.ID}, {State: task.Claimed}} {
		if page, err := task.List(ctx, adminA, f); err != nil || len(page.Tasks) != 0 {
			t.Errorf("A lists %+v, %v with %+v", page.Tasks, err, f)
		}
	}
	if hist, err := task.History(ctx, adminA, bt.ID); err != nil || len(hist) != 0 {
		t.Errorf("A reads B's task history: %+v, %v", hist, err)
	}
	at, _ := task.Create(ctx, adminA, task.New{Title: "A's"})
	if _, err := task.Assign(ctx, adminA, at.ID, at.Version, bAgent.ID); !errors.Is(err, agent.ErrNotFound) {
		t.Errorf("A assigning its task to B's agent: %v", err)
	}
	if after := agenttest.Snapshot(t, s, bBegin, bEnd); after != before {
		t.Fatal("tenant A's calls changed tenant B's keys")
	}
}

// TestProject: a task of a project is indexed under it, its events name
// the project, and a project that is not the tenant's (missing, or
// another tenant's) is refused and writes nothing.
func TestProject(t *testing.T) {
	f := setup(t)
	web, err := project.Create(f.ctx, f.admin, project.Spec{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	api, err := project.Create(f.ctx, f.admin, project.Spec{Name: "api"})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(title, proj string) task.Task {
		t.Helper()
		tk, err := task.Create(f.ctx, f.admin, task.New{Title: title, Project: proj})
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	w1, w2 := mk("w1", web.ID), mk("w2", web.ID)
	mk("a1", api.ID)
	mk("tenant-wide", "")
	if w1.Project != web.ID {
		t.Fatalf("created %+v, want project %s", w1, web.ID)
	}
	if _, err := task.Claim(f.ctx, f.a, w2.ID, 1); err != nil {
		t.Fatal(err)
	}
	list := func(fl task.Filter) []string {
		t.Helper()
		page, err := task.List(f.ctx, f.admin, fl)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, tk := range page.Tasks {
			out = append(out, tk.Title)
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		name string
		f    task.Filter
		want []string
	}{
		{"web", task.Filter{Project: web.ID}, []string{"w1", "w2"}},
		{"api", task.Filter{Project: api.ID}, []string{"a1"}},
		{"web open", task.Filter{Project: web.ID, State: task.Open}, []string{"w1"}},
		{"web claimed by a", task.Filter{Project: web.ID, Assignee: f.aID}, []string{"w2"}},
		{"api claimed by a", task.Filter{Project: api.ID, Assignee: f.aID}, nil},
		{"all", task.Filter{}, []string{"a1", "tenant-wide", "w1", "w2"}},
	} {
		if got := list(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	hist, err := task.History(f.ctx, f.admin, w2.ID)
	if err != nil || len(hist) != 2 || hist[0].Kind != "task.created" || hist[1].Kind != "task.claimed" {
		t.Fatalf("history of a project's task: %+v, %v", hist, err)
	}
	for _, ev := range hist {
		if ev.Project != web.ID || ev.Path != task.Path(w2.ID) {
			t.Fatalf("event %s names project %q path %q; want %s and %s", ev.Kind, ev.Project, ev.Path, web.ID, task.Path(w2.ID))
		}
	}
	evs, err := f.admin.Log().Query(f.ctx, audit.Query{Filter: audit.Filter{Project: api.ID, Kind: "task.created"}})
	if err != nil || len(evs.Events) != 1 || evs.Events[0].Attrs["title"] != "a1" {
		t.Fatalf("task events of project api: %+v, %v", evs.Events, err)
	}

	// Another tenant's project, and a missing one, are not found.
	other := agenttest.Scope(t, f.s, "globex", "gina")
	theirs, err := project.Create(f.ctx, other, project.Spec{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	before := agenttest.SnapshotAll(t, f.s)
	for _, id := range []string{theirs.ID, "pr_00000000000000000000000000"} {
		if _, err := task.Create(f.ctx, f.admin, task.New{Title: "t", Project: id}); !errors.Is(err, task.ErrNotFound) || !strings.Contains(err.Error(), id) {
			t.Errorf("task in project %s: %v; want ErrNotFound naming it", id, err)
		}
		if got := list(task.Filter{Project: id}); len(got) != 0 {
			t.Errorf("tasks of project %s: %q", id, got)
		}
	}
	if _, err := task.Create(f.ctx, f.admin, task.New{Title: "t", Project: strings.Repeat("p", 300)}); !errors.Is(err, task.ErrInvalid) {
		t.Errorf("a malformed project id: %v", err)
	}
	if _, err := task.List(f.ctx, f.admin, task.Filter{Project: ""}); err != nil {
		t.Error(err)
	}
	if after := agenttest.SnapshotAll(t, f.s); after != before {
		t.Fatal("refused tasks changed the store")
	}
}

// moveFixture is a task board with a creator agent, an assignee agent, a
// stranger agent (all of user alice), a member person (bob, through a
// token) and the local admin person (alice).
type moveFixture struct {
	*fixture
	creator, stranger *tenant.Scope
	member            *tenant.Scope
}

func setupMoves(t *testing.T) *moveFixture {
	t.Helper()
	f := setup(t)
	_, creator := agenttest.Agent(t, f.ctx, f.admin, "creator", agent.Registration{})
	m := agenttest.RoleScope(t, f.s, "acme", "bob", tenant.RoleMember)
	return &moveFixture{fixture: f, creator: creator, stranger: f.b, member: m}
}

// heldTask returns a task the creator agent created (or, when byPerson,
// the admin person) and agent a claimed, walked on to state s.
func (f *moveFixture) heldTask(t *testing.T, byPerson bool, s task.State) task.Task {
	t.Helper()
	by := f.creator
	if byPerson {
		by = f.admin
	}
	tk, err := task.Create(f.ctx, by, task.New{Title: "held"})
	if err != nil {
		t.Fatal(err)
	}
	if tk, err = task.Claim(f.ctx, f.a, tk.ID, tk.Version); err != nil {
		t.Fatal(err)
	}
	path := map[task.State][]task.State{
		task.Claimed: nil, task.InProgress: {task.InProgress}, task.Review: {task.InProgress, task.Review},
		task.Blocked: {task.Blocked},
	}[s]
	for _, to := range path {
		if tk, err = task.Transition(f.ctx, f.a, tk.ID, tk.Version, to, ""); err != nil {
			t.Fatal(err)
		}
	}
	return tk
}

// TestMovePermissions: a held task moves only by its assignee, its
// creator agent or a person; anyone else is refused with a *ForbiddenError
// naming the assignee, and nothing changes.
func TestMovePermissions(t *testing.T) {
	f := setupMoves(t)
	type op struct {
		name string
		do   func(sc *tenant.Scope, tk task.Task) (task.Task, error)
	}
	ops := []op{
		{"cancel", func(sc *tenant.Scope, tk task.Task) (task.Task, error) {
			return task.Transition(f.ctx, sc, tk.ID, tk.Version, task.Cancelled, "")
		}},
		{"reopen", func(sc *tenant.Scope, tk task.Task) (task.Task, error) {
			return task.Transition(f.ctx, sc, tk.ID, tk.Version, task.Open, "")
		}},
		{"reassign", func(sc *tenant.Scope, tk task.Task) (task.Task, error) {
			return task.Assign(f.ctx, sc, tk.ID, tk.Version, f.bID)
		}},
		{"unassign", func(sc *tenant.Scope, tk task.Task) (task.Task, error) {
			return task.Assign(f.ctx, sc, tk.ID, tk.Version, "")
		}},
	}
	for _, c := range []struct {
		caller   string
		sc       *tenant.Scope
		byPerson bool // the task's creator was the admin person
		allowed  bool
	}{
		{"assignee", f.a, false, true},
		{"creator agent", f.creator, false, true},
		{"admin person", f.admin, false, true},
		{"member person", f.member, false, true},
		{"stranger agent", f.stranger, false, false},
		// A person's agents do not inherit the person's right as creator.
		{"agent of the person who created it", f.stranger, true, false},
		{"the person who created it", f.admin, true, true},
	} {
		for _, state := range []task.State{task.Claimed, task.InProgress, task.Review, task.Blocked} {
			for _, o := range ops {
				t.Run(c.caller+"/"+string(state)+"/"+o.name, func(t *testing.T) {
					tk := f.heldTask(t, c.byPerson, state)
					if state == task.Review && o.name == "reopen" {
						return // review → open is no transition for anyone
					}
					got, err := o.do(c.sc, tk)
					if c.allowed {
						if err != nil {
							t.Fatalf("refused: %v", err)
						}
						return
					}
					var fe *task.ForbiddenError
					if !errors.As(err, &fe) || !errors.Is(err, tenant.ErrForbidden) || fe.Task.Assignee != f.aID ||
						!strings.Contains(err.Error(), "assigned to agent "+f.aID) {
						t.Fatalf("got %+v, %v; want a *ForbiddenError naming %s", got, err, f.aID)
					}
					if after, _ := task.Get(f.ctx, f.admin, tk.ID); !reflect.DeepEqual(after, tk) {
						t.Fatalf("a refused move changed the task: %+v", after)
					}
					if n := task.Next(tk, c.sc.Principal()); len(n) != 0 {
						t.Fatalf("Next offers %v to a caller that may not move the task", n)
					}
				})
			}
		}
	}
	// Claiming a blocked task held by another is a move too.
	tk := f.heldTask(t, false, task.Blocked)
	if _, err := task.Claim(f.ctx, f.stranger, tk.ID, tk.Version); !errors.Is(err, tenant.ErrForbidden) {
		t.Fatalf("a stranger claimed a blocked task of another: %v", err)
	}
	if got, err := task.Claim(f.ctx, f.a, tk.ID, tk.Version); err != nil || got.State != task.Claimed {
		t.Fatalf("the assignee reclaiming its blocked task: %+v, %v", got, err)
	}
	// A task nobody holds is anyone's: open, and done or cancelled.
	tk, _ = task.Create(f.ctx, f.creator, task.New{Title: "free"})
	if _, err := task.Transition(f.ctx, f.stranger, tk.ID, tk.Version, task.Blocked, ""); err != nil {
		t.Fatalf("blocking an open task: %v", err)
	}
}

// TestNextIsTransition: for every state, every kind of caller and every
// target state, Transition succeeds exactly when Next lists the target.
func TestNextIsTransition(t *testing.T) {
	f := setupMoves(t)
	callers := map[string]*tenant.Scope{"assignee": f.a, "creator": f.creator, "stranger": f.stranger, "person": f.member}
	// at returns a task in state s: held by a where the state allows.
	at := func(t *testing.T, s task.State) task.Task {
		switch s {
		case task.Claimed, task.InProgress, task.Review, task.Blocked:
			return f.heldTask(t, false, s)
		}
		tk, err := task.Create(f.ctx, f.creator, task.New{Title: "t"})
		if err != nil {
			t.Fatal(err)
		}
		path := map[task.State][]task.State{task.Done: {task.InProgress, task.Review, task.Done}, task.Cancelled: {task.Cancelled}}[s]
		if len(path) > 0 && path[0] == task.InProgress {
			if tk, err = task.Claim(f.ctx, f.a, tk.ID, tk.Version); err != nil {
				t.Fatal(err)
			}
		}
		for _, to := range path {
			if tk, err = task.Transition(f.ctx, f.a, tk.ID, tk.Version, to, ""); err != nil {
				t.Fatal(err)
			}
		}
		return tk
	}
	for _, from := range task.States() {
		for name, sc := range callers {
			next := task.Next(at(t, from), sc.Principal())
			for _, to := range task.States() {
				tk := at(t, from)
				_, err := task.Transition(f.ctx, sc, tk.ID, tk.Version, to, "")
				if want := slices.Contains(next, to); (err == nil) != want {
					t.Errorf("%s %s→%s: Next %v says %v, Transition: %v", name, from, to, next, want, err)
				}
			}
		}
	}
}
