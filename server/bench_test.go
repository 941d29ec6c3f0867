package server_test

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/server"
	"github.com/coditect/coditect/server/servertest"
	"github.com/coditect/coditect/storage/tenant"
)

// BenchmarkRoundTrip measures tool-call round trips through the official
// SDK client, over stdio (a real subprocess) and Streamable HTTP (loopback),
// for a read-only tool (whoami) and an audit append (note), each beside a
// bare mcp-go server answering an empty tool in the same run. Every
// Coditect call also appends its tool.called event (synchronous=FULL, the
// production default). Sub-benchmarks end in /bare and /coditect so that
// the table tool computes ratios; p50-ms and p99-ms are per call.
// CODITECT_BENCH_BINARY names another coditect binary to run over stdio
// (an older build, to compare against in the same run).
func BenchmarkRoundTrip(b *testing.B) {
	for _, transport := range []string{"stdio", "http"} {
		for _, op := range []struct{ name, tool string }{{"readonly", "whoami"}, {"append", "note"}} {
			b.Run(transport+"/"+op.name+"/bare", func(b *testing.B) {
				cs := benchBare(b, transport)
				measure(b, cs, "empty", map[string]any{})
			})
			b.Run(transport+"/"+op.name+"/coditect", func(b *testing.B) {
				cs := benchCoditect(b, transport)
				args := map[string]any{}
				if op.tool == "note" {
					args = map[string]any{"text": "benchmark note"}
				}
				measure(b, cs, op.tool, args)
			})
		}
	}
}

func measure(b *testing.B, cs *mcp.ClientSession, tool string, args map[string]any) {
	ctx := context.Background()
	params := &mcp.CallToolParams{Name: tool, Arguments: args}
	// Warm up: agent registration, connections, schema caches.
	for range 5 {
		if res, err := cs.CallTool(ctx, params); err != nil || res.IsError {
			b.Fatalf("%s: %v %+v", tool, err, res)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		res, err := cs.CallTool(ctx, params)
		lat = append(lat, time.Since(start))
		if err != nil || res.IsError {
			b.Fatalf("%s: %v", tool, err)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

func benchConnect(b *testing.B, t mcp.Transport) *mcp.ClientSession {
	c := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	cs, err := c.Connect(context.Background(), t, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cs.Close() })
	return cs
}

func benchBare(b *testing.B, transport string) *mcp.ClientSession {
	if transport == "stdio" {
		return benchConnect(b, &mcp.CommandTransport{Command: exec.Command(bareBinary(b))})
	}
	s := mcpserver.NewMCPServer("baremcp", "1.0.0", mcpserver.WithToolCapabilities(false))
	s.AddTool(mcpgo.NewTool("empty", mcpgo.WithDescription("Do nothing.")),
		func(context.Context, mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
			return mcpgo.NewToolResultText("ok"), nil
		})
	hs := httptest.NewServer(mcpserver.NewStreamableHTTPServer(s))
	b.Cleanup(hs.Close)
	return benchConnect(b, &mcp.StreamableClientTransport{Endpoint: hs.URL, MaxRetries: -1})
}

func benchCoditect(b *testing.B, transport string) *mcp.ClientSession {
	if transport == "stdio" {
		data := b.TempDir()
		bin := os.Getenv("CODITECT_BENCH_BINARY")
		if bin == "" {
			bin = coditectBinary(b)
		}
		cmd := exec.Command(bin, "mcp", "--tenant", "bench", "--log-file", filepath.Join(data, "mcp.log"))
		// CODITECT_CORE=off: this process serves the store itself, as the
		// bare server does (internal/agentbench measures the local core).
		cmd.Env = append(os.Environ(), "CODITECT_STORE="+filepath.Join(data, "coditect.db"), "CODITECT_TOKEN=", "CODITECT_CORE=off")
		return benchConnect(b, &mcp.CommandTransport{Command: cmd})
	}
	ts := servertest.New(b, server.Options{}, server.HTTPOptions{})
	secret := ts.Token(b, "bench", "alice", tenant.RoleMember)
	return benchConnect(b, &mcp.StreamableClientTransport{Endpoint: ts.URL, HTTPClient: servertest.BearerClient(secret), MaxRetries: -1})
}

// BenchmarkConcurrent8 measures throughput with 8 clients calling at once:
// over HTTP, 8 sessions on one server; over stdio, 8 `coditect mcp`
// processes on one store (8 bare processes for the baseline). Each client
// alternates a read-only call (whoami) and an audit append (note).
func BenchmarkConcurrent8(b *testing.B) {
	const clients = 8
	for _, transport := range []string{"stdio", "http"} {
		for _, kind := range []string{"bare", "coditect"} {
			b.Run(transport+"/"+kind, func(b *testing.B) {
				sessions := make(chan *mcp.ClientSession, clients)
				for range clients {
					if kind == "bare" {
						sessions <- benchBare(b, transport)
					} else {
						sessions <- benchCoditect(b, transport)
					}
				}
				start := time.Now()
				b.SetParallelism((clients + runtimeProcs() - 1) / runtimeProcs())
				b.RunParallel(func(pb *testing.PB) {
					cs := <-sessions
					defer func() { sessions <- cs }()
					ctx := context.Background()
					read := &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}}
					write := &mcp.CallToolParams{Name: "note", Arguments: map[string]any{"text": "concurrent"}}
					if kind == "bare" {
						read = &mcp.CallToolParams{Name: "empty", Arguments: map[string]any{}}
						write = read
					}
					for i := 0; pb.Next(); i++ {
						p := read
						if i%2 == 1 {
							p = write
						}
						if res, err := cs.CallTool(ctx, p); err != nil || res.IsError {
							b.Errorf("%s: %v %+v", p.Name, err, res)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
			})
		}
	}
}

func runtimeProcs() int { return max(1, runtime.GOMAXPROCS(0)) }
