package lease_test

import (
	"testing"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/kv/kvtest"
	"github.com/coditect/coditect/storage/lease"
)

// TestHeartbeatsOutOfReadSet: Acquire and Sweep do not read the heartbeat
// of a live agent — the caller's own, or a holder's they leave alone —
// with a read conflict (agents heartbeat on every call; on a cluster each
// heartbeat committed meanwhile would make them retry), but they do read
// that of a holder whose lease they reclaim for being gone, so that a
// heartbeat landing first makes them retry instead.
func TestHeartbeatsOutOfReadSet(t *testing.T) {
	s, _ := agenttest.Open(t)
	rs := kvtest.NewReadSet(s)
	clock := agenttest.NewClock()
	ctx := agenttest.Context(t, clock)
	admin := agenttest.Scope(t, rs, "acme", "alice")
	gone, goneSc := agenttest.Agent(t, ctx, admin, "gone", agent.Registration{})
	for _, res := range []string{"key:a", "key:b"} {
		if _, err := lease.Acquire(ctx, goneSc, lease.Request{Resource: res, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(agent.GoneAfter*agent.DefaultTTL + time.Second)
	me, meSc := agenttest.Agent(t, ctx, admin, "me", agent.Registration{})
	other, otherSc := agenttest.Agent(t, ctx, admin, "other", agent.Registration{})
	if _, err := lease.Acquire(ctx, otherSc, lease.Request{Resource: "key:c", TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}

	var err error
	reads := rs.Record(func() { _, err = lease.Acquire(ctx, meSc, lease.Request{Resource: "key:a"}) })
	if err != nil {
		t.Fatal(err)
	}
	if reads.Has(agenttest.HeartbeatKey(t, admin, me.ID)) {
		t.Error("Acquire read the caller's heartbeat with a read conflict")
	}
	if !reads.Has(agenttest.HeartbeatKey(t, admin, gone.ID)) {
		t.Error("Acquire reclaimed a gone holder's lease without a read conflict on its heartbeat")
	}

	var removed []lease.Lease
	reads = rs.Record(func() { removed, err = lease.Sweep(ctx, admin, clock.Now()) })
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0].Resource != "key:b" {
		t.Fatalf("the sweep removed %+v, want the gone agent's lease on key:b", removed)
	}
	if reads.Has(agenttest.HeartbeatKey(t, admin, other.ID)) || reads.Has(agenttest.HeartbeatKey(t, admin, me.ID)) {
		t.Error("the sweep read a live holder's heartbeat with a read conflict")
	}
	if !reads.Has(agenttest.HeartbeatKey(t, admin, gone.ID)) {
		t.Error("the sweep reclaimed a gone holder's lease without a read conflict on its heartbeat")
	}
}
