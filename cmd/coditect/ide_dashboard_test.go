package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/webview"
)

// The IDE's local dashboard serves the page, its assets and the API only
// under the secret path, so the page's relative URLs work there and behind
// a proxy prefix (code-server's /proxy/PORT/) in front of it.
func TestIDEDashboardMuxUnderSecretAndProxy(t *testing.T) {
	ctx := context.Background()
	st, err := storage.Open(ctx, "sqlite://"+filepath.ToSlash(filepath.Join(t.TempDir(), "c.db")))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := webview.New(tenant.NewDirectory(st, "test"), webview.Options{})
	defer h.Shutdown(ctx)
	srv := httptest.NewServer(http.StripPrefix("/proxy/1234", dashboardMux("s3cret", h)))
	defer srv.Close()
	for path, want := range map[string]int{
		"/proxy/1234/s3cret/":                 http.StatusOK,
		"/proxy/1234/s3cret/assets/app.js":    http.StatusOK,
		"/proxy/1234/s3cret/assets/style.css": http.StatusOK,
		"/proxy/1234/s3cret/api/v1/whoami":    http.StatusUnauthorized, // served, token-guarded
		"/proxy/1234/":                        http.StatusNotFound,
		"/proxy/1234/assets/app.js":           http.StatusNotFound,
		"/proxy/1234/api/v1/whoami":           http.StatusNotFound,
		"/proxy/1234/guess/":                  http.StatusNotFound,
	} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}
