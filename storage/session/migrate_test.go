package session_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/sqlite"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/task"
	"github.com/coditect/coditect/storage/tenant"
)

// testdata/prerelease.db is a store written by the release before projects
// (see testdata/README.md). What it holds:
const (
	fixtureRoot = "/tmp/coditect-prerelease" // its workspaces were under it
	fixtureWeb  = fixtureRoot + "/home/alice/src/webapp"
	// bob's member token in tenant acme
	fixtureBob   = "cdt_W1TEaeRZaargztUuaZvCx6TJGeSpmiie1dvQlQjmevk"
	fixtureAgent = "ag_06H4DN479XA8A1Z6Y0JYFAJPQG" // bob's agent (cline)
	fixtureTask  = "tk_06H4DN47MEZSWEBD2ZRP6TK6R4" // created and claimed by it
	// acme's sessions: alice's in the webapp (the watcher filed file
	// events under it; bob's agent joined), bob's agent's in a directory
	// inside it, carol's ended one elsewhere; globex's one.
	s1 = "01M93D8SKRE6YG3FT8XYTSK59Q"
	s2 = "01M93D91TTKJ0SKJZNH7CNNJ56"
	s3 = "01M93D91Z3ZS9DK8HQ95G1B7ZZ"
	s4 = "01M93D921XWQ2AWDC8C5C28M96"
)

// fixtureTime is when the fixture was written: the leases are live then.
var fixtureTime = time.Date(2026, 12, 5, 15, 31, 30, 0, time.UTC)

type fixture struct {
	t     *testing.T
	ctx   context.Context
	store kv.Store
	dir   *tenant.Directory
}

// openFixture opens a copy of the pre-release store.
func openFixture(t *testing.T) *fixture {
	t.Helper()
	for _, ws := range []string{fixtureWeb, fixtureRoot + "/srv"} {
		if _, err := os.Stat(ws); err == nil {
			t.Skipf("%s exists on this machine: the fixture's workspaces must not", ws)
		}
	}
	in, err := os.Open(filepath.Join("testdata", "prerelease.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	p := filepath.Join(t.TempDir(), "store.db")
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	s, err := sqlite.Open(ctx, p, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &fixture{t: t, ctx: ctx, store: s, dir: tenant.NewDirectory(s, "cli:test")}
}

func (f *fixture) operator(tenantID string) *tenant.Scope {
	f.t.Helper()
	sc, err := f.dir.Operator(f.ctx, tenantID)
	if err != nil {
		f.t.Fatal(err)
	}
	return sc
}

func (f *fixture) bob() *tenant.Scope {
	f.t.Helper()
	sc, err := f.dir.Authenticate(f.ctx, fixtureBob)
	if err != nil {
		f.t.Fatalf("the fixture's token: %v", err)
	}
	if p := sc.Principal(); p.Tenant != "acme" || p.User != "bob" || p.Role != tenant.RoleMember {
		f.t.Fatalf("the fixture's token is %+v", p)
	}
	return sc
}

func (f *fixture) get(sc *tenant.Scope, id string) session.Session {
	f.t.Helper()
	s, err := session.Get(f.ctx, sc, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fixture) unplaced(tenantID string) int {
	f.t.Helper()
	n, err := session.Unplaced(f.ctx, f.operator(tenantID))
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

func (f *fixture) dump() string {
	f.t.Helper()
	var b strings.Builder
	if err := f.store.View(f.ctx, func(tx kv.ReadTx) error {
		b.Reset()
		it := tx.GetRange(nil, []byte{0xff}, kv.RangeOptions{})
		for it.Next() {
			fmt.Fprintf(&b, "%x=%x\n", it.KeyValue().Key, it.KeyValue().Value)
		}
		return it.Err()
	}); err != nil {
		f.t.Fatal(err)
	}
	return b.String()
}

// relocate moves an old session's workspace to ws, as if it had been
// started there: its record keeps the old format, only the workspace and
// its index entry change.
func (f *fixture) relocate(tenantID, id, ws string) {
	f.t.Helper()
	sp, _ := keyspace.Tenant(tenantID)
	key, _ := sp.Session(id)
	if _, err := f.store.Update(f.ctx, func(tx kv.Tx) error {
		b, err := tx.Get(key)
		if err != nil || b == nil {
			return fmt.Errorf("session %s: %q, %v", id, b, err)
		}
		var rec map[string]any
		if err := json.Unmarshal(b, &rec); err != nil {
			return err
		}
		if _, ok := rec["project"]; ok {
			return fmt.Errorf("session %s has a project already: %s", id, b)
		}
		old, _ := rec["workspace"].(string)
		rec["workspace"] = ws
		if b, err = json.Marshal(rec); err != nil {
			return err
		}
		tx.Set(key, b)
		oldEntry, _ := sp.SessionsByEntry(keyspace.SessionByWorkspace, old, id)
		newEntry, _ := sp.SessionsByEntry(keyspace.SessionByWorkspace, ws, id)
		tx.Clear(oldEntry)
		tx.Set(newEntry, nil)
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
}

// checkReadable reads everything the fixture holds besides sessions'
// projects: tenants, the token, sessions, their summaries, the audit log
// (file events by session and by their absolute paths), the task, the
// agent and the leases; and every tenant's log verifies.
func (f *fixture) checkReadable() {
	f.t.Helper()
	t, ctx := f.t, f.ctx
	ts, err := f.dir.ListTenants(ctx)
	if err != nil || len(ts) != 2 || ts[0].ID != "acme" || ts[0].Name != "Acme Corp" || ts[1].ID != "globex" {
		t.Fatalf("tenants: %+v, %v", ts, err)
	}
	bob := f.bob()
	p, err := session.List(ctx, bob, session.Query{})
	if err != nil || !slices.Equal(ids(p.Sessions), []string{s3, s2, s1}) {
		t.Fatalf("acme's sessions: %v, %v", ids(p.Sessions), err)
	}
	if s := f.get(bob, s1); s.Title != "fix the login redirect" || s.User != "alice" || s.State != session.Open || len(s.Participants) != 2 ||
		s.Participants[1].Agent != fixtureAgent {
		t.Fatalf("session 1: %+v", s)
	}
	if s := f.get(bob, s3); s.State != session.Ended || s.Outcome == nil || s.Outcome.Summary != "upgraded to 1.9" {
		t.Fatalf("session 3: %+v", s)
	}
	r, err := session.Summary(ctx, bob, s1)
	if err != nil || r.ByKind["file.modified"] != 1 || r.ByKind["file.created"] != 1 || r.ByKind["file.deleted"] != 1 || r.ByKind["file.renamed"] != 1 {
		t.Fatalf("summary of session 1: %+v, %v", r, err)
	}
	login := fixtureWeb + "/src/auth/login.go"
	for _, flt := range []audit.Filter{{Session: s1, Kind: "file.modified"}, {Path: login, Kind: "file.modified"}} {
		ev, err := bob.Log().Query(ctx, audit.Query{Filter: flt, Limit: 10})
		if err != nil || len(ev.Events) != 1 || ev.Events[0].Path != login || ev.Events[0].Project != "" || ev.Events[0].Attrs["rel"] != "src/auth/login.go" {
			t.Fatalf("file events %+v: %+v, %v", flt, ev.Events, err)
		}
	}
	tk, err := task.Get(ctx, bob, fixtureTask)
	if err != nil || tk.Title != "add a test for the login redirect" || tk.State != task.Claimed {
		t.Fatalf("task: %+v, %v", tk, err)
	}
	if a, err := agent.Get(ctx, bob, fixtureAgent); err != nil || a.Name != "cline" || a.User != "bob" {
		t.Fatalf("agent: %+v, %v", a, err)
	}
	hs, err := lease.List(agent.WithClock(ctx, func() time.Time { return fixtureTime }), bob, "")
	var res []string
	for _, h := range hs {
		res = append(res, h.Resource)
	}
	if err != nil || !slices.Contains(res, "main.go") || !slices.Contains(res, "src/auth/*.go") {
		t.Fatalf("leases: %v, %v", res, err)
	}
	reps, err := f.dir.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for id, r := range reps {
		if !r.OK() {
			t.Fatalf("tenant %s's log: %+v", id, r)
		}
	}
}

func ids(ss []session.Session) []string {
	out := []string{}
	for _, s := range ss {
		out = append(out, s.ID)
	}
	return out
}

// A store written before projects opens and reads as it did; its sessions
// have no project until the repair.
func TestPrereleaseStoreReads(t *testing.T) {
	f := openFixture(t)
	f.checkReadable()
	for _, id := range []string{s1, s2, s3} {
		if s := f.get(f.bob(), id); s.Project != "" || s.Dir != "" {
			t.Fatalf("session %s has project %q, dir %q before the repair", id, s.Project, s.Dir)
		}
	}
	if n := f.unplaced("acme"); n != 3 {
		t.Fatalf("acme: %d sessions without a project, want 3", n)
	}
	if n := f.unplaced("globex"); n != 1 {
		t.Fatalf("globex: %d sessions without a project, want 1", n)
	}
	// New work goes on beside the old: the local operator's new session
	// registers its workspace.
	alice, err := f.dir.Local(f.ctx, "acme", "alice")
	if err != nil {
		t.Fatal(err)
	}
	s, err := session.Start(f.ctx, alice, session.Spec{Title: "new", Workspace: t.TempDir()})
	if err != nil || s.Project == "" {
		t.Fatalf("a new session: %+v, %v", s, err)
	}
	if n := f.unplaced("acme"); n != 3 {
		t.Fatalf("acme: %d sessions without a project after a new one, want 3", n)
	}
}

// The repair on a machine where the fixture's workspaces are not (they
// were under /tmp/coditect-prerelease): each goes to the project named
// after it, without a root here; the one inside another goes to the outer
// one's project, at its relative path.
func TestAssignProjectsElsewhere(t *testing.T) {
	f := openFixture(t)
	op := f.operator("acme")
	a, err := session.AssignProjects(f.ctx, op, project.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Sessions != 3 || a.Assigned != 3 || len(a.Places) != 3 {
		t.Fatalf("assignment %+v", a)
	}
	web, err := project.Get(f.ctx, op, "webapp")
	if err != nil || len(web.Roots) != 0 {
		t.Fatalf("project webapp: %+v, %v", web, err)
	}
	infra, err := project.Get(f.ctx, op, "infra")
	if err != nil || len(infra.Roots) != 0 {
		t.Fatalf("project infra: %+v, %v", infra, err)
	}
	bob := f.bob()
	for _, w := range []struct {
		id, project, dir, ws string
	}{
		{s1, web.ID, ".", fixtureWeb},
		{s2, web.ID, "services/api", fixtureWeb + "/services/api"},
		{s3, infra.ID, ".", fixtureRoot + "/srv/build/infra"},
	} {
		if s := f.get(bob, w.id); s.Project != w.project || s.Dir != w.dir || s.Workspace != w.ws {
			t.Errorf("session %s: project %s, dir %q, workspace %s; want %s, %q, %s", w.id, s.Project, s.Dir, s.Workspace, w.project, w.dir, w.ws)
		}
	}
	for _, pl := range a.Places {
		if pl.Registered || !strings.Contains(pl.NoRoot, "not on this machine") || pl.Sessions != 1 {
			t.Errorf("placement %+v", pl)
		}
	}
	p, err := session.List(f.ctx, bob, session.Query{Filter: session.Filter{Project: web.ID}})
	if err != nil || !slices.Equal(ids(p.Sessions), []string{s2, s1}) {
		t.Fatalf("webapp's sessions: %v, %v", ids(p.Sessions), err)
	}
	if n := f.unplaced("acme"); n != 0 {
		t.Fatalf("%d sessions left without a project", n)
	}
	// Globex is another tenant: its session goes to its own project.
	g := f.operator("globex")
	if a, err := session.AssignProjects(f.ctx, g, project.RootOptions{}); err != nil || a.Assigned != 1 || a.Places[0].Project != "app" {
		t.Fatalf("globex: %+v, %v", a, err)
	}
	if ps, err := project.List(f.ctx, g); err != nil || len(ps) != 1 || f.get(g, s4).Project != ps[0].ID {
		t.Fatalf("globex's projects: %+v, %v", ps, err)
	}
	// Once is enough: a second run finds nothing and writes nothing.
	before := f.dump()
	if a, err := session.AssignProjects(f.ctx, op, project.RootOptions{}); err != nil || a.Sessions != 0 || len(a.Places) != 0 {
		t.Fatalf("second run: %+v, %v", a, err)
	}
	if before != f.dump() {
		t.Fatal("a second run wrote")
	}
	f.checkReadable()
}

// The repair where the workspaces are: an existing workspace becomes a
// project root, one inside it lands in its project, a missing one gets a
// project without a root; members then start sessions in them by name.
func TestAssignProjectsHere(t *testing.T) {
	f := openFixture(t)
	base, err := project.Canonical(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	web := filepath.Join(base, "src", "webapp")
	api := filepath.Join(web, "services", "api")
	if err := os.MkdirAll(api, 0o755); err != nil {
		t.Fatal(err)
	}
	f.relocate("acme", s1, web)
	f.relocate("acme", s2, api)
	f.relocate("acme", s3, filepath.Join(base, "srv", "infra")) // not created
	// A member may not repair.
	bob := f.bob()
	before := f.dump()
	if _, err := session.AssignProjects(f.ctx, bob, project.RootOptions{}); !errors.Is(err, tenant.ErrForbidden) {
		t.Fatalf("a member's repair: %v", err)
	}
	if before != f.dump() {
		t.Fatal("a refused repair wrote")
	}
	op := f.operator("acme")
	a, err := session.AssignProjects(f.ctx, op, project.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Shortest first: infra, webapp, then api inside it.
	if a.Sessions != 3 || a.Assigned != 3 || len(a.Places) != 3 || a.Places[0].NoRoot == "" || a.Places[0].Registered ||
		!a.Places[1].Registered || a.Places[1].Workspace != web || a.Places[1].Dir != "." ||
		a.Places[2].Registered || a.Places[2].NoRoot != "" || a.Places[2].Dir != "services/api" || a.Places[2].Workspace != api {
		t.Fatalf("assignment %+v", a)
	}
	wp, err := project.Get(f.ctx, op, "webapp")
	if err != nil || !slices.Equal(wp.RootsOn(project.Machine()), []string{web}) {
		t.Fatalf("project webapp: %+v, %v", wp, err)
	}
	if s := f.get(bob, s1); s.Project != wp.ID || s.Dir != "." || s.Workspace != web {
		t.Fatalf("session 1: %+v", s)
	}
	if s := f.get(bob, s2); s.Project != wp.ID || s.Dir != "services/api" || s.Workspace != api {
		t.Fatalf("session 2: %+v", s)
	}
	if s := f.get(bob, s3); s.Project == "" || s.Project == wp.ID || s.Dir != "." {
		t.Fatalf("session 3: %+v", s)
	}
	// The repair's events name the operator.
	evs, err := op.Log().Query(f.ctx, audit.Query{Filter: audit.Filter{Project: wp.ID}, Limit: 10})
	if err != nil || len(evs.Events) != 2 || evs.Events[0].User != "cli:test" {
		t.Fatalf("webapp's events: %+v, %v", evs.Events, err)
	}
	f.checkReadable()
	// The member (a token principal, who may not register) works in the
	// registered project by name or by a directory inside it.
	for _, spec := range []session.Spec{{Project: "webapp"}, {Workspace: api}} {
		spec.Title = "after the repair"
		s, err := session.Start(f.ctx, bob, spec)
		if err != nil || s.Project != wp.ID {
			t.Fatalf("bob's session %+v: %+v, %v", spec, s, err)
		}
	}
	var b bytes.Buffer
	for _, pl := range a.Places {
		fmt.Fprintln(&b, pl)
	}
	if out := b.String(); !strings.Contains(out, "registered as a root") || !strings.Contains(out, "webapp/services/api") {
		t.Fatalf("placements read %q", out)
	}
}
