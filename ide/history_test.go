package ide_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/coditect/coditect/ide"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/audit"
)

// TestFileHistoryNamesAuthors: coditect.file.history gives each event a
// who that names its author for people, an agent as "builder (model)"
// and a human as a human, while the event keeps the agent's id.
func TestFileHistoryNamesAuthors(t *testing.T) {
	sc := scope(t)
	ctx := context.Background()
	ag, agentSc := agenttest.Agent(t, ctx, sc, "builder", agent.Registration{Name: "builder", Client: "lmstudio", Model: "qwen2.5-coder-7b"})
	c := start(t, sc, ide.Options{})
	c.initialize(nil)
	f := filepath.Join(c.root, "a.go")
	if err := os.WriteFile(f, []byte("package a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pl := place(t, sc, f)
	byAgent := agentSc.Event("file.modified", "modified a.go")
	byAgent.Project, byAgent.Path = pl.Project.ID, "a.go"
	byAgent.Attribution = &audit.Attribution{Actor: audit.ActorAgent, AgentID: ag.ID, Model: "qwen2.5-coder-7b", Evidence: "agent_write", Confidence: 1}
	byHuman := sc.Event("file.modified", "modified a.go")
	byHuman.Project, byHuman.Path = pl.Project.ID, "a.go"
	byHuman.Attribution = &audit.Attribution{Actor: audit.ActorHuman, Evidence: "ide_save", Confidence: 1}
	if _, err := sc.Log().Append(ctx, byAgent, byHuman); err != nil {
		t.Fatal(err)
	}
	var res struct {
		Events []struct {
			audit.Event
			Who string `json:"who"`
		} `json:"events"`
	}
	c.mustCall("workspace/executeCommand", map[string]any{"command": "coditect.file.history", "arguments": []any{map[string]string{"uri": fileURI(f)}}}, &res)
	if len(res.Events) != 2 {
		t.Fatalf("history: %+v", res.Events)
	}
	human, agentEv := res.Events[0], res.Events[1]
	if agentEv.Who != "agent builder (qwen2.5-coder-7b)" || agentEv.Attribution == nil || agentEv.Attribution.AgentID != ag.ID {
		t.Errorf("the agent's change: who %q, attribution %+v", agentEv.Who, agentEv.Attribution)
	}
	if want := sc.Principal().User + " (human)"; human.Who != want {
		t.Errorf("the human's change: who %q, want %q", human.Who, want)
	}
}

// TestFileHistoryReturnsDiffs: an agent's change through the files tools
// comes back with the diff its tool.called event records; an event
// without one has none.
func TestFileHistoryReturnsDiffs(t *testing.T) {
	sc := scope(t)
	ctx := context.Background()
	_, agentSc := agenttest.Agent(t, ctx, sc, "builder", agent.Registration{Name: "builder", Client: "lmstudio", Model: "qwen2.5-coder-7b"})
	c := start(t, sc, ide.Options{})
	c.initialize(nil)
	f := filepath.Join(c.root, "a.go")
	if err := os.WriteFile(f, []byte("package b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pl := place(t, sc, f)
	const diff = "--- a/a.go\n+++ b/a.go\n@@ -1 +1 @@\n-package a\n+package b\n"
	call := agentSc.Event("tool.called", "fs_write ok in 2.0 ms")
	call.Project, call.Path = pl.Project.ID, "a.go"
	call.Attrs = map[string]any{"tool": "fs_write", "diff": diff, "diff_added": 1, "diff_removed": 1}
	watched := agentSc.Event("file.modified", "modified a.go")
	watched.Project, watched.Path = pl.Project.ID, "a.go"
	if _, err := sc.Log().Append(ctx, call, watched); err != nil {
		t.Fatal(err)
	}
	var res struct {
		Events []struct {
			Kind string `json:"kind"`
			Diff string `json:"diff"`
		} `json:"events"`
	}
	c.mustCall("workspace/executeCommand", map[string]any{"command": "coditect.file.history", "arguments": []any{map[string]string{"uri": fileURI(f)}}}, &res)
	if len(res.Events) != 2 || res.Events[1].Kind != "tool.called" || res.Events[1].Diff != diff || res.Events[0].Diff != "" {
		t.Errorf("history: %+v", res.Events)
	}
}
