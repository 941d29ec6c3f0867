package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
)

// layer runs the session operations with a clock. The exported functions
// use the wall clock; tests inject one.
type layer struct {
	now func() time.Time
	// betweenReads, when set, runs in Sweep between reading a session's
	// last activity and the transaction that abandons it: tests use it to
	// interleave activity.
	betweenReads func(id string)
}

func wall() layer { return layer{now: time.Now} }

// errCollision: a fresh id is taken already (in this tenant or another);
// Start draws another.
var errCollision = errors.New("session id collision")

// Start opens a session for the scope's principal, who becomes its first
// participant, and returns it. The record, its index entries, the global
// session index entry and the session.started event commit together.
func Start(ctx context.Context, sc *tenant.Scope, in Spec) (Session, error) {
	return wall().start(ctx, sc, in)
}

// Join records the scope's principal (a user, or an agent acting for one)
// as a participant of an open session, with a session.joined event. Joining
// again is a no-op that returns the session unchanged.
func Join(ctx context.Context, sc *tenant.Scope, id string) (Session, error) {
	return wall().join(ctx, sc, id)
}

// End closes an open or abandoned session with an outcome, with a
// session.ended event. Ending an ended session fails with ErrNotOpen.
func End(ctx context.Context, sc *tenant.Scope, id string, out Outcome) (Session, error) {
	return wall().end(ctx, sc, id, out)
}

func (l layer) start(ctx context.Context, sc *tenant.Scope, in Spec) (Session, error) {
	if err := sc.CanWrite(); err != nil {
		return Session{}, err
	}
	in, err := in.validate()
	if err != nil {
		return Session{}, err
	}
	pl, err := place(ctx, sc, in)
	if err != nil {
		return Session{}, err
	}
	in.Workspace = pl.ws
	p := sc.Principal()
	now := l.now().UTC()
	for attempt := 0; ; attempt++ {
		id, err := newID(now)
		if err != nil {
			return Session{}, err
		}
		s := Session{
			ID: id, Tenant: sc.Tenant(), Title: in.Title, Project: pl.project.ID, Dir: pl.dir, Workspace: in.Workspace,
			Purpose: in.Purpose, Cohort: in.Cohort,
			State: Open, User: p.User, Agent: p.Agent, Bound: in.Bound && p.Agent != "", Started: now,
			Participants: []Participant{{User: p.User, Agent: p.Agent, Joined: now}},
		}
		_, err = sc.Store().Update(ctx, func(tx kv.Tx) error {
			global, err := keyspace.SessionIndex(id)
			if err != nil {
				return err
			}
			key, err := sc.Space().Session(id)
			if err != nil {
				return err
			}
			for _, k := range [][]byte{global, key} {
				if v, err := tx.Get(k); err != nil {
					return err
				} else if v != nil {
					return errCollision
				}
			}
			if err := put(tx, key, s); err != nil {
				return err
			}
			tx.Set(global, []byte(sc.Tenant()))
			if err := indexEntries(tx, sc, s, true); err != nil {
				return err
			}
			ev := sc.Event("session.started", clipSummary(fmt.Sprintf("session %q started in %s", s.Title, where(pl.project.Name, s.Dir))))
			ev.Session, ev.Project, ev.Time = id, s.Project, now
			ev.Attrs = map[string]any{"title": s.Title, "workspace": s.Workspace, "project": pl.project.Name, "dir": s.Dir}
			if s.Purpose != "" {
				ev.Attrs["purpose"] = s.Purpose
			}
			if s.Cohort != "" {
				ev.Attrs["cohort"] = s.Cohort
			}
			if s.Bound {
				ev.Attrs["bound"] = true
			}
			_, err = sc.Log().Writer(tx).Append(ev)
			return err
		})
		if errors.Is(err, errCollision) && attempt < 3 {
			continue
		}
		if err != nil {
			return Session{}, fmt.Errorf("session: start: %w", err)
		}
		return s, nil
	}
}

// indexEntries sets (or clears) every secondary index entry of a session:
// its state, workspace, and each participant's user and agent.
func indexEntries(tx kv.Tx, sc *tenant.Scope, s Session, set bool) error {
	if err := indexEntry(tx, sc, keyspace.SessionByState, string(s.State), s.ID, set); err != nil {
		return err
	}
	if s.Workspace != "" {
		if err := indexEntry(tx, sc, keyspace.SessionByWorkspace, s.Workspace, s.ID, set); err != nil {
			return err
		}
	}
	if s.Project != "" {
		if err := indexEntry(tx, sc, keyspace.SessionByProject, s.Project, s.ID, set); err != nil {
			return err
		}
	}
	for _, p := range s.Participants {
		if err := participantEntries(tx, sc, s.ID, p, set); err != nil {
			return err
		}
	}
	return nil
}

func participantEntries(tx kv.Tx, sc *tenant.Scope, id string, p Participant, set bool) error {
	if err := indexEntry(tx, sc, keyspace.SessionByUser, p.User, id, set); err != nil {
		return err
	}
	if p.Agent != "" {
		return indexEntry(tx, sc, keyspace.SessionByAgent, p.Agent, id, set)
	}
	return nil
}

func (l layer) join(ctx context.Context, sc *tenant.Scope, id string) (Session, error) {
	if err := sc.CanWrite(); err != nil {
		return Session{}, err
	}
	id, err := ParseID(id)
	if err != nil {
		return Session{}, err
	}
	p := sc.Principal()
	now := l.now().UTC()
	var s Session
	_, err = sc.Store().Update(ctx, func(tx kv.Tx) error {
		var key []byte
		var err error
		s, key, err = load(tx, sc, id)
		if err != nil {
			return err
		}
		if s.State != Open {
			return notOpen(s, "join")
		}
		if s.participant(p.User, p.Agent) >= 0 {
			return nil
		}
		if len(s.Participants) >= MaxParticipants {
			return fmt.Errorf("session: %w: session %s has %d participants, the most one session may have: start another session",
				ErrFull, id, MaxParticipants)
		}
		np := Participant{User: p.User, Agent: p.Agent, Joined: now}
		s.Participants = append(s.Participants, np)
		if err := put(tx, key, s); err != nil {
			return err
		}
		if err := participantEntries(tx, sc, id, np, true); err != nil {
			return err
		}
		who := p.User
		if p.Agent != "" {
			who = fmt.Sprintf("agent %s (for %s)", p.Agent, p.User)
		}
		ev := sc.Event("session.joined", clipSummary(fmt.Sprintf("%s joined session %q", who, s.Title)))
		ev.Session, ev.Time = id, now
		_, err = sc.Log().Writer(tx).Append(ev)
		return err
	})
	if err != nil {
		return Session{}, err
	}
	return s, nil
}

func (l layer) end(ctx context.Context, sc *tenant.Scope, id string, out Outcome) (Session, error) {
	if err := sc.CanWrite(); err != nil {
		return Session{}, err
	}
	id, err := ParseID(id)
	if err != nil {
		return Session{}, err
	}
	if err := out.validate(); err != nil {
		return Session{}, err
	}
	p := sc.Principal()
	now := l.now().UTC()
	var s Session
	_, err = sc.Store().Update(ctx, func(tx kv.Tx) error {
		var key []byte
		var err error
		s, key, err = load(tx, sc, id)
		if err != nil {
			return err
		}
		if s.State == Ended {
			return notOpen(s, "end")
		}
		if err := indexEntry(tx, sc, keyspace.SessionByState, string(s.State), id, false); err != nil {
			return err
		}
		s.State, s.Ended, s.EndedBy, s.EndedByAgent = Ended, now, p.User, p.Agent
		o := out
		s.Outcome = &o
		if err := put(tx, key, s); err != nil {
			return err
		}
		if err := indexEntry(tx, sc, keyspace.SessionByState, string(Ended), id, true); err != nil {
			return err
		}
		summary := fmt.Sprintf("session %q ended: %s", s.Title, out.Status)
		if out.Summary != "" {
			summary += ": " + out.Summary
		}
		ev := sc.Event("session.ended", clipSummary(summary))
		ev.Session, ev.Time = id, now
		ev.Attrs = map[string]any{"status": string(out.Status), "duration_ms": now.Sub(s.Started).Milliseconds()}
		_, err = sc.Log().Writer(tx).Append(ev)
		return err
	})
	if err != nil {
		return Session{}, err
	}
	return s, nil
}

// notOpen explains why a session cannot be joined or ended, and what to do.
func notOpen(s Session, op string) error {
	switch s.State {
	case Ended:
		status := ""
		if s.Outcome != nil {
			status = " (" + string(s.Outcome.Status) + ")"
		}
		return fmt.Errorf("session: %w: cannot %s session %s: it ended at %s%s; start a new session",
			ErrNotOpen, op, s.ID, s.Ended.Format(time.RFC3339), status)
	default:
		return fmt.Errorf("session: %w: cannot %s session %s: it was abandoned at %s after no activity since %s; start a new session (an abandoned session can still be ended to record its outcome)",
			ErrNotOpen, op, s.ID, s.Abandoned.Format(time.RFC3339), s.LastActivity.Format(time.RFC3339))
	}
}

// clipSummary shortens an event summary to what the audit log accepts.
func clipSummary(s string) string { return textclip.Within(s, audit.MaxSummary) }
