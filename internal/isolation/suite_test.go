package isolation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/sourcegraph/jsonrpc2"

	"github.com/coditect/coditect/ide"
	"github.com/coditect/coditect/server"
	"github.com/coditect/coditect/server/servertest"
	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/review"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/task"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/tools"
	"github.com/coditect/coditect/webview"
)

// marker appears in every piece of B's data and in no attack value.
const marker = "SECRET-OF-B-7f3a"

const tenantA, tenantB = "iso-a", "iso-b"

// reporter is what the checks report through: the *testing.T of
// TestIsolation, where every report fails the test, or a recorder of
// TestSuiteCatchesPlantedLeaks, which collects the reports of a check run
// against a planted leak. A leak report names its surface first ("mcp: ",
// "rest: ", "feed: ", "ide: ") and says "shows B's" (something of B's in a
// response) or "B's range" (B's keys counted into or changed).
type reporter interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	TempDir() string
}

type world struct {
	store  kv.Store
	dir    *tenant.Directory
	tokenA string
	scA    *tenant.Scope
	// tokenB is a token of B's alice (labelled with the marker), for the
	// planted leaks.
	tokenB string
	// B's ids, which A tries to reach: its session, agent, task, event
	// and token ids, its project's id and name.
	idsB []string
	// few limits the attack values to a handful (see attacks).
	few bool
	// rootA and rootB are the checkout roots of A's project (projA,
	// "alpha") and of B's (projB), siblings in one directory. B's files
	// carry the marker (one in its name); A's root holds a symbolic link
	// to B's, link-to-b, as a checkout can. filesB is B's files as
	// written: no surface may change them.
	rootA, rootB string
	projA, projB project.Project
	filesB       map[string]string
}

// fileB is a file of B's root the attacks aim at.
const fileB = "secret.txt"

func openStore(t *testing.T) kv.Store {
	t.Helper()
	u := "sqlite://" + filepath.ToSlash(filepath.Join(t.TempDir(), "coditect.db"))
	if cf := os.Getenv("FDB_CLUSTER_FILE"); cf != "" {
		// Needs a binary built with -tags fdb; the tenants are iso-a and
		// iso-b, cleared before and after (see clearTenants). The prefix
		// keeps the suite off the whole keyspace, which only a cluster's
		// one store may use.
		u = "fdb://" + cf + "?prefix=coditect-isolation%2F"
	}
	st, err := storage.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	clearTenants(t, st)
	t.Cleanup(func() { clearTenants(t, st); st.Close() })
	return st
}

// clearTenants removes the suite's tenants, so a shared FDB cluster starts
// clean; on a fresh embedded store it clears nothing.
func clearTenants(t *testing.T, st kv.Store) {
	t.Helper()
	if os.Getenv("FDB_CLUSTER_FILE") == "" {
		return
	}
	_, err := st.Update(context.Background(), func(tx kv.Tx) error {
		for _, id := range []string{tenantA, tenantB} {
			sp, err := keyspace.Tenant(id)
			if err != nil {
				return err
			}
			b, e := sp.Range()
			tx.ClearRange(b, e)
		}
		// And their projects' roots, in the global root registry.
		b, e := keyspace.AllRoots().Range()
		roots, err := kv.Collect(tx.GetRange(b, e, kv.RangeOptions{}))
		for _, r := range roots {
			var v struct{ Tenant string }
			if json.Unmarshal(r.Value, &v) == nil && (v.Tenant == tenantA || v.Tenant == tenantB) {
				tx.Clear(r.Key)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func newWorld(t *testing.T) *world {
	t.Helper()
	return newWorldAt(t, t.TempDir())
}

// newWorldAt is newWorld with the projects' roots in base: worlds built
// on the same base have the same paths (each store has its own root
// registry).
func newWorldAt(t *testing.T, base string) *world {
	t.Helper()
	ctx := context.Background()
	st := openStore(t)
	w := &world{store: st, dir: tenant.NewDirectory(st, "isolation")}
	base, err := project.Canonical(base)
	if err != nil {
		t.Fatal(err)
	}
	w.rootA, w.rootB = filepath.Join(base, "a-root"), filepath.Join(base, "b-root")
	for name, content := range map[string]string{
		filepath.Join(w.rootA, "a.txt"):                       "A's file\n",
		filepath.Join(w.rootA, "src", "main.go"):              "package main // A's\n",
		filepath.Join(w.rootB, fileB):                         "the secret of B: " + marker + "\n",
		filepath.Join(w.rootB, "src", "main.go"):              "package main // " + marker + "\n",
		filepath.Join(w.rootB, "notes-"+marker+".txt"):        "x\n",
		filepath.Join(w.rootB, "src", marker, "deep", "x.go"): "package deep // " + marker + "\n",
	} {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(w.rootB, filepath.Join(w.rootA, "link-to-b")); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil && !errors.Is(err, tenant.ErrExists) {
			t.Fatal(err)
		}
	}
	for _, id := range []string{tenantA, tenantB} {
		_, err := w.dir.CreateTenant(ctx, id, "")
		must(err)
		_, err = w.dir.CreateUser(ctx, id, "alice", "")
		must(err)
	}
	w.tokenA, _, err = w.dir.IssueToken(ctx, tenantA, "alice", tenant.RoleAdmin, tenant.TokenOptions{})
	must(err)
	w.scA, err = w.dir.Authenticate(ctx, w.tokenA)
	must(err)
	pl, err := project.Register(ctx, w.scA, "alpha", w.rootA, project.RootOptions{})
	must(err)
	w.projA = pl.Project
	// B: a user named like A's, so that a leak by user name would show,
	// and one of every kind of record, each carrying the marker.
	_, err = w.dir.CreateUser(ctx, tenantB, "bob-"+marker, "")
	must(err)
	tokB, tb, err := w.dir.IssueToken(ctx, tenantB, "alice", tenant.RoleAdmin, tenant.TokenOptions{Label: marker})
	must(err)
	scB, err := w.dir.Authenticate(ctx, tokB)
	must(err)
	w.projB, err = project.Create(ctx, scB, project.Spec{Name: "bravo-project", Remote: "git@example.com:" + marker + ".git"})
	must(err)
	w.projB, err = project.AddRoot(ctx, scB, w.projB.ID, w.rootB, project.RootOptions{})
	must(err)
	s, err := session.Start(ctx, scB, session.Spec{Title: "work " + marker, Workspace: filepath.Join(w.rootB, "src")})
	must(err)
	a, err := agent.Register(ctx, scB, agent.Registration{Name: "agent-" + marker, Client: "test", Model: "m-" + marker, Cohort: "c-" + marker})
	must(err)
	asc, err := scB.WithAgent(a.ID)
	must(err)
	_, err = lease.Acquire(ctx, asc, lease.Request{Resource: project.File{Project: w.projB.ID, Rel: "src/" + marker + "/main.go"}.String()})
	must(err)
	_, err = message.Send(ctx, scB, message.Outgoing{To: message.To{Agent: a.ID}, Body: "hello " + marker})
	must(err)
	// A person's inbox: B's alice (named like A's) has a message.
	toAlice, err := message.Send(ctx, asc, message.Outgoing{To: message.To{User: "alice"}, Subject: "for " + marker, Body: "hello alice " + marker})
	must(err)
	tk, err := task.Create(ctx, scB, task.New{Title: "task " + marker, Project: w.projB.ID})
	must(err)
	ev := scB.Event("note.added", "note "+marker)
	ev.Session, ev.Project, ev.Path = s.ID, w.projB.ID, "src/"+marker+"/main.go"
	evs, err := scB.Log().Append(ctx, ev)
	must(err)
	// A review policy and a pending proposal of B's.
	_, err = review.SetPolicy(ctx, scB, w.projB.ID, []review.Rule{{Glob: "src/" + marker + "/**", Agents: []string{"agent-" + marker}}})
	must(err)
	held, err := lease.Acquire(ctx, asc, lease.Request{Resource: project.File{Project: w.projB.ID, Rel: "src/" + marker + "/deep/x.go"}.String()})
	must(err)
	rv, err := review.Propose(ctx, asc, review.Spec{Kind: review.Write, Project: w.projB.ID, Path: "src/" + marker + "/deep/x.go", Agent: a.ID, Session: s.ID,
		New: []byte("proposed " + marker), Diff: "+proposed " + marker, Leases: []review.Held{{Resource: held.Resource, Token: held.Token}}})
	must(err)
	w.idsB = []string{s.ID, a.ID, tk.ID, evs[0].ID, tb.ID, w.projB.ID, w.projB.Name, toAlice.ID, rv.ID}
	w.tokenB = tokB
	w.filesB = w.files(t)
	return w
}

// files reads B's root: every file's content and every link's target,
// by path.
func (w *world) files(t reporter) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(w.rootB, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			out[p] = "-> " + target
			return err
		case d.IsDir():
			out[p+"/"] = ""
		default:
			b, err := os.ReadFile(p)
			out[p] = string(b)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("B's files: %v", err)
	}
	return out
}

// attacks are the values A sends where an id, a cursor or a name goes:
// B's ids as they are and wrapped in separators, forged cursors, and
// malformed and oversized strings. With w.few, only "", B's ids as they
// are and "head": the planted-leak test in -short mode, where the point is
// that each check reports, not the breadth of the attack.
func (w *world) attacks() []string {
	if w.few {
		return append(append([]string{""}, w.idsB...), "head")
	}
	var out []string
	for _, id := range w.idsB {
		out = append(out, id, tenantB+"/"+id, "../"+tenantB+"/"+id, id+"\x00", "\x00"+tenantB+"\x00"+id, id+"/")
	}
	return append(out,
		"", tenantB, "/", "..", "%2F", "\x00", "\xff", "\xff\xfe"+tenantB, "\x02coditect\x00\x02t\x00",
		"000000000000000000000000", "ffffffffffffffffffffffff", "zzzzzzzzzzzzzzzzzzzzzzzz", "-1",
		strings.Repeat("a", 11000), strings.Repeat("\xff", 300), "*", "%", "head",
	)
}

// snapshot is B's key range, byte for byte, and B's entries in the global
// registry of project roots.
func (w *world) snapshot(t reporter) []kv.KeyValue {
	t.Helper()
	sp, err := keyspace.Tenant(tenantB)
	if err != nil {
		t.Fatalf("%v", err)
	}
	b, e := sp.Range()
	var out []kv.KeyValue
	err = w.store.View(context.Background(), func(tx kv.ReadTx) error {
		out = out[:0]
		it := tx.GetRange(b, e, kv.RangeOptions{})
		for it.Next() {
			kv := it.KeyValue()
			out = append(out, kv)
		}
		if err := it.Err(); err != nil {
			return err
		}
		roots, err := w.roots(tx, tenantB)
		out = append(out, roots...)
		return err
	})
	if err != nil {
		t.Fatalf("%v", err)
	}
	if len(out) == 0 {
		t.Fatalf("B's range is empty: the snapshot would prove nothing")
	}
	return out
}

// roots returns the entries of tenantID's projects' roots in the global
// registry.
func (w *world) roots(tx kv.ReadTx, tenantID string) ([]kv.KeyValue, error) {
	b, e := keyspace.AllRoots().Range()
	all, err := kv.Collect(tx.GetRange(b, e, kv.RangeOptions{}))
	var out []kv.KeyValue
	for _, r := range all {
		var v struct{ Tenant string }
		if json.Unmarshal(r.Value, &v) == nil && v.Tenant == tenantID {
			out = append(out, r)
		}
	}
	return out, err
}

// unchanged compares B's range with before, B's files with what was
// written, and checks that no root of A's reaches B's files.
func (w *world) unchanged(t reporter, before []kv.KeyValue, surface string) {
	t.Helper()
	if got := w.files(t); !maps.Equal(got, w.filesB) {
		t.Errorf("%s: B's range of files changed: %d entries under %s, had %d", surface, len(got), w.rootB, len(w.filesB))
	}
	var rootsA []kv.KeyValue
	if err := w.store.View(context.Background(), func(tx kv.ReadTx) (err error) {
		rootsA, err = w.roots(tx, tenantA)
		return err
	}); err != nil {
		t.Fatalf("%v", err)
	}
	for _, r := range rootsA {
		if k := string(r.Key); strings.Contains(k, w.rootB) || !strings.Contains(k, w.rootA) {
			t.Errorf("%s: B's range of files is reachable: A has a root %s besides its own %s", surface, kv.DisplayKey(r.Key), w.rootA)
		}
	}
	after := w.snapshot(t)
	if len(after) != len(before) {
		t.Fatalf("%s: B's range has %d keys, had %d", surface, len(after), len(before))
	}
	for i := range before {
		if !bytes.Equal(before[i].Key, after[i].Key) || !bytes.Equal(before[i].Value, after[i].Value) {
			t.Fatalf("%s: B's range changed at key %q", surface, after[i].Key)
		}
	}
}

// leaks reports what of B a response shows: the marker, or B's tenant id
// or one of B's ids that the request did not carry (an error may echo what
// was sent). B's tenant id counts: a response bound to B that carries no
// record of B's (whoami, the tenant record and its event count) names it.
func (w *world) leaks(sent, response string) string {
	if strings.Contains(response, marker) {
		return marker
	}
	for _, id := range append([]string{tenantB}, w.idsB...) {
		if strings.Contains(response, id) && !strings.Contains(sent, id) && !w.aHolds(id) {
			return id
		}
	}
	return ""
}

// aHolds reports whether A's own key range contains s: an earlier attack
// may have stored one of B's ids in A's data (a task titled with it), and
// A may read that back.
func (w *world) aHolds(s string) bool {
	sp, err := keyspace.Tenant(tenantA)
	if err != nil {
		return false
	}
	b, e := sp.Range()
	found := false
	_ = w.store.View(context.Background(), func(tx kv.ReadTx) error {
		found = false
		it := tx.GetRange(b, e, kv.RangeOptions{})
		for it.Next() {
			kv := it.KeyValue()
			if bytes.Contains(kv.Key, []byte(s)) || bytes.Contains(kv.Value, []byte(s)) {
				found = true
				return nil
			}
		}
		return it.Err()
	})
	return found
}

func TestIsolation(t *testing.T) {
	w := newWorld(t)
	before := w.snapshot(t)
	srv := w.mcpServer(t)
	t.Run("mcp", func(t *testing.T) { w.mcpTools(t, srv.HTTPHandler(server.HTTPOptions{})) })
	// Closing commits the audit records the server queued: they land
	// before the snapshot is compared.
	closeMCP(t, srv)
	w.unchanged(t, before, "mcp")
	rest := webview.New(w.dir, suiteWebOptions())
	t.Run("rest", func(t *testing.T) { w.restRoutes(t, rest, rest.Routes()) })
	rest.Shutdown(context.Background())
	w.unchanged(t, before, "rest")
	// The feed phase has B write while A's feeds are open: it takes its
	// own snapshot after that write.
	feed := webview.New(w.dir, suiteWebOptions())
	t.Run("feed", func(t *testing.T) { before = w.feedFilters(t, feed) })
	feed.Shutdown(context.Background())
	w.unchanged(t, before, "feed")
	t.Run("ide", func(t *testing.T) { w.ideCommands(t, ideAs(w.scA)) })
	w.unchanged(t, before, "ide")
}

// mcpServer is the daemon's MCP server over w's tenants, with every
// toolset; closeMCP stops it.
func (w *world) mcpServer(t *testing.T) *server.Server {
	t.Helper()
	srv, err := server.New(w.dir, server.Options{Toolsets: []string{"all"}, Tools: tools.Config{}})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func closeMCP(t *testing.T, srv *server.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Close(ctx); err != nil {
		t.Error(err)
	}
}

// ideAs serves one IDE connection as sc's principal.
func ideAs(sc *tenant.Scope) func(ctx context.Context, in io.Reader, out io.Writer) {
	return func(ctx context.Context, in io.Reader, out io.Writer) { ide.Serve(ctx, sc, in, out, ide.Options{}) }
}

// stringProps returns the names of a tool's string (or string array)
// arguments, from its input schema.
func stringProps(t reporter, tl *tools.Tool) []string {
	var s struct {
		Properties map[string]struct {
			Type any `json:"type"`
		} `json:"properties"`
	}
	raw := tl.Def.RawInputSchema
	if len(raw) == 0 {
		var err error
		if raw, err = json.Marshal(tl.Def.InputSchema); err != nil {
			t.Fatalf("%v", err)
		}
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s: schema: %v", tl.Name(), err)
	}
	var out []string
	for name, p := range s.Properties {
		if fmt.Sprint(p.Type) == "string" {
			out = append(out, name)
		}
	}
	return out
}

// Every tool of every toolset, with B's ids and forged values in each of
// its string arguments (one at a time, and all at once), over the MCP
// endpoint h (served at server.MCPPath) with A's token.
func (w *world) mcpTools(t reporter, h http.Handler) {
	mux := http.NewServeMux()
	mux.Handle(server.MCPPath, h)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "isolation", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: hs.URL + server.MCPPath,
		HTTPClient: servertest.BearerClient(w.tokenA), MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("mcp: connect: %v", err)
	}
	defer cs.Close()
	calls := 0
	for _, set := range tools.Catalog(tools.Config{}) {
		for _, tl := range set.Tools {
			props := stringProps(t, tl)
			for _, v := range w.attacks() {
				variants := []map[string]any{}
				all := map[string]any{}
				for _, p := range props {
					variants = append(variants, map[string]any{p: v})
					all[p] = v
				}
				variants = append(variants, all)
				for _, args := range variants {
					res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tl.Name(), Arguments: args})
					calls++
					if err != nil {
						if ctx.Err() != nil {
							t.Fatalf("mcp: %v", err)
						}
						if leak := w.leaks(v, err.Error()); leak != "" {
							t.Errorf("mcp: %s %q: the error shows B's %q: %v", tl.Name(), clip(v), leak, err)
						}
						continue
					}
					b, _ := json.Marshal(res)
					if leak := w.leaks(v, string(b)); leak != "" {
						t.Errorf("mcp: %s(%s=%q): shows B's %q: %s", tl.Name(), keys(args), clip(v), leak, clip(string(b)))
					}
				}
			}
		}
	}
	t.Logf("%d tool calls", calls)
	w.mcpFiles(ctx, t, cs)
}

func keys(m map[string]any) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return strings.Join(out, ",")
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// restCase is how the suite attacks one route: the query parameters it
// reads, and a body template for writes (%s is the attack value, quoted).
type restCase struct {
	query []string
	body  string
}

// restCases must name every route of the webview mux (TestRESTCasesCoverRoutes).
var restCases = map[string]restCase{
	"GET /api/v1/whoami":                {},
	"GET /api/v1/kinds":                 {},
	"GET /api/v1/events":                {query: []string{"user", "session", "agent", "kind", "path", "project", "since", "until", "order", "cursor", "limit"}},
	"GET /api/v1/events/{id}":           {},
	"GET /api/v1/files":                 {query: []string{"limit", "path", "agent", "user", "project"}},
	"GET /api/v1/sessions":              {query: []string{"user", "agent", "workspace", "project", "state", "since", "until", "order", "cursor", "limit"}},
	"GET /api/v1/sessions/{id}":         {},
	"GET /api/v1/sessions/{id}/summary": {},
	"GET /api/v1/agents":                {query: []string{"cohort", "liveness", "active"}},
	"GET /api/v1/agents/{id}":           {},
	"GET /api/v1/leases":                {query: []string{"agent"}},
	"GET /api/v1/tasks":                 {query: []string{"state", "assignee", "project", "after", "limit"}},
	"GET /api/v1/projects":              {},
	"GET /api/v1/projects/{id}":         {},
	"POST /api/v1/projects":             {body: `{"name":%s,"root":%s}`},
	"GET /api/v1/tasks/{id}":            {},
	"GET /api/v1/tenant":                {},
	"GET /api/v1/users":                 {},
	"GET /api/v1/tokens":                {},
	"POST /api/v1/tokens":               {body: `{"user":%s,"agent":%s,"label":"x"}`},
	"DELETE /api/v1/tokens/{id}":        {},
	"GET /api/v1/feed":                  {}, // attacked by feedFilters
	"POST /api/v1/messages":             {body: `{"to":%s,"reply_to":%s,"body":"x"}`},
	"GET /api/v1/inbox":                 {query: []string{"limit", "after", "thread"}},
	"POST /api/v1/inbox/ack":            {body: `{"ids":[%s,%s]}`},
	"POST /api/v1/tasks":                {body: `{"title":%s,"project":%s}`},
	"PATCH /api/v1/tasks/{id}":          {body: `{"version":1,"assignee":%s,"note":%s}`},
	"DELETE /api/v1/leases/{resource}":  {query: []string{"reason"}},
	"POST /api/v1/sessions/{id}/end":    {body: `{"status":"completed","summary":%s,"x":%s}`},

	// Review before write (webview/reviews.go).
	"GET /api/v1/reviews":                        {query: []string{"project", "all"}},
	"GET /api/v1/reviews/{id}":                   {},
	"POST /api/v1/reviews/{id}/accept":           {},
	"POST /api/v1/reviews/{id}/reject":           {body: `{"reason":%[1]s}`},
	"GET /api/v1/projects/{id}/review-policy":    {},
	"PUT /api/v1/projects/{id}/review-policy":    {body: `{"rules":[{"glob":%s,"agents":[%s]}]}`},
	"DELETE /api/v1/projects/{id}/review-policy": {},
}

func TestRESTCasesCoverRoutes(t *testing.T) {
	h := webview.New(tenant.NewDirectory(nil, "routes"), webview.Options{})
	for _, r := range h.Routes() {
		if _, ok := restCases[r]; !ok {
			t.Errorf("route %q has no isolation case: add it to restCases", r)
		}
	}
	if n := len(h.Routes()); n != len(restCases) {
		t.Errorf("%d routes, %d cases: remove the cases of removed routes", n, len(restCases))
	}
}

// Every route of routes (the webview mux's), served by h, with A's token.
func (w *world) restRoutes(t reporter, h http.Handler, routes []string) {
	hs := httptest.NewServer(h)
	defer hs.Close()
	do := func(method, target, body, sent string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, hs.URL+target, rd)
		if err != nil {
			t.Fatalf("rest: %s %q: %v", method, clip(target), err)
		}
		req.Header.Set("Authorization", "Bearer "+w.tokenA)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := hs.Client().Do(req)
		if err != nil {
			t.Fatalf("rest: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Errorf("rest: %s %s: %d %s", method, clip(target), resp.StatusCode, clip(string(b)))
		}
		if leak := w.leaks(sent, string(b)); leak != "" {
			t.Errorf("rest: %s %s: shows B's %q: %s", method, clip(target), leak, clip(string(b)))
		}
	}
	// Roots of A's project in or around B's checkout are refused.
	if slices.Contains(routes, "POST /api/v1/projects") {
		for _, root := range []string{w.rootB, w.rootB + "/src", w.rootA + "/link-to-b", filepath.Dir(w.rootB), "/"} {
			for _, name := range []string{"alpha", "new-" + filepath.Base(root)} {
				body := string(mustJSON(map[string]string{"name": name, "root": root}))
				do(http.MethodPost, "/api/v1/projects", body, body)
			}
		}
	}
	for _, r := range routes {
		c := restCases[r]
		method, path, _ := strings.Cut(r, " ")
		if path == webview.FeedPath {
			continue
		}
		for _, v := range w.attacks() {
			p := strings.NewReplacer("{id}", url.PathEscape(v), "{resource}", url.PathEscape(v)).Replace(path)
			if p != path && v == "" {
				continue // that is another route
			}
			body := ""
			if c.body != "" {
				q, _ := json.Marshal(v)
				body = fmt.Sprintf(c.body, q, q)
			}
			do(method, p, body, v)
			for _, name := range c.query {
				do(method, p+"?"+url.Values{name: {v}}.Encode(), body, v)
			}
		}
	}
}

// Every field of a feed subscription's filter, and the cursor, with the
// attack values, over the feed that h serves at webview.FeedPath: each
// subscription is refused (4400) or streams only A's events, while B
// appends.
func (w *world) feedFilters(t reporter, h http.Handler) []kv.KeyValue {
	hs := httptest.NewServer(h)
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var subs []webview.Subscription
	ft := reflect.TypeFor[webview.FeedFilter]()
	for _, v := range w.attacks() {
		subs = append(subs, webview.Subscription{Cursor: v})
		for i := range ft.NumField() {
			var f webview.FeedFilter
			reflect.ValueOf(&f).Elem().Field(i).SetString(v)
			subs = append(subs, webview.Subscription{Cursor: "", Filter: f})
		}
	}
	type open struct {
		c   *websocket.Conn
		sub webview.Subscription
	}
	var feeds []open
	for _, sub := range subs {
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+webview.FeedPath,
			&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + w.tokenA}}})
		if err != nil {
			t.Fatalf("feed: dial: %v", err)
		}
		defer c.CloseNow()
		c.SetReadLimit(32 << 20)
		sub.Type = "subscribe"
		if err := wsjson.Write(ctx, c, sub); err != nil {
			t.Fatalf("feed: subscribe: %v", err)
		}
		feeds = append(feeds, open{c, sub})
	}
	// B writes while A's feeds are open: none of it may reach them.
	scB := w.scopeB(t)
	if _, err := scB.Log().Append(ctx, scB.Event("note.added", "live "+marker)); err != nil {
		t.Fatalf("feed: B's write: %v", err)
	}
	before := w.snapshot(t)
	// Then A writes, so unfiltered feeds have something of A's to deliver;
	// every feed is read until it closes or the deadline passes.
	if _, err := w.scA.Log().Append(ctx, w.scA.Event("note.added", "A's note")); err != nil {
		t.Fatalf("feed: A's write: %v", err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer rcancel()
	done := make(chan string, len(feeds))
	for _, f := range feeds {
		go func() {
			var sent strings.Builder
			json.NewEncoder(&sent).Encode(f.sub)
			for {
				_, b, err := f.c.Read(rctx)
				if err != nil {
					if st := websocket.CloseStatus(err); st != -1 && st != webview.StatusBadRequest {
						done <- fmt.Sprintf("feed: subscription %s: closed with %v", clip(sent.String()), err)
						return
					}
					done <- ""
					return
				}
				if leak := w.leaks(f.sub.Cursor+string(mustJSON(f.sub.Filter)), string(b)); leak != "" {
					done <- fmt.Sprintf("feed: subscription %s: shows B's %q: %s", clip(sent.String()), leak, clip(string(b)))
					return
				}
			}
		}()
	}
	for range feeds {
		if msg := <-done; msg != "" {
			t.Errorf("%s", msg)
		}
	}
	return before
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

// scopeB is a scope of B's, for writing while A attacks.
func (w *world) scopeB(t reporter) *tenant.Scope {
	t.Helper()
	sc, err := w.dir.Local(context.Background(), tenantB, "alice")
	if err != nil {
		t.Fatalf("%v", err)
	}
	return sc
}

type pipeRWC struct {
	r *io.PipeReader
	w *io.PipeWriter
}

func (p pipeRWC) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p pipeRWC) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p pipeRWC) Close() error                { p.r.Close(); return p.w.Close() }

// ideSession connects a JSON-RPC client to an IDE server that serve runs
// over pipes, initializes it with rootURI as the workspace and returns the
// connection, the commands the server advertises, and a function that
// closes it all and waits for serve to return.
func ideSession(ctx context.Context, t reporter, serve func(ctx context.Context, in io.Reader, out io.Writer), root string) (*jsonrpc2.Conn, []string, func()) {
	ctx, cancel := context.WithCancel(ctx)
	sr, cw := io.Pipe()
	cr, sw := io.Pipe()
	served := make(chan struct{})
	go func() {
		defer close(served)
		serve(ctx, sr, sw)
		sw.Close()
	}()
	conn := jsonrpc2.NewConn(ctx, jsonrpc2.NewBufferedStream(pipeRWC{cr, cw}, jsonrpc2.VSCodeObjectCodec{}),
		jsonrpc2.HandlerWithError(func(context.Context, *jsonrpc2.Conn, *jsonrpc2.Request) (any, error) { return nil, nil }))
	done := func() { cw.Close(); conn.Close(); cancel(); <-served }
	var init struct {
		Capabilities struct {
			ExecuteCommandProvider struct {
				Commands []string `json:"commands"`
			} `json:"executeCommandProvider"`
		} `json:"capabilities"`
	}
	if err := conn.Call(ctx, "initialize", map[string]any{"processId": nil, "rootUri": "file://" + root, "capabilities": map[string]any{}}, &init); err != nil {
		done()
		t.Fatalf("ide: initialize: %v", err)
	}
	if err := conn.Notify(ctx, "initialized", map[string]any{}); err != nil {
		done()
		t.Fatalf("ide: initialized: %v", err)
	}
	return conn, init.Capabilities.ExecuteCommandProvider.Commands, done
}

// Every command the IDE server advertises, with the attack values in each
// of its arguments, on one connection that serve runs (as A, in
// TestIsolation).
func (w *world) ideCommands(t reporter, serve func(ctx context.Context, in io.Reader, out io.Writer)) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, cmds, done := ideSession(ctx, t, serve, w.rootA)
	defer done()
	if len(cmds) == 0 {
		t.Fatalf("ide: the IDE server advertises no commands")
	}
	for _, cmd := range cmds {
		for _, v := range w.attacks() {
			for _, arg := range []map[string]any{
				{"title": v, "workspace": v, "project": v, "status": v, "summary": v, "uri": v},
				{"id": v, "reason": v, "project": v},
				{"reply_to": v, "to": v, "body": "x"},
				{"uri": "file:///" + v, "limit": 5},
				{"uri": "file:///src/" + marker[:6] + "/" + v},
				{"workspace": "/src/" + v},
				{"uri": "file://" + w.rootB + "/" + v},
				{"uri": "file://" + w.rootA + "/link-to-b/" + v},
				{"uri": "file://" + w.rootA + "/../b-root/" + v},
				{"workspace": w.rootB + "/" + v},
				{"project": w.projB.ID, "workspace": w.rootA + "/" + v},
			} {
				var res json.RawMessage
				err := conn.Call(ctx, "workspace/executeCommand", map[string]any{"command": cmd, "arguments": []any{arg}}, &res)
				if ctx.Err() != nil {
					t.Fatalf("ide: %v", ctx.Err())
				}
				out := string(res)
				if err != nil {
					out = err.Error()
				}
				if leak := w.leaks(string(mustJSON(arg)), out); leak != "" {
					t.Errorf("ide: %s %s: shows B's %q: %s", cmd, clip(string(mustJSON(arg))), leak, clip(out))
				}
			}
		}
	}
}

// suiteWebOptions are the dashboard's options in the suite: the suite
// opens every attack subscription of the feed at once with one token,
// more than the per-token and per-tenant caps allow (webview's own tests
// and internal/faults test the caps).
func suiteWebOptions() webview.Options {
	return webview.Options{MaxFeedsPerToken: 1 << 12, MaxFeedsPerTenant: 1 << 12}
}
