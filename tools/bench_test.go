package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/sqlite"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/tenant"
)

// benchFiles is a session over a project root on a store with the
// production durability (synchronous=FULL), and the files toolset.
type benchFiles struct {
	sc  *tenant.Scope
	f   *files
	sid string
}

// benchAgent returns a scope acting as a new agent of tenant t1 on a
// fresh SQLite store with the durability mode, and the agent.
func benchAgent(b *testing.B, mode sqlite.Synchronous) (*tenant.Scope, agent.Agent) {
	b.Helper()
	ctx := context.Background()
	sc := benchTenant(b, sqlite.Options{Synchronous: mode})
	ag, err := agent.Register(ctx, sc, agent.Registration{Name: "bench", Client: "go-test", Model: "m"})
	if err != nil {
		b.Fatal(err)
	}
	if sc, err = sc.WithAgent(ag.ID); err != nil {
		b.Fatal(err)
	}
	return sc, ag
}

// benchTenant returns the scope of alice in tenant t1 on a fresh SQLite
// store opened with opts.
func benchTenant(b *testing.B, opts sqlite.Options) *tenant.Scope {
	b.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "s.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	sc, err := tenant.NewDirectory(st, "bench").Local(ctx, "t1", "alice")
	if err != nil {
		b.Fatal(err)
	}
	return sc
}

func newBenchFiles(b *testing.B) *benchFiles {
	b.Helper()
	sc, _ := benchAgent(b, sqlite.SyncFull)
	db := filepath.Join(b.TempDir(), "coditect.db")
	bf := &benchFiles{sc: sc, f: &files{maxRead: DefaultMaxFile, maxWrite: DefaultMaxFile, leaseTTL: lease.DefaultTTL,
		protected: canonicalAll([]string{db, db + "-wal", db + "-shm", db + "-journal", db + "-spool"})}}
	ws := b.TempDir()
	c := bf.call(findToolB(b, "session_start"), `{"title":"bench","workspace":"`+ws+`"}`)
	res, err := sessionStart(context.Background(), c)
	if err != nil {
		b.Fatal(err)
	}
	bf.sid = res.Structured.(sessionOut).SessionID
	return bf
}

func (bf *benchFiles) call(tool *Tool, args string) *Call {
	return &Call{Caller: Caller{Scope: bf.sc, Client: mcp.Implementation{Name: "bench"}}, Tool: tool, Args: json.RawMessage(args), Started: time.Now()}
}

func findToolB(b *testing.B, name string) *Tool {
	for _, s := range Catalog(Config{}) {
		for _, t := range s.Tools {
			if t.Name() == name {
				return t
			}
		}
	}
	b.Fatalf("no tool %s", name)
	return nil
}

// BenchmarkFsWrite is the fs_write round trip through the production
// middleware (heartbeat, audit): resolving the file into its project,
// the lease lookup, the transaction that checks the fencing token and
// records the evidence, the synced temporary file, the rename and the
// call's audit record.
func BenchmarkFsWrite(b *testing.B) {
	bf := newBenchFiles(b)
	tool := findToolB(b, "fs_write")
	h := Chain(Heartbeat(time.Second, nil), Audit(nil, nil))(tool.Handler)
	args := `{"session_id":"` + bf.sid + `","path":"src/a.go","content":"package a\n"}`
	ctx := context.Background()
	for b.Loop() {
		if _, err := h(ctx, bf.call(tool, args)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResolve is what a files tool adds to find a file: the session,
// its project and this machine's root, the workspace in it, and the path
// resolved through symbolic links to (project, path relative to the root),
// checked against the protected paths.
func BenchmarkResolve(b *testing.B) {
	bf := newBenchFiles(b)
	tool := findToolB(b, "fs_write")
	ctx := context.Background()
	for b.Loop() {
		pl, err := bf.f.place(ctx, bf.call(tool, `{}`), bf.sid, "src/a.go", fileToWrite)
		if err != nil || pl.file.Rel != "src/a.go" {
			b.Fatal(pl, err)
		}
	}
}

// BenchmarkLeaseCheck is the lease check of a write whose agent holds the
// file's lease: finding the grant (fence) and checking its fencing token
// in a transaction (lease.CheckFence).
func BenchmarkLeaseCheck(b *testing.B) {
	bf := newBenchFiles(b)
	tool := findToolB(b, "fs_write")
	ctx := context.Background()
	c := bf.call(tool, `{}`)
	pl, err := bf.f.place(ctx, c, bf.sid, "src/a.go", fileToWrite)
	if err != nil {
		b.Fatal(err)
	}
	key, me := pl.file.String(), bf.sc.Principal().Agent
	if _, _, err := bf.f.fence(ctx, c, me, key, 0); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		held, taken, err := bf.f.fence(ctx, c, me, key, 0)
		if err != nil || taken {
			b.Fatal(err, taken)
		}
		err = bf.sc.Store().View(ctx, func(tx kv.ReadTx) error {
			return lease.CheckFence(tx, bf.sc, held.Resource, me, held.Token)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOneTxParallel is the store's side of many agents writing at
// once: 16 agents of one tenant, each on its own goroutine, make keyed
// one-transaction calls (note, message_send to the next agent) through
// the production middleware on a store opened as the server opens it
// (group commit, synchronous=FULL), with keys shaped as a forwarder adds
// them. Nothing else runs: calls/s is what the store's one writer commits
// of such calls on this machine, without the MCP clients and transport
// that share the CPU in internal/agentbench.
func BenchmarkOneTxParallel(b *testing.B) {
	const agents = 16
	for _, name := range []string{"note", "message_send"} {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			sc := benchTenant(b, sqlite.Options{Synchronous: sqlite.SyncFull, GroupCommit: true})
			scopes := make([]*tenant.Scope, agents)
			ids := make([]string, agents)
			for i := range agents {
				ag, err := agent.Register(ctx, sc, agent.Registration{Name: "bench-" + strconv.Itoa(i), Client: "go-test", Model: "m"})
				if err != nil {
					b.Fatal(err)
				}
				if scopes[i], err = sc.WithAgent(ag.ID); err != nil {
					b.Fatal(err)
				}
				ids[i] = ag.ID
			}
			tool := findToolB(b, name)
			q := NewAuditQueue(0, nil)
			b.Cleanup(func() { q.Close(context.Background()) })
			h := Chain(Heartbeat(time.Second, nil), Audit(nil, q))(tool.Handler)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for i := range agents {
				wg.Go(func() {
					for seq := 0; next.Add(1) <= int64(b.N); seq++ {
						key := fmt.Sprintf("core-BENCH%08d-%016x", i, seq)
						args := `{"idempotency_key":"` + key + `","text":"agentbench note"}`
						if name == "message_send" {
							args = `{"idempotency_key":"` + key + `","to":"` + ids[(i+1)%agents] + `","body":"agentbench message"}`
						}
						c := &Call{Caller: Caller{Scope: scopes[i], Client: mcp.Implementation{Name: "bench", Version: "1"}}, Tool: tool, Args: json.RawMessage(args), Started: time.Now()}
						if _, err := h(ctx, c); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			el := time.Since(start)
			b.ReportMetric(float64(b.N)/el.Seconds(), "calls/s")
		})
	}
}
