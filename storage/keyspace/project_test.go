package keyspace_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tuple"
)

func TestProjectLayout(t *testing.T) {
	acme := mustTenant(t, "acme")
	for _, tc := range []struct {
		name string
		got  []byte
		want tuple.Tuple
	}{
		{"project", must(acme.Project("pr_1"))(t), tuple.Tuple{"coditect", "t", "acme", "project", "pr_1"}},
		{"project by name", must(acme.ProjectByName("webapp"))(t), tuple.Tuple{"coditect", "t", "acme", "project_by_name", "webapp"}},
		{"root entry", must(keyspace.RootEntry("laptop", "/src/app"))(t), tuple.Tuple{"coditect", "idx", "root", "laptop", "/src/app"}},
	} {
		if want := tc.want.Pack(); !bytes.Equal(tc.got, want) {
			t.Errorf("%s: key %s, want %v", tc.name, kv.DisplayKey(tc.got), tc.want)
		}
	}
	// Records and the name index are apart; root entries are global, in
	// their machine's subspace, under AllRoots.
	rec := must(acme.Project("pr_1"))(t)
	if !acme.Projects().Contains(rec) || acme.Projects().Contains(must(acme.ProjectByName("pr_1"))(t)) {
		t.Fatal("project record and name index overlap")
	}
	e := must(keyspace.RootEntry("laptop", "/src/app"))(t)
	laptop := must(keyspace.Roots("laptop"))(t)
	if !laptop.Contains(e) || !keyspace.AllRoots().Contains(e) || keyspace.Tenants().Contains(e) ||
		must(keyspace.Roots("laptop2"))(t).Contains(e) || keyspace.AllRoots().Contains(rec) {
		t.Fatalf("root entry %s misplaced", kv.DisplayKey(e))
	}
}

// RootsBelow's range holds the roots strictly inside a directory and no
// other: not the directory itself, not a sibling sharing its prefix, not
// another machine's.
func TestRootsBelow(t *testing.T) {
	begin, end, err := keyspace.RootsBelow("m", "/src/app/")
	if err != nil {
		t.Fatal(err)
	}
	in := func(machine, p string) bool {
		k := must(keyspace.RootEntry(machine, p))(t)
		return bytes.Compare(k, begin) >= 0 && bytes.Compare(k, end) < 0
	}
	for _, p := range []string{"/src/app/a", "/src/app/a/b", "/src/app/\xc3\xa9"} {
		if !in("m", p) {
			t.Errorf("%s is not below /src/app/", p)
		}
	}
	for _, c := range []struct{ machine, path string }{
		{"m", "/src/app"}, {"m", "/src/app2"}, {"m", "/src/ap"}, {"m", "/src/app.d/x"}, {"m", "/"}, {"m2", "/src/app/a"}, {"m\x00", "/src/app/a"},
	} {
		if in(c.machine, c.path) {
			t.Errorf("%s on %q is below /src/app/ on m", c.path, c.machine)
		}
	}
}

func TestProjectPath(t *testing.T) {
	for _, c := range []struct{ project, rel, want string }{
		{"pr_1", "", "@pr_1"}, {"pr_1", ".", "@pr_1"}, {"pr_1", "a/b.go", "@pr_1/a/b.go"}, {"pr_1", "src/*.go", "@pr_1/src/*.go"},
	} {
		if got := keyspace.ProjectPath(c.project, c.rel); got != c.want {
			t.Errorf("ProjectPath(%q, %q) = %q, want %q", c.project, c.rel, got, c.want)
		}
	}
}

func TestProjectInvalidIDs(t *testing.T) {
	acme := mustTenant(t, "acme")
	long := strings.Repeat("x", keyspace.MaxIDSize+1)
	for _, id := range []string{"", "\xff", long} {
		if k, err := acme.Project(id); !errors.Is(err, keyspace.ErrInvalidID) || k != nil {
			t.Errorf("Project(%q) = %s, %v", id, kv.DisplayKey(k), err)
		}
		if k, err := acme.ProjectByName(id); !errors.Is(err, keyspace.ErrInvalidID) || k != nil {
			t.Errorf("ProjectByName(%q) = %s, %v", id, kv.DisplayKey(k), err)
		}
		if k, err := keyspace.RootEntry(id, "/src"); !errors.Is(err, keyspace.ErrInvalidID) || k != nil {
			t.Errorf("RootEntry(machine %q) = %s, %v", id, kv.DisplayKey(k), err)
		}
	}
	if k, err := keyspace.RootEntry("m", strings.Repeat("/x", keyspace.MaxResourceSize)); !errors.Is(err, keyspace.ErrInvalidID) || k != nil {
		t.Errorf("RootEntry(long path) = %s, %v", kv.DisplayKey(k), err)
	}
}
