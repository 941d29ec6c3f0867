package webview_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/webview"
)

// Feeds are capped per token and per tenant: the excess is closed with
// 4409, other tenants are not affected, and a closed feed frees its slot.
func TestFeedSubscribersCapped(t *testing.T) {
	f := newFixture(t, webview.Options{MaxFeedsPerToken: 2, MaxFeedsPerTenant: 3})
	acme, globex := f.t["acme"], f.t["globex"]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	open := func(token string) *feedClient {
		t.Helper()
		fc, err := dialFeed(t, ctx, f, "", webview.Subscription{Token: token, Cursor: "head"})
		if err != nil {
			t.Fatalf("feed within the limits: %v", err)
		}
		return fc
	}
	refused := func(token, want string) {
		t.Helper()
		_, err := dialFeed(t, ctx, f, "", webview.Subscription{Token: token, Cursor: "head"})
		if websocket.CloseStatus(err) != webview.StatusTooManyFeeds || !strings.Contains(fmt.Sprint(err), want) {
			t.Fatalf("feed beyond the limit: %v, want status %d mentioning %q", err, webview.StatusTooManyFeeds, want)
		}
	}
	first := open(acme.admin)
	open(acme.admin)
	refused(acme.admin, "this token already has 2 feeds open")
	open(acme.viewer)
	refused(acme.viewer, "this tenant already has 3 feeds open")
	open(globex.admin)
	open(globex.admin)

	// Closing a feed frees its slot once the server has seen it go.
	if err := first.c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := dialFeed(t, ctx, f, "", webview.Subscription{Token: acme.admin, Cursor: "head"})
		if err == nil {
			break
		}
		if websocket.CloseStatus(err) != webview.StatusTooManyFeeds || ctx.Err() != nil {
			t.Fatalf("after closing a feed: %v", err)
		}
	}
}

// A client that stops reading while its queue still has room is slow once
// one write to it takes longer than SlowAfter: when it reads again it gets
// what was sent, then 4408 (not a bare end of stream), and resumes from
// its cursor with no gap.
func TestFeedBlockedWriteClosedWith4408(t *testing.T) {
	slow := make(chan struct{})
	logger := slog.New(&signalHandler{msg: "too slow", fired: slow})
	// The queue never fills: only the blocked write can find the client slow.
	f := newFixture(t, webview.Options{QueueSize: 1 << 16, QueueBytes: 1 << 30, MaxBatch: 16, SlowAfter: 300 * time.Millisecond, WriteTimeout: time.Minute, Logger: logger})
	acme := f.t["acme"]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start, err := acme.sc.Log().Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fc, err := dialFeed(t, ctx, f, "", webview.Subscription{Token: acme.admin, Cursor: start})
	if err != nil {
		t.Fatal(err)
	}
	// More than the socket buffers hold, so that the server's writes block.
	big := strings.Repeat("x", 1900)
	const total = 12000
	for i := 0; i < total; i += 500 {
		batch := make([]audit.Event, 500)
		for j := range batch {
			batch[j] = acme.sc.Event("note.added", fmt.Sprintf("%05d %s", i+j, big))
		}
		if _, err := acme.sc.Log().Append(ctx, batch...); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-slow:
	case <-ctx.Done():
		t.Fatal("the server never found the blocked client slow")
	}
	var got []string
	var buf []audit.Event
	var closeErr error
	for {
		ev, err := fc.next(ctx, &buf)
		if err != nil {
			closeErr = err
			break
		}
		got = append(got, ev.ID)
	}
	if websocket.CloseStatus(closeErr) != webview.StatusSlowConsumer {
		t.Fatalf("closed with %v after %d events, want status %d", closeErr, len(got), webview.StatusSlowConsumer)
	}
	if n := f.h.Stats().FeedSlow; n != 1 {
		t.Fatalf("%d slow disconnects counted, want 1", n)
	}
	resumed, err := dialFeed(t, ctx, f, "", webview.Subscription{Token: acme.admin, Cursor: fc.last})
	if err != nil {
		t.Fatal(err)
	}
	buf = nil
	for len(got) < total {
		ev, err := resumed.next(ctx, &buf)
		if err != nil {
			t.Fatalf("after %d events: %v", len(got), err)
		}
		got = append(got, ev.ID)
	}
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] || id <= start {
			t.Fatalf("event %s twice or from before the cursor", id)
		}
		seen[id] = true
	}
}
