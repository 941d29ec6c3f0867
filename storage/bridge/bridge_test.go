package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/bridge"
	"github.com/coditect/coditect/storage/errclass"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
)

const proj = "pr_0123456789abcdefghijklmnop"

// fixture: one store, users alice and bob of tenant acme, an agent of
// each, and carol of tenant other.
type fixture struct {
	s            kv.Store
	ctx          context.Context
	alice, bob   *tenant.Scope // the humans at their editors
	aliceAgent   *tenant.Scope
	bobAgent     *tenant.Scope
	otherTenant  *tenant.Scope
	otherAgentOf *tenant.Scope
}

func setup(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{ctx: context.Background()}
	f.s, _ = agenttest.Open(t)
	f.alice = agenttest.Scope(t, f.s, "acme", "alice")
	f.bob = agenttest.Scope(t, f.s, "acme", "bob")
	reg := agent.Registration{TTL: time.Minute}
	_, f.aliceAgent = agenttest.Agent(t, f.ctx, f.alice, "builder", reg)
	_, f.bobAgent = agenttest.Agent(t, f.ctx, f.bob, "reviewer", reg)
	carol := agenttest.Scope(t, f.s, "other", "alice") // same user name, another tenant
	_, f.otherAgentOf = agenttest.Agent(t, f.ctx, carol, "intruder", reg)
	f.otherTenant = carol
	return f
}

// connect starts an editor of sc serving h until the test ends.
func connect(t *testing.T, sc *tenant.Scope, id string, share bool, h bridge.Handler) *bridge.Editor {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := bridge.Connect(ctx, sc, bridge.Presence{Editor: id, Client: "Visual Studio Code 1.96", Kind: bridge.EditorVSCode,
		Projects: []string{proj}, Kinds: bridge.Kinds, Share: share}, bridge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := e.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return e
}

func definition(_ context.Context, r bridge.Request) (bridge.Result, error) {
	return bridge.Result{Locations: []bridge.Location{{Path: "main.go", Line: r.Params.Line + 1, Column: 6}}}, nil
}

func ask(f *fixture, sc *tenant.Scope, timeout time.Duration) (bridge.Answered, error) {
	return bridge.Ask(f.ctx, sc, bridge.Question{Kind: bridge.KindDefinition, Project: proj, ProjectName: "shop",
		Params: bridge.Params{Path: "main.go", Line: 3, Column: 2}, Timeout: timeout, AgentLabel: "builder"})
}

// requests returns the ide.request events of sc's tenant, oldest first.
func requests(t *testing.T, sc *tenant.Scope) []audit.Event {
	t.Helper()
	page, err := sc.Log().Query(context.Background(), audit.Query{Filter: audit.Filter{Kind: "ide.request"}})
	if err != nil {
		t.Fatal(err)
	}
	return page.Events
}

// leftovers returns the request and answer records left in sc's tenant.
func leftovers(t *testing.T, f *fixture, sc *tenant.Scope) string {
	t.Helper()
	b, e := sc.Space().AllIDERequests().Range()
	ab, ae := sc.Space().AllIDEAnswers().Range()
	return agenttest.Snapshot(t, f.s, b, e) + agenttest.Snapshot(t, f.s, ab, ae)
}

func TestAskRoundTrip(t *testing.T) {
	f := setup(t)
	connect(t, f.alice, "ed-alice", false, definition)
	got, err := ask(f, f.aliceAgent, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Result.Locations) != 1 || got.Result.Locations[0].Line != 4 || got.Editor.User != "alice" {
		t.Fatalf("answer %+v", got)
	}
	evs := requests(t, f.alice)
	if len(evs) != 1 || evs[0].Attrs["outcome"] != bridge.OutcomeAnswered || evs[0].Attrs["editor_user"] != "alice" ||
		evs[0].Project != proj || evs[0].Path != "main.go" || evs[0].Agent == "" {
		t.Fatalf("audit %+v", evs)
	}
	if s := leftovers(t, f, f.alice); s != "" {
		t.Fatalf("records left behind:\n%s", s)
	}
}

func TestAskNoEditor(t *testing.T) {
	f := setup(t)
	start := time.Now()
	_, err := ask(f, f.aliceAgent, 0)
	if !errors.Is(err, bridge.ErrNoEditor) || !errors.Is(err, errclass.Unavailable) ||
		!strings.Contains(err.Error(), "no editor of alice is connected to project shop; open it in VS Code with the Coditect extension") {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > bridge.DefaultTimeout/2 {
		t.Fatalf("no editor took %s: it must fail at once", d)
	}
	// An editor of another project does not count.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, err := bridge.Connect(ctx, f.alice, bridge.Presence{Editor: "ed-x", Kind: bridge.EditorVSCode, Projects: []string{"pr_other"}, Kinds: bridge.Kinds}, bridge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	if _, err := ask(f, f.aliceAgent, 0); !errors.Is(err, bridge.ErrNoEditor) {
		t.Fatalf("editor of another project: %v", err)
	}
	evs := requests(t, f.alice)
	if len(evs) != 2 || evs[0].Attrs["outcome"] != bridge.OutcomeNoEditor {
		t.Fatalf("audit %+v", evs)
	}
}

// TestAskConsent: bob's agent gets nothing from alice's editor until she
// shares it; alice's own agent always does; each case is audited.
func TestAskConsent(t *testing.T) {
	f := setup(t)
	e := connect(t, f.alice, "ed-alice", false, definition)
	_, err := ask(f, f.bobAgent, 0)
	if !errors.Is(err, bridge.ErrNotShared) || !errors.Is(err, errclass.Forbidden) || !strings.Contains(err.Error(), "sharing is off") {
		t.Fatalf("unshared: %v", err)
	}
	if err := e.Update(f.ctx, func(p *bridge.Presence) { p.Share = true }); err != nil {
		t.Fatal(err)
	}
	got, err := ask(f, f.bobAgent, 0)
	if err != nil || got.Editor.User != "alice" {
		t.Fatalf("shared: %+v %v", got, err)
	}
	// Bob's own editor, once connected, comes first.
	connect(t, f.bob, "ed-bob", false, func(context.Context, bridge.Request) (bridge.Result, error) {
		return bridge.Result{Contents: "bob's"}, nil
	})
	if got, err := ask(f, f.bobAgent, 0); err != nil || got.Editor.User != "bob" {
		t.Fatalf("own editor: %+v %v", got, err)
	}
	var outcomes []string
	for _, ev := range requests(t, f.alice) {
		outcomes = append(outcomes, fmt.Sprintf("%s:%s", ev.User, ev.Attrs["outcome"]))
	}
	if want := "bob:refused bob:answered bob:answered"; strings.Join(outcomes, " ") != want {
		t.Fatalf("audit %v, want %s", outcomes, want)
	}
}

// TestAskTenantIsolation: an agent of another tenant, whose user has the
// same name, never reaches acme's editors, shared or not.
func TestAskTenantIsolation(t *testing.T) {
	f := setup(t)
	connect(t, f.alice, "ed-alice", true, definition)
	_, err := ask(f, f.otherAgentOf, 0)
	if !errors.Is(err, bridge.ErrNoEditor) {
		t.Fatalf("other tenant: %v", err)
	}
	if evs := requests(t, f.otherTenant); len(evs) != 1 || evs[0].Attrs["outcome"] != bridge.OutcomeNoEditor {
		t.Fatalf("other tenant's audit %+v", evs)
	}
	if evs := requests(t, f.alice); len(evs) != 0 {
		t.Fatalf("acme's audit shows another tenant's request: %+v", evs)
	}
	eds, err := bridge.Editors(f.ctx, f.otherTenant)
	if err != nil || len(eds) != 0 {
		t.Fatalf("other tenant sees editors %+v %v", eds, err)
	}
}

// TestAskTimeout: an editor that never answers costs the timeout, leaves
// no record, and the next request is answered.
func TestAskTimeout(t *testing.T) {
	f := setup(t)
	hang := make(chan struct{})
	defer close(hang)
	var answered atomic.Bool
	connect(t, f.alice, "ed-alice", false, func(ctx context.Context, r bridge.Request) (bridge.Result, error) {
		if !answered.Swap(true) {
			select {
			case <-ctx.Done():
				return bridge.Result{}, ctx.Err()
			case <-hang:
			}
		}
		return definition(ctx, r)
	})
	const timeout = 300 * time.Millisecond
	start := time.Now()
	_, err := ask(f, f.aliceAgent, timeout)
	d := time.Since(start)
	if !errors.Is(err, bridge.ErrTimeout) || !strings.Contains(err.Error(), "did not answer within 300ms") {
		t.Fatalf("err %v", err)
	}
	if d < timeout || d > timeout+2*time.Second {
		t.Fatalf("timed out after %s, want about %s", d, timeout)
	}
	if s := leftovers(t, f, f.alice); s != "" {
		t.Fatalf("records left behind:\n%s", s)
	}
	if _, err := ask(f, f.aliceAgent, 0); err != nil {
		t.Fatalf("the next request: %v", err)
	}
	evs := requests(t, f.alice)
	if len(evs) != 2 || evs[0].Attrs["outcome"] != bridge.OutcomeTimeout || evs[1].Attrs["outcome"] != bridge.OutcomeAnswered {
		t.Fatalf("audit %+v", evs)
	}
}

// TestStalePresence: an editor whose process died (no Close, no refresh)
// stops counting at its expiry, and Sweep removes what it left.
func TestStalePresence(t *testing.T) {
	f := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := bridge.Connect(ctx, f.alice, bridge.Presence{Editor: "ed-dead", Kind: bridge.EditorVSCode, Projects: []string{proj}, Kinds: bridge.Kinds},
		bridge.Options{TTL: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cancel() // the refresh stops, as when the process is killed
	eds, err := bridge.Editors(f.ctx, f.alice)
	if err != nil || len(eds) != 1 {
		t.Fatalf("editors %+v %v", eds, err)
	}
	time.Sleep(time.Until(eds[0].Expires)) // the clock must pass the expiry
	if _, err := ask(f, f.aliceAgent, 0); !errors.Is(err, bridge.ErrNoEditor) {
		t.Fatalf("stale editor: %v", err)
	}
	n, err := bridge.Sweep(f.ctx, f.alice, eds[0].Expires.Add(bridge.PresenceTTL+time.Second))
	if err != nil || n != 1 {
		t.Fatalf("sweep removed %d: %v", n, err)
	}
	b, e := f.alice.Space().IDEEditors().Range()
	if s := agenttest.Snapshot(t, f.s, b, e); s != "" {
		t.Fatalf("presence left:\n%s", s)
	}
}

// TestEditorErrorAndSize: an editor's error reaches the agent with its
// class; an answer over the limit becomes an error saying so.
func TestEditorErrorAndSize(t *testing.T) {
	f := setup(t)
	connect(t, f.alice, "ed-alice", false, func(_ context.Context, r bridge.Request) (bridge.Result, error) {
		if r.Kind == bridge.KindContext {
			return bridge.Result{}, errclass.New(errclass.Forbidden, "the human does not share the editor's context")
		}
		return bridge.Result{Contents: strings.Repeat("x", bridge.MaxAnswer)}, nil
	})
	_, err := bridge.Ask(f.ctx, f.aliceAgent, bridge.Question{Kind: bridge.KindContext, Project: proj})
	if !errors.Is(err, errclass.Forbidden) || !strings.Contains(err.Error(), "does not share the editor's context") {
		t.Fatalf("context: %v", err)
	}
	_, err = bridge.Ask(f.ctx, f.aliceAgent, bridge.Question{Kind: bridge.KindHover, Project: proj, Params: bridge.Params{Symbol: "main"}})
	if !errors.Is(err, errclass.Invalid) || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("huge answer: %v", err)
	}
	if _, err := bridge.Ask(f.ctx, f.aliceAgent, bridge.Question{Kind: "nope", Project: proj}); !errors.Is(err, bridge.ErrInvalid) {
		t.Fatalf("bad kind: %v", err)
	}
	if _, err := bridge.Ask(f.ctx, f.aliceAgent, bridge.Question{Kind: bridge.KindHover, Project: proj, Timeout: time.Hour}); !errors.Is(err, bridge.ErrInvalid) {
		t.Fatalf("long timeout: %v", err)
	}
}

// TestUnsupported: a plain LSP editor that cannot answer a kind fails at
// once, naming the editor.
func TestUnsupported(t *testing.T) {
	f := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, err := bridge.Connect(ctx, f.alice, bridge.Presence{Editor: "ed-nvim", Client: "Neovim 0.7.2", Kind: bridge.EditorLSP,
		Projects: []string{proj}, Kinds: []string{bridge.KindOpen, bridge.KindContext}}, bridge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	_, err = ask(f, f.aliceAgent, 0)
	if !errors.Is(err, bridge.ErrUnsupported) ||
		!strings.Contains(err.Error(), "the editor of alice (Neovim 0.7.2, plain LSP) cannot answer ide_definition; use VS Code with the Coditect extension") {
		t.Fatalf("err %v", err)
	}
}

// TestBridgeOff: a VS Code whose human turned the bridge off declares no
// kinds; agents are told so, not pointed to the extension they have.
func TestBridgeOff(t *testing.T) {
	f := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, err := bridge.Connect(ctx, f.alice, bridge.Presence{Editor: "ed-off", Client: "Visual Studio Code 1.96", Kind: bridge.EditorVSCode,
		Projects: []string{proj}}, bridge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	_, err = ask(f, f.aliceAgent, 0)
	if !errors.Is(err, bridge.ErrUnsupported) ||
		!strings.Contains(err.Error(), `the editor of alice (Visual Studio Code 1.96) has the IDE bridge turned off (its Coditect extension's "enabled" setting)`) {
		t.Fatalf("err %v", err)
	}
}

// TestAskConcurrent: many agents ask one editor at once; each gets its
// own answer and the editor handles each request exactly once.
func TestAskConcurrent(t *testing.T) {
	f := setup(t)
	var mu sync.Mutex
	handled := map[string]int{}
	connect(t, f.alice, "ed-alice", false, func(ctx context.Context, r bridge.Request) (bridge.Result, error) {
		mu.Lock()
		handled[r.ID]++
		mu.Unlock()
		return definition(ctx, r)
	})
	const n = 16
	errs := make(chan error, n)
	for i := range n {
		go func() {
			got, err := bridge.Ask(f.ctx, f.aliceAgent, bridge.Question{Kind: bridge.KindDefinition, Project: proj, Params: bridge.Params{Path: "main.go", Line: i + 1}})
			if err == nil && (len(got.Result.Locations) != 1 || got.Result.Locations[0].Line != i+2) {
				err = fmt.Errorf("request %d got %+v", i, got.Result)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(handled) != n {
		t.Errorf("%d requests handled, want %d", len(handled), n)
	}
	for id, c := range handled {
		if c != 1 {
			t.Errorf("request %s handled %d times", id, c)
		}
	}
	if s := leftovers(t, f, f.alice); s != "" {
		t.Fatalf("records left behind:\n%s", s)
	}
}

// TestWithdrawn: when the asker's call is cancelled, the editor's handler
// sees its context end with ErrWithdrawn long before the deadline, and
// nothing is left behind.
func TestWithdrawn(t *testing.T) {
	f := setup(t)
	started := make(chan struct{}, 1)
	causes := make(chan error, 1)
	connect(t, f.alice, "ed-alice", false, func(ctx context.Context, r bridge.Request) (bridge.Result, error) {
		started <- struct{}{}
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return bridge.Result{}, ctx.Err()
	})
	ctx, cancel := context.WithCancel(f.ctx)
	errs := make(chan error, 1)
	go func() {
		_, err := bridge.Ask(ctx, f.aliceAgent, bridge.Question{Kind: bridge.KindHover, Project: proj, Params: bridge.Params{Symbol: "f"}, Timeout: bridge.MaxTimeout})
		errs <- err
	}()
	timeout := time.After(bridge.MaxTimeout / 4)
	select {
	case <-started:
	case <-timeout:
		t.Fatal("the editor never got the request")
	}
	cancel()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("ask: %v", err)
	}
	select {
	case err := <-causes:
		if !errors.Is(err, bridge.ErrWithdrawn) {
			t.Fatalf("the handler's context ended with %v, want ErrWithdrawn", err)
		}
	case <-timeout:
		t.Fatal("the handler still works on a withdrawn request")
	}
	if s := leftovers(t, f, f.alice); s != "" {
		t.Fatalf("records left behind:\n%s", s)
	}
}

// TestClosedWhileAsked: an editor closed while an agent waits for it
// answers at once that it was closed, not at the deadline; nothing is
// left behind.
func TestClosedWhileAsked(t *testing.T) {
	f := setup(t)
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	e, err := bridge.Connect(ctx, f.alice, bridge.Presence{Editor: "ed-closing", Client: "Neovim 0.7.2", Kind: bridge.EditorLSP,
		Projects: []string{proj}, Kinds: bridge.Kinds}, bridge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 1)
	served := make(chan error, 1)
	go func() {
		served <- e.Serve(ctx, func(ctx context.Context, _ bridge.Request) (bridge.Result, error) {
			started <- struct{}{}
			<-ctx.Done()
			return bridge.Result{}, ctx.Err()
		})
	}()
	errs := make(chan error, 1)
	go func() {
		_, err := ask(f, f.aliceAgent, bridge.MaxTimeout)
		errs <- err
	}()
	timeout := time.After(bridge.MaxTimeout / 4)
	select {
	case <-started:
	case <-timeout:
		t.Fatal("the editor never got the request")
	}
	cancel()
	<-served
	if err := e.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, errclass.Unavailable) ||
			!strings.Contains(err.Error(), "the editor of alice (Neovim 0.7.2, plain LSP): it was closed before it answered") {
			t.Fatalf("ask: %v", err)
		}
	case <-timeout:
		t.Fatal("the agent still waits for a closed editor")
	}
	if s := leftovers(t, f, f.alice); s != "" {
		t.Fatalf("records left behind:\n%s", s)
	}
}
