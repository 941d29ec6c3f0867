package audit_test

import (
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
)

// TestClockJumpsBackwards: event times that go backwards (a clock set
// back between appends) change neither the log's order nor paging nor the
// tail: the order is the versionstamp's. Time-bounded queries find exactly
// the events in their window however far the clock went back: appends
// record the largest step back, and queries widen their search by it.
func TestClockJumpsBackwards(t *testing.T) {
	s, _ := openStore(t)
	l := newLog(t, s, "acme")
	c := ctx(t)
	base := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	// Each event an hour before the previous one: the clock keeps jumping back.
	const n = 25
	var ids []string
	for i := range n {
		evs, err := l.Append(c, audit.Event{Kind: "note.added", User: "ada", Summary: "n", Time: base.Add(-time.Duration(i) * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, evs[0].ID)
	}
	for i := 1; i < n; i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("id %d (%s) does not sort after %s", i, ids[i], ids[i-1])
		}
	}
	// Paging, oldest first, 4 at a time: append order.
	var got []string
	q := audit.Query{Limit: 4}
	for {
		p, err := l.Query(c, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range p.Events {
			got = append(got, ev.ID)
		}
		if p.Next == "" {
			break
		}
		q.Cursor = p.Next
	}
	if len(got) != n || got[0] != ids[0] || got[n-1] != ids[n-1] {
		t.Fatalf("paged %d events %v, want %v", len(got), got, ids)
	}
	for i := range got {
		if got[i] != ids[i] {
			t.Fatalf("page order %d: %s, want %s", i, got[i], ids[i])
		}
	}
	// Newest first is the reverse.
	p, err := l.Query(c, audit.Query{Order: audit.NewestFirst, Limit: n})
	if err != nil || len(p.Events) != n || p.Events[0].ID != ids[n-1] {
		t.Fatalf("newest first: %d events, %v", len(p.Events), err)
	}
	// Tail from a cursor in the middle: the rest, in order, once.
	var tailed []string
	stop := errStop{}
	err = l.Tail(c, ids[9], audit.Filter{}, func(ev audit.Event) error {
		tailed = append(tailed, ev.ID)
		if ev.ID == ids[n-1] {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Fatal(err)
	}
	if len(tailed) != n-10 || tailed[0] != ids[10] {
		t.Fatalf("tail from %s: %v", ids[9], tailed)
	}
	// Time windows over this log, whose every event is an hour before the
	// one committed before it: every event in the window, nothing else,
	// in both orders and across pages.
	checkWindows(t, l, all(t, l), []time.Time{base.Add(-30 * time.Hour), base.Add(-24 * time.Hour),
		base.Add(-17*time.Hour - time.Minute), base.Add(-12 * time.Hour), base.Add(-3 * time.Hour), base, base.Add(time.Hour)})
	if got, want := recorded(t, s, "acme"), time.Duration(n-1)*time.Hour; got != want {
		t.Errorf("recorded regression %v, want %v (the first event's time less the last's)", got, want)
	}
	// A clock going back by less than the margin (10 s per event): the same.
	l2 := newLog(t, s, "beta")
	for i := range n {
		if _, err := l2.Append(c, audit.Event{Kind: "note.added", User: "ada", Summary: "n", Time: base.Add(-time.Duration(i) * 10 * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := l2.Query(c, audit.Query{Filter: audit.Filter{Since: base.Add(-200*time.Second - time.Second), Until: base.Add(-100 * time.Second)}, Limit: n})
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Events) != 11 {
		t.Errorf("time window over a clock going back 10 s per event found %d events, want 11", len(w.Events))
	}
}

// TestClockResetWindows: a clock running forwards, set back by hours
// (twice), running forwards again, set forwards: time windows around and
// across every jump find exactly the events whose times are in them, from
// the whole log and through an index, in both orders and page by page. The
// recorded regression is the log's: the most by which a time is before an
// earlier one.
func TestClockResetWindows(t *testing.T) {
	s, _ := openStore(t)
	l := newLog(t, s, "acme")
	base := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	var times []time.Time
	at := base
	for i := range 120 {
		switch i {
		case 40:
			at = at.Add(-3 * time.Hour) // reset: three hours back
		case 70:
			at = at.Add(-90 * time.Minute) // and again
		case 100:
			at = at.Add(6 * time.Hour) // set forwards
		default:
			at = at.Add(time.Minute)
		}
		times = append(times, at)
	}
	for i := 0; i < len(times); {
		// Some events in batches, so jumps also happen inside a transaction.
		k := 1 + i%3
		var batch []audit.Event
		for j := i; j < min(i+k, len(times)); j++ {
			batch = append(batch, audit.Event{Kind: "note.added", User: []string{"ada", "bob"}[j%2], Time: times[j]})
		}
		if _, err := l.Append(ctx(t), batch...); err != nil {
			t.Fatal(err)
		}
		i += len(batch)
	}
	bounds := []time.Time{base.Add(-4 * time.Hour), base.Add(-150 * time.Minute), base.Add(-10 * time.Minute),
		base, base.Add(20 * time.Minute), base.Add(39*time.Minute + 30*time.Second), base.Add(2 * time.Hour), base.Add(9 * time.Hour)}
	checkWindows(t, l, all(t, l), bounds)
	if got, want := recorded(t, s, "acme"), maxRegression(times); got != want || want < 4*time.Hour {
		t.Errorf("recorded regression %v, want %v", got, want)
	}
}

// maxRegression is the most by which a time is before an earlier one.
func maxRegression(times []time.Time) time.Duration {
	var r time.Duration
	for j, tj := range times {
		for _, ti := range times[:j] {
			r = max(r, ti.Sub(tj))
		}
	}
	return r
}

// TestClockRandomWindows: random clocks (forwards, back by up to a day,
// forwards by hours), random windows: every query agrees with a filter of
// the whole log.
func TestClockRandomWindows(t *testing.T) {
	s, _ := openStore(t)
	l := newLog(t, s, "acme")
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	at := base
	var evs []audit.Event
	for len(evs) < 200 {
		var batch []audit.Event
		for range 1 + rng.IntN(3) {
			switch r := rng.IntN(20); {
			case r == 0:
				at = at.Add(-time.Duration(rng.Int64N(int64(24 * time.Hour))))
			case r == 1:
				at = at.Add(time.Duration(rng.Int64N(int64(6 * time.Hour))))
			default:
				at = at.Add(time.Duration(rng.Int64N(int64(time.Minute))))
			}
			batch = append(batch, audit.Event{Kind: "note.added", User: []string{"ada", "bob", "cy"}[rng.IntN(3)], Time: at})
		}
		got, err := l.Append(ctx(t), batch...)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, got...)
	}
	lo, hi := evs[0].Time, evs[0].Time
	for _, ev := range evs {
		lo, hi = minTime(lo, ev.Time), maxTime(hi, ev.Time)
	}
	var bounds []time.Time
	for range 5 {
		bounds = append(bounds, lo.Add(time.Duration(rng.Int64N(int64(hi.Sub(lo))))))
	}
	bounds = append(bounds, evs[17].Time, evs[123].Time, hi.Add(time.Hour))
	checkWindows(t, l, evs, bounds)
	times := make([]time.Time, len(evs))
	for i, ev := range evs {
		times[i] = ev.Time
	}
	if got, want := recorded(t, s, "acme"), maxRegression(times); got != want {
		t.Errorf("recorded regression %v, want %v", got, want)
	}
}

// TestClockRecordsRegression: a log whose times never go back records no
// regression, so time-bounded queries keep searching within the 5-minute
// margin alone; a step back, across transactions or inside one, records
// its size; the high-water mark is the latest time.
func TestClockRecordsRegression(t *testing.T) {
	s, _ := openStore(t)
	l := newLog(t, s, "acme")
	base := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	appendN(t, l, 50, func(i int) audit.Event {
		return audit.Event{Kind: "note.added", Time: base.Add(time.Duration(i/2) * time.Second)} // equal pairs: no step back
	})
	if _, err := l.Append(ctx(t), audit.Event{Kind: "note.added", Time: base.Add(30 * time.Second)},
		audit.Event{Kind: "note.added", Time: base.Add(31 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if got := recorded(t, s, "acme"); got != 0 {
		t.Fatalf("a log whose times never go back recorded a regression of %v", got)
	}
	if v := rawKey(t, s, "acme", keyspace.TenantSpace.AuditRegression); v != nil {
		t.Fatalf("a log whose times never go back wrote its regression key: %x", v)
	}
	if got := highWater(t, s, "acme"); !got.Equal(base.Add(31 * time.Second)) {
		t.Fatalf("high-water mark %v, want %v", got, base.Add(31*time.Second))
	}
	// A step back across transactions.
	if _, err := l.Append(ctx(t), audit.Event{Kind: "note.added", Time: base.Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if got := recorded(t, s, "acme"); got != time.Minute+31*time.Second {
		t.Fatalf("recorded regression %v, want 1m31s", got)
	}
	// Inside one transaction: the step from its own first event counts.
	if _, err := l.Append(ctx(t), audit.Event{Kind: "note.added", Time: base.Add(time.Hour)},
		audit.Event{Kind: "note.added", Time: base.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if got := recorded(t, s, "acme"); got != 2*time.Hour {
		t.Fatalf("recorded regression %v, want 2h", got)
	}
	if got := highWater(t, s, "acme"); !got.Equal(base.Add(time.Hour)) {
		t.Fatalf("high-water mark %v, want %v", got, base.Add(time.Hour))
	}
	// A smaller step back later leaves the largest.
	if _, err := l.Append(ctx(t), audit.Event{Kind: "note.added", Time: base}); err != nil {
		t.Fatal(err)
	}
	if got := recorded(t, s, "acme"); got != 2*time.Hour {
		t.Fatalf("recorded regression %v after a smaller step back, want 2h", got)
	}
	// An idempotent retry writes nothing, the clock included.
	ev := audit.Event{Kind: "note.added", Time: base.Add(-5 * time.Hour), IdempotencyKey: "k"}
	if _, err := l.Append(ctx(t), ev); err != nil {
		t.Fatal(err)
	}
	if got := recorded(t, s, "acme"); got != 6*time.Hour {
		t.Fatalf("recorded regression %v, want 6h", got)
	}
	ev.Time = base.Add(-20 * time.Hour)
	if _, err := l.Append(ctx(t), ev); err != nil {
		t.Fatal(err)
	}
	if got := recorded(t, s, "acme"); got != 6*time.Hour {
		t.Fatalf("a duplicate append recorded a regression: %v, want 6h", got)
	}
}

// TestClockOutOfRange: an event time beyond what Unix nanoseconds hold
// (years 1678 to 2262) makes the log's regression unknown; time-bounded
// queries then neither seek nor stop early, and still find everything.
func TestClockOutOfRange(t *testing.T) {
	s, _ := openStore(t)
	l := newLog(t, s, "acme")
	base := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	var evs []audit.Event
	for _, tm := range []time.Time{base, base.Add(time.Minute), time.Date(2500, 1, 1, 0, 0, 0, 0, time.UTC),
		base.Add(2 * time.Minute), time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC), base.Add(3 * time.Minute), base.Add(4 * time.Minute)} {
		got, err := l.Append(ctx(t), audit.Event{Kind: "note.added", Time: tm})
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, got...)
	}
	checkWindows(t, l, evs, []time.Time{time.Date(1400, 1, 1, 0, 0, 0, 0, time.UTC), base.Add(30 * time.Second),
		base.Add(150 * time.Second), time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2600, 1, 1, 0, 0, 0, 0, time.UTC)})
}

// checkWindows queries l for every window [a, b] of bounds (and the
// windows open on one side), in both orders, with and without an index
// filter, a few events a page, and compares with want, the whole log in
// commit order.
func checkWindows(t *testing.T, l *audit.Log, want []audit.Event, bounds []time.Time) {
	t.Helper()
	var windows [][2]time.Time
	for i, a := range bounds {
		windows = append(windows, [2]time.Time{a, {}}, [2]time.Time{{}, a})
		for _, b := range bounds[i:] {
			windows = append(windows, [2]time.Time{minTime(a, b), maxTime(a, b)})
		}
	}
	failed := 0
	for _, w := range windows {
		for _, user := range []string{"", "ada"} {
			f := audit.Filter{Since: w[0], Until: w[1], User: user}
			var expect []string
			for _, ev := range want {
				if (user == "" || ev.User == user) && (f.Since.IsZero() || !ev.Time.Before(f.Since)) && (f.Until.IsZero() || !ev.Time.After(f.Until)) {
					expect = append(expect, ev.ID)
				}
			}
			for _, order := range []audit.Order{audit.OldestFirst, audit.NewestFirst} {
				for _, limit := range []int{5, audit.MaxLimit} {
					got := queryAll(t, l, audit.Query{Filter: f, Order: order, Limit: limit})
					exp := expect
					if order == audit.NewestFirst {
						exp = reversed(expect)
					}
					if strings.Join(got, ",") != strings.Join(exp, ",") {
						failed++
						if failed <= 5 {
							t.Errorf("since %v until %v user %q order %d limit %d: got %d events, want %d\n got %v\nwant %v",
								f.Since, f.Until, user, order, limit, len(got), len(exp), got, exp)
						}
					}
				}
			}
		}
	}
	if failed > 5 {
		t.Errorf("... %d queries failed in all", failed)
	}
}

// queryAll follows q's pages and returns the IDs.
func queryAll(t *testing.T, l *audit.Log, q audit.Query) []string {
	t.Helper()
	var got []string
	for pages := 0; ; pages++ {
		p, err := l.Query(ctx(t), q)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids(p.Events)...)
		if p.Next == "" {
			return got
		}
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
		q.Cursor = p.Next
	}
}

// all returns the whole log in commit order.
func all(t *testing.T, l *audit.Log) []audit.Event {
	t.Helper()
	var out []audit.Event
	q := audit.Query{Limit: audit.MaxLimit}
	for {
		p, err := l.Query(ctx(t), q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Events...)
		if p.Next == "" {
			return out
		}
		q.Cursor = p.Next
	}
}

// rawKey reads one of the tenant's keys.
func rawKey(t *testing.T, s kv.Store, tenant string, key func(keyspace.TenantSpace) []byte) []byte {
	t.Helper()
	sp, err := keyspace.Tenant(tenant)
	if err != nil {
		t.Fatal(err)
	}
	var v []byte
	if err := s.View(ctx(t), func(tx kv.ReadTx) error {
		v, err = tx.Get(key(sp))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// recorded returns the tenant's recorded regression.
func recorded(t *testing.T, s kv.Store, tenant string) time.Duration {
	t.Helper()
	return time.Duration(kv.Int64(rawKey(t, s, tenant, keyspace.TenantSpace.AuditRegression)))
}

// highWater returns the tenant's high-water mark.
func highWater(t *testing.T, s kv.Store, tenant string) time.Time {
	t.Helper()
	v := rawKey(t, s, tenant, keyspace.TenantSpace.AuditHighWater)
	if len(v) != 8 {
		t.Fatalf("high-water mark %x", v)
	}
	return time.Unix(0, int64(binary.LittleEndian.Uint64(v)^1<<63)).UTC()
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

type errStop struct{}

func (errStop) Error() string { return "stop" }

// TestVerifyClock: Verify finds how far a log's event times go back in
// commit order and flags a log whose audit clock does not record it (a log
// written before the clock existed, simulated by clearing the key), on
// which a time window misses events; RaiseRegression repairs it.
func TestVerifyClock(t *testing.T) {
	s, _ := openStore(t)
	l := newLog(t, s, "acme")
	c := ctx(t)
	base := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	for i := range 10 {
		if _, err := l.Append(c, audit.Event{Kind: "note.added", User: "ada", Summary: "n", Time: base.Add(-time.Duration(i) * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := l.Verify(c)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || r.ClockRegression != int64(9*time.Hour) || r.RecordedRegression != int64(9*time.Hour) {
		t.Fatalf("a log with its clock recorded: %+v", r)
	}
	sp, _ := keyspace.Tenant("acme")
	if _, err := s.Update(c, func(tx kv.Tx) error { tx.Clear(sp.AuditRegression()); return nil }); err != nil {
		t.Fatal(err)
	}
	window := audit.Query{Filter: audit.Filter{Since: base.Add(-6*time.Hour - time.Minute), Until: base.Add(-4*time.Hour + time.Minute)}, Limit: 100}
	if p, err := l.Query(c, window); err != nil || len(p.Events) == 3 {
		t.Fatalf("without the clock record the window should miss events (else this test shows nothing): %d, %v", len(p.Events), err)
	}
	r, err = l.Verify(c)
	if err != nil {
		t.Fatal(err)
	}
	if r.OK() || r.ClockRecorded() || r.RecordedRegression != 0 || len(r.Problems) != 1 {
		t.Fatalf("an unrecorded clock regression: %+v", r)
	}
	if err := l.RaiseRegression(c, r.ClockRegression); err != nil {
		t.Fatal(err)
	}
	if r, err = l.Verify(c); err != nil || !r.OK() {
		t.Fatalf("after the repair: %+v, %v", r, err)
	}
	if p, err := l.Query(c, window); err != nil || len(p.Events) != 3 {
		t.Fatalf("after the repair the window finds %d events, want 3 (%v)", len(p.Events), err)
	}
}
