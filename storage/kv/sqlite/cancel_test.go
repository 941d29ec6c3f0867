package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/kv"
)

// TestCancelledUpdatesLeaveNoTransaction: an Update whose context ends at
// any moment (before BEGIN, during it, in the transaction, at COMMIT)
// leaves the writer connection ready for the next one, and, under group
// commit, does not fail an Update sharing its batch.
func TestCancelledUpdatesLeaveNoTransaction(t *testing.T) {
	for _, group := range []bool{false, true} {
		t.Run(fmt.Sprintf("group=%v", group), func(t *testing.T) { testCancelledUpdates(t, group) })
	}
}

func testCancelledUpdates(t *testing.T, group bool) {
	st, err := Open(context.Background(), filepath.Join(t.TempDir(), "s.db"), Options{Synchronous: SyncNormal, GroupCommit: group})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := 3000
	if testing.Short() {
		n = 1000
	}
	set := func(ctx context.Context, k ...byte) error {
		_, err := st.Update(ctx, func(tx kv.Tx) error { tx.Set(k, []byte{1}); return nil })
		return err
	}
	committed := 0
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%50)*time.Microsecond)
		alongside := make(chan error, 1)
		go func() { alongside <- set(context.Background(), 3, byte(i>>8), byte(i)) }()
		if err := set(ctx, 1, byte(i>>8), byte(i)); err == nil {
			committed++
		}
		cancel()
		if err := <-alongside; err != nil {
			t.Fatalf("an update alongside a cancelled one: %v", err)
		}
		if err := set(context.Background(), 2); err != nil {
			t.Fatalf("after %d cancelled updates: %v", i+1, err)
		}
	}
	// Every update that reported success is there; none that failed is.
	var got, along int
	if err := st.View(context.Background(), func(tx kv.ReadTx) error {
		kvs, err := kv.Collect(tx.GetRange([]byte{1}, []byte{2}, kv.RangeOptions{}))
		got = len(kvs)
		if err != nil {
			return err
		}
		kvs, err = kv.Collect(tx.GetRange([]byte{3}, []byte{4}, kv.RangeOptions{}))
		along = len(kvs)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got != committed {
		t.Errorf("%d keys written, %d updates reported success", got, committed)
	}
	if along != n {
		t.Errorf("%d of %d updates alongside cancelled ones written", along, n)
	}
	t.Logf("%d of %d updates with short deadlines committed", committed, n)
}
