package fdb

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/kvtest"
)

// memDBs holds the in-memory databases of the conformance runs by locator,
// so that the suite can reopen a store.
var memDBs struct {
	mu sync.Mutex
	m  map[string]*memDB
	n  int
}

// faultHarness is the conformance suite's harness over memDB with the
// retryable faults of plan: every attempt the faults end must be retried
// by the backend's loop without the suite seeing them.
func faultHarness(name string, plan faultPlan) kvtest.Harness {
	prefix := []byte("conformance/")
	open := func(loc string, age time.Duration) (kv.Store, error) {
		memDBs.mu.Lock()
		db := memDBs.m[loc]
		memDBs.mu.Unlock()
		if db == nil {
			return nil, fmt.Errorf("no in-memory database %q", loc)
		}
		return OpenFaulty(context.Background(), db, Options{Prefix: prefix, MaxTransactionAge: age})
	}
	newDB := func(t testing.TB) string {
		db := newMemDB()
		db.faults = plan
		memDBs.mu.Lock()
		defer memDBs.mu.Unlock()
		if memDBs.m == nil {
			memDBs.m = make(map[string]*memDB)
		}
		memDBs.n++
		loc := fmt.Sprintf("mem:%s/%d", name, memDBs.n)
		memDBs.m[loc] = db
		return loc
	}
	mustOpen := func(t testing.TB, loc string, age time.Duration) kv.Store {
		s, err := open(loc, age)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return kvtest.Harness{
		Name: name,
		New: func(t testing.TB) (kv.Store, string) {
			loc := newDB(t)
			return mustOpen(t, loc, 0), loc
		},
		Open:          func(loc string) (kv.Store, error) { return open(loc, 0) },
		NewShortLived: func(t testing.TB, age time.Duration) kv.Store { return mustOpen(t, newDB(t), age) },
		InProcess:     true,
		MaxKeySize:    kv.MaxKeySize - len(prefix),
	}
}

// TestConformanceUnderFaults runs the kv conformance suite through the
// backend's real retry loop and error translation, over the in-memory
// model with FoundationDB's retryable errors injected.
func TestConformanceUnderFaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		plan faultPlan
	}{
		{"none", faultPlan{}},
		{"too_old_and_conflicts", faultPlan{everyRead: 11, readCode: codeTransactionTooOld, everyCommit: 5, commitCode: codeNotCommitted}},
		{"unknown_result_not_applied", faultPlan{everyCommit: 4, commitCode: codeCommitUnknownResult}},
	} {
		t.Run(tc.name, func(t *testing.T) { kvtest.Run(t, faultHarness(tc.name, tc.plan)) })
	}
}
