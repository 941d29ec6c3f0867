package webview_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/webview"
)

// An address that keeps failing authentication is locked out on REST and
// on the feed (handshake header and subscription token) with 429 / 4429;
// a token that succeeded before still works from it.
func TestRESTRateLimit(t *testing.T) {
	f := newFixture(t, webview.Options{})
	f.dir.SetAuthLimits(tenant.AuthLimits{Burst: 3, Refill: time.Hour, Lockout: time.Hour})
	acme := f.t["acme"]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if status, b := f.do(t, "GET", "/api/v1/whoami", acme.admin, nil); status != http.StatusOK {
		t.Fatalf("whoami: %d %s", status, b)
	}
	// Requests without a token are not guesses: they never count.
	for range 10 {
		if status, _ := f.do(t, "GET", "/api/v1/whoami", "", nil); status != http.StatusUnauthorized {
			t.Fatalf("no token: %d", status)
		}
	}
	for i := range 4 {
		if status, b := f.do(t, "GET", "/api/v1/whoami", "cdt_guess"+strconv.Itoa(i), nil); status != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d %s", i, status, b)
		}
	}
	req, err := http.NewRequest("GET", f.srv.URL+"/api/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+acme.viewer) // valid, but never used from here
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("locked out: status %d, want 429", resp.StatusCode)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 3600 {
		t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	status, b := f.do(t, "GET", "/api/v1/tenant", "cdt_guess", nil)
	if status != http.StatusTooManyRequests || errorCode(t, b) != "rate_limited" {
		t.Fatalf("locked out: %d %s", status, b)
	}
	if status, b := f.do(t, "GET", "/api/v1/tenant", acme.admin, nil); status != http.StatusOK {
		t.Fatalf("known-good token while locked out: %d %s", status, b)
	}
	// The feed shares the limit: a handshake header is refused before the
	// upgrade, a subscription token closes with 4429.
	url := "ws" + strings.TrimPrefix(f.srv.URL, "http") + webview.FeedPath
	_, resp, err = websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer cdt_guess"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("feed handshake while locked out: %v %v", resp, err)
	}
	if _, err := dialFeed(t, ctx, f, "", webview.Subscription{Token: "cdt_guess", Cursor: "head"}); websocket.CloseStatus(err) != webview.StatusRateLimited {
		t.Fatalf("feed subscription while locked out: %v, want %d", err, webview.StatusRateLimited)
	}
	if _, err := dialFeed(t, ctx, f, "", webview.Subscription{Token: acme.admin, Cursor: "head"}); err != nil {
		t.Fatalf("feed with a known-good token while locked out: %v", err)
	}
	if st := f.h.Stats(); st.AuthFailures < 7 {
		t.Errorf("AuthFailures %d", st.AuthFailures)
	}
}

// REST authenticates every request without a cache: the request after a
// revocation is refused.
func TestRESTRevocationIsImmediate(t *testing.T) {
	f := newFixture(t, webview.Options{})
	acme := f.t["acme"]
	ctx := context.Background()
	secret, tok, err := acme.sc.IssueToken(ctx, "viewer-acme", tenant.RoleViewer, tenantOpts())
	if err != nil {
		t.Fatal(err)
	}
	if status, b := f.do(t, "GET", "/api/v1/events", secret, nil); status != http.StatusOK {
		t.Fatalf("before: %d %s", status, b)
	}
	if err := acme.sc.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if status, b := f.do(t, "GET", "/api/v1/events", secret, nil); status != http.StatusUnauthorized || errorCode(t, b) != "unauthorized" {
		t.Fatalf("after revocation: %d %s", status, b)
	}
}

// With the default Recheck, an open feed whose token is revoked is closed
// with 4401 within about a second (DefaultRecheck plus scheduling).
func TestFeedRevocationWithinASecond(t *testing.T) {
	if webview.DefaultRecheck > time.Second {
		t.Fatalf("DefaultRecheck %v: revocation must take effect within a second", webview.DefaultRecheck)
	}
	f := newFixture(t, webview.Options{})
	acme := f.t["acme"]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	secret, tok, err := acme.sc.IssueToken(ctx, "viewer-acme", tenant.RoleViewer, tenantOpts())
	if err != nil {
		t.Fatal(err)
	}
	fc, err := dialFeed(t, ctx, f, "", webview.Subscription{Token: secret, Cursor: "head"})
	if err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	if err := acme.sc.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	// The close must arrive by this deadline; the read waits for it.
	const slack = 750 * time.Millisecond
	rctx, rcancel := context.WithDeadline(ctx, revoked.Add(webview.DefaultRecheck+slack))
	defer rcancel()
	var buf []audit.Event
	for {
		_, err := fc.next(rctx, &buf)
		if err == nil {
			continue // the revocation's own audit event
		}
		if websocket.CloseStatus(err) != webview.StatusUnauthorized {
			t.Fatalf("after %v: %v, want close status %d within %v", time.Since(revoked), err, webview.StatusUnauthorized, webview.DefaultRecheck+slack)
		}
		t.Logf("feed closed %v after the revocation", time.Since(revoked).Round(time.Millisecond))
		return
	}
}
