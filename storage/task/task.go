// Package task owns the tenant's tasks: units of work agents and people
// create, claim and move through a state machine
//
//	open → claimed → in_progress → review → done
//
// plus blocked and cancelled (see Allowed). A task that is held (it has an
// assignee and is claimed, in progress, in review or blocked) is moved —
// Transition, Assign, Claim — only by its assignee, its creator or a
// person: a scope acting as no agent, which the operator surfaces (CLI,
// dashboard) are and which Scope.CanWrite admits only as a member or an
// admin. Its creator is the agent that created it; a task a person created
// has no creator agent, and that person moves it as every person does (the
// person's agents do not inherit the right). Anyone else gets a
// *ForbiddenError naming the assignee (see MayMove). Next lists, for one
// caller, exactly the states Transition then accepts. Every change names
// the version it expects, so concurrent changes are optimistic: of
// several agents claiming one open task, exactly one wins and the others
// get a *VersionError. Every mutation is one transaction that also appends its
// audit event (task.created, task.claimed, task.updated, task.assigned)
// under the path "task:<id>", so History is the task's assignment and
// state history. Create, Claim and ClaimNext take a caller's reads and
// writes into that transaction through a txhook.Hook (CreateWith,
// ClaimWith, ClaimNextWith); they keep no retry marker of their own that
// Hook.Guarded could drop, so they ignore it.
//
// A task may belong to a project (storage/project): its id is stored,
// indexed, and named by the task's events, so that one project's board is
// one index range.
//
// Tasks form a graph (graph.go): a priority, the tasks a task is blocked
// by, a parent task and required skills. A task is ready when it is open
// and every task it is blocked by is done (a cancelled blocker is not
// done); ClaimNext claims the highest-priority ready task an agent's
// capabilities cover, in one transaction.
//
// It imports storage/kv, storage/keyspace, storage/audit, storage/tenant,
// storage/agent (assignees are agents; ids) and storage/txhook. It must not import
// storage/lease or storage/message nor any transport; it reads a project's
// record key to check the project exists, without importing its layer.
package task

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/errclass"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/storage/txhook"
)

// State is where a task is in its life.
type State string

// States.
const (
	Open       State = "open"
	Claimed    State = "claimed"
	InProgress State = "in_progress"
	Review     State = "review"
	Done       State = "done"
	Blocked    State = "blocked"
	Cancelled  State = "cancelled"
)

// transitions lists, for each state, the states Transition may move a task
// to. Claimed is entered only by Claim or Assign, which set the assignee.
var transitions = map[State][]State{
	Open:       {Claimed, Blocked, Cancelled},
	Claimed:    {InProgress, Open, Blocked, Cancelled},
	InProgress: {Review, Open, Blocked, Cancelled},
	Review:     {Done, InProgress, Cancelled},
	Blocked:    {Open, Claimed, InProgress, Cancelled},
	Cancelled:  {Open},
	Done:       {},
}

// States returns every state, in life order.
func States() []State {
	return []State{Open, Claimed, InProgress, Review, Done, Blocked, Cancelled}
}

// Allowed returns the states a task in state s may move to.
func Allowed(s State) []State { return slices.Clone(transitions[s]) }

// Limits.
const (
	MaxTitle       = 200
	MaxDescription = 16 << 10
	MaxNote        = 2_000
	DefaultLimit   = 100
	MaxLimit       = 1000
	// maxExamine bounds the tasks one page looks at; a page may then hold
	// fewer than its limit and still have a Next.
	maxExamine = 5000
)

// Errors, wrapped with detail; match them with errors.Is. A stale version
// is a *VersionError, an illegal transition a *TransitionError and a move
// of a task held by another a *ForbiddenError; permission errors wrap
// tenant.ErrForbidden and an unknown assignee agent.ErrNotFound.
var (
	// ErrInvalid: an argument is missing, malformed or too large.
	ErrInvalid = errclass.New(errclass.Invalid, "invalid argument")
	// ErrNotFound: no task with that id in the scope's tenant.
	ErrNotFound = errclass.New(errclass.NotFound, "task not found")
	// ErrVersion: the task changed since the version the caller expected.
	ErrVersion = errclass.New(errclass.Conflict, "task changed")
	// ErrTransition: the state machine does not allow the change.
	ErrTransition = errclass.New(errclass.Conflict, "illegal transition")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("task: %w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Task is a task.
type Task struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
	// Project is the id of the project the task belongs to; empty for a
	// task of the whole tenant.
	Project string `json:"project,omitempty"`
	State   State  `json:"state"`
	// Assignee is the agent working on the task, if any.
	Assignee string `json:"assignee,omitempty"`
	// Version increases by one with every change; changes name the version
	// they expect.
	Version   int64     `json:"version"`
	CreatedBy string    `json:"created_by"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	// Priority orders ready work: higher first (see graph.go).
	Priority int `json:"priority,omitempty"`
	// BlockedBy are the tasks that must be done before this one is ready.
	BlockedBy []string `json:"blocked_by,omitempty"`
	// Parent is the task this one is a sub-task of.
	Parent string `json:"parent,omitempty"`
	// Skills are capabilities an agent must all declare to get it from
	// ClaimNext.
	Skills []string `json:"skills,omitempty"`
	// Ready and Waiting are computed by Get and List, never stored: Ready
	// when the task is open and all of BlockedBy are done, Waiting the
	// blockers not done.
	Ready   bool     `json:"ready,omitempty"`
	Waiting []string `json:"waiting,omitempty"`
}

// VersionError reports a change based on a stale version.
type VersionError struct {
	ID       string
	Expected int64
	Current  Task
}

func (e *VersionError) Error() string {
	who := "unassigned"
	if e.Current.Assignee != "" {
		who = "assigned to " + e.Current.Assignee
	}
	return fmt.Sprintf("task: %v: %s is at version %d (%s, %s), not %d; get it again and decide with what it is now",
		ErrVersion, e.ID, e.Current.Version, e.Current.State, who, e.Expected)
}

// Is makes a *VersionError match ErrVersion.
func (e *VersionError) Is(target error) bool { return errors.Is(ErrVersion, target) }

// TransitionError reports a state change the machine does not allow.
type TransitionError struct {
	ID       string
	From, To State
	// Task is the task as it is now.
	Task Task
	// Allowed are the states the task may move to now.
	Allowed []State
	// Hint says how to reach To, when another call does it.
	Hint string
}

func (e *TransitionError) Error() string {
	allowed := "none: it is final"
	if len(e.Allowed) > 0 {
		var ss []string
		for _, s := range e.Allowed {
			ss = append(ss, string(s))
		}
		allowed = strings.Join(ss, ", ")
	}
	msg := fmt.Sprintf("task: %v: %s cannot go from %s to %s; from %s it may go to %s", ErrTransition, e.ID, e.From, e.To, e.From, allowed)
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// Is makes a *TransitionError match ErrTransition.
func (e *TransitionError) Is(target error) bool { return errors.Is(ErrTransition, target) }

// ForbiddenError reports a move of a held task by a caller that is
// neither its assignee nor its creator nor a person (see MayMove).
type ForbiddenError struct {
	// Task is the task as it is now.
	Task Task
	// Agent is the agent that tried to move it.
	Agent string
}

func (e *ForbiddenError) Error() string {
	return fmt.Sprintf("task: %v: %s is %s and assigned to agent %s; agent %s is neither its assignee nor its creator (%s), "+
		"so only they or a person through the operator surfaces may move it: message the assignee, or pick another open task",
		tenant.ErrForbidden, e.Task.ID, e.Task.State, e.Task.Assignee, e.Agent, e.Task.CreatedBy)
}

// Unwrap makes a *ForbiddenError match tenant.ErrForbidden, and its
// class.
func (e *ForbiddenError) Unwrap() error { return tenant.ErrForbidden }

// Held reports whether t is someone's work in progress: assigned, and
// claimed, in progress, in review or blocked. Only MayMove's callers move
// a held task.
func Held(t Task) bool {
	switch t.State {
	case Claimed, InProgress, Review, Blocked:
		return t.Assignee != ""
	}
	return false
}

// MayMove returns nil when principal p may move t — t is not held, or p is
// its assignee, its creator agent, or a person (no agent) — and a
// *ForbiddenError otherwise. Whether p may write at all is Scope.CanWrite's
// question.
func MayMove(t Task, p tenant.Principal) error {
	if !Held(t) || p.Agent == "" || p.Agent == t.Assignee || p.Agent == t.CreatedBy {
		return nil
	}
	return &ForbiddenError{Task: t, Agent: p.Agent}
}

// refuse returns why Transition of t to state to by p fails, or nil: the
// one rule that both Transition and Next apply.
func refuse(t Task, p tenant.Principal, to State) error {
	if err := MayMove(t, p); err != nil {
		return err
	}
	if to == Claimed {
		return &TransitionError{ID: t.ID, From: t.State, To: to, Task: t, Allowed: Allowed(t.State),
			Hint: "claim it with Claim, or assign it to an agent with Assign"}
	}
	if err := checkTransition(t, to, ""); err != nil {
		return err
	}
	if to == InProgress && t.Assignee == "" {
		return &TransitionError{ID: t.ID, From: t.State, To: to, Task: t, Allowed: Allowed(t.State),
			Hint: "an unassigned task must be claimed or assigned before work starts"}
	}
	return nil
}

// Next returns the states Transition moves t to when p calls it at t's
// version, in life order: Allowed(t.State) less claimed (which Claim and
// Assign reach), less in_progress for an unassigned task, and none when p
// may not move t. Replies that suggest moves list exactly these.
func Next(t Task, p tenant.Principal) []State {
	var out []State
	for _, s := range States() {
		if refuse(t, p, s) == nil {
			out = append(out, s)
		}
	}
	return out
}

// MayClaim reports whether Claim by p of t at its version succeeds as far
// as the task goes (p must act as a live agent of the tenant too).
func MayClaim(t Task, p tenant.Principal) bool {
	return p.Agent != "" && MayMove(t, p) == nil && slices.Contains(transitions[t.State], Claimed)
}

// Index names.
const (
	byState    = "state"
	byAssignee = "assignee"
	byProject  = "project"
)

func checkText(field, s string, max int, required bool) error {
	if err := agent.CheckText(field, s, max, required); err != nil {
		return invalid("%v", err)
	}
	return nil
}

// checkDescription allows newlines and tabs.
func checkDescription(s string) error {
	switch {
	case len(s) > MaxDescription:
		return invalid("description of %d bytes exceeds the limit of %d bytes", len(s), MaxDescription)
	case !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0:
		return invalid("description is not valid UTF-8 text (or holds a NUL byte)")
	}
	return nil
}

func taskKey(sc *tenant.Scope, id string) ([]byte, error) {
	k, err := sc.Space().Task(id)
	if err != nil {
		return nil, invalid("%v; send the id task.Create returned", err)
	}
	return k, nil
}

func load(tx kv.ReadTx, sc *tenant.Scope, id string) (Task, []byte, error) {
	key, err := taskKey(sc, id)
	if err != nil {
		return Task{}, nil, err
	}
	v, err := tx.Get(key)
	if err != nil {
		return Task{}, nil, err
	}
	if v == nil {
		return Task{}, nil, fmt.Errorf("task: %w: %q in this tenant", ErrNotFound, id)
	}
	var t Task
	if err := json.Unmarshal(v, &t); err != nil {
		return Task{}, nil, fmt.Errorf("task: corrupt task %s: %w", kv.DisplayKey(key), err)
	}
	return t, key, nil
}

// indexKeys returns the index entries of t.
func indexKeys(sp keyspace.TenantSpace, t Task) ([][]byte, error) {
	k, err := sp.TaskIndexEntry(byState, string(t.State), t.ID)
	if err != nil {
		return nil, err
	}
	keys := [][]byte{k}
	if t.Assignee != "" {
		k, err := sp.TaskIndexEntry(byAssignee, t.Assignee, t.ID)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if t.Project != "" {
		k, err := sp.TaskIndexEntry(byProject, t.Project, t.ID)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if t.State == Open {
		k, err := sp.TaskIndexEntry(byOpenPriority, priorityValue(t.Priority), t.ID)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// save writes t and moves its index entries from old (nil for a new task).
func save(tx kv.Tx, sc *tenant.Scope, key []byte, old *Task, t Task) error {
	sp := sc.Space()
	if old != nil {
		ks, err := indexKeys(sp, *old)
		if err != nil {
			return err
		}
		for _, k := range ks {
			tx.Clear(k)
		}
	}
	ks, err := indexKeys(sp, t)
	if err != nil {
		return err
	}
	for _, k := range ks {
		tx.Set(k, nil)
	}
	t.Ready, t.Waiting = false, nil // computed on read
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	tx.Set(key, b)
	return nil
}

// Path returns the audit path of a task's events, "task:<id>", which is
// also the lease resource (a key) for holding the task.
func Path(id string) string { return "task:" + id }

func event(sc *tenant.Scope, kind string, t Task, summary string, attrs map[string]any) audit.Event {
	ev := sc.Event(kind, summary)
	ev.Path, ev.Project = Path(t.ID), t.Project
	if attrs == nil {
		attrs = map[string]any{}
	}
	attrs["task"], attrs["state"], attrs["version"] = t.ID, string(t.State), t.Version
	if t.Assignee != "" {
		attrs["assignee"] = t.Assignee
	}
	ev.Attrs = attrs
	return ev
}

// New describes a task to create.
type New struct {
	Title       string
	Description string
	// Project is the id of the tenant's project the task belongs to
	// (optional).
	Project string
	// Plan places the task in the graph (optional).
	Plan Plan
}

// projectKey returns the record key of the tenant's project id, checking
// the id's form.
func projectKey(sc *tenant.Scope, id string) ([]byte, error) {
	k, err := sc.Space().Project(id)
	if err != nil {
		return nil, invalid("project %v; send a project id (pr_…) as the projects listing shows it", err)
	}
	return k, nil
}

// Create creates an open task at version 1.
func Create(ctx context.Context, sc *tenant.Scope, n New) (Task, error) {
	return CreateWith(ctx, sc, n, txhook.Hook[Task]{})
}

// CreateWith is Create with h's reads and writes in its transaction:
// h.After gets the task created. An attempt that finds the task its own
// earlier attempt committed (see below) runs h.Before but not h.After:
// what h.After wrote then committed with the task.
func CreateWith(ctx context.Context, sc *tenant.Scope, n New, h txhook.Hook[Task]) (Task, error) {
	if err := sc.CanWrite(); err != nil {
		return Task{}, err
	}
	if err := checkText("title", n.Title, MaxTitle, true); err != nil {
		return Task{}, err
	}
	if err := checkDescription(n.Description); err != nil {
		return Task{}, err
	}
	if err := n.Plan.check(sc); err != nil {
		return Task{}, err
	}
	var pkey []byte
	if n.Project != "" {
		var err error
		if pkey, err = projectKey(sc, n.Project); err != nil {
			return Task{}, err
		}
	}
	now := agent.Now(ctx)
	p := sc.Principal()
	by := p.User
	if p.Agent != "" {
		by = p.Agent
	}
	t := Task{ID: agent.NewID("tk"), Title: n.Title, Description: n.Description, Project: n.Project, State: Open, Version: 1,
		CreatedBy: by, Created: now, Updated: now}
	key, err := taskKey(sc, t.ID)
	if err != nil {
		return Task{}, err
	}
	base := t
	_, err = sc.Store().Update(ctx, func(tx kv.Tx) error {
		t = base
		if err := h.RunBefore(tx); err != nil {
			return err
		}
		if err := n.Plan.apply(tx, sc, &t); err != nil {
			return err
		}
		enc, err := json.Marshal(t)
		if err != nil {
			return err
		}
		switch v, err := tx.Get(key); {
		case err != nil:
			return err
		case bytes.Equal(v, enc):
			// An earlier attempt committed (FoundationDB retries after
			// commit_unknown_result): the task and its event exist.
			return annotate(tx, sc, &t)
		case v != nil:
			return fmt.Errorf("task: id %s already exists", t.ID) // an 80-bit random collision
		}
		if pkey != nil {
			// Read in the transaction: a project removed meanwhile
			// conflicts with the creation.
			if v, err := tx.Get(pkey); err != nil {
				return err
			} else if v == nil {
				return fmt.Errorf("task: %w: no project %q in this tenant; list the projects to find its id", ErrNotFound, n.Project)
			}
		}
		if err := save(tx, sc, key, nil, t); err != nil {
			return err
		}
		attrs := map[string]any{"title": t.Title}
		if t.Priority != 0 || len(t.BlockedBy) > 0 || t.Parent != "" {
			attrs["priority"], attrs["blocked_by"], attrs["parent"] = t.Priority, t.BlockedBy, t.Parent
		}
		w := sc.Log().BatchWriter(tx)
		if _, err = w.Append(event(sc, "task.created", t,
			fmt.Sprintf("task %s created: %s", t.ID, t.Title), attrs)); err != nil {
			return err
		}
		if err := annotate(tx, sc, &t); err != nil {
			return err
		}
		if err := h.RunAfter(tx, w, t); err != nil {
			return err
		}
		w.Finish()
		return nil
	})
	if err != nil {
		return Task{}, err
	}
	return t, nil
}

// Get returns a task.
func Get(ctx context.Context, sc *tenant.Scope, id string) (Task, error) {
	if _, err := taskKey(sc, id); err != nil {
		return Task{}, err
	}
	var t Task
	err := sc.Store().View(ctx, func(tx kv.ReadTx) error {
		var err error
		if t, _, err = load(tx, sc, id); err != nil {
			return err
		}
		return annotate(tx, sc, &t)
	})
	return t, err
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// change runs one optimistic change: it loads task id, checks version,
// lets apply change a copy and says what to log, and saves the result;
// h's reads and writes are in its transaction, h.After given the task as
// changed.
func change(ctx context.Context, sc *tenant.Scope, id string, version int64, h txhook.Hook[Task],
	apply func(tx kv.Tx, t *Task) (kind, summary string, attrs map[string]any, err error)) (Task, error) {
	if err := sc.CanWrite(); err != nil {
		return Task{}, err
	}
	if _, err := taskKey(sc, id); err != nil {
		return Task{}, err
	}
	if version <= 0 {
		return Task{}, invalid("version %d: send the version of the task as you last read it", version)
	}
	now := agent.Now(ctx)
	var out Task
	_, err := sc.Store().Update(ctx, func(tx kv.Tx) error {
		if err := h.RunBefore(tx); err != nil {
			return err
		}
		old, key, err := load(tx, sc, id)
		if err != nil {
			return err
		}
		if old.Version != version {
			return &VersionError{ID: id, Expected: version, Current: old}
		}
		t := old
		kind, summary, attrs, err := apply(tx, &t)
		if err != nil {
			return err
		}
		t.Version++
		t.Updated = now
		if err := save(tx, sc, key, &old, t); err != nil {
			return err
		}
		w := sc.Log().BatchWriter(tx)
		if _, err := w.Append(event(sc, kind, t, summary, attrs)); err != nil {
			return err
		}
		out = t
		if err := annotate(tx, sc, &out); err != nil {
			return err
		}
		if err := h.RunAfter(tx, w, out); err != nil {
			return err
		}
		w.Finish()
		return nil
	})
	if err != nil {
		return Task{}, err
	}
	return out, nil
}

func checkTransition(t Task, to State, hint string) error {
	if slices.Contains(transitions[t.State], to) {
		return nil
	}
	return &TransitionError{ID: t.ID, From: t.State, To: to, Task: t, Allowed: Allowed(t.State), Hint: hint}
}

// Claim makes the scope's agent the assignee of an open (or blocked) task
// at version, moving it to claimed. Of concurrent claims on one version,
// exactly one succeeds; the others get a *VersionError.
func Claim(ctx context.Context, sc *tenant.Scope, id string, version int64) (Task, error) {
	return ClaimWith(ctx, sc, id, version, txhook.Hook[Task]{})
}

// ClaimWith is Claim with h's reads and writes in its transaction: h.After
// gets the task claimed.
func ClaimWith(ctx context.Context, sc *tenant.Scope, id string, version int64, h txhook.Hook[Task]) (Task, error) {
	me := sc.Principal().Agent
	if me == "" {
		return Task{}, invalid("the scope acts as no agent; register one (agent.Register) and act as it (Scope.WithAgent), or use Assign")
	}
	return change(ctx, sc, id, version, h, func(tx kv.Tx, t *Task) (string, string, map[string]any, error) {
		if err := checkTransition(*t, Claimed, ""); err != nil {
			return "", "", nil, err
		}
		// A blocked task stays its assignee's.
		if err := MayMove(*t, sc.Principal()); err != nil {
			return "", "", nil, err
		}
		if err := agent.Check(tx, sc, me); err != nil {
			return "", "", nil, err
		}
		prev := t.Assignee
		t.State, t.Assignee = Claimed, me
		return "task.claimed", fmt.Sprintf("task %s claimed by agent %s", t.ID, me), map[string]any{"previous_assignee": prev}, nil
	})
}

// Assign sets a task's assignee (an agent of the tenant) at version; an
// empty agentID unassigns it. A held task is reassigned only by MayMove's
// callers. Assigning an open or blocked task moves it to
// claimed; unassigning a claimed or in-progress task reopens it.
func Assign(ctx context.Context, sc *tenant.Scope, id string, version int64, agentID string) (Task, error) {
	if agentID != "" {
		if _, err := sc.Space().Agent(agentID); err != nil {
			return Task{}, invalid("%v; send an agent id, or nothing to unassign", err)
		}
	}
	return change(ctx, sc, id, version, txhook.Hook[Task]{}, func(tx kv.Tx, t *Task) (string, string, map[string]any, error) {
		if t.State == Done || t.State == Cancelled {
			return "", "", nil, &TransitionError{ID: t.ID, From: t.State, To: t.State, Task: *t, Allowed: Allowed(t.State),
				Hint: "a " + string(t.State) + " task cannot be assigned"}
		}
		if err := MayMove(*t, sc.Principal()); err != nil {
			return "", "", nil, err
		}
		if agentID == t.Assignee {
			return "", "", nil, invalid("task %s is already assigned to %q", t.ID, agentID)
		}
		if agentID != "" {
			if err := agent.Check(tx, sc, agentID); err != nil {
				return "", "", nil, err
			}
		}
		prev, prevState := t.Assignee, t.State
		t.Assignee = agentID
		switch {
		case agentID != "" && (t.State == Open || t.State == Blocked):
			t.State = Claimed
		case agentID == "" && (t.State == Claimed || t.State == InProgress):
			t.State = Open
		}
		summary := fmt.Sprintf("task %s assigned to agent %s", t.ID, agentID)
		if agentID == "" {
			summary = fmt.Sprintf("task %s unassigned from agent %s", t.ID, prev)
		}
		return "task.assigned", summary, map[string]any{"previous_assignee": prev, "previous_state": string(prevState)}, nil
	})
}

// Transition moves a task at version to state to, with an optional note
// for the log. Moving back to open clears the assignee. Claimed is reached
// with Claim or Assign, which name the assignee. A held task is moved
// only by MayMove's callers; Next lists the states this accepts.
func Transition(ctx context.Context, sc *tenant.Scope, id string, version int64, to State, note string) (Task, error) {
	if !slices.Contains(States(), to) {
		return Task{}, invalid("state %q: send one of open, claimed, in_progress, review, done, blocked, cancelled", to)
	}
	if err := checkText("note", note, MaxNote, false); err != nil {
		return Task{}, err
	}
	return change(ctx, sc, id, version, txhook.Hook[Task]{}, func(tx kv.Tx, t *Task) (string, string, map[string]any, error) {
		if err := refuse(*t, sc.Principal(), to); err != nil {
			return "", "", nil, err
		}
		from, prev := t.State, t.Assignee
		t.State = to
		if to == Open {
			t.Assignee = ""
		}
		attrs := map[string]any{"from": string(from), "to": string(to)}
		if note != "" {
			attrs["note"] = note
		}
		if prev != t.Assignee {
			attrs["previous_assignee"] = prev
		}
		return "task.updated", fmt.Sprintf("task %s: %s → %s", t.ID, from, to), attrs, nil
	})
}

// Filter selects tasks in List. Empty fields match every task.
type Filter struct {
	State    State
	Assignee string
	// Project selects the tasks of one project (its id).
	Project string
	// After continues a previous page: the Next it returned.
	After string
	// Limit is the most tasks per page (DefaultLimit when 0).
	Limit int
}

// Page is one page of List.
type Page struct {
	Tasks []Task `json:"tasks"`
	// Next continues the listing; empty at the end.
	Next string `json:"next,omitempty"`
}

// List returns tasks matching f, by id (creation order), a page at a time.
func List(ctx context.Context, sc *tenant.Scope, f Filter) (Page, error) {
	if f.State != "" && !slices.Contains(States(), f.State) {
		return Page{}, invalid("state %q: send one of open, claimed, in_progress, review, done, blocked, cancelled", f.State)
	}
	if f.Assignee != "" {
		if _, err := sc.Space().Agent(f.Assignee); err != nil {
			return Page{}, invalid("%v", err)
		}
	}
	if f.Project != "" {
		if _, err := projectKey(sc, f.Project); err != nil {
			return Page{}, err
		}
	}
	if f.After != "" {
		if _, err := taskKey(sc, f.After); err != nil {
			return Page{}, invalid("after %q is not a task id; send the Next of the previous page", f.After)
		}
	}
	if f.Limit == 0 {
		f.Limit = DefaultLimit
	}
	if f.Limit < 0 || f.Limit > MaxLimit {
		return Page{}, invalid("limit %d is outside [1, %d]", f.Limit, MaxLimit)
	}
	sp := sc.Space()
	// Scan the narrowest source: an index when a field is set.
	var sub keyspace.Subspace
	indexed := true
	switch {
	case f.Assignee != "":
		sub, _ = sp.TaskIndex(byAssignee, f.Assignee)
	case f.Project != "":
		sub, _ = sp.TaskIndex(byProject, f.Project)
	case f.State != "":
		sub, _ = sp.TaskIndex(byState, string(f.State))
	default:
		sub, indexed = sp.Tasks(), false
	}
	begin, end := sub.Range()
	if f.After != "" {
		begin = kv.KeyAfter(sub.Pack([]any{f.After}))
	}
	var page Page
	err := sc.Store().View(ctx, func(tx kv.ReadTx) error {
		page = Page{}
		it := tx.GetRange(begin, end, kv.RangeOptions{})
		examined, last := 0, ""
		for it.Next() {
			p := it.KeyValue()
			tup, err := sub.Unpack(p.Key)
			if err != nil || len(tup) != 1 {
				return fmt.Errorf("task: corrupt key %s: %v", kv.DisplayKey(p.Key), err)
			}
			id, ok := tup[0].(string)
			if !ok {
				return fmt.Errorf("task: corrupt key %s", kv.DisplayKey(p.Key))
			}
			if len(page.Tasks) == f.Limit || examined == maxExamine {
				page.Next = last // there is more after it
				break
			}
			examined, last = examined+1, id
			var t Task
			if indexed {
				if t, _, err = load(tx, sc, id); err != nil {
					return err
				}
			} else if err := json.Unmarshal(p.Value, &t); err != nil {
				return fmt.Errorf("task: corrupt task %s: %w", kv.DisplayKey(p.Key), err)
			}
			if (f.State == "" || t.State == f.State) && (f.Assignee == "" || t.Assignee == f.Assignee) &&
				(f.Project == "" || t.Project == f.Project) {
				if err := annotate(tx, sc, &t); err != nil {
					return err
				}
				page.Tasks = append(page.Tasks, t)
			}
		}
		return it.Err()
	})
	return page, err
}

// History returns the task.* audit events of a task, oldest first: its
// creation, claims, assignments and state changes. (Lease events on the
// task's key, Path(id), share its audit path and are left out.)
func History(ctx context.Context, sc *tenant.Scope, id string) ([]audit.Event, error) {
	if _, err := taskKey(sc, id); err != nil {
		return nil, err
	}
	// The events of a project's task name the project, and the log
	// indexes their path under it.
	var proj string
	if err := sc.Store().View(ctx, func(tx kv.ReadTx) error {
		t, _, err := load(tx, sc, id)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		proj = t.Project
		return err
	}); err != nil {
		return nil, err
	}
	var out []audit.Event
	q := audit.Query{Filter: audit.Filter{Path: Path(id), Project: proj}, Limit: audit.MaxLimit}
	for {
		page, err := sc.Log().Query(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, ev := range page.Events {
			if strings.HasPrefix(ev.Kind, "task.") {
				out = append(out, ev)
			}
		}
		if page.Next == "" {
			return out, nil
		}
		q.Cursor = page.Next
	}
}
