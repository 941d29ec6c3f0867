package tools

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/sqlite"
	"github.com/coditect/coditect/storage/tenant"
)

// TestLockedStoreWaitsOnce: while another connection holds the store's
// write lock, a writing call waits one lock timeout (its heartbeat's) and
// fails with the retryable error without running the tool (which would
// wait a second timeout) and without waiting for its own record (a
// third); the record is committed once the lock is released. A read-only
// call goes on during the lock.
func TestLockedStoreWaitsOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	// The lock timeout is long enough that releasing the lock right after
	// the call returns always comes before the record's append gives up.
	st, err := sqlite.Open(ctx, path, sqlite.Options{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sc, err := tenant.NewDirectory(st, "test").Local(ctx, "t1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	ag, err := agent.Register(ctx, sc, agent.Registration{Name: "tester", Client: "go-test", Model: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	if sc, err = sc.WithAgent(ag.ID); err != nil {
		t.Fatal(err)
	}

	q := NewAuditQueue(0, nil)
	t.Cleanup(func() { q.Close(ctx) })
	var ran atomic.Int32
	counted := func(next Handler) Handler {
		return func(ctx context.Context, c *Call) (Result, error) {
			ran.Add(1)
			return next(ctx, c)
		}
	}
	chain := Chain(Audit(nil, q), Heartbeat(0, nil), counted)
	call := func(tool, args string) error {
		tl := findTool(t, tool)
		c := &Call{Caller: Caller{Scope: sc}, Tool: tl, Args: json.RawMessage(args), Started: time.Now()}
		_, err := chain(tl.Handler)(ctx, c)
		return err
	}

	// Another program takes the write lock.
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	locked := true
	release := func() {
		if locked {
			locked = false
			if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(release)

	err = call("note", `{"text":"while locked"}`)
	if !errors.Is(err, kv.ErrUnavailable) {
		t.Fatalf("a write while the store is locked: %v, want kv.ErrUnavailable", err)
	}
	if n := ran.Load(); n != 0 {
		t.Errorf("the tool ran %d times after its heartbeat found the store locked", n)
	}
	// The call did not wait for its record: the queue's first try to
	// commit it, which takes a lock timeout to fail, has not failed yet.
	if q.degraded.Load() {
		t.Errorf("the failed call returned after its record's append had failed: it waited a second lock timeout")
	}

	// A caller whose agent could not be registered because the store was
	// unavailable (the transport says so in Caller.Unavailable): a write
	// fails at once without running, a read runs.
	regErr := fmt.Errorf("register: %w", kv.ErrUnavailable)
	for _, tc := range []struct {
		tool, args string
		runs       bool
	}{{"note", `{"text":"x"}`, false}, {"whoami", `{}`, true}} {
		tl := findTool(t, tc.tool)
		before := ran.Load()
		c := &Call{Caller: Caller{Scope: sc, Unavailable: regErr}, Tool: tl, Args: json.RawMessage(tc.args), Started: time.Now()}
		_, err := Chain(Heartbeat(time.Hour, nil), counted)(tl.Handler)(ctx, c)
		if ran := ran.Load() > before; ran != tc.runs || (err != nil) == tc.runs {
			t.Errorf("%s by a caller whose registration found the store unavailable: ran %v, err %v", tc.tool, ran, err)
		}
	}
	ran.Store(0)

	// A read-only call goes on while the store is locked; its record waits
	// in the queue.
	if err := call("whoami", `{}`); err != nil {
		t.Fatalf("whoami while the store is locked: %v", err)
	}
	if n := ran.Load(); n != 1 {
		t.Errorf("whoami ran %d times", n)
	}
	if !q.degraded.Load() {
		t.Errorf("the queue committed while another connection held the write lock")
	}
	// More reads while locked do not wait for the store at all.
	for range 3 {
		if err := call("whoami", `{}`); err != nil {
			t.Fatalf("whoami while the store is locked: %v", err)
		}
	}

	// Once the lock is released every record is committed: the failed
	// write's and the reads'.
	release()
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	q2 := audit.Query{Filter: audit.Filter{Kind: "tool.called"}}
	p, err := sc.Log().Query(ctx, q2)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range p.Events {
		outcomes = append(outcomes, fmt.Sprint(ev.Attrs["tool"], ":", ev.Attrs["outcome"]))
	}
	want := "[note:error whoami:ok whoami:ok whoami:ok whoami:ok]"
	if fmt.Sprint(outcomes) != want {
		t.Errorf("records after the lock: %v, want %s", outcomes, want)
	}
	if q.degraded.Load() {
		t.Errorf("the queue still counts the store unavailable after committing")
	}
}
