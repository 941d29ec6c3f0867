package message_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/tenant"
)

// person adds user id (display name) to tenant acme and returns a local
// scope of it.
func person(t *testing.T, f *fixture, tenantID, id, name string) *tenant.Scope {
	t.Helper()
	d := tenant.NewDirectory(f.s, "test")
	if _, err := d.CreateUser(context.Background(), tenantID, id, name); err != nil {
		t.Fatal(err)
	}
	sc, err := d.Local(context.Background(), tenantID, id)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func TestAddressPeople(t *testing.T) {
	f := setup(t)
	person(t, f, "acme", "bob", "Bob Builder")
	person(t, f, "acme", "u1", "Sam")
	person(t, f, "acme", "u2", "sam")
	person(t, f, "acme", "gone", "Gone")
	if err := tenant.NewDirectory(f.s, "test").SetUserDisabled(f.ctx, "acme", "gone", true); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in   string
		want message.To
		err  error
		says string
	}{
		{"user:bob", message.To{User: "bob"}, nil, ""},
		{"user:bob builder", message.To{User: "bob"}, nil, ""},
		{" user: bob ", message.To{User: "bob"}, nil, ""},
		{"user:alice", message.To{User: "alice"}, nil, ""},
		{"user:", message.To{}, message.ErrInvalid, "names no person"},
		{"user:nobody", message.To{}, message.ErrNoUser, "nobody"},
		{"user:gone", message.To{}, message.ErrNoUser, "gone"},
		{"user:SAM", message.To{}, message.ErrInvalid, "u1, u2"},
		{"nobody", message.To{}, agent.ErrNotFound, "user:NAME"},
		{"", message.To{}, message.ErrInvalid, "user:NAME"},
	} {
		got, err := message.Address(f.ctx, f.admin, tc.in)
		if tc.err == nil && (err != nil || got != tc.want) {
			t.Errorf("Address(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if tc.err != nil && (!errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.says)) {
			t.Errorf("Address(%q) = %+v, %v; want %v saying %q", tc.in, got, err, tc.err, tc.says)
		}
	}
	if got := (message.To{User: "bob"}).String(); got != "user:bob" {
		t.Errorf("String = %q", got)
	}
	// Sending to a user that vanished between Address and Send, or to a
	// disabled one, is refused and writes nothing.
	before := agenttest.SnapshotAll(t, f.s)
	for _, u := range []string{"gone", "ghost"} {
		if _, err := message.Send(f.ctx, f.a, message.Outgoing{To: message.To{User: u}, Body: "x"}); !errors.Is(err, message.ErrNoUser) {
			t.Errorf("send to %s: %v", u, err)
		}
	}
	if after := agenttest.SnapshotAll(t, f.s); after != before {
		t.Fatal("a refused send changed the store")
	}
}

// A person's inbox: an agent's message reaches it, the person reads,
// replies in the thread (the agent sees the reply in its thread) and
// acknowledges; nobody else, admins included, reads it.
func TestPersonInbox(t *testing.T) {
	f := setup(t)
	bob := person(t, f, "acme", "bob", "Bob")
	q, err := message.Send(f.ctx, f.a, message.Outgoing{To: message.To{User: "bob"}, Subject: "question", Body: "may I touch auth.go?"})
	if err != nil || !slices.Equal(q.Recipients, []string{"user:bob"}) {
		t.Fatalf("send to bob: %+v, %v", q, err)
	}
	if n, err := message.Unread(f.ctx, bob); err != nil || n != 1 {
		t.Fatalf("bob's unread %d, %v", n, err)
	}
	ms := fetch(t, f.ctx, bob, message.FetchOptions{})
	if len(ms) != 1 || ms[0].Body != "may I touch auth.go?" || ms[0].From != f.ids[f.a] || ms[0].To != "user:bob" || ms[0].Recipient != "user:bob" {
		t.Fatalf("bob's inbox %+v", ms)
	}
	// The admin (alice) and the agents read their own inboxes, not bob's.
	for _, sc := range []*tenant.Scope{f.admin, f.b} {
		if ms := fetch(t, f.ctx, sc, message.FetchOptions{}); len(ms) != 0 {
			t.Fatalf("another inbox holds bob's message: %+v", ms)
		}
		if _, err := message.Get(f.ctx, sc, q.ID); !errors.Is(err, message.ErrNotFound) {
			t.Fatalf("Get of bob's message by another: %v", err)
		}
		if _, err := message.Ack(f.ctx, sc, q.ID); !errors.Is(err, message.ErrNotFound) {
			t.Fatalf("Ack of bob's message by another: %v", err)
		}
	}
	// bob replies without an address: it goes to the agent, in the thread.
	re, err := message.Send(f.ctx, bob, message.Outgoing{ReplyTo: q.ID, Body: "no, it is mine"})
	if err != nil || re.Thread != q.ID || !slices.Equal(re.Recipients, []string{f.ids[f.a]}) {
		t.Fatalf("bob's reply %+v, %v", re, err)
	}
	got := fetch(t, f.ctx, f.a, message.FetchOptions{Thread: q.ID})
	if len(got) != 1 || got[0].Body != "no, it is mine" || got[0].FromUser != "bob" || got[0].From != "" || got[0].ReplyTo != q.ID {
		t.Fatalf("the agent's thread %+v", got)
	}
	th, err := message.Thread(f.ctx, f.a, q.ID)
	if err != nil || len(th) != 1 || th[0].ID != re.ID {
		t.Fatalf("the agent's Thread %+v, %v", th, err)
	}
	// The agent answers back; bob's thread holds both.
	if _, err := message.Send(f.ctx, f.a, message.Outgoing{ReplyTo: re.ID, Body: "ok"}); err != nil {
		t.Fatal(err)
	}
	if n, err := message.Ack(f.ctx, bob, q.ID); err != nil || n != 1 {
		t.Fatalf("bob acks: %d, %v", n, err)
	}
	th, err = message.Thread(f.ctx, bob, q.ID)
	if err != nil || len(th) != 2 || th[0].Body != "may I touch auth.go?" || th[1].Body != "ok" || th[0].Acked.IsZero() {
		t.Fatalf("bob's thread %+v, %v", th, err)
	}
	if n, _ := message.Unread(f.ctx, bob); n != 1 {
		t.Fatalf("bob's unread after ack: %d", n)
	}
	// Acting as an "agent" named like bob's inbox opens nothing.
	fake, err := f.admin.WithAgent("user:bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := message.Fetch(f.ctx, fake, message.FetchOptions{}); !errors.Is(err, message.ErrInvalid) {
		t.Fatalf("acting as agent user:bob: %v", err)
	}
	if _, err := message.Thread(f.ctx, fake, q.ID); !errors.Is(err, message.ErrInvalid) {
		t.Fatalf("thread acting as agent user:bob: %v", err)
	}
	// Replying to a message of another's inbox fails.
	if _, err := message.Send(f.ctx, f.admin, message.Outgoing{ReplyTo: q.ID, Body: "me too"}); !errors.Is(err, message.ErrNotFound) {
		t.Fatalf("alice replying to bob's message: %v", err)
	}
	// A person's message to a person.
	if _, err := message.Send(f.ctx, f.admin, message.Outgoing{To: message.To{User: "bob"}, Body: "lunch?"}); err != nil {
		t.Fatal(err)
	}
	ms = fetch(t, f.ctx, bob, message.FetchOptions{})
	if len(ms) != 2 || ms[1].FromUser != "alice" || ms[1].From != "" {
		t.Fatalf("bob's inbox %+v", ms)
	}
}

// A viewer reads its own inbox but cannot acknowledge (a write) or reply;
// the same user id in another tenant has another inbox.
func TestPersonInboxRolesAndTenants(t *testing.T) {
	f := setup(t)
	viewer := agenttest.RoleScope(t, f.s, "acme", "victor", tenant.RoleViewer)
	r, err := message.Send(f.ctx, f.a, message.Outgoing{To: message.To{User: "victor"}, Body: "fyi"})
	if err != nil {
		t.Fatal(err)
	}
	if ms := fetch(t, f.ctx, viewer, message.FetchOptions{}); len(ms) != 1 {
		t.Fatalf("viewer's inbox %+v", ms)
	}
	before := agenttest.SnapshotAll(t, f.s)
	if _, err := message.Ack(f.ctx, viewer, r.ID); !errors.Is(err, tenant.ErrForbidden) {
		t.Fatalf("viewer ack: %v", err)
	}
	if _, err := message.Send(f.ctx, viewer, message.Outgoing{ReplyTo: r.ID, Body: "x"}); !errors.Is(err, tenant.ErrForbidden) {
		t.Fatalf("viewer reply: %v", err)
	}
	if after := agenttest.SnapshotAll(t, f.s); after != before {
		t.Fatal("the viewer changed the store")
	}
	otherVictor := agenttest.Scope(t, f.s, "other", "victor")
	if ms := fetch(t, f.ctx, otherVictor, message.FetchOptions{}); len(ms) != 0 {
		t.Fatalf("tenant other's victor reads acme's victor's inbox: %+v", ms)
	}
	if _, err := message.Get(f.ctx, otherVictor, r.ID); !errors.Is(err, message.ErrNotFound) {
		t.Fatalf("tenant other's victor gets acme's message: %v", err)
	}
	if _, err := message.Address(f.ctx, otherVictor, "user:alice"); !errors.Is(err, message.ErrNoUser) {
		t.Fatalf("tenant other addressing acme's alice: %v", err)
	}
}
