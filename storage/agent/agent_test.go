package agent_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
)

func kinds(t *testing.T, sc *tenant.Scope, agentID string) []string {
	t.Helper()
	page, err := sc.Log().Query(agenttest.Context(t, nil), audit.Query{Filter: audit.Filter{Agent: agentID}})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range page.Events {
		out = append(out, ev.Kind)
	}
	return out
}

func TestRegisterIsIdempotentPerIdentity(t *testing.T) {
	s, _ := agenttest.Open(t)
	clock := agenttest.NewClock()
	ctx := agenttest.Context(t, clock)
	alice := agenttest.Scope(t, s, "acme", "alice")
	bob := agenttest.Scope(t, s, "acme", "bob")

	reg := agent.Registration{Name: "coder", Client: "lmstudio", Model: "qwen", Capabilities: []string{"go", "go", "review"}, Cohort: "backend"}
	first, err := agent.Register(ctx, alice, reg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(first.ID, "ag_") || first.Liveness != agent.Alive || first.User != "alice" {
		t.Fatalf("first registration: %+v", first)
	}
	if !slices.Equal(first.Capabilities, []string{"go", "review"}) {
		t.Errorf("capabilities not deduplicated: %q", first.Capabilities)
	}
	clock.Advance(time.Second)
	again, err := agent.Register(ctx, alice, reg)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID || !again.Registered.Equal(first.Registered) {
		t.Fatalf("re-registering the same identity: got %s registered %v, want %s registered %v", again.ID, again.Registered, first.ID, first.Registered)
	}
	reg.Model = "qwen-2"
	updated, err := agent.Register(ctx, alice, reg)
	if err != nil || updated.ID != first.ID || updated.Model != "qwen-2" {
		t.Fatalf("re-registering with a new model: %+v %v", updated, err)
	}
	for _, tc := range []struct {
		name string
		sc   *tenant.Scope
		reg  agent.Registration
	}{
		{"another name", alice, agent.Registration{Name: "coder-2", Client: "lmstudio"}},
		{"another client", alice, agent.Registration{Name: "coder", Client: "cursor"}},
		{"another user", bob, agent.Registration{Name: "coder", Client: "lmstudio"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := agent.Register(ctx, tc.sc, tc.reg)
			if err != nil {
				t.Fatal(err)
			}
			if a.ID == first.ID {
				t.Fatalf("%s got the same id %s", tc.name, a.ID)
			}
		})
	}
	got := kinds(t, alice, first.ID)
	want := []string{"agent.registered", "agent.registered", "agent.updated"}
	if !slices.Equal(got, want) {
		t.Errorf("audit kinds %q, want %q", got, want)
	}
	all, err := agent.List(ctx, alice, agent.Filter{})
	if err != nil || len(all) != 4 {
		t.Fatalf("List: %d agents, %v; want 4", len(all), err)
	}
}

func TestLivenessAndSweep(t *testing.T) {
	s, _ := agenttest.Open(t)
	clock := agenttest.NewClock()
	ctx := agenttest.Context(t, clock)
	sc := agenttest.Scope(t, s, "acme", "alice")
	quiet, _ := agenttest.Agent(t, ctx, sc, "quiet", agent.Registration{TTL: 10 * time.Second, Cohort: "c"})
	busy, _ := agenttest.Agent(t, ctx, sc, "busy", agent.Registration{TTL: 10 * time.Second, Cohort: "c"})
	start := clock.Now()

	steps := []struct {
		advance     time.Duration
		beatBusy    bool
		quiet, busy agent.Liveness
	}{
		{0, false, agent.Alive, agent.Alive},
		{10 * time.Second, false, agent.Alive, agent.Alive}, // exactly one TTL: still alive
		{time.Second, true, agent.Stale, agent.Alive},
		{19 * time.Second, false, agent.Stale, agent.Stale}, // 30 s silent: the last stale instant
		{time.Second, true, agent.Gone, agent.Alive},
	}
	for i, st := range steps {
		clock.Advance(st.advance)
		if st.beatBusy {
			if err := agent.Heartbeat(ctx, sc, busy.ID); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			id   string
			want agent.Liveness
		}{{quiet.ID, st.quiet}, {busy.ID, st.busy}} {
			a, err := agent.Get(ctx, sc, c.id)
			if err != nil {
				t.Fatal(err)
			}
			if a.Liveness != c.want {
				t.Errorf("step %d (t+%v): %s is %s, want %s (last seen %v)", i, clock.Now().Sub(start), a.Name, a.Liveness, c.want, a.LastSeen)
			}
		}
	}
	gone, err := agent.List(ctx, sc, agent.Filter{Liveness: agent.Gone})
	if err != nil || len(gone) != 1 || gone[0].ID != quiet.ID {
		t.Fatalf("List gone: %+v, %v", gone, err)
	}

	retired, err := agent.Sweep(ctx, sc, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(retired) != 1 || retired[0].ID != quiet.ID {
		t.Fatalf("Sweep retired %+v, want only %s", retired, quiet.ID)
	}
	if again, err := agent.Sweep(ctx, sc, clock.Now()); err != nil || len(again) != 0 {
		t.Fatalf("second Sweep retired %+v, %v; want nothing", again, err)
	}
	a, _ := agent.Get(ctx, sc, quiet.ID)
	if !a.IsRetired() || !a.Retired.Equal(clock.Now()) {
		t.Fatalf("after Sweep: %+v", a)
	}
	// Retired agents stay members (they keep receiving messages) but can be
	// left out of listings.
	members, err := agent.Members(ctx, sc, "c")
	if err != nil || len(members) != 2 {
		t.Fatalf("Members after retirement: %d, %v; want 2", len(members), err)
	}
	active, _ := agent.List(ctx, sc, agent.Filter{Active: true})
	if len(active) != 1 || active[0].ID != busy.ID {
		t.Fatalf("active agents: %+v", active)
	}

	// A heartbeat revives.
	if err := agent.Heartbeat(ctx, sc, quiet.ID); err != nil {
		t.Fatal(err)
	}
	a, _ = agent.Get(ctx, sc, quiet.ID)
	if a.IsRetired() || a.Liveness != agent.Alive {
		t.Fatalf("after heartbeat: %+v", a)
	}
	// So does registering again.
	clock.Advance(time.Minute)
	if r, _ := agent.Sweep(ctx, sc, clock.Now()); len(r) != 2 {
		t.Fatalf("Sweep after a minute retired %d, want 2", len(r))
	}
	if a, err := agent.Register(ctx, sc, agent.Registration{Name: "quiet", Client: "test", TTL: 10 * time.Second, Cohort: "c"}); err != nil || a.IsRetired() || a.ID != quiet.ID {
		t.Fatalf("re-registering a retired agent: %+v, %v", a, err)
	}
	got := kinds(t, sc, quiet.ID)
	want := []string{"agent.registered", "agent.retired", "agent.revived", "agent.retired", "agent.revived"}
	if !slices.Equal(got, want) {
		t.Errorf("audit kinds %q, want %q", got, want)
	}
}

func TestSweepManyInBatches(t *testing.T) {
	s, _ := agenttest.Open(t)
	clock := agenttest.NewClock()
	ctx := agenttest.Context(t, clock)
	sc := agenttest.Scope(t, s, "acme", "alice")
	n := 300 // more than one sweeping transaction
	if testing.Short() {
		n = 260
	}
	for i := range n {
		if _, err := agent.Register(ctx, sc, agent.Registration{Name: fmt.Sprintf("a%d", i), Client: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(agent.GoneAfter*agent.DefaultTTL + time.Second)
	retired, err := agent.Sweep(ctx, sc, clock.Now())
	if err != nil || len(retired) != n {
		t.Fatalf("Sweep retired %d, %v; want %d", len(retired), err, n)
	}
}

func TestCohortMembership(t *testing.T) {
	s, _ := agenttest.Open(t)
	ctx := agenttest.Context(t, nil)
	sc := agenttest.Scope(t, s, "acme", "alice")
	a, _ := agenttest.Agent(t, ctx, sc, "a", agent.Registration{Cohort: "front"})
	b, _ := agenttest.Agent(t, ctx, sc, "b", agent.Registration{Cohort: "front"})
	agenttest.Agent(t, ctx, sc, "c", agent.Registration{Cohort: "back"})
	agenttest.Agent(t, ctx, sc, "d", agent.Registration{})

	ids := func(cohort string) []string {
		ms, err := agent.Members(ctx, sc, cohort)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range ms {
			out = append(out, m.Name)
		}
		slices.Sort(out) // ids made in one millisecond sort at random
		return out
	}
	if got := ids("front"); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("front: %q", got)
	}
	// Moving b to another cohort moves its membership.
	if _, err := agent.Register(ctx, sc, agent.Registration{Name: "b", Client: "test", Cohort: "back"}); err != nil {
		t.Fatal(err)
	}
	if got := ids("front"); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("front after move: %q", got)
	}
	if got := ids("back"); len(got) != 2 {
		t.Fatalf("back after move: %q", got)
	}
	if got := ids("nobody"); len(got) != 0 {
		t.Fatalf("empty cohort: %q", got)
	}
	_ = a
	_ = b
}

func TestConcurrentHeartbeats(t *testing.T) {
	s, _ := agenttest.Open(t)
	ctx := agenttest.Context(t, nil)
	sc := agenttest.Scope(t, s, "acme", "alice")
	a, _ := agenttest.Agent(t, ctx, sc, "a", agent.Registration{})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 8 {
		wg.Go(func() {
			for range 8 {
				if err := agent.Heartbeat(ctx, sc, a.ID); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Heartbeats are not audited: only the registration is.
	if got := kinds(t, sc, a.ID); !slices.Equal(got, []string{"agent.registered"}) {
		t.Errorf("audit kinds %q", got)
	}
}

func TestBadInputWritesNothing(t *testing.T) {
	s, _ := agenttest.Open(t)
	ctx := agenttest.Context(t, nil)
	sc := agenttest.Scope(t, s, "acme", "alice")
	good, _ := agenttest.Agent(t, ctx, sc, "good", agent.Registration{})
	before := agenttest.SnapshotAll(t, s)

	long := strings.Repeat("x", 300)
	for _, tc := range []struct {
		name string
		reg  agent.Registration
		want string
	}{
		{"empty name", agent.Registration{Client: "c"}, "name is empty"},
		{"empty client", agent.Registration{Name: "n"}, "client is empty"},
		{"long name", agent.Registration{Name: long, Client: "c"}, "exceeds the limit"},
		{"long model", agent.Registration{Name: "n", Client: "c", Model: long}, "model of 300 bytes"},
		{"invalid utf-8", agent.Registration{Name: "n\xff", Client: "c"}, "not valid UTF-8"},
		{"control character", agent.Registration{Name: "n\x00", Client: "c"}, "control character"},
		{"newline", agent.Registration{Name: "n", Client: "c\n"}, "control character"},
		{"empty capability", agent.Registration{Name: "n", Client: "c", Capabilities: []string{""}}, "capability 0 is empty"},
		{"too many capabilities", agent.Registration{Name: "n", Client: "c", Capabilities: make([]string, 65)}, "65 capabilities"},
		{"long cohort", agent.Registration{Name: "n", Client: "c", Cohort: long}, "cohort of 300 bytes"},
		{"short ttl", agent.Registration{Name: "n", Client: "c", TTL: time.Millisecond}, "ttl 1ms is outside"},
		{"negative ttl", agent.Registration{Name: "n", Client: "c", TTL: -time.Second}, "outside"},
		{"long ttl", agent.Registration{Name: "n", Client: "c", TTL: 48 * time.Hour}, "outside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := agent.Register(ctx, sc, tc.reg)
			if !errors.Is(err, agent.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Register: %v; want ErrInvalid saying %q", err, tc.want)
			}
		})
	}
	for _, id := range []string{"", long, "a\xff"} {
		if err := agent.Heartbeat(ctx, sc, id); !errors.Is(err, agent.ErrInvalid) {
			t.Errorf("Heartbeat(%q): %v; want ErrInvalid", id, err)
		}
		if _, err := agent.Get(ctx, sc, id); !errors.Is(err, agent.ErrInvalid) {
			t.Errorf("Get(%q): %v; want ErrInvalid", id, err)
		}
	}
	if err := agent.Heartbeat(ctx, sc, "ag_nobody"); !errors.Is(err, agent.ErrNotFound) {
		t.Errorf("Heartbeat of an unknown agent: %v; want ErrNotFound", err)
	}
	if _, err := agent.List(ctx, sc, agent.Filter{Liveness: "dead"}); !errors.Is(err, agent.ErrInvalid) {
		t.Errorf("List with a bad liveness: %v", err)
	}
	if _, err := agent.Members(ctx, sc, ""); !errors.Is(err, agent.ErrInvalid) {
		t.Errorf("Members of no cohort: %v", err)
	}
	if after := agenttest.SnapshotAll(t, s); after != before {
		t.Fatal("bad input changed the store")
	}
	if _, err := agent.Get(ctx, sc, good.ID); err != nil {
		t.Fatal(err)
	}
}

func TestRoles(t *testing.T) {
	s, _ := agenttest.Open(t)
	ctx := agenttest.Context(t, nil)
	admin := agenttest.Scope(t, s, "acme", "alice")
	a, _ := agenttest.Agent(t, ctx, admin, "a", agent.Registration{})
	viewer := agenttest.RoleScope(t, s, "acme", "victor", tenant.RoleViewer)
	before := agenttest.SnapshotAll(t, s)
	if _, err := agent.Register(ctx, viewer, agent.Registration{Name: "v", Client: "c"}); !errors.Is(err, tenant.ErrForbidden) {
		t.Errorf("viewer Register: %v", err)
	}
	if err := agent.Heartbeat(ctx, viewer, a.ID); !errors.Is(err, tenant.ErrForbidden) {
		t.Errorf("viewer Heartbeat: %v", err)
	}
	if _, err := agent.Sweep(ctx, viewer, time.Now().Add(time.Hour)); !errors.Is(err, tenant.ErrForbidden) {
		t.Errorf("viewer Sweep: %v", err)
	}
	if after := agenttest.SnapshotAll(t, s); after != before {
		t.Fatal("a viewer changed the store")
	}
	if got, err := agent.Get(ctx, viewer, a.ID); err != nil || got.ID != a.ID {
		t.Errorf("viewer Get: %v", err)
	}
}

func TestAgentBoundToken(t *testing.T) {
	s, _ := agenttest.Open(t)
	ctx := agenttest.Context(t, nil)
	admin := agenttest.Scope(t, s, "acme", "alice")
	other, _ := agenttest.Agent(t, ctx, admin, "other", agent.Registration{})
	secret, _, err := admin.IssueToken(ctx, "alice", tenant.RoleMember, tenant.TokenOptions{Agent: "bot-1"})
	if err != nil {
		t.Fatal(err)
	}
	bot, err := tenant.NewDirectory(s, "test").Authenticate(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.Register(ctx, bot, agent.Registration{Name: "bot", Client: "ci"})
	if err != nil || a.ID != "bot-1" {
		t.Fatalf("bound token registers %+v, %v; want id bot-1", a, err)
	}
	// A new identity renames the bound agent rather than creating another.
	a, err = agent.Register(ctx, bot, agent.Registration{Name: "bot-renamed", Client: "ci"})
	if err != nil || a.ID != "bot-1" || a.Name != "bot-renamed" {
		t.Fatalf("bound token re-registering: %+v, %v", a, err)
	}
	// The old identity is free again: the admin registering it gets a new id.
	if b, err := agent.Register(ctx, admin, agent.Registration{Name: "bot", Client: "ci"}); err != nil || b.ID == "bot-1" {
		t.Fatalf("old identity: %+v, %v", b, err)
	}
	if _, err := agent.Register(ctx, bot, agent.Registration{Name: "other", Client: "test"}); !errors.Is(err, tenant.ErrForbidden) {
		t.Errorf("bound token claiming another agent's identity: %v", err)
	}
	if err := agent.Heartbeat(ctx, bot, other.ID); !errors.Is(err, tenant.ErrForbidden) {
		t.Errorf("bound token heartbeating another agent: %v", err)
	}
	if err := agent.Heartbeat(ctx, bot, "bot-1"); err != nil {
		t.Error(err)
	}
}

// TestIsolation: with B's real ids, A's scope reads, lists and touches
// nothing of tenant B, and B's keys do not change.
func TestIsolation(t *testing.T) {
	s, _ := agenttest.Open(t)
	ctx := agenttest.Context(t, nil)
	a := agenttest.Scope(t, s, "a", "alice")
	b := agenttest.Scope(t, s, "b", "alice")
	bAgent, _ := agenttest.Agent(t, ctx, b, "coder", agent.Registration{Cohort: "crew"})
	bBegin, bEnd := b.Space().Range()
	before := agenttest.Snapshot(t, s, bBegin, bEnd)

	if _, err := agent.Get(ctx, a, bAgent.ID); !errors.Is(err, agent.ErrNotFound) {
		t.Errorf("Get of B's agent from A: %v", err)
	}
	if err := agent.Heartbeat(ctx, a, bAgent.ID); !errors.Is(err, agent.ErrNotFound) {
		t.Errorf("Heartbeat of B's agent from A: %v", err)
	}
	if l, err := agent.List(ctx, a, agent.Filter{}); err != nil || len(l) != 0 {
		t.Errorf("A lists %d agents, %v", len(l), err)
	}
	if l, err := agent.Members(ctx, a, "crew"); err != nil || len(l) != 0 {
		t.Errorf("A lists %d members of B's cohort, %v", len(l), err)
	}
	if r, err := agent.Sweep(ctx, a, time.Now().Add(24*time.Hour)); err != nil || len(r) != 0 {
		t.Errorf("A's sweep retired %d, %v", len(r), err)
	}
	// The same identity in A is another agent.
	aAgent, err := agent.Register(ctx, a, agent.Registration{Name: "coder", Client: "test", Cohort: "crew"})
	if err != nil || aAgent.ID == bAgent.ID {
		t.Fatalf("A registering B's identity: %+v, %v", aAgent, err)
	}
	if after := agenttest.Snapshot(t, s, bBegin, bEnd); after != before {
		t.Fatal("tenant A's calls changed tenant B's keys")
	}
	if l, _ := agent.List(ctx, b, agent.Filter{}); len(l) != 1 || l[0].ID != bAgent.ID {
		t.Fatalf("B lists %+v", l)
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for range 10_000 {
		id := agent.NewID("tk")
		if len(id) != len("tk_")+26 || !strings.HasPrefix(id, "tk_") {
			t.Fatalf("id %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
		// The first 9 characters (45 bits) are all time: they never go
		// backwards.
		if prev != "" && id[3:12] < prev[3:12] {
			t.Fatalf("id %q sorts before the earlier %q", id, prev)
		}
		prev = id
	}
}

// Check finds an agent registered in the scope's tenant, a retired one
// included, and nothing else: an unknown id, another tenant's agent, a
// malformed id.
func TestCheck(t *testing.T) {
	s, _ := agenttest.Open(t)
	ctx := agenttest.Context(t, nil)
	a := agenttest.Scope(t, s, "a", "alice")
	b := agenttest.Scope(t, s, "b", "alice")
	mine, _ := agenttest.Agent(t, ctx, a, "coder", agent.Registration{})
	theirs, _ := agenttest.Agent(t, ctx, b, "coder", agent.Registration{})
	check := func(id string) error {
		var err error
		if verr := a.Store().View(ctx, func(tx kv.ReadTx) error { err = agent.Check(tx, a, id); return nil }); verr != nil {
			t.Fatal(verr)
		}
		return err
	}
	if err := check(mine.ID); err != nil {
		t.Errorf("Check of a registered agent: %v", err)
	}
	if _, err := agent.Sweep(ctx, a, time.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := check(mine.ID); err != nil {
		t.Errorf("Check of a retired agent: %v", err)
	}
	for _, id := range []string{theirs.ID, agent.NewID("ag"), "not an id"} {
		if err := check(id); err == nil {
			t.Errorf("Check(%q) found it", id)
		} else if id != "not an id" && !errors.Is(err, agent.ErrNotFound) {
			t.Errorf("Check(%q): %v, want ErrNotFound", id, err)
		}
	}
}
