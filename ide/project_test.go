package ide_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/ide"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/watch"
)

// watchRoot runs a real watcher on the project root of dir for sc and
// returns the changes it stores.
func watchRoot(t *testing.T, sc *tenant.Scope, dir string) <-chan watch.Change {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	roots, _, err := watch.Register(ctx, sc, []string{dir}, project.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan watch.Change, 64)
	w, err := watch.New(sc, watch.Config{Roots: roots, Tools: []watch.Tool{}, FormatWindow: -1, Logger: slog.New(slog.DiscardHandler), OnStored: func(cs []watch.Change) {
		for _, c := range cs {
			ch <- c
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watcher: %v", err)
		}
	})
	select {
	case <-w.Ready():
	case err := <-done:
		t.Fatalf("watcher: %v", err)
	case <-time.After(wait):
		t.Fatal("the watcher was not ready in time")
	}
	return ch
}

func nextChange(t *testing.T, ch <-chan watch.Change, kind, rel string) watch.Change {
	t.Helper()
	select {
	case c := <-ch:
		if c.Kind != kind || c.Rel != rel {
			t.Fatalf("watcher reported %s %s, want %s %s", c.Kind, c.Rel, kind, rel)
		}
		return c
	case <-time.After(wait):
		t.Fatalf("no %s %s from the watcher within %v", kind, rel, wait)
	}
	return watch.Change{}
}

// TestSavesInSession: the human saves in the IDE's session and an agent
// writes in its own; the watcher files each change under the session of
// the evidence that explains it, with the project and relative path, and
// each session's summary lists exactly its files.
func TestSavesInSession(t *testing.T) {
	sc := scope(t)
	ctx := context.Background()
	c := start(t, sc, ide.Options{})
	c.initialize(map[string]any{"humanActivity": true})
	var se session.Session
	c.mustCall("workspace/executeCommand", map[string]any{"command": "coditect.session.start"}, &se)
	pl := place(t, sc, c.root)
	if se.Project != pl.Project.ID || pl.Rel != "." {
		t.Fatalf("the editor's session is in project %q, its workspace folder in %s at %q", se.Project, pl.Project.ID, pl.Rel)
	}
	notes := filepath.Join(c.root, "notes.md")
	writeFile(t, notes, "a\n")
	changes := watchRoot(t, sc, c.root)

	// The human types and saves.
	c.open(notes, "a\n")
	c.notify("coditect/activity", c.doc(notes))
	c.change(notes, 2, edit(0, 0, 0, 0, "human "))
	c.notify("textDocument/willSave", c.doc(notes))
	c.sync()
	writeFile(t, notes, "human a\n")
	c.notify("textDocument/didSave", c.doc(notes))
	c.sync()
	saved := nextChange(t, changes, "file.modified", "notes.md")
	if saved.Project != se.Project || saved.Session != se.ID || saved.Attribution.Actor != audit.ActorHuman {
		t.Fatalf("the saved change: project %q session %q by %s, want %s %s by the human", saved.Project, saved.Session, saved.Attribution.Actor, se.Project, se.ID)
	}
	ev, err := sc.Log().Get(ctx, saved.ID)
	if err != nil || ev.Session != se.ID || ev.Project != se.Project || ev.Path != "notes.md" {
		t.Fatalf("stored %+v, %v", ev, err)
	}

	// An agent writes another file in its own session, as the files tools
	// record it.
	ag, asc := agenttest.Agent(t, ctx, sc, "coder", agent.Registration{Client: "lmstudio", Model: "qwen"})
	agentSession, err := session.Start(ctx, asc, session.Spec{Title: "agent", Workspace: c.root})
	if err != nil {
		t.Fatal(err)
	}
	content := "package b\n"
	if _, err := sc.Store().Update(ctx, func(tx kv.Tx) error {
		return attrib.RecordAgentWrite(tx, asc, fileKey(t, sc, filepath.Join(c.root, "b.go")), attrib.Hash([]byte(content)), ag.ID, "qwen", agentSession.ID)
	}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(c.root, "b.go"), content)
	if w := nextChange(t, changes, "file.created", "b.go"); w.Session != agentSession.ID || w.Project != se.Project {
		t.Fatalf("the agent's change: project %q session %q, want %s %s", w.Project, w.Session, se.Project, agentSession.ID)
	}

	for id, want := range map[string][]string{se.ID: {"notes.md"}, agentSession.ID: {"b.go"}} {
		rep, err := session.Summary(ctx, sc, id)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range rep.Files {
			if f.Project != se.Project {
				t.Errorf("session %s: %+v is not in project %s", id, f, se.Project)
			}
			got = append(got, f.Path)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("session %s lists %q, want %q", id, got, want)
		}
	}
	rep, _ := session.Summary(ctx, sc, se.ID)
	if f := rep.Files[0]; f.ByKind["ide.edited"] != 1 || f.ByKind["ide.saved"] != 1 || f.ByKind["file.modified"] != 1 {
		t.Errorf("the human's file activity %+v, want one edit, one save and the watcher's modification", f)
	}

	// A symlinked alias of the workspace names the same file.
	alias := filepath.Join(t.TempDir(), "alias")
	if err := os.Symlink(c.root, alias); err != nil {
		t.Fatal(err)
	}
	if a, b := history(t, c, filepath.Join(alias, "notes.md")), history(t, c, notes); len(a) == 0 || !reflect.DeepEqual(a, b) {
		t.Errorf("history through the alias: %d events, through the root: %d", len(a), len(b))
	}
}

// TestUntrackedDocuments: a document outside every project of the tenant
// works in the editor but nothing is recorded about it; a member's
// workspace folder is not registered for it.
func TestUntrackedDocuments(t *testing.T) {
	sc := scope(t)
	ctx := context.Background()
	c := start(t, sc, ide.Options{})
	c.initialize(nil)
	outside, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(outside, "x.txt")
	writeFile(t, f, "x\n")
	c.open(f, "x\n")
	c.change(f, 2, edit(0, 0, 0, 0, "y"))
	c.sync()
	var st map[string]any
	c.mustCall("workspace/executeCommand", map[string]any{"command": "coditect.status"}, &st)
	if st["untracked"] != float64(1) || st["open"] != float64(1) || st["unsaved"] != float64(1) {
		t.Fatalf("status %v", st)
	}
	if eds := editors(t, sc, f); len(eds) != 0 {
		t.Fatalf("an untracked document marked: %+v", eds)
	}
	c.notify("textDocument/willSave", c.doc(f))
	writeFile(t, f, "yx\n")
	c.notify("textDocument/didSave", c.doc(f))
	c.sync()
	if recs, err := attrib.Get(ctx, sc, f); err != nil || len(recs) != 0 {
		t.Fatalf("evidence for an untracked document: %+v, %v", recs, err)
	}
	var hover any
	c.mustCall("textDocument/hover", map[string]any{"textDocument": map[string]string{"uri": fileURI(f)}, "position": map[string]int{"line": 0, "character": 0}}, &hover)
	if hover != nil {
		t.Fatalf("hover on an untracked document: %v", hover)
	}
	var lenses []struct {
		Command struct{ Title string } `json:"command"`
	}
	c.mustCall("textDocument/codeLens", c.doc(f), &lenses)
	if len(lenses) != 1 || !strings.Contains(lenses[0].Command.Title, "not tracked") {
		t.Fatalf("code lens %+v", lenses)
	}
	if err := c.call("workspace/executeCommand", map[string]any{"command": "coditect.file.history", "arguments": []any{map[string]string{"uri": fileURI(f)}}}, nil); code(err) != -32803 || !strings.Contains(err.Error(), "no project") {
		t.Fatalf("history of an untracked document: %v", err)
	}
	c.notify("textDocument/didClose", c.doc(f))
	c.sync()
	page, err := sc.Log().Query(ctx, audit.Query{Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range page.Events {
		if strings.HasPrefix(ev.Kind, "ide.") || strings.Contains(ev.Path, outside) {
			t.Errorf("an event about an untracked document: %+v", ev)
		}
	}

	// A member's folder is in no project until an admin registers it.
	s, _ := agenttest.Open(t)
	member := agenttest.RoleScope(t, s, "acme", "bob", tenant.RoleMember)
	m := start(t, member, ide.Options{})
	m.initialize(nil)
	m.mustCall("workspace/executeCommand", map[string]any{"command": "coditect.status"}, &st)
	if ps, _ := st["projects"].([]any); len(ps) != 0 {
		t.Fatalf("a member's folder was registered: %v", st)
	}
	if _, err := project.Get(ctx, member, filepath.Base(m.root)); err == nil {
		t.Fatal("a member's folder became a project")
	}
}

// TestJoinedSession: the human joins an agent's session from the editor;
// the saves are recorded, and their events filed, under it.
func TestJoinedSession(t *testing.T) {
	sc := scope(t)
	ctx := context.Background()
	c := start(t, sc, ide.Options{})
	c.initialize(nil)
	_, asc := agenttest.Agent(t, ctx, sc, "coder", agent.Registration{Client: "lmstudio"})
	se, err := session.Start(ctx, asc, session.Spec{Title: "agent", Workspace: c.root})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.call("workspace/executeCommand", map[string]any{"command": "coditect.session.join", "arguments": []any{map[string]string{"id": "01JZ3K5V8Q2W7X9Y4N6M1P0R3T"}}}, nil); class(t, err) != "not_found" {
		t.Fatalf("joining an unknown session: %v", err)
	}
	var joined session.Session
	c.mustCall("workspace/executeCommand", map[string]any{"command": "coditect.session.join", "arguments": []any{map[string]string{"id": se.ID}}}, &joined)
	if joined.ID != se.ID || len(joined.Participants) != 2 {
		t.Fatalf("joined %+v", joined)
	}
	f := filepath.Join(c.root, "a.txt")
	writeFile(t, f, "a\n")
	c.open(f, "a\n")
	c.change(f, 2, edit(0, 0, 0, 0, "b"))
	c.notify("textDocument/willSave", c.doc(f))
	writeFile(t, f, "ba\n")
	c.notify("textDocument/didSave", c.doc(f))
	c.sync()
	recs, err := attrib.Get(ctx, sc, fileKey(t, sc, f))
	if err != nil || len(recs) != 1 || recs[0].Source != attrib.IDESave || recs[0].Session != se.ID {
		t.Fatalf("the save's evidence %+v, %v: want an IDE save in session %s", recs, err, se.ID)
	}
	if evs := history(t, c, f); evs[0].Kind != "ide.saved" || evs[0].Session != se.ID {
		t.Fatalf("ide.saved %+v, want it in session %s", evs[0], se.ID)
	}
}
