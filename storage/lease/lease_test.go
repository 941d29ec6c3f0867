package lease_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/tenant"
)

func TestMain(m *testing.M) {
	agenttest.Main(m, map[string]agenttest.Role{"racer": racer, "cycler": cycler})
}

type fixture struct {
	s     kv.Store
	clock *agenttest.Clock
	ctx   context.Context
	admin *tenant.Scope
	a, b  *tenant.Scope // scopes acting as agents a and b
	aID   string
	bID   string
}

func setup(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{clock: agenttest.NewClock()}
	f.s, _ = agenttest.Open(t)
	f.ctx = agenttest.Context(t, f.clock)
	f.admin = agenttest.Scope(t, f.s, "acme", "alice")
	reg := agent.Registration{TTL: 10 * time.Second}
	a, as := agenttest.Agent(t, f.ctx, f.admin, "a", reg)
	b, bs := agenttest.Agent(t, f.ctx, f.admin, "b", reg)
	f.a, f.b, f.aID, f.bID = as, bs, a.ID, b.ID
	return f
}

// kinds returns the kinds of the audit events about a resource.
func kinds(t *testing.T, sc *tenant.Scope, resource string) []string {
	t.Helper()
	page, err := sc.Log().Query(context.Background(), audit.Query{Filter: audit.Filter{Path: resource}})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range page.Events {
		out = append(out, ev.Kind)
	}
	return out
}

func fence(f *fixture, sc *tenant.Scope, resource, agentID string, token int64) error {
	return f.s.View(f.ctx, func(tx kv.ReadTx) error { return lease.CheckFence(tx, sc, resource, agentID, token) })
}

func TestAcquireReleaseAndFencing(t *testing.T) {
	f := setup(t)
	const res = "src/a.go"
	l1, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: res})
	if err != nil {
		t.Fatal(err)
	}
	if l1.Token != 1 || l1.Mode != lease.Exclusive || l1.Agent != f.aID || !l1.Expires.Equal(f.clock.Now().Add(lease.DefaultTTL)) {
		t.Fatalf("first grant: %+v", l1)
	}
	_, err = lease.Acquire(f.ctx, f.b, lease.Request{Resource: res})
	var ce *lease.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, lease.ErrConflict) {
		t.Fatalf("second agent: %v; want a *ConflictError", err)
	}
	if len(ce.Holders) != 1 || ce.Holders[0].Agent != f.aID || ce.Holders[0].AgentName != "a" ||
		ce.Holders[0].Liveness != agent.Alive || !ce.Holders[0].Expires.Equal(l1.Expires) || ce.Holders[0].Token != 1 {
		t.Fatalf("conflict holders: %+v", ce.Holders)
	}
	for _, want := range []string{f.aID, "(a)", "alive", "until", "AcquireWait"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("conflict message %q lacks %q", err, want)
		}
	}
	if err := fence(f, f.a, res, f.aID, 1); err != nil {
		t.Fatalf("current token refused: %v", err)
	}
	if err := lease.Release(f.ctx, f.a, res, 1); err != nil {
		t.Fatal(err)
	}
	var fe *lease.FenceError
	if err := fence(f, f.a, res, f.aID, 1); !errors.As(err, &fe) || fe.Latest != 1 || len(fe.Holders) != 0 {
		t.Fatalf("released token: %v", err)
	}
	l2, err := lease.Acquire(f.ctx, f.b, lease.Request{Resource: res})
	if err != nil || l2.Token != 2 {
		t.Fatalf("after release: %+v, %v; want token 2", l2, err)
	}
	if err := fence(f, f.a, res, f.aID, 1); !errors.As(err, &fe) || fe.Latest != 2 || !slices.Equal(fe.Holders, []string{f.bID}) {
		t.Fatalf("stale token after another grant: %v", err)
	}
	if err := fence(f, f.a, res, f.aID, 2); !errors.Is(err, lease.ErrFenced) {
		t.Fatalf("another agent's token accepted: %v", err)
	}
	if err := lease.Release(f.ctx, f.b, res, 2); err != nil {
		t.Fatal(err)
	}
	// Tokens survive release: they keep increasing per resource, and each
	// resource counts on its own.
	if l, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: res}); err != nil || l.Token != 3 {
		t.Fatalf("third grant: %+v, %v", l, err)
	}
	if l, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: "src/other.go"}); err != nil || l.Token != 1 {
		t.Fatalf("other resource: %+v, %v", l, err)
	}
	if err := lease.Release(f.ctx, f.a, res, 2); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("release with a stale token: %v", err)
	}
	want := []string{"lease.acquired", "lease.released", "lease.acquired", "lease.released", "lease.acquired"}
	if got := kinds(t, f.admin, res); !slices.Equal(got, want) {
		t.Errorf("audit %q, want %q", got, want)
	}
}

func TestModes(t *testing.T) {
	for _, tc := range []struct {
		held, req lease.Mode
		conflict  bool
	}{
		{lease.Exclusive, lease.Exclusive, true},
		{lease.Exclusive, lease.Shared, true},
		{lease.Shared, lease.Exclusive, true},
		{lease.Shared, lease.Shared, false},
	} {
		t.Run(string(tc.held)+"/"+string(tc.req), func(t *testing.T) {
			f := setup(t)
			if _, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: "r/x", Mode: tc.held}); err != nil {
				t.Fatal(err)
			}
			l, err := lease.Acquire(f.ctx, f.b, lease.Request{Resource: "r/x", Mode: tc.req})
			if got := errors.Is(err, lease.ErrConflict); got != tc.conflict {
				t.Fatalf("conflict = %v (%v), want %v", got, err, tc.conflict)
			}
			if !tc.conflict && l.Token != 2 {
				t.Fatalf("second shared grant: %+v", l)
			}
		})
	}
}

func TestSameAgentAgain(t *testing.T) {
	f := setup(t)
	l, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: "r", Mode: lease.Shared, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(30 * time.Second)
	// The same mode again renews and keeps the token.
	again, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: "r", Mode: lease.Shared, TTL: time.Minute})
	if err != nil || again.Token != l.Token || !again.Expires.Equal(f.clock.Now().Add(time.Minute)) {
		t.Fatalf("acquiring again: %+v, %v", again, err)
	}
	// Upgrading to exclusive while alone replaces the grant with a new token.
	up, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: "r", Mode: lease.Exclusive})
	if err != nil || up.Token != l.Token+1 || up.Mode != lease.Exclusive {
		t.Fatalf("upgrade: %+v, %v", up, err)
	}
	if err := fence(f, f.a, "r", f.aID, l.Token); !errors.Is(err, lease.ErrFenced) {
		t.Fatalf("the replaced token still fences: %v", err)
	}
	hs, err := lease.Holders(f.ctx, f.admin, "r")
	if err != nil || len(hs) != 1 || hs[0].Token != up.Token {
		t.Fatalf("holders after upgrade: %+v, %v", hs, err)
	}
	// Upgrading while another agent shares it conflicts.
	if _, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: "s", Mode: lease.Shared}); err != nil {
		t.Fatal(err)
	}
	if _, err := lease.Acquire(f.ctx, f.b, lease.Request{Resource: "s", Mode: lease.Shared}); err != nil {
		t.Fatal(err)
	}
	if _, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: "s", Mode: lease.Exclusive}); !errors.Is(err, lease.ErrConflict) {
		t.Fatalf("upgrade beside another holder: %v", err)
	}
}

func TestGlobConflicts(t *testing.T) {
	for _, tc := range []struct {
		held, req string
		conflict  bool
	}{
		{"src/**/*.go", "src/a.go", true},
		{"src/a.go", "src/**/*.go", true},
		{"src/**/*.go", "src/x/y/z.go", true},
		{"src/x/y/z.go", "src/**", true},
		{"src/**/*.go", "src/a.ts", false},
		{"src/a.ts", "src/**/*.go", false},
		{"src/**/*.go", "src/**/*_test.go", true},
		{"src/**/*.go", "src/**/*.ts", false},
		{"**", "README.md", true},
		{"README.md", "**", true},
		{"**", "task:tk_1", false},
		{"task:tk_1", "task:tk_1", true},
		{"src/a*", "src/b*", false},
		{"lib/**", "src/**", false},
	} {
		t.Run(tc.held+" vs "+tc.req, func(t *testing.T) {
			f := setup(t)
			if _, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: tc.held}); err != nil {
				t.Fatal(err)
			}
			_, err := lease.Acquire(f.ctx, f.b, lease.Request{Resource: tc.req})
			var ce *lease.ConflictError
			if got := errors.As(err, &ce); got != tc.conflict {
				t.Fatalf("conflict = %v (%v), want %v", got, err, tc.conflict)
			}
			if tc.conflict && ce.Holders[0].Resource != tc.held {
				t.Fatalf("conflict names %q, want the held %q", ce.Holders[0].Resource, tc.held)
			}
			hs, err := lease.Holders(f.ctx, f.admin, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			// The held glob when it conflicts, else only the new grant.
			if len(hs) != 1 {
				t.Fatalf("Holders(%q) = %+v", tc.req, hs)
			}
			// The glob marker goes with the last grant.
			all, _ := lease.List(f.ctx, f.admin, "")
			for _, h := range all {
				if err := lease.Release(f.ctx, scopeOf(f, h.Agent), h.Resource, h.Token); err != nil {
					t.Fatal(err)
				}
			}
			if got := countKeys(t, f, f.admin.Space().LeaseGlobs().Range); got != 0 {
				t.Fatalf("%d glob markers left after releasing everything", got)
			}
			if got := countKeys(t, f, f.admin.Space().Leases().Range); got != 0 {
				t.Fatalf("%d leases left after releasing everything", got)
			}
		})
	}
}

func scopeOf(f *fixture, id string) *tenant.Scope {
	if id == f.aID {
		return f.a
	}
	return f.b
}

func countKeys(t *testing.T, f *fixture, rng func() ([]byte, []byte)) int {
	t.Helper()
	b, e := rng()
	n := 0
	err := f.s.View(f.ctx, func(tx kv.ReadTx) error {
		pairs, err := kv.Collect(tx.GetRange(b, e, kv.RangeOptions{}))
		n = len(pairs)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestExpiryAndReclaim(t *testing.T) {
	f := setup(t)
	const res = "src/**"
	l, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: res, TTL: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		advance   time.Duration
		beatA     bool
		wantError error // of b acquiring src/x.go; nil: granted
	}{
		{4 * time.Second, true, lease.ErrConflict}, // before expiry
		{time.Second, true, nil},                   // at expiry: reclaimable
	}
	for i, st := range steps {
		f.clock.Advance(st.advance)
		if st.beatA {
			if err := agent.Heartbeat(f.ctx, f.admin, f.aID); err != nil {
				t.Fatal(err)
			}
			if err := agent.Heartbeat(f.ctx, f.admin, f.bID); err != nil {
				t.Fatal(err)
			}
		}
		got, err := lease.Acquire(f.ctx, f.b, lease.Request{Resource: "src/x.go"})
		if !errors.Is(err, st.wantError) || st.wantError == nil && err != nil {
			t.Fatalf("step %d: %+v, %v; want %v", i, got, err, st.wantError)
		}
	}
	// The reclaimed holder's token no longer fences, renews or releases.
	if err := fence(f, f.a, res, f.aID, l.Token); !errors.Is(err, lease.ErrFenced) {
		t.Fatalf("reclaimed token fences: %v", err)
	}
	if _, err := lease.Renew(f.ctx, f.a, res, l.Token, 0); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("renewing a reclaimed lease: %v", err)
	}
	if got, want := kinds(t, f.admin, res), []string{"lease.acquired", "lease.reclaimed"}; !slices.Equal(got, want) {
		t.Fatalf("audit %q, want %q", got, want)
	}
}

func TestGoneHolderIsReclaimable(t *testing.T) {
	f := setup(t) // agents with a 10 s TTL: stale after 10 s, gone after 30 s
	l, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: "f.go", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []struct {
		advance  time.Duration
		liveness agent.Liveness // of a, in the conflict; "" when granted
	}{
		{5 * time.Second, agent.Alive},
		{10 * time.Second, agent.Stale},
		{15 * time.Second, agent.Stale},
		{time.Second, ""}, // 31 s silent: gone
	} {
		f.clock.Advance(st.advance)
		if err := agent.Heartbeat(f.ctx, f.admin, f.bID); err != nil {
			t.Fatal(err)
		}
		_, err := lease.Acquire(f.ctx, f.b, lease.Request{Resource: "f.go"})
		var ce *lease.ConflictError
		switch {
		case st.liveness == "" && err != nil:
			t.Fatalf("a is gone, yet: %v", err)
		case st.liveness != "" && (!errors.As(err, &ce) || ce.Holders[0].Liveness != st.liveness):
			t.Fatalf("want a conflict with a %s holder, got %v", st.liveness, err)
		}
	}
	if err := fence(f, f.a, "f.go", f.aID, l.Token); !errors.Is(err, lease.ErrFenced) {
		t.Fatalf("gone holder's token fences: %v", err)
	}
	// A gone agent cannot take a lease it would lose at once.
	if _, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: "g.go"}); !errors.Is(err, lease.ErrGone) {
		t.Fatalf("gone agent acquiring: %v", err)
	}
}

func TestRenew(t *testing.T) {
	f := setup(t)
	l, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: "r", TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(8 * time.Second)
	r, err := lease.Renew(f.ctx, f.a, "r", l.Token, 0)
	if err != nil || r.Token != l.Token || !r.Expires.Equal(f.clock.Now().Add(10*time.Second)) {
		t.Fatalf("Renew: %+v, %v", r, err)
	}
	r, err = lease.Renew(f.ctx, f.a, "r", l.Token, time.Minute)
	if err != nil || r.TTL != time.Minute || !r.Expires.Equal(f.clock.Now().Add(time.Minute)) {
		t.Fatalf("Renew with a new TTL: %+v, %v", r, err)
	}
	// Past its TTL but not reclaimed, a grant still fences and renews: no
	// newer token exists.
	f.clock.Advance(2 * time.Minute)
	agent.Heartbeat(f.ctx, f.admin, f.aID)
	if err := fence(f, f.a, "r", f.aID, l.Token); err != nil {
		t.Fatalf("expired, unreclaimed grant: %v", err)
	}
	if _, err := lease.Renew(f.ctx, f.a, "r", l.Token, 0); err != nil {
		t.Fatalf("renewing an expired, unreclaimed grant: %v", err)
	}
	if _, err := lease.Renew(f.ctx, f.b, "r", l.Token, 0); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("another agent renewing: %v", err)
	}
}

func TestForceRelease(t *testing.T) {
	f := setup(t)
	l, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: "src/**", Mode: lease.Shared})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lease.Acquire(f.ctx, f.b, lease.Request{Resource: "src/**", Mode: lease.Shared}); err != nil {
		t.Fatal(err)
	}
	member := agenttest.RoleScope(t, f.s, "acme", "mallory", tenant.RoleMember)
	if _, err := lease.ForceRelease(f.ctx, member, "src/**", "mine now"); !errors.Is(err, tenant.ErrForbidden) {
		t.Fatalf("member forcing: %v", err)
	}
	if _, err := lease.ForceRelease(f.ctx, f.admin, "src/**", ""); !errors.Is(err, lease.ErrInvalid) {
		t.Fatalf("forcing without a reason: %v", err)
	}
	forced, err := lease.ForceRelease(f.ctx, f.admin, "src/**", "refactoring the tree")
	if err != nil || len(forced) != 2 {
		t.Fatalf("ForceRelease: %+v, %v", forced, err)
	}
	if err := fence(f, f.a, "src/**", f.aID, l.Token); !errors.Is(err, lease.ErrFenced) {
		t.Fatalf("forced token fences: %v", err)
	}
	// Each holder is told.
	for _, sc := range []*tenant.Scope{f.a, f.b} {
		msgs, err := message.Fetch(f.ctx, sc, message.FetchOptions{})
		if err != nil || len(msgs) != 1 {
			t.Fatalf("holder inbox: %+v, %v", msgs, err)
		}
		if !strings.Contains(msgs[0].Body, "refactoring the tree") || !strings.Contains(msgs[0].Body, "src/**") || msgs[0].FromUser != "alice" {
			t.Fatalf("notification: %+v", msgs[0])
		}
	}
	want := []string{"lease.acquired", "lease.acquired", "lease.forced", "lease.forced"}
	if got := kinds(t, f.admin, "src/**"); !slices.Equal(got, want) {
		t.Errorf("audit %q, want %q", got, want)
	}
	if _, err := lease.ForceRelease(f.ctx, f.admin, "src/**", "again"); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("forcing a free resource: %v", err)
	}
}

func TestSweep(t *testing.T) {
	f := setup(t)
	if _, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: "short", TTL: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := lease.Acquire(f.ctx, f.b, lease.Request{Resource: "long", TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: "kept", TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(6 * time.Second)
	removed, err := lease.Sweep(f.ctx, f.admin, f.clock.Now())
	if err != nil || len(removed) != 1 || removed[0].Resource != "short" {
		t.Fatalf("Sweep at +6s: %+v, %v", removed, err)
	}
	// b falls silent and is gone after 3 TTLs; a keeps beating.
	f.clock.Advance(30 * time.Second)
	agent.Heartbeat(f.ctx, f.admin, f.aID)
	removed, err = lease.Sweep(f.ctx, f.admin, f.clock.Now())
	if err != nil || len(removed) != 1 || removed[0].Resource != "long" {
		t.Fatalf("Sweep at +36s: %+v, %v", removed, err)
	}
	if got := kinds(t, f.admin, "short"); !slices.Equal(got, []string{"lease.acquired", "lease.expired"}) {
		t.Errorf("short: %q", got)
	}
	if got := kinds(t, f.admin, "long"); !slices.Equal(got, []string{"lease.acquired", "lease.reclaimed"}) {
		t.Errorf("long: %q", got)
	}
	left, _ := lease.List(f.ctx, f.admin, "")
	if len(left) != 1 || left[0].Resource != "kept" {
		t.Fatalf("left: %+v", left)
	}
	if mine, _ := lease.List(f.ctx, f.admin, f.bID); len(mine) != 0 {
		t.Fatalf("b's leases: %+v", mine)
	}
}

func TestAcquireWait(t *testing.T) {
	s, _ := agenttest.Open(t)
	ctx := agenttest.Context(t, nil) // the real clock: AcquireWait waits in real time
	admin := agenttest.Scope(t, s, "acme", "alice")
	_, a := agenttest.Agent(t, ctx, admin, "a", agent.Registration{})
	_, b := agenttest.Agent(t, ctx, admin, "b", agent.Registration{})
	l, err := lease.Acquire(ctx, a, lease.Request{Resource: "r"})
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := lease.AcquireWait(short, b, lease.Request{Resource: "r"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AcquireWait while held: %v", err)
	}
	got := make(chan error, 1)
	go func() {
		l, err := lease.AcquireWait(ctx, b, lease.Request{Resource: "r"})
		if err == nil && l.Token != 2 {
			err = errors.New("unexpected token")
		}
		got <- err
	}()
	if err := lease.Release(ctx, a, "r", l.Token); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AcquireWait did not return after the release")
	}
}

func TestBadInputWritesNothing(t *testing.T) {
	f := setup(t)
	if _, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: "held"}); err != nil {
		t.Fatal(err)
	}
	before := agenttest.SnapshotAll(t, f.s)
	long := strings.Repeat("x", lease.MaxResource+1)
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{"empty resource", func() error { _, err := lease.Acquire(f.ctx, f.a, lease.Request{}); return err }, lease.ErrInvalid},
		{"long resource", func() error { _, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: long}); return err }, lease.ErrInvalid},
		{"absolute", func() error { _, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: "/etc/passwd"}); return err }, lease.ErrInvalid},
		{"dot-dot", func() error { _, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: "a/../b"}); return err }, lease.ErrInvalid},
		{"bad glob", func() error { _, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: "src/[a"}); return err }, lease.ErrInvalid},
		{"bad mode", func() error {
			_, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: "r", Mode: "mine"})
			return err
		}, lease.ErrInvalid},
		{"short ttl", func() error {
			_, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: "r", TTL: time.Millisecond})
			return err
		}, lease.ErrInvalid},
		{"negative ttl", func() error {
			_, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: "r", TTL: -time.Second})
			return err
		}, lease.ErrInvalid},
		{"no agent", func() error { _, err := lease.Acquire(f.ctx, f.admin, lease.Request{Resource: "r"}); return err }, lease.ErrInvalid},
		{"unknown agent", func() error {
			sc, _ := f.admin.WithAgent("ag_nobody")
			_, err := lease.Acquire(f.ctx, sc, lease.Request{Resource: "r"})
			return err
		}, agent.ErrNotFound},
		{"renew token 0", func() error { _, err := lease.Renew(f.ctx, f.a, "held", 0, 0); return err }, lease.ErrInvalid},
		{"renew bad ttl", func() error { _, err := lease.Renew(f.ctx, f.a, "held", 1, time.Nanosecond); return err }, lease.ErrInvalid},
		{"release token -1", func() error { return lease.Release(f.ctx, f.a, "held", -1) }, lease.ErrInvalid},
		{"release bad resource", func() error { return lease.Release(f.ctx, f.a, "", 1) }, lease.ErrInvalid},
		{"force long reason", func() error {
			_, err := lease.ForceRelease(f.ctx, f.admin, "held", strings.Repeat("r", lease.MaxReason+1))
			return err
		}, lease.ErrInvalid},
		{"fence empty agent", func() error { return fence(f, f.a, "held", "", 1) }, lease.ErrInvalid},
		{"fence bad resource", func() error { return fence(f, f.a, "held/", f.aID, 1) }, lease.ErrInvalid},
		{"fence token 0", func() error { return fence(f, f.a, "held", f.aID, 0) }, lease.ErrInvalid},
		{"holders bad resource", func() error { _, err := lease.Holders(f.ctx, f.a, "a//b"); return err }, lease.ErrInvalid},
		{"list bad agent", func() error { _, err := lease.List(f.ctx, f.a, "\xff"); return err }, lease.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Fatalf("%v; want %v", err, tc.want)
			}
		})
	}
	if after := agenttest.SnapshotAll(t, f.s); after != before {
		t.Fatal("bad input changed the store")
	}
	viewer := agenttest.RoleScope(t, f.s, "acme", "victor", tenant.RoleViewer)
	before = agenttest.SnapshotAll(t, f.s) // RoleScope wrote the viewer and its token
	vAgent, _ := viewer.WithAgent(f.aID)
	if _, err := lease.Acquire(f.ctx, vAgent, lease.Request{Resource: "r"}); !errors.Is(err, tenant.ErrForbidden) {
		t.Errorf("viewer Acquire: %v", err)
	}
	if _, err := lease.Sweep(f.ctx, viewer, f.clock.Now().Add(time.Hour)); !errors.Is(err, tenant.ErrForbidden) {
		t.Errorf("viewer Sweep: %v", err)
	}
	if after := agenttest.SnapshotAll(t, f.s); after != before {
		t.Fatal("bad input changed the store")
	}
}

// TestIsolation: tenant A, holding B's real agent ids, resources and
// tokens, can neither see nor touch B's leases, and B's keys do not change.
func TestIsolation(t *testing.T) {
	s, _ := agenttest.Open(t)
	ctx := agenttest.Context(t, nil)
	adminA := agenttest.Scope(t, s, "a", "alice")
	adminB := agenttest.Scope(t, s, "b", "alice")
	_, a := agenttest.Agent(t, ctx, adminA, "coder", agent.Registration{})
	bAgent, b := agenttest.Agent(t, ctx, adminB, "coder", agent.Registration{})
	bl, err := lease.Acquire(ctx, b, lease.Request{Resource: "src/**"})
	if err != nil {
		t.Fatal(err)
	}
	bBegin, bEnd := adminB.Space().Range()
	before := agenttest.Snapshot(t, s, bBegin, bEnd)

	// B's lease is invisible to A and does not conflict with A's.
	if hs, err := lease.Holders(ctx, a, "src/a.go"); err != nil || len(hs) != 0 {
		t.Fatalf("A sees holders %+v, %v", hs, err)
	}
	if ls, err := lease.List(ctx, adminA, ""); err != nil || len(ls) != 0 {
		t.Fatalf("A lists %+v, %v", ls, err)
	}
	if ls, err := lease.List(ctx, adminA, bAgent.ID); err != nil || len(ls) != 0 {
		t.Fatalf("A lists B's agent's leases %+v, %v", ls, err)
	}
	if err := lease.Release(ctx, a, "src/**", bl.Token); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("A releasing B's lease: %v", err)
	}
	if _, err := lease.Renew(ctx, a, "src/**", bl.Token, 0); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("A renewing B's lease: %v", err)
	}
	if _, err := lease.ForceRelease(ctx, adminA, "src/**", "guess"); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("A forcing B's lease: %v", err)
	}
	err = s.View(ctx, func(tx kv.ReadTx) error { return lease.CheckFence(tx, adminA, "src/**", bAgent.ID, bl.Token) })
	if !errors.Is(err, lease.ErrFenced) {
		t.Fatalf("A's fence check with B's agent and token: %v", err)
	}
	asB, _ := adminA.WithAgent(bAgent.ID)
	if _, err := lease.Acquire(ctx, asB, lease.Request{Resource: "x"}); !errors.Is(err, agent.ErrNotFound) {
		t.Fatalf("A acting as B's agent: %v", err)
	}
	if r, err := lease.Sweep(ctx, adminA, time.Now().Add(48*time.Hour)); err != nil || len(r) != 0 {
		t.Fatalf("A's sweep removed %+v, %v", r, err)
	}
	al, err := lease.Acquire(ctx, a, lease.Request{Resource: "src/a.go"})
	if err != nil || al.Token != 1 {
		t.Fatalf("A acquiring a path B's glob covers: %+v, %v", al, err)
	}
	if after := agenttest.Snapshot(t, s, bBegin, bEnd); after != before {
		t.Fatal("tenant A's calls changed tenant B's keys")
	}
}

func TestOwnOverlappingLeases(t *testing.T) {
	f := setup(t)
	g, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: "src/**"})
	if err != nil {
		t.Fatal(err)
	}
	// An agent's own leases never conflict with each other.
	p, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: "src/a.go", Mode: lease.Shared})
	if err != nil {
		t.Fatal(err)
	}
	hs, err := lease.Holders(f.ctx, f.b, "src/a.go")
	if err != nil || len(hs) != 2 {
		t.Fatalf("Holders: %+v, %v", hs, err)
	}
	// Another agent conflicts with both, and is told about both.
	_, err = lease.Acquire(f.ctx, f.b, lease.Request{Resource: "src/a.go"})
	var ce *lease.ConflictError
	if !errors.As(err, &ce) || len(ce.Holders) != 2 {
		t.Fatalf("conflict: %v", err)
	}
	if err := lease.Release(f.ctx, f.a, "src/**", g.Token); err != nil {
		t.Fatal(err)
	}
	// Shared with the remaining shared grant is fine.
	if _, err := lease.Acquire(f.ctx, f.b, lease.Request{Resource: "src/a.go", Mode: lease.Shared}); err != nil {
		t.Fatal(err)
	}
	_ = p
}

func TestMaxHolders(t *testing.T) {
	f := setup(t)
	for i := range lease.MaxHolders {
		_, sc := agenttest.Agent(t, f.ctx, f.admin, fmt.Sprint("s", i), agent.Registration{})
		if _, err := lease.Acquire(f.ctx, sc, lease.Request{Resource: "docs/**", Mode: lease.Shared}); err != nil {
			t.Fatal(err)
		}
	}
	before := agenttest.SnapshotAll(t, f.s)
	_, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: "docs/**", Mode: lease.Shared})
	if !errors.Is(err, lease.ErrTooManyHolders) || !strings.Contains(err.Error(), "64 holders") {
		t.Fatalf("holder %d: %v", lease.MaxHolders+1, err)
	}
	if agenttest.SnapshotAll(t, f.s) != before {
		t.Fatal("a refused acquire changed the store")
	}
}

// TestRefusalsNameTheRealHolder: a refused token names who holds the
// resource, and when that is the presenting agent itself, says so and
// which token to send.
func TestRefusalsNameTheRealHolder(t *testing.T) {
	f := setup(t)
	const res = "src/a.go"
	l, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: res})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name        string
		err         error
		want, wantN []string
	}{
		{"own wrong token, renew", func() error { _, err := lease.Renew(f.ctx, f.a, res, 99, 0); return err }(),
			[]string{"agent " + f.aID + " itself (token 1)", "send its token 1"}, []string{"acquire it again"}},
		{"own wrong token, release", lease.Release(f.ctx, f.a, res, 99),
			[]string{"agent " + f.aID + " itself (token 1)", "send its token 1"}, []string{"acquire it again"}},
		{"another's token", lease.Release(f.ctx, f.b, res, l.Token),
			[]string{"agent " + f.bID + " holds no lease", "agent " + f.aID + " (token 1)", "ask the holder"}, []string{"itself", "acquire it again"}},
		{"own wrong token, fence", fence(f, f.a, res, f.aID, 99),
			[]string{"it is held by " + f.aID + " itself, with another token", "own grant"}, []string{"acquire the lease again"}},
		{"another's fence", fence(f, f.b, res, f.bID, 1),
			[]string{"agent " + f.bID + " presented token 1", "it is held by " + f.aID + ")", "ask the holder"}, []string{"itself", "acquire the lease again"}},
	} {
		if c.err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(c.err.Error(), w) {
				t.Errorf("%s: %q lacks %q", c.name, c.err, w)
			}
		}
		for _, w := range c.wantN {
			if strings.Contains(c.err.Error(), w) {
				t.Errorf("%s: %q says %q", c.name, c.err, w)
			}
		}
	}
}
