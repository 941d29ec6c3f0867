package session

import "testing"

// TestStartBound: a session started bound records that it is the handle
// of the agent that started it, in the record and the session.started
// event, and reads back so; a principal acting as no agent cannot bind a
// session, and an unbound start stays unbound.
func TestStartBound(t *testing.T) {
	e := setup(t)
	sc := e.scope("acme", "alice")
	qwen := e.agent(sc, "ag_qwen")
	check := func(name string, s Session, want bool) {
		t.Helper()
		got, err := Get(e.ctx, sc, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if s.Bound != want || got.Bound != want {
			t.Errorf("%s: Bound %v, read back %v, want %v", name, s.Bound, got.Bound, want)
		}
		evs := events(t, sc, s.ID)
		if len(evs) == 0 || (evs[0].Attrs["bound"] == true) != want {
			t.Errorf("%s: session.started attrs %v", name, evs[0].Attrs)
		}
	}
	s, err := e.l.start(e.ctx, qwen, Spec{Title: "bound", Workspace: e.path("web"), Bound: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Agent != "ag_qwen" {
		t.Errorf("bound session's agent %q", s.Agent)
	}
	check("agent, bound", s, true)
	s, err = e.l.start(e.ctx, qwen, Spec{Title: "unbound", Workspace: e.path("web")})
	if err != nil {
		t.Fatal(err)
	}
	check("agent, unbound", s, false)
	s, err = e.l.start(e.ctx, sc, Spec{Title: "user", Workspace: e.path("web"), Bound: true})
	if err != nil {
		t.Fatal(err)
	}
	check("no agent, bound", s, false)
}
