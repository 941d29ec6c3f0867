package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/coditect/coditect/server"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/session"
)

// canonical returns a temporary directory's canonical path (TMPDIR may be
// a symbolic link).
func canonical(t *testing.T, dir string) string {
	t.Helper()
	c, err := project.Canonical(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestProjectCLI(t *testing.T) {
	c := newCLI(t)
	c.env = append(c.env, "CODITECT_MACHINE=laptop")
	base := canonical(t, t.TempDir())
	web := filepath.Join(base, "web")
	web2 := canonical(t, t.TempDir())
	if err := os.MkdirAll(filepath.Join(web, "src", "auth"), 0o755); err != nil {
		t.Fatal(err)
	}

	// The local operator registers a project; adding the same root again
	// changes nothing; a second checkout is a second root.
	out := c.ok("project", "add", "web", web, "--remote", "git@example.com:acme/web.git")
	for _, want := range []string{`(?m)^name:\s+web$`, `(?m)^remote:\s+git@example.com:acme/web.git$`, `(?m)^roots:\s+1$`,
		`(?m)^laptop \(this machine\)\s+` + regexp.QuoteMeta(web) + `\s+\S+\s+` + regexp.QuoteMeta(server.OSUser()) + `$`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Fatalf("project add lacks %s:\n%s", want, out)
		}
	}
	if p := decode[project.Project](t, c.ok("project", "add", "web", web, "--json")); len(p.Roots) != 1 {
		t.Fatalf("adding a root twice: %+v", p)
	}
	// A relative DIR is relative to the current directory.
	rel, err := filepath.Rel(mustGetwd(t), web2)
	if err != nil {
		t.Fatal(err)
	}
	p := decode[project.Project](t, c.ok("project", "add", "web", rel, "--json"))
	if len(p.Roots) != 2 || p.Roots[1].Path != web2 || p.Roots[1].Machine != "laptop" || !strings.HasPrefix(p.ID, "pr_") {
		t.Fatalf("a second root: %+v", p)
	}
	id := p.ID
	// A root on another machine need not exist here.
	c.ok("project", "add", "web", "/home/bob/src/web", "--machine", "bobs-laptop")

	// Refusals, none of which leaves a project behind.
	storeDir := filepath.Dir(c.store)
	for _, tc := range []struct{ want, name, dir string }{
		{"overlaps", "nested", filepath.Join(web, "src")},
		{"overlaps", "outer", base},
		{"store or spool", "store", storeDir},
		{"whole file system", "root", "/"},
		{"cannot lie inside /proc", "proc", "/proc/self"},
		{"existing directory", "missing", filepath.Join(web2, "nope", "..", "..", "gone")},
		{"'/'", "a/b", web2},
	} {
		c.fail(tc.want, "project", "add", tc.name, tc.dir)
	}
	c.fail("exists with remote", "project", "add", "web", web, "--remote", "elsewhere")

	rows := aligned(t, c.ok("project", "list"), 1)
	if f := strings.Fields(rows[0]); f[0] != "web" || f[1] != id || f[2] != "git@example.com:acme/web.git" ||
		!strings.HasSuffix(rows[0], web+", "+web2+" (+1 on other machines)") {
		t.Fatalf("project list row: %q", rows[0])
	}
	if ps := decode[[]project.Project](t, c.ok("project", "list", "--json")); len(ps) != 1 || ps[0].ID != id || len(ps[0].Roots) != 3 {
		t.Fatalf("project list --json: %+v", ps)
	}
	for _, ref := range []string{"web", id} {
		out := c.ok("project", "show", ref)
		if !strings.Contains(out, "bobs-laptop") || !strings.Contains(out, web2) || !regexp.MustCompile(`(?m)^id:\s+`+id+`$`).MatchString(out) {
			t.Fatalf("project show %s:\n%s", ref, out)
		}
	}
	c.fail("not found", "project", "show", "nope")

	// Sessions and the log, by project.
	sid := strings.TrimSpace(c.ok("session", "start", "--title", "in a subdirectory", "--workspace", filepath.Join(web, "src", "auth")))
	byName := decode[session.Page](t, c.ok("session", "list", "--project", "web", "--json"))
	if len(byName.Sessions) != 1 || byName.Sessions[0].ID != sid || byName.Sessions[0].Project != id || byName.Sessions[0].Dir != "src/auth" {
		t.Fatalf("sessions of web: %+v", byName)
	}
	if rows := aligned(t, c.ok("session", "list", "--project", id), 1); strings.Fields(rows[0])[4] != "web/src/auth" {
		t.Fatalf("session list shows the project as %q", rows[0])
	}
	psid := strings.TrimSpace(c.ok("session", "start", "--title", "by project", "--project", "web"))
	if s := decode[session.Report](t, c.ok("session", "show", psid, "--json")).Session; s.Project != id || s.Dir != "." || s.Workspace != web {
		t.Fatalf("a session started by project name: %+v", s)
	}
	c.fail("not found", "session", "list", "--project", "nope")
	q := decode[struct {
		Events []audit.Event `json:"events"`
	}](t, c.ok("log", "query", "--project", "web", "--kind", "project.root_added", "--json"))
	if len(q.Events) != 3 {
		t.Fatalf("root_added events of web: %+v", q.Events)
	}
	if out := c.ok("log", "tail", "--project", id, "--kind", "session.started", "-n", "1"); !strings.Contains(out, "project=web ") || !strings.Contains(out, "session="+psid) {
		t.Fatalf("log tail names the project as: %q", out)
	}

	// Members and viewers use projects; only admins register them.
	c.ok("user", "create", "bob")
	secret, _, code := run(t, c.bin, c.env, "token", "create", "--user", "bob", "--role", "member")
	if code != 0 {
		t.Fatalf("token create: exit %d", code)
	}
	member := c.withToken(strings.TrimSpace(secret))
	if ps := decode[[]project.Project](t, member.ok("project", "list", "--json")); len(ps) != 1 || ps[0].ID != id {
		t.Fatalf("the member's projects: %+v", ps)
	}
	member.fail("only an admin registers projects", "project", "add", "mine", canonical(t, t.TempDir()))
	member.fail("only an admin registers projects", "project", "remove", "web")
	member.fail("is in no project", "session", "start", "--title", "t", "--workspace", canonical(t, t.TempDir()))
	member.ok("session", "start", "--title", "a member in web", "--workspace", web2)

	// Another tenant sees nothing of it and cannot register inside it.
	c.ok("tenant", "create", "globex")
	if ps := decode[[]project.Project](t, c.ok("project", "list", "--tenant", "globex", "--json")); len(ps) != 0 {
		t.Fatalf("globex lists %+v", ps)
	}
	c.fail("not found", "project", "show", id, "--tenant", "globex")
	c.fail("not found", "project", "remove", "web", "--tenant", "globex")
	_, errOut, _ := run(t, c.bin, c.env, "project", "add", "theirs", filepath.Join(web, "src"), "--tenant", "globex")
	if !strings.Contains(errOut, "another tenant") || strings.Contains(errOut, id) || strings.Contains(errOut, "web ") {
		t.Fatalf("globex registering inside acme's root: %q", errOut)
	}

	// Removing a root, then the project.
	if p := decode[project.Project](t, c.ok("project", "remove", "web", "--root", web2, "--json")); len(p.Roots) != 2 {
		t.Fatalf("after removing a root: %+v", p)
	}
	c.fail("has no root", "project", "remove", "web", "--root", web2)
	if out := c.ok("project", "remove", id); out != "project web ("+id+") removed with its 2 roots\n" {
		t.Fatalf("project remove: %q", out)
	}
	c.fail("not found", "project", "show", "web")
	// Its root is free again.
	c.ok("project", "add", "again", web)
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return canonical(t, wd)
}
