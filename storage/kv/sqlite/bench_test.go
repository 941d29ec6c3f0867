package sqlite_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/kvtest"
	"github.com/coditect/coditect/storage/kv/sqlite"
)

// The baselines are plain database/sql against the same table, the same
// pragmas (WAL, synchronous=FULL) and the same driver, measured in the same
// run: the ratio is the cost of the kv contract.

func openRaw(b testing.TB, path string, busyTimeoutMS int) *sql.DB {
	b.Helper()
	dsn := fmt.Sprintf("file:%s?_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)", path, busyTimeoutMS)
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	b.Cleanup(func() { db.Close() })
	return db
}

// freshPath returns the path of a new store with the kv schema, closed.
func freshPath(b testing.TB) string {
	s, path := newStore(b, sqlite.Options{})
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

func benchKey(i int) []byte { return []byte(fmt.Sprintf("bench/%010d", i)) }

var benchValue = []byte("a value of about the size of an audit index entry")

// BenchmarkCommitSingle: one durable single-record transaction per op.
func BenchmarkCommitSingle(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		db := openRaw(b, freshPath(b), 5000)
		stmt, err := db.Prepare(`INSERT INTO kv(key, value) VALUES (?, ?)`)
		if err != nil {
			b.Fatal(err)
		}
		defer stmt.Close()
		lats := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			if _, err := stmt.Exec(benchKey(i), benchValue); err != nil {
				b.Fatal(err)
			}
			lats = append(lats, time.Since(start))
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
		kvtest.ReportLatency(b, lats)
	})
	b.Run("kv", func(b *testing.B) { benchCommitSingle(b, context.Background()) })
	// Relaxed: survives a crash of the process, not a power failure
	// (kv.WithRelaxedDurability): the audit records of reads.
	b.Run("kv-relaxed", func(b *testing.B) { benchCommitSingle(b, kv.WithRelaxedDurability(context.Background())) })
}

func benchCommitSingle(b *testing.B, ctx context.Context) {
	s, _ := newStore(b, sqlite.Options{})
	lats := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := s.Update(ctx, func(tx kv.Tx) error {
			tx.Set(benchKey(i), benchValue)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		lats = append(lats, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
	kvtest.ReportLatency(b, lats)
}

// BenchmarkCommitBatch100: one durable 100-record transaction per op.
func BenchmarkCommitBatch100(b *testing.B) {
	const per = 100
	b.Run("raw", func(b *testing.B) {
		db := openRaw(b, freshPath(b), 5000)
		stmt, err := db.Prepare(`INSERT INTO kv(key, value) VALUES (?, ?)`)
		if err != nil {
			b.Fatal(err)
		}
		defer stmt.Close()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			tx, err := db.Begin()
			if err != nil {
				b.Fatal(err)
			}
			st := tx.Stmt(stmt)
			for j := 0; j < per; j++ {
				if _, err := st.Exec(benchKey(i*per+j), benchValue); err != nil {
					b.Fatal(err)
				}
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*per)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("kv", func(b *testing.B) {
		s, _ := newStore(b, sqlite.Options{})
		ctx := context.Background()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := s.Update(ctx, func(tx kv.Tx) error {
				for j := 0; j < per; j++ {
					tx.Set(benchKey(i*per+j), benchValue)
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*per)/b.Elapsed().Seconds(), "records/s")
	})
}

// largeStore returns the path of a store holding n keys, built once and kept
// in the temporary directory across runs (benchmarks only read it).
func largeStore(b *testing.B, n int) string {
	return kvtest.CachedStore(b, fmt.Sprintf("coditect-bench-%d-v1.db", n), func(tmp string) {
		s, err := sqlite.Open(context.Background(), tmp, sqlite.Options{Synchronous: sqlite.SyncNormal})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
		db := openRaw(b, tmp, 5000)
		const batch = 20_000
		for i := 0; i < n; i += batch {
			tx, err := db.Begin()
			if err != nil {
				b.Fatal(err)
			}
			for j := i; j < min(i+batch, n); j++ {
				if _, err := tx.Exec(`INSERT INTO kv(key, value) VALUES (?, ?)`, benchKey(j), benchValue); err != nil {
					b.Fatal(err)
				}
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			b.Fatal(err)
		}
		db.Close()
	})
}

// BenchmarkRange1000: read 1,000 consecutive keys at a random place in a
// store of 1,000,000 keys (100,000 with -short).
func BenchmarkRange1000(b *testing.B) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	path := largeStore(b, n)
	const width = 1000
	b.Run("raw", func(b *testing.B) {
		db := openRaw(b, path, 5000)
		stmt, err := db.Prepare(`SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT 1000`)
		if err != nil {
			b.Fatal(err)
		}
		defer stmt.Close()
		lats := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			at := rand.IntN(n - width)
			tx, err := db.Begin()
			if err != nil {
				b.Fatal(err)
			}
			rows, err := tx.Stmt(stmt).Query(benchKey(at), []byte("bench0"))
			if err != nil {
				b.Fatal(err)
			}
			got := 0
			for rows.Next() {
				var k, v []byte
				if err := rows.Scan(&k, &v); err != nil {
					b.Fatal(err)
				}
				got++
			}
			rows.Close()
			tx.Rollback()
			if got != width {
				b.Fatalf("read %d keys", got)
			}
			lats = append(lats, time.Since(start))
		}
		b.StopTimer()
		kvtest.ReportLatency(b, lats)
	})
	b.Run("kv", func(b *testing.B) {
		s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		ctx := context.Background()
		lats := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			at := rand.IntN(n - width)
			got := 0
			if err := s.View(ctx, func(tx kv.ReadTx) error {
				got = 0
				it := tx.GetRange(benchKey(at), []byte("bench0"), kv.RangeOptions{Limit: width})
				for it.Next() {
					got++
				}
				return it.Err()
			}); err != nil {
				b.Fatal(err)
			}
			if got != width {
				b.Fatalf("read %d keys", got)
			}
			lats = append(lats, time.Since(start))
		}
		b.StopTimer()
		kvtest.ReportLatency(b, lats)
	})
}

// BenchmarkWatchCrossProcess: commit here, a watch in another process wakes.
func BenchmarkWatchCrossProcess(b *testing.B) { kvtest.BenchWatchLatency(b, harness) }

// BenchmarkContention3: three processes committing single-record
// transactions at once. The raw baseline relies on SQLite's busy_timeout
// handler, which sleeps 1..100 ms between tries.
func BenchmarkContention3(b *testing.B) {
	b.Run("raw", func(b *testing.B) { kvtest.BenchContention(b, freshPath(b), "rawwrite", 3) })
	b.Run("kv", func(b *testing.B) { kvtest.BenchContention(b, freshPath(b), "write", 3) })
}

// rawWrite is the baseline writer role: n autocommit inserts through
// database/sql with SQLite's own busy handler.
var rawWrite = kvtest.Role{Name: "rawwrite", Args: 3, Run: func(path string, strs []string) error {
	args, err := kvtest.Ints(strs)
	if err != nil {
		return err
	}
	id, n := args[0], args[1]
	db, err := sql.Open("sqlite", fmt.Sprintf("file:%s?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)", path))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		return err
	}
	if args[2] != 0 {
		if err := kvtest.AwaitGo(); err != nil {
			return err
		}
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for i := 0; i < n; i++ {
		key := []byte(fmt.Sprintf("write/%d/%08d", id, i))
		start := time.Now()
		if _, err := db.Exec(`INSERT INTO kv(key, value) VALUES (?, ?)`, key, key); err != nil {
			return err
		}
		fmt.Fprintf(out, "lat %d\n", time.Since(start).Nanoseconds())
	}
	fmt.Fprintln(out, "done")
	return nil
}}

// runUpdates has n goroutines make b.N Updates on s between them, the
// i-th running update(g, i) (g is the goroutine), as fast as they can, and
// reports commits/s and the latency per Update.
func runUpdates(b *testing.B, s kv.Store, n int, update func(g, i int) func(kv.Tx) error) {
	ctx := context.Background()
	var next atomic.Int64
	lats := make([][]time.Duration, n)
	errs := make(chan error, n)
	b.ResetTimer()
	var wg sync.WaitGroup
	for g := range n {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				fn := update(g, i)
				start := time.Now()
				if _, err := s.Update(ctx, fn); err != nil {
					errs <- err
					return
				}
				lats[g] = append(lats[g], time.Since(start))
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
	kvtest.ReportLatency(b, slices.Concat(lats...))
}

// BenchmarkGroupCommit: n goroutines each making durable single-record
// Updates, with group commit off and on; commits/s and latency per Update.
func BenchmarkGroupCommit(b *testing.B) {
	for _, n := range []int{1, 4, 16, 32} {
		for _, group := range []bool{false, true} {
			name := fmt.Sprintf("n=%d/group=%v", n, group)
			b.Run(name, func(b *testing.B) {
				s, _ := newStore(b, sqlite.Options{GroupCommit: group})
				runUpdates(b, s, n, func(_, i int) func(kv.Tx) error {
					return func(tx kv.Tx) error {
						tx.Set(benchKey(i), benchValue)
						return nil
					}
				})
			})
		}
	}
}

// BenchmarkAtomicBatch: n goroutines each making durable Updates shaped like
// a durable MCP call's: 8 Sets of new keys, 2 Adds and 1 Max on keys every
// Update shares (counters and a clock), and 1 Set of a random key, with
// group commit on; commits/s, CPU per commit and latency per Update.
func BenchmarkAtomicBatch(b *testing.B) {
	for _, n := range []int{1, 16, 32} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			s, _ := newStore(b, sqlite.Options{GroupCommit: true})
			rngs := make([]*rand.Rand, n)
			for g := range rngs {
				rngs[g] = rand.New(rand.NewPCG(uint64(g), 7))
			}
			cpu0, haveCPU := processCPU()
			runUpdates(b, s, n, func(g, i int) func(kv.Tx) error {
				clock := kv.EncodeInt64(time.Now().UnixNano())
				random := benchKey(1<<30 + rngs[g].IntN(1<<20))
				return func(tx kv.Tx) error {
					for j := range 8 {
						tx.Set(benchKey(i*8+j), benchValue)
					}
					tx.Add([]byte("shared/head"), 1)
					tx.Add([]byte("shared/events"), 3)
					tx.Max([]byte("shared/clock"), clock)
					tx.Set(random, benchValue)
					return nil
				}
			})
			if cpu1, ok := processCPU(); haveCPU && ok {
				b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "cpu-µs/commit")
			}
			err := s.View(context.Background(), func(tx kv.ReadTx) error {
				v, err := tx.Get([]byte("shared/head"))
				if err == nil && kv.Int64(v) < int64(b.N) {
					err = fmt.Errorf("shared/head = %d after %d Updates", kv.Int64(v), b.N)
				}
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}
