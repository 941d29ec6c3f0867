package tools

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/tenant"
)

// TestFsMoveDelete: fs_move and fs_delete take the leases of the paths
// they change, record the evidence the watcher attributes them by (the
// content's hash at the new path, a deletion record at the old one), and
// refuse what they must not do without changing anything.
func TestFsMoveDelete(t *testing.T) {
	e := setup(t)
	a := e.alice
	me := a.Principal().Agent
	w := newWorkspace(t, a)
	const content = "package a\n"
	if err := os.WriteFile(filepath.Join(w.root, "a.go"), []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
	hash := attrib.Hash([]byte(content))

	m, text := mustCall(t, a, "fs_move", w.args("path", "a.go", "to", "sub/dir/b.go"))
	ls := m["leases"].([]any)
	if m["from"] != "a.go" || m["path"] != "sub/dir/b.go" || m["hash"] != hash || m["bytes"] != float64(len(content)) || len(ls) != 2 ||
		ls[0].(map[string]any)["lease"] != "a.go" || ls[1].(map[string]any)["lease"] != "sub/dir/b.go" || ls[1].(map[string]any)["taken"] != true ||
		!strings.Contains(text, "Moved a.go to sub/dir/b.go") || !strings.Contains(text, "lease_release") {
		t.Fatalf("fs_move = %v\n%s", m, text)
	}
	if _, err := os.Stat(filepath.Join(w.root, "a.go")); !os.IsNotExist(err) {
		t.Errorf("a.go is still there: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(w.root, "sub", "dir", "b.go")); err != nil || fi.Mode().Perm() != 0o640 || w.read(t, "sub/dir/b.go") != content {
		t.Errorf("sub/dir/b.go: %v %v", fi, err)
	}
	recs, _ := attrib.Get(context.Background(), a, w.key("sub/dir/b.go"))
	if len(recs) != 1 || recs[0].Source != attrib.AgentWrite || recs[0].Hash != hash || recs[0].Agent != me || recs[0].Session != w.sid {
		t.Errorf("evidence at the new path %+v", recs)
	}
	recs, _ = attrib.Get(context.Background(), a, w.key("a.go"))
	if len(recs) != 1 || recs[0].Source != attrib.AgentDelete || recs[0].Agent != me || recs[0].Session != w.sid || recs[0].Model != "m1" {
		t.Errorf("evidence at the old path %+v", recs)
	}
	if ev := lastCall(t, a, "fs_move"); ev.Path != "sub/dir/b.go" || ev.Attrs["from"] != "a.go" || ev.Attrs["hash"] != hash ||
		ev.Attrs["fencing_token"] == nil || ev.Attrs["to_fencing_token"] == nil {
		t.Errorf("tool.called %+v", ev)
	}
	if c := counts(t, a); c["file.renamed"]+c["file.deleted"] != 0 {
		t.Errorf("the tool appended file events (the watcher's): %v", c)
	}

	// Refusals change nothing.
	mustCall(t, a, "fs_write", w.args("path", "c.go", "content", "c\n"))
	if err := os.Symlink("c.go", filepath.Join(w.root, "link.go")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tool, args string
		outcome    Outcome
		wants      []string
	}{
		{"fs_move", w.args("path", "c.go", "to", "sub/dir/b.go"), OutcomeConflict, []string{`"sub/dir/b.go" exists`, "never replaces", "fs_delete"}},
		{"fs_move", w.args("path", "c.go", "to", "./c.go"), OutcomeInvalid, []string{"name the same file"}},
		{"fs_move", w.args("path", "gone.go", "to", "x.go"), OutcomeNotFound, []string{`"gone.go" does not exist`}},
		{"fs_move", w.args("path", "sub", "to", "x"), OutcomeInvalid, []string{"is a directory"}},
		{"fs_move", w.args("path", "link.go", "to", "x.go"), OutcomeInvalid, []string{"symbolic link", "not links"}},
		{"fs_move", w.args("path", "c.go", "to", "../x.go"), OutcomeForbidden, nil},
		{"fs_move", w.args("path", "c.go"), OutcomeInvalid, []string{`"to"`}},
		{"fs_delete", w.args("path", "gone.go"), OutcomeNotFound, []string{"does not exist"}},
		{"fs_delete", w.args("path", "sub"), OutcomeInvalid, []string{"is a directory"}},
		{"fs_delete", w.args("path", "link.go"), OutcomeInvalid, []string{"symbolic link"}},
		{"fs_delete", w.args("path", "."), OutcomeInvalid, []string{"workspace root"}},
	} {
		before := counts(t, a)
		mustFail(t, a, c.tool, c.args, c.outcome, c.wants...)
		after := counts(t, a)
		if after["lease.acquired"] != before["lease.acquired"] {
			t.Errorf("%s %s took a lease", c.tool, c.args)
		}
	}
	if w.read(t, "c.go") != "c\n" || w.read(t, "sub/dir/b.go") != content {
		t.Error("a refused call changed a file")
	}

	// Another agent holds the file: both are refused, naming it.
	b := asAgent(t, a, "peer", "")
	mustCall(t, a, "lease_release", `{"resource":"c.go"}`)
	mustCall(t, b, "lease_acquire", `{"resource":"c.go"}`)
	mustFail(t, a, "fs_delete", w.args("path", "c.go"), OutcomeConflict, "(peer)")
	mustFail(t, a, "fs_move", w.args("path", "c.go", "to", "d.go"), OutcomeConflict, "(peer)")
	mustFail(t, a, "fs_move", w.args("path", "sub/dir/b.go", "to", "c2.go", "token", 999), OutcomeConflict, "token 999 is not a current lease")
	if w.read(t, "c.go") != "c\n" {
		t.Error("c.go changed")
	}

	// Deleting: the file goes, a deletion record stays for the watcher.
	m, text = mustCall(t, a, "fs_delete", w.args("path", "sub/dir/b.go"))
	if m["path"] != "sub/dir/b.go" || m["hash"] != hash || !strings.Contains(text, "Deleted sub/dir/b.go") {
		t.Errorf("fs_delete = %v\n%s", m, text)
	}
	if _, err := os.Stat(filepath.Join(w.root, "sub", "dir", "b.go")); !os.IsNotExist(err) {
		t.Errorf("b.go is still there: %v", err)
	}
	if recs, _ := attrib.Get(context.Background(), a, w.key("sub/dir/b.go")); len(recs) != 2 || recs[0].Source != attrib.AgentDelete || recs[0].Agent != me {
		t.Errorf("evidence after the delete %+v", recs)
	}

	// An ended session's files are not moved or deleted.
	mustCall(t, a, "session_end", `{"session_id":"`+w.sid+`","status":"completed"}`)
	mustFail(t, a, "fs_delete", w.args("path", "c.go"), OutcomeConflict, "open session")
	mustFail(t, a, "fs_move", w.args("path", "c.go", "to", "e.go"), OutcomeConflict, "open session")
}

// markEditing sets (on) or clears the unsaved-edit mark of a human's
// editor on the file key, as the IDE protocol does.
func markEditing(t *testing.T, e *env, key string, on bool) {
	t.Helper()
	human, err := e.dir.Local(context.Background(), "t1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	_, err = human.Store().Update(context.Background(), func(tx kv.Tx) error {
		if on {
			return attrib.MarkEditing(tx, human, key, attrib.Editing{Editor: "ide-1", Client: "Neovim"}, 0)
		}
		return attrib.ClearEditing(tx, human, key, "ide-1")
	})
	if err != nil {
		t.Fatal(err)
	}
}

// leasesOn returns the grants of sc's agent on key.
func leasesOn(t *testing.T, sc *tenant.Scope, key string) []lease.Holder {
	t.Helper()
	hs, err := lease.List(context.Background(), sc, sc.Principal().Agent)
	if err != nil {
		t.Fatal(err)
	}
	var out []lease.Holder
	for _, h := range hs {
		if h.Resource == key {
			out = append(out, h)
		}
	}
	return out
}

// TestRefusedChangeLeavesNoLease: a write, edit, move or delete that took
// a file's lease itself and is then refused — a human's unsaved edits,
// another agent's lease on a move's destination, the disk failing once
// the transaction committed — releases that lease, and changes nothing;
// a lease the caller held before the call stays held.
func TestRefusedChangeLeavesNoLease(t *testing.T) {
	e := setup(t)
	a := e.alice
	w := newWorkspace(t, a)
	failing := newFiles(Config{})
	failing.diskFault = func(op string) error { return errors.New("injected disk failure on " + op) }
	fail := map[string]*Tool{"fs_write": failing.writeTool(), "fs_edit": failing.editTool(), "fs_move": failing.moveTool(), "fs_delete": failing.deleteTool()}
	write := func(rel, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(w.root, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(w.root, rel), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("f.txt", "v1\n")
	write("g.txt", "g\n")
	peer := asAgent(t, a, "peer", "")
	mustCall(t, peer, "lease_acquire", `{"resource":"taken.txt"}`)

	for _, c := range []struct {
		name, tool, args string
		unsaved          string // the file marked as edited by a human
		injected         bool   // through the failing toolset
		outcome          Outcome
		want             string
	}{
		{"fs_write, unsaved edits", "fs_write", w.args("path", "f.txt", "content", "v2\n"), "f.txt", false, OutcomeConflict, "unsaved edits"},
		{"fs_write of a new file, unsaved edits", "fs_write", w.args("path", "new/n.txt", "content", "n\n"), "new/n.txt", false, OutcomeConflict, "unsaved edits"},
		{"fs_edit, unsaved edits", "fs_edit", w.args("path", "f.txt", "search", "v1", "replace", "v2"), "f.txt", false, OutcomeConflict, "unsaved edits"},
		{"fs_delete, unsaved edits", "fs_delete", w.args("path", "f.txt"), "f.txt", false, OutcomeConflict, "the delete was refused"},
		{"fs_move, unsaved edits of the source", "fs_move", w.args("path", "f.txt", "to", "h.txt"), "f.txt", false, OutcomeConflict, "the move was refused"},
		{"fs_move, unsaved edits of the destination", "fs_move", w.args("path", "f.txt", "to", "h.txt"), "h.txt", false, OutcomeConflict, "h.txt has unsaved edits"},
		{"fs_move, the destination leased by another", "fs_move", w.args("path", "f.txt", "to", "taken.txt"), "", false, OutcomeConflict, "(peer)"},
		{"fs_write, the disk fails", "fs_write", w.args("path", "f.txt", "content", "v2\n"), "", true, OutcomeError, "injected disk failure on write"},
		{"fs_edit, the disk fails", "fs_edit", w.args("path", "f.txt", "edits", []map[string]any{{"search": "v1", "replace": "v2"}}), "", true, OutcomeError, "injected"},
		{"fs_move, the disk fails", "fs_move", w.args("path", "f.txt", "to", "h.txt"), "", true, OutcomeError, "injected disk failure on move"},
		{"fs_delete, the disk fails", "fs_delete", w.args("path", "f.txt"), "", true, OutcomeError, "injected disk failure on delete"},
	} {
		if c.unsaved != "" {
			markEditing(t, e, w.key(c.unsaved), true)
		}
		before := counts(t, a)
		tool := findTool(t, c.tool)
		if c.injected {
			tool = fail[c.tool]
		}
		_, text, err := callTool(t, a, nil, tool, c.args)
		if c.unsaved != "" {
			markEditing(t, e, w.key(c.unsaved), false)
		}
		if Classify(err) != c.outcome || !strings.Contains(text, c.want) {
			t.Errorf("%s: %s %q, want %s with %q", c.name, Classify(err), text, c.outcome, c.want)
			continue
		}
		for _, rel := range []string{"f.txt", "h.txt", "new/n.txt", "taken.txt"} {
			if hs := leasesOn(t, a, w.key(rel)); len(hs) != 0 {
				t.Errorf("%s: a lease on %s remains: %+v", c.name, rel, hs)
			}
		}
		after := counts(t, a)
		if taken := after["lease.acquired"] - before["lease.acquired"]; taken == 0 || after["lease.released"]-before["lease.released"] != taken {
			t.Errorf("%s: %d leases taken, %d released", c.name, taken, after["lease.released"]-before["lease.released"])
		}
		if ev := lastCall(t, a, c.tool); ev.Attrs["lease_released"] != true {
			t.Errorf("%s: tool.called %+v does not record the release", c.name, ev.Attrs)
		}
		if w.read(t, "f.txt") != "v1\n" {
			t.Fatalf("%s: f.txt changed", c.name)
		}
		// No deletion record is left to explain another's deletion.
		recs, _ := attrib.Get(context.Background(), a, w.key("f.txt"))
		for _, r := range recs {
			if r.Source == attrib.AgentDelete {
				t.Errorf("%s: a deletion record of f.txt remains: %+v", c.name, r)
			}
		}
		for _, rel := range []string{"h.txt", "new"} {
			if _, err := os.Stat(filepath.Join(w.root, rel)); !os.IsNotExist(err) {
				t.Errorf("%s: %s exists: %v", c.name, rel, err)
			}
		}
	}
	if ents, _ := os.ReadDir(w.root); len(ents) != 2 {
		t.Errorf("the workspace holds %v (a temporary file left?)", ents)
	}

	// A lease held before the call is the caller's: a refusal keeps it.
	mustCall(t, a, "lease_acquire", `{"resource":"g.txt"}`)
	markEditing(t, e, w.key("g.txt"), true)
	mustFail(t, a, "fs_write", w.args("path", "g.txt", "content", "x\n"), OutcomeConflict, "unsaved edits")
	mustFail(t, a, "fs_delete", w.args("path", "g.txt"), OutcomeConflict, "unsaved edits")
	markEditing(t, e, w.key("g.txt"), false)
	if hs := leasesOn(t, a, w.key("g.txt")); len(hs) != 1 {
		t.Errorf("the caller's own lease on g.txt: %+v", hs)
	}
}
