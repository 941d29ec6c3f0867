package webview_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coditect/coditect/webview"
)

// FuzzRESTQuery sends random query strings to every GET route of the REST
// API with a valid token: the handler never panics and never answers 5xx,
// and a refusal is a 4xx with a JSON error code.
func FuzzRESTQuery(f *testing.F) {
	fx := newFixture(f, webview.Options{})
	acme := fx.t["acme"]
	var gets []string
	for _, r := range fx.h.Routes() {
		if method, path, _ := strings.Cut(r, " "); method == http.MethodGet && path != webview.FeedPath {
			gets = append(gets, acme.expand(path))
		}
	}
	for i, q := range []string{
		"", "limit=1", "limit=0", "limit=-1", "limit=99999999999999999999", "order=oldest&cursor=" + acme.event,
		"cursor=%ff%00", "since=2026-01-01T00:00:00Z&until=bad", "kind=file.modified&path=/src/x", "state=open",
		"active=maybe", "liveness=gone", "after=%2F..%2F", "user=a&user=b", "%zz", "a=%", "session=" + acme.session,
		"project=" + acme.project, "project=%ff%00", "project=pr_" + strings.Repeat("x", 300), "project=a/b&path=../x",
	} {
		f.Add(uint8(i), q)
	}
	f.Fuzz(func(t *testing.T, route uint8, query string) {
		path := gets[int(route)%len(gets)]
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.Path = path
		req.URL.RawQuery = query
		req.Header.Set("Authorization", "Bearer "+acme.admin)
		rec := httptest.NewRecorder()
		fx.h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("GET %s?%q: %d %s", path, query, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e struct {
				Error webview.APIError `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" {
				t.Fatalf("GET %s?%q: %d without a JSON error: %s", path, query, rec.Code, rec.Body)
			}
		}
	})
}
