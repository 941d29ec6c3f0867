package agent_test

import (
	"slices"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
)

// TestMarkOffline: an agent whose host process ended is offline at once
// (not alive, not merely stale), with one agent.offline event; marking it
// again changes nothing; its next heartbeat makes it alive again without
// a write of its record; silence past GoneAfter TTLs still makes it gone
// and Sweep retires it.
func TestMarkOffline(t *testing.T) {
	s, _ := agenttest.Open(t)
	clock := agenttest.NewClock()
	ctx := agenttest.Context(t, clock)
	sc := agenttest.Scope(t, s, "acme", "alice")
	a, as := agenttest.Agent(t, ctx, sc, "coder", agent.Registration{Client: "lmstudio", TTL: 10 * time.Second})

	clock.Advance(time.Second)
	if err := agent.MarkOffline(ctx, as, a.ID, "stdin closed"); err != nil {
		t.Fatal(err)
	}
	got, err := agent.Get(ctx, sc, a.ID)
	if err != nil || got.Liveness != agent.Offline || !got.Liveness.Absent() || got.Offline.IsZero() || got.IsRetired() {
		t.Fatalf("after MarkOffline: %+v %v", got, err)
	}
	if err := agent.MarkOffline(ctx, as, a.ID, "stdin closed"); err != nil {
		t.Fatal(err)
	}
	if n := countKind(kinds(t, sc, a.ID), "agent.offline"); n != 1 {
		t.Errorf("%d agent.offline events, want 1", n)
	}
	list, err := agent.List(ctx, sc, agent.Filter{Liveness: agent.Offline})
	if err != nil || len(list) != 1 || list[0].ID != a.ID {
		t.Errorf("List(offline) = %+v %v", list, err)
	}

	clock.Advance(time.Second)
	if err := agent.Heartbeat(ctx, as, a.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := agent.Get(ctx, sc, a.ID); got.Liveness != agent.Alive || !got.Offline.IsZero() {
		t.Fatalf("after a heartbeat: %+v", got)
	}

	if err := agent.MarkOffline(ctx, as, a.ID, "stdin closed"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(agent.GoneAfter*10*time.Second + time.Second)
	if got, _ := agent.Get(ctx, sc, a.ID); got.Liveness != agent.Gone {
		t.Errorf("offline and silent past %d TTLs: %s, want gone", agent.GoneAfter, got.Liveness)
	}
	retired, err := agent.Sweep(ctx, sc, agent.Now(ctx))
	if err != nil || len(retired) != 1 || retired[0].ID != a.ID {
		t.Errorf("Sweep retired %+v %v", retired, err)
	}
	if err := agent.MarkOffline(ctx, as, a.ID, "stdin closed"); err != nil {
		t.Fatal(err)
	}
	if n := countKind(kinds(t, sc, a.ID), "agent.offline"); n != 2 {
		t.Errorf("%d agent.offline events after marking a retired agent, want 2", n)
	}
}

// TestMarkOfflineRefusals: a viewer cannot mark an agent offline, nor can
// a token bound to another agent; an unknown agent is not found.
func TestMarkOfflineRefusals(t *testing.T) {
	s, _ := agenttest.Open(t)
	ctx := agenttest.Context(t, nil)
	sc := agenttest.Scope(t, s, "acme", "alice")
	a, _ := agenttest.Agent(t, ctx, sc, "coder", agent.Registration{Client: "lmstudio"})
	viewer := agenttest.RoleScope(t, s, "acme", "val", "viewer")
	if err := agent.MarkOffline(ctx, viewer, a.ID, "x"); err == nil {
		t.Error("a viewer marked an agent offline")
	}
	if err := agent.MarkOffline(ctx, sc, "ag_0000000000000000000000000", "x"); err == nil {
		t.Error("an unknown agent was marked offline")
	}
	if got, _ := agent.Get(ctx, sc, a.ID); got.Liveness != agent.Alive {
		t.Errorf("liveness %s after refused marks", got.Liveness)
	}
}

func countKind(ks []string, kind string) int {
	n := 0
	for k := range slices.Values(ks) {
		if k == kind {
			n++
		}
	}
	return n
}
