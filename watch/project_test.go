package watch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/tenant"
)

// TestChangesNameTheirSession: a change explained by an agent's write
// recorded in a session, or by an IDE save in a session, is filed under
// that session, with its project and relative path; each session's
// summary lists exactly its files.
func TestChangesNameTheirSession(t *testing.T) {
	s, _ := agenttest.Open(t)
	sc := agenttest.Scope(t, s, "acme", "ada")
	ctx := context.Background()
	h := startWatchScope(t, sc, t.TempDir(), Config{Tools: []Tool{}, FormatWindow: -1})
	ag, asc := agenttest.Agent(t, ctx, sc, "coder", agent.Registration{Client: "lmstudio", Model: "qwen2.5-coder"})

	// The agent works in a subdirectory of the project, the human names it.
	must(t, os.MkdirAll(h.path("src"), 0o755))
	agentSession, err := session.Start(ctx, asc, session.Spec{Title: "agent work", Workspace: h.path("src")})
	must(t, err)
	humanSession, err := session.Start(ctx, sc, session.Spec{Title: "human work", Project: h.project})
	must(t, err)
	if agentSession.Project != h.project || humanSession.Project != h.project {
		t.Fatalf("sessions in projects %s and %s, want %s", agentSession.Project, humanSession.Project, h.project)
	}
	record := func(fn func(tx kv.Tx) error) {
		t.Helper()
		if _, err := s.Update(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	agentWrite := func(rel, content string) {
		t.Helper()
		record(func(tx kv.Tx) error {
			return attrib.RecordAgentWrite(tx, asc, h.key(rel), attrib.Hash([]byte(content)), ag.ID, "qwen2.5-coder", agentSession.ID)
		})
		h.write(rel, content)
	}
	stored := func(c Change, sessionID string) audit.Event {
		t.Helper()
		ev, err := sc.Log().Get(ctx, c.ID)
		must(t, err)
		if ev.Project != h.project || ev.Path != c.Rel || ev.Session != sessionID || c.Session != sessionID || ev.Attrs["abs"] != h.path(c.Rel) {
			t.Errorf("%s %s stored as project %q path %q session %q (change's %q) abs %v, want %s %s %s",
				c.Kind, c.Rel, ev.Project, ev.Path, ev.Session, c.Session, ev.Attrs["abs"], h.project, c.Rel, sessionID)
		}
		return ev
	}

	agentWrite("src/a.go", "package src\n")
	stored(h.expect("file.created src/a.go")[0], agentSession.ID)
	agentWrite("src/a.go", "package src\n\nfunc A() {}\n")
	c := h.expect("file.modified src/a.go")[0]
	wantAttribution(t, c, audit.ActorAgent, ag.ID, FromAgentWrite)
	stored(c, agentSession.ID)

	// The human's IDE save in their session.
	saved := "# Notes\n"
	record(func(tx kv.Tx) error {
		return attrib.RecordIDESave(tx, sc, h.key("docs/notes.md"), attrib.Hash([]byte(saved)), humanSession.ID)
	})
	h.write("docs/notes.md", saved)
	c = h.expect("file.created docs/notes.md")[0]
	wantAttribution(t, c, audit.ActorHuman, "", FromIDESave)
	stored(c, humanSession.ID)

	// A change nothing explains is in no session.
	h.write("stray.txt", "?\n")
	stored(h.expect("file.created stray.txt")[0], "")

	for _, tc := range []struct {
		id    string
		files []string
	}{{agentSession.ID, []string{"src/a.go"}}, {humanSession.ID, []string{"docs/notes.md"}}} {
		rep, err := session.Summary(ctx, sc, tc.id)
		must(t, err)
		var got []string
		for _, f := range rep.Files {
			if f.Project != h.project {
				t.Errorf("session %s: file %+v not in project %s", tc.id, f, h.project)
			}
			got = append(got, f.Path)
		}
		if !reflect.DeepEqual(got, tc.files) {
			t.Errorf("session %s lists files %q, want %q", tc.id, got, tc.files)
		}
	}
	rep, err := session.Summary(ctx, sc, agentSession.ID)
	must(t, err)
	if f := rep.Files[0]; f.Events != 2 || f.ByKind["file.created"] != 1 || f.ByKind["file.modified"] != 1 {
		t.Errorf("agent session's file activity %+v, want one creation and one modification", f)
	}
}

// TestConfigSessionFallback: Config.Session files the events no evidence
// names a session for; evidence naming one wins.
func TestConfigSessionFallback(t *testing.T) {
	s, _ := agenttest.Open(t)
	sc := agenttest.Scope(t, s, "acme", "ada")
	ctx := context.Background()
	root := t.TempDir()
	fallback, err := session.Start(ctx, sc, session.Spec{Title: "watching", Workspace: root})
	must(t, err)
	other, err := session.Start(ctx, sc, session.Spec{Title: "editing", Workspace: root})
	must(t, err)
	h := startWatchScope(t, sc, root, Config{Tools: []Tool{}, Session: fallback.ID})
	if h.project != fallback.Project {
		t.Fatalf("watching project %s, the session's is %s", h.project, fallback.Project)
	}
	h.write("a.txt", "a\n")
	if c := h.expect("file.created a.txt")[0]; c.Session != fallback.ID {
		t.Errorf("unexplained change in session %q, want the configured %s", c.Session, fallback.ID)
	}
	if _, err := s.Update(ctx, func(tx kv.Tx) error {
		return attrib.RecordIDESave(tx, sc, h.key("b.txt"), attrib.Hash([]byte("b\n")), other.ID)
	}); err != nil {
		t.Fatal(err)
	}
	h.write("b.txt", "b\n")
	if c := h.expect("file.created b.txt")[0]; c.Session != other.ID {
		t.Errorf("saved change in session %q, want the save's %s", c.Session, other.ID)
	}
}

// TestOneKeyPerFile: a symlinked alias of a root and a second checkout of
// the same project watch as the project's roots, and their files have one
// key each: an agent's write recorded for the key, and its lease, explain
// a change in either checkout; the same relative path in another project
// is another file.
func TestOneKeyPerFile(t *testing.T) {
	s, _ := agenttest.Open(t)
	sc := agenttest.Scope(t, s, "acme", "ada")
	ctx := context.Background()
	first, second, third := realDir(t), realDir(t), realDir(t)
	alias := filepath.Join(t.TempDir(), "alias")
	must(t, os.Symlink(first, alias))
	app, err := project.Register(ctx, sc, "app", first, project.RootOptions{})
	must(t, err)
	if _, err := project.AddRoot(ctx, sc, "app", second, project.RootOptions{}); err != nil {
		t.Fatal(err)
	}
	other, err := project.Register(ctx, sc, "other", third, project.RootOptions{})
	must(t, err)

	roots, found, err := Register(ctx, sc, []string{alias, second, filepath.Join(second, ".")}, project.RootOptions{})
	must(t, err)
	id := app.Project.ID
	if want := []Root{{Project: id, Dir: first}, {Project: id, Dir: second}}; !reflect.DeepEqual(roots, want) {
		t.Fatalf("roots %+v, want %+v", roots, want)
	}
	if found[0].Project != "app" || found[0].Rel != "." || found[0].Dir != alias {
		t.Errorf("found %+v", found[0])
	}
	h := startWatchScope(t, sc, first, Config{Roots: roots, Tools: []Tool{}, FormatWindow: -1})

	ag, asc := agenttest.Agent(t, ctx, sc, "coder", agent.Registration{Client: "lmstudio", Model: "qwen"})
	se, err := session.Start(ctx, asc, session.Spec{Title: "two checkouts", Workspace: alias})
	must(t, err)
	if se.Project != id {
		t.Fatalf("a session in the alias is in project %s, want %s", se.Project, id)
	}
	content := "package x\n"
	key := project.File{Project: id, Rel: "x.go"}.String()
	if _, err := s.Update(ctx, func(tx kv.Tx) error {
		return attrib.RecordAgentWrite(tx, asc, key, attrib.Hash([]byte(content)), ag.ID, "qwen", se.ID)
	}); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{second, alias} {
		must(t, os.WriteFile(filepath.Join(dir, "x.go"), []byte(content), 0o644))
		c := h.expect("file.created x.go")[0]
		wantAttribution(t, c, audit.ActorAgent, ag.ID, FromAgentWrite)
		if c.Project != id || c.Session != se.ID {
			t.Errorf("x.go written in %s: project %s session %s, want %s %s", dir, c.Project, c.Session, id, se.ID)
		}
	}

	// Leases on src/** in both projects: only app's explains app's file.
	if _, err := lease.Acquire(ctx, asc, lease.Request{Resource: project.File{Project: id, Rel: "src/**"}.String()}); err != nil {
		t.Fatal(err)
	}
	_, osc := agenttest.Agent(t, ctx, sc, "elsewhere", agent.Registration{Client: "cursor"})
	if _, err := lease.Acquire(ctx, osc, lease.Request{Resource: project.File{Project: other.Project.ID, Rel: "src/**"}.String()}); err != nil {
		t.Fatal(err)
	}
	must(t, os.MkdirAll(filepath.Join(second, "src"), 0o755))
	must(t, os.WriteFile(filepath.Join(second, "src", "z.go"), []byte("package src\n"), 0o644))
	wantAttribution(t, h.expect("file.created src/z.go")[0], audit.ActorAgent, ag.ID, FromLease)
}

// realDir returns a new temporary directory by its real path.
func realDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	must(t, err)
	return d
}

// TestRegisterRefusesMembers: a member cannot make a directory a project
// root to watch it; the error names the tenant's projects. A registered
// root it may watch.
func TestRegisterRefusesMembers(t *testing.T) {
	s, _ := agenttest.Open(t)
	ctx := context.Background()
	member := agenttest.RoleScope(t, s, "acme", "bob", tenant.RoleMember)
	dir := realDir(t)
	_, _, err := Register(ctx, member, []string{dir}, project.RootOptions{})
	if err == nil || !errors.Is(err, project.ErrOutside) {
		t.Fatalf("a member registering %s: %v, want ErrOutside", dir, err)
	}
	admin := agenttest.Scope(t, s, "acme", "admin")
	if _, err := project.Register(ctx, admin, "web", dir, project.RootOptions{}); err != nil {
		t.Fatal(err)
	}
	roots, _, err := Register(ctx, member, []string{filepath.Join(dir, "sub")}, project.RootOptions{})
	if err != nil || len(roots) != 1 || roots[0].Dir != dir {
		t.Fatalf("a member watching a registered project: %+v, %v", roots, err)
	}
	// The store may not lie in a new root.
	store := realDir(t)
	_, _, err = Register(ctx, admin, []string{store}, project.RootOptions{Protected: []string{filepath.Join(store, "coditect.db")}})
	if !errors.Is(err, tenant.ErrForbidden) {
		t.Fatalf("registering the store's directory: %v, want ErrForbidden", err)
	}
}
