package agent_test

import (
	"context"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
)

// TestClockJumpsBackwards: with the clock set back an hour, a live agent
// stays alive and is not retired, its heartbeats still count, and once it
// falls silent it goes stale and gone by the new clock.
func TestClockJumpsBackwards(t *testing.T) {
	s, _ := agenttest.Open(t)
	sc := agenttest.Scope(t, s, "acme", "ada")
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	ctx := agent.WithClock(context.Background(), func() time.Time { return now })
	a, err := agent.Register(ctx, sc, agent.Registration{Name: "coder", Client: "test"})
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(-time.Hour) // the clock jumps back
	got, err := agent.Get(ctx, sc, a.ID)
	if err != nil || got.Liveness != agent.Alive {
		t.Fatalf("after the clock jumped back: %+v, %v", got, err)
	}
	if retired, err := agent.Sweep(ctx, sc, now); err != nil || len(retired) != 0 {
		t.Fatalf("sweep after the jump retired %v (%v)", retired, err)
	}
	if err := agent.Heartbeat(ctx, sc, a.ID); err != nil {
		t.Fatal(err)
	}
	// Silent from here: by the new clock it goes stale after TTL and gone
	// after GoneAfter TTLs.
	now = now.Add(got.TTL + time.Second)
	if got, _ = agent.Get(ctx, sc, a.ID); got.Liveness != agent.Stale {
		t.Errorf("one TTL after its last heartbeat on the new clock: %s (last seen %s, now %s)", got.Liveness, got.LastSeen, now)
	}
	now = now.Add(time.Duration(agent.GoneAfter) * got.TTL)
	if got, _ = agent.Get(ctx, sc, a.ID); got.Liveness != agent.Gone {
		t.Errorf("long after its last heartbeat on the new clock: %s (last seen %s, now %s)", got.Liveness, got.LastSeen, now)
	}
	if retired, err := agent.Sweep(ctx, sc, now); err != nil || len(retired) != 1 {
		t.Errorf("sweep of the gone agent: %v, %v", retired, err)
	}
}
