package session

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/sqlite"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
)

// clock is the injected clock: tests move it, never sleep.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

type env struct {
	t     *testing.T
	ctx   context.Context
	store kv.Store
	dir   *tenant.Directory
	clk   *clock
	l     layer
	// root is a temporary directory, canonical; w is the directory w in it,
	// the workspace most tests start their sessions in.
	root string
	w    string
}

func setup(t *testing.T) *env {
	t.Helper()
	// NORMAL durability: some tests start thousands of sessions, and
	// durability across power loss is not what they check.
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"), sqlite.Options{Synchronous: sqlite.SyncNormal})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	clk := &clock{t: t0}
	root, err := project.Canonical(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, store: s, dir: tenant.NewDirectory(s, "test"), clk: clk, l: layer{now: clk.now}, root: root}
	e.w = e.path("w")
	return e
}

// path creates the directory rel (slash-separated) under the env's root
// and returns its path, which is canonical.
func (e *env) path(rel string) string {
	e.t.Helper()
	p := filepath.Join(e.root, filepath.FromSlash(rel))
	if err := os.MkdirAll(p, 0o755); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// scope returns an admin scope of a local user.
func (e *env) scope(tenantID, user string) *tenant.Scope {
	e.t.Helper()
	sc, err := e.dir.Local(e.ctx, tenantID, user)
	if err != nil {
		e.t.Fatal(err)
	}
	return sc
}

func (e *env) agent(sc *tenant.Scope, agent string) *tenant.Scope {
	e.t.Helper()
	a, err := sc.WithAgent(agent)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// viewer returns the scope of a viewer token of tenantID (which exists).
func (e *env) viewer(tenantID string) *tenant.Scope {
	e.t.Helper()
	if _, err := e.dir.CreateUser(e.ctx, tenantID, "vera", "Vera Viewer"); err != nil {
		e.t.Fatal(err)
	}
	secret, _, err := e.dir.IssueToken(e.ctx, tenantID, "vera", tenant.RoleViewer, tenant.TokenOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	sc, err := e.dir.Authenticate(e.ctx, secret)
	if err != nil {
		e.t.Fatal(err)
	}
	return sc
}

func (e *env) start(sc *tenant.Scope, title, ws string) Session {
	e.t.Helper()
	s, err := e.l.start(e.ctx, sc, Spec{Title: title, Workspace: ws})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// dump renders every key and value of the store, to prove that refused
// calls wrote nothing.
func (e *env) dump() string {
	e.t.Helper()
	var b strings.Builder
	err := e.store.View(e.ctx, func(tx kv.ReadTx) error {
		b.Reset()
		it := tx.GetRange(nil, []byte{0xff}, kv.RangeOptions{})
		for it.Next() {
			p := it.KeyValue()
			fmt.Fprintf(&b, "%x=%x\n", p.Key, p.Value)
		}
		return it.Err()
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return b.String()
}

// entries lists the session ids under one secondary index value.
func (e *env) entries(sc *tenant.Scope, index, value string) []string {
	e.t.Helper()
	sub, err := sc.Space().SessionsBy(index, value)
	if err != nil {
		e.t.Fatal(err)
	}
	out := []string{}
	err = e.store.View(e.ctx, func(tx kv.ReadTx) error {
		out = out[:0]
		b, end := sub.Range()
		kvs, err := kv.Collect(tx.GetRange(b, end, kv.RangeOptions{}))
		for _, p := range kvs {
			t, err := sub.Unpack(p.Key)
			if err != nil {
				return err
			}
			out = append(out, t[0].(string))
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// events returns the session's audit events, oldest first.
func events(t *testing.T, sc *tenant.Scope, id string) []audit.Event {
	t.Helper()
	p, err := sc.Log().Query(context.Background(), audit.Query{Filter: audit.Filter{Session: id}, Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	return p.Events
}

func kinds(evs []audit.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}

func sessionIDs(ss []Session) []string {
	out := []string{}
	for _, s := range ss {
		out = append(out, s.ID)
	}
	return out
}

func TestIDs(t *testing.T) {
	a, err := newID(t0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newID(t0)
	c, _ := newID(t0.Add(time.Millisecond))
	if len(a) != idLen || a == b {
		t.Fatalf("ids %q %q", a, b)
	}
	if !(a < c && b < c) {
		t.Fatalf("ids do not sort by time: %q %q then %q", a, b, c)
	}
	if lo, hi := boundID(milli(t0)), boundID(milli(t0)+1); !(lo <= a && a < hi) {
		t.Fatalf("id %q outside its millisecond [%q, %q)", a, lo, hi)
	}
	// The layout is ULID's: 48 bits of milliseconds first.
	if got := boundID(1469918176385); got != "01ARYZ6S410000000000000000" {
		t.Fatalf("boundID = %q", got)
	}
	if got, err := ParseID(strings.ToLower(a)); err != nil || got != a {
		t.Fatalf("ParseID(lower) = %q, %v", got, err)
	}
	for _, bad := range []string{"", "short", a + "0", "01ARYZ6S41000000000000000I", "01ARYZ6S41000000000000000-", "81ARYZ6S410000000000000000",
		"01ARYZ6S41\x00000000000000", "01ARYZ6S41é00000000000000"} {
		if _, err := ParseID(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseID(%q): %v", bad, err)
		}
	}
}

func TestWorkspace(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"/home/alice/project", "/home/alice/project"},
		{"/home/alice/project/", "/home/alice/project"},
		{"/home/alice/./x/../project", "/home/alice/project"},
		{"/", "/"},
		{"file:///home/alice/my%20project", "/home/alice/my project"},
		{"file://localhost/srv/x/", "/srv/x"},
		{`c:\src\project\`, `C:\src\project`},
		{"C:/src/project", `C:\src\project`},
		{`C:\`, `C:\`},
		{"file:///C:/src/project", `C:\src\project`},
		{`\\server\share\dir\`, `\\server\share\dir`},
	} {
		got, err := Workspace(c.in)
		if err != nil || got != c.want {
			t.Errorf("Workspace(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "project", "./project", "~/project", "C:project", `\\`, "file://host/x", "/a\nb", "/" + strings.Repeat("x", MaxWorkspace)} {
		if _, err := Workspace(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Workspace(%q): %v", bad, err)
		}
	}
}

func TestStartGetEnd(t *testing.T) {
	e := setup(t)
	sc := e.scope("acme", "alice")
	app := e.path("app")
	s, err := e.l.start(e.ctx, sc, Spec{Title: "  fix the login redirect ", Workspace: app + "/", Purpose: "users loop\nafter login", Cohort: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Title != "fix the login redirect" || s.Workspace != app || s.State != Open || s.User != "alice" ||
		s.Tenant != "acme" || !s.Started.Equal(t0) || s.Cohort != "web" || len(s.Participants) != 1 || s.Participants[0].User != "alice" {
		t.Fatalf("started %+v", s)
	}
	// The local operator's workspace became the root of a project named
	// after it.
	p, err := project.Get(e.ctx, sc, "app")
	if err != nil || s.Project != p.ID || s.Dir != "." || !slices.Equal(p.RootsOn(project.Machine()), []string{app}) {
		t.Fatalf("project %+v, %v; session in %s/%s", p, err, s.Project, s.Dir)
	}
	got, err := Get(e.ctx, sc, strings.ToLower(s.ID))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(s) {
		t.Fatalf("Get = %+v\nwant %+v", got, s)
	}
	// The global index names the tenant.
	gk, _ := keyspace.SessionIndex(s.ID)
	var owner []byte
	if err := e.store.View(e.ctx, func(tx kv.ReadTx) error { owner, err = tx.Get(gk); return err }); err != nil || string(owner) != "acme" {
		t.Fatalf("global index: %q, %v", owner, err)
	}
	evs := events(t, sc, s.ID)
	if len(evs) != 1 || evs[0].Kind != "session.started" || evs[0].User != "alice" || !evs[0].Time.Equal(t0) ||
		evs[0].Attrs["workspace"] != app || evs[0].Project != p.ID || evs[0].Attrs["project"] != "app" || evs[0].Attrs["purpose"] != "users loop\nafter login" {
		t.Fatalf("events %+v", evs)
	}

	e.clk.add(90 * time.Minute)
	ended, err := e.l.end(e.ctx, e.agent(sc, "claude"), s.ID, Outcome{Status: Completed, Summary: "fixed in auth.go"})
	if err != nil {
		t.Fatal(err)
	}
	if ended.State != Ended || !ended.Ended.Equal(t0.Add(90*time.Minute)) || ended.EndedBy != "alice" || ended.EndedByAgent != "claude" ||
		ended.Outcome == nil || ended.Outcome.Status != Completed || ended.Outcome.Summary != "fixed in auth.go" {
		t.Fatalf("ended %+v", ended)
	}
	if got, _ := Get(e.ctx, sc, s.ID); got.State != Ended || got.Outcome.Summary != "fixed in auth.go" {
		t.Fatalf("after end, Get = %+v", got)
	}
	// The state index moved; the others stay.
	for _, c := range []struct {
		index, value string
		want         []string
	}{
		{keyspace.SessionByState, "open", []string{}},
		{keyspace.SessionByState, "ended", []string{s.ID}},
		{keyspace.SessionByWorkspace, app, []string{s.ID}},
		{keyspace.SessionByProject, p.ID, []string{s.ID}},
		{keyspace.SessionByUser, "alice", []string{s.ID}},
		{keyspace.SessionByAgent, "claude", []string{}}, // ending is not joining
	} {
		if got := e.entries(sc, c.index, c.value); !slices.Equal(got, c.want) {
			t.Errorf("index %s=%s: %v, want %v", c.index, c.value, got, c.want)
		}
	}
	evs = events(t, sc, s.ID)
	if k := kinds(evs); !slices.Equal(k, []string{"session.started", "session.ended"}) || evs[1].Agent != "claude" ||
		evs[1].Attrs["status"] != "completed" || !strings.Contains(evs[1].Summary, "fixed in auth.go") {
		t.Fatalf("events %v %+v", k, evs[1])
	}
	before := e.dump()
	if _, err := e.l.end(e.ctx, sc, s.ID, Outcome{Status: Failed}); !errors.Is(err, ErrNotOpen) || !strings.Contains(err.Error(), "start a new session") {
		t.Fatalf("second end: %v", err)
	}
	if _, err := e.l.join(e.ctx, e.agent(sc, "cline"), s.ID); !errors.Is(err, ErrNotOpen) {
		t.Fatalf("join after end: %v", err)
	}
	if _, err := Get(e.ctx, sc, "01ARYZ6S410000000000000000"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing session: %v", err)
	}
	if before != e.dump() {
		t.Fatal("refused calls wrote to the store")
	}
}

func TestBadInput(t *testing.T) {
	e := setup(t)
	sc := e.scope("acme", "alice")
	s := e.start(sc, "real", e.w)
	long := func(n int) string { return strings.Repeat("x", n) }
	start := func(f func(*Spec)) func() error {
		return func() error {
			in := Spec{Title: "t", Workspace: e.w}
			f(&in)
			_, err := e.l.start(e.ctx, sc, in)
			return err
		}
	}
	end := func(id string, o Outcome) func() error {
		return func() error { _, err := e.l.end(e.ctx, sc, id, o); return err }
	}
	list := func(q Query) func() error {
		return func() error { _, err := List(e.ctx, sc, q); return err }
	}
	cases := []struct {
		name string
		call func() error
		want error
		hint string // part of the message that tells the caller what to send
	}{
		{"no title", start(func(s *Spec) { s.Title = " " }), ErrInvalid, "title is required"},
		{"two-line title", start(func(s *Spec) { s.Title = "a\nb" }), ErrInvalid, "one line"},
		{"long title", start(func(s *Spec) { s.Title = long(MaxTitle + 1) }), ErrInvalid, "shorten"},
		{"bad utf8 title", start(func(s *Spec) { s.Title = "\xff" }), ErrInvalid, "UTF-8"},
		{"no workspace", start(func(s *Spec) { s.Workspace = "" }), ErrInvalid, "absolute path"},
		{"relative workspace", start(func(s *Spec) { s.Workspace = "src/app" }), ErrInvalid, "e.g. /home"},
		{"long purpose", start(func(s *Spec) { s.Purpose = long(MaxPurpose + 1) }), ErrInvalid, "purpose"},
		{"control in purpose", start(func(s *Spec) { s.Purpose = "a\x00b" }), ErrInvalid, "control"},
		{"long cohort", start(func(s *Spec) { s.Cohort = long(MaxCohort + 1) }), ErrInvalid, "cohort"},
		{"no status", end(s.ID, Outcome{}), ErrInvalid, "completed, failed or cancelled"},
		{"bad status", end(s.ID, Outcome{Status: "done"}), ErrInvalid, "completed, failed or cancelled"},
		{"long summary", end(s.ID, Outcome{Status: Completed, Summary: long(MaxOutcomeSummary + 1)}), ErrInvalid, "summary"},
		{"end bad id", end("s1", Outcome{Status: Completed}), ErrInvalid, "26-character"},
		{"end id with separator", end("01ARYZ6S41/000000000000000", Outcome{Status: Completed}), ErrInvalid, "position 11"},
		{"join bad id", func() error { _, err := e.l.join(e.ctx, sc, ""); return err }, ErrInvalid, "session id"},
		{"get bad id", func() error { _, err := Get(e.ctx, sc, long(300)); return err }, ErrInvalid, "session id"},
		{"summary bad id", func() error { _, err := e.l.summary(e.ctx, sc, "x"); return err }, ErrInvalid, "session id"},
		{"list bad state", list(Query{Filter: Filter{State: "closed"}}), ErrInvalid, "open, ended or abandoned"},
		{"list relative workspace", list(Query{Filter: Filter{Workspace: "w"}}), ErrInvalid, "absolute"},
		{"list inverted range", list(Query{Filter: Filter{Since: t0, Until: t0.Add(-time.Hour)}}), ErrInvalid, "swap"},
		{"list huge limit", list(Query{Limit: MaxLimit + 1}), ErrInvalid, "limit"},
		{"list negative limit", list(Query{Limit: -1}), ErrInvalid, "limit"},
		{"list bad order", list(Query{Order: 7}), ErrInvalid, "order"},
		{"list bad cursor", list(Query{Cursor: "garbage"}), ErrBadCursor, "cursor"},
		{"list long user", list(Query{Filter: Filter{User: long(300)}}), ErrInvalid, "user filter"},
		{"sweep zero idle", func() error { _, err := e.l.sweep(e.ctx, sc, 0); return err }, ErrInvalid, "positive duration"},
	}
	before := e.dump()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.hint) {
				t.Fatalf("got %v; want %v saying %q", err, c.want, c.hint)
			}
			if len(err.Error()) > 1000 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
		})
	}
	if before != e.dump() {
		t.Fatal("refused calls wrote to the store")
	}
}

func TestViewerRefused(t *testing.T) {
	e := setup(t)
	sc := e.scope("acme", "alice")
	s := e.start(sc, "work", e.w)
	v := e.viewer("acme")
	e.clk.add(time.Hour)
	before := e.dump()
	for name, call := range map[string]func() error{
		"start": func() error { _, err := e.l.start(e.ctx, v, Spec{Title: "t", Workspace: e.w}); return err },
		"join":  func() error { _, err := e.l.join(e.ctx, v, s.ID); return err },
		"end":   func() error { _, err := e.l.end(e.ctx, v, s.ID, Outcome{Status: Completed}); return err },
		"sweep": func() error { _, err := e.l.sweep(e.ctx, v, time.Minute); return err },
	} {
		if err := call(); !errors.Is(err, tenant.ErrForbidden) {
			t.Errorf("viewer %s: %v", name, err)
		}
	}
	if before != e.dump() {
		t.Fatal("a viewer's refused calls wrote to the store")
	}
	// Reading is allowed.
	if got, err := Get(e.ctx, v, s.ID); err != nil || got.ID != s.ID {
		t.Fatalf("viewer get: %v", err)
	}
	if p, err := List(e.ctx, v, Query{}); err != nil || len(p.Sessions) != 1 {
		t.Fatalf("viewer list: %+v, %v", p, err)
	}
	if r, err := e.l.summary(e.ctx, v, s.ID); err != nil || r.Events != 1 {
		t.Fatalf("viewer summary: %+v, %v", r, err)
	}
}

func TestJoin(t *testing.T) {
	e := setup(t)
	alice := e.scope("acme", "alice")
	bob := e.scope("acme", "bob")
	s := e.start(alice, "pairing", e.w)
	e.clk.add(time.Minute)
	for _, c := range []struct {
		sc   *tenant.Scope
		want int // participants after the join
	}{
		{e.agent(alice, "qwen"), 2},
		{e.agent(alice, "qwen"), 2}, // again: a no-op
		{bob, 3},
		{e.agent(bob, "qwen"), 4}, // the same agent for another user is another participant
		{alice, 4},                // the starter is a participant already
	} {
		got, err := e.l.join(e.ctx, c.sc, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Participants) != c.want {
			t.Fatalf("%s/%s joined: %d participants, want %d: %+v", c.sc.Principal().User, c.sc.Principal().Agent, len(got.Participants), c.want, got.Participants)
		}
	}
	evs := events(t, alice, s.ID)
	if k := kinds(evs); !slices.Equal(k, []string{"session.started", "session.joined", "session.joined", "session.joined"}) {
		t.Fatalf("events %v", k)
	}
	if evs[1].Agent != "qwen" || evs[1].User != "alice" || evs[1].Attribution == nil || evs[1].Attribution.AgentID != "qwen" {
		t.Fatalf("join event %+v", evs[1])
	}
	got, _ := Get(e.ctx, alice, s.ID)
	if p := got.Participants[1]; p.User != "alice" || p.Agent != "qwen" || !p.Joined.Equal(t0.Add(time.Minute)) {
		t.Fatalf("participant %+v", p)
	}
	// Joined users and agents find the session by filter.
	for _, f := range []Filter{{User: "bob"}, {Agent: "qwen"}, {User: "bob", Agent: "qwen"}} {
		if p, err := List(e.ctx, alice, Query{Filter: f}); err != nil || !slices.Equal(sessionIDs(p.Sessions), []string{s.ID}) {
			t.Errorf("filter %+v: %v, %v", f, sessionIDs(p.Sessions), err)
		}
	}
	// A session holds at most MaxParticipants.
	for i := len(got.Participants); i < MaxParticipants; i++ {
		if _, err := e.l.join(e.ctx, e.agent(bob, fmt.Sprintf("agent-%d", i)), s.ID); err != nil {
			t.Fatal(err)
		}
	}
	before := e.dump()
	if _, err := e.l.join(e.ctx, e.agent(bob, "one-too-many"), s.ID); !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "start another session") {
		t.Fatalf("join of a full session: %v", err)
	}
	if before != e.dump() {
		t.Fatal("a refused join wrote")
	}
}

// fixture is a session to start; fixtures starts them one minute apart
// (t0, t0+1m, …) and returns their ids in start order.
type fixture struct {
	title string
	user  string
	agent string
	ws    string // a directory under the env's root, created
	end   bool
}

func (e *env) fixtures(tenantID string, fs []fixture) []string {
	e.t.Helper()
	var ids []string
	for _, f := range fs {
		sc := e.scope(tenantID, f.user)
		if f.agent != "" {
			sc = e.agent(sc, f.agent)
		}
		ws := e.path(f.ws)
		if strings.HasSuffix(f.ws, "/") {
			ws += "/"
		}
		s := e.start(sc, f.title, ws)
		if f.end {
			if _, err := e.l.end(e.ctx, sc, s.ID, Outcome{Status: Completed}); err != nil {
				e.t.Fatal(err)
			}
		}
		ids = append(ids, s.ID)
		e.clk.add(time.Minute)
	}
	return ids
}

func TestListFilters(t *testing.T) {
	e := setup(t)
	ids := e.fixtures("acme", []fixture{
		{"s0", "alice", "", "app", false},
		{"s1", "alice", "qwen", "app/", true},
		{"s2", "bob", "", "lib", false},
		{"s3", "bob", "qwen", "app", true},
		{"s4", "carol", "", "lib", false},
		{"s5", "alice", "", "lib", true},
	})
	// Sweeping at t0+1h with 50m idle abandons the open ones: s0, s2, s4.
	e.clk.set(t0.Add(time.Hour))
	if ab, err := e.l.sweep(e.ctx, e.scope("acme", "sweeper"), 50*time.Minute); err != nil || len(ab) != 3 {
		t.Fatalf("sweep: %d, %v", len(ab), err)
	}
	ids = append(ids, e.start(e.scope("acme", "alice"), "s6", e.path("app")).ID) // open, started at t0+1h
	pick := func(is ...int) []string {
		out := []string{}
		for _, i := range is {
			out = append(out, ids[i])
		}
		return out
	}
	cases := []struct {
		name string
		q    Query
		want []string
	}{
		{"all, newest first", Query{}, pick(6, 5, 4, 3, 2, 1, 0)},
		{"all, oldest first", Query{Order: OldestFirst}, pick(0, 1, 2, 3, 4, 5, 6)},
		{"user alice", Query{Filter: Filter{User: "alice"}}, pick(6, 5, 1, 0)},
		{"user nobody", Query{Filter: Filter{User: "nobody"}}, pick()},
		{"agent qwen", Query{Filter: Filter{Agent: "qwen"}}, pick(3, 1)},
		{"workspace cleaned", Query{Filter: Filter{Workspace: e.path("app") + "/"}}, pick(6, 3, 1, 0)},
		{"workspace lib oldest", Query{Filter: Filter{Workspace: e.path("lib")}, Order: OldestFirst}, pick(2, 4, 5)},
		{"open", Query{Filter: Filter{State: Open}}, pick(6)},
		{"ended", Query{Filter: Filter{State: Ended}}, pick(5, 3, 1)},
		{"abandoned", Query{Filter: Filter{State: Abandoned}}, pick(4, 2, 0)},
		{"alice ended", Query{Filter: Filter{User: "alice", State: Ended}}, pick(5, 1)},
		{"bob in lib, abandoned", Query{Filter: Filter{User: "bob", Workspace: e.path("lib"), State: Abandoned}}, pick(2)},
		{"open by alice", Query{Filter: Filter{User: "alice", State: Open}}, pick(6)},
		{"since t0+2m", Query{Filter: Filter{Since: t0.Add(2 * time.Minute)}}, pick(6, 5, 4, 3, 2)},
		{"until t0+2m", Query{Filter: Filter{Until: t0.Add(2 * time.Minute)}}, pick(2, 1, 0)},
		{"until t0+2m minus 1ns", Query{Filter: Filter{Until: t0.Add(2*time.Minute - 1)}}, pick(1, 0)},
		{"since t0+1m+1ns", Query{Filter: Filter{Since: t0.Add(time.Minute + 1)}}, pick(6, 5, 4, 3, 2)},
		{"window", Query{Filter: Filter{Since: t0.Add(time.Minute), Until: t0.Add(4 * time.Minute)}, Order: OldestFirst}, pick(1, 2, 3, 4)},
		{"window and user", Query{Filter: Filter{User: "bob", Since: t0.Add(time.Minute), Until: t0.Add(4 * time.Minute)}}, pick(3, 2)},
		{"empty window", Query{Filter: Filter{Since: t0.Add(10 * time.Minute), Until: t0.Add(20 * time.Minute)}}, pick()},
		{"cursor", Query{Cursor: ids[3]}, pick(2, 1, 0)},
		{"cursor oldest", Query{Cursor: ids[3], Order: OldestFirst}, pick(4, 5, 6)},
		{"cursor in window", Query{Filter: Filter{Since: t0.Add(time.Minute)}, Cursor: ids[3]}, pick(2, 1)},
	}
	sc := e.scope("acme", "reader")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := List(e.ctx, sc, c.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := sessionIDs(p.Sessions); !slices.Equal(got, c.want) {
				t.Fatalf("got %v\nwant %v", got, c.want)
			}
			if p.Next != "" {
				t.Fatalf("next %q on a complete page", p.Next)
			}
			for _, s := range p.Sessions {
				if s.Tenant != "acme" {
					t.Fatalf("tenant %q", s.Tenant)
				}
			}
		})
	}
}

func TestPagination(t *testing.T) {
	e := setup(t)
	sc := e.scope("acme", "alice")
	var all []string
	for i := 0; i < 23; i++ {
		all = append(all, e.start(sc, fmt.Sprint("s", i), e.w).ID)
		e.clk.add(time.Second)
	}
	// walk lists every page of 5; after the first page, it calls between.
	walk := func(order Order, between func()) (got []string, pages int) {
		q := Query{Order: order, Limit: 5}
		for {
			p, err := List(e.ctx, sc, q)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			got = append(got, sessionIDs(p.Sessions)...)
			if pages == 1 && between != nil {
				between()
			}
			if p.Next == "" {
				return got, pages
			}
			q.Cursor = p.Next
		}
	}
	newest := slices.Clone(all)
	slices.Reverse(newest)
	// A session started mid-listing is newer than the cursor: it is not
	// served, and nothing is served twice.
	got, pages := walk(NewestFirst, func() {
		e.clk.add(time.Second)
		all = append(all, e.start(sc, "late", e.w).ID)
	})
	if !slices.Equal(got, newest) || pages != 5 {
		t.Fatalf("newest first: %d pages, got %v\nwant %v", pages, got, newest)
	}
	got, pages = walk(OldestFirst, nil)
	if !slices.Equal(got, all) || pages != 5 {
		t.Fatalf("oldest first: %d pages, got %v\nwant %v", pages, got, all)
	}
	// An exact multiple of the limit: the last full page has a Next that
	// yields an empty, final page.
	p, err := List(e.ctx, sc, Query{Limit: 24})
	if err != nil || len(p.Sessions) != 24 || p.Next == "" {
		t.Fatalf("page of 24: %d, %q, %v", len(p.Sessions), p.Next, err)
	}
	p, err = List(e.ctx, sc, Query{Limit: 24, Cursor: p.Next})
	if err != nil || len(p.Sessions) != 0 || p.Next != "" {
		t.Fatalf("page after the last: %d, %q, %v", len(p.Sessions), p.Next, err)
	}
}

func TestPageExaminesBoundedRecords(t *testing.T) {
	e := setup(t)
	alice := e.scope("acme", "alice")
	n := MaxExamine + 11
	for i := 0; i < n; i++ {
		e.clk.add(time.Millisecond)
		e.start(alice, "filler", e.w)
	}
	// Ended sessions in /w: the workspace index is walked and no record
	// matches; each page examines at most MaxExamine records and says
	// where to continue.
	q := Query{Filter: Filter{Workspace: e.w, State: Ended}, Limit: 10}
	pages := 0
	for {
		p, err := List(e.ctx, alice, q)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(p.Sessions) != 0 {
			t.Fatalf("matched %v", sessionIDs(p.Sessions))
		}
		if p.Next == "" {
			break
		}
		q.Cursor = p.Next
	}
	if pages != 2 {
		t.Fatalf("%d pages for %d records, want 2 (at most %d examined per page)", pages, n, MaxExamine)
	}
}

func TestSummary(t *testing.T) {
	e := setup(t)
	alice := e.scope("acme", "alice")
	s := e.start(alice, "refactor", e.w)
	other := e.start(alice, "other", e.w)
	qwen := e.agent(alice, "qwen")
	e.clk.add(time.Minute)
	if _, err := e.l.join(e.ctx, qwen, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.join(e.ctx, e.agent(alice, "silent"), s.ID); err != nil {
		t.Fatal(err)
	}
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	_, err := alice.Log().Append(e.ctx,
		audit.Event{Kind: "file.modified", Session: s.ID, Agent: "qwen", User: "alice", Path: "a.go", Time: at(2)},
		audit.Event{Kind: "file.modified", Session: s.ID, Agent: "qwen", User: "alice", Path: "a.go", Time: at(3)},
		audit.Event{Kind: "file.created", Session: s.ID, Agent: "cline", User: "bob", Path: "b.go", Time: at(4)},
		audit.Event{Kind: "ide.saved", Session: s.ID, User: "alice", Path: "a.go", Time: at(5)},
		audit.Event{Kind: "lease.acquired", Session: s.ID, Agent: "qwen", Path: "c.go", Time: at(5)}, // not a change
		audit.Event{Kind: "tool.called", Session: s.ID, Agent: "qwen", Time: at(6)},
		audit.Event{Kind: "file.modified", Session: other.ID, Agent: "qwen", Path: "z.go", Time: at(6)}, // another session
		audit.Event{Kind: "file.modified", Agent: "qwen", Path: "y.go", Time: at(6)},                    // no session
	)
	if err != nil {
		t.Fatal(err)
	}
	e.clk.set(at(30))
	r, err := e.l.summary(e.ctx, alice, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Duration != 30*time.Minute || r.Events != 9 || !r.First.Equal(t0) || !r.Last.Equal(at(6)) || r.Truncated {
		t.Fatalf("open summary: duration %v, events %d, first %v, last %v", r.Duration, r.Events, r.First, r.Last)
	}
	wantKinds := map[string]int{"session.started": 1, "session.joined": 2, "file.modified": 2, "file.created": 1, "ide.saved": 1, "lease.acquired": 1, "tool.called": 1}
	if fmt.Sprint(r.ByKind) != fmt.Sprint(wantKinds) {
		t.Fatalf("by kind %v\nwant %v", r.ByKind, wantKinds)
	}
	if len(r.Files) != 2 || r.Files[0].Path != "a.go" || r.Files[0].Events != 3 || !r.Files[0].Last.Equal(at(5)) ||
		r.Files[0].ByKind["file.modified"] != 2 || r.Files[1].Path != "b.go" || r.Files[1].Events != 1 {
		t.Fatalf("files %+v", r.Files)
	}
	if len(r.Agents) != 3 || r.Agents[0].ID != "cline" || r.Agents[0].Events != 1 ||
		r.Agents[1].ID != "qwen" || r.Agents[1].Events != 5 || !r.Agents[1].First.Equal(at(1)) || !r.Agents[1].Last.Equal(at(6)) ||
		r.Agents[2].ID != "silent" || r.Agents[2].Events != 1 {
		t.Fatalf("agents %+v", r.Agents)
	}
	if len(r.Users) != 2 || r.Users[0].ID != "alice" || r.Users[1].ID != "bob" || r.Users[1].Events != 1 {
		t.Fatalf("users %+v", r.Users)
	}
	// The summary agrees with the log.
	if n := len(events(t, alice, s.ID)); n != r.Events {
		t.Fatalf("summary counts %d events, the log has %d", r.Events, n)
	}
	// Ended: the duration stops at the end.
	e.clk.set(at(45))
	if _, err := e.l.end(e.ctx, alice, s.ID, Outcome{Status: Cancelled}); err != nil {
		t.Fatal(err)
	}
	e.clk.set(at(500))
	r, err = e.l.summary(e.ctx, alice, s.ID)
	if err != nil || r.Duration != 45*time.Minute || r.Events != 10 || r.ByKind["session.ended"] != 1 || r.Session.State != Ended {
		t.Fatalf("ended summary: %v, %v, %d, %v", err, r.Duration, r.Events, r.ByKind)
	}
	r, err = e.l.summary(e.ctx, alice, other.ID)
	if err != nil || r.Events != 2 || len(r.Files) != 1 || r.Files[0].Path != "z.go" || len(r.Agents) != 1 {
		t.Fatalf("other summary: %+v, %v", r, err)
	}
}

func TestSweep(t *testing.T) {
	e := setup(t)
	alice := e.scope("acme", "alice")
	sweeper := e.scope("acme", "sweeper")
	var ss []Session
	for _, title := range []string{"a: silent", "b: joined at +10m", "c: file change at +20m", "d: ended", "f: activity in the future"} {
		ss = append(ss, e.start(alice, title, e.w))
		e.clk.add(time.Millisecond) // ids in this order
	}
	a, b, c, d, f := ss[0], ss[1], ss[2], ss[3], ss[4]
	e.clk.set(t0.Add(10 * time.Minute))
	if _, err := e.l.join(e.ctx, e.agent(alice, "qwen"), b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Log().Append(e.ctx,
		audit.Event{Kind: "file.modified", Session: c.ID, Path: "x.go", Time: t0.Add(20 * time.Minute)},
		audit.Event{Kind: "tool.called", Session: f.ID, Time: t0.Add(2 * time.Hour)},
	); err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.end(e.ctx, alice, d.ID, Outcome{Status: Completed}); err != nil {
		t.Fatal(err)
	}
	// Idle for exactly the limit counts: a (40m) and b (30m) go, c (20m)
	// and f stay.
	e.clk.set(t0.Add(40 * time.Minute))
	got, err := e.l.sweep(e.ctx, sweeper, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if ids := sessionIDs(got); !slices.Equal(ids, []string{a.ID, b.ID}) {
		t.Fatalf("abandoned %v, want %v", ids, []string{a.ID, b.ID})
	}
	for _, w := range []struct {
		id    string
		state State
		last  time.Time
	}{{a.ID, Abandoned, t0}, {b.ID, Abandoned, t0.Add(10 * time.Minute)}, {c.ID, Open, time.Time{}}, {d.ID, Ended, time.Time{}}, {f.ID, Open, time.Time{}}} {
		s, err := Get(e.ctx, alice, w.id)
		if err != nil || s.State != w.state || !s.LastActivity.Equal(w.last) {
			t.Errorf("%s: state %s, last activity %v (%v); want %s, %v", s.Title, s.State, s.LastActivity, err, w.state, w.last)
		}
		if w.state == Abandoned && !s.Abandoned.Equal(t0.Add(40*time.Minute)) {
			t.Errorf("%s abandoned at %v", s.Title, s.Abandoned)
		}
	}
	evs := events(t, alice, a.ID)
	if last := evs[len(evs)-1]; last.Kind != "session.abandoned" || last.User != "sweeper" || !last.Time.Equal(t0.Add(40*time.Minute)) {
		t.Fatalf("abandon event %+v", last)
	}
	if p, _ := List(e.ctx, alice, Query{Filter: Filter{State: Open}, Order: OldestFirst}); !slices.Equal(sessionIDs(p.Sessions), []string{c.ID, f.ID}) {
		t.Fatalf("open after sweep: %v", sessionIDs(p.Sessions))
	}
	if got := e.entries(alice, keyspace.SessionByState, "open"); !slices.Equal(got, []string{c.ID, f.ID}) {
		t.Fatalf("open-state index after sweep: %v", got)
	}
	if got := e.entries(alice, keyspace.SessionByState, "abandoned"); !slices.Equal(got, []string{a.ID, b.ID}) {
		t.Fatalf("abandoned-state index after sweep: %v", got)
	}
	// A second sweep at the same time finds nothing more and writes nothing.
	before := e.dump()
	if got, err := e.l.sweep(e.ctx, sweeper, 30*time.Minute); err != nil || len(got) != 0 {
		t.Fatalf("second sweep: %v, %v", sessionIDs(got), err)
	}
	if before != e.dump() {
		t.Fatal("a sweep that abandoned nothing wrote")
	}
	// An abandoned session cannot be joined but can be ended.
	if _, err := e.l.join(e.ctx, alice, a.ID); !errors.Is(err, ErrNotOpen) || !strings.Contains(err.Error(), "abandoned") {
		t.Fatalf("join abandoned: %v", err)
	}
	ended, err := e.l.end(e.ctx, alice, a.ID, Outcome{Status: Failed, Summary: "gave up"})
	if err != nil || ended.State != Ended {
		t.Fatalf("end abandoned: %+v, %v", ended, err)
	}
	if p, _ := List(e.ctx, alice, Query{Filter: Filter{State: Abandoned}}); !slices.Equal(sessionIDs(p.Sessions), []string{b.ID}) {
		t.Fatalf("abandoned after ending a: %v", sessionIDs(p.Sessions))
	}
	// Later, c goes too; f's future activity keeps it.
	e.clk.set(t0.Add(51 * time.Minute))
	if got, err := e.l.sweep(e.ctx, sweeper, 30*time.Minute); err != nil || !slices.Equal(sessionIDs(got), []string{c.ID}) {
		t.Fatalf("third sweep: %v, %v", sessionIDs(got), err)
	}
}

func TestSweepKeepsSessionActiveMeanwhile(t *testing.T) {
	// An event that reaches the session after the sweeper read its last
	// activity, and before it abandons it, keeps the session open.
	e := setup(t)
	alice := e.scope("acme", "alice")
	s := e.start(alice, "busy", e.w)
	e.clk.set(t0.Add(time.Hour))
	l := e.l
	l.betweenReads = func(id string) {
		if _, err := alice.Log().Append(e.ctx, audit.Event{Kind: "tool.called", Session: id, Time: t0.Add(time.Hour)}); err != nil {
			t.Error(err)
		}
	}
	if got, err := l.sweep(e.ctx, alice, 30*time.Minute); err != nil || len(got) != 0 {
		t.Fatalf("swept a session with fresh activity: %v, %v", sessionIDs(got), err)
	}
	if got, _ := Get(e.ctx, alice, s.ID); got.State != Open {
		t.Fatalf("state %s", got.State)
	}
	// Without the interleaved event, the fresh event now counts.
	if got, err := e.l.sweep(e.ctx, alice, 30*time.Minute); err != nil || len(got) != 0 {
		t.Fatalf("second sweep: %v, %v", sessionIDs(got), err)
	}
	e.clk.set(t0.Add(90 * time.Minute))
	if got, err := e.l.sweep(e.ctx, alice, 30*time.Minute); err != nil || len(got) != 1 || !got[0].LastActivity.Equal(t0.Add(time.Hour)) {
		t.Fatalf("third sweep: %+v, %v", got, err)
	}
}

func TestSweepWithoutEvents(t *testing.T) {
	// When a session's events are gone from the log's session index (the
	// retention sweeper removes the oldest events of the tenant), its start
	// and joins stand in for the last activity.
	e := setup(t)
	alice := e.scope("acme", "alice")
	s := e.start(alice, "old", e.w)
	e.clk.add(time.Hour)
	if _, err := e.l.join(e.ctx, e.agent(alice, "qwen"), s.ID); err != nil {
		t.Fatal(err)
	}
	idx, err := alice.Space().AuditIndex(keyspace.IndexSession, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Update(e.ctx, func(tx kv.Tx) error { tx.ClearRange(idx.Range()); return nil }); err != nil {
		t.Fatal(err)
	}
	if evs := events(t, alice, s.ID); len(evs) != 0 {
		t.Fatalf("%d events left", len(evs))
	}
	e.clk.set(t0.Add(90 * time.Minute))
	if got, err := e.l.sweep(e.ctx, alice, 31*time.Minute); err != nil || len(got) != 0 {
		t.Fatalf("swept 30m after the join: %v, %v", sessionIDs(got), err)
	}
	got, err := e.l.sweep(e.ctx, alice, 30*time.Minute)
	if err != nil || len(got) != 1 || !got[0].LastActivity.Equal(t0.Add(time.Hour)) {
		t.Fatalf("sweep: %+v, %v", got, err)
	}
}

func TestTenantIsolation(t *testing.T) {
	e := setup(t)
	a := e.scope("acme", "alice")
	b := e.scope("globex", "alice") // the same user name in another tenant
	// Roots never overlap across tenants: each works in its own directory.
	mine := e.start(a, "acme work", e.w)
	theirs := e.start(b, "globex work", e.path("globex"))
	if _, err := e.l.join(e.ctx, e.agent(b, "qwen"), theirs.ID); err != nil {
		t.Fatal(err)
	}
	e.clk.add(24 * time.Hour)
	before := e.dump()
	for name, call := range map[string]func() error{
		"get":     func() error { _, err := Get(e.ctx, a, theirs.ID); return err },
		"join":    func() error { _, err := e.l.join(e.ctx, a, theirs.ID); return err },
		"end":     func() error { _, err := e.l.end(e.ctx, a, theirs.ID, Outcome{Status: Cancelled}); return err },
		"summary": func() error { _, err := e.l.summary(e.ctx, a, theirs.ID); return err },
	} {
		err := call()
		if !errors.Is(err, ErrNotFound) || strings.Contains(err.Error(), "globex") {
			t.Errorf("%s of another tenant's session: %v", name, err)
		}
	}
	if before != e.dump() {
		t.Fatal("calls on another tenant's session wrote")
	}
	for _, q := range []Query{{}, {Filter: Filter{User: "alice"}}, {Filter: Filter{Agent: "qwen"}}, {Filter: Filter{Workspace: e.w}},
		{Filter: Filter{Workspace: theirs.Workspace}}, {Filter: Filter{State: Open}}, {Cursor: theirs.ID}, {Cursor: theirs.ID, Order: OldestFirst}} {
		p, err := List(e.ctx, a, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range p.Sessions {
			if s.ID != mine.ID || s.Tenant != "acme" {
				t.Fatalf("query %+v listed %+v", q, s)
			}
		}
	}
	// Acme's sweep abandons acme's idle session only.
	got, err := e.l.sweep(e.ctx, a, time.Hour)
	if err != nil || !slices.Equal(sessionIDs(got), []string{mine.ID}) {
		t.Fatalf("sweep: %v, %v", sessionIDs(got), err)
	}
	if s, err := Get(e.ctx, b, theirs.ID); err != nil || s.State != Open || len(s.Participants) != 2 {
		t.Fatalf("globex's session after acme's calls: %+v, %v", s, err)
	}
	if evs := events(t, b, theirs.ID); !slices.Equal(kinds(evs), []string{"session.started", "session.joined"}) {
		t.Fatalf("globex's session events: %v", kinds(evs))
	}
	// Session events land in the owner's log only.
	if evs := events(t, a, theirs.ID); len(evs) != 0 {
		t.Fatalf("acme's log holds %d events of globex's session", len(evs))
	}
}

func TestConcurrentJoins(t *testing.T) {
	e := setup(t)
	alice := e.scope("acme", "alice")
	s := e.start(alice, "crowd", e.w)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sc, err := alice.WithAgent(fmt.Sprint("agent-", i%8)) // each agent twice
			if err == nil {
				_, err = Join(e.ctx, sc, s.ID)
			}
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, _ := Get(e.ctx, alice, s.ID)
	if len(got.Participants) != 9 {
		t.Fatalf("%d participants, want 9", len(got.Participants))
	}
	if n := len(events(t, alice, s.ID)); n != 9 {
		t.Fatalf("%d events, want 9 (one start, 8 joins)", n)
	}
}

// The exported functions run on the wall clock.
func TestWallClock(t *testing.T) {
	e := setup(t)
	sc := e.scope("acme", "alice")
	before := time.Now().Add(-time.Second)
	s, err := Start(e.ctx, sc, Spec{Title: "now", Workspace: e.w})
	if err != nil || s.Started.Before(before) || s.Started.After(time.Now()) {
		t.Fatalf("start: %+v, %v", s, err)
	}
	if _, err := End(e.ctx, sc, s.ID, Outcome{Status: Completed}); err != nil {
		t.Fatal(err)
	}
	if r, err := Summary(e.ctx, sc, s.ID); err != nil || r.Events != 2 {
		t.Fatalf("summary %+v, %v", r, err)
	}
	if got, err := Sweep(e.ctx, sc, time.Hour); err != nil || len(got) != 0 {
		t.Fatalf("sweep %v, %v", got, err)
	}
}

// token returns the scope of a new token of user (created) in tenantID
// (which exists): a principal that is not the local operator.
func (e *env) token(tenantID, user string, role tenant.Role) *tenant.Scope {
	e.t.Helper()
	if _, err := e.dir.CreateUser(e.ctx, tenantID, user, user); err != nil {
		e.t.Fatal(err)
	}
	secret, _, err := e.dir.IssueToken(e.ctx, tenantID, user, role, tenant.TokenOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	sc, err := e.dir.Authenticate(e.ctx, secret)
	if err != nil {
		e.t.Fatal(err)
	}
	return sc
}

// register makes dir (under the env's root) the root of a new project
// name of the admin's tenant.
func (e *env) register(admin *tenant.Scope, name, dir string) project.Project {
	e.t.Helper()
	pl, err := project.Register(e.ctx, admin, name, e.path(dir), project.RootOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	if pl.Project.Name != name || pl.Rel != "." {
		e.t.Fatalf("registered %+v", pl)
	}
	return pl.Project
}

func TestStartInProject(t *testing.T) {
	e := setup(t)
	admin := e.scope("acme", "admin")
	app := e.register(admin, "webapp", "src/app")
	root := e.path("src/app")
	sub := e.path("src/app/internal/auth")
	if err := os.Symlink(root, filepath.Join(e.root, "alias")); err != nil {
		t.Fatal(err)
	}
	alias := filepath.Join(e.root, "alias")
	member := e.token("acme", "mia", tenant.RoleMember)
	for _, c := range []struct {
		name     string
		sc       *tenant.Scope
		spec     Spec
		dir, abs string
	}{
		{"by name", member, Spec{Project: "webapp"}, ".", root},
		{"by id", member, Spec{Project: app.ID}, ".", root},
		{"by name and subdirectory", member, Spec{Project: "webapp", Workspace: sub}, "internal/auth", sub},
		{"by root", member, Spec{Workspace: root}, ".", root},
		{"by subdirectory", member, Spec{Workspace: sub + "/"}, "internal/auth", sub},
		{"by symlinked alias", member, Spec{Workspace: alias}, ".", root},
		{"by a subdirectory of the alias", member, Spec{Workspace: alias + "/internal/../internal/auth"}, "internal/auth", sub},
		{"by file URI", member, Spec{Workspace: "file://" + alias}, ".", root},
		{"local operator in a registered root", e.scope("acme", "alice"), Spec{Workspace: sub}, "internal/auth", sub},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.spec.Title = c.name
			s, err := e.l.start(e.ctx, c.sc, c.spec)
			if err != nil {
				t.Fatal(err)
			}
			if s.Project != app.ID || s.Dir != c.dir || s.Workspace != c.abs {
				t.Fatalf("session in project %s, dir %q, workspace %q; want %s, %q, %q", s.Project, s.Dir, s.Workspace, app.ID, c.dir, c.abs)
			}
			if got, err := Get(e.ctx, member, s.ID); err != nil || got.Project != app.ID || got.Dir != c.dir {
				t.Fatalf("Get = %+v, %v", got, err)
			}
			if !slices.Contains(e.entries(admin, keyspace.SessionByProject, app.ID), s.ID) {
				t.Fatalf("session %s missing from the project index", s.ID)
			}
			if !slices.Contains(e.entries(admin, keyspace.SessionByWorkspace, c.abs), s.ID) {
				t.Fatalf("session %s missing from the workspace index under %s", s.ID, c.abs)
			}
		})
	}
	// No session registered anything: webapp is still the only project,
	// with its one root.
	ps, err := project.List(e.ctx, admin)
	if err != nil || len(ps) != 1 || len(ps[0].Roots) != 1 {
		t.Fatalf("projects after starting sessions: %+v, %v", ps, err)
	}
}

func TestStartOutsideProjects(t *testing.T) {
	e := setup(t)
	admin := e.scope("acme", "admin")
	e.register(admin, "webapp", "src/app")
	e.register(admin, "infra", "src/infra")
	loose := e.path("scratch")
	member := e.token("acme", "mia", tenant.RoleMember)
	// Another tenant's root is as far outside acme's projects as a
	// directory registered by nobody.
	e.register(e.scope("globex", "gus"), "classified", "t2/vault")
	theirs := e.path("t2/vault/src")
	before := e.dump()
	cases := []struct {
		name  string
		spec  Spec
		want  error
		hints []string
	}{
		{"unregistered workspace", Spec{Workspace: loose}, project.ErrOutside, []string{"webapp", "infra", e.path("src/app")}},
		{"another tenant's root", Spec{Workspace: theirs}, project.ErrOutside, []string{"webapp", "infra"}},
		{"named project, workspace outside it", Spec{Project: "webapp", Workspace: loose}, project.ErrOutside, []string{"webapp", e.path("src/app")}},
		{"named project, workspace of another project", Spec{Project: "webapp", Workspace: e.path("src/infra/modules")}, ErrInvalid, []string{"infra", "webapp"}},
		{"named project, another tenant's root", Spec{Project: "webapp", Workspace: theirs}, project.ErrOutside, []string{"webapp"}},
		{"unknown project", Spec{Project: "nope"}, project.ErrNotFound, []string{"nope"}},
		{"another tenant's project", Spec{Project: "classified"}, project.ErrNotFound, []string{"no project \"classified\" in tenant \"acme\""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.spec.Title = c.name
			_, err := e.l.start(e.ctx, member, c.spec)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v; want %v", err, c.want)
			}
			for _, h := range c.hints {
				if !strings.Contains(err.Error(), h) {
					t.Errorf("error %q does not name %q", err, h)
				}
			}
			if strings.Contains(err.Error(), "globex") || (c.spec.Project != "classified" && strings.Contains(err.Error(), "classified")) {
				t.Errorf("error %q names the other tenant or its project", err)
			}
		})
	}
	if before != e.dump() {
		t.Fatal("refused starts wrote to the store")
	}
	// The local operator's unregistered workspace becomes a project; a
	// member's never does.
	s, err := e.l.start(e.ctx, e.scope("acme", "alice"), Spec{Title: "local", Workspace: loose})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := project.Get(e.ctx, admin, "scratch"); err != nil || s.Project != p.ID || s.Dir != "." {
		t.Fatalf("local start in %s: project %+v, %v", loose, p, err)
	}
}
