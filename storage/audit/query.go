package audit

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tuple"
)

// Filter selects events. Empty fields match everything; set fields must all
// match.
type Filter struct {
	User    string
	Session string
	Agent   string
	Kind    string
	Path    string
	// Project selects the events of one project; with Path, Path is
	// relative to the project root.
	Project string
	// Since and Until bound the event time, inclusive; zero means open.
	Since time.Time
	Until time.Time
}

func (f Filter) match(ev *Event) bool {
	return (f.User == "" || ev.User == f.User) &&
		(f.Session == "" || ev.Session == f.Session) &&
		(f.Agent == "" || ev.Agent == f.Agent) &&
		(f.Kind == "" || ev.Kind == f.Kind) &&
		(f.Path == "" || ev.Path == f.Path) &&
		(f.Project == "" || ev.Project == f.Project) &&
		(f.Since.IsZero() || !ev.Time.Before(f.Since)) &&
		(f.Until.IsZero() || !ev.Time.After(f.Until))
}

// Validate checks the filter's values.
func (f Filter) Validate() error {
	if f.Kind != "" && !KnownKind(f.Kind) {
		return fmt.Errorf("audit: %w %q in filter", ErrUnknownKind, f.Kind)
	}
	for _, v := range []string{f.User, f.Session, f.Agent, f.Project} {
		if len(v) > MaxIDField {
			return invalid("filter id of %d bytes exceeds %d", len(v), MaxIDField)
		}
	}
	if len(f.Path) > MaxPath {
		return invalid("filter path of %d bytes exceeds %d", len(f.Path), MaxPath)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return invalid("filter until %s is before since %s", f.Until.Format(time.RFC3339), f.Since.Format(time.RFC3339))
	}
	return nil
}

// Order of a query.
type Order int

// Orders.
const (
	OldestFirst Order = iota
	NewestFirst
)

// Query is one page request.
type Query struct {
	Filter
	Order Order
	// Cursor continues a previous page: the Next it returned. Empty starts
	// at the oldest (OldestFirst) or newest (NewestFirst) event.
	Cursor string
	// Limit is the most events to return (default 100, at most MaxLimit).
	Limit int
}

// Page is one page of results.
type Page struct {
	Events []Event
	// Next continues the query after this page; empty when the query has
	// no more results. A page may hold fewer than Limit events (even none)
	// and still have a Next: each page examines a bounded number of events,
	// for a bounded time and number of bytes.
	Next string
}

// Query limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
	// maxExamine bounds the events one page looks at, so a selective
	// filter over a long log cannot make a transaction run too long.
	maxExamine = 5000
)

// scanBudget bounds one page's scan beyond maxExamine: on FoundationDB
// each event an index names is a point read, a network round trip, and a
// page must end well inside the transaction's five seconds
// (kv.MaxTransactionAge) however slow the reads; the bytes bound keeps a
// page of large events small. A page that runs out of budget ends with a
// cursor after the last event it examined.
type scanBudget struct {
	time  time.Duration
	bytes int
}

// defaultScanBudget is the budget of a page.
var defaultScanBudget = scanBudget{time: time.Second, bytes: 4 << 20}

// Query returns one page of events matching q.
func (l *Log) Query(ctx context.Context, q Query) (Page, error) {
	if err := q.Filter.Validate(); err != nil {
		return Page{}, err
	}
	if q.Limit <= 0 {
		q.Limit = DefaultLimit
	}
	if q.Limit > MaxLimit {
		return Page{}, invalid("limit %d exceeds %d", q.Limit, MaxLimit)
	}
	var pos kv.Versionstamp
	if q.Cursor != "" {
		var err error
		if pos, err = ParseID(q.Cursor); err != nil {
			return Page{}, err
		}
	}
	var res scanResult
	err := l.store.View(ctx, func(tx kv.ReadTx) error {
		skew, err := unbounded, error(nil)
		if !q.Since.IsZero() || !q.Until.IsZero() {
			// Read in the scan's snapshot, so it accounts for the events
			// the scan sees.
			if skew, err = l.searchSkew(tx); err != nil {
				return err
			}
		}
		res, err = l.scan(tx, q.Filter, q.Order, pos, q.Limit, skew)
		return err
	})
	if err != nil {
		return Page{}, err
	}
	p := Page{Events: res.events}
	if !res.done {
		p.Next = res.last.String()
	}
	return p, nil
}

type scanResult struct {
	events   []Event
	last     kv.Versionstamp // last position examined
	examined int
	bytes    int  // bytes of the events examined
	done     bool // nothing further matches
}

// spent reports whether a page has examined all it may: maxExamine events,
// or the budget's bytes, or its time since start.
func (r *scanResult) spent(b scanBudget, start time.Time) bool {
	return r.examined >= maxExamine || r.bytes >= b.bytes || time.Since(start) >= b.time
}

// source picks the narrowest index the filter allows.
func (l *Log) source(f Filter) (sub keyspace.Subspace, indexed bool, err error) {
	for _, p := range [][2]string{
		{keyspace.IndexSession, f.Session}, {keyspace.IndexAgent, f.Agent}, {keyspace.IndexPath, pathValue(f.Project, f.Path)},
		{keyspace.IndexProject, f.Project}, {keyspace.IndexUser, f.User}, {keyspace.IndexKind, f.Kind},
	} {
		if p[1] != "" {
			sub, err := l.space.AuditIndex(p[0], p[1])
			if err != nil {
				return sub, false, invalid("%s filter: %v", p[0], err)
			}
			return sub, true, nil
		}
	}
	return l.space.Audit(), false, nil
}

// scan reads up to limit matching events after (OldestFirst) or before
// (NewestFirst) position pos; a zero pos starts at the end of the log the
// order starts from. skew is how far event times may run backwards in
// commit order (Log.searchSkew; see clock.go): a time-bounded scan seeks
// to a bound widened by it and stops at the first event beyond the other
// bound widened by it, and with unbounded it does neither.
func (l *Log) scan(tx kv.ReadTx, f Filter, order Order, pos kv.Versionstamp, limit int, skew time.Duration) (scanResult, error) {
	start := time.Now()
	var res scanResult
	sub, indexed, err := l.source(f)
	if err != nil {
		return res, err
	}
	begin, end := sub.Range()
	reverse := order == NewestFirst
	// Events before sinceLow (after untilHigh) are out of the window, and
	// so is every event committed before (after) one of them.
	var sinceLow, untilHigh time.Time
	if skew != unbounded {
		if !f.Since.IsZero() {
			sinceLow = f.Since.Add(-skew)
		}
		if !f.Until.IsZero() {
			untilHigh = f.Until.Add(skew)
		}
	}
	if pos.IsZero() {
		// Seek to the time bound instead of walking up to it.
		if !reverse && !sinceLow.IsZero() {
			if pos, _, err = l.seek(tx, sub, indexed, sinceLow); err != nil {
				return res, err
			}
		} else if reverse && !untilHigh.IsZero() {
			if _, pos, err = l.seek(tx, sub, indexed, untilHigh.Add(time.Nanosecond)); err != nil {
				return res, err
			}
		}
	}
	if !pos.IsZero() {
		at := sub.Pack(tuple.Tuple{pos})
		if reverse {
			end = at
		} else {
			begin = kv.KeyAfter(at)
		}
	}
	it := tx.GetRange(begin, end, kv.RangeOptions{Reverse: reverse})
	for it.Next() {
		p := it.KeyValue()
		vs, err := l.stampOf(sub, p.Key)
		if err != nil {
			return res, err
		}
		val := p.Value
		if indexed {
			key, err := l.space.AuditEvent(vs)
			if err != nil {
				return res, err
			}
			if val, err = tx.Get(key); err != nil {
				return res, err
			}
			if val == nil {
				// An index entry whose event the sweeper is removing in
				// another transaction cannot be seen here (snapshot), so
				// this is damage; skip it rather than fail the page.
				res.last = vs
				res.examined++
				if res.spent(l.budget, start) {
					return res, it.Err()
				}
				continue
			}
		}
		ev, err := decode(l.space.ID(), vs, val)
		if err != nil {
			return res, err
		}
		res.last = vs
		res.examined++
		res.bytes += len(p.Key) + len(val)
		if (reverse && !sinceLow.IsZero() && ev.Time.Before(sinceLow)) ||
			(!reverse && !untilHigh.IsZero() && ev.Time.After(untilHigh)) {
			res.done = true
			return res, nil
		}
		if f.match(&ev) {
			res.events = append(res.events, ev)
			if len(res.events) == limit {
				return res, it.Err()
			}
		}
		if res.spent(l.budget, start) {
			return res, it.Err()
		}
	}
	res.done = true
	return res, it.Err()
}

// seek finds, by binary search over commit versions, an entry of sub whose
// event time is before t (before) and one whose time is at or after t
// (atOrAfter), where the search saw the times cross t. When times follow
// commit order they are the last entry before t and the first at or after
// it; in general they are not, and the caller widens t by the log's
// regression so that every entry before `before`, or after atOrAfter, is
// outside its window (see clock.go). A zero stamp means there is none.
func (l *Log) seek(tx kv.ReadTx, sub keyspace.Subspace, indexed bool, t time.Time) (before, atOrAfter kv.Versionstamp, err error) {
	begin, end := sub.Range()
	// entryAt returns the first entry at or after commit version c.
	entryAt := func(c uint64) (kv.Versionstamp, time.Time, bool, error) {
		var vs kv.Versionstamp
		binary.BigEndian.PutUint64(vs[:8], c)
		from := begin
		if c > 0 {
			from = sub.Pack(tuple.Tuple{vs})
		}
		it := tx.GetRange(from, end, kv.RangeOptions{Limit: 1})
		if !it.Next() {
			return vs, time.Time{}, false, it.Err()
		}
		p := it.KeyValue()
		got, err := l.stampOf(sub, p.Key)
		if err != nil {
			return got, time.Time{}, false, err
		}
		val := p.Value
		if indexed {
			key, err := l.space.AuditEvent(got)
			if err != nil {
				return got, time.Time{}, false, err
			}
			if val, err = tx.Get(key); err != nil || val == nil {
				return got, time.Time{}, false, err
			}
		}
		ev, err := decode(l.space.ID(), got, val)
		return got, ev.Time, err == nil, err
	}
	lo, hi := uint64(0), uint64(1<<63)
	for lo < hi {
		mid := lo + (hi-lo)/2
		vs, at, ok, err := entryAt(mid)
		if err != nil {
			return before, atOrAfter, err
		}
		if !ok || !at.Before(t) {
			if ok {
				atOrAfter = vs
			}
			hi = mid
			continue
		}
		before = vs
		lo = binary.BigEndian.Uint64(vs[:8]) + 1
	}
	return before, atOrAfter, nil
}

// Export writes every event matching q as JSON Lines, following pages, and
// returns how many it wrote. q.Cursor and q.Limit are ignored.
func (l *Log) Export(ctx context.Context, q Query, w io.Writer) (int, error) {
	q.Cursor, q.Limit = "", MaxLimit
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	n := 0
	for {
		p, err := l.Query(ctx, q)
		if err != nil {
			return n, err
		}
		for i := range p.Events {
			if err := enc.Encode(&p.Events[i]); err != nil {
				return n, err
			}
			n++
		}
		if p.Next == "" {
			return n, bw.Flush()
		}
		q.Cursor = p.Next
	}
}

// Tail calls fn, in log order, for every event matching f committed after
// cursor ("" for the start of the log; Head for only what comes next), and
// keeps following new events until ctx is done or fn returns an error,
// which Tail returns. A follower that calls Tail again with the ID of the
// last event it received misses nothing and sees nothing twice.
//
// Events from any process or host using the store arrive: Tail waits on a
// watch of the tenant's head key, set in the same transaction as the read
// that found nothing new.
func (l *Log) Tail(ctx context.Context, cursor string, f Filter, fn func(Event) error) error {
	if err := f.Validate(); err != nil {
		return err
	}
	var pos kv.Versionstamp
	if cursor != "" {
		var err error
		if pos, err = ParseID(cursor); err != nil {
			return err
		}
	}
	head := l.space.AuditHead()
	f.Since, f.Until = time.Time{}, time.Time{}
	for {
		var res scanResult
		var w kv.Watch
		err := l.store.View(ctx, func(tx kv.ReadTx) error {
			var err error
			res, err = l.scan(tx, f, OldestFirst, pos, MaxLimit, unbounded)
			if err == nil && res.examined == 0 {
				w = tx.Watch(head)
			}
			return err
		})
		if err != nil {
			return err
		}
		for _, ev := range res.events {
			if err := fn(ev); err != nil {
				return err
			}
		}
		if res.examined > 0 {
			pos = res.last
			continue
		}
		err = w.Wait(ctx)
		w.Cancel()
		if err != nil {
			return err
		}
	}
}
