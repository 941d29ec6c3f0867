package audit_test

import (
	"fmt"
	"testing"

	"github.com/coditect/coditect/storage/audit"
)

// TestAppendSpoolOnce: records appended by their spool numbers land once,
// without idempotency keys: appending the same records again, or a chunk
// that overlaps what the mark covers, writes only what is new; a record
// numbered 0 (not spooled) is appended as it is; the mark rises to the
// highest number appended.
func TestAppendSpoolOnce(t *testing.T) {
	s, _ := openStore(t)
	l := newLog(t, s, "acme")
	rec := func(seq uint64) audit.SpoolRecord {
		return audit.SpoolRecord{Seq: seq, Event: audit.Event{Kind: "tool.called", User: "ada", Summary: fmt.Sprintf("record %d", seq)}}
	}
	steps := []struct {
		recs []audit.SpoolRecord
		want int
	}{
		{[]audit.SpoolRecord{rec(1), rec(2), rec(4)}, 3},
		{[]audit.SpoolRecord{rec(1), rec(2), rec(4)}, 0},         // the same chunk again
		{[]audit.SpoolRecord{rec(4), rec(0), rec(5), rec(7)}, 3}, // overlapping, with an unspooled record
	}
	for i, st := range steps {
		n, err := l.AppendSpool(ctx(t), "host-1-ab", st.recs)
		if err != nil || n != st.want {
			t.Fatalf("step %d: appended %d (%v), want %d", i, n, err, st.want)
		}
	}
	if mark, err := l.SpoolMark(ctx(t), "host-1-ab"); err != nil || mark != 7 {
		t.Errorf("mark %d (%v), want 7", mark, err)
	}
	if mark, err := l.SpoolMark(ctx(t), "host-2-cd"); err != nil || mark != 0 {
		t.Errorf("another spool's mark %d (%v), want 0", mark, err)
	}
	if n, err := l.Count(ctx(t)); err != nil || n != 6 {
		t.Errorf("%d events (%v), want 6", n, err)
	}
}
