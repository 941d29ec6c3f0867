package audit

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
)

// VerifyReport is what Verify found.
type VerifyReport struct {
	Events       int64 `json:"events"`
	IndexEntries int64 `json:"index_entries"`
	Counted      int64 `json:"counted"` // the event counter
	Missing      int64 `json:"missing_index_entries"`
	Dangling     int64 `json:"dangling_index_entries"`
	Mismatched   int64 `json:"mismatched_index_entries"`
	// ClockRegression is the largest amount, in nanoseconds, by which an
	// event's time is before that of an event committed earlier, as the
	// scan found it; RecordedRegression is what the log's audit clock
	// holds (see clock.go). A log whose clock went back further than it
	// recorded (written before the audit clock existed) can make
	// time-bounded queries miss events until RaiseRegression fixes it.
	ClockRegression    int64    `json:"clock_regression_ns"`
	RecordedRegression int64    `json:"recorded_clock_regression_ns"`
	Problems           []string `json:"problems,omitempty"` // the first few, for people
}

// OK reports whether the log is consistent.
func (r VerifyReport) OK() bool {
	return r.Missing == 0 && r.Dangling == 0 && r.Mismatched == 0 && r.Counted == r.Events && r.ClockRecorded()
}

// ClockRecorded reports whether the audit clock covers the regression the
// scan found (within the margin queries add to it).
func (r VerifyReport) ClockRecorded() bool {
	return r.ClockRegression <= r.RecordedRegression || r.ClockRegression-r.RecordedRegression <= int64(clockSkew)
}

func (r *VerifyReport) problem(format string, args ...any) {
	if len(r.Problems) < 20 {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// verifyBatch is how many keys one verifying transaction reads.
const verifyBatch = 500

// Verify checks the log's index consistency: every event is indexed under
// each of its fields, every index entry points at an event whose field has
// the entry's value, and the event counter matches. It reads in bounded
// transactions, so on a log being written it may report entries written or
// swept during the scan; run it on a quiet store for a verdict.
func (l *Log) Verify(ctx context.Context) (VerifyReport, error) {
	var r VerifyReport
	audit := l.space.Audit()
	// The clock, in commit order. Maxima only, so a retried chunk that
	// sees its events again changes nothing.
	var high, back int64
	haveHigh := false
	// Events: each must have its index entries.
	if err := l.scanChunks(ctx, audit, &r, func(tx kv.ReadTx, p kv.KeyValue, r *VerifyReport) error {
		vs, err := l.stampOf(audit, p.Key)
		if err != nil {
			return err
		}
		ev, err := decode(l.space.ID(), vs, p.Value)
		if err != nil {
			r.problem("event %s does not decode: %v", vs, err)
			r.Mismatched++
			return nil
		}
		r.Events++
		if n, exact := unixNano(ev.Time); !exact {
			back = math.MaxInt64
		} else {
			if haveHigh {
				back = max(back, regression(high, n))
			}
			if !haveHigh || n > high {
				high, haveHigh = n, true
			}
		}
		for _, ix := range indexed(&ev) {
			key, err := l.space.AuditIndexEntry(ix[0], ix[1], vs)
			if err != nil {
				return err
			}
			v, err := tx.Get(key)
			if err != nil {
				return err
			}
			if v == nil {
				r.Missing++
				r.problem("event %s is not indexed by %s=%q", vs, ix[0], ix[1])
			}
		}
		return nil
	}); err != nil {
		return r, err
	}
	// Index entries: each must point at an event with that value.
	indexes := l.space.AuditIndexes()
	if err := l.scanChunks(ctx, indexes, &r, func(tx kv.ReadTx, p kv.KeyValue, r *VerifyReport) error {
		t, err := indexes.Unpack(p.Key)
		if err != nil || len(t) != 3 {
			r.Dangling++
			r.problem("index key %s is malformed", kv.DisplayKey(p.Key))
			return nil
		}
		index, _ := t[0].(string)
		value, _ := t[1].(string)
		vs, ok := t[2].(kv.Versionstamp)
		if !ok {
			r.Dangling++
			r.problem("index key %s does not end in a versionstamp", kv.DisplayKey(p.Key))
			return nil
		}
		r.IndexEntries++
		key, err := l.space.AuditEvent(vs)
		if err != nil {
			return err
		}
		v, err := tx.Get(key)
		if err != nil {
			return err
		}
		if v == nil {
			r.Dangling++
			r.problem("index entry %s=%q points at missing event %s", index, value, vs)
			return nil
		}
		ev, err := decode(l.space.ID(), vs, v)
		if err != nil {
			return nil // counted with the events
		}
		found := false
		for _, ix := range indexed(&ev) {
			if ix[0] == index && ix[1] == value {
				found = true
			}
		}
		if !found {
			r.Mismatched++
			r.problem("index entry %s=%q points at event %s, which has no such field", index, value, vs)
		}
		return nil
	}); err != nil {
		return r, err
	}
	n, err := l.Count(ctx)
	if err != nil {
		return r, err
	}
	r.Counted = n
	if r.Counted != r.Events {
		r.problem("the event counter says %d, the log holds %d", r.Counted, r.Events)
	}
	r.ClockRegression = back
	if err := l.store.View(ctx, func(tx kv.ReadTx) error {
		v, err := tx.Get(l.space.AuditRegression())
		r.RecordedRegression = kv.Int64(v)
		return err
	}); err != nil {
		return r, err
	}
	if !r.ClockRecorded() {
		r.problem("event times go back by %v in commit order but the audit clock records %v: time-bounded queries may miss events (coditect store verify --repair)",
			time.Duration(r.ClockRegression), time.Duration(r.RecordedRegression))
	}
	return r, nil
}

// RaiseRegression raises the log's recorded clock regression to at least
// d nanoseconds (a VerifyReport's ClockRegression): the repair of a log
// written before the audit clock existed.
func (l *Log) RaiseRegression(ctx context.Context, d int64) error {
	if d <= 0 {
		return nil
	}
	_, err := l.store.Update(ctx, func(tx kv.Tx) error {
		tx.Max(l.space.AuditRegression(), kv.EncodeInt64(d))
		return nil
	})
	return err
}

// scanChunks calls fn for every key of s, in transactions of verifyBatch
// keys. fn records into a report of the chunk, merged into total once the
// chunk's transaction succeeded, so a retried transaction counts once.
func (l *Log) scanChunks(ctx context.Context, s keyspace.Subspace, total *VerifyReport, fn func(kv.ReadTx, kv.KeyValue, *VerifyReport) error) error {
	begin, end := s.Range()
	for {
		var last []byte
		var chunk VerifyReport
		n := 0
		err := l.store.View(ctx, func(tx kv.ReadTx) error {
			last, n, chunk = nil, 0, VerifyReport{}
			it := tx.GetRange(begin, end, kv.RangeOptions{Limit: verifyBatch})
			for it.Next() {
				p := it.KeyValue()
				if err := fn(tx, p, &chunk); err != nil {
					return err
				}
				last = p.Key
				n++
			}
			return it.Err()
		})
		if err != nil {
			return err
		}
		total.merge(chunk)
		if n < verifyBatch {
			return nil
		}
		begin = kv.KeyAfter(last)
	}
}

func (r *VerifyReport) merge(c VerifyReport) {
	r.Events += c.Events
	r.IndexEntries += c.IndexEntries
	r.Missing += c.Missing
	r.Dangling += c.Dangling
	r.Mismatched += c.Mismatched
	for _, p := range c.Problems {
		r.problem("%s", p)
	}
}
