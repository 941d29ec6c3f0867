package lease_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/lease"
)

// reportLatency reports the median and 99th percentile of lat in ms.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(q float64) float64 {
		i := int(q * float64(len(lat)-1))
		return float64(lat[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// BenchmarkAcquireRelease: one process, one agent, one resource: an
// exclusive Acquire and its Release (two durable transactions, each with
// its audit event) per operation.
func BenchmarkAcquireRelease(b *testing.B) {
	s, _ := agenttest.Open(b)
	ctx := context.Background()
	admin := agenttest.Scope(b, s, "acme", "alice")
	_, as := agenttest.Agent(b, ctx, admin, "bench", agent.Registration{})
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		l, err := lease.Acquire(ctx, as, lease.Request{Resource: "src/bench.go"})
		if err != nil {
			b.Fatal(err)
		}
		if err := lease.Release(ctx, as, l.Resource, l.Token); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// BenchmarkAcquireRelease3Procs: this process and two children take and
// give back leases in a loop. "same": all three want one exclusive
// resource (AcquireWait, woken by a watch), so an operation includes
// waiting for the others' turns; "distinct": each has its own resource,
// so the processes contend only for the store.
func BenchmarkAcquireRelease3Procs(b *testing.B) {
	for _, mode := range []string{"same", "distinct"} {
		b.Run(mode, func(b *testing.B) {
			s, path := agenttest.Open(b)
			ctx := context.Background()
			admin := agenttest.Scope(b, s, "acme", "alice")
			_, as := agenttest.Agent(b, ctx, admin, "bench", agent.Registration{})
			var children []*agenttest.Child
			for i := range 2 {
				res := "src/hot.go"
				if mode == "distinct" {
					res = fmt.Sprintf("src/child%d.go", i)
				}
				children = append(children, agenttest.Start(b, "cycler", path, res))
			}
			for _, c := range children {
				c.Expect(b, "ready", time.Minute)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				l, err := lease.AcquireWait(ctx, as, lease.Request{Resource: "src/hot.go"})
				if err != nil {
					b.Fatal(err)
				}
				if err := lease.Release(ctx, as, l.Resource, l.Token); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			for _, c := range children {
				c.CloseInput()
				c.Expect(b, "cycles", time.Minute)
				c.Wait(b, time.Minute)
			}
			reportLatency(b, lat)
		})
	}
}
