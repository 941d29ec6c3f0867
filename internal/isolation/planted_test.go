package isolation_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/coditect/coditect/server"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/tools"
	"github.com/coditect/coditect/webview"
)

// TestSuiteCatchesPlantedLeaks shows that the suite's checks fail when a
// leak exists: on each surface it plants a wiring fault built from the
// real components (the real tools, servers, handlers and store, wired
// wrongly), runs that surface's check and B's range comparison under a
// recorder, and requires the kinds of report the fault must cause, each
// naming the surface: "shows B's" (something of B's read back) and "B's
// range" (A's actions counted or changed in B's keys).
//
// In -short mode (make test) the checks send only a handful of attack
// values (world.few); without it, all of them.
func TestSuiteCatchesPlantedLeaks(t *testing.T) {
	for _, p := range plants {
		t.Run(p.name, func(t *testing.T) {
			w := newWorld(t)
			w.few = testing.Short()
			rec := p.run(t, w)
			// The reports by kind: "marker" and "tenant or id" are the read
			// check's (a response shows B's marker; B's tenant id or an id
			// of B's), "range" is B's range comparison's.
			kinds := map[string][]string{}
			for _, m := range rec.all() {
				k := "other"
				if strings.HasPrefix(m, p.surface+": ") {
					switch {
					case strings.Contains(m, "shows B's "+strconv.Quote(marker)):
						k = "marker"
					case strings.Contains(m, "shows B's "):
						k = "tenant or id"
					case strings.Contains(m, "B's range"):
						k = "range"
					}
				}
				kinds[k] = append(kinds[k], m)
			}
			for _, k := range []string{"marker", "tenant or id", "range", "other"} {
				if ms := kinds[k]; len(ms) > 0 {
					t.Logf("%d %s reports, the first: %s", len(ms), k, ms[0])
				}
			}
			for _, want := range []struct {
				ok   bool
				what string
			}{
				{!p.read || len(kinds["marker"])+len(kinds["tenant or id"]) > 0, "read report (shows B's …)"},
				{!p.marker || len(kinds["marker"]) > 0, "read report of B's marker"},
				{!p.changes || len(kinds["range"]) > 0, "report of B's range"},
			} {
				if !want.ok {
					t.Errorf("the planted leak went unreported: no %s from the %s check", want.what, p.surface)
				}
			}
		})
	}
}

// plant is one planted leak.
type plant struct {
	name string
	// surface is the check that must report it.
	surface string
	// What it must cause: read, a response shows something of B's;
	// marker, a response shows B's marker (B's data, not just its tenant
	// id); changes, B's key range is counted into or changed.
	read, marker, changes bool
	// run wires the fault and attacks it (see world.attack).
	run func(t *testing.T, w *world) *recorder
}

var plants = []plant{
	{
		// The classic: the token is checked, but the scope the tools act
		// in is rebuilt from the user's name in the daemon's configured
		// tenant, B, which has an alice too. A reads B's records, and A's
		// writes and audit records land in B.
		name: "mcp/resolver binds the caller's user name in tenant B", surface: "mcp", read: true, marker: true, changes: true,
		run: func(t *testing.T, w *world) *recorder {
			h := plantedMCP(func(ctx context.Context) (tools.Caller, error) {
				sc, err := w.dir.Authenticate(ctx, bearerFrom(ctx))
				if err != nil {
					return tools.Caller{}, err
				}
				sc, err = w.dir.Local(ctx, tenantB, sc.Principal().User)
				return tools.Caller{Scope: sc}, err
			}, tools.Audit(nil, nil))
			return w.attack(t, "mcp", func(r reporter) []kv.KeyValue { w.mcpTools(r, h); return nil })
		},
	},
	{
		// Counted: the resolver is right and every response is A's, but a
		// usage meter resolved its log once, at startup, for tenant B:
		// each of A's calls is counted, as a tool.called event, in B's log.
		name: "mcp/calls metered in B's log", surface: "mcp", changes: true,
		run: func(t *testing.T, w *world) *recorder {
			h := plantedMCP(func(ctx context.Context) (tools.Caller, error) {
				sc, err := w.dir.Authenticate(ctx, bearerFrom(ctx))
				return tools.Caller{Scope: sc}, err
			}, tools.Audit(nil, nil), meterTo(w.scopeB(t).Log()))
			return w.attack(t, "mcp", func(r reporter) []kv.KeyValue { w.mcpTools(r, h); return nil })
		},
	},
	{
		// The files: a registry of roots that checks overlaps within a
		// tenant only let A's admin register B's checkout as a root of
		// A's project. A starts a session there and its files tools read
		// B's files; A's roots reach B's directory.
		name: "mcp/A's project holds B's root", surface: "mcp", read: true, marker: true, changes: true,
		run: func(t *testing.T, w *world) *recorder {
			k, err := keyspace.RootEntry(project.Machine(), w.rootB)
			if err != nil {
				t.Fatal(err)
			}
			rk, _ := w.scA.Space().Project(w.projA.ID)
			p := w.projA
			p.Roots = append(p.Roots, project.Root{Machine: project.Machine(), Path: w.rootB})
			if _, err := w.store.Update(context.Background(), func(tx kv.Tx) error {
				tx.Set(k, mustJSON(map[string]string{"tenant": tenantA, "project": p.ID}))
				tx.Set(rk, mustJSON(p))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			srv := w.mcpServer(t)
			defer closeMCP(t, srv)
			h := srv.HTTPHandler(server.HTTPOptions{})
			return w.attack(t, "mcp", func(r reporter) []kv.KeyValue { w.mcpTools(r, h); return nil })
		},
	},
	{
		// A gateway in front of the API that authenticates upstream with
		// its own credential — B's — instead of forwarding the caller's.
		name: "rest/gateway forwards B's token", surface: "rest", read: true, marker: true, changes: true,
		run: func(t *testing.T, w *world) *recorder {
			h := webview.New(w.dir, suiteWebOptions())
			defer h.Shutdown(context.Background())
			gw := bearerAs(h, w.tokenB, func(*http.Request) bool { return true })
			return w.attack(t, "rest", func(r reporter) []kv.KeyValue { w.restRoutes(r, gw, h.Routes()); return nil })
		},
	},
	{
		// Changed: reads are A's, but writes go out under a per-user token
		// cache keyed by the user's name alone, where B's alice shadows
		// A's: A's POST creates tokens in B, A's DELETE revokes B's token.
		// The responses show little (an error names B's tenant); B's
		// range shows the change.
		name: "rest/writes sent with B's token", surface: "rest", changes: true,
		run: func(t *testing.T, w *world) *recorder {
			h := webview.New(w.dir, suiteWebOptions())
			defer h.Shutdown(context.Background())
			gw := bearerAs(h, w.tokenB, func(r *http.Request) bool { return r.Method != http.MethodGet })
			return w.attack(t, "rest", func(r reporter) []kv.KeyValue { w.restRoutes(r, gw, h.Routes()); return nil })
		},
	},
	{
		// A response cache in front of the API that keys on the URL alone
		// (no Vary: Authorization, Cache-Control ignored): B's dashboard
		// loaded whoami and the tenant record first, and A is served B's —
		// B's tenant id, user, token id and event count, but no record of
		// B's and no marker.
		name: "rest/shared cache serves B's whoami and tenant", surface: "rest", read: true,
		run: func(t *testing.T, w *world) *recorder {
			h := webview.New(w.dir, suiteWebOptions())
			defer h.Shutdown(context.Background())
			c := &urlCache{next: h, hits: map[string][]byte{}}
			// B's dashboard logs in with a token of its own.
			secret, _, err := w.dir.IssueToken(context.Background(), tenantB, "alice", tenant.RoleMember, tenant.TokenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, path := range []string{"/api/v1/whoami", "/api/v1/tenant"} {
				req := httptest.NewRequest(http.MethodGet, path, nil)
				req.Header.Set("Authorization", "Bearer "+secret)
				c.ServeHTTP(httptest.NewRecorder(), req)
			}
			return w.attack(t, "rest", func(r reporter) []kv.KeyValue { w.restRoutes(r, c, h.Routes()); return nil })
		},
	},
	{
		// The feed behind a gateway that pins WebSocket upgrades to the
		// first credential seen from a client address: B's dashboard, on
		// the same host, subscribed first, so A's subscriptions resolve
		// to B. (The check reports a feed's first leak only: its
		// "subscribed" message, which names B's tenant, before B's events.)
		name: "feed/subscriptions pinned to B's credential", surface: "feed", read: true,
		run: func(t *testing.T, w *world) *recorder {
			h := webview.New(w.dir, suiteWebOptions())
			defer h.Shutdown(context.Background())
			gw := &pinnedAuth{next: h, byHost: map[string]string{}}
			subscribe(t, gw, w.tokenB)
			return w.attack(t, "feed", func(r reporter) []kv.KeyValue { return w.feedFilters(r, gw) })
		},
	},
	{
		// The IDE connection opened for the OS user by name in the
		// configured tenant, B, instead of with A's token: A's editor
		// reads B's agents and files, and starts its session in B.
		name: "ide/session opened as B's alice", surface: "ide", read: true, marker: true, changes: true,
		run: func(t *testing.T, w *world) *recorder {
			sc, err := w.dir.Local(context.Background(), tenantB, w.scA.Principal().User)
			if err != nil {
				t.Fatal(err)
			}
			return w.attack(t, "ide", func(r reporter) []kv.KeyValue { w.ideCommands(r, ideAs(sc)); return nil })
		},
	},
}

// attack snapshots B's range, runs check (a surface's check, against a
// planted fault) under a recorder, then compares B's range with the
// snapshot under the same recorder, as TestIsolation does; a check that
// returns a snapshot of its own (the feed's) is compared with that.
func (w *world) attack(t *testing.T, surface string, check func(reporter) []kv.KeyValue) *recorder {
	rec := &recorder{t: t}
	before := w.snapshot(t)
	rec.run(func(r reporter) {
		if b := check(r); b != nil {
			before = b
		}
	})
	rec.run(func(r reporter) { w.unchanged(r, before, surface) })
	return rec
}

// recorder is a reporter that collects reports instead of failing the
// test.
type recorder struct {
	t *testing.T

	mu      sync.Mutex
	reports []string
}

func (r *recorder) Helper()                           {}
func (r *recorder) TempDir() string                   { return r.t.TempDir() }
func (r *recorder) Errorf(format string, args ...any) { r.add(fmt.Sprintf(format, args...)) }

func (r *recorder) Logf(format string, args ...any) {
	r.t.Helper()
	r.t.Logf(format, args...)
}

// Fatalf records and ends the check, as testing.T's does: run runs each
// check in a goroutine of its own, whose deferred calls still run.
func (r *recorder) Fatalf(format string, args ...any) {
	r.add(fmt.Sprintf(format, args...))
	runtime.Goexit()
}

func (r *recorder) add(m string) {
	r.mu.Lock()
	r.reports = append(r.reports, m)
	r.mu.Unlock()
}

func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reports...)
}

func (r *recorder) run(check func(reporter)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		check(r)
	}()
	<-done
}

// plantedMCP serves the real tools of every toolset over mcp-go's
// Streamable HTTP with resolve and mw, as server.New and
// server.HTTPHandler do: the request's bearer token goes into the
// context, and resolve binds each call to a tenant from it.
func plantedMCP(resolve tools.Resolver, mw ...tools.Middleware) http.Handler {
	ms := mcpserver.NewMCPServer("coditect", "planted", mcpserver.WithToolCapabilities(false), mcpserver.WithRecovery())
	tools.Install(ms, tools.Catalog(tools.Config{}), resolve, mw...)
	return mcpserver.NewStreamableHTTPServer(ms, mcpserver.WithHTTPContextFunc(func(ctx context.Context, r *http.Request) context.Context {
		return context.WithValue(ctx, bearerKey{}, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	}))
}

type bearerKey struct{}

func bearerFrom(ctx context.Context) string { s, _ := ctx.Value(bearerKey{}).(string); return s }

// meterTo counts every call in l, as the call's tool.called event.
func meterTo(l *audit.Log) tools.Middleware {
	return func(next tools.Handler) tools.Handler {
		return func(ctx context.Context, c *tools.Call) (tools.Result, error) {
			res, err := next(ctx, c)
			_, _ = l.Append(context.WithoutCancel(ctx), tools.ToolEvent(c, err, time.Since(c.Started)))
			return res, err
		}
	}
}

// bearerAs sends the requests that match with secret instead of the
// caller's token.
func bearerAs(next http.Handler, secret string, match func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if match(r) {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+secret)
		}
		next.ServeHTTP(w, r)
	})
}

// urlCache caches successful GET responses by URL alone.
type urlCache struct {
	next http.Handler

	mu   sync.Mutex
	hits map[string][]byte
}

func (c *urlCache) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		c.next.ServeHTTP(w, r)
		return
	}
	key := r.URL.RequestURI()
	c.mu.Lock()
	b, ok := c.hits[key]
	c.mu.Unlock()
	if ok {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(b)
		return
	}
	rec := httptest.NewRecorder()
	c.next.ServeHTTP(rec, r)
	if rec.Code == http.StatusOK {
		c.mu.Lock()
		c.hits[key] = rec.Body.Bytes()
		c.mu.Unlock()
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	io.Copy(w, bytes.NewReader(rec.Body.Bytes()))
}

// pinnedAuth pins the requests of a client host to the first credential
// it sent.
type pinnedAuth struct {
	next http.Handler

	mu     sync.Mutex
	byHost map[string]string
}

func (p *pinnedAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	p.mu.Lock()
	auth, ok := p.byHost[host]
	if !ok {
		auth = r.Header.Get("Authorization")
		p.byHost[host] = auth
	}
	p.mu.Unlock()
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", auth)
	p.next.ServeHTTP(w, r)
}

// subscribe opens a feed on h with secret, waits for its "subscribed"
// and closes it.
func subscribe(t *testing.T, h http.Handler, secret string) {
	t.Helper()
	hs := httptest.NewServer(h)
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+webview.FeedPath,
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + secret}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := wsjson.Write(ctx, c, webview.Subscription{Type: "subscribe", Cursor: "head"}); err != nil {
		t.Fatal(err)
	}
	var m webview.FeedMessage
	if err := wsjson.Read(ctx, c, &m); err != nil || m.Type != "subscribed" {
		t.Fatalf("B's feed: %v %+v", err, m)
	}
	c.Close(websocket.StatusNormalClosure, "")
}
