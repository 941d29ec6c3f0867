package audit

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/coditect/coditect/storage/kv"
)

// The audit clock lets a time-bounded query find its events by binary
// search over commit order and stop scanning early, although event times
// need not follow commit order: hosts' clocks disagree, and a clock can be
// set back by any amount.
//
// Call the log's regression R the most by which an event's time is before
// the time of an event committed earlier: the maximum over events i
// committed before j of time(i) - time(j). For any S >= R:
//   - a forward scan may start after any entry whose time is before
//     Since-S: every event committed before that entry has a time at most
//     the entry's plus S, which is before Since; and a backward scan may
//     stop at the first event whose time is before Since-S, for the same
//     reason;
//   - symmetrically, a backward scan may start before any entry whose time
//     is after Until+S, and a forward scan may stop at the first such
//     event.
//
// An index holds some of the log's events in the same order, so its
// regression is at most the log's; sweeping removes events, which cannot
// raise it.
//
// Appends record R in two keys of the tenant, both updated only with
// kv.Tx.Max, a blind atomic write that adds no read conflict, so appends
// never conflict with each other over them: the high-water mark (the
// latest event time appended) and the regression. A Writer reads the
// high-water mark once, with a snapshot read (again no read conflict), and
// for each event raises the regression to the high-water mark (including
// its own transaction's earlier events) minus the event's time, and the
// high-water mark to the event's time.
//
// The snapshot read misses the events of transactions that commit while
// the writer's transaction runs. On the embedded store writers are
// serialised and it misses nothing: the recorded regression is R exactly.
// On FoundationDB it can miss a transaction that overlapped the writer's
// in real time, so by at most the 5 s transaction lifetime; their event
// times differ by that plus the disagreement of the two clocks that
// stamped them. Queries therefore use S = recorded regression + clockSkew.
// The margin covers such pairs while the clocks of overlapping writers
// agree to within clockSkew less 5 s, and more: the next append that does
// read the earlier event's time records that time minus its own, which
// with the margin covers the missed pair as long as its time is at most
// clockSkew after the time of the event whose read missed (a host whose
// clock was set back keeps appending with the new clock, so its next event
// closes the gap).
//
// Logs written before the clock keys existed have no record of their
// earlier regressions: among those events, queries keep the older
// assumption that time follows commit order within clockSkew. Verify
// finds the true regression and flags such a log; RaiseRegression
// (`coditect store verify --repair`) records it.

// clockSkew is the margin a time-bounded search adds to the recorded
// regression (see above).
const clockSkew = 5 * time.Minute

// unbounded is the search margin of a log whose regression exceeds what a
// time.Duration holds: time-bounded queries neither seek nor stop early.
const unbounded = time.Duration(math.MaxInt64)

// The times an int64 of Unix nanoseconds holds (years 1678 to 2262).
var (
	minNano = time.Unix(0, math.MinInt64)
	maxNano = time.Unix(0, math.MaxInt64)
)

// unixNano returns t in Unix nanoseconds, clamped to what an int64 holds,
// and whether it was exact.
func unixNano(t time.Time) (int64, bool) {
	switch {
	case t.Before(minNano):
		return math.MinInt64, false
	case t.After(maxNano):
		return math.MaxInt64, false
	}
	return t.UnixNano(), true
}

// encodeHighWater encodes a Unix nanosecond time so that FoundationDB's
// MAX (little-endian unsigned) orders it as a signed number: the sign bit
// flipped, 8 bytes little-endian.
func encodeHighWater(n int64) []byte {
	return binary.LittleEndian.AppendUint64(nil, uint64(n)^(1<<63))
}

// decodeHighWater decodes a high-water mark; false when there is none.
func decodeHighWater(v []byte) (int64, bool) {
	if len(v) != 8 {
		return 0, false
	}
	return int64(binary.LittleEndian.Uint64(v) ^ (1 << 63)), true
}

// regression returns how far n is before high, saturating at
// math.MaxInt64; 0 when it is not before.
func regression(high, n int64) int64 {
	if n >= high {
		return 0
	}
	d := uint64(high) - uint64(n) // exact: the difference is below 2^64
	if d > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(d)
}

// noteTime records an event's time in the audit clock (see above): the
// regression it makes, if any, and the high-water mark when it raises it.
// The first call of a Writer reads the high-water mark.
func (w *Writer) noteTime(t time.Time) error {
	sp := w.log.space
	if !w.clockRead {
		v, err := w.tx.SnapshotGet(sp.AuditHighWater())
		if err != nil {
			return err
		}
		w.high, w.haveHigh = decodeHighWater(v)
		w.clockRead = true
	}
	n, exact := unixNano(t)
	back := int64(0)
	if !exact {
		back = math.MaxInt64 // its distance to any other time is unknown
	}
	if w.haveHigh {
		back = max(back, regression(w.high, n))
	}
	if back > 0 {
		w.tx.Max(sp.AuditRegression(), kv.EncodeInt64(back))
	}
	if !w.haveHigh || n > w.high {
		// The stored mark is at least what the snapshot read, as it only
		// rises: a time at or below that would leave it unchanged. A
		// batched Writer raises it once, to its highest time (finish).
		w.high, w.haveHigh = n, true
		if w.batched {
			w.raise = true
		} else {
			w.tx.Max(sp.AuditHighWater(), encodeHighWater(n))
		}
	}
	return nil
}

// searchSkew returns how far beyond a time bound a query must look: the
// log's recorded regression plus clockSkew, or unbounded.
func (l *Log) searchSkew(tx kv.ReadTx) (time.Duration, error) {
	v, err := tx.Get(l.space.AuditRegression())
	if err != nil {
		return 0, err
	}
	back := kv.Int64(v)
	if back < 0 || back >= int64(unbounded-clockSkew) {
		return unbounded, nil
	}
	return clockSkew + time.Duration(back), nil
}
