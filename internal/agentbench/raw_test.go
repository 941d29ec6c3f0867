package agentbench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the driver storage/kv/sqlite uses
)

// runRaw is the disk's limit: n goroutines each committing single-row
// inserts as fast as they can, autocommit, through database/sql and the
// driver the embedded store uses, WAL with synchronous=FULL, into a table
// shaped like the store's. They share one connection, so they queue in
// database/sql for it: several connections would wait for SQLite's write
// lock in its busy handler, which sleeps milliseconds at a time and
// measures that instead of the disk.
func runRaw(ctx context.Context, tb testing.TB, n int, d time.Duration) (result, error) {
	dir, err := os.MkdirTemp("", "agentbench-raw-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	dsn := fmt.Sprintf("file:%s?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)",
		filepath.Join(dir, "raw.db"))
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return result{}, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE kv(key BLOB PRIMARY KEY NOT NULL, value BLOB NOT NULL) STRICT, WITHOUT ROWID`); err != nil {
		return result{}, err
	}
	value := []byte("a value of about the size of an audit index entry")
	var next atomic.Int64
	insert := func() error {
		_, err := db.ExecContext(ctx, `INSERT INTO kv(key, value) VALUES (?, ?)`, fmt.Appendf(nil, "k/%012d", next.Add(1)), value)
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	if err := insert(); err != nil { // opens the connection
		return result{}, err
	}
	end := time.Now().Add(d)
	lats := make([][]time.Duration, n)
	for i := range n {
		wg.Go(func() {
			for {
				t := time.Now()
				if !t.Before(end) {
					return
				}
				if err := insert(); err != nil {
					errs[i] = err
					return
				}
				if done := time.Now(); done.Before(end) {
					lats[i] = append(lats[i], done.Sub(t))
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return result{}, err
	}
	return latencies(slices.Concat(lats...), d), nil
}
