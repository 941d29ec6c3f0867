package main

import (
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/task"
)

// TestHumanActionsCLI: a person steers an agent from the terminal through
// the real binary, and the agent (the official MCP SDK client over
// `coditect mcp`) sees it: a message sent with `coditect message send`
// is in its inbox; tasks are created, assigned and moved at their
// version; a lease is force-released with its holder told. A viewer's
// token can do none of it. Text and --json.
func TestHumanActionsCLI(t *testing.T) {
	c := newCLI(t)
	ws := t.TempDir()
	builder := c.mcp("--agent", "builder", "--model", "qwen2.5-coder-7b-instruct", "--toolsets", "core,coord")
	id := builder.ok("whoami", nil)["agent_id"].(string)
	sid := builder.ok("session_start", map[string]any{"title": "auth work", "workspace": ws})["session_id"].(string)
	const label = "builder (qwen2.5-coder-7b-instruct)"

	// A message, by the agent's name; the agent reads it.
	if out := c.ok("message", "send", "builder", "hands off auth.go", "--subject", "auth"); !strings.Contains(out, "1 recipient: "+label) {
		t.Fatalf("message send: %q", out)
	}
	rc := decode[message.Receipt](t, c.ok("message", "send", id, "and review login.go", "--json"))
	if len(rc.Recipients) != 1 || rc.Recipients[0] != id {
		t.Fatalf("message send --json: %+v", rc)
	}
	inbox := builder.ok("inbox", nil)["messages"].([]any)
	if len(inbox) != 2 {
		t.Fatalf("inbox: %v", inbox)
	}
	first := inbox[0].(map[string]any)
	if first["body"] != "hands off auth.go" || first["subject"] != "auth" || first["from_user"] == "" || first["from"] != nil {
		t.Fatalf("the agent reads %v", first)
	}
	if out := c.ok("message", "list", "--sent"); strings.Count(out, label) != 2 || strings.Contains(out, id) {
		t.Fatalf("message list --sent: %q", out)
	}
	if sent := decode[[]map[string]any](t, c.ok("message", "list", "--sent", "--json")); len(sent) != 2 {
		t.Fatalf("message list --sent --json: %v", sent)
	}
	c.fail("no active agent is named", "message", "send", "nobody", "hi")

	// A task: created, assigned by name, moved; a stale version is refused.
	tk := decode[task.Task](t, c.ok("task", "create", "fix the login redirect", "--json"))
	if out := c.ok("task", "assign", tk.ID, "builder"); !strings.Contains(out, "assigned to "+label) || !strings.Contains(out, "version 2") {
		t.Fatalf("task assign: %q", out)
	}
	c.fail("changed", "task", "move", tk.ID, "review", "--version", "1")
	moved := decode[task.Task](t, c.ok("task", "move", tk.ID, "in_progress", "--note", "go", "--json"))
	if moved.State != task.InProgress || moved.Assignee != id || moved.Version != 3 {
		t.Fatalf("task move: %+v", moved)
	}
	if out := c.ok("task", "list"); !strings.Contains(out, label) || !strings.Contains(out, "in_progress") {
		t.Fatalf("task list: %q", out)
	}
	if p := decode[task.Page](t, c.ok("task", "list", "--json", "--state", "in_progress")); len(p.Tasks) != 1 || p.Tasks[0].ID != tk.ID {
		t.Fatalf("task list --json: %+v", p)
	}

	// A lease: listed, then force-released; the holder is told.
	builder.ok("lease_acquire", map[string]any{"resource": "auth.go", "session_id": sid})
	ls := decode[[]lease.Holder](t, c.ok("lease", "list", "--json"))
	if len(ls) != 1 || ls[0].Agent != id {
		t.Fatalf("lease list --json: %+v", ls)
	}
	if out := c.ok("lease", "list"); !strings.Contains(out, label) {
		t.Fatalf("lease list: %q", out)
	}

	// A viewer's token may do none of it.
	c.ok("user", "create", "vic")
	stdout, _, code := run(t, c.bin, c.env, "token", "create", "--user", "vic", "--role", "viewer")
	if code != 0 {
		t.Fatalf("token create: exit %d", code)
	}
	secret := strings.TrimSpace(stdout)
	viewer := c.withToken(secret)
	for _, args := range [][]string{
		{"message", "send", id, "hi"},
		{"task", "create", "x"},
		{"task", "assign", tk.ID, "--version", "3"},
		{"task", "move", tk.ID, "review", "--version", "3"},
		{"lease", "release", ls[0].Resource, "--reason", "x"},
	} {
		viewer.fail("not allowed for this role", args...)
	}
	viewer.ok("task", "list")

	c.fail("say why", "lease", "release", ls[0].Resource)
	if rel := decode[[]lease.Lease](t, c.ok("lease", "release", ls[0].Resource, "--reason", "stuck for an hour", "--json")); len(rel) != 1 || rel[0].Agent != id {
		t.Fatalf("lease release --json: %+v", rel)
	}
	c.fail("lease not held", "lease", "release", ls[0].Resource, "--reason", "again")
	inbox = builder.ok("inbox", map[string]any{"ack": []string{first["message_id"].(string), inbox[1].(map[string]any)["message_id"].(string)}})["messages"].([]any)
	if len(inbox) == 0 || !strings.Contains(inbox[len(inbox)-1].(map[string]any)["subject"].(string), "force-released") {
		t.Fatalf("the holder was not told: %v", inbox)
	}
}
