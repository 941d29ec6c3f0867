package review_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/errclass"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/review"
	"github.com/coditect/coditect/storage/tenant"
)

func TestRules(t *testing.T) {
	p := review.Policy{Rules: []review.Rule{{Glob: "src/auth/**"}, {Glob: "docs/*.md", Agents: []string{"writer", "ag_1"}}}}
	for _, c := range []struct {
		rel, id, name string
		want          bool
	}{
		{"src/auth/a.go", "ag_9", "builder", true},
		{"src/auth/x/y/z.go", "ag_9", "", true},
		{"src/authz/a.go", "ag_9", "builder", false},
		{"src/a.go", "ag_9", "builder", false},
		{"docs/a.md", "ag_9", "builder", false},
		{"docs/a.md", "ag_9", "writer", true},
		{"docs/a.md", "ag_1", "", true},
		{"docs/x/a.md", "ag_1", "", false},
	} {
		if _, got := p.Covers(c.rel, c.id, c.name); got != c.want {
			t.Errorf("Covers(%q, %q, %q) = %v", c.rel, c.id, c.name, got)
		}
	}
}

// world is a tenant acme with a project rooted in a directory, its admin,
// a member, a viewer, an agent, and another tenant's admin.
type world struct {
	admin, member, viewer, agentSc, other *tenant.Scope
	project, root                         string
}

func newWorld(t *testing.T) world {
	t.Helper()
	ctx := context.Background()
	s, _ := agenttest.Open(t)
	w := world{
		admin:  agenttest.RoleScope(t, s, "acme", "ada", tenant.RoleAdmin),
		member: agenttest.RoleScope(t, s, "acme", "max", tenant.RoleMember),
		viewer: agenttest.RoleScope(t, s, "acme", "vic", tenant.RoleViewer),
		other:  agenttest.RoleScope(t, s, "globex", "gina", tenant.RoleAdmin),
	}
	_, w.agentSc = agenttest.Agent(t, ctx, w.member, "builder", agent.Registration{Name: "builder", Model: "m"})
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pl, err := project.Register(ctx, w.admin, "app", root, project.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.project, w.root = pl.Project.ID, pl.Root
	return w
}

// propose writes rel with base and proposes new content for it.
func (w world) propose(t *testing.T, rel string, base, neu []byte) review.Proposal {
	t.Helper()
	ctx := context.Background()
	f := filepath.Join(w.root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, base, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := lease.Acquire(ctx, w.agentSc, lease.Request{Resource: project.File{Project: w.project, Rel: rel}.String()})
	if err != nil {
		t.Fatal(err)
	}
	p, err := review.Propose(ctx, w.agentSc, review.Spec{Kind: review.Write, Project: w.project, Path: rel, Agent: w.agentSc.Principal().Agent, AgentName: "builder",
		Base: base, BaseHash: attrib.Hash(base), BaseKnown: true, New: neu, Diff: "d", Leases: []review.Held{{Resource: l.Resource, Token: l.Token, Taken: true}}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func classOf(err error) string {
	if c := errclass.Of(err); c != nil {
		return c.Name()
	}
	return "none"
}

// TestPolicyManagement: globs are checked; only an admin sets or clears
// a policy, and each change is audited; another tenant cannot read or
// change it.
func TestPolicyManagement(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	for _, g := range []string{"", "/etc/**", "@pr_x/a", "a/../b", "./a", "src/a**", "src/[a", `a\b`, "a/"} {
		if _, err := review.SetPolicy(ctx, w.admin, w.project, []review.Rule{{Glob: g}}); !errors.Is(err, review.ErrInvalid) {
			t.Errorf("glob %q: %v", g, err)
		}
	}
	for _, sc := range []*tenant.Scope{w.member, w.viewer} {
		if _, err := review.SetPolicy(ctx, sc, w.project, []review.Rule{{Glob: "**"}}); classOf(err) != "forbidden" {
			t.Errorf("%s sets a policy: %v", sc.Principal().Role, err)
		}
	}
	p, err := review.SetPolicy(ctx, w.admin, "app", []review.Rule{{Glob: "src/auth/**", Agents: []string{"builder", "builder"}}})
	if err != nil || p.Project != w.project || len(p.Rules[0].Agents) != 1 || p.UpdatedBy != "ada" {
		t.Fatalf("set: %+v %v", p, err)
	}
	if got, err := review.GetPolicy(ctx, w.viewer, w.project); err != nil || len(got.Rules) != 1 {
		t.Fatalf("the viewer reads %+v %v", got, err)
	}
	if _, err := review.GetPolicy(ctx, w.other, w.project); classOf(err) != "not_found" {
		t.Errorf("another tenant reads the policy: %v", err)
	}
	if _, err := review.SetPolicy(ctx, w.other, w.project, nil); classOf(err) != "not_found" {
		t.Errorf("another tenant clears the policy: %v", err)
	}
	if _, err := review.ClearPolicy(ctx, w.admin, w.project); err != nil {
		t.Fatal(err)
	}
	page, err := w.admin.Log().Query(ctx, audit.Query{Filter: audit.Filter{Kind: review.KindPolicySet}})
	if err != nil || len(page.Events) != 2 || page.Events[0].User != "ada" || !strings.Contains(page.Events[1].Summary, "cleared") {
		t.Fatalf("policy events: %+v %v", page.Events, err)
	}
}

// TestDecisions: roles, tenants, a reason, a lost lease and a changed
// file, and contents larger than one stored value.
func TestDecisions(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	big := bytes.Repeat([]byte("0123456789abcdef\n"), 20_000) // 340 kB: four chunks
	p := w.propose(t, "src/auth/big.txt", []byte("old\n"), big)

	if _, err := review.Accept(ctx, w.viewer, p.ID); classOf(err) != "forbidden" {
		t.Errorf("viewer accepts: %v", err)
	}
	if _, err := review.Reject(ctx, w.viewer, p.ID, "no"); classOf(err) != "forbidden" {
		t.Errorf("viewer rejects: %v", err)
	}
	for _, f := range []func() error{
		func() error { _, err := review.Get(ctx, w.other, p.ID); return err },
		func() error { _, err := review.Accept(ctx, w.other, p.ID); return err },
		func() error { _, err := review.Reject(ctx, w.other, p.ID, "x"); return err },
	} {
		if err := f(); classOf(err) != "not_found" {
			t.Errorf("another tenant: %v", err)
		}
	}
	if ps, err := review.List(ctx, w.other, review.Filter{All: true}); err != nil || len(ps) != 0 {
		t.Errorf("another tenant lists %+v %v", ps, err)
	}
	if _, err := review.Reject(ctx, w.member, p.ID, "  "); classOf(err) != "invalid" {
		t.Errorf("a blank reason: %v", err)
	}
	// A second proposal of the same file is refused while one is pending.
	if _, err := review.Propose(ctx, w.agentSc, review.Spec{Kind: review.Write, Project: w.project, Path: p.Path, Agent: p.Agent, New: []byte("x"), Leases: p.Leases}); !errors.Is(err, review.ErrPending) {
		t.Errorf("a second proposal: %v", err)
	}
	_, before, after, err := review.Contents(ctx, w.viewer, p.ID)
	if err != nil || string(before) != "old\n" || !bytes.Equal(after, big) {
		t.Fatalf("contents: %d %d bytes, %v", len(before), len(after), err)
	}
	if _, err := review.Accept(ctx, w.member, p.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(w.root, "src/auth/big.txt")); !bytes.Equal(got, big) {
		t.Fatalf("accepted content: %d bytes", len(got))
	}
	recs, err := attrib.Get(ctx, w.admin, p.File().String())
	if err != nil || len(recs) == 0 || recs[0].Agent != p.Agent || recs[0].Hash != attrib.Hash(big) {
		t.Errorf("evidence for the watcher: %+v %v", recs, err)
	}

	// The proposal's lease force-released and taken by another agent:
	// accepting is a conflict and writes nothing.
	p = w.propose(t, "src/auth/a.go", []byte("a1\n"), []byte("a2\n"))
	if _, err := lease.ForceRelease(ctx, w.admin, p.Leases[0].Resource, "test"); err != nil {
		t.Fatal(err)
	}
	_, peer := agenttest.Agent(t, ctx, w.member, "peer", agent.Registration{Name: "peer"})
	pl, err := lease.Acquire(ctx, peer, lease.Request{Resource: p.Leases[0].Resource})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := review.Accept(ctx, w.member, p.ID); !errors.Is(err, review.ErrStale) || !strings.Contains(err.Error(), "lease on") {
		t.Errorf("accept while another holds the file: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(w.root, "src/auth/a.go")); string(got) != "a1\n" {
		t.Fatalf("a refused accept wrote %q", got)
	}
	if ps, _ := review.List(ctx, w.member, review.Filter{Project: "app"}); len(ps) != 1 || ps[0].ID != p.ID {
		t.Errorf("pending after the refused accept: %+v", ps)
	}
	if _, err := review.Reject(ctx, w.member, p.ID, "lost its lease"); err != nil {
		t.Fatal(err)
	}
	if ps, _ := review.List(ctx, w.member, review.Filter{}); len(ps) != 0 {
		t.Errorf("pending after the reject: %+v", ps)
	}
	if ps, _ := review.List(ctx, w.member, review.Filter{All: true}); len(ps) != 2 || ps[0].State != review.Rejected || ps[0].Reason != "lost its lease" {
		t.Errorf("all proposals: %+v", ps)
	}
	if err := lease.Release(ctx, peer, pl.Resource, pl.Token); err != nil {
		t.Fatal(err)
	}

	// A lease lost while nobody took the file (swept while the agent was
	// away): accepting takes it again for the agent and applies.
	p = w.propose(t, "src/auth/a.go", []byte("a1\n"), []byte("a3\n"))
	if _, err := lease.ForceRelease(ctx, w.admin, p.Leases[0].Resource, "swept"); err != nil {
		t.Fatal(err)
	}
	if _, err := review.Accept(ctx, w.member, p.ID); err != nil {
		t.Fatalf("accept after the lease was lost, the file free: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(w.root, "src/auth/a.go")); string(got) != "a3\n" {
		t.Fatalf("after accept: %q", got)
	}
	if hs, _ := lease.Holders(ctx, w.admin, p.Leases[0].Resource); len(hs) != 0 {
		t.Errorf("the lease taken again for the accept is still held: %+v", hs)
	}
}
