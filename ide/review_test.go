package ide_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coditect/coditect/ide"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/review"
	"github.com/coditect/coditect/storage/tenant"
)

// propose makes an agent's edit of rel (from base to neu) a proposal
// under a policy covering it, as the files tools do.
func propose(t *testing.T, sc, agentSc *tenant.Scope, projectID, rel, base, neu string) review.Proposal {
	t.Helper()
	ctx := context.Background()
	if _, err := review.SetPolicy(ctx, sc, projectID, []review.Rule{{Glob: "src/auth/**"}}); err != nil {
		t.Fatal(err)
	}
	l, err := lease.Acquire(ctx, agentSc, lease.Request{Resource: "@" + projectID + "/" + rel})
	if err != nil {
		t.Fatal(err)
	}
	p, err := review.Propose(ctx, agentSc, review.Spec{Kind: review.Edit, Project: projectID, Path: rel, Agent: agentSc.Principal().Agent,
		Base: []byte(base), BaseHash: attrib.Hash([]byte(base)), BaseKnown: true, New: []byte(neu), Diff: "-" + base + "+" + neu,
		Leases: []review.Held{{Resource: l.Resource, Token: l.Token}}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReviewCommands: a proposal reaches the editor as a coditect/event of
// kind review.proposed; the editor lists and shows it (before, after and
// the file's URI) and accepts it, which writes the file; a viewer may not
// decide, and another tenant's editor neither sees nor decides it.
func TestReviewCommands(t *testing.T) {
	ctx := context.Background()
	s, _ := agenttest.Open(t)
	sc := agenttest.Scope(t, s, "acme", "ada")
	_, agentSc := agenttest.Agent(t, ctx, sc, "builder", agent.Registration{Name: "builder"})
	c := start(t, sc, ide.Options{})
	c.initialize(nil)
	f := filepath.Join(c.root, "src", "auth", "login.go")
	if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, f, "v1\n")
	pid := place(t, sc, f).Project.ID
	c.sync()
	p := propose(t, sc, agentSc, pid, "src/auth/login.go", "v1\n", "v2\n")

	c.note(ide.EventMethod, func(raw json.RawMessage) bool {
		var ev struct {
			Kind  string
			Attrs map[string]any
		}
		return json.Unmarshal(raw, &ev) == nil && ev.Kind == review.KindProposed && ev.Attrs["review"] == p.ID
	})
	var list []map[string]any
	c.mustCall("workspace/executeCommand", command("coditect.review.list", map[string]any{}), &list)
	if len(list) != 1 || list[0]["id"] != p.ID || list[0]["kind"] != "edit" || list[0]["agent"] != p.Agent || list[0]["path"] != "src/auth/login.go" || list[0]["diff"] == "" {
		t.Fatalf("review.list: %v", list)
	}
	var shown map[string]any
	c.mustCall("workspace/executeCommand", command("coditect.review.show", map[string]any{"id": p.ID}), &shown)
	if shown["before"] != "v1\n" || shown["after"] != "v2\n" || shown["uri"] != fileURI(f) {
		t.Fatalf("review.show: %v", shown)
	}

	// A viewer may not decide; another tenant sees nothing of it.
	viewer := start(t, agenttest.RoleScope(t, s, "acme", "vic", tenant.RoleViewer), ide.Options{})
	viewer.initialize(nil)
	for _, cmd := range []map[string]any{
		command("coditect.review.accept", map[string]any{"id": p.ID}),
		command("coditect.review.reject", map[string]any{"id": p.ID, "reason": "no"}),
	} {
		if got := class(t, viewer.call("workspace/executeCommand", cmd, nil)); got != "forbidden" {
			t.Errorf("viewer %v: class %q", cmd["command"], got)
		}
	}
	other := start(t, agenttest.Scope(t, s, "globex", "gina"), ide.Options{})
	other.initialize(nil)
	var none []map[string]any
	other.mustCall("workspace/executeCommand", command("coditect.review.list", map[string]any{}), &none)
	if len(none) != 0 {
		t.Errorf("another tenant lists %v", none)
	}
	for _, name := range []string{"coditect.review.show", "coditect.review.accept", "coditect.review.reject"} {
		if got := class(t, other.call("workspace/executeCommand", command(name, map[string]any{"id": p.ID, "reason": "x"}), nil)); got != "not_found" {
			t.Errorf("another tenant's %s: class %q", name, got)
		}
	}
	if got := class(t, c.call("workspace/executeCommand", command("coditect.review.accept", map[string]any{}), nil)); got != "invalid" {
		t.Errorf("accept without an id: class %q", got)
	}
	if b, _ := os.ReadFile(f); string(b) != "v1\n" {
		t.Fatalf("refused decisions changed the file: %q", b)
	}

	var accepted map[string]any
	c.mustCall("workspace/executeCommand", command("coditect.review.accept", map[string]any{"id": p.ID}), &accepted)
	if b, _ := os.ReadFile(f); string(b) != "v2\n" || accepted["state"] != "accepted" || accepted["decided_by"] != "ada" {
		t.Fatalf("after accept: %q %v", b, accepted)
	}
	if got := class(t, c.call("workspace/executeCommand", command("coditect.review.reject", map[string]any{"id": p.ID, "reason": "late"}), nil)); got != "conflict" {
		t.Errorf("rejecting an accepted proposal: class %q", got)
	}
	if ev := lastEvent(t, sc, review.KindAccepted); ev.Attrs["approved_by"] != "ada" || ev.Attribution == nil || ev.Attribution.AgentID != p.Agent {
		t.Errorf("review.accepted: %+v", ev)
	}

	// The file changes under a pending proposal: accepting is a conflict
	// that says why, and nothing is written.
	p = propose(t, sc, agentSc, pid, "src/auth/login.go", "v2\n", "v3\n")
	writeFile(t, f, "the human's v3\n")
	err := c.call("workspace/executeCommand", command("coditect.review.accept", map[string]any{"id": p.ID}), nil)
	if got := class(t, err); got != "conflict" || !strings.Contains(err.Error(), "changed since") {
		t.Errorf("accept over a changed file: class %q (%v)", got, err)
	}
	if b, _ := os.ReadFile(f); string(b) != "the human's v3\n" {
		t.Fatalf("a stale accept wrote %q", b)
	}
}
