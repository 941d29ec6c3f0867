package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpAgent is `coditect mcp` on the cli's store, driven by the official
// MCP Go SDK client.
type mcpAgent struct {
	t  *testing.T
	cs *mcp.ClientSession
}

func (c *cli) mcp(args ...string) *mcpAgent {
	c.t.Helper()
	cmd := exec.Command(c.bin, append([]string{"mcp"}, args...)...)
	cmd.Env = append(cmd.Environ(), c.env...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "LM Studio", Version: "0.3"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cs.Close() })
	return &mcpAgent{t: c.t, cs: cs}
}

// call calls a tool and returns its structured content, its text and
// whether it was a tool error.
func (a *mcpAgent) call(name string, args map[string]any) (map[string]any, string, bool) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := a.cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		a.t.Fatalf("%s: %v", name, err)
	}
	var text strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text.WriteString(tc.Text)
		}
	}
	var out map[string]any
	if b, err := json.Marshal(res.StructuredContent); err == nil {
		json.Unmarshal(b, &out)
	}
	return out, text.String(), res.IsError
}

// ok calls a tool that must succeed.
func (a *mcpAgent) ok(name string, args map[string]any) map[string]any {
	a.t.Helper()
	out, text, isErr := a.call(name, args)
	if isErr {
		a.t.Fatalf("%s %v: %s", name, args, text)
	}
	return out
}

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
