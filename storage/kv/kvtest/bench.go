package kvtest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/kv"
)

// Percentile returns the p-th percentile (0..100) of ds, nearest rank.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// ReportLatency adds p50 and p99 metrics, in milliseconds, to a benchmark.
func ReportLatency(b *testing.B, ds []time.Duration) {
	b.ReportMetric(float64(Percentile(ds, 50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(Percentile(ds, 99).Microseconds())/1000, "p99-ms")
}

// BenchWatchLatency measures how long a change committed by this process
// takes to wake a watch set by another process: the child sets a watch,
// says "ready", and on firing reads the parent's commit time from the value.
func BenchWatchLatency(b *testing.B, h Harness) {
	s, loc := h.New(b)
	c := startChild(b, "watchlat", loc, b.N)
	lats := make([]time.Duration, 0, b.N)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.expect(b, "ready", time.Minute)
		if _, err := s.Update(ctx, func(tx kv.Tx) error {
			tx.Set([]byte("ping"), strconv.AppendInt(nil, time.Now().UnixNano(), 10))
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		ns, err := strconv.ParseInt(c.expect(b, "lat ", time.Minute), 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		lats = append(lats, time.Duration(ns))
	}
	b.StopTimer()
	c.wait(b, time.Minute)
	ReportLatency(b, lats)
}

// childWatchLat answers n pings: see BenchWatchLatency.
func childWatchLat(ctx context.Context, s kv.Store, n int) error {
	out := bufio.NewWriter(os.Stdout)
	for i := 0; i < n; i++ {
		var w kv.Watch
		if err := s.View(ctx, func(tx kv.ReadTx) error {
			if _, err := tx.Get([]byte("ping")); err != nil {
				return err
			}
			w = tx.Watch([]byte("ping"))
			return nil
		}); err != nil {
			return err
		}
		fmt.Fprintln(out, "ready")
		if err := out.Flush(); err != nil {
			return err
		}
		if err := w.Wait(ctx); err != nil {
			return err
		}
		now := time.Now()
		var sent int64
		if err := s.View(ctx, func(tx kv.ReadTx) error {
			v, err := tx.Get([]byte("ping"))
			if err != nil {
				return err
			}
			sent, err = strconv.ParseInt(string(v), 10, 64)
			return err
		}); err != nil {
			return err
		}
		fmt.Fprintf(out, "lat %d\n", now.UnixNano()-sent)
	}
	return out.Flush()
}

// BenchContention runs procs writer processes at once, b.N single-key
// commits in all, and reports total commits/s and the p50/p99 commit
// latency seen by the writers. role is "write" for the kv store; a backend
// may pass its own role for a baseline, which takes the arguments (id, n,
// barrier) and, with barrier set, waits in AwaitGo before writing.
func BenchContention(b *testing.B, loc, role string, procs int) {
	per := max(1, b.N/procs)
	children := make([]*child, procs)
	for i := range children {
		children[i] = startChild(b, role, loc, i, per, 1)
	}
	// All writers start together, so they really contend.
	for _, c := range children {
		c.expect(b, "ready", time.Minute)
	}
	b.ResetTimer()
	start := time.Now()
	for _, c := range children {
		c.release(b)
	}
	var lats []time.Duration
	for _, c := range children {
		for _, line := range c.wait(b, 10*time.Minute) {
			if ns, ok := parseLat(line); ok {
				lats = append(lats, ns)
			}
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lats) != per*procs {
		b.Fatalf("%d latencies reported, want %d", len(lats), per*procs)
	}
	b.ReportMetric(float64(len(lats))/elapsed.Seconds(), "commits/s")
	ReportLatency(b, lats)
}

func parseLat(line string) (time.Duration, bool) {
	var ns int64
	if _, err := fmt.Sscanf(line, "lat %d", &ns); err != nil {
		return 0, false
	}
	return time.Duration(ns), true
}

// cachedStores maps a cached store's name to its path, for CachedStore.
var cachedStores sync.Map

// CachedStore returns the path of the store file name in the temporary
// directory, building it once with build (which writes the store at the
// temporary path it is given and closes it) and keeping it for later runs:
// benchmarks that only read a large store share one, built on the first
// run. A build that was interrupted leaves no file under the final name.
func CachedStore(tb testing.TB, name string, build func(tmp string)) string {
	if p, ok := cachedStores.Load(name); ok {
		return p.(string)
	}
	path := filepath.Join(os.TempDir(), name)
	if _, err := os.Stat(path); err != nil {
		tb.Logf("building %s (kept for later runs)", path)
		tmp := path + ".building"
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(tmp + suffix)
		}
		build(tmp)
		if err := os.Rename(tmp, path); err != nil {
			tb.Fatal(err)
		}
		os.Remove(tmp + "-wal")
		os.Remove(tmp + "-shm")
	}
	cachedStores.Store(name, path)
	return path
}
