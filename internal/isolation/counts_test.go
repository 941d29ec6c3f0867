package isolation_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/server"
	"github.com/coditect/coditect/server/servertest"
	"github.com/coditect/coditect/storage/agent"
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

// The count check. The read check (world.leaks) finds B's marker and ids
// in A's responses; it cannot see a number derived from B's data — B's
// event count in A's tenant record, B's sessions counted into a summary
// of A's. The count check is differential: it builds the world twice,
// identically except that in the second B has more of everything it can
// have (users, tokens, sessions, agents, leases, messages, tasks, events,
// some of them live while A reads), runs the same sequence of A's reads
// on each surface in both, normalizes what legitimately differs between
// two runs (see normalizer) and requires A's responses to be identical.
// A difference is reported as "<surface>: <operation>: A's response
// depends on B's activity: …".

// countWorld is a world (newWorld) where A has records of its own, so
// that A's reads return lists, counts and summaries to compare, and B has
// extra activity when extra is set.
type countWorld struct {
	*world
	// A's ids: session, agent, task, event, token, project.
	idsA []string
	// extra: B has more activity than in the other world.
	extra bool
	// scAgentA is A's alice acting as A's agent (for the feed's sentinel).
	scAgentA *tenant.Scope
}

// pathA is the path of A's records, relative to its project's root; B's
// extra records use it too (in B's project), so that a query that mixes
// tenants counts them. B's extra project is named as A's is, projectA.
const (
	pathA    = "src/main.go"
	projectA = "alpha"
)

func newCountWorld(t *testing.T, root string, extra bool) *countWorld {
	t.Helper()
	ctx := context.Background()
	cw := &countWorld{world: newWorldAt(t, root), extra: extra}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	sc := cw.scA
	s, err := session.Start(ctx, sc, session.Spec{Title: "A's work", Project: projectA})
	must(err)
	a, err := agent.Register(ctx, sc, agent.Registration{Name: "agent-a", Client: "test", Model: "m-a", Cohort: "c-a"})
	must(err)
	asc, err := sc.WithAgent(a.ID)
	must(err)
	cw.scAgentA = asc
	_, err = lease.Acquire(ctx, asc, lease.Request{Resource: project.File{Project: cw.projA.ID, Rel: pathA}.String()})
	must(err)
	_, err = message.Send(ctx, sc, message.Outgoing{To: message.To{Agent: a.ID}, Body: "hello A"})
	must(err)
	tk, err := task.Create(ctx, sc, task.New{Title: "A's task", Project: cw.projA.ID})
	must(err)
	ev := asc.Event("note.added", "A's note")
	ev.Session, ev.Project, ev.Path = s.ID, cw.projA.ID, pathA
	evs, err := sc.Log().Append(ctx, ev)
	must(err)
	cw.idsA = []string{s.ID, a.ID, tk.ID, evs[0].ID, sc.Principal().TokenID, cw.projA.ID}
	if extra {
		cw.moreOfB(t, 3)
	}
	return cw
}

// moreOfB gives B n more of every kind of record, with A's names, paths
// and kinds (a user alice, path pathA, kind note.added), each carrying
// the marker.
func (cw *countWorld) moreOfB(t *testing.T, n int) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	scB := cw.scopeB(t)
	// A project of B's named as A's, with a root of its own.
	extra := filepath.Join(filepath.Dir(cw.rootB), "b-"+projectA)
	must(os.MkdirAll(extra, 0o755))
	pl, err := project.Register(ctx, scB, projectA, extra, project.RootOptions{})
	must(err)
	for i := range n {
		tag := fmt.Sprintf("%s-%d", marker, i)
		_, err := cw.dir.CreateUser(ctx, tenantB, "carol-"+tag, "")
		must(err)
		_, _, err = cw.dir.IssueToken(ctx, tenantB, "alice", tenant.RoleMember, tenant.TokenOptions{Label: tag})
		must(err)
		s, err := session.Start(ctx, scB, session.Spec{Title: "more " + tag, Project: projectA})
		must(err)
		a, err := agent.Register(ctx, scB, agent.Registration{Name: "agent-" + tag, Client: "test", Model: "m-a", Cohort: "c-a"})
		must(err)
		asc, err := scB.WithAgent(a.ID)
		must(err)
		res := pathA // one exclusive holder at a time
		if i > 0 {
			res = "src/" + tag + ".go"
		}
		_, err = lease.Acquire(ctx, asc, lease.Request{Resource: project.File{Project: pl.Project.ID, Rel: res}.String()})
		must(err)
		_, err = message.Send(ctx, scB, message.Outgoing{To: message.To{Agent: a.ID}, Body: "hello " + tag})
		must(err)
		_, err = task.Create(ctx, scB, task.New{Title: "task " + tag, Project: pl.Project.ID})
		must(err)
		rvLease, err := lease.Acquire(ctx, asc, lease.Request{Resource: project.File{Project: pl.Project.ID, Rel: "src/rv-" + tag + ".go"}.String()})
		must(err)
		_, err = review.Propose(ctx, asc, review.Spec{Kind: review.Write, Project: pl.Project.ID, Path: "src/rv-" + tag + ".go", Agent: a.ID, Session: s.ID,
			New: []byte("proposed " + tag), Leases: []review.Held{{Resource: rvLease.Resource, Token: rvLease.Token}}})
		must(err)
		for range 3 {
			ev := asc.Event("note.added", "note "+tag)
			ev.Session, ev.Project, ev.Path = s.ID, pl.Project.ID, pathA
			_, err = scB.Log().Append(ctx, ev)
			must(err)
		}
		if i%2 == 0 {
			_, err = session.End(ctx, scB, s.ID, session.Outcome{Status: session.Completed, Summary: "done " + tag})
			must(err)
		}
	}
}

// transcript is what A's reads on one surface returned, in order.
type transcript struct {
	ops  []string // the operation, the same in both worlds
	outs []string // its response, raw
}

func (tr *transcript) add(op, out string) {
	tr.ops = append(tr.ops, op)
	tr.outs = append(tr.outs, out)
}

// values are what A's reads send where an id goes: A's ids, B's ids (the
// same kinds, in the same order, in both worlds) and a few others.
func (cw *countWorld) values() []string {
	return append(append(append([]string{}, cw.idsA...), cw.idsB...), "", "head", "alice", pathA, projectA, "note.added", "1")
}

// normalizer replaces, in one world's responses, what legitimately
// differs between two runs of the same operations: the ids the store or
// the layers generate (versionstamps, which are also event ids and
// cursors; session, agent, task, message and token ids), token secrets
// and times. A's and B's seeded ids become fixed names ("A0", "B3"), ids
// met later are numbered in order of first appearance over the whole
// transcript, so a response that names a different record, or more of
// them, still differs. Other numbers (counts, sizes, limits) are kept.
type normalizer struct {
	// names replaces the seeded ids by their names, in operations.
	names *strings.Replacer
	fixed map[string]string
	seen  map[string]string
	n     map[string]int
}

var (
	reSecret   = regexp.MustCompile(`cdt_[A-Za-z0-9_-]{20,}`)
	reTime     = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
	rePrefixed = regexp.MustCompile(`\b(ag|tk|send|pr|rv)_[0-9A-HJKMNP-TV-Z]{26}\b`)
	reSession  = regexp.MustCompile(`\b[0-9A-HJKMNP-TV-Z]{26}\b`)
	reStamp    = regexp.MustCompile(`\b[0-9a-f]{24}\b`)
	reTokenID  = regexp.MustCompile(`\b[0-9a-f]{16}\b`)
	// A tool call's duration, in its audit record's summary ("whoami ok
	// in 0.7 ms") and attributes (duration_ms, maybe inside a JSON string),
	// and an open session's age (duration_ns of its summary).
	reCallMS = regexp.MustCompile(` in \d+\.\d ms\b`)
	reDurMS  = regexp.MustCompile(`(duration_(?:ms|ns)\\*"):-?[0-9.]+(e-?\d+)?`)
	// How long ago an agent was last seen (tools: "last seen 3s ago").
	reSeenAgo = regexp.MustCompile(`last seen (\d+h)?(\d+m)?\d+(\.\d+)?s ago`)
)

func newNormalizer(cw *countWorld) *normalizer {
	nz := &normalizer{fixed: map[string]string{}, seen: map[string]string{}, n: map[string]int{}}
	for i, id := range cw.idsA {
		nz.fixed[id] = "A" + strconv.Itoa(i)
	}
	for i, id := range cw.idsB {
		nz.fixed[id] = "B" + strconv.Itoa(i)
	}
	var pairs []string
	for id, name := range nz.fixed {
		pairs = append(pairs, id, "<"+name+">")
	}
	nz.names = strings.NewReplacer(pairs...)
	return nz
}

func (nz *normalizer) id(kind string) func(string) string {
	return func(s string) string {
		if f, ok := nz.fixed[s]; ok {
			return "<" + f + ">"
		}
		if f, ok := nz.seen[s]; ok {
			return f
		}
		nz.n[kind]++
		f := fmt.Sprintf("<%s#%d>", kind, nz.n[kind])
		nz.seen[s] = f
		return f
	}
}

func (nz *normalizer) normalize(s string) string {
	// Escaped newlines and tabs (in JSON strings, maybe twice) would hide
	// the word boundary before an id at the start of a line.
	s = strings.NewReplacer(`\n`, "⏎", `\t`, "⇥").Replace(s)
	s = reCallMS.ReplaceAllString(s, " in <duration> ms")
	s = reDurMS.ReplaceAllString(s, "${1}:<duration>")
	s = reSeenAgo.ReplaceAllString(s, "last seen <ago>")
	s = reSecret.ReplaceAllString(s, "<secret>")
	s = reTime.ReplaceAllString(s, "<time>")
	s = rePrefixed.ReplaceAllStringFunc(s, nz.id("id"))
	s = reSession.ReplaceAllStringFunc(s, nz.id("session"))
	s = reStamp.ReplaceAllStringFunc(s, nz.id("stamp"))
	s = reTokenID.ReplaceAllStringFunc(s, nz.id("token"))
	return s
}

// compareCounts runs ops in both worlds, normalizes and reports, under the
// surface's name, each operation whose response differs. With ISO_DUMP
// set to a directory, it writes the normalized responses of both worlds
// there (<surface>.txt), to see what a report is about.
func compareCounts(t reporter, surface string, w1, w2 *countWorld, ops func(reporter, *countWorld, *transcript)) {
	t.Helper()
	var t1, t2 transcript
	ops(t, w1, &t1)
	ops(t, w2, &t2)
	n1, n2 := newNormalizer(w1), newNormalizer(w2)
	for i := range t1.ops {
		t1.ops[i] = n1.names.Replace(t1.ops[i])
	}
	for i := range t2.ops {
		t2.ops[i] = n2.names.Replace(t2.ops[i])
	}
	if !slices.Equal(t1.ops, t2.ops) {
		t.Fatalf("%s: the two worlds ran different operations (%d and %d)", surface, len(t1.ops), len(t2.ops))
	}
	if len(t1.ops) == 0 {
		t.Fatalf("%s: no operations compared", surface)
	}
	diffs := 0
	var dump strings.Builder
	for i, op := range t1.ops {
		a, b := n1.normalize(t1.outs[i]), n2.normalize(t2.outs[i])
		fmt.Fprintf(&dump, "== %s\n%s\n%s\n", op, a, b)
		if a == b {
			continue
		}
		diffs++
		if diffs <= 10 {
			t.Errorf("%s: %s: A's response depends on B's activity (counts B's records?): %s", surface, clip(op), diffAt(a, b))
		}
	}
	if diffs > 10 {
		t.Errorf("%s: %d more operations whose response depends on B's activity", surface, diffs-10)
	}
	if d := os.Getenv("ISO_DUMP"); d != "" {
		_ = os.WriteFile(filepath.Join(d, surface+".txt"), []byte(dump.String()), 0o644)
	}
	t.Logf("%s: %d operations compared", surface, len(t1.ops))
}

// diffAt shows where a and b first differ.
func diffAt(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo := max(0, i-60)
	cut := func(s string) string { return s[lo:min(len(s), i+60)] }
	return fmt.Sprintf("at byte %d, %q in the first world, %q where B has more", i, cut(a), cut(b))
}

func TestIsolationCounts(t *testing.T) {
	root := t.TempDir()
	w1 := newCountWorld(t, root, false)
	w2 := newCountWorld(t, root, true)
	t.Run("mcp", func(t *testing.T) {
		compareCounts(t, "mcp", w1, w2, func(r reporter, cw *countWorld, tr *transcript) {
			srv := cw.mcpServer(t)
			cw.mcpReads(r, srv.HTTPHandler(server.HTTPOptions{}), tr)
			closeMCP(t, srv)
		})
	})
	t.Run("rest", func(t *testing.T) {
		compareCounts(t, "rest", w1, w2, func(r reporter, cw *countWorld, tr *transcript) {
			h := webview.New(cw.dir, suiteWebOptions())
			defer h.Shutdown(context.Background())
			cw.restReads(r, h, h.Routes(), tr)
		})
	})
	t.Run("feed", func(t *testing.T) {
		compareCounts(t, "feed", w1, w2, func(r reporter, cw *countWorld, tr *transcript) {
			h := webview.New(cw.dir, suiteWebOptions())
			defer h.Shutdown(context.Background())
			cw.feedReads(r, h, tr)
		})
	})
	t.Run("ide", func(t *testing.T) {
		compareCounts(t, "ide", w1, w2, func(r reporter, cw *countWorld, tr *transcript) {
			cw.ideReads(r, ideAs(cw.scA), tr)
		})
	})
}

// mcpReads calls every read-only tool of every toolset over the MCP
// endpoint h with A's token: with no arguments, then with each of the
// values in each of its string arguments.
func (cw *countWorld) mcpReads(t reporter, h http.Handler, tr *transcript) {
	mux := http.NewServeMux()
	mux.Handle(server.MCPPath, h)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "isolation", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: hs.URL + server.MCPPath,
		HTTPClient: servertest.BearerClient(cw.tokenA), MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("mcp: connect: %v", err)
	}
	defer cs.Close()
	for _, set := range tools.Catalog(tools.Config{}) {
		for _, tl := range set.Tools {
			if !tl.ReadOnly() {
				continue
			}
			props := stringProps(t, tl)
			slices.Sort(props)
			calls := []map[string]any{{}}
			for _, p := range props {
				for _, v := range cw.values() {
					calls = append(calls, map[string]any{p: v})
				}
			}
			for _, args := range calls {
				op := tl.Name() + string(mustJSON(args))
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tl.Name(), Arguments: args})
				if err != nil {
					if ctx.Err() != nil {
						t.Fatalf("mcp: %v", err)
					}
					tr.add(op, "error: "+err.Error())
					continue
				}
				tr.add(op, string(mustJSON(res)))
			}
		}
	}
}

// restReads sends every GET of routes (the webview mux's) to h with A's
// token: without a query, with each value as each query parameter it
// reads, and each value as the {id}.
func (cw *countWorld) restReads(t reporter, h http.Handler, routes []string, tr *transcript) {
	hs := httptest.NewServer(h)
	defer hs.Close()
	get := func(target string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, hs.URL+target, nil)
		if err != nil {
			t.Fatalf("rest: GET %q: %v", clip(target), err)
		}
		req.Header.Set("Authorization", "Bearer "+cw.tokenA)
		resp, err := hs.Client().Do(req)
		if err != nil {
			t.Fatalf("rest: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.add("GET "+target, fmt.Sprintf("%d %s", resp.StatusCode, b))
	}
	for _, r := range routes {
		method, path, _ := strings.Cut(r, " ")
		if method != http.MethodGet || path == webview.FeedPath {
			continue
		}
		paths := []string{path}
		if strings.Contains(path, "{id}") {
			paths = nil
			for _, v := range cw.values() {
				if v != "" {
					paths = append(paths, strings.ReplaceAll(path, "{id}", url.PathEscape(v)))
				}
			}
		}
		for _, p := range paths {
			get(p)
			for _, name := range restCases[r].query {
				for _, v := range cw.values() {
					get(p + "?" + url.Values{name: {v}}.Encode())
				}
			}
		}
	}
}

// feedReads opens A's feed from the beginning of the log with each
// filter, lets B append (more, in the world where B has more) while they
// are open, then appends an event of A's that every filter matches, and
// reads each feed up to that event. The events a feed sends are compared
// as one list: how the feed batches them is timing.
func (cw *countWorld) feedReads(t reporter, h http.Handler, tr *transcript) {
	hs := httptest.NewServer(h)
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sA, aA := cw.idsA[0], cw.idsA[1]
	var subs []webview.Subscription
	// Every filter matches the sentinel (a path is relative to a project).
	for _, f := range []webview.FeedFilter{{}, {User: "alice"}, {Session: sA}, {Agent: aA}, {Kind: "note.added"},
		{Project: projectA}, {Project: projectA, Path: pathA}} {
		subs = append(subs, webview.Subscription{Type: "subscribe", Filter: f})
	}
	conns := make([]*websocket.Conn, len(subs))
	for i, sub := range subs {
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+webview.FeedPath,
			&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + cw.tokenA}}})
		if err != nil {
			t.Fatalf("feed: dial: %v", err)
		}
		defer c.CloseNow()
		c.SetReadLimit(32 << 20)
		if err := wsjson.Write(ctx, c, sub); err != nil {
			t.Fatalf("feed: subscribe: %v", err)
		}
		var m webview.FeedMessage
		if err := wsjson.Read(ctx, c, &m); err != nil {
			t.Fatalf("feed: subscription %s: %v", mustJSON(sub), err)
		}
		tr.add("subscribe "+string(mustJSON(sub.Filter)), string(mustJSON(m)))
		conns[i] = c
	}
	scB := cw.scopeB(t)
	live := 1
	if cw.extra {
		live = 4
	}
	for range live {
		ev := scB.Event("note.added", "live "+marker)
		ev.Project, ev.Path = cw.projB.ID, pathA
		if _, err := scB.Log().Append(ctx, ev); err != nil {
			t.Fatalf("feed: B's write: %v", err)
		}
	}
	ev := cw.scAgentA.Event("note.added", "A's sentinel")
	ev.Session, ev.Project, ev.Path = sA, cw.projA.ID, pathA
	evs, err := cw.scA.Log().Append(ctx, ev)
	if err != nil {
		t.Fatalf("feed: A's write: %v", err)
	}
	sentinel := evs[0].ID
	for i, c := range conns {
		var got []json.RawMessage
		var failed string
		for done := false; !done; {
			var m struct {
				Type   string            `json:"type"`
				Events []json.RawMessage `json:"events"`
			}
			if err := wsjson.Read(ctx, c, &m); err != nil {
				failed = err.Error()
				break
			}
			for _, e := range m.Events {
				got = append(got, e)
				var id struct{ ID string }
				_ = json.Unmarshal(e, &id)
				done = done || id.ID == sentinel
			}
		}
		out := string(mustJSON(got))
		if failed != "" {
			out += " then: " + failed
		}
		tr.add("events "+string(mustJSON(subs[i].Filter)), out)
	}
}

// ideReads runs the IDE's read commands (not session.start and
// session.end) with a few arguments, on one connection that serve runs
// (as A).
func (cw *countWorld) ideReads(t reporter, serve func(ctx context.Context, in io.Reader, out io.Writer), tr *transcript) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, cmds, done := ideSession(ctx, t, serve, cw.rootA)
	defer done()
	for _, cmd := range cmds {
		if strings.HasPrefix(cmd, "coditect.session.") {
			continue
		}
		for _, arg := range []map[string]any{
			{},
			{"uri": "file://" + cw.rootA + "/" + pathA, "limit": 5},
			{"uri": "file:///" + pathA},
			{"workspace": cw.rootA},
		} {
			var res json.RawMessage
			err := conn.Call(ctx, "workspace/executeCommand", map[string]any{"command": cmd, "arguments": []any{arg}}, &res)
			if ctx.Err() != nil {
				t.Fatalf("ide: %v", ctx.Err())
			}
			out := string(res)
			if err != nil {
				out = "error: " + err.Error()
			}
			tr.add(cmd+" "+string(mustJSON(arg)), out)
		}
	}
}

// TestCountCheckCatchesPlantedLeaks shows that the count check fails on a
// pure count leak — a number of A's that includes B's records, with no
// marker, id or tenant id of B's in it, which the read check passes: on
// each surface it plants one in the real components, runs the count check
// under a recorder, and requires it to report the surface.
func TestCountCheckCatchesPlantedLeaks(t *testing.T) {
	for _, p := range countPlants {
		t.Run(p.name, func(t *testing.T) {
			root := t.TempDir()
			w1 := newCountWorld(t, root, false)
			w2 := newCountWorld(t, root, true)
			rec := &recorder{t: t}
			rec.run(func(r reporter) { compareCounts(r, p.surface, w1, w2, p.ops) })
			var got []string
			for _, m := range rec.all() {
				if strings.HasPrefix(m, p.surface+": ") && strings.Contains(m, "depends on B's activity") {
					got = append(got, m)
				} else {
					t.Logf("other report: %s", m)
				}
			}
			if len(got) == 0 {
				t.Fatalf("the planted count leak went unreported by the %s count check", p.surface)
			}
			t.Logf("%d count reports, the first: %s", len(got), got[0])
		})
	}
}

var countPlants = []struct {
	name, surface string
	ops           func(reporter, *countWorld, *transcript)
}{
	{
		// A gateway in front of the API that answers the tenant record
		// with the deployment's event count, every tenant's log summed
		// through its service account (each tenant's alice), instead of
		// the tenant's: A's tenant record counts B's events.
		name: "rest/tenant record counts the deployment's events", surface: "rest",
		ops: func(r reporter, cw *countWorld, tr *transcript) {
			h := webview.New(cw.dir, suiteWebOptions())
			defer h.Shutdown(context.Background())
			cw.restReads(r, &deploymentEvents{next: h, dir: cw.dir}, h.Routes(), tr)
		},
	},
	{
		// A middleware that adds to whoami how many agents the server
		// knows, counted over every tenant of the directory: A's whoami
		// counts B's agents.
		name: "mcp/whoami counts every tenant's agents", surface: "mcp",
		ops: func(r reporter, cw *countWorld, tr *transcript) {
			h := plantedMCP(func(ctx context.Context) (tools.Caller, error) {
				sc, err := cw.dir.Authenticate(ctx, bearerFrom(ctx))
				return tools.Caller{Scope: sc}, err
			}, tools.Audit(nil, nil), agentsKnown(cw.dir))
			cw.mcpReads(r, h, tr)
		},
	},
}

// deploymentEvents answers GET /api/v1/tenant with the events of every
// tenant of dir.
type deploymentEvents struct {
	next http.Handler
	dir  *tenant.Directory
}

func (g *deploymentEvents) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || r.URL.Path != "/api/v1/tenant" {
		g.next.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	g.next.ServeHTTP(rec, r)
	var rt map[string]any
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &rt) != nil {
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
		return
	}
	ts, err := g.dir.ListTenants(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var total int64
	for _, tn := range ts {
		sc, err := g.dir.Local(r.Context(), tn.ID, "alice")
		if err != nil {
			continue
		}
		n, err := sc.Log().Count(r.Context())
		if err == nil {
			total += n
		}
	}
	rt["events"] = total
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	json.NewEncoder(w).Encode(rt)
}

// agentsKnown adds to whoami's text the number of agents of every tenant
// of dir.
func agentsKnown(dir *tenant.Directory) tools.Middleware {
	return func(next tools.Handler) tools.Handler {
		return func(ctx context.Context, c *tools.Call) (tools.Result, error) {
			res, err := next(ctx, c)
			if err != nil || c.Tool.Name() != "whoami" {
				return res, err
			}
			ts, lerr := dir.ListTenants(ctx)
			if lerr != nil {
				return res, err
			}
			n := 0
			for _, tn := range ts {
				if sc, err := dir.Local(ctx, tn.ID, "alice"); err == nil {
					as, _ := agent.List(ctx, sc, agent.Filter{})
					n += len(as)
				}
			}
			res.Text += fmt.Sprintf(" The server knows %d agents.", n)
			return res, err
		}
	}
}
