package webview_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/internal/testbin"
	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/task"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/webview"
)

// writerEnv makes the test binary a separate writer process (see
// TestMain): it appends events to a tenant's log on the store named by
// the environment, one per line of stdin, so that tests prove events from
// other processes reach the feed.
const writerEnv = "WEBVIEW_TEST_WRITER_STORE"

func TestMain(m *testing.M) {
	if u := os.Getenv(writerEnv); u != "" {
		os.Exit(writerMain(u, os.Getenv("WEBVIEW_TEST_WRITER_TENANT")))
	}
	// The browser test and the daemon benchmark run the real binary.
	testbin.Main(m)
}

// writerMain appends one note.added event per stdin line "N SUMMARY" and
// prints the event id, until stdin ends.
func writerMain(storeURL, tenantID string) int {
	ctx := context.Background()
	st, err := storage.Open(ctx, storeURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer st.Close()
	sc, err := tenant.NewDirectory(st, "writer").Local(ctx, tenantID, "writer")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	buf := make([]byte, 4096)
	var line []byte
	for {
		n, err := os.Stdin.Read(buf)
		for _, b := range buf[:n] {
			if b != '\n' {
				line = append(line, b)
				continue
			}
			ev := sc.Event("note.added", string(line))
			evs, aerr := sc.Log().Append(ctx, ev)
			if aerr != nil {
				fmt.Fprintln(os.Stderr, aerr)
				return 1
			}
			fmt.Println(evs[0].ID)
			line = line[:0]
		}
		if err != nil {
			return 0
		}
	}
}

// fixture is a store with two tenants full of data, served by a webview
// handler on an httptest server.
type fixture struct {
	storeURL string
	store    kv.Store
	dir      *tenant.Directory
	h        *webview.Handler
	srv      *httptest.Server
	// per tenant: an admin token, a viewer token, a revoked token, and the
	// ids of its session, agent and task.
	t map[string]*tenantData
}

type tenantData struct {
	admin, viewer, revoked string
	sc                     *tenant.Scope
	session, agent, task   string
	project, root          string // the project app-marker-<tenant> and its root
	event                  string
	lease                  string // the resource the agent holds
	marker                 string // a string that appears only in this tenant's data
}

func newFixture(t testing.TB, opts webview.Options) *fixture {
	t.Helper()
	return newFixtureOn(t, opts, "")
}

// newFixtureOn is newFixture with store URL parameters ("?synchronous=normal").
func newFixtureOn(t testing.TB, opts webview.Options, params string) *fixture {
	t.Helper()
	ctx := context.Background()
	u := "sqlite://" + filepath.ToSlash(filepath.Join(t.TempDir(), "coditect.db")) + params
	st, err := storage.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	dir := tenant.NewDirectory(st, "test")
	// The refusal tests fail authentication on purpose, far more often
	// than the default limits allow one address; TestRESTRateLimit turns
	// them back on.
	dir.SetAuthLimits(tenant.AuthLimits{Disabled: true})
	h := webview.New(dir, opts)
	srv := httptest.NewServer(h)
	f := &fixture{storeURL: u, store: st, dir: dir, h: h, srv: srv, t: map[string]*tenantData{}}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Shutdown(sctx)
		srv.Close()
		st.Close()
	})
	for _, id := range []string{"acme", "globex"} {
		f.t[id] = f.populate(t, id)
	}
	return f
}

func (f *fixture) populate(t testing.TB, id string) *tenantData {
	t.Helper()
	ctx := context.Background()
	d := &tenantData{marker: "marker-" + id}
	must := func(err error) {
		t.Helper()
		if err != nil && !errors.Is(err, tenant.ErrExists) {
			t.Fatal(err)
		}
	}
	_, err := f.dir.CreateTenant(ctx, id, "")
	must(err)
	for _, u := range []string{"alice-" + id, "viewer-" + id} {
		_, err = f.dir.CreateUser(ctx, id, u, "")
		must(err)
	}
	d.admin, _, err = f.dir.IssueToken(ctx, id, "alice-"+id, tenant.RoleAdmin, tenant.TokenOptions{Label: d.marker})
	must(err)
	d.viewer, _, err = f.dir.IssueToken(ctx, id, "viewer-"+id, tenant.RoleViewer, tenant.TokenOptions{})
	must(err)
	var tok tenant.Token
	d.revoked, tok, err = f.dir.IssueToken(ctx, id, "alice-"+id, tenant.RoleMember, tenant.TokenOptions{})
	must(err)
	must(f.dir.RevokeToken(ctx, id, tok.ID))
	sc, err := f.dir.Authenticate(ctx, d.admin)
	must(err)
	d.sc = sc
	// The admin registers the tenant's project; its session starts there.
	d.root = t.TempDir()
	pl, err := project.Register(ctx, sc, "app-"+d.marker, d.root, project.RootOptions{})
	must(err)
	d.project, d.root = pl.Project.ID, pl.Root
	s, err := session.Start(ctx, sc, session.Spec{Title: "work " + d.marker, Project: d.project})
	must(err)
	d.session = s.ID
	a, err := agent.Register(ctx, sc, agent.Registration{Name: "agent-" + d.marker, Client: "test", Model: "model-" + d.marker, Cohort: "cohort-" + d.marker})
	must(err)
	d.agent = a.ID
	asc, err := sc.WithAgent(a.ID)
	must(err)
	d.lease = "src/" + d.marker + "/main.go"
	_, err = lease.Acquire(ctx, asc, lease.Request{Resource: d.lease})
	must(err)
	_, err = message.Send(ctx, sc, message.Outgoing{To: message.To{Agent: a.ID}, Body: "hello " + d.marker})
	must(err)
	tk, err := task.Create(ctx, sc, task.New{Title: "task " + d.marker, Project: d.project})
	must(err)
	d.task = tk.ID
	ev := sc.Event("note.added", "note "+d.marker)
	ev.Session, ev.Project, ev.Path = s.ID, d.project, "src/"+d.marker+"/main.go"
	evs, err := sc.Log().Append(ctx, ev, audit.Event{Kind: "file.modified", User: "alice-" + id, Project: d.project, Path: "src/" + d.marker + "/main.go",
		Attribution: &audit.Attribution{Actor: audit.ActorAgent, AgentID: a.ID, Evidence: "lease", Confidence: 0.8}})
	must(err)
	d.event = evs[0].ID
	return d
}

// get requests path with a bearer token ("" for none) and returns the
// status and body.
func (f *fixture) do(t *testing.T, method, path, token string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return v
}

func errorCode(t *testing.T, b []byte) string {
	t.Helper()
	var e struct {
		Error webview.APIError `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" {
		t.Fatalf("want a JSON error, got %s", b)
	}
	return e.Error.Code
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }

func tenantOpts() tenant.TokenOptions { return tenant.TokenOptions{Label: "feed test"} }
