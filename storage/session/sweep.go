package session

import (
	"context"
	"fmt"
	"time"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
)

// sweepBatch is how many open sessions one read of the sweeper lists.
const sweepBatch = 256

// Sweep marks abandoned every open session of the scope's tenant that has
// seen no activity for idle or longer, each in its own transaction with a
// session.abandoned event, and returns them.
//
// A session's last activity is the time of its newest audit event (any
// kind, from any layer: a tool call, a file change, a join), read from the
// audit log's session index, so activity costs no extra writes; a session
// whose events retention removed falls back to its start and joins. The
// transaction that abandons a session checks that no event reached it
// since that read, so an agent that acts while the sweeper decides keeps
// its session.
func Sweep(ctx context.Context, sc *tenant.Scope, idle time.Duration) ([]Session, error) {
	return wall().sweep(ctx, sc, idle)
}

func (l layer) sweep(ctx context.Context, sc *tenant.Scope, idle time.Duration) ([]Session, error) {
	if err := sc.CanWrite(); err != nil {
		return nil, err
	}
	if idle <= 0 {
		return nil, invalid("idle time %v: want a positive duration, e.g. 30m", idle)
	}
	open, err := sc.Space().SessionsBy(keyspace.SessionByState, string(Open))
	if err != nil {
		return nil, err
	}
	var out []Session
	begin, end := open.Range()
	for {
		var ids []string
		err := sc.Store().View(ctx, func(tx kv.ReadTx) error {
			ids = ids[:0]
			it := tx.GetRange(begin, end, kv.RangeOptions{Limit: sweepBatch})
			for it.Next() {
				t, err := open.Unpack(it.KeyValue().Key)
				if err != nil || len(t) != 1 {
					return fmt.Errorf("session: corrupt open-session entry %s: %v", kv.DisplayKey(it.KeyValue().Key), err)
				}
				id, ok := t[0].(string)
				if !ok {
					return fmt.Errorf("session: corrupt open-session entry %s", kv.DisplayKey(it.KeyValue().Key))
				}
				ids = append(ids, id)
			}
			return it.Err()
		})
		if err != nil {
			return out, err
		}
		for _, id := range ids {
			s, ok, err := l.abandon(ctx, sc, id, idle)
			if err != nil {
				return out, err
			}
			if ok {
				out = append(out, s)
			}
		}
		if len(ids) < sweepBatch {
			return out, nil
		}
		last, err := sc.Space().SessionsByEntry(keyspace.SessionByState, string(Open), ids[len(ids)-1])
		if err != nil {
			return out, err
		}
		begin = kv.KeyAfter(last)
	}
}

// abandon marks one session abandoned if it is still open and idle.
func (l layer) abandon(ctx context.Context, sc *tenant.Scope, id string, idle time.Duration) (Session, bool, error) {
	// The newest event of the session, through the log's own query.
	page, err := sc.Log().Query(ctx, audit.Query{Filter: audit.Filter{Session: id}, Order: audit.NewestFirst, Limit: 1})
	if err != nil {
		return Session{}, false, err
	}
	var newest audit.Event
	if len(page.Events) > 0 {
		newest = page.Events[0]
	}
	if l.betweenReads != nil {
		l.betweenReads(id)
	}
	events, err := sc.Space().AuditIndex(keyspace.IndexSession, id)
	if err != nil {
		return Session{}, false, err
	}
	now := l.now().UTC()
	var s Session
	done := false
	_, err = sc.Store().Update(ctx, func(tx kv.Tx) error {
		done = false
		var key []byte
		var err error
		s, key, err = load(tx, sc, id)
		if err != nil {
			return err
		}
		if s.State != Open {
			return nil // ended meanwhile
		}
		// Re-read the newest entry of the session's index in this
		// transaction: an event appended since the query conflicts with
		// this read, or shows here, and keeps the session open.
		b, e := events.Range()
		it := tx.GetRange(b, e, kv.RangeOptions{Limit: 1, Reverse: true})
		current := ""
		for it.Next() {
			t, err := events.Unpack(it.KeyValue().Key)
			if err != nil || len(t) != 1 {
				return fmt.Errorf("session: corrupt audit index entry %s: %v", kv.DisplayKey(it.KeyValue().Key), err)
			}
			vs, ok := t[0].(kv.Versionstamp)
			if !ok {
				return fmt.Errorf("session: corrupt audit index entry %s", kv.DisplayKey(it.KeyValue().Key))
			}
			current = vs.String()
		}
		if err := it.Err(); err != nil {
			return err
		}
		if current != newest.ID {
			return nil // activity since the query: the next sweep decides
		}
		last := s.Started
		for _, p := range s.Participants {
			if p.Joined.After(last) {
				last = p.Joined
			}
		}
		if newest.ID != "" {
			last = newest.Time
		}
		if now.Sub(last) < idle {
			return nil
		}
		if err := indexEntry(tx, sc, keyspace.SessionByState, string(Open), id, false); err != nil {
			return err
		}
		s.State, s.Abandoned, s.LastActivity = Abandoned, now, last.UTC()
		if err := put(tx, key, s); err != nil {
			return err
		}
		if err := indexEntry(tx, sc, keyspace.SessionByState, string(Abandoned), id, true); err != nil {
			return err
		}
		ev := sc.Event("session.abandoned", clipSummary(fmt.Sprintf("session %q abandoned: no activity since %s (idle limit %v)",
			s.Title, s.LastActivity.Format(time.RFC3339), idle)))
		ev.Session, ev.Time = id, now
		ev.Attrs = map[string]any{"idle_limit_ms": idle.Milliseconds(), "last_activity": s.LastActivity}
		if _, err := sc.Log().Writer(tx).Append(ev); err != nil {
			return err
		}
		done = true
		return nil
	})
	if err != nil {
		return Session{}, false, err
	}
	return s, done, nil
}
