package tools

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/session"
)

// benchRead runs fs_read of a 10,000-line Go-like file (about 370 KB)
// through the production middleware, with args added to the session and
// path, on the files toolset of cfg.
func benchRead(b *testing.B, cfg Config, extra string) {
	bf := newBenchFiles(b)
	s, err := session.Get(context.Background(), bf.sc, bf.sid)
	if err != nil {
		b.Fatal(err)
	}
	var src strings.Builder
	for i := 1; i <= 10_000; i++ {
		fmt.Fprintf(&src, "\tx%d := compute(%d, \"some text\") // line %d\n", i, i, i)
	}
	if err := os.WriteFile(filepath.Join(s.Workspace, "big.go"), []byte(src.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	var tool *Tool
	for _, t := range Files(cfg).Tools {
		if t.Name() == "fs_read" {
			tool = t
		}
	}
	h := Chain(Heartbeat(time.Second, nil), Audit(nil, nil))(tool.Handler)
	args := `{"session_id":"` + bf.sid + `","path":"big.go"` + extra + `}`
	ctx := context.Background()
	var size int
	for b.Loop() {
		res, err := h(ctx, bf.call(tool, args))
		if err != nil {
			b.Fatal(err)
		}
		size = len(res.Text) + len(res.Structured.(fileOut).Content)
	}
	b.ReportMetric(float64(size), "result-bytes")
}

// BenchmarkFsReadRange is fs_read of lines 5,000–5,100 of a 10,000-line
// file: what a model reads around a function it found.
func BenchmarkFsReadRange(b *testing.B) {
	benchRead(b, Config{}, `,"start_line":5000,"end_line":5100`)
}

// BenchmarkFsReadWhole is fs_read of the whole 10,000-line file, with a
// budget large enough to return it all: the baseline of
// BenchmarkFsReadRange.
func BenchmarkFsReadWhole(b *testing.B) {
	benchRead(b, Config{MaxReadLines: 1 << 20, MaxReadBytes: DefaultMaxFile}, "")
}

// BenchmarkFsReadFirstPage is fs_read of the same file within the default
// budget (its first 2,000 lines, or 64 KB).
func BenchmarkFsReadFirstPage(b *testing.B) {
	benchRead(b, Config{}, "")
}
