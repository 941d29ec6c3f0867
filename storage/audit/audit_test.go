package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/sqlite"
)

func openStore(t testing.TB) (kv.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func newLog(t testing.TB, s kv.Store, tenant string) *audit.Log {
	t.Helper()
	sp, err := keyspace.Tenant(tenant)
	if err != nil {
		t.Fatal(err)
	}
	return audit.NewLog(s, sp)
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func appendN(t testing.TB, l *audit.Log, n int, mk func(i int) audit.Event) []audit.Event {
	t.Helper()
	var out []audit.Event
	for i := 0; i < n; i++ {
		evs, err := l.Append(ctx(t), mk(i))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, evs...)
	}
	return out
}

func ids(evs []audit.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func TestAppendGet(t *testing.T) {
	s, _ := openStore(t)
	l := newLog(t, s, "acme")
	in := audit.Event{User: "alice", Session: "s1", Agent: "a1", Kind: "file.modified", Path: "src/main.go",
		Summary: "edited", Attrs: map[string]any{"lines": 3.0},
		Attribution: &audit.Attribution{Actor: audit.ActorAgent, AgentID: "a1", Model: "qwen", Evidence: "fs_write", Confidence: 1}}
	evs, err := l.Append(ctx(t), in, audit.Event{Kind: "note.added", Summary: "second"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].ID >= evs[1].ID || evs[0].Tenant != "acme" || evs[0].Time.IsZero() {
		t.Fatalf("appended %+v", evs)
	}
	got, err := l.Get(ctx(t), evs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(evs[0])
	if !bytes.Equal(a, b) {
		t.Fatalf("Get returned\n%s\nwant\n%s", a, b)
	}
	if n, err := l.Count(ctx(t)); err != nil || n != 2 {
		t.Fatalf("count %d, %v", n, err)
	}
	if _, err := l.Get(ctx(t), "000000000000000000000000"); !errors.Is(err, audit.ErrBadCursor) {
		t.Fatalf("zero id: %v", err)
	}
	if _, err := l.Get(ctx(t), "0000000000000fff00000000"); !errors.Is(err, audit.ErrNotFound) {
		t.Fatalf("missing id: %v", err)
	}
}

func TestBadEvents(t *testing.T) {
	s, _ := openStore(t)
	l := newLog(t, s, "acme")
	long := strings.Repeat("x", 5000)
	cases := []struct {
		name string
		ev   audit.Event
		want error
	}{
		{"no kind", audit.Event{}, audit.ErrInvalidEvent},
		{"unknown kind", audit.Event{Kind: "file.exploded"}, audit.ErrUnknownKind},
		{"long summary", audit.Event{Kind: "note.added", Summary: long}, audit.ErrInvalidEvent},
		{"long path", audit.Event{Kind: "file.modified", Path: long}, audit.ErrInvalidEvent},
		{"long user", audit.Event{Kind: "note.added", User: long}, audit.ErrInvalidEvent},
		{"invalid utf8", audit.Event{Kind: "note.added", Session: "\xff\xfe"}, audit.ErrInvalidEvent},
		{"huge attrs", audit.Event{Kind: "note.added", Attrs: map[string]any{"x": strings.Repeat("y", 40<<10)}}, audit.ErrInvalidEvent},
		{"bad attrs", audit.Event{Kind: "note.added", Attrs: map[string]any{"f": func() {}}}, audit.ErrInvalidEvent},
		{"bad actor", audit.Event{Kind: "note.added", Attribution: &audit.Attribution{Actor: "robot"}}, audit.ErrInvalidEvent},
		{"bad confidence", audit.Event{Kind: "note.added", Attribution: &audit.Attribution{Actor: "human", Confidence: 2}}, audit.ErrInvalidEvent},
		{"long idempotency key", audit.Event{Kind: "note.added", IdempotencyKey: long}, audit.ErrInvalidEvent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A valid event first in the same batch: nothing of the batch lands.
			_, err := l.Append(ctx(t), audit.Event{Kind: "note.added", Summary: "ok"}, c.ev)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if len(err.Error()) > 2000 {
				t.Fatalf("error message of %d bytes", len(err.Error()))
			}
		})
	}
	if n, _ := l.Count(ctx(t)); n != 0 {
		t.Fatalf("%d events written by refused appends", n)
	}
	p, err := l.Query(ctx(t), audit.Query{})
	if err != nil || len(p.Events) != 0 {
		t.Fatalf("refused appends left %d events (%v)", len(p.Events), err)
	}
}

func TestIdempotency(t *testing.T) {
	s, _ := openStore(t)
	l := newLog(t, s, "acme")
	ev := audit.Event{Kind: "tool.called", Summary: "once", IdempotencyKey: "call-42"}
	first, err := l.Append(ctx(t), ev)
	if err != nil {
		t.Fatal(err)
	}
	again, err := l.Append(ctx(t), ev)
	if err != nil {
		t.Fatal(err)
	}
	if first[0].ID != again[0].ID {
		t.Fatalf("retry got a new id %s, first %s", again[0].ID, first[0].ID)
	}
	// Twice in one batch: one event.
	both, err := l.Append(ctx(t), audit.Event{Kind: "note.added", IdempotencyKey: "k2"}, audit.Event{Kind: "note.added", IdempotencyKey: "k2"})
	if err != nil || both[0].ID != both[1].ID {
		t.Fatalf("same key twice in a batch: %v %v", ids(both), err)
	}
	if n, _ := l.Count(ctx(t)); n != 2 {
		t.Fatalf("%d events, want 2", n)
	}
}

func TestQueryFiltersAndPaging(t *testing.T) {
	s, _ := openStore(t)
	l := newLog(t, s, "acme")
	users := []string{"alice", "bob"}
	kinds := []string{"file.modified", "note.added", "tool.called"}
	all := appendN(t, l, 60, func(i int) audit.Event {
		return audit.Event{User: users[i%2], Session: fmt.Sprintf("s%d", i%3), Agent: fmt.Sprintf("a%d", i%4),
			Kind: kinds[i%3], Path: fmt.Sprintf("f%d.go", i%5)}
	})
	match := func(f func(audit.Event) bool) []string {
		var out []string
		for _, e := range all {
			if f(e) {
				out = append(out, e.ID)
			}
		}
		return out
	}
	cases := []struct {
		name string
		f    audit.Filter
		want []string
	}{
		{"all", audit.Filter{}, ids(all)},
		{"user", audit.Filter{User: "bob"}, match(func(e audit.Event) bool { return e.User == "bob" })},
		{"session", audit.Filter{Session: "s1"}, match(func(e audit.Event) bool { return e.Session == "s1" })},
		{"agent+kind", audit.Filter{Agent: "a2", Kind: "file.modified"}, match(func(e audit.Event) bool { return e.Agent == "a2" && e.Kind == "file.modified" })},
		{"path+user", audit.Filter{Path: "f3.go", User: "alice"}, match(func(e audit.Event) bool { return e.Path == "f3.go" && e.User == "alice" })},
		{"session+agent+user+kind+path", audit.Filter{Session: "s0", Agent: "a0", User: "alice", Kind: "file.modified", Path: "f0.go"},
			match(func(e audit.Event) bool {
				return e.Session == "s0" && e.Agent == "a0" && e.User == "alice" && e.Kind == "file.modified" && e.Path == "f0.go"
			})},
		{"none", audit.Filter{User: "carol"}, nil},
	}
	for _, c := range cases {
		for _, order := range []audit.Order{audit.OldestFirst, audit.NewestFirst} {
			for _, limit := range []int{1, 7, 100} {
				t.Run(fmt.Sprintf("%s/order%d/limit%d", c.name, order, limit), func(t *testing.T) {
					var got []string
					q := audit.Query{Filter: c.f, Order: order, Limit: limit}
					for pages := 0; ; pages++ {
						p, err := l.Query(ctx(t), q)
						if err != nil {
							t.Fatal(err)
						}
						if len(p.Events) > limit {
							t.Fatalf("page of %d > limit %d", len(p.Events), limit)
						}
						got = append(got, ids(p.Events)...)
						if p.Next == "" {
							break
						}
						if pages > 100 {
							t.Fatal("paging does not end")
						}
						q.Cursor = p.Next
					}
					want := c.want
					if order == audit.NewestFirst {
						want = reversed(want)
					}
					if strings.Join(got, ",") != strings.Join(want, ",") {
						t.Fatalf("got %d events, want %d\n got %v\nwant %v", len(got), len(want), got, want)
					}
				})
			}
		}
	}
}

func reversed(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

// Paging newest-first while others append: no event is skipped or repeated.
func TestPagingStableUnderAppends(t *testing.T) {
	s, _ := openStore(t)
	l := newLog(t, s, "acme")
	before := appendN(t, l, 30, func(i int) audit.Event { return audit.Event{Kind: "note.added", Session: "s"} })
	var got []string
	q := audit.Query{Filter: audit.Filter{Session: "s"}, Order: audit.NewestFirst, Limit: 4}
	for {
		p, err := l.Query(ctx(t), q)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids(p.Events)...)
		appendN(t, l, 2, func(i int) audit.Event { return audit.Event{Kind: "note.added", Session: "s"} })
		if p.Next == "" {
			break
		}
		q.Cursor = p.Next
	}
	// The first page started at the newest event then; later appends are
	// newer than the cursor and do not shift the pages.
	if strings.Join(got, ",") != strings.Join(reversed(ids(before)), ",") {
		t.Fatalf("paging under appends returned %d events, want the %d present at the start", len(got), len(before))
	}
}

func TestTimeRange(t *testing.T) {
	s, _ := openStore(t)
	l := newLog(t, s, "acme")
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	all := appendN(t, l, 100, func(i int) audit.Event {
		return audit.Event{Kind: "note.added", Time: base.Add(time.Duration(i) * time.Hour), User: "u"}
	})
	since, until := base.Add(20*time.Hour), base.Add(29*time.Hour)
	want := ids(all[20:30])
	for _, f := range []audit.Filter{{Since: since, Until: until}, {Since: since, Until: until, User: "u"}} {
		for _, order := range []audit.Order{audit.OldestFirst, audit.NewestFirst} {
			p, err := l.Query(ctx(t), audit.Query{Filter: f, Order: order})
			if err != nil {
				t.Fatal(err)
			}
			w := want
			if order == audit.NewestFirst {
				w = reversed(want)
			}
			if strings.Join(ids(p.Events), ",") != strings.Join(w, ",") || p.Next != "" {
				t.Fatalf("filter %+v order %d: got %v next %q, want %v", f, order, ids(p.Events), p.Next, w)
			}
		}
	}
	if _, err := l.Query(ctx(t), audit.Query{Filter: audit.Filter{Since: until, Until: since}}); !errors.Is(err, audit.ErrInvalidEvent) {
		t.Fatalf("until before since: %v", err)
	}
}

func TestBadQueries(t *testing.T) {
	s, _ := openStore(t)
	l := newLog(t, s, "acme")
	for _, c := range []audit.Query{
		{Cursor: "not-a-cursor"},
		{Cursor: strings.Repeat("f", 24)},
		{Cursor: strings.Repeat("0", 24)},
		{Cursor: "zz" + strings.Repeat("0", 22)},
		{Cursor: strings.Repeat("0", 10000)},
		{Limit: audit.MaxLimit + 1},
		{Filter: audit.Filter{Kind: "made.up"}},
		{Filter: audit.Filter{User: strings.Repeat("u", 300)}},
	} {
		if _, err := l.Query(ctx(t), c); err == nil {
			t.Errorf("query %+v accepted", c)
		}
	}
}

// Tail across processes is in tail_test.go; here, in one process: a
// follower sees every event once, in order, including ones appended while
// it waits, and resumes from its cursor without gaps or repeats.
func TestTail(t *testing.T) {
	s, _ := openStore(t)
	l := newLog(t, s, "acme")
	first := appendN(t, l, 5, func(i int) audit.Event { return audit.Event{Kind: "note.added", Session: fmt.Sprint(i % 2)} })
	got := make(chan audit.Event, 100)
	tctx, cancel := context.WithCancel(ctx(t))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = l.Tail(tctx, "", audit.Filter{}, func(ev audit.Event) error { got <- ev; return nil })
	}()
	recv := func(n int) []string {
		var out []string
		for i := 0; i < n; i++ {
			select {
			case ev := <-got:
				out = append(out, ev.ID)
			case <-time.After(30 * time.Second):
				t.Fatalf("tail delivered %d of %d", i, n)
			}
		}
		return out
	}
	if g := recv(5); strings.Join(g, ",") != strings.Join(ids(first), ",") {
		t.Fatalf("tail backlog %v, want %v", g, ids(first))
	}
	more := appendN(t, l, 3, func(i int) audit.Event { return audit.Event{Kind: "note.added"} })
	if g := recv(3); strings.Join(g, ",") != strings.Join(ids(more), ",") {
		t.Fatalf("tail live %v, want %v", g, ids(more))
	}
	cancel()
	wg.Wait()
	// Resume from the last received: the rest, nothing twice.
	rest := appendN(t, l, 2, func(i int) audit.Event { return audit.Event{Kind: "note.added"} })
	var resumed []string
	rctx, rcancel := context.WithCancel(ctx(t))
	err := l.Tail(rctx, more[2].ID, audit.Filter{}, func(ev audit.Event) error {
		resumed = append(resumed, ev.ID)
		if len(resumed) == 2 {
			rcancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || strings.Join(resumed, ",") != strings.Join(ids(rest), ",") {
		t.Fatalf("resumed tail: %v, %v; want %v", resumed, err, ids(rest))
	}
	// A filtered tail sees only its session.
	var filtered []audit.Event
	fctx, fcancel := context.WithCancel(ctx(t))
	_ = l.Tail(fctx, "", audit.Filter{Session: "1"}, func(ev audit.Event) error {
		filtered = append(filtered, ev)
		if len(filtered) == 2 {
			fcancel()
		}
		return nil
	})
	for _, ev := range filtered {
		if ev.Session != "1" {
			t.Fatalf("filtered tail delivered %+v", ev)
		}
	}
}

func TestRetention(t *testing.T) {
	s, _ := openStore(t)
	l := newLog(t, s, "acme")
	base := time.Now().Add(-100 * time.Hour)
	appendN(t, l, 600, func(i int) audit.Event {
		return audit.Event{Kind: "note.added", Session: "s", Time: base.Add(time.Duration(i) * 10 * time.Minute)}
	})
	n, err := l.Sweep(ctx(t), audit.Retention{MaxEvents: 500})
	if err != nil || n != 100 {
		t.Fatalf("max events: removed %d, %v", n, err)
	}
	if c, _ := l.Count(ctx(t)); c != 500 {
		t.Fatalf("count after sweep %d", c)
	}
	// By age: events older than 50 h go (those before i = 300).
	n, err = l.Sweep(ctx(t), audit.Retention{MaxAge: 50 * time.Hour})
	if err != nil || n < 199 || n > 201 {
		t.Fatalf("max age: removed %d, %v", n, err)
	}
	// Index entries went with their events.
	p, err := l.Query(ctx(t), audit.Query{Filter: audit.Filter{Session: "s"}, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := l.Count(ctx(t))
	if int64(len(p.Events)) != c || p.Next != "" {
		t.Fatalf("session index lists %d events, count says %d", len(p.Events), c)
	}
}

func TestExport(t *testing.T) {
	s, _ := openStore(t)
	l := newLog(t, s, "acme")
	appendN(t, l, 25, func(i int) audit.Event { return audit.Event{Kind: "note.added", User: fmt.Sprint(i % 2)} })
	var buf bytes.Buffer
	n, err := l.Export(ctx(t), audit.Query{Filter: audit.Filter{User: "1"}}, &buf)
	if err != nil || n != 12 {
		t.Fatalf("exported %d, %v", n, err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 12 {
		t.Fatalf("%d lines", len(lines))
	}
	for _, line := range lines {
		var ev audit.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.User != "1" || ev.ID == "" {
			t.Fatalf("line %q: %v", line, err)
		}
	}
}

func TestTenantIsolation(t *testing.T) {
	s, _ := openStore(t)
	a, b := newLog(t, s, "a"), newLog(t, s, "b")
	evB, err := b.Append(ctx(t), audit.Event{Kind: "note.added", Session: "shared", Summary: "b's secret"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(ctx(t), evB[0].ID); !errors.Is(err, audit.ErrNotFound) {
		t.Fatalf("tenant a read b's event by id: %v", err)
	}
	p, err := a.Query(ctx(t), audit.Query{Filter: audit.Filter{Session: "shared"}})
	if err != nil || len(p.Events) != 0 {
		t.Fatalf("tenant a listed %d of b's events (%v)", len(p.Events), err)
	}
	if n, _ := a.Count(ctx(t)); n != 0 {
		t.Fatalf("tenant a counts %d events", n)
	}
	// b's event id as a cursor in a's log reads only a's events.
	if _, err := a.Append(ctx(t), audit.Event{Kind: "note.added"}); err != nil {
		t.Fatal(err)
	}
	p, err = a.Query(ctx(t), audit.Query{Cursor: evB[0].ID, Order: audit.NewestFirst})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range p.Events {
		if ev.Tenant != "a" || strings.Contains(ev.Summary, "secret") {
			t.Fatalf("leaked %+v", ev)
		}
	}
	if n, _ := a.Sweep(ctx(t), audit.Retention{MaxEvents: 1}); n != 0 {
		t.Fatalf("a's sweep removed %d", n)
	}
	if n, _ := b.Count(ctx(t)); n != 1 {
		t.Fatalf("b has %d events after a's activity", n)
	}
}

func TestVerify(t *testing.T) {
	s, _ := openStore(t)
	l := newLog(t, s, "acme")
	evs := appendN(t, l, 1200, func(i int) audit.Event {
		return audit.Event{Kind: "file.modified", User: "u", Session: fmt.Sprint("s", i%7), Path: fmt.Sprint("f", i%11)}
	})
	r, err := l.Verify(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || r.Events != 1200 || r.IndexEntries != 1200*4 || len(r.Problems) != 0 {
		t.Fatalf("a consistent log: %+v", r)
	}
	// Damage it: remove one index entry, and one event behind its entries.
	sp, _ := keyspace.Tenant("acme")
	vs0, _ := audit.ParseID(evs[0].ID)
	vs1, _ := audit.ParseID(evs[1].ID)
	entry, _ := sp.AuditIndexEntry(keyspace.IndexPath, evs[0].Path, vs0)
	event, _ := sp.AuditEvent(vs1)
	if _, err := s.Update(ctx(t), func(tx kv.Tx) error {
		tx.Clear(entry)
		tx.Clear(event)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r, err = l.Verify(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if r.OK() || r.Missing != 1 || r.Dangling != 4 || r.Events != 1199 || r.Counted != 1200 || len(r.Problems) == 0 {
		t.Fatalf("a damaged log: %+v", r)
	}
}

// FuzzAppend: any field values either append (and read back unchanged) or
// are refused with a typed error; nothing panics and nothing half-lands.
func FuzzAppend(f *testing.F) {
	f.Add("note.added", "alice", "s1", "src/a.go", "hello", `{"k":1}`)
	f.Add("file.modified", "", "", "", "", `null`)
	f.Add("nope", "\xff", "a\x00b", "../../x", "", `{"x":[1,2,{"y":"z"}]}`)
	var l *audit.Log
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, kind, user, session, path, summary, attrs string) {
		if l == nil {
			s, err := sqlite.Open(context.Background(), dir+"/f.db", sqlite.Options{Synchronous: sqlite.SyncNormal})
			if err != nil {
				t.Fatal(err)
			}
			l = newLog(t, s, "fuzz")
		}
		ev := audit.Event{Kind: kind, User: user, Session: session, Path: path, Summary: summary}
		var a map[string]any
		if json.Unmarshal([]byte(attrs), &a) == nil {
			ev.Attrs = a
		}
		before, _ := l.Count(context.Background())
		out, err := l.Append(context.Background(), ev)
		after, _ := l.Count(context.Background())
		if err != nil {
			if !errors.Is(err, audit.ErrInvalidEvent) && !errors.Is(err, audit.ErrUnknownKind) {
				t.Fatalf("untyped refusal: %v", err)
			}
			if after != before {
				t.Fatal("a refused append changed the log")
			}
			return
		}
		got, err := l.Get(context.Background(), out[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Kind != kind || got.User != user || got.Session != session || got.Path != path || got.Summary != summary {
			t.Fatalf("read back %+v, appended %+v", got, ev)
		}
	})
}
