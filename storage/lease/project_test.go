package lease_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/lease"
)

// The events of a lease on a project's file name the project and the
// path relative to its root, as the watcher's events of the file do.
func TestProjectFileEvents(t *testing.T) {
	f := setup(t)
	const pid = "pr_01JZ3K5V8Q2W7X9Y4N6M1P0R3T"
	res := keyspace.ProjectPath(pid, "src/a.go")
	l, err := lease.Acquire(f.ctx, f.a, lease.Request{Resource: res})
	if err != nil {
		t.Fatal(err)
	}
	if err := lease.Release(f.ctx, f.a, res, l.Token); err != nil {
		t.Fatal(err)
	}
	page, err := f.admin.Log().Query(f.ctx, audit.Query{Filter: audit.Filter{Project: pid, Path: "src/a.go"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range page.Events {
		got = append(got, ev.Kind)
		if ev.Project != pid || ev.Path != "src/a.go" || strings.Contains(ev.Summary, "@pr_") {
			t.Errorf("%s: project %q path %q summary %q", ev.Kind, ev.Project, ev.Path, ev.Summary)
		}
	}
	if !slices.Equal(got, []string{"lease.acquired", "lease.released"}) {
		t.Errorf("events = %v", got)
	}
	// The same relative path of no project is another path.
	if k := kinds(t, f.admin, "src/a.go"); len(k) != 0 {
		t.Errorf("events of the bare path: %v", k)
	}
}
