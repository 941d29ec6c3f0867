package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/errclass"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
)

// Question is what an agent asks.
type Question struct {
	Kind string
	// Project is the project's id, ProjectName its name (for messages and
	// the editor's notification).
	Project     string
	ProjectName string
	Params      Params
	// Timeout bounds the wait for the answer: DefaultTimeout when zero,
	// at most MaxTimeout.
	Timeout time.Duration
	// Session is the asking agent's work session; AgentLabel how the
	// human sees the agent.
	Session    string
	AgentLabel string
}

// Ask sends q to an editor connected to q.Project and waits for its
// answer. The editor is the caller's own user's (a VS Code one before a
// plain LSP one, then the freshest); without one, another user's editor
// whose human shares it; without one either, Ask fails at once with
// ErrNoEditor (or ErrNotShared when only unshared editors of other users
// are connected). An editor that does not answer in time costs the
// timeout (ErrTimeout). Whatever happens, the request and answer records
// are cleared before Ask returns, and one "ide.request" audit event
// records the request and its outcome.
func Ask(ctx context.Context, sc *tenant.Scope, q Question) (Answered, error) {
	start := time.Now()
	if err := check(&q); err != nil {
		return Answered{}, err
	}
	p := sc.Principal()
	var eds []Presence
	err := sc.Store().View(ctx, func(tx kv.ReadTx) error {
		var err error
		eds, err = presences(tx, sc)
		return err
	})
	if err != nil {
		return Answered{}, err
	}
	ed, err := pick(eds, p.User, q, start)
	if err != nil {
		outcome := OutcomeNoEditor
		switch {
		case errors.Is(err, ErrNotShared):
			outcome = OutcomeRefused
		case errors.Is(err, ErrUnsupported):
			outcome = OutcomeUnsupported
		}
		if _, aerr := sc.Log().Append(context.WithoutCancel(ctx), event(sc, q, ed, outcome, time.Since(start), err)); aerr != nil {
			return Answered{}, errors.Join(err, aerr)
		}
		return Answered{}, err
	}
	id, err := newID()
	if err != nil {
		return Answered{}, err
	}
	req := Request{ID: id, Kind: q.Kind, Project: q.Project, ProjectName: q.ProjectName, Params: q.Params,
		Agent: p.Agent, AgentLabel: q.AgentLabel, User: p.User, Session: q.Session, Editor: ed.Editor,
		Asked: start.UTC(), Deadline: start.Add(q.Timeout).UTC()}
	val, err := json.Marshal(req)
	if err != nil {
		return Answered{}, err
	}
	if len(val) > MaxRequest {
		return Answered{}, invalid("the request is %d bytes; the limit is %d", len(val), MaxRequest)
	}
	sp := sc.Space()
	reqKey, err := sp.IDERequest(ed.Editor, id)
	if err != nil {
		return Answered{}, invalid("%v", err)
	}
	ansKey, _ := sp.IDEAnswer(ed.Editor, id)
	bell, _ := sp.IDEBell(ed.Editor)
	// The request record is ephemeral (cleared below, swept if this
	// process dies): losing it in a power failure loses nothing.
	if _, err := sc.Store().Update(kv.WithRelaxedDurability(ctx), func(tx kv.Tx) error {
		tx.Set(reqKey, val)
		tx.Add(bell, 1)
		return nil
	}); err != nil {
		return Answered{}, err
	}
	waitCtx, cancel := context.WithDeadline(ctx, req.Deadline)
	raw, werr := waitAnswer(waitCtx, sc.Store(), ansKey)
	cancel()

	out := Answered{Editor: ed}
	outcome := OutcomeAnswered
	var result error
	switch {
	case werr == nil:
		var a answer
		if err := json.Unmarshal(raw, &a); err != nil {
			outcome, result = OutcomeError, fmt.Errorf("bridge: %w: the answer of %s's editor is unreadable: %v", ErrEditor, ed.User, err)
		} else if a.Error != "" || a.Result == nil {
			outcome, result = OutcomeError, editorError(ed, a)
		} else {
			out.Result = *a.Result
		}
	case ctx.Err() == nil && errors.Is(werr, context.DeadlineExceeded):
		outcome = OutcomeTimeout
		result = fmt.Errorf("bridge: %w: the editor of %s did not answer within %s; it may be busy or its language server still loading: try again, or ask without it",
			ErrTimeout, ed.describe(), q.Timeout)
	default:
		outcome, result = OutcomeError, werr
	}
	out.Duration = time.Since(start)
	// Clear both records and record the outcome in one commit, even when
	// ctx is done: nothing of the request may stay behind.
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer ccancel()
	_, err = sc.Store().Update(cctx, func(tx kv.Tx) error {
		tx.Clear(reqKey)
		tx.Clear(ansKey)
		ev := event(sc, q, ed, outcome, out.Duration, result)
		_, err := sc.Log().Writer(tx).Append(ev)
		return err
	})
	if result != nil {
		if err != nil {
			return Answered{}, errors.Join(result, err)
		}
		return Answered{}, result
	}
	return out, err
}

// check validates and normalises a question.
func check(q *Question) error {
	if !slices.Contains(Kinds, q.Kind) {
		return invalid("unknown request kind %q (known: %s)", q.Kind, strings.Join(Kinds, ", "))
	}
	if q.Project == "" {
		return invalid("no project")
	}
	if q.ProjectName == "" {
		q.ProjectName = q.Project
	}
	switch {
	case q.Timeout == 0:
		q.Timeout = DefaultTimeout
	case q.Timeout < 0 || q.Timeout > MaxTimeout:
		return invalid("timeout %s is outside (0, %s]", q.Timeout, MaxTimeout)
	}
	switch {
	case q.Params.Limit == 0:
		q.Params.Limit = DefaultLimit
	case q.Params.Limit < 0 || q.Params.Limit > MaxLimit:
		return invalid("limit %d is outside 1..%d", q.Params.Limit, MaxLimit)
	}
	return nil
}

// presences reads every editor's presence in the tenant.
func presences(tx kv.ReadTx, sc *tenant.Scope) ([]Presence, error) {
	begin, end := sc.Space().IDEEditors().Range()
	it := tx.GetRange(begin, end, kv.RangeOptions{})
	var out []Presence
	for it.Next() {
		var p Presence
		if json.Unmarshal(it.KeyValue().Value, &p) == nil {
			out = append(out, p)
		}
	}
	return out, it.Err()
}

// Editors returns the live presences of the tenant's editors.
func Editors(ctx context.Context, sc *tenant.Scope) ([]Presence, error) {
	var out []Presence
	now := time.Now()
	err := sc.Store().View(ctx, func(tx kv.ReadTx) error {
		all, err := presences(tx, sc)
		for _, p := range all {
			if p.Live(now) {
				out = append(out, p)
			}
		}
		return err
	})
	return out, err
}

// pick chooses the editor that answers q for user at now (see Ask). On an
// error it returns the editor the error is about, if any, for the audit.
func pick(eds []Presence, user string, q Question, now time.Time) (Presence, error) {
	var own, shared, unshared []Presence
	for _, e := range eds {
		if !e.Live(now) || !e.Serves(q.Project) {
			continue
		}
		switch {
		case e.User == user:
			own = append(own, e)
		case e.Share:
			shared = append(shared, e)
		default:
			unshared = append(unshared, e)
		}
	}
	for _, set := range [][]Presence{own, shared} {
		if len(set) == 0 {
			continue
		}
		slices.SortStableFunc(set, func(a, b Presence) int {
			if a.Can(q.Kind) != b.Can(q.Kind) {
				if a.Can(q.Kind) {
					return -1
				}
				return 1
			}
			return b.At.Compare(a.At)
		})
		e := set[0]
		if !e.Can(q.Kind) && e.Kind == EditorVSCode && len(e.Kinds) == 0 {
			return e, fmt.Errorf("bridge: %w: the editor of %s has the IDE bridge turned off (its Coditect extension's \"enabled\" setting)",
				ErrUnsupported, e.describe())
		}
		if !e.Can(q.Kind) {
			return e, fmt.Errorf("bridge: %w: the editor of %s cannot answer ide_%s; use VS Code with the Coditect extension",
				ErrUnsupported, e.describe(), q.Kind)
		}
		return e, nil
	}
	if len(unshared) > 0 {
		e := unshared[0]
		return e, fmt.Errorf("bridge: %w: no editor of %s is connected to project %s, and %s's editor there does not share with other users' agents (sharing is off; %s can turn on the Coditect extension's \"share\" setting)",
			ErrNotShared, user, q.ProjectName, e.User, e.User)
	}
	return Presence{}, fmt.Errorf("bridge: %w: no editor of %s is connected to project %s; open it in VS Code with the Coditect extension",
		ErrNoEditor, user, q.ProjectName)
}

// waitAnswer waits for the answer key to hold a value, until ctx is done.
func waitAnswer(ctx context.Context, s kv.Store, key []byte) ([]byte, error) {
	for {
		var val []byte
		var w kv.Watch
		err := s.View(ctx, func(tx kv.ReadTx) error {
			if w != nil {
				w.Cancel()
			}
			var err error
			if val, err = tx.Get(key); err != nil || val != nil {
				w = nil
				return err
			}
			w = tx.Watch(key)
			return nil
		})
		if err != nil {
			if w != nil {
				w.Cancel()
			}
			return nil, err
		}
		if val != nil {
			return val, nil
		}
		err = w.Wait(ctx)
		w.Cancel()
		if err != nil {
			return nil, err
		}
	}
}

// editorError turns an editor's error answer into an error of its class.
func editorError(ed Presence, a answer) error {
	msg := a.Error
	if msg == "" {
		msg = "no result"
	}
	base := ErrEditor
	for _, c := range errclass.All {
		if c.Name() == a.Class {
			base = errclass.New(c, ErrEditor.Error())
		}
	}
	return fmt.Errorf("bridge: %w: the editor of %s: %s", base, ed.describe(), msg)
}

// event is the audit event of a request.
func event(sc *tenant.Scope, q Question, ed Presence, outcome string, d time.Duration, err error) audit.Event {
	ms := float64(d.Microseconds()) / 1000
	ev := sc.Event("ide.request", fmt.Sprintf("ide %s %s in %.1f ms", q.Kind, outcome, ms))
	ev.Session, ev.Project, ev.Path = q.Session, q.Project, q.Params.Path
	ev.Attrs = map[string]any{
		"kind":        q.Kind,
		"outcome":     outcome,
		"duration_ms": ms,
		"timeout_ms":  q.Timeout.Milliseconds(),
	}
	if ed.Editor != "" {
		ev.Attrs["editor"] = ed.Editor
		ev.Attrs["editor_user"] = ed.User
		ev.Attrs["editor_kind"] = ed.Kind
	}
	if err != nil {
		ev.Attrs["error"] = textclip.Within(err.Error(), 512)
	}
	return ev
}
