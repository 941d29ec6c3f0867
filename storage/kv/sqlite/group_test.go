package sqlite

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/kv"
)

// waitQueued waits until n Updates are queued for the next commit batch.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.group.mu.Lock()
		got := len(s.group.queue)
		s.group.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d Updates queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

type result struct {
	stamp kv.Versionstamp
	err   error
}

// goUpdate runs fn in an Update on its own goroutine.
func goUpdate(s *Store, fn func(kv.Tx) error) chan result {
	c := make(chan result, 1)
	go func() {
		st, err := s.Update(context.Background(), fn)
		c <- result{st, err}
	}()
	return c
}

// holdBatch starts an Update that keeps its commit batch running until
// release is called, so that the Updates started meanwhile queue up (and
// then join that batch); done reports its result. Run again (its batch
// aborted), it does not wait.
func holdBatch(s *Store) (release func(), done chan result) {
	return holdBatchCtx(context.Background(), s)
}

// holdBatchCtx is holdBatch with the Update's context.
func holdBatchCtx(ctx context.Context, s *Store) (release func(), done chan result) {
	running, hold := make(chan struct{}), make(chan struct{})
	var once sync.Once
	done = make(chan result, 1)
	go func() {
		st, err := s.Update(ctx, func(tx kv.Tx) error {
			tx.Set([]byte("a"), []byte("1"))
			once.Do(func() {
				close(running)
				<-hold
			})
			return nil
		})
		done <- result{st, err}
	}()
	<-running
	return func() { close(hold) }, done
}

// TestGroupCommitBatch: Updates queued while a batch runs join it; they
// run one after another, each seeing the writes of those before it; one
// that fails rolls back alone; the ones that commit share a commit number
// and are numbered in batch order; a watch set in the batch fires on a
// later commit.
func TestGroupCommitBatch(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "g.db"), Options{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	update := func(fn func(kv.Tx) error) chan result { return goUpdate(s, fn) }
	release, first := holdBatch(s)
	boom := errors.New("boom")
	var watch kv.Watch
	b := update(func(tx kv.Tx) error { tx.Set([]byte("b"), []byte("2")); return nil })
	waitQueued(t, s, 1)
	c := update(func(tx kv.Tx) error { tx.Set([]byte("c"), []byte("3")); return boom })
	waitQueued(t, s, 2)
	d := update(func(tx kv.Tx) error {
		v, err := tx.Get([]byte("b"))
		if err != nil {
			return err
		}
		tx.SetVersionstampedValue([]byte("d"), append(make([]byte, kv.StampSize), v...), 0)
		watch = tx.Watch([]byte("w"))
		return nil
	})
	waitQueued(t, s, 3)
	release()

	r1, rb, rc, rd := <-first, <-b, <-c, <-d
	for _, r := range []result{r1, rb, rd} {
		if r.err != nil {
			t.Fatal(r.err)
		}
	}
	if !errors.Is(rc.err, boom) {
		t.Fatalf("failing Update: %v, want %v", rc.err, boom)
	}
	if bytes.Compare(r1.stamp[:], rb.stamp[:]) >= 0 || bytes.Compare(rb.stamp[:], rd.stamp[:]) >= 0 {
		t.Fatalf("stamps not increasing in commit order: %v %v %v", r1.stamp, rb.stamp, rd.stamp)
	}
	if !bytes.Equal(r1.stamp[:8], rb.stamp[:8]) || !bytes.Equal(rb.stamp[:8], rd.stamp[:8]) ||
		r1.stamp[9] != 0 || rb.stamp[9] != 1 || rd.stamp[9] != 3 {
		t.Fatalf("batched stamps %v %v %v: want one commit number, batch orders 0, 1 and 3", r1.stamp, rb.stamp, rd.stamp)
	}
	err = s.View(ctx, func(tx kv.ReadTx) error {
		if v, _ := tx.Get([]byte("c")); v != nil {
			t.Errorf("the failed Update's write is present: %q", v)
		}
		v, err := tx.Get([]byte("d"))
		if err != nil {
			return err
		}
		if !bytes.Equal(v, append(rd.stamp[:kv.StampSize:kv.StampSize], '2')) {
			t.Errorf("d = %x: want its own stamp %x then the value of b written before it in the batch", v, rd.stamp[:kv.StampSize])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, func(tx kv.Tx) error { tx.Set([]byte("w"), []byte("x")); return nil }); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := watch.Wait(wctx); err != nil {
		t.Fatalf("watch set in a batch: %v", err)
	}
}

// TestGroupCommitBatchAborted: when a batch's SQLite transaction ends before
// its COMMIT (here an Update rolls it back under the batch), the other
// Updates of the batch are run again, exactly once each, and the one that
// failed reports its own error.
func TestGroupCommitBatchAborted(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "g.db"), Options{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	release, first := holdBatch(s)
	add := func(tx kv.Tx) error { tx.Add([]byte("n"), 1); return nil }
	b := goUpdate(s, add)
	waitQueued(t, s, 1)
	boom := errors.New("boom")
	c := goUpdate(s, func(tx kv.Tx) error {
		if _, err := tx.(*txn).s.stmts.rollback.Exec(); err != nil {
			return err
		}
		return boom
	})
	waitQueued(t, s, 2)
	d := goUpdate(s, add)
	waitQueued(t, s, 3)
	release()
	for _, r := range []result{<-first, <-b, <-d} {
		if r.err != nil {
			t.Fatal(r.err)
		}
	}
	if r := <-c; !errors.Is(r.err, boom) {
		t.Fatalf("the Update that ended the transaction: %v, want %v", r.err, boom)
	}
	err = s.View(context.Background(), func(tx kv.ReadTx) error {
		v, err := tx.Get([]byte("n"))
		if err == nil && !bytes.Equal(v, kv.AddLE(nil, 2)) {
			t.Errorf("counter = %x after two committed Adds, want %x", v, kv.AddLE(nil, 2))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGroupCommitDurability: a batch holding a durable Update commits at
// synchronous=FULL even for the relaxed Updates in it; a batch of relaxed
// Updates only commits at NORMAL.
func TestGroupCommitDurability(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "g.db"), Options{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	relaxed := kv.WithRelaxedDurability(context.Background())
	syncOf := func(ctx context.Context) chan int {
		c := make(chan int, 1)
		go func() {
			var in int
			_, err := s.Update(ctx, func(tx kv.Tx) error {
				tx.Set([]byte("k"), []byte("v"))
				// The writer connection, as the commit will use it.
				return s.wconn.QueryRowContext(context.Background(), "PRAGMA synchronous").Scan(&in)
			})
			if err != nil {
				t.Error(err)
			}
			c <- in
		}()
		return c
	}
	release, first := holdBatch(s)
	d := syncOf(context.Background())
	waitQueued(t, s, 1)
	r := syncOf(relaxed)
	waitQueued(t, s, 2)
	release()
	<-first
	if got, gotD := <-r, <-d; got != 2 || gotD != 2 {
		t.Errorf("relaxed and durable Updates in one batch: synchronous=%d and %d, want 2 (FULL)", got, gotD)
	}
	if got := <-syncOf(relaxed); got != 1 {
		t.Errorf("a batch of relaxed Updates only: synchronous=%d, want 1 (NORMAL)", got)
	}
	// A durable Update queued while a relaxed batch runs does not join it:
	// it commits at FULL in a batch of its own, after it.
	release, first = holdBatchCtx(relaxed, s)
	d = syncOf(context.Background())
	waitQueued(t, s, 1)
	release()
	if r := <-first; r.err != nil {
		t.Fatal(r.err)
	}
	if got := <-d; got != 2 {
		t.Errorf("a durable Update queued behind a relaxed batch: synchronous=%d, want 2 (FULL)", got)
	}
}

// TestGroupCommitPanic: a transaction function that panics rolls back
// alone, and the panic is raised in its own Update's goroutine.
func TestGroupCommitPanic(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "g.db"), Options{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	release, first := holdBatch(s)
	recovered := make(chan any, 1)
	go func() {
		defer func() { recovered <- recover() }()
		_, _ = s.Update(context.Background(), func(tx kv.Tx) error {
			tx.Set([]byte("p"), []byte("1"))
			panic("boom")
		})
	}()
	waitQueued(t, s, 1)
	other := goUpdate(s, func(tx kv.Tx) error { tx.Set([]byte("o"), []byte("1")); return nil })
	waitQueued(t, s, 2)
	release()
	if r := <-first; r.err != nil {
		t.Fatal(r.err)
	}
	if r := <-other; r.err != nil {
		t.Fatal(r.err)
	}
	if v := <-recovered; v != "boom" {
		t.Fatalf("recovered %v in the panicking Update, want boom", v)
	}
	err = s.View(context.Background(), func(tx kv.ReadTx) error {
		if v, _ := tx.Get([]byte("p")); v != nil {
			t.Error("the panicking Update's write is present")
		}
		if v, _ := tx.Get([]byte("o")); v == nil {
			t.Error("the Update batched with a panicking one is missing")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
