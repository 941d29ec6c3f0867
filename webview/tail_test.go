package webview

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/tenant"
)

// Clients of one tenant and filter share one tail; a different filter gets
// its own; the tail stops when its last client leaves, and a later client
// starts a new one.
func TestSharedTailLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := storage.Open(ctx, "sqlite://"+filepath.ToSlash(filepath.Join(t.TempDir(), "c.db")))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sc, err := tenant.NewDirectory(st, "test").Local(ctx, "acme", "alice")
	if err != nil {
		t.Fatal(err)
	}
	feeds, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	ts := newTails(feeds, &wg, slog.New(slog.DiscardHandler))
	all := tailKey{tenant: "acme"}
	notes := tailKey{tenant: "acme", filter: FeedFilter{Kind: "note.added"}}
	head, err := sc.Log().Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	q1, q2, q3 := newQueue(4, 1<<20), newQueue(4, 1<<20), newQueue(4, 1<<20)
	st1, f1, ok1, err1 := ts.attach(ctx, sc.Log(), all, feedFilter(all.filter), head, q1)
	st2, f2, ok2, err2 := ts.attach(ctx, sc.Log(), all, feedFilter(all.filter), head, q2)
	st3, f3, ok3, err3 := ts.attach(ctx, sc.Log(), notes, feedFilter(notes.filter), head, q3)
	if !ok1 || !ok2 || !ok3 || err1 != nil || err2 != nil || err3 != nil {
		t.Fatal(ok1, ok2, ok3, err1, err2, err3)
	}
	if st1 != st2 || st1 == st3 || len(ts.m) != 2 {
		t.Fatalf("tails: %p %p %p, %d in the map; want the first two shared", st1, st2, st3, len(ts.m))
	}
	// One event reaches both clients of the shared tail, encoded once.
	evs, err := sc.Log().Append(ctx, sc.Event("note.added", "hello"))
	if err != nil {
		t.Fatal(err)
	}
	i1, i2, i3 := <-q1.ch, <-q2.ch, <-q3.ch
	if i1.id != evs[0].ID || i2.id != evs[0].ID || i3.id != evs[0].ID || &i1.raw[0] != &i2.raw[0] {
		t.Fatalf("delivered %s %s %s, want %s from one encoding", i1.id, i2.id, i3.id, evs[0].ID)
	}
	ts.detach(st1, f1)
	if ts.m[all] != st1 || st1.isClosed() {
		t.Fatal("the shared tail stopped while a client was still attached")
	}
	ts.detach(st2, f2)
	ts.detach(st3, f3)
	if len(ts.m) != 0 || !st1.isClosed() || !st3.isClosed() {
		t.Fatalf("%d tails left after every client left", len(ts.m))
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("a tail goroutine outlived its last client")
	}
	// A later client starts a new tail; the handler's shutdown ends it and
	// lets its client go.
	st4, f4, ok, err := ts.attach(ctx, sc.Log(), all, feedFilter(all.filter), evs[0].ID, newQueue(4, 1<<20))
	if !ok || err != nil || st4 == st1 {
		t.Fatal(ok, err)
	}
	stop()
	select {
	case <-f4.detached:
	case <-ctx.Done():
		t.Fatal("the feeds' end did not end the tail")
	}
	wg.Wait()
	if len(ts.m) != 0 {
		t.Fatal("a stopped tail stayed in the map")
	}
}
