package session

import (
	"testing"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/project"
)

// TestSummaryFilesByProject: a session's files are its file and editor
// events' files, by project and relative path: the watcher's and the
// IDE's events about one file are one file, the same relative path in
// two projects is two, and events of other sessions or of none do not
// count.
func TestSummaryFilesByProject(t *testing.T) {
	e := setup(t)
	alice := e.scope("acme", "alice")
	s := e.start(alice, "refactor", e.w)
	other := e.start(alice, "other", e.w)
	sec, err := project.Register(e.ctx, alice, "second", e.path("second"), project.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p1, p2 := s.Project, sec.Project.ID
	if p1 == "" || p1 == p2 {
		t.Fatalf("projects %q and %q", p1, p2)
	}
	_, err = alice.Log().Append(e.ctx,
		audit.Event{Kind: "ide.edited", Session: s.ID, Project: p1, Path: "src/a.go"},
		audit.Event{Kind: "ide.saved", Session: s.ID, Project: p1, Path: "src/a.go"},
		audit.Event{Kind: "file.modified", Session: s.ID, Project: p1, Path: "src/a.go"},
		audit.Event{Kind: "file.created", Session: s.ID, Project: p2, Path: "src/a.go"},
		audit.Event{Kind: "file.renamed", Session: s.ID, Project: p1, Path: "docs/b.md", Attrs: map[string]any{"from": "b.md"}},
		audit.Event{Kind: "ide.opened", Session: s.ID, Project: p1, Path: "c.go"},        // not a change
		audit.Event{Kind: "file.modified", Session: other.ID, Project: p1, Path: "z.go"}, // another session
		audit.Event{Kind: "file.modified", Project: p1, Path: "y.go"},                    // no session
	)
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.l.summary(e.ctx, alice, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	type file struct{ project, path string }
	var got []file
	for _, f := range r.Files {
		got = append(got, file{f.Project, f.Path})
	}
	// By path, then project.
	a1, a2 := file{p1, "src/a.go"}, file{p2, "src/a.go"}
	if p2 < p1 {
		a1, a2 = a2, a1
	}
	want := []file{{p1, "docs/b.md"}, a1, a2}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("files %v, want %v", got, want)
	}
	for _, f := range r.Files {
		if f.Project == p1 && f.Path == "src/a.go" && (f.Events != 3 || f.ByKind["ide.saved"] != 1 || f.ByKind["file.modified"] != 1) {
			t.Errorf("the file of the IDE's and the watcher's events: %+v", f)
		}
	}
}
