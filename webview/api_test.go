package webview_test

import (
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/webview"
)

// routes are every REST route, with {session}, {agent}, {task}, {event},
// {project} and {token} standing for ids of the tenant under test.
var routes = []struct{ method, path, body string }{
	{"GET", "/api/v1/whoami", ""},
	{"GET", "/api/v1/kinds", ""},
	{"GET", "/api/v1/events", ""},
	{"GET", "/api/v1/events?kind=note.added&order=oldest", ""},
	{"GET", "/api/v1/events/{event}", ""},
	{"GET", "/api/v1/files", ""},
	{"GET", "/api/v1/sessions", ""},
	{"GET", "/api/v1/sessions/{session}", ""},
	{"GET", "/api/v1/sessions/{session}/summary", ""},
	{"GET", "/api/v1/agents", ""},
	{"GET", "/api/v1/agents/{agent}", ""},
	{"GET", "/api/v1/leases", ""},
	{"GET", "/api/v1/tasks", ""},
	{"GET", "/api/v1/tasks/{task}", ""},
	{"GET", "/api/v1/projects", ""},
	{"GET", "/api/v1/projects/{project}", ""},
	{"POST", "/api/v1/projects", `{"name":"new"}`},
	{"GET", "/api/v1/tenant", ""},
	{"GET", "/api/v1/users", ""},
	{"GET", "/api/v1/tokens", ""},
	{"POST", "/api/v1/tokens", `{"user":"x","role":"viewer"}`},
	{"DELETE", "/api/v1/tokens/0123456789abcdef", ""},
	{"POST", "/api/v1/messages", `{"to":"all","body":"hi"}`},
	{"POST", "/api/v1/tasks", `{"title":"new"}`},
	{"PATCH", "/api/v1/tasks/{task}", `{"version":1,"state":"cancelled"}`},
	{"DELETE", "/api/v1/leases/{lease}?reason=stuck", ""},
	{"POST", "/api/v1/sessions/{session}/end", `{"status":"completed"}`},
	{"GET", "/api/v1/nonexistent", ""},
	{"GET", webview.FeedPath, ""}, // a plain GET with a bad header: 401 before any upgrade
}

func (d *tenantData) expand(p string) string {
	return strings.NewReplacer("{session}", d.session, "{agent}", d.agent, "{task}", d.task, "{event}", d.event, "{project}", d.project,
		"{lease}", url.PathEscape(d.lease)).Replace(p)
}

// Every route refuses a missing, malformed, unknown and revoked token with
// a JSON 401, and with another tenant's token never shows this tenant's
// data: its ids are not found and its listings are the other tenant's.
func TestEveryRouteRefusesBadTokensAndOtherTenants(t *testing.T) {
	f := newFixture(t, webview.Options{})
	acme, globex := f.t["acme"], f.t["globex"]
	for _, rt := range routes {
		path := acme.expand(rt.path)
		body := func() *strings.Reader {
			if rt.body == "" {
				return nil
			}
			return strings.NewReader(rt.body)
		}
		for _, c := range []struct{ name, token string }{
			{"missing", ""}, {"malformed", "not-a-token"}, {"unknown", "cdt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, {"revoked", acme.revoked},
		} {
			if rt.path == webview.FeedPath && c.name == "missing" {
				continue // the feed also takes its token in the first message: see feed_test.go
			}
			t.Run(rt.method+" "+rt.path+" "+c.name, func(t *testing.T) {
				var status int
				var b []byte
				if r := body(); r != nil {
					status, b = f.do(t, rt.method, path, c.token, r)
				} else {
					status, b = f.do(t, rt.method, path, c.token, nil)
				}
				if status != http.StatusUnauthorized || errorCode(t, b) != "unauthorized" {
					t.Fatalf("%s token: status %d %s, want 401 unauthorized", c.name, status, b)
				}
				if contains(b, "marker-") {
					t.Fatalf("401 body leaks data: %s", b)
				}
			})
		}
		if rt.path == webview.FeedPath {
			continue
		}
		t.Run(rt.method+" "+rt.path+" other tenant", func(t *testing.T) {
			var status int
			var b []byte
			if r := body(); r != nil {
				status, b = f.do(t, rt.method, path, globex.admin, r)
			} else {
				status, b = f.do(t, rt.method, path, globex.admin, nil)
			}
			for _, leak := range []string{acme.marker, acme.session, acme.agent, acme.task, acme.project, acme.root, "app-marker-acme", "alice-acme"} {
				// An error may repeat the id the caller sent; nothing else.
				if contains(b, leak) && !strings.Contains(path, leak) {
					t.Fatalf("globex's token sees acme's %q: %d %s", leak, status, b)
				}
			}
			if strings.Contains(rt.path, "{") && status != http.StatusNotFound {
				t.Fatalf("another tenant's id: status %d %s, want 404", status, b)
			}
			if contains(b, `"tenant":"acme"`) {
				t.Fatalf("response names tenant acme: %s", b)
			}
		})
	}
}

// With its own token a tenant sees its data on every listing.
func TestRoutesServeOwnTenant(t *testing.T) {
	f := newFixture(t, webview.Options{})
	acme := f.t["acme"]
	for _, p := range []string{"/api/v1/events", "/api/v1/events/{event}", "/api/v1/files", "/api/v1/sessions", "/api/v1/sessions/{session}",
		"/api/v1/sessions/{session}/summary", "/api/v1/agents", "/api/v1/agents/{agent}", "/api/v1/leases", "/api/v1/tasks", "/api/v1/tasks/{task}", "/api/v1/tokens",
		"/api/v1/projects", "/api/v1/projects/{project}", "/api/v1/sessions?project={project}", "/api/v1/tasks?project=app-marker-acme",
		"/api/v1/events?project={project}", "/api/v1/files?project=app-marker-acme"} {
		status, b := f.do(t, "GET", acme.expand(p), acme.admin, nil)
		if status != http.StatusOK || !contains(b, acme.marker) {
			t.Errorf("GET %s: %d %s; want 200 with %s", p, status, b, acme.marker)
		}
		if contains(b, "globex") {
			t.Errorf("GET %s shows globex: %s", p, b)
		}
	}
	status, b := f.do(t, "GET", "/api/v1/agents", acme.admin, nil)
	if status != http.StatusOK {
		t.Fatal(status, string(b))
	}
	ag := decode[struct {
		Agents []webview.AgentView `json:"agents"`
	}](t, b)
	if len(ag.Agents) != 1 || ag.Agents[0].Inbox != 1 || len(ag.Agents[0].Leases) != 1 || ag.Agents[0].Liveness != "alive" || ag.Agents[0].Cohort != "cohort-marker-acme" {
		t.Fatalf("roster: %+v", ag.Agents)
	}
	if status, b := f.do(t, "GET", "/api/v1/tokens", acme.admin, nil); status != 200 || contains(b, `"hash"`) {
		t.Fatalf("tokens: %d %s (the hash must never be served)", status, b)
	}
}

func TestEventFiltersAndCursor(t *testing.T) {
	f := newFixture(t, webview.Options{})
	acme := f.t["acme"]
	cases := []struct {
		query string
		want  func(audit.Event) bool
	}{
		{"kind=note.added", func(e audit.Event) bool { return e.Kind == "note.added" }},
		{"session=" + acme.session, func(e audit.Event) bool { return e.Session == acme.session }},
		{"agent=" + acme.agent, func(e audit.Event) bool { return e.Agent == acme.agent }},
		{"user=alice-acme", func(e audit.Event) bool { return e.User == "alice-acme" }},
		{"project=" + acme.project, func(e audit.Event) bool { return e.Project == acme.project }},
		{"project=app-marker-acme&path=src/marker-acme/main.go", func(e audit.Event) bool {
			return e.Project == acme.project && e.Path == "src/marker-acme/main.go"
		}},
		{"kind=file.modified&project=app-marker-acme&path=src/marker-acme/main.go", func(e audit.Event) bool { return e.Kind == "file.modified" }},
		{"since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00Z", func(e audit.Event) bool { return true }},
		{"since=2999-01-01T00:00:00Z", func(e audit.Event) bool { return false }},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			status, b := f.do(t, "GET", "/api/v1/events?limit=1000&"+c.query, acme.admin, nil)
			if status != 200 {
				t.Fatal(status, string(b))
			}
			p := decode[webview.EventPage](t, b)
			n := 0
			for _, e := range p.Events {
				if !c.want(e) {
					t.Errorf("event %s %s does not match %s", e.ID, e.Kind, c.query)
				}
				n++
			}
			if c.query != "since=2999-01-01T00:00:00Z" && n == 0 {
				t.Errorf("no events for %s", c.query)
			}
		})
	}
	// Pages of one follow each other without gap or repeat, in both orders.
	for _, order := range []string{"newest", "oldest"} {
		status, b := f.do(t, "GET", "/api/v1/events?limit=1000&order="+order, acme.admin, nil)
		if status != 200 {
			t.Fatal(status, string(b))
		}
		all := decode[webview.EventPage](t, b).Events
		var paged []audit.Event
		cursor := ""
		for range 1000 {
			_, b := f.do(t, "GET", "/api/v1/events?limit=1&order="+order+"&cursor="+cursor, acme.admin, nil)
			p := decode[webview.EventPage](t, b)
			paged = append(paged, p.Events...)
			if p.Next == "" {
				break
			}
			cursor = p.Next
		}
		if len(paged) != len(all) || len(all) < 5 {
			t.Fatalf("%s: paged %d events, all %d", order, len(paged), len(all))
		}
		for i := range all {
			if paged[i].ID != all[i].ID {
				t.Fatalf("%s: page %d is %s, want %s", order, i, paged[i].ID, all[i].ID)
			}
		}
	}
}

func TestErrorsAreJSON(t *testing.T) {
	f := newFixture(t, webview.Options{})
	acme := f.t["acme"]
	for _, c := range []struct {
		method, path string
		token        string
		status       int
		code         string
	}{
		{"GET", "/api/v1/events?limit=0", acme.admin, 400, "bad_request"},
		{"GET", "/api/v1/events?limit=abc", acme.admin, 400, "bad_request"},
		{"GET", "/api/v1/events?order=sideways", acme.admin, 400, "bad_request"},
		{"GET", "/api/v1/events?since=yesterday", acme.admin, 400, "bad_request"},
		{"GET", "/api/v1/events?cursor=zz", acme.admin, 400, "bad_request"},
		{"GET", "/api/v1/events?kind=no.such", acme.admin, 400, "bad_request"},
		{"GET", "/api/v1/events/123", acme.admin, 400, "bad_request"},
		{"GET", "/api/v1/events/000000000000ffff00000000", acme.admin, 404, "not_found"},
		{"GET", "/api/v1/sessions?state=sleepy", acme.admin, 400, "bad_request"},
		{"GET", "/api/v1/sessions/NOPE", acme.admin, 400, "bad_request"},
		{"GET", "/api/v1/sessions/01JZ3K5V8Q2W7X9Y4N6M1P0R3T", acme.admin, 404, "not_found"},
		{"GET", "/api/v1/agents?liveness=undead", acme.admin, 400, "bad_request"},
		{"GET", "/api/v1/tasks?state=limbo", acme.admin, 400, "bad_request"},
		{"GET", "/api/v1/nothing/here", acme.admin, 404, "not_found"},
		{"GET", "/api/v1/tokens", acme.viewer, 403, "forbidden"},
		{"DELETE", "/api/v1/tokens/0123456789abcdef", acme.viewer, 403, "forbidden"},
	} {
		status, b := f.do(t, c.method, c.path, c.token, nil)
		if status != c.status || errorCode(t, b) != c.code {
			t.Errorf("%s %s: %d %s, want %d %s", c.method, c.path, status, b, c.status, c.code)
		}
	}
}

// Admins issue and revoke their tenant's tokens; revocation is immediate;
// another tenant's token id is not found.
func TestTokenLifecycle(t *testing.T) {
	f := newFixture(t, webview.Options{})
	acme, globex := f.t["acme"], f.t["globex"]
	status, b := f.do(t, "POST", "/api/v1/tokens", acme.viewer, strings.NewReader(`{"role":"viewer"}`))
	if status != http.StatusForbidden {
		t.Fatalf("viewer issuing a token: %d %s", status, b)
	}
	status, b = f.do(t, "POST", "/api/v1/tokens", acme.admin, strings.NewReader(`{"user":"viewer-acme","role":"viewer","label":"ci","ttl":"1h"}`))
	if status != http.StatusCreated {
		t.Fatalf("issue: %d %s", status, b)
	}
	issued := decode[struct {
		Secret string            `json:"secret"`
		Token  webview.TokenView `json:"token"`
	}](t, b)
	if status, b := f.do(t, "GET", "/api/v1/whoami", issued.Secret, nil); status != 200 || !contains(b, `"viewer-acme"`) {
		t.Fatalf("new token: %d %s", status, b)
	}
	if status, b := f.do(t, "DELETE", "/api/v1/tokens/"+issued.Token.ID, globex.admin, nil); status != http.StatusNotFound {
		t.Fatalf("globex revoking acme's token: %d %s", status, b)
	}
	if status, _ := f.do(t, "GET", "/api/v1/whoami", issued.Secret, nil); status != 200 {
		t.Fatal("globex's attempt revoked acme's token")
	}
	if status, b := f.do(t, "DELETE", "/api/v1/tokens/"+issued.Token.ID, acme.admin, nil); status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", status, b)
	}
	if status, _ := f.do(t, "GET", "/api/v1/events", issued.Secret, nil); status != http.StatusUnauthorized {
		t.Fatalf("revoked token still works: %d", status)
	}
	if status, b := f.do(t, "POST", "/api/v1/tokens", acme.admin, strings.NewReader(`{"role":"emperor"}`)); status != 400 {
		t.Fatalf("bad role: %d %s", status, b)
	}
}

// The dashboard is served with a strict CSP, and its assets hold no inline
// script, no eval and nothing remote.
func TestDashboardAssetsAreStrict(t *testing.T) {
	f := newFixture(t, webview.Options{})
	resp, err := http.Get(f.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Fatalf("GET /: %d, CSP %q", resp.StatusCode, csp)
	}
	if resp, err := http.Post(f.srv.URL+"/", "text/plain", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /: %v %v", resp.StatusCode, err)
	}
	inline := regexp.MustCompile(`<script(?:(?:\s+[a-z]+="[^"]*")*)\s*>`)
	remote := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//`)
	srcRE := regexp.MustCompile(`src="`)
	err = filepath.WalkDir("assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s := string(b)
		for _, m := range inline.FindAllString(s, -1) {
			if !srcRE.MatchString(m) {
				t.Errorf("%s: inline script %q", p, m)
			}
		}
		if remote.MatchString(s) || strings.Contains(s, "@import url(http") {
			t.Errorf("%s: loads something remote", p)
		}
		for _, bad := range []string{"eval(", "new Function(", "innerHTML", " onclick=", "style=\""} {
			if strings.Contains(s, bad) {
				t.Errorf("%s: uses %s", p, bad)
			}
		}
		if d.Name() == "index.html" {
			return nil // served at "/"
		}
		resp, err := http.Get(f.srv.URL + "/assets/" + strings.TrimPrefix(filepath.ToSlash(p), "assets/"))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: served %d", p, resp.StatusCode)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
