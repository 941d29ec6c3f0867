package message_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/tenant"
)

type fixture struct {
	s       kv.Store
	clock   *agenttest.Clock
	ctx     context.Context
	admin   *tenant.Scope
	a, b, c *tenant.Scope
	ids     map[*tenant.Scope]string
}

// setup registers agents a and b in cohort "crew" and c in no cohort.
func setup(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{clock: agenttest.NewClock(), ids: map[*tenant.Scope]string{}}
	f.s, _ = agenttest.Open(t)
	f.ctx = agenttest.Context(t, f.clock)
	f.admin = agenttest.Scope(t, f.s, "acme", "alice")
	for _, x := range []struct {
		name, cohort string
		sc           **tenant.Scope
	}{{"a", "crew", &f.a}, {"b", "crew", &f.b}, {"c", "", &f.c}} {
		ag, sc := agenttest.Agent(t, f.ctx, f.admin, x.name, agent.Registration{Cohort: x.cohort, TTL: 10 * time.Second})
		*x.sc = sc
		f.ids[sc] = ag.ID
	}
	return f
}

func fetch(t *testing.T, ctx context.Context, sc *tenant.Scope, o message.FetchOptions) []message.Message {
	t.Helper()
	ms, err := message.Fetch(ctx, sc, o)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func auditKinds(t *testing.T, sc *tenant.Scope) []string {
	t.Helper()
	page, err := sc.Log().Query(context.Background(), audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range page.Events {
		if strings.HasPrefix(ev.Kind, "message.") {
			out = append(out, ev.Kind)
		}
	}
	return out
}

func TestSendFetchAck(t *testing.T) {
	f := setup(t)
	r, err := message.Send(f.ctx, f.a, message.Outgoing{To: message.To{Agent: f.ids[f.b]}, Subject: "hello", Body: "line 1\nline 2\ttab"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Thread != r.ID || !slices.Equal(r.Recipients, []string{f.ids[f.b]}) {
		t.Fatalf("receipt %+v", r)
	}
	for range 2 { // at-least-once: returned until acknowledged
		ms := fetch(t, f.ctx, f.b, message.FetchOptions{})
		if len(ms) != 1 {
			t.Fatalf("fetched %d messages", len(ms))
		}
		m := ms[0]
		if m.ID != r.ID || m.Thread != r.ID || m.From != f.ids[f.a] || m.FromUser != "alice" || m.To != "agent:"+f.ids[f.b] ||
			m.Recipient != f.ids[f.b] || m.Subject != "hello" || m.Body != "line 1\nline 2\ttab" || !m.Sent.Equal(f.clock.Now()) || !m.Acked.IsZero() {
			t.Fatalf("message %+v", m)
		}
	}
	if n, err := message.Unread(f.ctx, f.b); err != nil || n != 1 {
		t.Fatalf("Unread %d, %v", n, err)
	}
	if ms := fetch(t, f.ctx, f.a, message.FetchOptions{}); len(ms) != 0 {
		t.Fatalf("the sender received %+v", ms)
	}
	f.clock.Advance(time.Second)
	if n, err := message.Ack(f.ctx, f.b, r.ID); err != nil || n != 1 {
		t.Fatalf("Ack: %d, %v", n, err)
	}
	if ms := fetch(t, f.ctx, f.b, message.FetchOptions{}); len(ms) != 0 {
		t.Fatalf("after ack: %+v", ms)
	}
	if n, _ := message.Unread(f.ctx, f.b); n != 0 {
		t.Fatalf("Unread after ack %d", n)
	}
	if n, err := message.Ack(f.ctx, f.b, r.ID); err != nil || n != 0 {
		t.Fatalf("acking again: %d, %v; want 0, nil", n, err)
	}
	m, err := message.Get(f.ctx, f.b, r.ID)
	if err != nil || !m.Acked.Equal(f.clock.Now()) || m.Body == "" {
		t.Fatalf("Get after ack: %+v, %v", m, err)
	}
	if got := auditKinds(t, f.admin); !slices.Equal(got, []string{"message.sent", "message.acked"}) {
		t.Fatalf("audit %q", got)
	}
}

func TestFanOut(t *testing.T) {
	f := setup(t)
	d, dsc := agenttest.Agent(t, f.ctx, f.admin, "d", agent.Registration{Cohort: "crew", TTL: 10 * time.Second})
	// d falls silent and retires; it still gets cohort and broadcast mail.
	f.clock.Advance(time.Minute)
	for _, sc := range []*tenant.Scope{f.a, f.b, f.c} {
		if err := agent.Heartbeat(f.ctx, f.admin, f.ids[sc]); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := agent.Sweep(f.ctx, f.admin, f.clock.Now()); err != nil || len(r) != 1 || r[0].ID != d.ID {
		t.Fatalf("Sweep: %+v, %v", r, err)
	}
	for _, tc := range []struct {
		to   message.To
		from *tenant.Scope
		want []*tenant.Scope
	}{
		{message.To{Cohort: "crew"}, f.a, []*tenant.Scope{f.b, dsc}},
		{message.To{All: true}, f.c, []*tenant.Scope{f.a, f.b, dsc}},
		{message.To{All: true}, f.admin, []*tenant.Scope{f.a, f.b, f.c, dsc}}, // a person, not an agent
		{message.To{Cohort: "crew"}, f.c, []*tenant.Scope{f.a, f.b, dsc}},     // from outside the cohort
	} {
		t.Run(tc.to.String(), func(t *testing.T) {
			r, err := message.Send(f.ctx, tc.from, message.Outgoing{To: tc.to, Body: "all hands"})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Recipients) != len(tc.want) {
				t.Fatalf("recipients %q, want %d", r.Recipients, len(tc.want))
			}
			for _, sc := range []*tenant.Scope{f.a, f.b, f.c, dsc} {
				ms := fetch(t, f.ctx, sc, message.FetchOptions{})
				got := len(ms) == 1 && ms[0].ID == r.ID && ms[0].To == tc.to.String()
				if want := slices.Contains(tc.want, sc); got != want {
					t.Errorf("agent %s received: %v (%+v), want %v", sc.Principal().Agent, got, ms, want)
				}
				for _, m := range ms {
					if _, err := message.Ack(f.ctx, sc, m.ID); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
}

func TestRepliesAndThreads(t *testing.T) {
	f := setup(t)
	root, err := message.Send(f.ctx, f.a, message.Outgoing{To: message.To{Agent: f.ids[f.b]}, Subject: "q", Body: "may I take src/**?"})
	if err != nil {
		t.Fatal(err)
	}
	// A reply without an address goes back to the sender and joins the thread.
	re, err := message.Send(f.ctx, f.b, message.Outgoing{ReplyTo: root.ID, Body: "yes"})
	if err != nil {
		t.Fatal(err)
	}
	if re.Thread != root.ID || !slices.Equal(re.Recipients, []string{f.ids[f.a]}) {
		t.Fatalf("reply receipt %+v", re)
	}
	re2, err := message.Send(f.ctx, f.a, message.Outgoing{ReplyTo: re.ID, Body: "thanks"})
	if err != nil || re2.Thread != root.ID {
		t.Fatalf("second reply %+v, %v", re2, err)
	}
	if _, err := message.Send(f.ctx, f.a, message.Outgoing{To: message.To{Agent: f.ids[f.b]}, Body: "unrelated"}); err != nil {
		t.Fatal(err)
	}
	msgs := fetch(t, f.ctx, f.a, message.FetchOptions{})
	if len(msgs) != 1 || msgs[0].ReplyTo != root.ID || msgs[0].Thread != root.ID {
		t.Fatalf("a's inbox %+v", msgs)
	}
	// b's view of the thread: the root (acked) and the second reply.
	if _, err := message.Ack(f.ctx, f.b, root.ID); err != nil {
		t.Fatal(err)
	}
	th, err := message.Thread(f.ctx, f.b, root.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range th {
		got = append(got, m.Body)
	}
	if !slices.Equal(got, []string{"may I take src/**?", "thanks"}) {
		t.Fatalf("thread %q", got)
	}
	if byThread := fetch(t, f.ctx, f.b, message.FetchOptions{Thread: root.ID}); len(byThread) != 1 || byThread[0].Body != "thanks" {
		t.Fatalf("Fetch by thread: %+v", byThread)
	}
	// Replying to what is not in one's own inbox fails.
	if _, err := message.Send(f.ctx, f.c, message.Outgoing{ReplyTo: root.ID, Body: "me too"}); !errors.Is(err, message.ErrNotFound) {
		t.Fatalf("reply to another inbox's message: %v", err)
	}
	// A reply to a person's message goes back to the person's inbox.
	p, err := message.Send(f.ctx, f.admin, message.Outgoing{To: message.To{Agent: f.ids[f.c]}, Body: "from a person"})
	if err != nil {
		t.Fatal(err)
	}
	back, err := message.Send(f.ctx, f.c, message.Outgoing{ReplyTo: p.ID, Body: "ok"})
	if err != nil || back.Thread != p.ID || !slices.Equal(back.Recipients, []string{"user:alice"}) {
		t.Fatalf("addressless reply to a person: %+v, %v", back, err)
	}
	if ms := fetch(t, f.ctx, f.admin, message.FetchOptions{}); len(ms) != 1 || ms[0].Body != "ok" || ms[0].ReplyTo != p.ID || ms[0].From != f.ids[f.c] {
		t.Fatalf("the person's inbox: %+v", ms)
	}
}

func TestFetchPagingAndWaiting(t *testing.T) {
	f := setup(t)
	var ids []string
	for i := range 5 {
		r, err := message.Send(f.ctx, f.a, message.Outgoing{To: message.To{Agent: f.ids[f.b]}, Body: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	page := fetch(t, f.ctx, f.b, message.FetchOptions{Limit: 2})
	if len(page) != 2 || page[0].ID != ids[0] || page[1].ID != ids[1] {
		t.Fatalf("first page %+v", page)
	}
	page = fetch(t, f.ctx, f.b, message.FetchOptions{Limit: 2, After: page[1].ID})
	if len(page) != 2 || page[0].ID != ids[2] {
		t.Fatalf("second page %+v", page)
	}
	if _, err := message.Ack(f.ctx, f.b, ids...); err != nil {
		t.Fatal(err)
	}

	// Waiting on an empty inbox ends with the wait.
	if ms := fetch(t, f.ctx, f.b, message.FetchOptions{Wait: 30 * time.Millisecond}); len(ms) != 0 {
		t.Fatalf("empty inbox returned %+v", ms)
	}
	// ... or with the context.
	short, cancel := context.WithTimeout(f.ctx, 30*time.Millisecond)
	defer cancel()
	if _, err := message.Fetch(short, f.b, message.FetchOptions{Wait: time.Minute}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fetch past its context: %v", err)
	}
	// A waiting Fetch returns the message sent while it waits (or just
	// before: either way it must see it, promptly).
	got := make(chan []message.Message, 1)
	go func() {
		ms, _ := message.Fetch(f.ctx, f.b, message.FetchOptions{Wait: 20 * time.Second})
		got <- ms
	}()
	start := time.Now()
	r, err := message.Send(f.ctx, f.a, message.Outgoing{To: message.To{Agent: f.ids[f.b]}, Body: "wake up"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ms := <-got:
		if len(ms) != 1 || ms[0].ID != r.ID {
			t.Fatalf("waiting Fetch returned %+v", ms)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiting Fetch did not see the message")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("waiting Fetch took %v", d)
	}
}

func TestBadInputWritesNothing(t *testing.T) {
	f := setup(t)
	r, err := message.Send(f.ctx, f.a, message.Outgoing{To: message.To{Agent: f.ids[f.b]}, Body: "x"})
	if err != nil {
		t.Fatal(err)
	}
	before := agenttest.SnapshotAll(t, f.s)
	b := f.ids[f.b]
	send := func(m message.Outgoing) func() error {
		return func() error { _, err := message.Send(f.ctx, f.a, m); return err }
	}
	for _, tc := range []struct {
		name string
		call func() error
		want error
		says string
	}{
		{"no address", send(message.Outgoing{Body: "x"}), message.ErrInvalid, "exactly one"},
		{"two addresses", send(message.Outgoing{To: message.To{Agent: b, All: true}, Body: "x"}), message.ErrInvalid, "exactly one"},
		{"empty body", send(message.Outgoing{To: message.To{Agent: b}}), message.ErrInvalid, "body is empty"},
		{"huge body", send(message.Outgoing{To: message.To{Agent: b}, Body: strings.Repeat("x", message.MaxBody+1)}), message.ErrInvalid, "exceeds the limit"},
		{"binary body", send(message.Outgoing{To: message.To{Agent: b}, Body: "\xff\xfe"}), message.ErrInvalid, "UTF-8"},
		{"NUL in body", send(message.Outgoing{To: message.To{Agent: b}, Body: "a\x00b"}), message.ErrInvalid, "NUL"},
		{"long subject", send(message.Outgoing{To: message.To{Agent: b}, Subject: strings.Repeat("s", 201), Body: "x"}), message.ErrInvalid, "subject"},
		{"newline in subject", send(message.Outgoing{To: message.To{Agent: b}, Subject: "a\nb", Body: "x"}), message.ErrInvalid, "control"},
		{"bad reply id", send(message.Outgoing{ReplyTo: "nope", Body: "x"}), message.ErrInvalid, "24 hex digits"},
		{"unknown reply id", send(message.Outgoing{ReplyTo: strings.Repeat("0", 23) + "1", Body: "x"}), message.ErrNotFound, "not in the inbox"},
		{"unknown agent", send(message.Outgoing{To: message.To{Agent: "ag_nobody"}, Body: "x"}), agent.ErrNotFound, "register"},
		{"empty cohort", send(message.Outgoing{To: message.To{Cohort: "ghosts"}, Body: "x"}), message.ErrInvalid, "no members"},
		{"fetch limit", func() error { _, err := message.Fetch(f.ctx, f.b, message.FetchOptions{Limit: -1}); return err }, message.ErrInvalid, "limit"},
		{"fetch limit high", func() error { _, err := message.Fetch(f.ctx, f.b, message.FetchOptions{Limit: 501}); return err }, message.ErrInvalid, "limit"},
		{"fetch wait", func() error { _, err := message.Fetch(f.ctx, f.b, message.FetchOptions{Wait: time.Hour}); return err }, message.ErrInvalid, "wait"},
		{"fetch after", func() error { _, err := message.Fetch(f.ctx, f.b, message.FetchOptions{After: "zz"}); return err }, message.ErrInvalid, "after"},
		{"unknown user", send(message.Outgoing{To: message.To{User: "nobody"}, Body: "x"}), message.ErrNoUser, "no user"},
		{"user and agent", send(message.Outgoing{To: message.To{Agent: b, User: "alice"}, Body: "x"}), message.ErrInvalid, "exactly one"},
		{"long user", send(message.Outgoing{To: message.To{User: strings.Repeat("u", 260)}, Body: "x"}), message.ErrInvalid, "to.user"},
		{"ack nothing", func() error { _, err := message.Ack(f.ctx, f.b); return err }, message.ErrInvalid, "no message ids"},
		{"ack bad id", func() error { _, err := message.Ack(f.ctx, f.b, r.ID, "x"); return err }, message.ErrInvalid, "24 hex"},
		{"ack unknown id with a good one", func() error {
			_, err := message.Ack(f.ctx, f.b, r.ID, strings.Repeat("0", 23)+"1")
			return err
		}, message.ErrNotFound, "nothing was acknowledged"},
		{"ack too many", func() error { _, err := message.Ack(f.ctx, f.b, make([]string, message.MaxAck+1)...); return err }, message.ErrInvalid, "exceed"},
		{"get bad id", func() error { _, err := message.Get(f.ctx, f.b, ""); return err }, message.ErrInvalid, "24 hex"},
		{"thread bad id", func() error { _, err := message.Thread(f.ctx, f.b, "g"); return err }, message.ErrInvalid, "24 hex"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("%v; want %v saying %q", err, tc.want, tc.says)
			}
		})
	}
	if after := agenttest.SnapshotAll(t, f.s); after != before {
		t.Fatal("bad input changed the store")
	}
	viewer := agenttest.RoleScope(t, f.s, "acme", "victor", tenant.RoleViewer)
	before = agenttest.SnapshotAll(t, f.s) // RoleScope wrote the viewer and its token
	vb, _ := viewer.WithAgent(b)
	if _, err := message.Send(f.ctx, vb, message.Outgoing{To: message.To{Agent: b}, Body: "x"}); !errors.Is(err, tenant.ErrForbidden) {
		t.Errorf("viewer Send: %v", err)
	}
	if _, err := message.Ack(f.ctx, vb, r.ID); !errors.Is(err, tenant.ErrForbidden) {
		t.Errorf("viewer Ack: %v", err)
	}
	if after := agenttest.SnapshotAll(t, f.s); after != before {
		t.Fatal("bad input changed the store")
	}
}

func TestFanOutBound(t *testing.T) {
	if testing.Short() {
		t.Skip("registers 130 agents")
	}
	f := setup(t)
	for i := range 130 {
		agenttest.Agent(t, f.ctx, f.admin, fmt.Sprint("bulk", i), agent.Registration{})
	}
	before := agenttest.SnapshotAll(t, f.s)
	_, err := message.Send(f.ctx, f.a, message.Outgoing{To: message.To{All: true}, Body: strings.Repeat("x", message.MaxBody)})
	if !errors.Is(err, message.ErrInvalid) || !strings.Contains(err.Error(), "fan-out limit") {
		t.Fatalf("oversized broadcast: %v", err)
	}
	if after := agenttest.SnapshotAll(t, f.s); after != before {
		t.Fatal("a refused broadcast changed the store")
	}
}

// TestIsolation: tenant A, holding B's real agent ids, message ids and
// cohort names, can neither read nor touch B's messages.
func TestIsolation(t *testing.T) {
	s, _ := agenttest.Open(t)
	ctx := agenttest.Context(t, nil)
	adminA := agenttest.Scope(t, s, "a", "alice")
	adminB := agenttest.Scope(t, s, "b", "alice")
	_, a := agenttest.Agent(t, ctx, adminA, "coder", agent.Registration{})
	b1, sb1 := agenttest.Agent(t, ctx, adminB, "coder", agent.Registration{Cohort: "crew"})
	b2, sb2 := agenttest.Agent(t, ctx, adminB, "other", agent.Registration{Cohort: "crew"})
	r, err := message.Send(ctx, sb1, message.Outgoing{To: message.To{Agent: b2.ID}, Body: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	bBegin, bEnd := adminB.Space().Range()
	before := agenttest.Snapshot(t, s, bBegin, bEnd)

	if _, err := message.Send(ctx, a, message.Outgoing{To: message.To{Agent: b2.ID}, Body: "hi"}); !errors.Is(err, agent.ErrNotFound) {
		t.Fatalf("A sending to B's agent: %v", err)
	}
	if _, err := message.Send(ctx, a, message.Outgoing{To: message.To{Cohort: "crew"}, Body: "hi"}); !errors.Is(err, message.ErrInvalid) {
		t.Fatalf("A sending to B's cohort: %v", err)
	}
	if _, err := message.Send(ctx, a, message.Outgoing{ReplyTo: r.ID, Body: "hi"}); !errors.Is(err, message.ErrNotFound) {
		t.Fatalf("A replying to B's message: %v", err)
	}
	// A acting as B's agent id sees an empty inbox of its own tenant.
	asB2, _ := adminA.WithAgent(b2.ID)
	if ms, err := message.Fetch(ctx, asB2, message.FetchOptions{}); err != nil || len(ms) != 0 {
		t.Fatalf("A fetching B's agent's inbox: %+v, %v", ms, err)
	}
	if _, err := message.Get(ctx, asB2, r.ID); !errors.Is(err, message.ErrNotFound) {
		t.Fatalf("A getting B's message: %v", err)
	}
	if _, err := message.Ack(ctx, asB2, r.ID); !errors.Is(err, message.ErrNotFound) {
		t.Fatalf("A acking B's message: %v", err)
	}
	if n, err := message.Unread(ctx, asB2); err != nil || n != 0 {
		t.Fatalf("A counting B's agent's unread: %d, %v", n, err)
	}
	if th, err := message.Thread(ctx, asB2, r.ID); err != nil || len(th) != 0 {
		t.Fatalf("A reading B's thread: %+v, %v", th, err)
	}
	if after := agenttest.Snapshot(t, s, bBegin, bEnd); after != before {
		t.Fatal("tenant A's calls changed tenant B's keys")
	}
	if ms, _ := message.Fetch(ctx, sb2, message.FetchOptions{}); len(ms) != 1 || ms[0].Body != "secret" {
		t.Fatalf("B's inbox: %+v", ms)
	}
	_ = b1
}

func TestIdempotentSend(t *testing.T) {
	f := setup(t)
	m := message.Outgoing{To: message.To{Cohort: "crew"}, Body: "once", IdempotencyKey: "call-7"}
	first, err := message.Send(f.ctx, f.c, m)
	if err != nil {
		t.Fatal(err)
	}
	again, err := message.Send(f.ctx, f.c, m)
	if err != nil || again.ID != first.ID {
		t.Fatalf("repeated send: %+v, %v; want id %s", again, err, first.ID)
	}
	for _, sc := range []*tenant.Scope{f.a, f.b} {
		if ms := fetch(t, f.ctx, sc, message.FetchOptions{}); len(ms) != 1 {
			t.Fatalf("%d deliveries, want 1", len(ms))
		}
		if n, _ := message.Unread(f.ctx, sc); n != 1 {
			t.Fatalf("unread %d, want 1", n)
		}
	}
	if got := auditKinds(t, f.admin); !slices.Equal(got, []string{"message.sent"}) {
		t.Fatalf("audit %q", got)
	}
	// Without a key, each send is its own.
	m.IdempotencyKey = ""
	x, _ := message.Send(f.ctx, f.c, m)
	y, _ := message.Send(f.ctx, f.c, m)
	if x.ID == y.ID {
		t.Fatal("two sends without a key got one id")
	}
	// A sender that is not a registered agent is refused.
	ghost, _ := f.admin.WithAgent("ag_ghost")
	if _, err := message.Send(f.ctx, ghost, message.Outgoing{To: message.To{Agent: f.ids[f.a]}, Body: "boo"}); !errors.Is(err, agent.ErrNotFound) {
		t.Fatalf("send from an unregistered agent: %v", err)
	}
}

// watchCounter is a store that counts the watches its transactions set
// and nobody has released: not cancelled, not fired.
type watchCounter struct {
	kv.Store
	live atomic.Int64
}

func (c *watchCounter) View(ctx context.Context, fn func(kv.ReadTx) error) error {
	return c.Store.View(ctx, func(tx kv.ReadTx) error { return fn(countingTx{tx, c}) })
}

type countingTx struct {
	kv.ReadTx
	c *watchCounter
}

func (t countingTx) Watch(key []byte) kv.Watch {
	t.c.live.Add(1)
	return &countedWatch{Watch: t.ReadTx.Watch(key), c: t.c}
}

type countedWatch struct {
	kv.Watch
	c    *watchCounter
	once sync.Once
}

func (w *countedWatch) release() { w.once.Do(func() { w.c.live.Add(-1) }) }

func (w *countedWatch) Wait(ctx context.Context) error {
	err := w.Watch.Wait(ctx)
	if err == nil {
		w.release()
	}
	return err
}

func (w *countedWatch) Cancel() {
	w.release()
	w.Watch.Cancel()
}

// A Fetch that waits until its context ends releases its watch: an
// abandoned watch holds one of the store's kv.MaxWatches until the key
// changes.
func TestFetchReleasesWatchWhenContextEnds(t *testing.T) {
	s, _ := agenttest.Open(t)
	c := &watchCounter{Store: s}
	ctx := agenttest.Context(t, agenttest.NewClock())
	admin := agenttest.Scope(t, c, "acme", "alice")
	_, b := agenttest.Agent(t, ctx, admin, "b", agent.Registration{TTL: 10 * time.Second})
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if _, err := message.Fetch(short, b, message.FetchOptions{Wait: time.Minute}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fetch past its context: %v", err)
	}
	if n := c.live.Load(); n != 0 {
		t.Fatalf("%d watches left set after Fetch returned", n)
	}
}
