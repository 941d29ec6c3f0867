package webview_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/webview"
)

// feedClient is a real WebSocket client of the feed.
type feedClient struct {
	c    *websocket.Conn
	last string
	sub  webview.FeedMessage
}

func dialFeed(t *testing.T, ctx context.Context, f *fixture, origin string, sub webview.Subscription) (*feedClient, error) {
	t.Helper()
	url := "ws" + strings.TrimPrefix(f.srv.URL, "http") + webview.FeedPath
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(32 << 20)
	sub.Type = "subscribe"
	if err := wsjson.Write(ctx, c, sub); err != nil {
		return nil, err
	}
	fc := &feedClient{c: c, last: sub.Cursor}
	if err := wsjson.Read(ctx, c, &fc.sub); err != nil {
		return nil, err
	}
	if fc.sub.Type != "subscribed" {
		return nil, fmt.Errorf("first message %+v", fc.sub)
	}
	t.Cleanup(func() { c.CloseNow() })
	return fc, nil
}

// next returns the next event.
func (fc *feedClient) next(ctx context.Context, buf *[]audit.Event) (audit.Event, error) {
	for len(*buf) == 0 {
		var m webview.FeedMessage
		if err := wsjson.Read(ctx, fc.c, &m); err != nil {
			return audit.Event{}, err
		}
		if m.Type != "events" {
			return audit.Event{}, fmt.Errorf("unexpected message %+v", m)
		}
		*buf = m.Events
	}
	ev := (*buf)[0]
	*buf = (*buf)[1:]
	fc.last = ev.ID
	return ev, nil
}

// Events appended by another process reach a subscribed client, in order,
// and a filtered subscription gets only what matches.
func TestFeedStreamsEventsFromAnotherProcess(t *testing.T) {
	f := newFixture(t, webview.Options{})
	acme := f.t["acme"]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all, err := dialFeed(t, ctx, f, "", webview.Subscription{Token: acme.viewer, Cursor: "head"})
	if err != nil {
		t.Fatal(err)
	}
	if all.sub.Tenant != "acme" || all.sub.Cursor == "" {
		t.Fatalf("subscribed: %+v", all.sub)
	}
	files, err := dialFeed(t, ctx, f, "", webview.Subscription{Token: acme.viewer, Cursor: "head", Filter: webview.FeedFilter{Kind: "file.modified"}})
	if err != nil {
		t.Fatal(err)
	}
	// globex follows its own log and must see none of acme's events.
	other, err := dialFeed(t, ctx, f, "", webview.Subscription{Token: f.t["globex"].admin, Cursor: "head"})
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), writerEnv+"="+f.storeURL, "WEBVIEW_TEST_WRITER_TENANT=acme")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ids := bufio.NewScanner(stdout)
	const n = 20
	var written []string
	for i := range n {
		fmt.Fprintf(stdin, "from another process %d\n", i)
		if !ids.Scan() {
			t.Fatalf("writer stopped: %v", ids.Err())
		}
		written = append(written, ids.Text())
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	var buf []audit.Event
	for i := range n {
		ev, err := all.next(ctx, &buf)
		if err != nil {
			t.Fatal(err)
		}
		for ev.Kind != "note.added" { // the writer's local user was created first
			if ev, err = all.next(ctx, &buf); err != nil {
				t.Fatal(err)
			}
		}
		if ev.ID != written[i] || ev.Summary != fmt.Sprintf("from another process %d", i) || ev.Tenant != "acme" {
			t.Fatalf("event %d: %+v, want id %s", i, ev, written[i])
		}
	}
	// Now a file change from this process: the filtered client's first event.
	evs, err := acme.sc.Log().Append(ctx, audit.Event{Kind: "file.modified", Path: "src/x.go", User: "alice-acme"})
	if err != nil {
		t.Fatal(err)
	}
	var fbuf []audit.Event
	ev, err := files.next(ctx, &fbuf)
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != evs[0].ID {
		t.Fatalf("filtered feed got %s %s, want the file.modified %s", ev.ID, ev.Kind, evs[0].ID)
	}
	// globex's feed: its own next event arrives first, none of acme's.
	gevs, err := f.t["globex"].sc.Log().Append(ctx, f.t["globex"].sc.Event("note.added", "globex only"))
	if err != nil {
		t.Fatal(err)
	}
	var gbuf []audit.Event
	if ev, err := other.next(ctx, &gbuf); err != nil || ev.ID != gevs[0].ID || ev.Tenant != "globex" {
		t.Fatalf("globex feed: %+v %v, want %s", ev, err, gevs[0].ID)
	}
}

// A client that stops reading is disconnected with 4408 once it is
// QueueSize events behind, and resuming from the last event it received
// yields the rest of the log with no gap and no duplicate.
func TestFeedSlowClientResumesWithoutGapOrDuplicate(t *testing.T) {
	slow := make(chan struct{})
	logger := slog.New(&signalHandler{msg: "too slow", fired: slow})
	f := newFixture(t, webview.Options{QueueSize: 16, MaxBatch: 4, SlowAfter: 200 * time.Millisecond, WriteTimeout: time.Minute, Logger: logger})
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
	// Enough bytes to fill the socket buffers of a client that reads
	// nothing, appended while we wait for the server to notice.
	big := strings.Repeat("x", 1900)
	const total = 12000
	appended := make(chan error, 1)
	go func() {
		for i := 0; i < total; i += 500 {
			batch := make([]audit.Event, 500)
			for j := range batch {
				batch[j] = acme.sc.Event("note.added", fmt.Sprintf("%05d %s", i+j, big))
			}
			if _, err := acme.sc.Log().Append(ctx, batch...); err != nil {
				appended <- err
				return
			}
		}
		appended <- nil
	}()
	defer func() {
		if err := <-appended; err != nil {
			t.Error(err)
		}
	}()
	// Wait (with the test's deadline) for the server to give up on us: it
	// logs that it does.
	select {
	case <-slow:
	case <-ctx.Done():
		t.Fatal("the server never disconnected the slow client")
	}
	if n := f.h.Stats().FeedSlow; n != 1 {
		t.Fatalf("%d slow disconnects counted, want 1", n)
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
		t.Fatalf("closed with %v, want status %d", closeErr, webview.StatusSlowConsumer)
	}
	if len(got) >= total {
		t.Fatalf("received all %d events before the disconnect: the test did not make the client slow", len(got))
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
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	appended <- nil
	// The log itself is the reference.
	var want []string
	cursor := ""
	for {
		p, err := acme.sc.Log().Query(ctx, audit.Query{Filter: audit.Filter{Kind: "note.added"}, Order: audit.OldestFirst, Cursor: cursor, Limit: audit.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Events {
			if e.ID > start {
				want = append(want, e.ID)
			}
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if len(want) != total {
		t.Fatalf("log has %d new notes, want %d", len(want), total)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d: got %s, want %s (gap or duplicate across the reconnect)", i, got[i], want[i])
		}
	}
}

// signalHandler is a slog.Handler that closes fired the first time a
// record whose message contains msg is logged.
type signalHandler struct {
	msg   string
	fired chan struct{}
	once  sync.Once
}

func (h *signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *signalHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *signalHandler) WithGroup(string) slog.Handler            { return h }
func (h *signalHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.msg) {
		h.once.Do(func() { close(h.fired) })
	}
	return nil
}

// The feed refuses foreign origins at the handshake and bad, revoked or
// missing tokens with status 4401; vscode-webview origins are allowed.
func TestFeedRefusesBadOriginsAndTokens(t *testing.T) {
	f := newFixture(t, webview.Options{})
	acme := f.t["acme"]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := dialFeed(t, ctx, f, "https://evil.example", webview.Subscription{Token: acme.admin}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("foreign origin: %v, want a 403 handshake failure", err)
	}
	if _, err := dialFeed(t, ctx, f, "vscode-webview://1234abcd", webview.Subscription{Token: acme.admin, Cursor: "head"}); err != nil {
		t.Fatalf("vscode webview origin: %v", err)
	}
	if _, err := dialFeed(t, ctx, f, f.srv.URL, webview.Subscription{Token: acme.admin, Cursor: "head"}); err != nil {
		t.Fatalf("same origin: %v", err)
	}
	for name, tok := range map[string]string{"missing": "", "wrong": "cdt_nope", "revoked": acme.revoked} {
		_, err := dialFeed(t, ctx, f, "", webview.Subscription{Token: tok, Cursor: "head"})
		if websocket.CloseStatus(err) != webview.StatusUnauthorized {
			t.Errorf("%s token: %v, want close status %d", name, err, webview.StatusUnauthorized)
		}
	}
	_, err := dialFeed(t, ctx, f, "", webview.Subscription{Token: acme.admin, Cursor: "not-a-cursor"})
	if websocket.CloseStatus(err) != webview.StatusBadRequest {
		t.Errorf("bad cursor: %v, want %d", err, webview.StatusBadRequest)
	}
	// A bad Authorization header on the handshake is a 401 before upgrading.
	url := "ws" + strings.TrimPrefix(f.srv.URL, "http") + webview.FeedPath
	_, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + acme.revoked}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("revoked bearer on the handshake: %v %v", resp, err)
	}
}

// Revoking the token of an open feed closes it (the periodic re-check).
func TestFeedClosesWhenTokenRevoked(t *testing.T) {
	f := newFixture(t, webview.Options{Recheck: 20 * time.Millisecond})
	acme := f.t["acme"]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	secret, tok, err := acme.sc.IssueToken(ctx, "viewer-acme", "viewer", tenantOpts())
	if err != nil {
		t.Fatal(err)
	}
	fc, err := dialFeed(t, ctx, f, "", webview.Subscription{Token: secret, Cursor: "head"})
	if err != nil {
		t.Fatal(err)
	}
	if err := acme.sc.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	var buf []audit.Event
	for {
		_, err := fc.next(ctx, &buf)
		if err == nil {
			continue // the revocation's own audit event may arrive first
		}
		if websocket.CloseStatus(err) != webview.StatusUnauthorized {
			t.Fatalf("closed with %v, want %d", err, webview.StatusUnauthorized)
		}
		break
	}
}

// Shutdown closes open feeds with "going away".
func TestFeedShutdown(t *testing.T) {
	f := newFixture(t, webview.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fc, err := dialFeed(t, ctx, f, "", webview.Subscription{Token: f.t["acme"].admin, Cursor: "head"})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		var buf []audit.Event
		_, err := fc.next(ctx, &buf)
		errc <- err
	}()
	if err := f.h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Usually a 1001 close frame; under heavy load the client may see the
	// connection end before it reads the frame. Either way it has ended.
	if err := <-errc; err == nil || (websocket.CloseStatus(err) != websocket.StatusGoingAway && !strings.Contains(err.Error(), "EOF")) {
		t.Fatalf("closed with %v, want going away", err)
	}
	if n := f.h.Stats().FeedClients; n != 0 {
		t.Fatalf("%d feed clients after Shutdown", n)
	}
	if _, err := dialFeed(t, ctx, f, "", webview.Subscription{Token: f.t["acme"].admin}); err == nil {
		t.Fatal("a feed opened after Shutdown")
	} else if errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
}

// Clients at every kind of cursor, some filtered, follow a log that grows
// while they subscribe: each gets exactly the log's matching events after
// its cursor, in order, whether the clients share store tails (the
// default) or each follows the store on its own.
func TestFeedManyClientsNoGapNoDuplicate(t *testing.T) {
	for _, perClient := range []bool{false, true} {
		t.Run(fmt.Sprintf("PerClientTail=%v", perClient), func(t *testing.T) {
			f := newFixture(t, webview.Options{PerClientTail: perClient, QueueSize: 64, MaxBatch: 16})
			acme := f.t["acme"]
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			appendNotes := func(from, n int) {
				for i := from; i < from+n; i += 7 {
					var batch []audit.Event
					for j := i; j < min(i+7, from+n); j++ {
						kind := "note.added"
						if j%3 == 0 {
							kind = "decision.recorded"
						}
						batch = append(batch, acme.sc.Event(kind, fmt.Sprintf("n%d", j)))
					}
					if _, err := acme.sc.Log().Append(ctx, batch...); err != nil {
						t.Error(err)
						return
					}
				}
			}
			appendNotes(0, 150)
			mid, err := acme.sc.Log().Head(ctx)
			if err != nil {
				t.Fatal(err)
			}
			appendNotes(150, 150)
			type client struct {
				fc     *feedClient
				cursor string
				filter webview.FeedFilter
			}
			var clients []*client
			subscribe := func(cursor string, filter webview.FeedFilter) {
				fc, err := dialFeed(t, ctx, f, "", webview.Subscription{Token: acme.viewer, Cursor: cursor, Filter: filter})
				if err != nil {
					t.Fatal(err)
				}
				clients = append(clients, &client{fc: fc, cursor: fc.sub.Cursor, filter: filter})
			}
			done := make(chan struct{})
			go func() { defer close(done); appendNotes(300, 300) }()
			for i := range 12 {
				filter := webview.FeedFilter{}
				if i%3 == 2 {
					filter.Kind = "note.added"
				}
				subscribe([]string{"", "head", mid}[i%3], filter)
			}
			<-done
			appendNotes(600, 50)
			for i, c := range clients {
				var want []string
				cursor := c.cursor
				for {
					p, err := acme.sc.Log().Query(ctx, audit.Query{Filter: audit.Filter{Kind: c.filter.Kind}, Order: audit.OldestFirst, Cursor: cursor, Limit: audit.MaxLimit})
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range p.Events {
						want = append(want, e.ID)
					}
					if p.Next == "" {
						break
					}
					cursor = p.Next
				}
				var buf []audit.Event
				for k, id := range want {
					ev, err := c.fc.next(ctx, &buf)
					if err != nil {
						t.Fatalf("client %d (cursor %q, %+v): after %d of %d events: %v", i, c.cursor, c.filter, k, len(want), err)
					}
					if ev.ID != id {
						t.Fatalf("client %d (cursor %q, %+v): event %d is %s %q, want %s", i, c.cursor, c.filter, k, ev.ID, ev.Summary, id)
					}
				}
			}
		})
	}
}

// A client that stops reading does not hold up the others on its shared
// tail: they receive everything while it is stalled (its slow-consumer
// timeout is longer than the test), and it still resumes with no gap.
func TestFeedStalledClientDoesNotDelayOthers(t *testing.T) {
	f := newFixture(t, webview.Options{QueueSize: 8, MaxBatch: 4, SlowAfter: 10 * time.Minute, WriteTimeout: 10 * time.Minute})
	acme := f.t["acme"]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stalled, err := dialFeed(t, ctx, f, "", webview.Subscription{Token: acme.viewer, Cursor: "head"})
	if err != nil {
		t.Fatal(err)
	}
	reader, err := dialFeed(t, ctx, f, "", webview.Subscription{Token: acme.viewer, Cursor: "head"})
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("y", 1900)
	const total = 6000 // ~12 MB: more than the stalled client's socket buffers hold
	var ids []string
	for i := 0; i < total; i += 100 {
		batch := make([]audit.Event, 100)
		for j := range batch {
			batch[j] = acme.sc.Event("note.added", fmt.Sprintf("%04d %s", i+j, big))
		}
		evs, err := acme.sc.Log().Append(ctx, batch...)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			ids = append(ids, e.ID)
		}
	}
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	var buf []audit.Event
	for i, id := range ids {
		ev, err := reader.next(rctx, &buf)
		if err != nil {
			t.Fatalf("the reading client got %d of %d events while the other was stalled: %v", i, total, err)
		}
		if ev.ID != id {
			t.Fatalf("reading client: event %d is %s, want %s", i, ev.ID, id)
		}
	}
	// Now the stalled client reads: everything, in order.
	buf = nil
	for i, id := range ids {
		ev, err := stalled.next(ctx, &buf)
		if err != nil || ev.ID != id {
			t.Fatalf("stalled client, event %d: %s %v, want %s", i, ev.ID, err, id)
		}
	}
}
