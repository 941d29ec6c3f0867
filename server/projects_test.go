package server_test

import (
	"context"
	"errors"
	"github.com/coditect/coditect/storage/kv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coditect/coditect/server"
	"github.com/coditect/coditect/server/servertest"
	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
)

// TestHTTPMemberConfinedToProjects: a member of tenant A, on a server with
// every toolset, reaches nothing outside A's registered roots on this
// machine: not "/", not B's root, not the store, its WAL or its spool (not
// even inside a root of A's that holds them), not /proc/self/environ,
// neither through absolute paths, ".." nor symbolic links. Every attempt
// is refused with a sentence saying why and audited as forbidden. The
// member cannot start a session in a directory that is not registered
// (the error names A's projects, and only A's), and cannot register one.
func TestHTTPMemberConfinedToProjects(t *testing.T) {
	ctx := context.Background()
	ts := servertest.New(t, server.Options{Toolsets: []string{"all"}}, server.HTTPOptions{})
	secret := ts.Token(t, "tenant-a", "alice", tenant.RoleMember)
	member := ts.Scope(t, secret)
	db := strings.TrimPrefix(ts.StoreURL, "sqlite://")
	storeDir := filepath.Dir(db)

	rootA, rootB := t.TempDir(), t.TempDir()
	ts.Project(t, "tenant-a", "app", rootA)
	ts.Project(t, "tenant-b", "bapp", rootB)
	if err := os.WriteFile(filepath.Join(rootB, "b.txt"), []byte("B's secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Registration refuses a root that holds the store.
	op, err := ts.Dir.Local(ctx, "tenant-a", "operator")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := project.Create(ctx, op, project.Spec{Name: "stash"}); err != nil {
		t.Fatal(err)
	}
	if _, err := project.AddRoot(ctx, op, "stash", storeDir, project.RootOptions{}); !errors.Is(err, tenant.ErrForbidden) {
		t.Fatalf("registering the store's directory: %v, want forbidden", err)
	}
	// The files tools refuse the store's files all the same where such a
	// root exists: one registered through a handle on the store that does
	// not say where its file is (as a store named by URL elsewhere).
	blind, err := tenant.NewDirectory(pathless{ts.Store}, "test").Local(ctx, "tenant-a", "operator")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := project.AddRoot(ctx, blind, "stash", storeDir, project.RootOptions{}); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"b-root": rootB, "b-file": filepath.Join(rootB, "b.txt"), "environ": "/proc/self/environ",
		"db": db, "wal": db + "-wal", "spool": db + "-spool", "up": "..",
	} {
		if err := os.Symlink(target, filepath.Join(rootA, link)); err != nil {
			t.Fatal(err)
		}
	}

	c := connect(t, httpTransport(ts, secret), "member", eraModern)
	m, _ := c.ok("session_start", map[string]any{"title": "confined", "project": "app"})
	sid := m["session_id"].(string)
	if m["project"] != "app" || m["dir"] != "." {
		t.Errorf("session_start = %v", m)
	}
	m, _ = c.ok("session_start", map[string]any{"title": "in the store's directory", "workspace": storeDir})
	stash := m["session_id"].(string)
	// A file of A's root is reachable; a listing of the store's directory
	// shows names only.
	if err := os.WriteFile(filepath.Join(rootA, "ok.txt"), []byte("fine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ok("fs_read", map[string]any{"session_id": sid, "path": "ok.txt"})
	c.ok("fs_list", map[string]any{"session_id": stash})

	type attempt struct {
		tool, session, path, want string
	}
	attempts := []attempt{
		{"fs_read", sid, "/", "absolute path"},
		{"fs_list", sid, "/", "absolute path"},
		{"fs_read", sid, "/proc/self/environ", "absolute path"},
		{"fs_read", sid, filepath.Join(rootB, "b.txt"), "absolute path"},
		{"fs_write", sid, db, "absolute path"},
		{"fs_read", sid, "../" + filepath.Base(rootB) + "/b.txt", "leaves the workspace"},
		{"fs_list", sid, "..", "leaves the workspace"},
		{"fs_write", sid, "../escape.txt", "leaves the workspace"},
		{"fs_read", sid, "b-file", "symbolic link that points outside"},
		{"fs_list", sid, "b-root", "symbolic link that points outside"},
		{"fs_write", sid, "b-root/pwned.txt", "symbolic link that points outside"},
		{"fs_edit", sid, "b-file", "symbolic link that points outside"},
		{"fs_read", sid, "environ", "symbolic link that points outside"},
		{"fs_read", sid, "db", "symbolic link that points outside"},
		{"fs_read", sid, "wal", "symbolic link that points outside"},
		{"fs_list", sid, "spool", "symbolic link that points outside"},
		{"fs_write", sid, "up/escape.txt", "symbolic link that points outside"},
		{"fs_read", stash, "coditect.db", "Coditect's own files"},
		{"fs_read", stash, "coditect.db-wal", "Coditect's own files"},
		{"fs_read", stash, "coditect.db-shm", "Coditect's own files"},
		{"fs_list", stash, "coditect.db-spool", "Coditect's own files"},
		{"fs_write", stash, "coditect.db", "Coditect's own files"},
		{"fs_edit", stash, "coditect.db-wal", "Coditect's own files"},
		{"fs_write", stash, "coditect.db-spool/x", "Coditect's own files"},
	}
	for _, a := range attempts {
		args := map[string]any{"session_id": a.session, "path": a.path}
		switch a.tool {
		case "fs_write":
			args["content"] = "pwned"
		case "fs_edit":
			args["search"], args["replace"] = "a", "b"
		}
		text := c.fail(a.tool, args, a.want)
		if strings.Contains(text, "B's secret") || strings.Contains(text, "PATH=") || strings.Contains(text, "SQLite") {
			t.Errorf("%s %s leaked content: %s", a.tool, a.path, text)
		}
	}

	// Sessions only in registered roots; the error names A's projects.
	unregistered := t.TempDir()
	for _, ws := range []string{"/", rootB, "/proc/self", unregistered} {
		text := c.fail("session_start", map[string]any{"title": "escape", "workspace": ws}, "none of your projects", "app ("+rootA, "stash (")
		if strings.Contains(text, "bapp") || strings.Contains(text, rootB+")") {
			t.Errorf("session_start in %s names B's project: %s", ws, text)
		}
	}
	c.fail("session_start", map[string]any{"title": "B's", "project": "bapp"}, `no project "bapp"`, "app (")
	c.fail("session_start", map[string]any{"title": "outside app", "project": "app", "workspace": unregistered}, "not inside project app")

	// Nor can the member register a root, by any path.
	for name, err := range map[string]error{
		"AddRoot": func() error {
			_, err := project.AddRoot(ctx, member, "app", unregistered, project.RootOptions{})
			return err
		}(),
		"Register": func() error {
			_, err := project.Register(ctx, member, "mine", unregistered, project.RootOptions{})
			return err
		}(),
		"Create": func() error { _, err := project.Create(ctx, member, project.Spec{Name: "mine"}); return err }(),
	} {
		if !errors.Is(err, tenant.ErrForbidden) {
			t.Errorf("a member's %s: %v, want forbidden", name, err)
		}
	}
	if _, err := project.Resolve(ctx, member, unregistered); !errors.Is(err, project.ErrOutside) {
		t.Errorf("the unregistered directory resolves: %v", err)
	}
	if ps, err := project.List(ctx, member); err != nil || len(ps) != 2 {
		t.Errorf("A's projects %+v, %v; want app and stash", ps, err)
	}

	// Nothing changed outside A's files.
	if b, _ := os.ReadFile(filepath.Join(rootB, "b.txt")); string(b) != "B's secret\n" {
		t.Errorf("b.txt = %q", b)
	}
	for _, p := range []string{filepath.Join(rootB, "pwned.txt"), filepath.Join(filepath.Dir(rootA), "escape.txt"), db + "-spool/x"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists: %v", p, err)
		}
	}

	// Every refusal is audited as forbidden, with the reason and the error.
	if err := ts.MCP.Flush(testContext(t)); err != nil {
		t.Fatal(err)
	}
	forbidden := map[string]int{}
	for _, ev := range events(t, member, audit.Filter{Kind: "tool.called"}) {
		if ev.Attrs["outcome"] != "forbidden" {
			continue
		}
		tool := ev.Attrs["tool"].(string)
		forbidden[tool]++
		if ev.Attrs["error"] == nil || (strings.HasPrefix(tool, "fs_") && ev.Attrs["refused"] == nil) {
			t.Errorf("a refusal recorded as %+v", ev.Attrs)
		}
	}
	want := map[string]int{"session_start": 5}
	for _, a := range attempts {
		want[a.tool]++
	}
	for tool, n := range want {
		if forbidden[tool] != n {
			t.Errorf("%d forbidden %s calls audited, want %d (%v)", forbidden[tool], tool, n, forbidden)
		}
	}
}

// TestProtectedPaths: the store's files and its spool are protected,
// whether the server is told the store's URL or only its spool directory
// (which lies beside an embedded store).
func TestProtectedPaths(t *testing.T) {
	db := filepath.Join(t.TempDir(), "my data", "coditect.db")
	u := "sqlite://" + filepath.ToSlash(db)
	spool := storage.SpoolDir(u)
	want := []string{db, db + "-wal", db + "-shm", db + "-journal", db + "-serve.json", spool}
	for _, c := range []struct{ url, spool string }{{u, spool}, {u, ""}, {"", spool}} {
		got := server.ProtectedPaths(c.url, c.spool)
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("ProtectedPaths(%q, %q) = %q, want %s in it", c.url, c.spool, got, w)
			}
		}
	}
	// A spool that is not beside a store protects only itself.
	if got := server.ProtectedPaths("", "/var/spool/x"); !slices.Equal(got, []string{"/var/spool/x"}) {
		t.Errorf("ProtectedPaths of a lone spool = %q", got)
	}
}

// pathless hides where an embedded store's file is.
type pathless struct{ kv.Store }
