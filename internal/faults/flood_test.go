package faults_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/webview"
)

// The WebSocket client that stops reading is tested where the feed lives:
// webview/feed_test.go, TestFeedSlowClientResumesWithoutGapOrDuplicate and
// TestFeedStalledClientDoesNotDelayOthers (closed with 4408).

// rssKB is a process's resident set size in KiB.
func rssKB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// TestTenantFeedLimit: one client opens as many feed subscriptions as
// one tenant may have (webview.DefaultMaxFeedsPerTenant), with as many
// tokens as that takes (webview.DefaultMaxFeedsPerToken each); the daemon
// keeps answering another client's REST and MCP calls promptly, its memory
// stays bounded, it delivers a new event to every one of the connections,
// and it does not crash. The figures are logged; TestIdleFeedsBounded
// checks the limits themselves.
func TestTenantFeedLimit(t *testing.T) {
	storeURL := sqliteURL(filepath.Join(t.TempDir(), "coditect.db"))
	d := startDaemon(t, storeURL, "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	pid := d.cmd.Process.Pid
	before := rssKB(t, pid)

	const conns = webview.DefaultMaxFeedsPerTenant
	tokens := floodTokens(t, storeURL, conns/webview.DefaultMaxFeedsPerToken)
	feeds := make([]*feedClient, conns)
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	sem := make(chan struct{}, 50)
	start := time.Now()
	for i := range feeds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			f, err := dialFeed(ctx, d, tokens[i%len(tokens)], "head", webview.FeedFilter{Kind: "note.added"})
			if err != nil {
				errs <- err
				return
			}
			feeds[i] = f
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("opening %d feeds: %v\n%s", conns, err, d.stderr)
	}
	defer func() {
		for _, f := range feeds {
			f.c.CloseNow()
		}
	}()
	opened := time.Since(start)
	during := rssKB(t, pid)

	// Another client is served promptly.
	cs, err := connectHTTP(ctx, d, d.token, "bystander")
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	t0 := time.Now()
	id, err := note(ctx, cs, "while flooded")
	if err != nil {
		t.Fatal(err)
	}
	callTook := time.Since(t0)
	t0 = time.Now()
	resp, err := http.Get(d.url + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz while flooded: %v %v", resp, err)
	}
	resp.Body.Close()
	healthTook := time.Since(t0)
	if callTook > 5*time.Second || healthTook > 5*time.Second {
		t.Errorf("a bystander waited %v for a note and %v for healthz", callTook, healthTook)
	}
	// Every connection gets the event.
	for i, f := range feeds {
		evs, err := f.read(ctx)
		if err != nil || len(evs) == 0 || evs[0].ID != id {
			t.Fatalf("feed %d: %v %v", i, evs, err)
		}
	}
	after := rssKB(t, pid)
	t.Logf("%d feeds opened in %v; daemon RSS %d KiB before, %d KiB with them (%.1f KiB per feed), %d KiB after fan-out; bystander note %v, healthz %v",
		conns, opened.Round(time.Millisecond), before, during, float64(during-before)/conns, after, callTook.Round(time.Millisecond), healthTook.Round(time.Millisecond))
	if per := (during - before) / conns; per > 512 {
		t.Errorf("each idle feed costs the daemon %d KiB", per)
	}
	select {
	case <-d.exited:
		t.Fatalf("the daemon died:\n%s", d.stderr)
	default:
	}
}

// floodTokens issues n member tokens in the daemon's first tenant.
func floodTokens(t *testing.T, storeURL string, n int) []string {
	t.Helper()
	ctx := context.Background()
	dir := openDirectory(t, storeURL)
	if _, err := dir.CreateUser(ctx, "default", "flood", ""); err != nil {
		t.Fatal(err)
	}
	out := make([]string, n)
	for i := range out {
		secret, _, err := dir.IssueToken(ctx, "default", "flood", tenant.RoleMember, tenant.TokenOptions{Label: "flood"})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = secret
	}
	return out
}
