package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/kv"
)

// TestCancelledUpdatesLeaveNoTransaction: an Update whose context ends at
// any moment (before BEGIN, during it, in the transaction, at COMMIT)
// leaves the writer connection ready for the next one.
func TestCancelledUpdatesLeaveNoTransaction(t *testing.T) {
	st, err := Open(context.Background(), filepath.Join(t.TempDir(), "s.db"), Options{Synchronous: SyncNormal})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := 3000
	if testing.Short() {
		n = 1000
	}
	committed := 0
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%50)*time.Microsecond)
		if _, err := st.Update(ctx, func(tx kv.Tx) error { tx.Set([]byte{1, byte(i >> 8), byte(i)}, []byte{1}); return nil }); err == nil {
			committed++
		}
		cancel()
		if _, err := st.Update(context.Background(), func(tx kv.Tx) error { tx.Set([]byte{2}, []byte{1}); return nil }); err != nil {
			t.Fatalf("after %d cancelled updates: %v", i+1, err)
		}
	}
	// Every update that reported success is there; none that failed is.
	var got int
	if err := st.View(context.Background(), func(tx kv.ReadTx) error {
		kvs, err := kv.Collect(tx.GetRange([]byte{1}, []byte{2}, kv.RangeOptions{}))
		got = len(kvs)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got != committed {
		t.Errorf("%d keys written, %d updates reported success", got, committed)
	}
	t.Logf("%d of %d updates with short deadlines committed", committed, n)
}
