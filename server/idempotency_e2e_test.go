package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/storage/audit"
)

// TestIdempotencyE2E: through the real binary and the official SDK, a host
// that lost the answers of its writing calls retries them with the same
// idempotency keys — first on the same `coditect mcp` process, then on a
// new one after restarting it — and every change is made once: one
// session, one file write (a person's later edit survives the retries),
// one task, one message, one note; every retry gets the first answer with
// "replayed": true. Concurrent duplicates through one connection make one
// task; another agent with the same key makes its own.
func TestIdempotencyE2E(t *testing.T) {
	e := newStdioEnv(t)
	ws := t.TempDir()
	start := func(name string) *client {
		cmd, _ := e.command(t, nil, "--tenant", "acme", "--user", "alice", "--agent", name, "--toolsets", "all")
		return connect(t, &mcp.CommandTransport{Command: cmd}, "lmstudio", eraModern)
	}
	alpha, beta := start("alpha"), start("beta")
	aID := alpha.agentID()
	beta.agentID()

	m, _ := alpha.ok("session_start", map[string]any{"title": "retries", "workspace": ws, "idempotency_key": "start-1"})
	sid := m["session_id"].(string)
	calls := []struct {
		tool string
		args map[string]any
	}{
		{"fs_write", map[string]any{"session_id": sid, "path": "src/a.go", "content": "package a\n", "idempotency_key": "write-1"}},
		{"task_create", map[string]any{"title": "port the parser", "idempotency_key": "task-1"}},
		{"message_send", map[string]any{"to": "beta", "subject": "review", "body": "src/a.go is ready", "idempotency_key": "msg-1"}},
		{"note", map[string]any{"text": "chose the new parser", "session_id": sid, "idempotency_key": "note-1"}},
	}
	first := map[string]map[string]any{}
	for _, c := range calls {
		first[c.tool], _ = alpha.ok(c.tool, c.args)
	}
	// A person edits the file after the write: a retry that wrote again
	// would undo it.
	edited := "package a // edited by a person\n"
	if err := os.WriteFile(filepath.Join(ws, "src", "a.go"), []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	retry := func(c *client, when string) {
		t.Helper()
		for _, call := range calls {
			m, text := c.ok(call.tool, call.args)
			if m["replayed"] != true {
				t.Errorf("%s: %s retry ran again: %s", when, call.tool, text)
			}
			delete(m, "replayed")
			if !reflect.DeepEqual(m, first[call.tool]) {
				t.Errorf("%s: %s retry answered %v, want the first answer %v", when, call.tool, m, first[call.tool])
			}
		}
	}
	retry(alpha, "same process")

	// Concurrent duplicates through one connection: one task.
	const n = 6
	args := map[string]any{"title": "only once", "idempotency_key": "task-2"}
	results := make([]*mcp.CallToolResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = alpha.cs.CallTool(testContext(t), &mcp.CallToolParams{Name: "task_create", Arguments: args})
		})
	}
	wg.Wait()
	ran, ids := 0, map[any]bool{}
	for i := range n {
		m, text, isErr := alpha.result("task_create", results[i], errs[i])
		if isErr {
			t.Fatalf("duplicate %d: %s", i, text)
		}
		if m["replayed"] != true {
			ran++
		}
		ids[m["task_id"]] = true
	}
	if ran != 1 || len(ids) != 1 {
		t.Errorf("%d of %d concurrent duplicates ran, %d task ids; want 1 and 1", ran, n, len(ids))
	}

	// A host that times out waiting gives up on the call and retries it:
	// whichever way each race goes (the call never sent, answered late,
	// cut off while it ran), each task is made once and the retry answers.
	const attempts = 8
	replays := 0
	for i := range attempts {
		args := map[string]any{"title": fmt.Sprintf("timed out %d", i), "idempotency_key": fmt.Sprintf("timeout-%d", i)}
		ctx, cancel := context.WithTimeout(testContext(t), time.Duration(i+1)*200*time.Microsecond)
		_, err := alpha.cs.CallTool(ctx, &mcp.CallToolParams{Name: "task_create", Arguments: args})
		cancel()
		m, _ := alpha.ok("task_create", args)
		if m["replayed"] == true {
			replays++
		}
		t.Logf("timeout %d: first call %v; retry replayed %v", i, err, m["replayed"])
	}
	t.Logf("%d of %d retries after a client timeout were answered from the kept result", replays, attempts)

	// The host restarts its server and retries: the answers come from the
	// store.
	if err := alpha.cs.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	alpha = start("alpha")
	if id := alpha.agentID(); id != aID {
		t.Fatalf("the restarted process acts as %s, want %s", id, aID)
	}
	retry(alpha, "new process")
	m, _ = alpha.ok("session_start", map[string]any{"title": "retries", "workspace": ws, "idempotency_key": "start-1"})
	if m["replayed"] != true || m["session_id"] != sid {
		t.Errorf("session_start retry: %v, want session %s replayed", m, sid)
	}
	// The same key with other arguments changes nothing.
	alpha.fail("fs_write", map[string]any{"session_id": sid, "path": "src/a.go", "content": "package b\n", "idempotency_key": "write-1"},
		"already used", "new key")
	if b, err := os.ReadFile(filepath.Join(ws, "src", "a.go")); err != nil || string(b) != edited {
		t.Errorf("src/a.go holds %q (%v) after the retries, want the person's edit %q", b, err, edited)
	}
	// Another agent's key is its own.
	if m, _ := beta.ok("task_create", calls[1].args); m["replayed"] == true || m["task_id"] == first["task_create"]["task_id"] {
		t.Errorf("beta's task_create with alpha's key: %v", m)
	}

	sc := e.local(t, "acme", "alice")
	for kind, want := range map[string]int{"session.started": 1, "task.created": 3 + attempts, "message.sent": 1, "note.added": 1} {
		if got := len(events(t, sc, audit.Filter{Kind: kind})); got != want {
			t.Errorf("%d %s events, want %d", got, kind, want)
		}
	}
}
