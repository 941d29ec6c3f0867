package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/coditect/coditect/storage/kv"
)

// The durability, journal and checkpoint settings are what the package
// documents.
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
		var ckpt int
		if err := s.wconn.QueryRowContext(context.Background(), "PRAGMA wal_autocheckpoint").Scan(&ckpt); err != nil || ckpt != checkpointPages {
			t.Errorf("writer wal_autocheckpoint=%d, %v; want %d", ckpt, err, checkpointPages)
		}
		var rsync int
		if err := s.readers.QueryRowContext(context.Background(), "PRAGMA synchronous").Scan(&rsync); err != nil || rsync != c.want {
			t.Errorf("reader synchronous=%d, %v", rsync, err)
		}
		s.Close()
	}
}

// A relaxed Update (kv.WithRelaxedDurability) commits with synchronous=NORMAL
// on a FULL store, and every durable Update with FULL, in any sequence and
// also after a relaxed transaction that failed; a NORMAL store stays NORMAL.
func TestRelaxedDurability(t *testing.T) {
	for _, c := range []struct {
		sync          Synchronous
		base, relaxed int
	}{{SyncFull, 2, 1}, {SyncNormal, 1, 1}} {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "r.db"), Options{Synchronous: c.sync})
		if err != nil {
			t.Fatal(err)
		}
		update := func(ctx context.Context, fail error) (int, error) {
			var in int
			_, err := s.Update(ctx, func(tx kv.Tx) error {
				// The writer connection, as the commit will use it.
				if err := s.wconn.QueryRowContext(context.Background(), "PRAGMA synchronous").Scan(&in); err != nil {
					return err
				}
				tx.Set([]byte("k"), []byte("v"))
				return fail
			})
			return in, err
		}
		relaxed := kv.WithRelaxedDurability(context.Background())
		boom := errors.New("boom")
		for i, step := range []struct {
			ctx  context.Context
			fail error
			want int
		}{
			{context.Background(), nil, c.base},
			{relaxed, nil, c.relaxed},
			{relaxed, nil, c.relaxed},
			{context.Background(), nil, c.base},
			{relaxed, boom, c.relaxed},
			{context.Background(), nil, c.base},
			{context.Background(), nil, c.base},
		} {
			in, err := update(step.ctx, step.fail)
			if !errors.Is(err, step.fail) {
				t.Fatalf("%s store, step %d: %v", c.sync, i, err)
			}
			if in != step.want {
				t.Errorf("%s store, step %d (relaxed %v): synchronous=%d, want %d", c.sync, i, kv.RelaxedDurability(step.ctx), in, step.want)
			}
		}
		s.Close()
	}
}
