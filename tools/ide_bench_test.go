package tools

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/bridge"
	"github.com/coditect/coditect/storage/kv/sqlite"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/tenant"
)

// BenchmarkIDERoundTrip is an agent's ide_hover in one process: the tool
// through the production middleware (heartbeat, audit) writes the request
// record, the editor's end of the bridge (bridge.Editor.Serve, answering
// at once) takes it through its doorbell's watch and writes the answer,
// which the tool reads through its own watch, then clears both records
// and appends the ide.request event. Beside it, in the same run and on
// the same store (synchronous=FULL), whoami. p50-ms and p99-ms are per
// call.
func BenchmarkIDERoundTrip(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "s.db"), sqlite.Options{Synchronous: sqlite.SyncFull})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	dir := tenant.NewDirectory(st, "bench")
	human, err := dir.Local(ctx, "t1", "alice")
	if err != nil {
		b.Fatal(err)
	}
	ag, err := agent.Register(ctx, human, agent.Registration{Name: "bench", Client: "go-test", Model: "m"})
	if err != nil {
		b.Fatal(err)
	}
	sc, err := human.WithAgent(ag.ID)
	if err != nil {
		b.Fatal(err)
	}
	start := &Call{Caller: Caller{Scope: sc}, Tool: findToolB(b, "session_start"), Args: json.RawMessage(`{"title":"bench","workspace":"` + b.TempDir() + `"}`), Started: time.Now()}
	res, err := sessionStart(ctx, start)
	if err != nil {
		b.Fatal(err)
	}
	s, err := session.Get(ctx, sc, res.Structured.(sessionOut).SessionID)
	if err != nil {
		b.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ed, err := bridge.Connect(sctx, human, bridge.Presence{Editor: "ed-bench", Kind: bridge.EditorVSCode, Projects: []string{s.Project}, Kinds: bridge.Kinds}, bridge.Options{})
	if err != nil {
		b.Fatal(err)
	}
	go ed.Serve(sctx, func(context.Context, bridge.Request) (bridge.Result, error) {
		return bridge.Result{Contents: "func main()"}, nil
	})
	h := Chain(Heartbeat(0, nil), Audit(nil, nil))
	run := func(b *testing.B, name, args string) {
		tool := findToolB(b, name)
		handler := h(tool.Handler)
		call := func() {
			c := &Call{Caller: Caller{Scope: sc, Client: mcp.Implementation{Name: "bench"}}, Tool: tool, Args: json.RawMessage(args), Started: time.Now()}
			if _, err := handler(ctx, c); err != nil {
				b.Fatalf("%s: %v", name, err)
			}
		}
		for range 5 {
			call()
		}
		lat := make([]time.Duration, 0, b.N)
		for b.Loop() {
			start := time.Now()
			call()
			lat = append(lat, time.Since(start))
		}
		b.StopTimer()
		slices.Sort(lat)
		pct := func(p float64) float64 {
			return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
		}
		b.ReportMetric(pct(0.50), "p50-ms")
		b.ReportMetric(pct(0.99), "p99-ms")
	}
	b.Run("process/whoami", func(b *testing.B) { run(b, "whoami", `{}`) })
	b.Run("process/ide_hover", func(b *testing.B) { run(b, "ide_hover", `{"session_id":"`+s.ID+`","symbol":"main"}`) })
}
