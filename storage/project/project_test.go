package project_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
)

// dir makes a real directory tree under a temporary root and returns its
// canonical path (t.TempDir may itself lie under a symbolic link).
func dir(t *testing.T, parts ...string) string {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(append([]string{base}, parts...)...)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCreateAddResolve(t *testing.T) {
	ctx := context.Background()
	s, _ := agenttest.Open(t)
	admin := agenttest.Scope(t, s, "acme", "ada")
	root := dir(t, "app")
	if err := os.MkdirAll(filepath.Join(root, "src", "pkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := project.Create(ctx, admin, project.Spec{Name: "webapp", Remote: "git@example.com:acme/webapp.git"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.ID, "pr_") || p.Name != "webapp" {
		t.Fatalf("project = %+v", p)
	}
	if _, err := project.Create(ctx, admin, project.Spec{Name: "webapp"}); !errors.Is(err, project.ErrExists) {
		t.Errorf("second create: %v, want ErrExists", err)
	}
	p, err = project.AddRoot(ctx, admin, "webapp", root, project.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.RootsOn(project.Machine()); len(got) != 1 || got[0] != root {
		t.Fatalf("roots here = %v, want [%s]", got, root)
	}
	// Adding the same root again is a no-op.
	if p2, err := project.AddRoot(ctx, admin, p.ID, root+"/", project.RootOptions{}); err != nil || len(p2.Roots) != 1 {
		t.Errorf("re-adding the root: %v, %d roots", err, len(p2.Roots))
	}

	// One file, one key: the root, a subdirectory with "..", and a
	// symbolic link to the root all resolve to the same project path.
	link := filepath.Join(dir(t), "alias")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	for _, spelling := range []string{
		filepath.Join(root, "src/pkg/a.go"),
		filepath.Join(root, "src/../src/pkg/a.go"),
		filepath.Join(link, "src/pkg/a.go"),
		"file://" + filepath.Join(root, "src/pkg/a.go"),
	} {
		pl, err := project.Resolve(ctx, admin, spelling)
		if err != nil {
			t.Fatalf("resolve %s: %v", spelling, err)
		}
		if pl.Project.ID != p.ID || pl.Rel != "src/pkg/a.go" || pl.Root != root {
			t.Errorf("resolve %s = %+v, want %s src/pkg/a.go", spelling, pl, p.ID)
		}
		if got, want := pl.File().String(), "@"+p.ID+"/src/pkg/a.go"; got != want {
			t.Errorf("file key = %q, want %q", got, want)
		}
	}
	if pl, err := project.Resolve(ctx, admin, root); err != nil || pl.Rel != "." {
		t.Errorf("resolve the root: %+v, %v", pl, err)
	}
	// Outside every root: ErrOutside naming the tenant's projects.
	_, err = project.Resolve(ctx, admin, dir(t, "elsewhere"))
	if !errors.Is(err, project.ErrOutside) || !strings.Contains(err.Error(), "webapp") {
		t.Errorf("outside: %v, want ErrOutside naming webapp", err)
	}

	// Each mutation left its event, filed under the project.
	page, err := admin.Log().Query(ctx, audit.Query{Filter: audit.Filter{Project: p.ID}})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range page.Events {
		kinds = append(kinds, ev.Kind)
	}
	if strings.Join(kinds, ",") != "project.created,project.root_added" {
		t.Errorf("events = %v", kinds)
	}

	// Remove drops the roots: the path is outside again.
	if _, err := project.Remove(ctx, admin, "webapp"); err != nil {
		t.Fatal(err)
	}
	if _, err := project.Resolve(ctx, admin, root); !errors.Is(err, project.ErrOutside) {
		t.Errorf("after remove: %v, want ErrOutside", err)
	}
	if _, err := project.Get(ctx, admin, p.ID); !errors.Is(err, project.ErrNotFound) {
		t.Errorf("get after remove: %v", err)
	}
}

func TestRootsNeverOverlap(t *testing.T) {
	ctx := context.Background()
	s, _ := agenttest.Open(t)
	a := agenttest.Scope(t, s, "acme", "ada")
	b := agenttest.Scope(t, s, "zeta", "zed")
	base := dir(t, "src")
	for _, d := range []string{"one/inner", "two", "three"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := project.Register(ctx, a, "one", filepath.Join(base, "one"), project.RootOptions{}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		sc   *tenant.Scope
		dir  string
		want string
	}{
		{"inside a root of the same tenant", a, filepath.Join(base, "one/inner"), "root of project"},
		{"around a root of the same tenant", a, base, "root of project"},
		{"inside another tenant's root", b, filepath.Join(base, "one/inner"), "another tenant"},
		{"around another tenant's root", b, base, "another tenant"},
	}
	for _, c := range cases {
		_, err := project.Register(ctx, c.sc, "x", c.dir, project.RootOptions{})
		if c.sc == a && c.dir == filepath.Join(base, "one/inner") {
			// A directory inside a root of the caller's tenant is found,
			// not registered again.
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if !errors.Is(err, project.ErrOverlap) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrOverlap saying %q", c.name, err, c.want)
		}
		if _, err := project.Create(ctx, c.sc, project.Spec{Name: "y-" + c.sc.Tenant()}); err != nil && !errors.Is(err, project.ErrExists) {
			t.Fatal(err)
		}
		if _, err := project.AddRoot(ctx, c.sc, "y-"+c.sc.Tenant(), c.dir, project.RootOptions{}); !errors.Is(err, project.ErrOverlap) {
			t.Errorf("%s via AddRoot: %v, want ErrOverlap", c.name, err)
		}
	}
	// Another tenant's error never names the project that holds the root.
	_, err := project.AddRoot(ctx, b, "y-zeta", filepath.Join(base, "one"), project.RootOptions{})
	if err == nil || strings.Contains(err.Error(), "pr_") || strings.Contains(err.Error(), "acme") {
		t.Errorf("overlap with acme's root told zeta: %v", err)
	}
	// B sees A's root as outside its projects, exactly as an unregistered
	// directory.
	_, errA := project.Resolve(ctx, b, filepath.Join(base, "one/inner/f.go"))
	_, errNone := project.Resolve(ctx, b, filepath.Join(base, "two/f.go"))
	if !errors.Is(errA, project.ErrOutside) || !errors.Is(errNone, project.ErrOutside) {
		t.Fatalf("zeta resolving acme's file: %v; an unregistered one: %v", errA, errNone)
	}
	if strings.ReplaceAll(errA.Error(), "one/inner", "two") != errNone.Error() {
		t.Errorf("the errors differ beyond the path:\n%s\n%s", errA, errNone)
	}
	// Siblings do not overlap.
	if _, err := project.Register(ctx, b, "two", filepath.Join(base, "two"), project.RootOptions{}); err != nil {
		t.Errorf("a sibling root: %v", err)
	}
}

func TestForbiddenRoots(t *testing.T) {
	ctx := context.Background()
	s, storePath := agenttest.Open(t)
	admin := agenttest.Scope(t, s, "acme", "ada")
	if _, err := project.Create(ctx, admin, project.Spec{Name: "p"}); err != nil {
		t.Fatal(err)
	}
	storeDir := filepath.Dir(storePath)
	for _, d := range []string{"/", "/proc", "/proc/self", "/sys", "/dev", storeDir, filepath.Dir(storeDir)} {
		_, err := project.AddRoot(ctx, admin, "p", d, project.RootOptions{})
		if !errors.Is(err, tenant.ErrForbidden) {
			t.Errorf("root %s: %v, want forbidden", d, err)
		}
	}
	// Other protected paths are the caller's to name (a FoundationDB
	// store's spool lies elsewhere).
	spool := dir(t, "state", "spool")
	if _, err := project.AddRoot(ctx, admin, "p", filepath.Dir(spool), project.RootOptions{Protected: []string{spool}}); !errors.Is(err, tenant.ErrForbidden) {
		t.Errorf("a root holding the spool: %v, want forbidden", err)
	}
	// The local operator's session does not register the store's
	// directory either.
	if _, err := project.Register(ctx, admin, "", storeDir, project.RootOptions{}); !errors.Is(err, tenant.ErrForbidden) {
		t.Errorf("registering the store's directory: %v, want forbidden", err)
	}
	for _, d := range []string{"relative/dir", "", filepath.Join(dir(t), "missing")} {
		if _, err := project.AddRoot(ctx, admin, "p", d, project.RootOptions{}); !errors.Is(err, project.ErrInvalid) {
			t.Errorf("root %q: %v, want invalid", d, err)
		}
	}
	f := filepath.Join(dir(t), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := project.AddRoot(ctx, admin, "p", f, project.RootOptions{}); !errors.Is(err, project.ErrInvalid) {
		t.Errorf("a file as root: %v, want invalid", err)
	}
	for _, name := range []string{"", " x", "a/b", "a\nb", strings.Repeat("n", project.MaxName+1)} {
		if _, err := project.Create(ctx, admin, project.Spec{Name: name}); !errors.Is(err, project.ErrInvalid) {
			t.Errorf("name %q: %v, want invalid", name, err)
		}
	}
}

func TestWhoMayRegister(t *testing.T) {
	ctx := context.Background()
	s, _ := agenttest.Open(t)
	local := agenttest.Scope(t, s, "acme", "ada") // the trusted local operator
	root := dir(t, "app")
	if _, err := project.Register(ctx, local, "", root, project.RootOptions{}); err != nil {
		t.Fatalf("the local operator registers: %v", err)
	}
	admin := agenttest.RoleScope(t, s, "acme", "boss", tenant.RoleAdmin)
	member := agenttest.RoleScope(t, s, "acme", "mo", tenant.RoleMember)
	viewer := agenttest.RoleScope(t, s, "acme", "vi", tenant.RoleViewer)
	other := dir(t, "other")
	for _, sc := range []*tenant.Scope{member, viewer} {
		if _, err := project.Register(ctx, sc, "", other, project.RootOptions{}); !errors.Is(err, tenant.ErrForbidden) {
			t.Errorf("%s registers: %v, want forbidden", sc.Principal().Role, err)
		}
		if _, err := project.Create(ctx, sc, project.Spec{Name: "z"}); !errors.Is(err, tenant.ErrForbidden) {
			t.Errorf("%s creates: %v, want forbidden", sc.Principal().Role, err)
		}
		if _, err := project.Remove(ctx, sc, "app"); !errors.Is(err, tenant.ErrForbidden) {
			t.Errorf("%s removes: %v, want forbidden", sc.Principal().Role, err)
		}
		// Using a registered root needs no permission beyond reading.
		if pl, err := project.Resolve(ctx, sc, filepath.Join(root, "a.go")); err != nil || pl.Project.Name != "app" {
			t.Errorf("%s resolves: %+v, %v", sc.Principal().Role, pl, err)
		}
	}
	if _, err := project.Register(ctx, admin, "other", other, project.RootOptions{}); err != nil {
		t.Errorf("an admin registers: %v", err)
	}
	ps, err := project.List(ctx, member)
	if err != nil || len(ps) != 2 || ps[0].Name != "app" || ps[1].Name != "other" {
		t.Errorf("list = %+v, %v", ps, err)
	}
	// Another tenant lists none of them.
	if ps, err := project.List(ctx, agenttest.Scope(t, s, "zeta", "zed")); err != nil || len(ps) != 0 {
		t.Errorf("zeta lists %+v, %v", ps, err)
	}
}

func TestSecondCheckout(t *testing.T) {
	ctx := context.Background()
	s, _ := agenttest.Open(t)
	admin := agenttest.Scope(t, s, "acme", "ada")
	one, two := dir(t, "laptop-a", "app"), dir(t, "laptop-b", "app")
	if _, err := project.Register(ctx, admin, "app", one, project.RootOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := project.AddRoot(ctx, admin, "app", two, project.RootOptions{}); err != nil {
		t.Fatal(err)
	}
	// Another machine's root is recorded without touching the disk.
	p, err := project.AddRoot(ctx, admin, "app", "/home/bob/src/app", project.RootOptions{Machine: "bobs-laptop"})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.RootsOn("bobs-laptop"); len(got) != 1 || got[0] != "/home/bob/src/app" {
		t.Errorf("bob's roots = %v", got)
	}
	a, errA := project.Resolve(ctx, admin, filepath.Join(one, "src/x.go"))
	b, errB := project.Resolve(ctx, admin, filepath.Join(two, "src/x.go"))
	if errA != nil || errB != nil || a.File() != b.File() {
		t.Errorf("two checkouts: %+v (%v) and %+v (%v), want one key", a.File(), errA, b.File(), errB)
	}
	if _, err := project.RemoveRoot(ctx, admin, "app", "", two); err != nil {
		t.Fatal(err)
	}
	if _, err := project.Resolve(ctx, admin, filepath.Join(two, "src/x.go")); !errors.Is(err, project.ErrOutside) {
		t.Errorf("after removing the root: %v", err)
	}
}

func TestParseFile(t *testing.T) {
	id := "pr_01JZ3K5V8Q2W7X9Y4N6M1P0R3T"
	for _, f := range []project.File{{Project: id, Rel: "src/a.go"}, {Project: id, Rel: "."}, {Project: id, Rel: "src/**/*.go"}} {
		got, ok := project.ParseFile(f.String())
		if !ok || got != f {
			t.Errorf("ParseFile(%q) = %+v, %v", f.String(), got, ok)
		}
	}
	for _, s := range []string{"src/a.go", "task:tk_1", "@x/a.go", "@" + id + "/../a.go", "@" + id + "/a//b"} {
		if f, ok := project.ParseFile(s); ok {
			t.Errorf("ParseFile(%q) = %+v, want not a project file", s, f)
		}
	}
}
