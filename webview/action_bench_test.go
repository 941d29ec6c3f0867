package webview_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/coditect/coditect/storage/kv/kvtest"
	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/webview"
)

// BenchmarkHumanAction: a person (a member token) sends a message to an
// agent with POST /api/v1/messages, one at a time; one op is one message.
// inbox-p50/p99-ms is from the start of the request to the return of the
// agent's waiting Fetch (a watch of its inbox head) with the message;
// feed-p50/p99-ms is from the start of the request to the arrival of its
// message.sent event at another dashboard's WebSocket feed.
func BenchmarkHumanAction(b *testing.B) {
	f := newFixture(b, webview.Options{})
	acme := f.t["acme"]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := f.dir.CreateUser(ctx, "acme", "bob-acme", ""); err != nil {
		b.Fatal(err)
	}
	member, _, err := f.dir.IssueToken(ctx, "acme", "bob-acme", tenant.RoleMember, tenant.TokenOptions{Label: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	asc, err := acme.sc.WithAgent(acme.agent)
	if err != nil {
		b.Fatal(err)
	}
	// The fixture's message is already in the inbox: fetch after it.
	msgs, err := message.Fetch(ctx, asc, message.FetchOptions{Limit: message.MaxLimit})
	if err != nil || len(msgs) == 0 {
		b.Fatalf("inbox before: %v %v", msgs, err)
	}
	after := msgs[len(msgs)-1].ID

	// Another dashboard follows the tenant's message.sent events.
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(f.srv.URL, "http")+webview.FeedPath, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(32 << 20)
	if err := wsjson.Write(ctx, c, webview.Subscription{Type: "subscribe", Token: acme.viewer, Cursor: "head", Filter: webview.FeedFilter{Kind: "message.sent"}}); err != nil {
		b.Fatal(err)
	}
	var sub webview.FeedMessage
	if err := wsjson.Read(ctx, c, &sub); err != nil || sub.Type != "subscribed" {
		b.Fatalf("subscribe: %+v %v", sub, err)
	}
	type arrival struct {
		at  time.Time
		err error
	}
	feed := make(chan arrival, 16)
	go func() {
		for {
			var m webview.FeedMessage
			if err := wsjson.Read(ctx, c, &m); err != nil {
				feed <- arrival{err: err}
				return
			}
			now := time.Now()
			for _, ev := range m.Events {
				if ev.Kind == "message.sent" {
					feed <- arrival{at: now}
				}
			}
		}
	}()

	client := f.srv.Client()
	post := func(i int) message.Receipt {
		body, _ := json.Marshal(webview.MessageRequest{To: acme.agent, Subject: "bench", Body: "message " + strconv.Itoa(i)})
		req, err := http.NewRequestWithContext(ctx, "POST", f.srv.URL+"/api/v1/messages", strings.NewReader(string(body)))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+member)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var rc message.Receipt
		if resp.StatusCode != http.StatusCreated {
			b.Fatalf("POST /api/v1/messages: %d", resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(&rc); err != nil {
			b.Fatal(err)
		}
		return rc
	}
	type fetched struct {
		at   time.Time
		msgs []message.Message
		err  error
	}
	inboxLats := make([]time.Duration, 0, b.N)
	feedLats := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// The agent waits on its inbox while the person sends.
		inbox := make(chan fetched, 1)
		go func() {
			ms, err := message.Fetch(ctx, asc, message.FetchOptions{After: after, Wait: message.MaxWait})
			inbox <- fetched{at: time.Now(), msgs: ms, err: err}
		}()
		start := time.Now()
		rc := post(i)
		got := <-inbox
		if got.err != nil {
			b.Fatal(got.err)
		}
		if len(got.msgs) != 1 || got.msgs[0].ID != rc.ID || got.msgs[0].Body != "message "+strconv.Itoa(i) {
			b.Fatalf("inbox after message %d (%s): %+v", i, rc.ID, got.msgs)
		}
		after = rc.ID
		inboxLats = append(inboxLats, got.at.Sub(start))
		select {
		case a := <-feed:
			if a.err != nil {
				b.Fatal(fmt.Errorf("feed after %d messages: %w", i, a.err))
			}
			feedLats = append(feedLats, a.at.Sub(start))
		case <-ctx.Done():
			b.Fatal("the feed did not deliver message.sent")
		}
	}
	b.StopTimer()
	report := func(name string, ds []time.Duration) {
		b.ReportMetric(float64(kvtest.Percentile(ds, 50).Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(kvtest.Percentile(ds, 99).Microseconds())/1000, name+"-p99-ms")
	}
	report("inbox", inboxLats)
	report("feed", feedLats)
}
