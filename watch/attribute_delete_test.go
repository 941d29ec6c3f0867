package watch

import (
	"context"
	"os"
	"testing"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
)

// TestAttributeAgentDelete: a deletion the files toolset recorded
// (fs_delete, and fs_move's old path) is the agent's, with certainty and
// its session; a newer record (a human's save) or a deletion record that
// reached the path through a rename does not explain a deletion.
func TestAttributeAgentDelete(t *testing.T) {
	s, _ := agenttest.Open(t)
	sc := agenttest.Scope(t, s, "acme", "ada")
	ctx := context.Background()
	h := startWatchScope(t, sc, t.TempDir(), Config{Tools: []Tool{}})
	ag, asc := agenttest.Agent(t, ctx, sc, "coder", agent.Registration{Client: "lmstudio", Model: "qwen2.5-coder"})
	record := func(fn func(tx kv.Tx) error) {
		t.Helper()
		if _, err := s.Update(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}

	// fs_delete: the record, then the removal.
	h.write("a.go", "package a\n")
	h.expect("file.created a.go")
	record(func(tx kv.Tx) error {
		return attrib.RecordAgentDelete(tx, asc, h.key("a.go"), ag.ID, "qwen2.5-coder", "s-1")
	})
	must(t, os.Remove(h.path("a.go")))
	c := h.expect("file.deleted a.go")[0]
	wantAttribution(t, c, audit.ActorAgent, ag.ID, FromAgentDelete)
	if c.Attribution.Confidence != 1 || c.Attribution.Model != "qwen2.5-coder" || c.Session != "s-1" {
		t.Errorf("agent delete: %+v, session %q", c.Attribution, c.Session)
	}

	// The file comes back through the IDE; a later deletion is not the
	// agent's any more.
	const saved = "package a\n// back\n"
	record(func(tx kv.Tx) error {
		return attrib.RecordIDESave(tx, sc, h.key("a.go"), attrib.Hash([]byte(saved)), "")
	})
	h.write("a.go", saved)
	wantAttribution(t, h.expect("file.created a.go")[0], audit.ActorHuman, "", FromIDESave)
	must(t, os.Remove(h.path("a.go")))
	wantAttribution(t, h.expect("file.deleted a.go")[0], audit.ActorUnknown, "", FromNothing)

	// fs_move: the content's hash at the new path, a deletion at the old;
	// the rename is the agent's.
	const content = "package b\n"
	h.write("b.go", content)
	h.expect("file.created b.go")
	record(func(tx kv.Tx) error {
		if err := attrib.RecordAgentWrite(tx, asc, h.key("c.go"), attrib.Hash([]byte(content)), ag.ID, "qwen2.5-coder", "s-1"); err != nil {
			return err
		}
		return attrib.RecordAgentDelete(tx, asc, h.key("b.go"), ag.ID, "qwen2.5-coder", "s-1")
	})
	must(t, os.Rename(h.path("b.go"), h.path("c.go")))
	wantAttribution(t, h.expect("file.renamed c.go")[0], audit.ActorAgent, ag.ID, FromAgentWrite)
	// The deletion record moved with the rename; it does not make someone
	// else's deletion of the new path the agent's.
	must(t, os.Remove(h.path("c.go")))
	wantAttribution(t, h.expect("file.deleted c.go")[0], audit.ActorUnknown, "", FromNothing)
}
