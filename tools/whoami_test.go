package tools

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/sqlite"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
)

// viewCounter is a real store that counts its read transactions.
type viewCounter struct {
	kv.Store
	views atomic.Int64
}

func (s *viewCounter) View(ctx context.Context, fn func(kv.ReadTx) error) error {
	s.views.Add(1)
	return s.Store.View(ctx, fn)
}

// openStore opens the SQLite store at path.
func openStore(t testing.TB, path string) kv.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{Synchronous: sqlite.SyncNormal})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestWhoamiOneRead checks that whoami reads the agent's record and the
// tenant's projects in one read transaction, sees what another handle on
// the same file (as another process has) changed since the last call,
// shows the record a fresh Self holds without reading it, and refreshes a
// stale Self.
func TestWhoamiOneRead(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	st := &viewCounter{Store: openStore(t, path)}
	sc, err := tenant.NewDirectory(st, "test").Local(ctx, "t1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	reg := agent.Registration{Name: "tester", Client: "go-test", Model: "m1"}
	ag, err := agent.Register(ctx, sc, reg)
	if err != nil {
		t.Fatal(err)
	}
	if sc, err = sc.WithAgent(ag.ID); err != nil {
		t.Fatal(err)
	}
	// The other process: a second handle on the file, the same user.
	other, err := tenant.NewDirectory(openStore(t, path), "test").Local(ctx, "t1", "alice")
	if err != nil {
		t.Fatal(err)
	}

	tool := findTool(t, "whoami")
	whoami := func(self *Self) (whoamiOut, string, int64) {
		t.Helper()
		before := st.views.Load()
		c := &Call{Caller: Caller{Scope: sc, Client: mcp.Implementation{Name: "go-test", Version: "1"}, Self: self},
			Tool: tool, Args: json.RawMessage(`{}`), Started: time.Now()}
		res, err := tool.Handler(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		return res.Structured.(whoamiOut), res.Text, st.views.Load() - before
	}

	out, text, views := whoami(nil)
	if views != 1 || out.AgentID != ag.ID || out.AgentName != "tester" || out.Model != "m1" || len(out.Projects) != 0 {
		t.Errorf("whoami = %+v in %d reads, want agent tester m1, no projects, one read", out, views)
	}
	if want := "You are agent " + ag.ID + " (tester, model m1) acting for user alice (admin) in tenant t1. Your tenant has no projects yet"; !strings.HasPrefix(text, want) {
		t.Errorf("text = %q, want it to start %q", text, want)
	}

	// The other process re-registers the agent with another model and
	// registers a project: the next call shows both.
	reg.Model = "m2"
	if again, err := agent.Register(ctx, other, reg); err != nil || again.ID != ag.ID {
		t.Fatalf("re-registering: %+v, %v", again, err)
	}
	pl, err := project.Register(ctx, other, "app", t.TempDir(), project.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantProjects := []projectOut{{Name: "app", ID: pl.Project.ID, Roots: []string{pl.Root}}}
	out, text, views = whoami(nil)
	if views != 1 || out.Model != "m2" || len(out.Projects) != 1 || out.Projects[0].ID != wantProjects[0].ID ||
		out.Projects[0].Name != "app" || len(out.Projects[0].Roots) != 1 || out.Projects[0].Roots[0] != pl.Root {
		t.Errorf("whoami after the other process's changes = %+v in %d reads, want model m2, projects %+v, one read", out, views, wantProjects)
	}
	if want := "Start sessions in one of your projects: app (" + pl.Root + ")."; !strings.HasSuffix(text, want) {
		t.Errorf("text = %q, want it to end %q", text, want)
	}

	// A fresh Self is shown as it is; the projects are still read.
	self := NewSelf(agent.Agent{ID: ag.ID, Name: "tester", Model: "m1"})
	if out, _, views = whoami(self); views != 1 || out.Model != "m1" || len(out.Projects) != 1 {
		t.Errorf("whoami with a fresh Self = %+v in %d reads, want Self's model m1, one project, one read", out, views)
	}
	// A stale Self is read again, in the same transaction, and refreshed.
	self.at = time.Now().Add(-selfMaxAge)
	if out, _, views = whoami(self); views != 1 || out.Model != "m2" || len(out.Projects) != 1 {
		t.Errorf("whoami with a stale Self = %+v in %d reads, want the stored model m2, one project, one read", out, views)
	}
	if a, ok := self.fresh(ag.ID); !ok || a.Model != "m2" {
		t.Errorf("Self after the read = %+v (fresh %v), want model m2, fresh", a, ok)
	}
}

// TestWhoamiCancelled checks that a call cancelled before whoami reads is
// refused with the context's error (the read itself runs uncancelled).
func TestWhoamiCancelled(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tool := findTool(t, "whoami")
	c := &Call{Caller: Caller{Scope: e.alice}, Tool: tool, Args: json.RawMessage(`{}`), Started: time.Now()}
	if _, err := tool.Handler(ctx, c); !errors.Is(err, context.Canceled) {
		t.Errorf("whoami with a cancelled context: %v, want context.Canceled", err)
	}
}

// BenchmarkWhoamiHandler is whoami's handler alone, as the stdio server
// runs it: a fresh Self, a call context that can be cancelled, a store
// with the production durability.
func BenchmarkWhoamiHandler(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sc, ag := benchAgent(b, sqlite.SyncFull)
	self := NewSelf(ag)
	tool := findToolB(b, "whoami")
	for b.Loop() {
		c := &Call{Caller: Caller{Scope: sc, Client: mcp.Implementation{Name: "bench"}, Self: self}, Tool: tool, Args: json.RawMessage(`{}`), Started: time.Now()}
		if _, err := tool.Handler(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}
