package webview_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/webview"
)

// A person's inbox over REST: an agent's message to user:bob reaches bob's
// inbox and no one else's (the admin's, another tenant's); bob replies in
// the thread, and the agent reads the reply in it; bob acknowledges; a
// viewer reads its own inbox but cannot acknowledge.
func TestPersonInbox(t *testing.T) {
	f := newFixture(t, webview.Options{})
	acme, globex := f.t["acme"], f.t["globex"]
	ctx := context.Background()
	if _, err := f.dir.CreateUser(ctx, "acme", "bob-acme", "Bob"); err != nil {
		t.Fatal(err)
	}
	bob, _, err := f.dir.IssueToken(ctx, "acme", "bob-acme", tenant.RoleMember, tenant.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	asc, err := acme.sc.WithAgent(acme.agent)
	if err != nil {
		t.Fatal(err)
	}
	q, err := message.Send(ctx, asc, message.Outgoing{To: message.To{User: "bob-acme"}, Subject: "auth.go", Body: "may I edit auth.go?"})
	if err != nil {
		t.Fatal(err)
	}
	expect := func(method, path, token, body string, want int) []byte {
		t.Helper()
		status, b := f.send(t, acme, method, path, token, body)
		if status != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, status, b, want)
		}
		return b
	}
	page := decode[webview.InboxPage](t, expect("GET", "/api/v1/inbox", bob, "", http.StatusOK))
	if page.Unread != 1 || len(page.Messages) != 1 || page.Messages[0].ID != q.ID || page.Messages[0].FromName == "" || page.Messages[0].To != "user:bob-acme" {
		t.Fatalf("bob's inbox %+v", page)
	}
	// Nobody else reads it: not the tenant's admin, not another tenant.
	for _, tok := range []string{acme.admin, acme.viewer, globex.admin} {
		p := decode[webview.InboxPage](t, expect("GET", "/api/v1/inbox", tok, "", http.StatusOK))
		if len(p.Messages) != 0 || p.Unread != 0 {
			t.Fatalf("another's inbox shows bob's message: %+v", p)
		}
		p = decode[webview.InboxPage](t, expect("GET", "/api/v1/inbox?thread="+q.ID, tok, "", http.StatusOK))
		if len(p.Messages) != 0 {
			t.Fatalf("another's thread shows bob's message: %+v", p)
		}
		if status, b := f.send(t, acme, "POST", "/api/v1/inbox/ack", tok, `{"ids":["`+q.ID+`"]}`); status != http.StatusNotFound && status != http.StatusForbidden {
			t.Fatalf("another acking bob's message: %d %s", status, b)
		}
		if status, b := f.send(t, acme, "POST", "/api/v1/messages", tok, `{"reply_to":"`+q.ID+`","body":"x"}`); status != http.StatusNotFound && status != http.StatusForbidden {
			t.Fatalf("another replying to bob's message: %d %s", status, b)
		}
	}
	// bob replies in the thread; the agent reads it there.
	rc := decode[message.Receipt](t, expect("POST", "/api/v1/messages", bob, `{"reply_to":"`+q.ID+`","body":"no, I am in it"}`, http.StatusCreated))
	if rc.Thread != q.ID || len(rc.Recipients) != 1 || rc.Recipients[0] != acme.agent {
		t.Fatalf("reply receipt %+v", rc)
	}
	th, err := message.Fetch(ctx, asc, message.FetchOptions{Thread: q.ID})
	if err != nil || len(th) != 1 || th[0].Body != "no, I am in it" || th[0].FromUser != "bob-acme" || th[0].ReplyTo != q.ID {
		t.Fatalf("the agent's thread %+v, %v", th, err)
	}
	expect("POST", "/api/v1/messages", bob, `{"reply_to":"nope","body":"x"}`, http.StatusBadRequest)
	// Acknowledged, it leaves the unread list; the thread keeps it.
	expect("POST", "/api/v1/inbox/ack", acme.viewer, `{"ids":["`+q.ID+`"]}`, http.StatusForbidden)
	expect("POST", "/api/v1/inbox/ack", bob, `{"ids":[]}`, http.StatusBadRequest)
	b := expect("POST", "/api/v1/inbox/ack", bob, `{"ids":["`+q.ID+`"]}`, http.StatusOK)
	if !contains(b, `"acked":1`) || !contains(b, `"unread":0`) {
		t.Fatalf("ack: %s", b)
	}
	page = decode[webview.InboxPage](t, expect("GET", "/api/v1/inbox", bob, "", http.StatusOK))
	if len(page.Messages) != 0 || page.Unread != 0 {
		t.Fatalf("bob's inbox after ack %+v", page)
	}
	page = decode[webview.InboxPage](t, expect("GET", "/api/v1/inbox?thread="+q.ID, bob, "", http.StatusOK))
	if len(page.Messages) != 1 || page.Messages[0].Acked.IsZero() {
		t.Fatalf("bob's thread %+v", page)
	}
	// A person messages a person by display name.
	expect("POST", "/api/v1/messages", acme.admin, `{"to":"user:bob","body":"lunch?"}`, http.StatusCreated)
	expect("POST", "/api/v1/messages", acme.admin, `{"to":"user:nobody","body":"x"}`, http.StatusNotFound)
	expect("POST", "/api/v1/messages", globex.admin, `{"to":"user:bob-acme","body":"x"}`, http.StatusNotFound)
	page = decode[webview.InboxPage](t, expect("GET", "/api/v1/inbox", bob, "", http.StatusOK))
	if len(page.Messages) != 1 || page.Messages[0].FromUser != "alice-acme" || page.Unread != 1 {
		t.Fatalf("bob's inbox %+v", page)
	}
}
