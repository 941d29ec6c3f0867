package server_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/coditect/coditect/server"
	"github.com/coditect/coditect/server/servertest"
	"github.com/coditect/coditect/storage/tenant"
)

// An address that keeps failing authentication gets 429 with Retry-After
// and a JSON-RPC error; a token it used successfully before still works.
func TestHTTPRateLimit(t *testing.T) {
	ts := servertest.New(t, server.Options{}, server.HTTPOptions{})
	ts.Dir.SetAuthLimits(tenant.AuthLimits{Burst: 3, Refill: time.Hour, Lockout: time.Hour})
	good := ts.Token(t, "acme", "alice", tenant.RoleMember)
	fresh := ts.Token(t, "acme", "bob", tenant.RoleMember)
	bearer := func(s string) map[string]string { return map[string]string{"Authorization": "Bearer " + s} }
	if resp, body := post(t, ts.URL, bearer(good), initialize); resp.StatusCode != http.StatusOK {
		t.Fatalf("good token: %d %s", resp.StatusCode, body)
	}
	for i := range 4 {
		if resp, body := post(t, ts.URL, bearer("cdt_guess"+strconv.Itoa(i)), initialize); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d %s", i, resp.StatusCode, body)
		}
	}
	for _, secret := range []string{"cdt_guess", fresh} {
		resp, body := post(t, ts.URL, bearer(secret), initialize)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("locked out: %d %s, want 429", resp.StatusCode, body)
		}
		if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
		}
		var msg struct {
			Error struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(body), &msg); err != nil || msg.Error.Code != -32029 {
			t.Errorf("429 body %q", body)
		}
	}
	if resp, body := post(t, ts.URL, bearer(good), initialize); resp.StatusCode != http.StatusOK {
		t.Fatalf("known-good token while locked out: %d %s", resp.StatusCode, body)
	}
}

// A revoked token is refused by MCP over HTTP within DefaultRecheck (the
// token cache's lifetime): the test polls until the 401, with a deadline.
func TestHTTPRevocationWithinASecond(t *testing.T) {
	ts := servertest.New(t, server.Options{}, server.HTTPOptions{})
	secret := ts.Token(t, "acme", "alice", tenant.RoleMember)
	bearer := map[string]string{"Authorization": "Bearer " + secret}
	if resp, body := post(t, ts.URL, bearer, initialize); resp.StatusCode != http.StatusOK {
		t.Fatalf("before: %d %s", resp.StatusCode, body)
	}
	id := ts.Scope(t, secret).Principal().TokenID
	revoked := time.Now()
	if err := ts.Dir.RevokeToken(testContext(t), "acme", id); err != nil {
		t.Fatal(err)
	}
	deadline := revoked.Add(server.DefaultRecheck + 500*time.Millisecond)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, body := post(t, ts.URL, bearer, initialize)
		if resp.StatusCode == http.StatusUnauthorized {
			t.Logf("refused %v after the revocation", time.Since(revoked).Round(time.Millisecond))
			return
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d %s", resp.StatusCode, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("still accepted %v after the revocation", time.Since(revoked))
		}
		<-tick.C
	}
}
