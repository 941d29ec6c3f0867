package webview_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/task"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/webview"
)

// The caller sees its tenant's projects with their roots; another tenant's
// project is not found, exactly as a missing one, on its own route and as
// a filter of every listing.
func TestProjectsAreTenantScoped(t *testing.T) {
	f := newFixture(t, webview.Options{})
	acme, globex := f.t["acme"], f.t["globex"]

	status, b := f.do(t, "GET", "/api/v1/projects", acme.viewer, nil)
	if status != http.StatusOK {
		t.Fatal(status, string(b))
	}
	l := decode[webview.ProjectList](t, b)
	if len(l.Projects) != 1 || l.Projects[0].ID != acme.project || l.Projects[0].Name != "app-marker-acme" || l.Machine != project.Machine() ||
		len(l.Projects[0].Roots) != 1 || l.Projects[0].Roots[0].Path != acme.root {
		t.Fatalf("acme's projects: %s", b)
	}
	for _, ref := range []string{acme.project, "app-marker-acme"} {
		status, b := f.do(t, "GET", "/api/v1/projects/"+ref, acme.viewer, nil)
		if p := decode[project.Project](t, b); status != http.StatusOK || p.ID != acme.project {
			t.Fatalf("GET project %s: %d %s", ref, status, b)
		}
	}

	// globex's project id, and an id no tenant has, answer alike.
	const missing = "pr_00000000000000000000000000"
	for _, p := range []string{"/api/v1/projects/%s", "/api/v1/sessions?project=%s", "/api/v1/events?project=%s",
		"/api/v1/tasks?project=%s", "/api/v1/files?project=%s"} {
		stOther, bOther := f.do(t, "GET", strings.Replace(p, "%s", globex.project, 1), acme.admin, nil)
		stMissing, bMissing := f.do(t, "GET", strings.Replace(p, "%s", missing, 1), acme.admin, nil)
		if stOther != http.StatusNotFound || errorCode(t, bOther) != "not_found" {
			t.Errorf("%s with globex's project: %d %s, want 404", p, stOther, bOther)
		}
		if stMissing != stOther || strings.ReplaceAll(string(bMissing), missing, "ID") != strings.ReplaceAll(string(bOther), globex.project, "ID") {
			t.Errorf("%s: globex's project answers %d %s, a missing one %d %s", p, stOther, bOther, stMissing, bMissing)
		}
		if contains(bOther, "app-marker-globex") || contains(bOther, globex.root) {
			t.Errorf("%s leaks globex's project: %s", p, bOther)
		}
	}

	// The filters select the project's data, by id or by name.
	ctx := context.Background()
	other, err := project.Create(ctx, acme.sc, project.Spec{Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := task.Create(ctx, acme.sc, task.New{Title: "other's task", Project: other.ID}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want, not string }{
		{"/api/v1/tasks?project=other", "other's task", acme.marker},
		{"/api/v1/tasks?project=" + acme.project, acme.marker, "other's task"},
		{"/api/v1/sessions?project=other", `"sessions":[]`, acme.marker},
		{"/api/v1/sessions?project=app-marker-acme", acme.session, "other"},
		{"/api/v1/events?project=other&kind=project.created", other.ID, acme.marker},
		{"/api/v1/files?project=app-marker-acme", "src/marker-acme/main.go", "/src/"},
		{"/api/v1/files?project=other", `"events":[]`, acme.marker},
	} {
		status, b := f.do(t, "GET", c.path, acme.viewer, nil)
		if status != http.StatusOK || !contains(b, c.want) || contains(b, c.not) {
			t.Errorf("GET %s: %d %s; want %q and not %q", c.path, status, b, c.want, c.not)
		}
	}
	if _, err := session.Get(ctx, acme.sc, acme.session); err != nil {
		t.Fatal(err)
	}
}

// Only admins register projects and roots through the API, with a JSON
// body; roots are checked as `coditect project add` checks them.
func TestCreateProject(t *testing.T) {
	protected := t.TempDir()
	f := newFixture(t, webview.Options{ProtectedPaths: []string{filepath.Join(protected, "coditect.db")}})
	acme, globex := f.t["acme"], f.t["globex"]
	ctx := context.Background()
	member, _, err := f.dir.IssueToken(ctx, "acme", "alice-acme", tenant.RoleMember, tenant.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	body := `{"name":"api","remote":"git@example.com:acme/api.git","root":` + quote(dir) + `}`
	before := projects(t, f, acme.admin)
	for _, tok := range []string{acme.viewer, member} {
		status, b := f.do(t, "POST", "/api/v1/projects", tok, strings.NewReader(body))
		if status != http.StatusForbidden || errorCode(t, b) != "forbidden" || !contains(b, "admin") {
			t.Fatalf("a non-admin registering a project: %d %s", status, b)
		}
	}
	req, _ := http.NewRequest("POST", f.srv.URL+"/api/v1/projects", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+acme.admin)
	req.Header.Set("Content-Type", "text/plain")
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("a text/plain body: %d, want 415", resp.StatusCode)
	}
	if after := projects(t, f, acme.admin); after != before {
		t.Fatalf("refused requests changed the projects: %s", after)
	}

	status, b := f.do(t, "POST", "/api/v1/projects", acme.admin, strings.NewReader(body))
	p := decode[project.Project](t, b)
	if status != http.StatusCreated || p.Name != "api" || p.Remote != "git@example.com:acme/api.git" || len(p.Roots) != 1 {
		t.Fatalf("create: %d %s", status, b)
	}
	second := t.TempDir()
	status, b = f.do(t, "POST", "/api/v1/projects", acme.admin, strings.NewReader(`{"name":"api","root":`+quote(second)+`}`))
	if p := decode[project.Project](t, b); status != http.StatusOK || len(p.Roots) != 2 {
		t.Fatalf("a second root: %d %s", status, b)
	}
	inside := filepath.Join(globex.root, "sub")
	if err := os.Mkdir(inside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(protected, "coditect.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	before = projects(t, f, acme.admin)
	for _, c := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"name":"nested","root":` + quote(filepath.Join(dir)) + `}`, http.StatusConflict, "conflict"},
		{`{"name":"theirs","root":` + quote(inside) + `}`, http.StatusConflict, "conflict"},
		{`{"name":"store","root":` + quote(protected) + `}`, http.StatusForbidden, "forbidden"},
		{`{"name":"everything","root":"/"}`, http.StatusForbidden, "forbidden"},
		{`{"name":"relative","root":"src"}`, http.StatusBadRequest, "bad_request"},
		{`{"name":"a/b"}`, http.StatusBadRequest, "bad_request"},
		{`{"name":""}`, http.StatusBadRequest, "bad_request"},
		{`{"name":"api","remote":"elsewhere"}`, http.StatusBadRequest, "bad_request"},
		{`{"name":"x","owner":"me"}`, http.StatusBadRequest, "bad_request"},
	} {
		status, b := f.do(t, "POST", "/api/v1/projects", acme.admin, strings.NewReader(c.body))
		if status != c.status || errorCode(t, b) != c.code {
			t.Errorf("POST %s: %d %s, want %d %s", c.body, status, b, c.status, c.code)
		}
		if contains(b, "app-marker-globex") || contains(b, globex.project) {
			t.Errorf("POST %s names globex's project: %s", c.body, b)
		}
	}
	if after := projects(t, f, acme.admin); after != before {
		t.Fatalf("refused roots left projects behind: %s", after)
	}
	// globex sees none of it.
	if got := projects(t, f, globex.admin); strings.Contains(got, "api") {
		t.Fatalf("globex lists acme's new project: %s", got)
	}
}

func projects(t *testing.T, f *fixture, token string) string {
	t.Helper()
	status, b := f.do(t, "GET", "/api/v1/projects", token, nil)
	if status != http.StatusOK {
		t.Fatal(status, string(b))
	}
	var names []string
	for _, p := range decode[webview.ProjectList](t, b).Projects {
		var roots []string
		for _, r := range p.Roots {
			roots = append(roots, r.Path)
		}
		names = append(names, p.Name+"="+strings.Join(roots, ","))
	}
	return strings.Join(names, " ")
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// The feed's project filter (a name or an id) follows one project's
// events; another tenant's project is refused as a missing one.
func TestFeedProjectFilter(t *testing.T) {
	f := newFixture(t, webview.Options{})
	acme, globex := f.t["acme"], f.t["globex"]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	other, err := project.Create(ctx, acme.sc, project.Spec{Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{globex.project, "pr_00000000000000000000000000", "app-marker-globex"} {
		_, err := dialFeed(t, ctx, f, "", webview.Subscription{Token: acme.admin, Cursor: "head", Filter: webview.FeedFilter{Project: ref}})
		// The reason may repeat what the caller sent; nothing else.
		if websocket.CloseStatus(err) != webview.StatusBadRequest || strings.Contains(strings.ReplaceAll(err.Error(), ref, ""), "globex") {
			t.Errorf("project %s: %v, want close status %d naming nothing of globex", ref, err, webview.StatusBadRequest)
		}
	}
	fc, err := dialFeed(t, ctx, f, "", webview.Subscription{Token: acme.admin, Cursor: "head", Filter: webview.FeedFilter{Project: "other"}})
	if err != nil {
		t.Fatal(err)
	}
	note := func(proj, text string) string {
		ev := acme.sc.Event("note.added", text)
		ev.Project, ev.Path = proj, "README.md"
		evs, err := acme.sc.Log().Append(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		return evs[0].ID
	}
	note(acme.project, "in app")
	want := note(other.ID, "in other")
	var buf []audit.Event
	ev, err := fc.next(ctx, &buf)
	if err != nil || ev.ID != want || ev.Project != other.ID {
		t.Fatalf("the feed of project other sent %+v, %v; want %s", ev, err, want)
	}
}
