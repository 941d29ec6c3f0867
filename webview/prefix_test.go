package webview_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/coditect/coditect/webview"
)

// proxyPrefix is where code-server's port proxy mounts a local server.
const proxyPrefix = "/proxy/1234"

// The dashboard works under a path prefix, as behind code-server's
// /proxy/PORT/: the page names its assets relative to itself, and they,
// the API and the feed all answer under the prefix.
func TestDashboardUnderPathPrefix(t *testing.T) {
	f := newFixture(t, webview.Options{})
	srv := httptest.NewServer(http.StripPrefix(proxyPrefix, f.h))
	t.Cleanup(srv.Close)
	page, err := url.Parse(srv.URL + proxyPrefix + "/")
	if err != nil {
		t.Fatal(err)
	}
	get := func(u, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("GET", u, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	status, html := get(page.String(), "")
	if status != http.StatusOK {
		t.Fatalf("page under %s: %d", proxyPrefix, status)
	}
	// Desktop VS Code frames the page from its webview and workbench schemes.
	for _, src := range []string{"'self'", "vscode-webview:", "vscode-file:"} {
		if !regexp.MustCompile(`frame-ancestors [^;]*` + regexp.QuoteMeta(src)).MatchString(webview.ContentSecurityPolicy) {
			t.Errorf("frame-ancestors does not allow %s: %s", src, webview.ContentSecurityPolicy)
		}
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(html, -1)
	if len(refs) == 0 {
		t.Fatal("index.html names no assets")
	}
	var appJS string
	for _, m := range refs {
		ref := m[1]
		if strings.HasPrefix(ref, "#") {
			continue
		}
		if strings.HasPrefix(ref, "/") || strings.Contains(ref, "://") {
			t.Errorf("index.html: %q is not relative to the page", ref)
			continue
		}
		u, err := page.Parse(ref)
		if err != nil {
			t.Fatal(err)
		}
		status, body := get(u.String(), "")
		if status != http.StatusOK {
			t.Errorf("%s under the prefix: %d", ref, status)
		}
		if strings.HasSuffix(ref, "app.js") {
			appJS = body
		}
	}
	if appJS == "" {
		t.Fatal("index.html does not load app.js")
	}
	// Every request the page makes goes through apiURL, which resolves
	// against the page's own location.
	if n := strings.Count(appJS, "fetch("); n == 0 || n != strings.Count(appJS, "fetch(apiURL(") {
		t.Errorf("app.js: %d fetch calls, not all through apiURL", n)
	}
	if n := strings.Count(appJS, "new WebSocket("); n != 1 || !regexp.MustCompile(`apiURL\('/api/v1/feed'\)`).MatchString(appJS) || strings.Contains(appJS, "location.host") {
		t.Error("app.js: the feed URL is not derived from the page's location")
	}

	token := f.t["acme"].admin
	api, err := page.Parse("api/v1/whoami")
	if err != nil {
		t.Fatal(err)
	}
	if status, body := get(api.String(), token); status != http.StatusOK {
		t.Fatalf("API under the prefix: %d %s", status, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	feed, err := page.Parse("api/v1/feed")
	if err != nil {
		t.Fatal(err)
	}
	feed.Scheme = "ws"
	c, _, err := websocket.Dial(ctx, feed.String(), nil)
	if err != nil {
		t.Fatalf("feed under the prefix: %v", err)
	}
	defer c.CloseNow()
	if err := wsjson.Write(ctx, c, map[string]any{"type": "subscribe", "token": token, "cursor": "head"}); err != nil {
		t.Fatal(err)
	}
	var msg struct {
		Type string `json:"type"`
	}
	if err := wsjson.Read(ctx, c, &msg); err != nil {
		t.Fatal(err)
	}
	if msg.Type != "subscribed" {
		t.Fatalf("feed under the prefix answered %q, want subscribed", msg.Type)
	}
}
