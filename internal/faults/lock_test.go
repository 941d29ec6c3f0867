package faults_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/storage/audit"
)

// TestStoreLockedByAnotherProcess holds the store's write lock from
// another program (a plain SQLite connection in BEGIN IMMEDIATE) for
// several seconds while `coditect mcp` processes serve calls: reads go on
// (and are recorded once the lock is gone), a write with a short
// lock_timeout fails after one lock timeout with a tool
// error that says the store is locked and to retry, a write with the
// default timeout waits and succeeds once the lock is released, and the
// store is intact afterwards.
func TestStoreLockedByAnotherProcess(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "coditect.db")
	storeURL := sqliteURL(dbPath)
	hold := 2 * time.Second
	if !testing.Short() {
		hold = 8 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	connectMCP := func(url string) *mcp.ClientSession {
		t.Helper()
		cmd, stderr := mcpCommand(t, url)
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "lmstudio", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
		if err != nil {
			t.Fatalf("connect: %v\n%s", err, stderr)
		}
		t.Cleanup(func() { cs.Close() })
		return cs
	}
	impatient := connectMCP(storeURL + "?lock_timeout=500ms")
	patient := connectMCP(storeURL) // the default lock_timeout, 30s
	before, err := note(ctx, patient, "before the lock")
	if err != nil {
		t.Fatal(err)
	}

	holder := startLockHolder(t, dbPath)
	locked := time.Now()

	// Reads are not blocked by another process's writer (WAL).
	if r, err := callTool(ctx, impatient, "audit_query", map[string]any{"kind": "note.added"}); err != nil || r.isError || !strings.Contains(r.text+toJSON(r.structured), before) {
		t.Fatalf("a read while the store is locked: %v %+v", err, r)
	}
	// A write gives up after its lock_timeout with a clear, retryable error.
	start := time.Now()
	r, err := callTool(ctx, impatient, "note", map[string]any{"text": "while locked"})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("a write while locked broke the connection: %v", err)
	}
	if !r.isError {
		t.Fatalf("a write while another process holds the lock succeeded: %+v", r)
	}
	t.Logf("write while locked: tool error after %v: %s", took.Round(time.Millisecond), r.text)
	if !strings.Contains(r.text, "locked by another process") || !strings.Contains(strings.ToLower(r.text), "retry") {
		t.Errorf("the tool error does not say the store is locked and to retry: %q", r.text)
	}
	if strings.Contains(r.text, "SQLITE") || strings.Contains(r.text, ".db") {
		t.Errorf("the tool error shows the model the server's internals: %q", r.text)
	}
	if took > hold {
		t.Errorf("the write with lock_timeout=500ms took %v to fail", took)
	}

	// A patient write waits out the lock and succeeds.
	type result struct {
		id  string
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		id, err := note(ctx, patient, "waited for the lock")
		done <- result{id, err, time.Now()}
	}()
	release := time.NewTimer(hold - time.Since(locked)) // the fault's duration, not a synchronisation
	select {
	case r := <-done:
		t.Fatalf("a write finished while another process held the lock: %+v", r)
	case <-release.C:
	}
	// The write may commit while release() is still returning: compare
	// with the moment the release began.
	releasing := time.Now()
	holder.release()
	res := <-done
	if res.err != nil {
		t.Fatalf("a write waiting for the lock failed after it was released: %v", res.err)
	}
	if res.at.Before(releasing) {
		t.Fatalf("the write finished before the lock was released")
	}
	t.Logf("a waiting write committed %v after the lock's release began", res.at.Sub(releasing).Round(time.Millisecond))

	// Nothing of the failed write or the holder's rolled-back insert is in
	// the store; everything acknowledged is.
	sc, _ := localScope(t, storeURL, "t1", "ada")
	var texts []string
	for _, ev := range allEvents(t, sc, audit.Filter{Kind: "note.added"}) {
		texts = append(texts, ev.Summary)
		if ev.Summary == "while locked" {
			t.Errorf("the refused write is in the log: %+v", ev)
		}
	}
	if len(texts) != 2 || texts[0] != "before the lock" || texts[1] != "waited for the lock" {
		t.Errorf("notes after the lock: %q", texts)
	}
	// The impatient process recovered too.
	if _, err := note(ctx, impatient, "after the lock"); err != nil {
		t.Fatalf("the process whose write failed cannot write after the lock: %v", err)
	}
	_ = impatient.Close()
	_ = patient.Close()
	// The read served while the store was locked was recorded once the
	// lock was gone (its record waited in the process's queue).
	reads := 0
	for _, ev := range allEvents(t, sc, audit.Filter{Kind: "tool.called"}) {
		if ev.Attrs["tool"] == "audit_query" && ev.Attrs["outcome"] == "ok" {
			reads++
		}
	}
	if reads != 1 {
		t.Errorf("%d records of the read served during the lock, want 1", reads)
	}
	checkStore(t, sc, dbPath)
}
