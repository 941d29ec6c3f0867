package main

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
)

// bridgeLeftovers returns the keys of the IDE bridge's presences,
// requests and answers in a tenant.
func bridgeLeftovers(ctx context.Context, s kv.Store, sp keyspace.TenantSpace) ([][]byte, error) {
	var out [][]byte
	err := s.View(ctx, func(tx kv.ReadTx) error {
		out = out[:0]
		for _, sub := range []keyspace.Subspace{sp.IDEEditors(), sp.AllIDERequests(), sp.AllIDEAnswers()} {
			b, e := sub.Range()
			it := tx.GetRange(b, e, kv.RangeOptions{})
			for it.Next() {
				out = append(out, it.KeyValue().Key)
			}
			if err := it.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// TestBridgeDaemonSweepE2E: an agent's `coditect mcp` (serving directly,
// no local core) is killed while it waits for an editor's answer, and the
// editor's `coditect ide` is killed too: the request record and the
// presence stay behind, and no editor of the tenant runs again. The
// daemon's sweep (`coditect serve`, sweeping every second) removes them.
func TestBridgeDaemonSweepE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a killed editor's presence to lapse and be swept (about 10 s)")
	}
	bin, store, ws, env := bridgeSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*ideWait)
	defer cancel()

	// The editor declares hover and never answers.
	p := startHoverEditor(t, bin, store, ws)

	// The asker, killed while it waits.
	cmd := exec.Command(bin, "mcp", "--core", "off", "--store", store, "--tenant", "t1", "--user", "ada", "--toolsets", "core,files,ide",
		"--agent", "builder", "--model", "qwen2.5-coder-7b")
	cmd.Env = env
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "LM Studio", Version: "0.3"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	a := &mcpAgent{t: t, ctx: ctx, cs: cs}
	a.sid = a.ok("session_start", map[string]any{"title": "sweep", "workspace": ws})["session_id"].(string)
	go func() {
		_, _ = cs.CallTool(ctx, &mcp.CallToolParams{Name: "ide_hover", Arguments: map[string]any{"session_id": a.sid, "symbol": "greet", "timeout_s": 5}})
	}()
	p.next(func(m map[string]any) bool { return m["method"] == "coditect/ide" })
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
	killed := time.Now()

	s, err := storage.Open(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sp, err := keyspace.Tenant("t1")
	if err != nil {
		t.Fatal(err)
	}
	left, err := bridgeLeftovers(ctx, s, sp)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 { // the presence and the request
		t.Fatalf("the killed processes left %d records, want the presence and the request", len(left))
	}

	startServe(t, store)
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	for {
		var w kv.Watch
		left, err = bridgeLeftovers(wctx, s, sp)
		if err == nil && len(left) > 0 {
			err = s.View(wctx, func(tx kv.ReadTx) error {
				if w != nil {
					w.Cancel()
				}
				v, err := tx.Get(left[0])
				if err == nil && v != nil {
					w = tx.Watch(left[0])
				}
				return err
			})
		}
		if err != nil {
			t.Fatalf("%d records still there after %s: %v", len(left), time.Since(killed).Round(time.Second), err)
		}
		if len(left) == 0 {
			break
		}
		if w != nil {
			err = w.Wait(wctx)
			w.Cancel()
			if err != nil {
				t.Fatalf("%d records still there after %s: %v", len(left), time.Since(killed).Round(time.Second), err)
			}
		}
	}
	t.Logf("the daemon swept the killed editor's and asker's records %s after the kill", time.Since(killed).Round(100*time.Millisecond))
}
