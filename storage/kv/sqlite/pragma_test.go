package sqlite

import (
	"context"
	"path/filepath"
	"testing"
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
