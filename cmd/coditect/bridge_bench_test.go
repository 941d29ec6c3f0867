package main

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkBridgeRoundTrip is an agent's ide_hover across processes on
// one store: the MCP SDK client calls `coditect mcp`, whose request
// record `coditect ide` takes from the store and sends to the editor
// (bridge_editor.mjs on Node's vscode-jsonrpc) as coditect/ide; the
// answer comes back the same way. Beside it, in the same run, whoami on
// the same `coditect mcp`: a plain round trip with its audit append.
// p50-ms and p99-ms are per call.
func BenchmarkBridgeRoundTrip(b *testing.B) {
	bin, store, ws, env := bridgeSetup(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ed := startBridgeEditor(b, ctx, env, bin, store, "t1", "ada", ws, "noshare")
	go func() { // the editor's log of requests is not read here
		for range ed.lines {
		}
	}()
	a := startAgent(b, ctx, env, bin, store, "t1", "ada", ws)
	b.Run("processes/whoami", func(b *testing.B) { measureTool(b, a, "whoami", map[string]any{}) })
	b.Run("processes/ide_hover", func(b *testing.B) {
		measureTool(b, a, "ide_hover", map[string]any{"session_id": a.sid, "symbol": "greet"})
	})
}

func measureTool(b *testing.B, a *mcpAgent, tool string, args map[string]any) {
	for range 5 {
		a.ok(tool, args)
	}
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		start := time.Now()
		a.ok(tool, args)
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
