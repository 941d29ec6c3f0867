package tools

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/sqlite"
	"github.com/coditect/coditect/storage/tenant"
)

// landedStore is a test double of one store behaviour the contract allows
// (kv.Store: "fn may run more than once"): the next Update, once armed,
// commits and is then reported failed. With report nil it plays
// FoundationDB's commit_unknown_result (1021) after a commit that did
// apply: the retry loop runs fn again and returns that second result.
// With report set it returns report after the commit, as a commit cut off
// by the caller's deadline that landed all the same.
type landedStore struct {
	kv.Store
	armed  atomic.Bool
	report error
	// retried is closed once an Update after the landed one committed.
	retried   chan struct{}
	landed    atomic.Bool
	closeOnce sync.Once
}

func (s *landedStore) Update(ctx context.Context, fn func(kv.Tx) error) (kv.Versionstamp, error) {
	if s.armed.CompareAndSwap(true, false) {
		if _, err := s.Store.Update(ctx, fn); err != nil {
			return kv.Versionstamp{}, err
		}
		s.landed.Store(true)
		if s.report != nil {
			return kv.Versionstamp{}, s.report
		}
	}
	vs, err := s.Store.Update(ctx, fn)
	if err == nil && s.landed.Load() {
		s.closeOnce.Do(func() { close(s.retried) })
	}
	return vs, err
}

func landedScope(t *testing.T, report error) (*landedStore, *tenant.Scope, *tenant.Directory) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ls := &landedStore{Store: st, report: report, retried: make(chan struct{})}
	dir := tenant.NewDirectory(ls, "test")
	sc, err := dir.Local(context.Background(), "t1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	return ls, sc, dir
}

// TestToolRecordWrittenOnceAfterLandedCommit: a tool.called record whose
// first commit landed but was reported failed — a retry loop run again
// after commit_unknown_result, the queue's retry after a commit that ran
// past its deadline, with and without a spool — is in the log once.
func TestToolRecordWrittenOnceAfterLandedCommit(t *testing.T) {
	tests := []struct {
		name   string
		report error // nil: the store's own retry loop runs fn again
		queue  bool
		spool  bool
	}{
		{"unknown result, no queue", nil, false, false},
		{"unknown result, queue", nil, true, false},
		{"unknown result, spool", nil, true, true},
		{"deadline, queue retries", context.DeadlineExceeded, true, false},
		{"deadline, spool retries", context.DeadlineExceeded, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			ls, sc, dir := landedScope(t, tc.report)
			var q *AuditQueue
			if tc.queue {
				q = NewAuditQueue(0, nil)
				if tc.spool {
					if _, err := q.UseSpool(ctx, filepath.Join(t.TempDir(), "spool"), dir.AuditLog); err != nil {
						t.Fatal(err)
					}
				}
			}
			tool := findTool(t, "whoami")
			ls.armed.Store(true)
			c := &Call{Caller: Caller{Scope: sc}, Tool: tool, Args: []byte(`{}`), Started: time.Now()}
			if _, err := Audit(nil, q)(tool.Handler)(ctx, c); err != nil {
				t.Fatal(err)
			}
			// The record's append runs again: in the store's retry loop,
			// or in the queue's retry of the chunk.
			select {
			case <-ls.retried:
			case <-time.After(10 * time.Second):
				t.Fatal("the record's append was not retried within 10 s")
			}
			if q != nil {
				if err := q.Close(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if got := len(allToolCalls(t, sc)); got != 1 {
				t.Errorf("%d tool.called records, want 1", got)
			}
		})
	}
}

// BenchmarkToolRecord is a read-only call's tool.called record through the
// audit queue, with its idempotency key (a point read of the key and a
// marker written beside the event), from 8 concurrent callers.
func BenchmarkToolRecord(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "s.db"), sqlite.Options{Synchronous: sqlite.SyncNormal})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	sc, err := tenant.NewDirectory(st, "test").Local(context.Background(), "t1", "alice")
	if err != nil {
		b.Fatal(err)
	}
	q := NewAuditQueue(0, nil)
	b.Cleanup(func() { q.Close(context.Background()) })
	tool := findToolB(b, "whoami")
	h := Audit(nil, q)(tool.Handler)
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c := &Call{Caller: Caller{Scope: sc}, Tool: tool, Args: []byte(`{}`), Started: time.Now()}
			if _, err := h(context.Background(), c); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestRecoveredRecordWrittenOnceAfterLandedCommit: a record recovered from
// a dead process's spool keeps its idempotency key, so a recovery commit
// that landed and ran again (commit_unknown_result) writes it once.
func TestRecoveredRecordWrittenOnceAfterLandedCommit(t *testing.T) {
	ctx := context.Background()
	ls, sc, dir := landedScope(t, nil)
	spoolDir := filepath.Join(t.TempDir(), "spool")
	dead, err := openSpool(spoolDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	tool := findTool(t, "whoami")
	c := &Call{Caller: Caller{Scope: sc}, Tool: tool, Args: []byte(`{}`), Started: time.Now()}
	if _, ok := dead.write(sc.Log(), ToolEvent(c, nil, time.Millisecond)); !ok {
		t.Fatal("spool write refused")
	}
	dead.f.Close() // the process dies: its lock goes with it
	ls.armed.Store(true)
	n, err := RecoverSpools(ctx, spoolDir, dir.AuditLog, nil)
	if err != nil || n != 1 {
		t.Fatalf("RecoverSpools: %d, %v", n, err)
	}
	if got := len(allToolCalls(t, sc)); got != 1 {
		t.Errorf("%d tool.called records, want 1", got)
	}
}
