package task

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/storage/txhook"
)

// The task graph: a task has a priority (higher first), may be blocked by
// other tasks of its tenant (BlockedBy), may be a sub-task of another
// (Parent) and may require skills (Skills) that an agent's declared
// capabilities must all cover. A task is ready when it is open and every
// task it is blocked by is done; a cancelled blocker does not count as
// done (its dependents wait until a person removes the dependency or
// reopens it). Readiness is computed when tasks are read, never stored, so
// completing a task makes its dependents ready with no write of theirs.
// Open tasks are indexed by priority (byOpenPriority), so ClaimNext reads
// one range, highest priority first and, within a priority, by id (ids
// roughly follow creation time).

// Graph limits.
const (
	MaxPriority  = 1_000_000
	MaxBlockedBy = 32
	MaxSkills    = 16
	maxSkill     = 64
	// maxWalk bounds the tasks one cycle check visits.
	maxWalk = 1000
)

// byOpenPriority indexes open tasks by inverted priority.
const byOpenPriority = "open_priority"

// priorityValue is the index value of priority p: zero-padded
// MaxPriority-p, so that higher priorities sort first.
func priorityValue(p int) string { return fmt.Sprintf("%07d", MaxPriority-p) }

// openPriority is the open-priority index: (value, id) under it.
func openPriority(sp keyspace.TenantSpace) keyspace.Subspace {
	return sp.TaskIndexes().Sub(byOpenPriority)
}

// Plan changes a task's place in the graph; nil fields are left as they are.
type Plan struct {
	Priority  *int
	BlockedBy *[]string
	Parent    *string
	Skills    *[]string
}

func (pl Plan) empty() bool {
	return pl.Priority == nil && pl.BlockedBy == nil && pl.Parent == nil && pl.Skills == nil
}

// check validates the plan's forms (not the ids' existence).
func (pl Plan) check(sc *tenant.Scope) error {
	if pl.Priority != nil && (*pl.Priority < -MaxPriority || *pl.Priority > MaxPriority) {
		return invalid("priority %d is outside [%d, %d]", *pl.Priority, -MaxPriority, MaxPriority)
	}
	if pl.BlockedBy != nil {
		if len(*pl.BlockedBy) > MaxBlockedBy {
			return invalid("blocked_by lists %d tasks; at most %d", len(*pl.BlockedBy), MaxBlockedBy)
		}
		for _, id := range *pl.BlockedBy {
			if _, err := taskKey(sc, id); err != nil {
				return invalid("blocked_by %q is not a task id", id)
			}
		}
	}
	if pl.Parent != nil && *pl.Parent != "" {
		if _, err := taskKey(sc, *pl.Parent); err != nil {
			return invalid("parent %q is not a task id", *pl.Parent)
		}
	}
	if pl.Skills != nil {
		if len(*pl.Skills) > MaxSkills {
			return invalid("%d skills; at most %d", len(*pl.Skills), MaxSkills)
		}
		for _, s := range *pl.Skills {
			if err := checkText("skill", s, maxSkill, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// apply sets the plan's fields on t, checking in tx that the ids it names
// exist in the tenant and that they make no cycle through t.
func (pl Plan) apply(tx kv.ReadTx, sc *tenant.Scope, t *Task) error {
	if pl.Priority != nil {
		t.Priority = *pl.Priority
	}
	if pl.Skills != nil {
		t.Skills = dedupe(*pl.Skills)
	}
	if pl.BlockedBy != nil {
		ids := dedupe(*pl.BlockedBy)
		if err := checkEdges(tx, sc, t.ID, ids, func(u Task) []string { return u.BlockedBy }, "blocked_by"); err != nil {
			return err
		}
		t.BlockedBy = ids
	}
	if pl.Parent != nil {
		var ids []string
		if *pl.Parent != "" {
			ids = []string{*pl.Parent}
		}
		if err := checkEdges(tx, sc, t.ID, ids, func(u Task) []string {
			if u.Parent == "" {
				return nil
			}
			return []string{u.Parent}
		}, "parent"); err != nil {
			return err
		}
		t.Parent = *pl.Parent
	}
	return nil
}

func dedupe(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}

// checkEdges checks that every task in ids exists in the tenant and that
// none of them reaches self through next: an edge self → id would close a
// cycle otherwise.
func checkEdges(tx kv.ReadTx, sc *tenant.Scope, self string, ids []string, next func(Task) []string, field string) error {
	seen := map[string]bool{}
	queue := slices.Clone(ids)
	for _, id := range ids {
		if id == self {
			return invalid("%s %s: a task cannot depend on itself", field, id)
		}
	}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		if seen[id] {
			continue
		}
		if seen[id] = true; len(seen) > maxWalk {
			return invalid("%s: the graph behind it holds more than %d tasks", field, maxWalk)
		}
		u, _, err := load(tx, sc, id)
		if err != nil {
			if isNotFound(err) { // another tenant's ids too
				return &EdgeError{Field: field, ID: id, Err: err}
			}
			return err
		}
		for _, n := range next(u) {
			if n == self {
				return invalid("%s %s would make a cycle: %s already depends on this task %s", field, ids, id, self)
			}
			queue = append(queue, n)
		}
	}
	return nil
}

// EdgeError reports a blocked_by or parent id (Field) that names no task
// of the tenant, or a task the graph behind it leads to that is gone. It
// wraps ErrNotFound.
type EdgeError struct {
	Field, ID string
	Err       error
}

func (e *EdgeError) Error() string { return fmt.Sprintf("%s %s: %v", e.Field, e.ID, e.Err) }

// Unwrap returns the not-found error.
func (e *EdgeError) Unwrap() error { return e.Err }

// waiting returns the ids of t's blockers that are not done.
func waiting(tx kv.ReadTx, sc *tenant.Scope, t Task) ([]string, error) {
	var out []string
	for _, id := range t.BlockedBy {
		u, _, err := load(tx, sc, id)
		switch {
		case err != nil && !isNotFound(err):
			return nil, err
		case err != nil || u.State != Done:
			out = append(out, id)
		}
	}
	return out, nil
}

// annotate sets t's computed Waiting and Ready.
func annotate(tx kv.ReadTx, sc *tenant.Scope, t *Task) error {
	w, err := waiting(tx, sc, *t)
	if err != nil {
		return err
	}
	t.Waiting, t.Ready = w, t.State == Open && len(w) == 0
	return nil
}

// Replan changes a task's priority, dependencies, parent or skills at
// version, under the same rule as Transition (MayMove).
func Replan(ctx context.Context, sc *tenant.Scope, id string, version int64, pl Plan) (Task, error) {
	if pl.empty() {
		return Task{}, invalid("nothing to change: send a priority, blocked_by, parent or skills")
	}
	if err := pl.check(sc); err != nil {
		return Task{}, err
	}
	return change(ctx, sc, id, version, txhook.Hook[Task]{}, func(tx kv.Tx, t *Task) (string, string, map[string]any, error) {
		if err := MayMove(*t, sc.Principal()); err != nil {
			return "", "", nil, err
		}
		if err := pl.apply(tx, sc, t); err != nil {
			return "", "", nil, err
		}
		attrs := map[string]any{"priority": t.Priority}
		if len(t.BlockedBy) > 0 {
			attrs["blocked_by"] = t.BlockedBy
		}
		if t.Parent != "" {
			attrs["parent"] = t.Parent
		}
		return "task.updated", fmt.Sprintf("task %s replanned (priority %d, blocked by %d)", t.ID, t.Priority, len(t.BlockedBy)), attrs, nil
	})
}

// Backlog counts the work ClaimNext passed over.
type Backlog struct {
	// Waiting are open tasks whose blockers are not all done.
	Waiting int `json:"waiting"`
	// Unskilled are ready tasks needing skills the agent did not declare.
	Unskilled int `json:"unskilled"`
	// Held are the tenant's tasks claimed, in progress or in review (of
	// every project).
	Held int `json:"held"`
}

// ClaimNext claims for the scope's agent, in one transaction, the
// highest-priority ready task (of project, when set) whose skills are all
// among the agent's capabilities. ok is false when none is; Backlog then
// counts what waits. Concurrent calls never claim one task twice: each
// reads the task it claims, so of two that pick it one conflicts and
// retries.
func ClaimNext(ctx context.Context, sc *tenant.Scope, project string) (t Task, ok bool, b Backlog, err error) {
	return ClaimNextWith(ctx, sc, project, txhook.Hook[Pick]{})
}

// Pick is what ClaimNext did: the task it claimed (OK), or else the
// backlog it passed over.
type Pick struct {
	Task    Task
	OK      bool
	Backlog Backlog
}

// ClaimNextWith is ClaimNext with h's reads and writes in its
// transaction: h.After gets what it picked, also when nothing was ready.
func ClaimNextWith(ctx context.Context, sc *tenant.Scope, project string, h txhook.Hook[Pick]) (t Task, ok bool, b Backlog, err error) {
	me := sc.Principal().Agent
	if me == "" {
		return Task{}, false, b, invalid("the scope acts as no agent; register one and act as it")
	}
	if err := sc.CanWrite(); err != nil {
		return Task{}, false, b, err
	}
	if project != "" {
		if _, err := projectKey(sc, project); err != nil {
			return Task{}, false, b, err
		}
	}
	now := agent.Now(ctx)
	_, err = sc.Store().Update(ctx, func(tx kv.Tx) error {
		t, ok, b = Task{}, false, Backlog{}
		if err := h.RunBefore(tx); err != nil {
			return err
		}
		w := sc.Log().BatchWriter(tx)
		p, err := pickNext(tx, sc, w, me, project, now)
		if err != nil {
			return err
		}
		t, ok, b = p.Task, p.OK, p.Backlog
		if err := h.RunAfter(tx, w, p); err != nil {
			return err
		}
		w.Finish()
		return nil
	})
	return t, ok, b, err
}

// pickNext is ClaimNext's transaction: it claims the next ready task (of
// project, when set) for agent me, appending its event with w, or counts
// the backlog it passed over.
func pickNext(tx kv.Tx, sc *tenant.Scope, w *audit.Writer, me, project string, now time.Time) (Pick, error) {
	var p Pick
	sp := sc.Space()
	a, err := agent.Glimpse(tx, sc, me, now)
	if err != nil {
		return p, err
	}
	sub := openPriority(sp)
	begin, end := sub.Range()
	it := tx.GetRange(begin, end, kv.RangeOptions{})
	for n := 0; it.Next() && n < maxExamine; n++ {
		tup, err := sub.Unpack(it.KeyValue().Key)
		if err != nil || len(tup) != 2 {
			return p, fmt.Errorf("task: corrupt key %s: %v", kv.DisplayKey(it.KeyValue().Key), err)
		}
		id, _ := tup[1].(string)
		cand, key, err := load(tx, sc, id)
		if err != nil {
			return p, err
		}
		if cand.State != Open || (project != "" && cand.Project != project) {
			continue
		}
		if err := annotate(tx, sc, &cand); err != nil {
			return p, err
		}
		switch {
		case !cand.Ready:
			p.Backlog.Waiting++
		case !covers(a.Capabilities, cand.Skills):
			p.Backlog.Unskilled++
		default:
			old := cand
			cand.State, cand.Assignee, cand.Version, cand.Updated = Claimed, me, cand.Version+1, now
			cand.Ready, cand.Waiting = false, nil
			if err := save(tx, sc, key, &old, cand); err != nil {
				return p, err
			}
			if _, err := w.Append(event(sc, "task.claimed", cand,
				fmt.Sprintf("task %s claimed by agent %s (next ready)", cand.ID, me), map[string]any{"previous_assignee": ""})); err != nil {
				return p, err
			}
			p.Task, p.OK = cand, true
			return p, nil
		}
	}
	if err := it.Err(); err != nil {
		return p, err
	}
	for _, st := range []State{Claimed, InProgress, Review} {
		s, _ := sp.TaskIndex(byState, string(st))
		bg, en := s.Range()
		it := tx.GetRange(bg, en, kv.RangeOptions{Limit: maxExamine})
		for it.Next() {
			p.Backlog.Held++
		}
		if err := it.Err(); err != nil {
			return p, err
		}
	}
	return p, nil
}

// covers reports whether caps hold every skill.
func covers(caps, skills []string) bool {
	for _, s := range skills {
		if !slices.Contains(caps, s) {
			return false
		}
	}
	return true
}
