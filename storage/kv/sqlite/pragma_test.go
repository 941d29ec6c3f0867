package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/coditect/coditect/storage/kv"
)

// The durability and journal settings are what the package documents.
func TestPragmas(t *testing.T) {
	for _, c := range []struct {
		sync Synchronous
		want int
	}{{"", 2}, {SyncFull, 2}, {SyncNormal, 1}} {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "p.db"), Options{Synchronous: c.sync})
		if err != nil {
			t.Fatal(err)
		}
		var mode string
		var sync, busy int
		row := s.wconn.QueryRowContext(context.Background(), "SELECT * FROM pragma_journal_mode, pragma_synchronous, pragma_busy_timeout")
		if err := row.Scan(&mode, &sync, &busy); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" || sync != c.want || busy != 0 {
			t.Errorf("synchronous %q: journal_mode=%s synchronous=%d busy_timeout=%d; want wal, %d, 0", c.sync, mode, sync, busy, c.want)
		}
		var rsync int
		if err := s.readers.QueryRowContext(context.Background(), "PRAGMA synchronous").Scan(&rsync); err != nil || rsync != c.want {
			t.Errorf("reader synchronous=%d, %v", rsync, err)
		}
		s.Close()
	}
}

// A relaxed Update (kv.WithRelaxedDurability) commits with synchronous=NORMAL
// on a FULL store, and the store is FULL again for the next commit, also
// when the relaxed transaction fails; a NORMAL store stays NORMAL.
func TestRelaxedDurability(t *testing.T) {
	for _, c := range []struct {
		sync          Synchronous
		base, relaxed int
	}{{SyncFull, 2, 1}, {SyncNormal, 1, 1}} {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "r.db"), Options{Synchronous: c.sync})
		if err != nil {
			t.Fatal(err)
		}
		level := func() int {
			t.Helper()
			var n int
			if err := s.wconn.QueryRowContext(context.Background(), "PRAGMA synchronous").Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		update := func(ctx context.Context, fail error) (int, error) {
			var in int
			_, err := s.Update(ctx, func(tx kv.Tx) error {
				in = level()
				tx.Set([]byte("k"), []byte("v"))
				return fail
			})
			return in, err
		}
		relaxed := kv.WithRelaxedDurability(context.Background())
		if in, err := update(relaxed, nil); err != nil || in != c.relaxed {
			t.Errorf("%s store, relaxed update: synchronous=%d inside (%v), want %d", c.sync, in, err, c.relaxed)
		}
		if got := level(); got != c.base {
			t.Errorf("%s store after a relaxed update: synchronous=%d, want %d", c.sync, got, c.base)
		}
		boom := errors.New("boom")
		if _, err := update(relaxed, boom); !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if got := level(); got != c.base {
			t.Errorf("%s store after a failed relaxed update: synchronous=%d, want %d", c.sync, got, c.base)
		}
		if in, err := update(context.Background(), nil); err != nil || in != c.base {
			t.Errorf("%s store, plain update: synchronous=%d inside (%v), want %d", c.sync, in, err, c.base)
		}
		s.Close()
	}
}
