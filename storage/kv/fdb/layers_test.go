package fdb

import (
	"errors"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/message"
)

// The storage layers over the backend's retry loop, with FoundationDB's
// faults injected by the in-memory model.

// An audit append with an idempotency key lands once although its first
// commit applied and was reported as commit_unknown_result, and the retry
// loop ran the append again.
func TestAuditAppendExactlyOnceUnderUnknownResult(t *testing.T) {
	db, s := newFaulty(t, Options{Prefix: []byte("layers/")})
	sc := agenttest.Scope(t, s, "acme", "alice")
	db.plan(func(f *faultPlan) {
		f.commitErrs = []commitErr{{code: codeCommitUnknownResult, applied: true}}
	})
	ev := sc.Event("note.added", "once")
	ev.IdempotencyKey = "note-1"
	first, err := sc.Log().Append(ctxT(t), ev)
	if err != nil {
		t.Fatal(err)
	}
	again, err := sc.Log().Append(ctxT(t), ev)
	if err != nil {
		t.Fatal(err)
	}
	p, err := sc.Log().Query(ctxT(t), audit.Query{Filter: audit.Filter{Kind: "note.added"}, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 1 || first[0].ID != again[0].ID {
		t.Fatalf("%d note.added events (ids %s, %s); want 1", len(p.Events), first[0].ID, again[0].ID)
	}
}

// Leases stay exclusive while conflicts and transaction_too_old at reads
// make their transactions retry.
func TestLeaseExclusiveUnderRetries(t *testing.T) {
	db, s := newFaulty(t, Options{Prefix: []byte("layers/")})
	clock := agenttest.NewClock()
	ctx := agenttest.Context(t, clock)
	admin := agenttest.Scope(t, s, "acme", "alice")
	_, a := agenttest.Agent(t, ctx, admin, "a", agent.Registration{TTL: time.Minute})
	_, b := agenttest.Agent(t, ctx, admin, "b", agent.Registration{TTL: time.Minute})
	db.plan(func(f *faultPlan) {
		f.everyRead, f.readCode = 3, codeTransactionTooOld
		f.everyCommit, f.commitCode = 2, codeNotCommitted
	})
	for i := range 5 {
		l, err := lease.Acquire(ctx, a, lease.Request{Resource: "src/a.go"})
		if err != nil {
			t.Fatalf("round %d: a acquires: %v", i, err)
		}
		if _, err := lease.Acquire(ctx, b, lease.Request{Resource: "src/a.go"}); !errors.Is(err, lease.ErrConflict) {
			t.Fatalf("round %d: b acquires a held lease: %v; want lease.ErrConflict", i, err)
		}
		if err := lease.Release(ctx, a, l.Resource, l.Token); err != nil {
			t.Fatalf("round %d: release: %v", i, err)
		}
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	t.Logf("%d reads, %d commits, %d applied", db.counters.reads, db.counters.commits, db.counters.applied)
}

// A waiting Fetch sees a message sent while it waits although the watch on
// the inbox's head fires late.
func TestMessageFetchWithLateWatches(t *testing.T) {
	db, s := newFaulty(t, Options{Prefix: []byte("layers/")})
	ctx := agenttest.Context(t, agenttest.NewClock())
	admin := agenttest.Scope(t, s, "acme", "alice")
	_, a := agenttest.Agent(t, ctx, admin, "a", agent.Registration{TTL: time.Minute})
	bAgent, b := agenttest.Agent(t, ctx, admin, "b", agent.Registration{TTL: time.Minute})
	activated := make(chan string, 16)
	db.mu.Lock()
	db.faults.watchDelay = 200 * time.Millisecond
	db.activated = activated
	db.mu.Unlock()
	got := make(chan []message.Message, 1)
	go func() {
		ms, _ := message.Fetch(ctx, b, message.FetchOptions{Wait: 30 * time.Second})
		got <- ms
	}()
	select {
	case <-activated: // Fetch found the inbox empty and waits
	case <-time.After(20 * time.Second):
		t.Fatal("Fetch set no watch")
	}
	start := time.Now()
	r, err := message.Send(ctx, a, message.Outgoing{To: message.To{Agent: bAgent.ID}, Body: "late"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ms := <-got:
		if len(ms) != 1 || ms[0].ID != r.ID {
			t.Fatalf("waiting Fetch returned %+v", ms)
		}
		t.Logf("the waiting Fetch returned %v after the send (watch delay 200ms)", time.Since(start).Round(time.Millisecond))
	case <-time.After(20 * time.Second):
		t.Fatal("a waiting Fetch missed a message whose watch fired late")
	}
}
