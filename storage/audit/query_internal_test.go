package audit

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv/sqlite"
)

// TestQueryPageBudget: a page that runs out of its time or bytes budget
// stops early with a cursor, and following the cursors yields every
// matching event exactly once, in order — over the log and over an index,
// in both orders.
func TestQueryPageBudget(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"), sqlite.Options{Synchronous: sqlite.SyncNormal})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sp, err := keyspace.Tenant("acme")
	if err != nil {
		t.Fatal(err)
	}
	l := NewLog(st, sp)
	const n = 60
	var evs []Event
	for i := range n {
		evs = append(evs, Event{Kind: "note.added", User: fmt.Sprint(i % 3), Summary: fmt.Sprint(i)})
	}
	if _, err := l.Append(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	budgets := []struct {
		name string
		b    scanBudget
	}{
		{"time spent", scanBudget{time: 0, bytes: defaultScanBudget.bytes}},
		{"bytes spent", scanBudget{time: time.Hour, bytes: 1000}},
	}
	filters := []struct {
		name string
		f    Filter
		want []string // summaries, oldest first
	}{
		{"log", Filter{}, nil},
		{"kind index", Filter{Kind: "note.added"}, nil},
		{"user index", Filter{User: "1"}, nil},
	}
	for i := range filters {
		for j, ev := range evs {
			if filters[i].f.User == "" || filters[i].f.User == ev.User {
				filters[i].want = append(filters[i].want, fmt.Sprint(j))
			}
		}
	}
	for _, b := range budgets {
		l.budget = b.b
		for _, f := range filters {
			for _, order := range []Order{OldestFirst, NewestFirst} {
				name := fmt.Sprintf("%s/%s/order %d", b.name, f.name, order)
				var got []string
				pages := 0
				q := Query{Filter: f.f, Order: order, Limit: MaxLimit}
				for {
					p, err := l.Query(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					pages++
					if pages == 1 && (p.Next == "" || len(p.Events) >= len(f.want)) {
						t.Errorf("%s: the first page did not stop early: %d events, next %q", name, len(p.Events), p.Next)
					}
					for _, ev := range p.Events {
						got = append(got, ev.Summary)
					}
					if p.Next == "" {
						break
					}
					if pages > 10*n {
						t.Fatalf("%s: %d pages and no end", name, pages)
					}
					q.Cursor = p.Next
				}
				want := slices.Clone(f.want)
				if order == NewestFirst {
					slices.Reverse(want)
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s: followed the cursors to %v, want %v", name, got, want)
				}
				t.Logf("%s: %d pages", name, pages)
			}
		}
	}
}
