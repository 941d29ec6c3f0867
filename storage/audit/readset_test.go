package audit_test

import (
	"testing"
	"time"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv/kvtest"
)

// TestSweepReadSet: the retention sweep's transactions do not read the
// event counter, which every append adds to, with a read conflict; and
// one that enforces only a count never reads up to the newest event, where
// appends write. On a cluster either would make a sweep conflict with
// every append committed while it runs.
func TestSweepReadSet(t *testing.T) {
	s, _ := openStore(t)
	rs := kvtest.NewReadSet(s)
	l := newLog(t, rs, "acme")
	sp, err := keyspace.Tenant("acme")
	if err != nil {
		t.Fatal(err)
	}
	counter, err := sp.Counter("audit_events")
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-100 * time.Hour)
	appendN(t, l, 600, func(i int) audit.Event {
		return audit.Event{Kind: "note.added", Time: base.Add(time.Duration(i) * 10 * time.Minute)}
	})
	head, err := l.Head(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	vs, err := audit.ParseID(head)
	if err != nil {
		t.Fatal(err)
	}
	newest, err := sp.AuditEvent(vs)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		r       audit.Retention
		removed int
		// tail: the read set may reach the newest event (an age limit
		// must look at events until one is young enough)
		tail bool
	}{
		{"max events", audit.Retention{MaxEvents: 500}, 100, false},
		{"nothing to remove", audit.Retention{MaxEvents: 500}, 0, false},
		{"max age", audit.Retention{MaxAge: 50 * time.Hour}, 200, true},
	} {
		var n int
		var err error
		reads := rs.Record(func() { n, err = l.Sweep(ctx(t), tc.r) })
		if err != nil || n < tc.removed-1 || n > tc.removed+1 {
			t.Fatalf("%s: removed %d, %v; want %d", tc.name, n, err, tc.removed)
		}
		if reads.Has(counter) {
			t.Errorf("%s: the sweep read the event counter with a read conflict", tc.name)
		}
		if !tc.tail && reads.Has(newest) {
			t.Errorf("%s: the sweep's read set reaches the newest event, where appends write", tc.name)
		}
	}
}
