package faults_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/coditect/coditect/server"
	"github.com/coditect/coditect/server/servertest"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/webview"
)

// TestIdleFeedsBounded: 300 subscribers of one token that never read
// after subscribing, on a log with a backlog. Only
// DefaultMaxFeedsPerToken are served; the rest are closed with 4409; the
// daemon's growth is logged and bounded.
func TestIdleFeedsBounded(t *testing.T) {
	storeURL := sqliteURL(filepath.Join(t.TempDir(), "coditect.db"))
	d := startDaemon(t, storeURL, "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	sc := openScope(t, storeURL, d.token)
	pad := strings.Repeat("x", 700)
	for i := 0; i < 4; i++ {
		batch := make([]audit.Event, 500)
		for j := range batch {
			batch[j] = sc.Event("note.added", fmt.Sprintf("%04d %s", i*500+j, pad))
		}
		if _, err := sc.Log().Append(ctx, batch...); err != nil {
			t.Fatal(err)
		}
	}
	pid := d.cmd.Process.Pid
	before, heapBefore := rssKB(t, pid), heapKB(t, d)

	const subs = 300
	var (
		mu       sync.Mutex
		open     []*feedClient
		refused  int
		unwanted []error
		wg       sync.WaitGroup
	)
	sem := make(chan struct{}, 20)
	for range subs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			f, err := dialFeed(ctx, d, d.token, "", webview.FeedFilter{})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				open = append(open, f)
			case websocket.CloseStatus(err) == webview.StatusTooManyFeeds:
				refused++
			default:
				unwanted = append(unwanted, err)
			}
		})
	}
	wg.Wait()
	defer func() {
		for _, f := range open {
			f.c.CloseNow()
		}
	}()
	for _, err := range unwanted {
		t.Errorf("subscription neither served nor refused with 4409: %v", err)
	}
	if len(open) != webview.DefaultMaxFeedsPerToken || refused != subs-webview.DefaultMaxFeedsPerToken {
		t.Fatalf("%d feeds served, %d refused; want %d and %d", len(open), refused, webview.DefaultMaxFeedsPerToken, subs-webview.DefaultMaxFeedsPerToken)
	}
	// The served ones do not read; their backlog waits in the daemon or
	// the sockets. A new event still reaches the daemon's other clients.
	resp, err := servertest.BearerClient(d.token).Get(d.url + "/api/v1/whoami")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("REST beside the idle feeds: %v %v", resp, err)
	}
	resp.Body.Close()
	after, heapAfter := rssKB(t, pid), heapKB(t, d)
	t.Logf("%d subscribers of one token that never read: %d served, %d refused (4409); daemon RSS %d KiB before, %d KiB after (+%d KiB); Go heap in use %d KiB before, %d KiB after (%d KiB per served feed)",
		subs, len(open), refused, before, after, after-before, heapBefore, heapAfter, (heapAfter-heapBefore)/max(1, len(open)))
	if after-before > 100<<10 {
		t.Errorf("the daemon grew by %d KiB", after-before)
	}
}

// TestSlowBodiesCutOff: 200 clients with a valid token start POST bodies
// they never finish. Each connection is closed once server.BodyTimeout
// has passed; the time is logged.
func TestSlowBodiesCutOff(t *testing.T) {
	storeURL := sqliteURL(filepath.Join(t.TempDir(), "coditect.db"))
	d := startDaemon(t, storeURL, "127.0.0.1:0")
	const clients = 200
	deadline := time.Now().Add(server.BodyTimeout + 30*time.Second)
	start := time.Now()
	closedAfter := make(chan time.Duration, clients)
	errs := make(chan error, clients)
	for i := range clients {
		c, err := net.Dial("tcp", d.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Half on /mcp, half on the REST API.
		path := server.MCPPath
		if i%2 == 1 {
			path = "/api/v1/projects"
		}
		if _, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 100000\r\n\r\n{\"jsonrpc\":", path, d.addr, d.token); err != nil {
			t.Fatal(err)
		}
		go func() {
			_ = c.SetReadDeadline(deadline)
			_, err := io.Copy(io.Discard, bufio.NewReader(c))
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				errs <- fmt.Errorf("connection still open after %v", time.Since(start).Round(time.Second))
				return
			}
			closedAfter <- time.Since(start)
		}()
	}
	var last time.Duration
	for range clients {
		select {
		case took := <-closedAfter:
			last = max(last, took)
		case err := <-errs:
			t.Fatal(err)
		}
	}
	t.Logf("%d slow bodies with a valid token: all closed by the daemon, the last after %v (BodyTimeout %v)", clients, last.Round(time.Millisecond), server.BodyTimeout)
	resp, err := servertest.BearerClient(d.token).Get(d.url + "/api/v1/whoami")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("REST after the slow bodies: %v %v", resp, err)
	}
	resp.Body.Close()
}

// heapKB is the daemon's Go heap in use, from its /metrics, in KiB.
func heapKB(t *testing.T, d *daemon) int {
	t.Helper()
	resp, err := http.Get(d.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int(f) >> 10
		}
	}
	t.Fatal("no go_memstats_heap_inuse_bytes in /metrics")
	return 0
}
