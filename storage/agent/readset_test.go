package agent_test

import (
	"testing"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/kv/kvtest"
)

// TestSweepReadSet: the sweep does not read the heartbeat of a live agent
// with a read conflict — agents heartbeat on every call, and on a cluster
// each heartbeat committed meanwhile would make the sweep retry — but does
// read that of an agent it retires, so that a heartbeat landing first
// makes it retry instead of retiring a live agent.
func TestSweepReadSet(t *testing.T) {
	s, _ := agenttest.Open(t)
	rs := kvtest.NewReadSet(s)
	clock := agenttest.NewClock()
	ctx := agenttest.Context(t, clock)
	sc := agenttest.Scope(t, rs, "acme", "alice")
	silent, _ := agenttest.Agent(t, ctx, sc, "silent", agent.Registration{})
	busy, busySc := agenttest.Agent(t, ctx, sc, "busy", agent.Registration{})
	clock.Advance(agent.GoneAfter*agent.DefaultTTL + time.Second)
	if err := agent.Heartbeat(ctx, busySc, busy.ID); err != nil {
		t.Fatal(err)
	}
	var retired []agent.Agent
	var err error
	reads := rs.Record(func() { retired, err = agent.Sweep(ctx, sc, clock.Now()) })
	if err != nil {
		t.Fatal(err)
	}
	if len(retired) != 1 || retired[0].ID != silent.ID {
		t.Fatalf("retired %+v, want only %s", retired, silent.ID)
	}
	if reads.Has(agenttest.HeartbeatKey(t, sc, busy.ID)) {
		t.Error("the sweep read a live agent's heartbeat with a read conflict")
	}
	if !reads.Has(agenttest.HeartbeatKey(t, sc, silent.ID)) {
		t.Error("the sweep retired an agent without a read conflict on its heartbeat")
	}
}
