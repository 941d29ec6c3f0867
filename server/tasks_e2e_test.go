package server_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestTaskMovesEndToEnd: two `coditect mcp` processes, two agents of one
// user. Beta creates and claims a task; alpha may not move it and is told
// whose it is (beta's id and name) and what to do instead; beta's stale
// update is told the task is its own, at which version; and every state
// the claim reply offers in "next" is a move that succeeds.
func TestTaskMovesEndToEnd(t *testing.T) {
	e := newStdioEnv(t)
	start := func(name string) *client {
		cmd, _ := e.command(t, nil, "--tenant", "acme", "--user", "alice", "--agent", name, "--toolsets", "core,coord")
		return connect(t, &mcp.CommandTransport{Command: cmd}, "lmstudio", eraModern)
	}
	alpha, beta := start("alpha"), start("beta")
	aID, bID := alpha.agentID(), beta.agentID()
	if aID == "" || bID == "" || aID == bID {
		t.Fatalf("agents %q and %q", aID, bID)
	}
	betaIs := fmt.Sprintf("agent %s (beta)", bID)

	m, _ := beta.ok("task_create", map[string]any{"title": "fix the login redirect"})
	tid := m["task_id"].(string)
	m, text := beta.ok("task_claim", map[string]any{"task_id": tid, "version": 1})
	next := anyStrings(m["next"])
	if want := []string{"open", "in_progress", "blocked", "cancelled"}; !slices.Equal(next, want) {
		t.Errorf("the claim reply offers %v, want %v: %s", next, want, text)
	}

	// Alpha neither moves nor claims beta's task, and is told whose it is.
	alpha.fail("task_update", map[string]any{"task_id": tid, "version": 2, "state": "open"},
		"not yours to move", betaIs, "message_send", "task_list")
	alpha.fail("task_claim", map[string]any{"task_id": tid, "version": 1}, betaIs, "task_list")
	// Beta's stale call is told the truth: the task is its own.
	beta.fail("task_update", map[string]any{"task_id": tid, "version": 1, "state": "in_progress"},
		"assigned to you", "call again with version 2")

	// Every offered move succeeds for beta (on a fresh task each, at the
	// version the claim reply gave).
	for _, s := range next {
		m, _ := beta.ok("task_create", map[string]any{"title": "walk to " + s})
		id := m["task_id"].(string)
		m, _ = beta.ok("task_claim", map[string]any{"task_id": id, "version": 1})
		if got, _ := beta.ok("task_update", map[string]any{"task_id": id, "version": m["version"], "state": s}); got["state"] != s {
			t.Errorf("offered move to %s: %v", s, got)
		}
	}
	// The refused moves changed nothing.
	if m, _ := beta.ok("task_list", map[string]any{"mine": true, "state": "claimed"}); len(m["tasks"].([]any)) != 1 {
		t.Errorf("beta's claimed tasks: %v", m)
	}
}

// anyStrings returns a JSON array of strings as decoded into an any.
func anyStrings(v any) []string {
	s, _ := v.([]any)
	out := make([]string, 0, len(s))
	for _, x := range s {
		out = append(out, x.(string))
	}
	return out
}
