package agentbench

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/internal/testbin"
)

// BenchmarkCallPages counts what one call writes to the store's write-ahead
// log: one `coditect mcp` process makes walCalls calls of each op one after
// another, and the WAL's frames appended meanwhile are read back (frame
// headers only; the process keeps the file open, this one reads it) —
// frames per call, commits per call, and distinct pages per commit. (Reads
// commit their records in the background, so they are not counted here;
// BenchmarkAgents' KiB/call covers them.) The
// calls stay under SQLite's automatic checkpoint (1,000 frames), which
// would restart the WAL. With CODITECT_AGENTBENCH_BASE it measures that
// binary beside ("base").
func BenchmarkCallPages(b *testing.B) {
	bin := testbin.Coditect(b)
	bins := []variant{{name: "coditect", bin: bin}}
	if hasFlag(bin, "mcp", "--core") {
		bins = []variant{{name: "coditect", bin: bin, args: []string{"--core", "off"}},
			{name: "coditect-core", bin: bin, args: []string{"--core", "auto"}}}
	}
	if base := os.Getenv(envBase); base != "" {
		bins = append([]variant{{name: "base", bin: base}}, bins...)
	}
	for _, op := range []string{"note", "message"} {
		for _, v := range bins {
			b.Run(op+"/"+v.name, func(b *testing.B) {
				st, err := walPerCall(context.Background(), v, op)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(st.frames/walCalls, "frames/call")
				b.ReportMetric(st.commits/walCalls, "commits/call")
				if st.commits > 0 {
					b.ReportMetric(st.pages/st.commits, "pages/commit")
				}
				b.ReportMetric(st.frames*float64(st.pageSize+walFrameHeader)/1024/walCalls, "WAL-KiB/call")
			})
		}
	}
}

// walCalls is how many calls BenchmarkCallPages counts.
const walCalls = 20

const (
	walHeader      = 32
	walFrameHeader = 24
)

type walStats struct {
	frames, commits, pages float64 // pages: distinct pages summed over commits
	pageSize               int
}

func walPerCall(ctx context.Context, v variant, op string) (walStats, error) {
	dir, err := os.MkdirTemp("", "agentbench-wal-")
	if err != nil {
		return walStats{}, err
	}
	defer os.RemoveAll(dir)
	clients, err := connectAll(ctx, 1, false, op, func(int) mcp.Transport {
		return &mcp.CommandTransport{Command: stdioCommand(v, dir, 0)}
	})
	if err != nil {
		return walStats{}, err
	}
	defer stopStarted(dir)
	defer closeAll(clients)
	for range 5 {
		if err := call(ctx, clients[0]); err != nil {
			return walStats{}, err
		}
	}
	wal := filepath.Join(dir, "coditect.db-wal")
	before, err := os.ReadFile(wal)
	if err != nil {
		return walStats{}, err
	}
	for range walCalls {
		if err := call(ctx, clients[0]); err != nil {
			return walStats{}, err
		}
	}
	after, err := os.ReadFile(wal)
	if err != nil {
		return walStats{}, err
	}
	if len(after) < walHeader || len(before) < walHeader || string(after[16:24]) != string(before[16:24]) {
		return walStats{}, fmt.Errorf("the WAL was checkpointed and restarted during the calls")
	}
	ps := int(binary.BigEndian.Uint32(after[8:12]))
	frame := walFrameHeader + ps
	salt := after[16:24]
	var st walStats
	st.pageSize = ps
	pages := map[uint32]bool{}
	// Frames already there before the calls are skipped by offset.
	start := walHeader + (len(before)-walHeader)/frame*frame
	for off := start; off+frame <= len(after); off += frame {
		h := after[off : off+walFrameHeader]
		if string(h[8:16]) != string(salt) {
			break // left over from before a restart
		}
		st.frames++
		pages[binary.BigEndian.Uint32(h[0:4])] = true
		if binary.BigEndian.Uint32(h[4:8]) != 0 { // a commit frame
			st.commits++
			st.pages += float64(len(pages))
			clear(pages)
		}
	}
	return st, nil
}
