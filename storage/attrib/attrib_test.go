package attrib_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
)

func put(t *testing.T, sc *tenant.Scope, fn func(tx kv.Tx) error) error {
	t.Helper()
	_, err := sc.Store().Update(context.Background(), fn)
	return err
}

func lookup(t *testing.T, sc *tenant.Scope, path string, now time.Time) []attrib.Record {
	t.Helper()
	var out []attrib.Record
	err := sc.Store().View(context.Background(), func(tx kv.ReadTx) error {
		var err error
		out, err = attrib.Lookup(tx, sc, path, now)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRecordAndLookup(t *testing.T) {
	s, _ := agenttest.Open(t)
	sc := agenttest.Scope(t, s, "acme", "ada")
	h1, h2 := attrib.Hash([]byte("one\n")), attrib.Hash([]byte("two\n"))
	if err := put(t, sc, func(tx kv.Tx) error {
		return attrib.RecordAgentWrite(tx, sc, "/w/p/a.go", h1, "ag-1", "qwen", "sess-1")
	}); err != nil {
		t.Fatal(err)
	}
	if err := put(t, sc, func(tx kv.Tx) error {
		return attrib.RecordIDESave(tx, sc, "/w/p/./a.go", h2, "")
	}); err != nil {
		t.Fatal(err)
	}
	rs := lookup(t, sc, "/w/p/a.go", time.Now())
	if len(rs) != 2 {
		t.Fatalf("records = %+v, want 2", rs)
	}
	if rs[0].Source != attrib.IDESave || rs[0].Hash != h2 || rs[0].User != "ada" {
		t.Errorf("newest = %+v, want the IDE save by ada", rs[0])
	}
	if rs[1].Source != attrib.AgentWrite || rs[1].Hash != h1 || rs[1].Agent != "ag-1" || rs[1].Model != "qwen" || rs[1].Session != "sess-1" {
		t.Errorf("older = %+v, want ag-1's write", rs[1])
	}
	if got := rs[1].Expires.Sub(rs[1].At); got != attrib.DefaultTTL {
		t.Errorf("ttl = %v, want %v", got, attrib.DefaultTTL)
	}
	// Expired records do not count.
	if rs := lookup(t, sc, "/w/p/a.go", time.Now().Add(attrib.DefaultTTL+time.Second)); len(rs) != 0 {
		t.Errorf("after the TTL: %+v, want none", rs)
	}
	// Another tenant sees nothing.
	other := agenttest.Scope(t, s, "zeta", "ada")
	if rs := lookup(t, other, "/w/p/a.go", time.Now()); len(rs) != 0 {
		t.Errorf("tenant zeta sees %+v", rs)
	}
	// A project's path is a key as it is: one file, one key.
	pp := keyspace.ProjectPath("pr_01JZ3K5V8Q2W7X9Y4N6M1P0R3T", "src/a.go")
	if err := put(t, sc, func(tx kv.Tx) error { return attrib.RecordIDESave(tx, sc, pp, h1, "sess-2") }); err != nil {
		t.Fatal(err)
	}
	if rs := lookup(t, sc, pp, time.Now()); len(rs) != 1 || rs[0].Session != "sess-2" {
		t.Errorf("project path records = %+v, want the IDE save in sess-2", rs)
	}
}

func TestHash(t *testing.T) {
	h := attrib.Hash([]byte("abc"))
	if h != "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("Hash(abc) = %s", h)
	}
	r, err := attrib.HashReader(strings.NewReader("abc"))
	if err != nil || r != h {
		t.Fatalf("HashReader = %s, %v", r, err)
	}
	for _, bad := range []string{"", "ba78", "sha256:zz", "sha256:" + strings.ToUpper(h[7:]), "md5:" + h[7:]} {
		if err := attrib.CheckHash(bad); !errors.Is(err, attrib.ErrInvalid) {
			t.Errorf("CheckHash(%q) = %v", bad, err)
		}
	}
}

func TestInvalid(t *testing.T) {
	s, _ := agenttest.Open(t)
	sc := agenttest.Scope(t, s, "acme", "ada")
	h := attrib.Hash(nil)
	now := time.Now()
	tests := []struct {
		name string
		path string
		r    attrib.Record
	}{
		{"relative path", "a.go", attrib.Record{Source: attrib.IDESave, Hash: h}},
		{"empty path", "", attrib.Record{Source: attrib.IDESave, Hash: h}},
		{"long path", "/" + strings.Repeat("a", attrib.MaxPath), attrib.Record{Source: attrib.IDESave, Hash: h}},
		{"bad hash", "/a", attrib.Record{Source: attrib.AgentWrite, Hash: "x", Agent: "a"}},
		{"no agent", "/a", attrib.Record{Source: attrib.AgentWrite, Hash: h}},
		{"declared without agent", "/a", attrib.Record{Source: attrib.Declared}},
		{"delete without agent", "/a", attrib.Record{Source: attrib.AgentDelete}},
		{"delete with a hash", "/a", attrib.Record{Source: attrib.AgentDelete, Agent: "a", Hash: h}},
		{"unknown source", "/a", attrib.Record{Source: "guess", Hash: h}},
		{"control char", "/a", attrib.Record{Source: attrib.AgentWrite, Hash: h, Agent: "a\nb"}},
		{"ttl too long", "/a", attrib.Record{Source: attrib.IDESave, Hash: h, At: now, Expires: now.Add(attrib.MaxTTL + time.Second)}},
		{"expired before made", "/a", attrib.Record{Source: attrib.IDESave, Hash: h, At: now, Expires: now.Add(-time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := put(t, sc, func(tx kv.Tx) error { return attrib.Put(tx, sc, tt.path, tt.r) })
			if !errors.Is(err, attrib.ErrInvalid) {
				t.Fatalf("Put = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestPermissions(t *testing.T) {
	s, _ := agenttest.Open(t)
	h := attrib.Hash(nil)
	viewer := agenttest.RoleScope(t, s, "acme", "vic", tenant.RoleViewer)
	err := put(t, viewer, func(tx kv.Tx) error { return attrib.RecordIDESave(tx, viewer, "/a", h, "") })
	if !errors.Is(err, tenant.ErrForbidden) {
		t.Errorf("viewer: %v, want ErrForbidden", err)
	}
	// A token bound to one agent cannot record another agent's writes.
	ctx := context.Background()
	member := agenttest.RoleScope(t, s, "acme", "mo", tenant.RoleMember)
	a, _ := agenttest.Agent(t, ctx, member, "bot", agent.Registration{Client: "test"})
	bound, _, err := tenant.NewDirectory(s, "test").IssueToken(ctx, "acme", "mo", tenant.RoleMember, tenant.TokenOptions{Agent: a.ID})
	if err != nil {
		t.Fatal(err)
	}
	bsc, err := tenant.NewDirectory(s, "test").Authenticate(ctx, bound)
	if err != nil {
		t.Fatal(err)
	}
	err = put(t, bsc, func(tx kv.Tx) error { return attrib.RecordAgentWrite(tx, bsc, "/a", h, "someone-else", "", "") })
	if !errors.Is(err, tenant.ErrForbidden) {
		t.Errorf("bound token for another agent: %v, want ErrForbidden", err)
	}
	if err := put(t, bsc, func(tx kv.Tx) error { return attrib.RecordAgentWrite(tx, bsc, "/a", h, a.ID, "", "") }); err != nil {
		t.Errorf("bound token for its agent: %v", err)
	}
}

func TestMoveInherits(t *testing.T) {
	s, _ := agenttest.Open(t)
	sc := agenttest.Scope(t, s, "acme", "ada")
	h := attrib.Hash([]byte("x"))
	now := time.Now()
	if err := put(t, sc, func(tx kv.Tx) error {
		if err := attrib.RecordAgentWrite(tx, sc, "/w/old.go", h, "ag-1", "", ""); err != nil {
			return err
		}
		return attrib.RecordIDESave(tx, sc, "/w/new.go", attrib.Hash([]byte("y")), "")
	}); err != nil {
		t.Fatal(err)
	}
	if err := put(t, sc, func(tx kv.Tx) error { return attrib.Move(tx, sc, "/w/old.go", "/w/new.go", now) }); err != nil {
		t.Fatal(err)
	}
	if rs := lookup(t, sc, "/w/old.go", now); len(rs) != 0 {
		t.Errorf("old path keeps %+v", rs)
	}
	rs := lookup(t, sc, "/w/new.go", now)
	var found bool
	for _, r := range rs {
		if r.Source == attrib.AgentWrite && r.Agent == "ag-1" && r.From == "/w/old.go" {
			found = true
		}
	}
	if !found || len(rs) != 2 {
		t.Fatalf("new path records = %+v, want ag-1's write from /w/old.go and the IDE save", rs)
	}
	// Moving a path without records changes nothing.
	if err := put(t, sc, func(tx kv.Tx) error { return attrib.Move(tx, sc, "/w/none", "/w/new.go", now) }); err != nil {
		t.Fatal(err)
	}
	if rs := lookup(t, sc, "/w/new.go", now); len(rs) != 2 {
		t.Errorf("after an empty move: %+v", rs)
	}
}

func TestCapAndSweep(t *testing.T) {
	s, _ := agenttest.Open(t)
	sc := agenttest.Scope(t, s, "acme", "ada")
	now := time.Now().UTC()
	// More than MaxRecords records on one path keep the newest.
	for i := range attrib.MaxRecords + 4 {
		r := attrib.Record{Source: attrib.IDESave, Hash: attrib.Hash(fmt.Appendf(nil, "%d", i)), At: now.Add(time.Duration(i) * time.Millisecond)}
		if err := put(t, sc, func(tx kv.Tx) error { return attrib.Put(tx, sc, "/w/busy", r) }); err != nil {
			t.Fatal(err)
		}
	}
	rs := lookup(t, sc, "/w/busy", now)
	if len(rs) != attrib.MaxRecords || rs[0].Hash != attrib.Hash(fmt.Appendf(nil, "%d", attrib.MaxRecords+3)) {
		t.Fatalf("kept %d records, newest %s", len(rs), rs[0].Hash)
	}
	// 1,200 short-lived paths (more than one sweep page) and one long-lived.
	n := 1200
	for i := 0; i < n; i += 300 {
		if err := put(t, sc, func(tx kv.Tx) error {
			for j := i; j < i+300; j++ {
				r := attrib.Record{Source: attrib.IDESave, Hash: attrib.Hash(nil), At: now, Expires: now.Add(time.Minute)}
				if err := attrib.Put(tx, sc, fmt.Sprintf("/w/f%04d", j), r); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	keep := attrib.Record{Source: attrib.IDESave, Hash: attrib.Hash(nil), At: now, Expires: now.Add(time.Hour)}
	if err := attrib.Add(context.Background(), sc, "/w/keep", keep); err != nil {
		t.Fatal(err)
	}
	cleared, err := attrib.Sweep(context.Background(), sc, now.Add(30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if cleared != n+1 { // the n short-lived paths and /w/busy
		t.Errorf("cleared %d paths, want %d", cleared, n+1)
	}
	rs, err = attrib.Get(context.Background(), sc, "/w/keep")
	if err != nil || len(rs) != 1 {
		t.Errorf("/w/keep: %+v, %v", rs, err)
	}
	var left int
	err = s.View(context.Background(), func(tx kv.ReadTx) error {
		b, e := sc.Space().FileEvidences().Range()
		it := tx.GetRange(b, e, kv.RangeOptions{})
		for it.Next() {
			left++
		}
		return it.Err()
	})
	if err != nil || left != 1 {
		t.Errorf("%d keys left after the sweep (%v), want 1", left, err)
	}
}

// TestRecordAgentDelete: a deletion record names the agent, its model and
// session and carries no hash; a rename carries it to the new path marked
// with the path it was made for.
func TestRecordAgentDelete(t *testing.T) {
	s, _ := agenttest.Open(t)
	sc := agenttest.Scope(t, s, "acme", "ada")
	now := time.Now()
	if err := put(t, sc, func(tx kv.Tx) error {
		return attrib.RecordAgentDelete(tx, sc, "/w/gone.go", "ag-1", "qwen", "s-1")
	}); err != nil {
		t.Fatal(err)
	}
	rs := lookup(t, sc, "/w/gone.go", now)
	if len(rs) != 1 || rs[0].Source != attrib.AgentDelete || rs[0].Agent != "ag-1" || rs[0].Model != "qwen" || rs[0].Session != "s-1" ||
		rs[0].Hash != "" || rs[0].User != "ada" || rs[0].From != "" {
		t.Fatalf("records %+v", rs)
	}
	if err := put(t, sc, func(tx kv.Tx) error { return attrib.Move(tx, sc, "/w/gone.go", "/w/moved.go", now) }); err != nil {
		t.Fatal(err)
	}
	if rs := lookup(t, sc, "/w/moved.go", now); len(rs) != 1 || rs[0].Source != attrib.AgentDelete || rs[0].From != "/w/gone.go" {
		t.Errorf("after a rename %+v", rs)
	}
}

// TestWithdraw: the newest record of a source an agent left is removed,
// and only that one.
func TestWithdraw(t *testing.T) {
	s, _ := agenttest.Open(t)
	sc := agenttest.Scope(t, s, "acme", "ada")
	now := time.Now()
	h := attrib.Hash([]byte("x"))
	if err := put(t, sc, func(tx kv.Tx) error {
		if err := attrib.RecordAgentWrite(tx, sc, "/w/a.go", h, "ag-1", "", ""); err != nil {
			return err
		}
		if err := attrib.RecordAgentDelete(tx, sc, "/w/a.go", "ag-2", "", ""); err != nil {
			return err
		}
		return attrib.RecordAgentDelete(tx, sc, "/w/a.go", "ag-1", "", "")
	}); err != nil {
		t.Fatal(err)
	}
	if err := put(t, sc, func(tx kv.Tx) error { return attrib.Withdraw(tx, sc, "/w/a.go", attrib.AgentDelete, "ag-1") }); err != nil {
		t.Fatal(err)
	}
	rs := lookup(t, sc, "/w/a.go", now)
	if len(rs) != 2 || rs[0].Agent != "ag-2" || rs[0].Source != attrib.AgentDelete || rs[1].Source != attrib.AgentWrite {
		t.Fatalf("after withdrawing ag-1's deletion: %+v", rs)
	}
	// Nothing to withdraw: nothing changes.
	if err := put(t, sc, func(tx kv.Tx) error { return attrib.Withdraw(tx, sc, "/w/b.go", attrib.AgentDelete, "ag-1") }); err != nil {
		t.Fatal(err)
	}
	if rs := lookup(t, sc, "/w/a.go", now); len(rs) != 2 {
		t.Errorf("records %+v", rs)
	}
}
