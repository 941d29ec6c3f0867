package project_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/project"
)

// TestListTxSeesOtherHandle checks ListTx against List on one store while
// a second handle on the same file (as another process has) creates,
// registers and removes projects: each read lists exactly the tenant's
// projects as of that read, by name, with their roots, and none of another
// tenant's.
func TestListTxSeesOtherHandle(t *testing.T) {
	ctx := context.Background()
	s1, path := agenttest.Open(t)
	s2, err := agenttest.OpenPath(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	here := agenttest.Scope(t, s1, "acme", "ada")
	there := agenttest.Scope(t, s2, "acme", "ada")
	other := agenttest.Scope(t, s2, "globex", "gus")

	listTx := func() []project.Project {
		t.Helper()
		var ps []project.Project
		if err := s1.View(ctx, func(tx kv.ReadTx) error {
			var err error
			ps, err = project.ListTx(tx, here)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		want, err := project.List(ctx, here)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ps, want) {
			t.Errorf("ListTx = %+v, List = %+v", ps, want)
		}
		return ps
	}
	names := func(ps []project.Project) []string {
		out := []string{}
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}

	if ps := listTx(); len(ps) != 0 {
		t.Fatalf("fresh tenant lists %v", names(ps))
	}
	root := dir(t, "web")
	web, err := project.Create(ctx, there, project.Spec{Name: "webapp"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := project.AddRoot(ctx, there, "webapp", root, project.RootOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := project.Create(ctx, other, project.Spec{Name: "alpha"}); err != nil {
		t.Fatal(err)
	}
	ps := listTx()
	if len(ps) != 1 || ps[0].ID != web.ID || ps[0].Name != "webapp" {
		t.Fatalf("after another handle created webapp: %+v", ps)
	}
	if got := ps[0].RootsOn(project.Machine()); len(got) != 1 || got[0] != root {
		t.Errorf("webapp's roots here = %v, want [%s]", got, root)
	}

	if _, err := project.Create(ctx, there, project.Spec{Name: "api"}); err != nil {
		t.Fatal(err)
	}
	if got := names(listTx()); !reflect.DeepEqual(got, []string{"api", "webapp"}) {
		t.Errorf("after api was created: %v, want [api webapp]", got)
	}
	if _, err := project.Remove(ctx, there, "webapp"); err != nil {
		t.Fatal(err)
	}
	if got := names(listTx()); !reflect.DeepEqual(got, []string{"api"}) {
		t.Errorf("after webapp was removed: %v, want [api]", got)
	}
}
