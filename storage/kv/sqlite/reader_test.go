package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/coditect/coditect/storage/kv"
)

// TestReadConnsEndTheirTransactions: every way a View ends — committed,
// failed, canceled, panicking — puts its reader connection back outside a
// transaction (an open read transaction would pin the WAL), and no more
// than Options.Readers are opened however many Views ran.
func TestReadConnsEndTheirTransactions(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "r.db"), Options{Readers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Update(ctx, func(tx kv.Tx) error { tx.Set([]byte("k"), []byte("v")); return nil }); err != nil {
		t.Fatal(err)
	}
	read := func(tx kv.ReadTx) error { _, err := tx.Get([]byte("k")); return err }
	boom := errors.New("boom")
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	views := []struct {
		name string
		run  func() error
		ok   bool
	}{
		{"committed", func() error { return s.View(ctx, read) }, true},
		{"failed", func() error { return s.View(ctx, func(tx kv.ReadTx) error { _ = read(tx); return boom }) }, false},
		{"canceled during", func() error {
			ctx, cancel := context.WithCancel(ctx)
			return s.View(ctx, func(tx kv.ReadTx) error { _ = read(tx); cancel(); return read(tx) })
		}, false},
		{"canceled before", func() error { return s.View(canceled, read) }, false},
		{"panicked", func() (err error) { // nil once the panic reached the caller
			defer func() {
				if recover() != nil {
					err = nil
				}
			}()
			_ = s.View(ctx, func(tx kv.ReadTx) error { _ = read(tx); panic("view panics") })
			return errors.New("no panic")
		}, true},
	}
	for range 3 {
		for _, v := range views {
			if err := v.run(); (err == nil) != v.ok {
				t.Fatalf("%s View: %v", v.name, err)
			}
			s.rpool.mu.Lock()
			idle, open := s.rpool.idle, s.rpool.open
			s.rpool.mu.Unlock()
			if open > 2 || len(idle) != open {
				t.Fatalf("after a %s View: %d reader connections open, %d idle; want at most 2, all idle", v.name, open, len(idle))
			}
			for _, rc := range idle {
				// BEGIN fails inside a transaction.
				if _, err := rc.begin.ExecContext(ctx); err != nil {
					t.Fatalf("after a %s View, an idle reader connection is still in a transaction: %v", v.name, err)
				}
				if _, err := rc.rollback.ExecContext(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}
