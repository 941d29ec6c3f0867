package attrib_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
)

func check(t *testing.T, sc *tenant.Scope, path string, now time.Time) error {
	t.Helper()
	var out error
	err := sc.Store().View(context.Background(), func(tx kv.ReadTx) error {
		out = attrib.CheckNoUnsavedEdits(tx, sc, path, now)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUnsavedEditMarks: a mark refuses writes until it is cleared or
// lapses; a refresh keeps Since; each editor holds its own mark; other
// tenants and other files are unaffected; SweepEditing removes lapsed
// marks.
func TestUnsavedEditMarks(t *testing.T) {
	s, _ := agenttest.Open(t)
	sc := agenttest.Scope(t, s, "acme", "ada")
	const f = "/w/p/a.go"
	if err := check(t, sc, f, time.Now()); err != nil {
		t.Fatalf("no mark: %v", err)
	}
	if err := put(t, sc, func(tx kv.Tx) error {
		return attrib.MarkEditing(tx, sc, f, attrib.Editing{Editor: "ide-1", Client: "Neovim"}, time.Minute)
	}); err != nil {
		t.Fatal(err)
	}
	err := check(t, sc, "/w/p/./a.go", time.Now())
	var ue *attrib.UnsavedEditsError
	if !errors.Is(err, attrib.ErrUnsavedEdits) || !errors.As(err, &ue) || len(ue.Editors) != 1 || ue.Editors[0].User != "ada" ||
		!strings.Contains(err.Error(), "ada in Neovim") {
		t.Fatalf("with a mark: %v", err)
	}
	since := ue.Editors[0].Since
	if err := put(t, sc, func(tx kv.Tx) error {
		if err := attrib.MarkEditing(tx, sc, f, attrib.Editing{Editor: "ide-1"}, time.Minute); err != nil {
			return err
		}
		return attrib.MarkEditing(tx, sc, f, attrib.Editing{Editor: "ide-2"}, time.Minute)
	}); err != nil {
		t.Fatal(err)
	}
	err = check(t, sc, f, time.Now())
	if !errors.As(err, &ue) || len(ue.Editors) != 2 || !ue.Editors[0].Since.Equal(since) || ue.Editors[0].Editor != "ide-1" {
		t.Fatalf("refreshed and second editor: %+v", ue)
	}
	for _, other := range []error{check(t, sc, "/w/p/b.go", time.Now()), check(t, agenttest.Scope(t, s, "zeta", "ada"), f, time.Now())} {
		if other != nil {
			t.Errorf("unrelated file or tenant refused: %v", other)
		}
	}
	if err := check(t, sc, f, time.Now().Add(time.Minute+time.Second)); err != nil {
		t.Errorf("after the TTL: %v", err)
	}
	if err := put(t, sc, func(tx kv.Tx) error { return attrib.ClearEditing(tx, sc, f, "ide-1") }); err != nil {
		t.Fatal(err)
	}
	if err := check(t, sc, f, time.Now()); !errors.As(err, &ue) || len(ue.Editors) != 1 || ue.Editors[0].Editor != "ide-2" {
		t.Fatalf("after clearing ide-1: %v", err)
	}
	n, err := attrib.SweepEditing(context.Background(), sc, time.Now().Add(2*time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("SweepEditing = %d, %v; want 1", n, err)
	}
	if err := check(t, sc, f, time.Now()); err != nil {
		t.Errorf("after the sweep: %v", err)
	}
	// Bad input is refused with ErrInvalid.
	for _, bad := range []struct {
		path string
		ed   attrib.Editing
		ttl  time.Duration
	}{{"rel/a.go", attrib.Editing{Editor: "x"}, 0}, {f, attrib.Editing{}, 0}, {f, attrib.Editing{Editor: "x"}, 48 * time.Hour}} {
		if err := put(t, sc, func(tx kv.Tx) error { return attrib.MarkEditing(tx, sc, bad.path, bad.ed, bad.ttl) }); !errors.Is(err, attrib.ErrInvalid) {
			t.Errorf("MarkEditing(%q, %+v, %v) = %v, want ErrInvalid", bad.path, bad.ed, bad.ttl, err)
		}
	}
	viewer := agenttest.RoleScope(t, s, "acme", "vic", tenant.RoleViewer)
	if err := put(t, viewer, func(tx kv.Tx) error {
		return attrib.MarkEditing(tx, viewer, f, attrib.Editing{Editor: "x"}, 0)
	}); !errors.Is(err, tenant.ErrForbidden) {
		t.Errorf("a viewer's mark: %v, want ErrForbidden", err)
	}
}
