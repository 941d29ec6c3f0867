package session

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/keyspace"
)

// TestListByProject: Filter.Project selects the sessions of one project,
// whichever directory of it they work in, through the project index; it
// combines with the other filters, pages, and never reaches another
// tenant's sessions.
func TestListByProject(t *testing.T) {
	e := setup(t)
	sc := e.scope("acme", "alice")
	web1 := e.start(sc, "web root", e.path("web"))
	e.clk.add(time.Second)
	web2 := e.start(sc, "web sub", e.path("web/src/auth"))
	e.clk.add(time.Second)
	api := e.start(sc, "api", e.path("api"))
	if web1.Project == "" || web2.Project != web1.Project || api.Project == web1.Project {
		t.Fatalf("projects: web %q and %q, api %q; want the two web sessions in one project and api in another", web1.Project, web2.Project, api.Project)
	}
	if _, err := e.l.end(e.ctx, sc, web1.ID, Outcome{Status: Completed}); err != nil {
		t.Fatal(err)
	}
	if got := e.entries(sc, keyspace.SessionByProject, web1.Project); !slices.Equal(got, []string{web1.ID, web2.ID}) {
		t.Fatalf("project index of web: %v, want %v", got, []string{web1.ID, web2.ID})
	}
	list := func(q Query) []string {
		t.Helper()
		var ids []string
		for {
			p, err := List(e.ctx, sc, q)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, sessionIDs(p.Sessions)...)
			if p.Next == "" {
				return ids
			}
			q.Cursor = p.Next
		}
	}
	for _, tc := range []struct {
		name string
		q    Query
		want []string
	}{
		{"web", Query{Filter: Filter{Project: web1.Project}}, []string{web2.ID, web1.ID}},
		{"web, oldest first, pages of 1", Query{Filter: Filter{Project: web1.Project}, Order: OldestFirst, Limit: 1}, []string{web1.ID, web2.ID}},
		{"web open", Query{Filter: Filter{Project: web1.Project, State: Open}}, []string{web2.ID}},
		{"web ended", Query{Filter: Filter{Project: web1.Project, State: Ended}}, []string{web1.ID}},
		{"api by alice", Query{Filter: Filter{Project: api.Project, User: "alice"}}, []string{api.ID}},
		{"api by bob", Query{Filter: Filter{Project: api.Project, User: "bob"}}, nil},
		{"unknown project", Query{Filter: Filter{Project: "pr_00000000000000000000000000"}}, nil},
	} {
		if got := list(tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	// Another tenant that knows acme's project id lists nothing.
	other := e.scope("globex", "gina")
	e.start(other, "globex's", e.path("globex"))
	if p, err := List(e.ctx, other, Query{Filter: Filter{Project: web1.Project}}); err != nil || len(p.Sessions) != 0 {
		t.Fatalf("globex lists acme's project: %+v, %v", p.Sessions, err)
	}
	if _, err := List(e.ctx, sc, Query{Filter: Filter{Project: strings.Repeat("p", keyspace.MaxIDSize+1)}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an oversized project filter: %v, want ErrInvalid", err)
	}
}

// TestListByWorkspaceAlias: the workspace filter finds a session through
// a symbolic link to its workspace and through a spelling with "..", as
// Start stores workspaces canonical.
func TestListByWorkspaceAlias(t *testing.T) {
	e := setup(t)
	sc := e.scope("acme", "alice")
	s := e.start(sc, "web", e.path("web"))
	link := filepath.Join(e.path("links"), "web")
	if err := os.Symlink(e.path("web"), link); err != nil {
		t.Fatal(err)
	}
	for _, ws := range []string{e.path("web"), link, e.path("links") + "/../web"} {
		p, err := List(e.ctx, sc, Query{Filter: Filter{Workspace: ws}})
		if err != nil || !slices.Equal(sessionIDs(p.Sessions), []string{s.ID}) {
			t.Errorf("workspace %s: %v, %v; want %s", ws, sessionIDs(p.Sessions), err, s.ID)
		}
	}
}
