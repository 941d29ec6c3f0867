package audit_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/kvtest"
	"github.com/coditect/coditect/storage/kv/sqlite"
)

func benchEvent(i int) audit.Event {
	return audit.Event{User: "alice", Session: fmt.Sprintf("s%04d", i%1000), Agent: fmt.Sprintf("agent-%d", i%8),
		Kind: "file.modified", Path: fmt.Sprintf("src/pkg%d/file%d.go", i%50, i%500), Summary: "edited 3 lines",
		Attribution: &audit.Attribution{Actor: audit.ActorAgent, AgentID: "agent-1", Evidence: "fs_write", Confidence: 1}}
}

// BenchmarkAppend: one durable event (five index entries) per transaction.
func BenchmarkAppend(b *testing.B) { benchAppend(b, context.Background()) }

// BenchmarkAppendRelaxed: the same with relaxed durability
// (kv.WithRelaxedDurability), as the records of read-only tool calls.
func BenchmarkAppendRelaxed(b *testing.B) {
	benchAppend(b, kv.WithRelaxedDurability(context.Background()))
}

func benchAppend(b *testing.B, ctx context.Context) {
	s, _ := openStore(b)
	l := newLog(b, s, "acme")
	lats := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := l.Append(ctx, benchEvent(i)); err != nil {
			b.Fatal(err)
		}
		lats = append(lats, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	kvtest.ReportLatency(b, lats)
}

// BenchmarkAppendBatch100: 100 events per transaction.
func BenchmarkAppendBatch100(b *testing.B) {
	s, _ := openStore(b)
	l := newLog(b, s, "acme")
	ctx := context.Background()
	batch := make([]audit.Event, 100)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range batch {
			batch[j] = benchEvent(i*100 + j)
		}
		if _, err := l.Append(ctx, batch...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}

// largeLog returns the path of a store whose tenant "acme" holds n events
// in 1,000 sessions, built once and kept in the temporary directory.
func largeLog(b *testing.B, n int) string {
	return kvtest.CachedStore(b, fmt.Sprintf("coditect-bench-audit-%d-v1.db", n), func(tmp string) {
		s, err := sqlite.Open(context.Background(), tmp, sqlite.Options{Synchronous: sqlite.SyncNormal})
		if err != nil {
			b.Fatal(err)
		}
		l := newLog(b, s, "acme")
		batch := make([]audit.Event, 0, 1000)
		for i := 0; i < n; i++ {
			batch = append(batch, benchEvent(i))
			if len(batch) == cap(batch) || i == n-1 {
				if _, err := l.Append(context.Background(), batch...); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkSessionLast100: the newest 100 events of one session in a log
// of 1,000,000 events (100,000 with -short).
func BenchmarkSessionLast100(b *testing.B) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	path := largeLog(b, n)
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	l := newLog(b, s, "acme")
	ctx := context.Background()
	lats := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		session := fmt.Sprintf("s%04d", rand.IntN(1000))
		start := time.Now()
		p, err := l.Query(ctx, audit.Query{Filter: audit.Filter{Session: session}, Order: audit.NewestFirst, Limit: 100})
		if err != nil {
			b.Fatal(err)
		}
		lats = append(lats, time.Since(start))
		if len(p.Events) != 100 {
			b.Fatalf("got %d events", len(p.Events))
		}
	}
	b.StopTimer()
	kvtest.ReportLatency(b, lats)
}

// BenchmarkTailCrossProcess: from an append committed here to its delivery
// to a follower in another process.
func BenchmarkTailCrossProcess(b *testing.B) {
	s, path := openStore(b)
	l := newLog(b, s, "acme")
	head, err := l.Head(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if head == "" {
		head = "-"
	}
	c := kvtest.StartRole(b, "tail", path, "acme", head, b.N, "lat")
	c.Expect(b, "following", time.Minute)
	var lats []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := l.Append(context.Background(), benchEvent(i)); err != nil {
			b.Fatal(err)
		}
		ns, err := strconv.ParseInt(c.Expect(b, "lat ", time.Minute), 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		lats = append(lats, time.Duration(ns))
	}
	b.StopTimer()
	c.Wait(b, time.Minute)
	kvtest.ReportLatency(b, lats)
}
