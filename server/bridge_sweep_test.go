package server

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/bridge"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
)

// bridgeKeys returns the keys of the IDE bridge's records in sc's tenant:
// presences, doorbells, requests and answers.
func bridgeKeys(t *testing.T, sc *tenant.Scope) []string {
	t.Helper()
	sp := sc.Space()
	var out []string
	err := sc.Store().View(context.Background(), func(tx kv.ReadTx) error {
		out = out[:0]
		for _, sub := range []keyspace.Subspace{sp.IDEEditors(), sp.AllIDERequests(), sp.AllIDEAnswers()} {
			b, e := sub.Range()
			it := tx.GetRange(b, e, kv.RangeOptions{})
			for it.Next() {
				out = append(out, string(it.KeyValue().Key))
			}
			if err := it.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// leaveKilled writes what a killed editor and a killed asker leave
// behind, `ago` after they died: the editor's presence (its last refresh
// long expired), its doorbell, a request of its queue with an answer;
// and, under the queue of live, a request whose asker died.
func leaveKilled(t *testing.T, sc *tenant.Scope, editor, live string, ago time.Duration) {
	t.Helper()
	sp := sc.Space()
	died := time.Now().Add(-ago).UTC()
	p := bridge.Presence{Editor: editor, User: sc.Principal().User, Kind: bridge.EditorVSCode, Projects: []string{"pr_x"}, Kinds: bridge.Kinds,
		At: died.Add(-bridge.PresenceTTL), Expires: died}
	pv, _ := json.Marshal(p)
	pk, _ := sp.IDEEditor(editor)
	bell, _ := sp.IDEBell(editor)
	set := map[string][]byte{string(pk): pv}
	for _, r := range []bridge.Request{
		{ID: "rq_dead_editor", Kind: bridge.KindHover, Project: "pr_x", User: "ada", Editor: editor, Asked: died.Add(-time.Second), Deadline: died},
		{ID: "rq_dead_asker", Kind: bridge.KindHover, Project: "pr_x", User: "ada", Editor: live, Asked: died.Add(-time.Second), Deadline: died},
	} {
		rv, _ := json.Marshal(r)
		rk, err := sp.IDERequest(r.Editor, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		ak, _ := sp.IDEAnswer(r.Editor, r.ID)
		set[string(rk)] = rv
		set[string(ak)] = []byte(`{"result":{"contents":"x"}}`)
	}
	_, err := sc.Store().Update(context.Background(), func(tx kv.Tx) error {
		for k, v := range set {
			tx.Set([]byte(k), v)
		}
		tx.Add(bell, 1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The daemon's sweep removes, in every tenant, what killed editors and
// askers of the IDE bridge left behind, and nothing of a live editor:
// its presence and the request it is working on stay.
func TestDaemonSweepBridge(t *testing.T) {
	dir := daemonDir(t)
	ctx := context.Background()
	a, err := dir.Local(ctx, "a", "ada")
	if err != nil {
		t.Fatal(err)
	}
	b, err := dir.Local(ctx, "b", "ada")
	if err != nil {
		t.Fatal(err)
	}
	// A live editor in tenant a, with a request in flight.
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	ed, err := bridge.Connect(ectx, a, bridge.Presence{Editor: "ed-live", Kind: bridge.EditorVSCode, Projects: []string{"pr_x"}, Kinds: bridge.Kinds}, bridge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ed.Close(ctx)
	inflight := bridge.Request{ID: "rq_inflight", Kind: bridge.KindHover, Project: "pr_x", User: "ada", Editor: "ed-live",
		Asked: time.Now().UTC(), Deadline: time.Now().Add(bridge.MaxTimeout).UTC()}
	iv, _ := json.Marshal(inflight)
	ik, _ := a.Space().IDERequest("ed-live", inflight.ID)
	if _, err := a.Store().Update(ctx, func(tx kv.Tx) error { tx.Set(ik, iv); return nil }); err != nil {
		t.Fatal(err)
	}
	want := bridgeKeys(t, a)
	if len(want) != 2 {
		t.Fatalf("the live editor's records: %q", want)
	}

	leaveKilled(t, a, "ed-killed", "ed-live", time.Minute)
	leaveKilled(t, b, "ed-killed-b", "ed-gone", time.Minute)
	if n := len(bridgeKeys(t, a)); n != 2+1+4 {
		t.Fatalf("%d records in tenant a before the sweep, want 7", n)
	}

	d, err := NewDaemon(DefaultConfig(), DaemonOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer d.mcp.Close(ctx)
	d.Sweep(ctx)

	if got := bridgeKeys(t, a); !slices.Equal(got, want) {
		t.Errorf("tenant a after the sweep: %q, want only the live editor's %q", got, want)
	}
	if got := bridgeKeys(t, b); len(got) != 0 {
		t.Errorf("tenant b after the sweep: %q, want nothing", got)
	}
	bell, _ := a.Space().IDEBell("ed-killed")
	if err := a.Store().View(ctx, func(tx kv.ReadTx) error {
		v, err := tx.Get(bell)
		if v != nil {
			t.Errorf("the killed editor's doorbell is left")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
