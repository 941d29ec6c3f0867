package main

import (
	"strings"
	"testing"
)

// TestTextNamesAgents: the text of log tail, log query, session list and
// session show names an agent "name (model)", never by its id; --json keeps
// the id.
func TestTextNamesAgents(t *testing.T) {
	c := newCLI(t)
	ws := t.TempDir()
	builder := c.mcp("--agent", "builder", "--model", "qwen2.5-coder-7b-instruct")
	id := builder.ok("whoami", nil)["agent_id"].(string)
	sid := builder.ok("session_start", map[string]any{"title": "fix the login redirect", "workspace": ws})["session_id"].(string)
	builder.ok("note", map[string]any{"text": "the redirect loses the query string", "session_id": sid})
	const label = "builder (qwen2.5-coder-7b-instruct)"

	for _, args := range [][]string{
		{"log", "tail", "--kind", "note.added"},
		{"log", "query", "--kind", "note.added"},
		{"session", "list"},
		{"session", "show", sid},
	} {
		out := c.ok(args...)
		if !strings.Contains(out, label) || strings.Contains(out, id) {
			t.Errorf("coditect %s: want the agent as %q and not its id %s:\n%s", strings.Join(args, " "), label, id, out)
		}
		js := c.ok(append(args, "--json")...)
		if !strings.Contains(js, `"`+id+`"`) {
			t.Errorf("coditect %s --json: want the agent's id %s:\n%s", strings.Join(args, " "), id, js)
		}
	}
}
