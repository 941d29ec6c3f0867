package isolation_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/webview"
)

// TestPersonInboxIsPrivate: a person's inbox is private to that user even
// inside the tenant. Another member (victor) and the tenant's admin,
// holding ursula's message ids, read none of her messages over REST (the
// inbox, a thread, paging after an id), acknowledge none and reply to
// none over REST and the IDE protocol; her inbox keys are unchanged and
// she still reads her message. (The MCP tools read agents' inboxes only;
// acting as an "agent" named user:ursula is refused in storage/message.)
func TestPersonInboxIsPrivate(t *testing.T) {
	st := openStore(t)
	dir := tenant.NewDirectory(st, "isolation")
	ctx := context.Background()
	admin, err := dir.Local(ctx, tenantA, "root")
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	for _, u := range []struct {
		id   string
		role tenant.Role
	}{{"ursula", tenant.RoleMember}, {"victor", tenant.RoleMember}, {"root", tenant.RoleAdmin}} {
		if u.id != "root" {
			if _, err := dir.CreateUser(ctx, tenantA, u.id, ""); err != nil {
				t.Fatal(err)
			}
		}
		if tokens[u.id], _, err = dir.IssueToken(ctx, tenantA, u.id, u.role, tenant.TokenOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ag, err := agent.Register(ctx, admin, agent.Registration{Name: "coder", Client: "test"})
	if err != nil {
		t.Fatal(err)
	}
	asc, err := admin.WithAgent(ag.ID)
	if err != nil {
		t.Fatal(err)
	}
	q, err := message.Send(ctx, asc, message.Outgoing{To: message.To{User: "ursula"}, Subject: "for " + marker, Body: "hello ursula " + marker})
	if err != nil {
		t.Fatal(err)
	}
	// ursula's inbox keys: unread, acknowledged and the counters.
	inbox := func() []kv.KeyValue {
		t.Helper()
		sp := admin.Space()
		box, _ := sp.Inbox("user:ursula")
		acked, _ := sp.AckedInbox("user:ursula")
		unread, _ := sp.InboxUnread("user:ursula")
		var out []kv.KeyValue
		err := st.View(ctx, func(tx kv.ReadTx) error {
			out = out[:0]
			for _, r := range [][2][]byte{rangeOf(box.Range()), rangeOf(acked.Range())} {
				kvs, err := kv.Collect(tx.GetRange(r[0], r[1], kv.RangeOptions{}))
				if err != nil {
					return err
				}
				out = append(out, kvs...)
			}
			v, err := tx.Get(unread)
			out = append(out, kv.KeyValue{Key: unread, Value: v})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := inbox()
	if len(before) != 2 {
		t.Fatalf("ursula's inbox holds %d keys, want the message and its counter", len(before))
	}
	ids := []string{q.ID, q.Thread, strings.ToUpper(q.ID), "user:ursula", "ursula", "", "000000000000000000000000"}

	hs := httptest.NewServer(webview.New(dir, suiteWebOptions()))
	defer hs.Close()
	do := func(method, target, token, body string) string {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, hs.URL+target, rd)
		req.Header.Set("Authorization", "Bearer "+token)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := hs.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 500 {
			t.Errorf("rest: %s %s: %d %s", method, target, resp.StatusCode, b)
		}
		return string(b)
	}
	for _, who := range []string{"victor", "root"} {
		tok := tokens[who]
		for _, id := range ids {
			js, _ := json.Marshal(id)
			for _, r := range []struct{ method, target, body string }{
				{"GET", "/api/v1/inbox", ""},
				{"GET", "/api/v1/inbox?" + url.Values{"thread": {id}}.Encode(), ""},
				{"GET", "/api/v1/inbox?" + url.Values{"after": {id}}.Encode(), ""},
				{"POST", "/api/v1/inbox/ack", `{"ids":[` + string(js) + `]}`},
				{"POST", "/api/v1/messages", `{"reply_to":` + string(js) + `,"body":"x"}`},
			} {
				if b := do(r.method, r.target, tok, r.body); strings.Contains(b, marker) || strings.Contains(b, "hello ursula") {
					t.Errorf("rest: %s %s as %s shows ursula's message: %s", r.method, r.target, who, clip(b))
				}
			}
		}
		sc, err := dir.Authenticate(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		conn, _, done := ideSession(cctx, t, ideAs(sc), t.TempDir())
		for _, id := range ids {
			var res json.RawMessage
			err := conn.Call(cctx, "workspace/executeCommand", map[string]any{"command": "coditect.message.send",
				"arguments": []any{map[string]any{"reply_to": id, "body": "x"}}}, &res)
			if err == nil || strings.Contains(string(res)+err.Error(), marker) {
				t.Errorf("ide: a reply as %s to %q: %s, %v", who, id, res, err)
			}
		}
		done()
		cancel()
	}
	after := inbox()
	if len(after) != len(before) {
		t.Fatalf("ursula's inbox changed: %d keys, was %d", len(after), len(before))
	}
	for i := range before {
		if string(before[i].Key) != string(after[i].Key) || string(before[i].Value) != string(after[i].Value) {
			t.Fatalf("ursula's inbox changed at key %d", i)
		}
	}
	if n, err := message.Unread(ctx, asc); err != nil || n != 0 {
		t.Fatalf("a reply reached the agent: %d, %v", n, err)
	}
	if b := do("GET", "/api/v1/inbox", tokens["ursula"], ""); !strings.Contains(b, "hello ursula "+marker) {
		t.Fatalf("ursula cannot read her own message: %s", clip(b))
	}
}

func rangeOf(b, e []byte) [2][]byte { return [2][]byte{b, e} }
