package server_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/storage/audit"
)

// TestOneTxDuplicatesAcrossProcesses: two `coditect mcp` processes serving
// directly on one store, acting as the same agent, get the same keyed
// note and message_send at the same moment, many times over. Each pair
// makes its change once; both callers get the same answer, one of them
// marked replayed; neither is told that the other is still running (these
// tools hold their key in the call's own transaction, not by a
// reservation).
func TestOneTxDuplicatesAcrossProcesses(t *testing.T) {
	e := newStdioEnv(t)
	start := func(name string) *client {
		cmd, _ := e.command(t, nil, "--core", "off", "--tenant", "acme", "--user", "alice", "--agent", name, "--toolsets", "all")
		return connect(t, &mcp.CommandTransport{Command: cmd}, "dup", eraModern)
	}
	p1, p2 := start("alpha"), start("alpha")
	if a, b := p1.agentID(), p2.agentID(); a != b {
		t.Fatalf("the processes act as %s and %s, want one agent", a, b)
	}
	start("beta").agentID()
	rounds := 20
	if testing.Short() {
		rounds = 8
	}
	type call struct {
		tool, id string
		args     func(i int) map[string]any
	}
	calls := []call{
		{"note", "event_id", func(i int) map[string]any {
			return map[string]any{"text": fmt.Sprintf("dup %d", i), "idempotency_key": fmt.Sprintf("note-%d", i)}
		}},
		{"message_send", "message_id", func(i int) map[string]any {
			return map[string]any{"to": "beta", "body": fmt.Sprintf("dup %d", i), "idempotency_key": fmt.Sprintf("msg-%d", i)}
		}},
	}
	for _, c := range calls {
		for i := range rounds {
			args := c.args(i)
			var res [2]*mcp.CallToolResult
			var errs [2]error
			var wg sync.WaitGroup
			for j, p := range []*client{p1, p2} {
				wg.Go(func() {
					res[j], errs[j] = p.cs.CallTool(testContext(t), &mcp.CallToolParams{Name: c.tool, Arguments: args})
				})
			}
			wg.Wait()
			ran := 0
			var ids [2]any
			for j, p := range []*client{p1, p2} {
				m, text, isErr := p.result(c.tool, res[j], errs[j])
				if isErr {
					t.Fatalf("%s %d, process %d: %s", c.tool, i, j+1, text)
				}
				if m["replayed"] != true {
					ran++
				}
				ids[j] = m[c.id]
			}
			if ran != 1 || ids[0] != ids[1] {
				t.Errorf("%s %d: %d of 2 duplicates ran, answers name %v and %v; want 1 and the same", c.tool, i, ran, ids[0], ids[1])
			}
		}
	}
	sc := e.local(t, "acme", "alice")
	for kind, want := range map[string]int{"note.added": rounds, "message.sent": rounds, "tool.called": 4 * rounds} {
		got := 0
		for _, ev := range events(t, sc, audit.Filter{Kind: kind}) {
			if kind != "tool.called" || ev.Attrs["tool"] == "note" || ev.Attrs["tool"] == "message_send" {
				got++
			}
		}
		if got != want {
			t.Errorf("%d %s events, want %d", got, kind, want)
		}
	}
}
