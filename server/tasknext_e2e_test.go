package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/task"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestTaskNextWaitsForDependency: a person creates two tasks, the second
// blocked by the first and needing the "go" skill; an agent (the official
// MCP SDK client over the real binary) that declared "go" pulls with
// task_next the first, is told nothing is ready while it works on it, and
// pulls the second only once the first is done.
func TestTaskNextWaitsForDependency(t *testing.T) {
	e := newStdioEnv(t)
	person := e.local(t, "acme", "alice")
	ctx := context.Background()
	dep, err := task.Create(ctx, person, task.New{Title: "add the column"})
	if err != nil {
		t.Fatal(err)
	}
	prio := 10
	backfill, err := task.Create(ctx, person, task.New{Title: "backfill the column",
		Plan: task.Plan{Priority: &prio, BlockedBy: &[]string{dep.ID}, Skills: &[]string{"go"}}})
	if err != nil {
		t.Fatal(err)
	}

	cmd, _ := e.command(t, nil, "--tenant", "acme", "--user", "alice", "--agent", "coder", "--toolsets", "core,coord")
	c := connect(t, &mcp.CommandTransport{Command: cmd}, "lmstudio", eraModern)
	c.ok("agent_update", map[string]any{"capabilities": []string{"go"}})

	m, text := c.ok("task_next", map[string]any{})
	got, _ := m["task"].(map[string]any)
	if got["task_id"] != dep.ID {
		t.Fatalf("first task_next took %v (%s); want the dependency %s, the only ready task", got["task_id"], text, dep.ID)
	}
	m, text = c.ok("task_next", map[string]any{})
	if m["task"] != nil || m["waiting"] != float64(1) || !strings.Contains(text, "Nothing ready") {
		t.Fatalf("task_next while the dependency is in hand: %v %s", m, text)
	}
	v := got["version"]
	for _, st := range []string{"in_progress", "review", "done"} {
		r, _ := c.ok("task_update", map[string]any{"task_id": dep.ID, "version": v, "state": st})
		v = r["version"]
	}
	m, text = c.ok("task_next", map[string]any{})
	if got, _ := m["task"].(map[string]any); got["task_id"] != backfill.ID || got["state"] != "claimed" {
		t.Fatalf("task_next once the dependency is done: %v (%s); want %s", m, text, backfill.ID)
	}
	if tk, err := task.Get(ctx, person, backfill.ID); err != nil || tk.Assignee != c.agentID() {
		t.Fatalf("the person reads %+v, %v; want it assigned to the agent", tk, err)
	}
}
