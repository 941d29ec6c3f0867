package audit_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/coditect/coditect/storage/audit"
)

// BenchmarkAppendBatch100Keyed is BenchmarkAppendBatch100 with an
// idempotency key on every event, as the tool.called records carry: a
// point read of the key and a marker beside each event. Compare the two
// in one run for the keys' cost.
func BenchmarkAppendBatch100Keyed(b *testing.B) {
	s, _ := openStore(b)
	l := newLog(b, s, "acme")
	ctx := context.Background()
	batch := make([]audit.Event, 100)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range batch {
			batch[j] = benchEvent(i*100 + j)
			batch[j].IdempotencyKey = fmt.Sprintf("tool.called/%d", i*100+j)
		}
		if _, err := l.Append(ctx, batch...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}
