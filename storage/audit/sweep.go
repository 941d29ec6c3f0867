package audit

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/coditect/coditect/storage/kv"
)

// Retention is a tenant's retention policy. Zero fields mean "keep".
type Retention struct {
	MaxAge    time.Duration `json:"max_age,omitempty"`
	MaxEvents int64         `json:"max_events,omitempty"`
}

// sweepBatch is how many events one sweeping transaction removes at most.
const sweepBatch = 256

// Sweep enforces r: it removes the oldest events, with their index entries,
// while the log holds more than r.MaxEvents or they are older than r.MaxAge,
// in transactions of at most sweepBatch events; and it expires idempotency
// markers older than IdempotencyWindow. It returns how many events it
// removed.
func (l *Log) Sweep(ctx context.Context, r Retention) (int, error) {
	removed := 0
	countKey, err := l.space.Counter(counterEvents)
	if err != nil {
		return 0, err
	}
	for {
		n := 0
		_, err := l.store.Update(ctx, func(tx kv.Tx) error {
			n = 0
			// A snapshot read: every append adds to the counter (an
			// atomic add), so reading it with a conflict would make the
			// sweep conflict with — and on FoundationDB retry for — every
			// append committed while it runs. A stale count is only
			// lower (appends add, and sweeps conflict with each other on
			// the events they remove), so the sweep removes no more than
			// it should; what it leaves, the next sweep removes.
			cv, err := tx.SnapshotGet(countKey)
			if err != nil {
				return err
			}
			count := kv.Int64(cv)
			if r.MaxAge <= 0 && (r.MaxEvents <= 0 || count <= r.MaxEvents) {
				return nil // nothing to remove: the events need not be read
			}
			cutoff := time.Time{}
			if r.MaxAge > 0 {
				cutoff = l.now().Add(-r.MaxAge)
			}
			// Without an age limit, read no more events than are to go:
			// the read then never reaches the newest events, whose
			// appends would otherwise conflict with it.
			limit := sweepBatch
			if r.MaxAge <= 0 {
				limit = int(min(int64(sweepBatch), count-r.MaxEvents))
			}
			b, e := l.space.Audit().Range()
			it := tx.GetRange(b, e, kv.RangeOptions{Limit: limit})
			for it.Next() {
				p := it.KeyValue()
				vs, err := l.stampOf(l.space.Audit(), p.Key)
				if err != nil {
					return err
				}
				ev, err := decode(l.space.ID(), vs, p.Value)
				if err != nil {
					return err
				}
				tooMany := r.MaxEvents > 0 && count-int64(n) > r.MaxEvents
				tooOld := !cutoff.IsZero() && ev.Time.Before(cutoff)
				if !tooMany && !tooOld {
					break
				}
				tx.Clear(p.Key)
				for _, ix := range indexed(&ev) {
					key, err := l.space.AuditIndexEntry(ix[0], ix[1], vs)
					if err != nil {
						return err
					}
					tx.Clear(key)
				}
				n++
			}
			if err := it.Err(); err != nil {
				return err
			}
			if n > 0 {
				tx.Add(countKey, -int64(n))
			}
			return nil
		})
		if err != nil {
			return removed, err
		}
		removed += n
		if n < sweepBatch {
			break
		}
	}
	return removed, l.sweepIdempotency(ctx)
}

func (l *Log) sweepIdempotency(ctx context.Context) error {
	cutoff := l.now().Add(-IdempotencyWindow).UnixNano()
	b, e := l.space.Idempotencies().Range()
	for {
		var last []byte
		n := 0
		_, err := l.store.Update(ctx, func(tx kv.Tx) error {
			n, last = 0, nil
			it := tx.GetRange(b, e, kv.RangeOptions{Limit: sweepBatch})
			for it.Next() {
				p := it.KeyValue()
				last = p.Key
				n++
				if len(p.Value) >= 20 && int64(binary.BigEndian.Uint64(p.Value[12:20])) < cutoff {
					tx.Clear(p.Key)
				}
			}
			return it.Err()
		})
		if err != nil {
			return err
		}
		if n < sweepBatch {
			return nil
		}
		b = kv.KeyAfter(last)
	}
}
