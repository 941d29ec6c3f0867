package watch

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/lease"
)

func wantAttribution(t *testing.T, c Change, actor audit.Actor, agentID string, ev Evidence) {
	t.Helper()
	a := c.Attribution
	if a.Actor != actor || a.AgentID != agentID || !strings.HasPrefix(a.Evidence, string(ev)+":") {
		t.Errorf("%s %s attributed %+v, want %s %q by %s", c.Kind, c.Rel, a, actor, agentID, ev)
	}
}

// TestAttributionLadder climbs the evidence ladder with records written
// as the MCP files toolset and the IDE will write them.
func TestAttributionLadder(t *testing.T) {
	s, _ := agenttest.Open(t)
	sc := agenttest.Scope(t, s, "acme", "ada")
	ctx := context.Background()
	h := startWatchScope(t, sc, t.TempDir(), Config{Tools: []Tool{}, FormatWindow: 10 * time.Second})
	ag, asc := agenttest.Agent(t, ctx, sc, "coder", agent.Registration{Client: "lmstudio", Model: "qwen2.5-coder"})
	record := func(fn func(tx kv.Tx) error) {
		t.Helper()
		if _, err := s.Update(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}

	// 1: the agent's fs_write, recorded before the bytes hit the disk.
	content := "package a\n\nfunc A() {}\n"
	record(func(tx kv.Tx) error {
		return attrib.RecordAgentWrite(tx, asc, h.key("a.go"), attrib.Hash([]byte(content)), ag.ID, "qwen2.5-coder", "")
	})
	h.write("a.go", content)
	c := h.expect("file.created a.go")[0]
	wantAttribution(t, c, audit.ActorAgent, ag.ID, FromAgentWrite)
	if c.Attribution.Confidence != 1 || c.Attribution.Model != "qwen2.5-coder" {
		t.Errorf("certain agent write: %+v", c.Attribution)
	}
	ev, err := sc.Log().Get(ctx, c.ID)
	if err != nil || ev.Agent != ag.ID {
		t.Errorf("the stored event is not indexed under the agent: %+v, %v", ev, err)
	}

	// A formatter rewrites the agent's output: still the agent's.
	h.write("a.go", "package a\n\nfunc A() {\n}\n")
	wantAttribution(t, h.expect("file.modified a.go")[0], audit.ActorAgent, ag.ID, FromFormatter)

	// The file is renamed: the new path inherits its history, so the next
	// formatter run there is still the agent's.
	must(t, os.Rename(h.path("a.go"), h.path("b.go")))
	wantAttribution(t, h.expect("file.renamed b.go")[0], audit.ActorAgent, ag.ID, FromFormatter)
	h.write("b.go", "package a\n\nfunc A() {}\n\n")
	wantAttribution(t, h.expect("file.modified b.go")[0], audit.ActorAgent, ag.ID, FromFormatter)

	// 2: the IDE saves for the human, with the hash of what it saves.
	saved := "package a\n\n// Human wrote this.\nfunc A() {}\n"
	record(func(tx kv.Tx) error {
		return attrib.RecordIDESave(tx, sc, h.key("b.go"), attrib.Hash([]byte(saved)), "")
	})
	h.write("b.go", saved)
	c = h.expect("file.modified b.go")[0]
	wantAttribution(t, c, audit.ActorHuman, "", FromIDESave)
	if c.User != "ada" {
		t.Errorf("the human is %q, want ada", c.User)
	}
	// After a human save, a non-matching change is no formatter of the agent's.
	h.write("b.go", saved+"// more\n")
	wantAttribution(t, h.expect("file.modified b.go")[0], audit.ActorUnknown, "", FromNothing)

	// 3: one agent holds the file's lease.
	if _, err := lease.Acquire(ctx, asc, lease.Request{Resource: h.key("src/**")}); err != nil {
		t.Fatal(err)
	}
	h.write("src/c.go", "package src\n")
	c = h.expect("file.created src/c.go")[0]
	wantAttribution(t, c, audit.ActorAgent, ag.ID, FromLease)
	if c.Attribution.Model != "qwen2.5-coder" {
		t.Errorf("the lease holder's model: %+v", c.Attribution)
	}
	// 3: an agent declared the edit.
	record(func(tx kv.Tx) error {
		return attrib.RecordDeclaredEdit(tx, asc, h.key("docs/d.md"), ag.ID, "qwen2.5-coder", time.Minute)
	})
	h.write("docs/d.md", "# d\n")
	wantAttribution(t, h.expect("file.created docs/d.md")[0], audit.ActorAgent, ag.ID, FromDeclared)

	// Two agents claim the file: no guess.
	other, osc := agenttest.Agent(t, ctx, sc, "reviewer", agent.Registration{Client: "cursor"})
	record(func(tx kv.Tx) error {
		return attrib.RecordDeclaredEdit(tx, osc, h.key("src/c.go"), other.ID, "", time.Minute)
	})
	h.write("src/c.go", "package src\n\n// two claims\n")
	c = h.expect("file.modified src/c.go")[0]
	wantAttribution(t, c, audit.ActorUnknown, "", FromNothing)
	if !strings.Contains(c.Attribution.Evidence, "2 agents") {
		t.Errorf("evidence %q does not say two agents claim it", c.Attribution.Evidence)
	}

	// 5: nothing explains the change: unknown, never human.
	h.write("notes.txt", "who?\n")
	c = h.expect("file.created notes.txt")[0]
	wantAttribution(t, c, audit.ActorUnknown, "", FromNothing)

	// Deleting the agent-written, renamed file: the lease-free path has no evidence.
	must(t, os.Remove(h.path("notes.txt")))
	wantAttribution(t, h.expect("file.deleted notes.txt")[0], audit.ActorUnknown, "", FromNothing)
}

// TestIdentifyTools: the registry knows at least 20 tools and recognises
// them as they are really started.
func TestIdentifyTools(t *testing.T) {
	if len(KnownTools) < 20 {
		t.Errorf("%d known tools, want at least 20", len(KnownTools))
	}
	ids := map[string]bool{}
	for _, tl := range KnownTools {
		if ids[tl.ID] {
			t.Errorf("duplicate tool id %q", tl.ID)
		}
		ids[tl.ID] = true
	}
	tests := []struct {
		comm string
		argv []string
		want string
	}{
		{"claude", []string{"claude"}, "claude-code"},
		{"node", []string{"node", "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js"}, "claude-code"},
		{"python3", []string{"/usr/bin/python3", "/home/a/.local/bin/aider", "--model", "x"}, "aider"},
		{"python3", []string{"python3", "-m", "aider"}, "aider"},
		{"node", []string{"node", "/usr/local/bin/codex"}, "codex"},
		{"node", []string{"node", "/x/node_modules/@google/gemini-cli/dist/index.js"}, "gemini-cli"},
		{"cursor-agent", []string{"cursor-agent"}, "cursor"},
		{"goose", []string{"goose", "session"}, "goose"},
		{"opencode", []string{"opencode"}, "opencode"},
		{"code", []string{"/usr/share/code/code", "--type=extensionHost"}, ""},
		{"bash", []string{"bash"}, ""},
		{"vim", []string{"vim", "aider.txt"}, ""},
	}
	for _, tt := range tests {
		got := ""
		if tl := identify(KnownTools, tt.comm, tt.argv); tl != nil {
			got = tl.ID
		}
		if got != tt.want {
			t.Errorf("identify(%q, %q) = %q, want %q", tt.comm, tt.argv, got, tt.want)
		}
	}
}
