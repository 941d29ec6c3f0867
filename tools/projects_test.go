package tools

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
)

// startIn starts a session of sc in workspace ws and returns its id.
func startIn(t *testing.T, sc *tenant.Scope, ws string) string {
	t.Helper()
	m, _ := mustCall(t, sc, "session_start", `{"title":"work","workspace":"`+ws+`"}`)
	return m["session_id"].(string)
}

// TestLeaseAcrossRoots: a lease on a file of a project is enforced against
// every writer of that file, whichever way its session reaches the
// project: at the root, at a subdirectory, through a symbolic-link alias
// of the root, or in a second checkout of the project on this machine. The
// same relative path in another project is another file: leases on one
// never block the other. Errors show paths relative to the project root
// and the project's name, never the project key.
func TestLeaseAcrossRoots(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	x := e.alice
	xID := x.Principal().Agent
	y := asAgent(t, e.alice, "other", "")

	root, pid := newProject(t, x, "web")
	checkout2 := t.TempDir()
	if _, err := project.AddRoot(ctx, x, "web", checkout2, project.RootOptions{}); err != nil {
		t.Fatal(err)
	}
	// The second checkout is a clone: it has the file too.
	for _, dir := range []string{root, checkout2} {
		if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(checkout2, "sub", "a.go"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	alias := filepath.Join(t.TempDir(), "web-alias")
	if err := os.Symlink(root, alias); err != nil {
		t.Fatal(err)
	}
	otherRoot, qid := newProject(t, x, "api")

	// x holds sub/a.go of web and writes it from the root.
	xs := startIn(t, x, root)
	m, _ := mustCall(t, x, "lease_acquire", `{"resource":"sub/a.go","project":"web"}`)
	if m["resource"] != "sub/a.go" || m["project"] != "web" {
		t.Errorf("lease_acquire = %v", m)
	}
	mustCall(t, x, "fs_write", `{"session_id":"`+xs+`","path":"sub/a.go","content":"x\n"}`)

	for _, c := range []struct{ name, ws, path string }{
		{"the root", root, "sub/a.go"},
		{"a subdirectory", filepath.Join(root, "sub"), "a.go"},
		{"an alias of the root", alias, "sub/a.go"},
		{"an alias of the subdirectory", filepath.Join(alias, "sub"), "a.go"},
		{"a second checkout", checkout2, "sub/a.go"},
	} {
		ys := startIn(t, y, c.ws)
		if got := sessionProject(t, y, ys); got != pid {
			t.Fatalf("%s: session in project %s, want web (%s)", c.name, got, pid)
		}
		text := mustFail(t, y, "fs_write", `{"session_id":"`+ys+`","path":"`+c.path+`","content":"y\n"}`, OutcomeConflict,
			`"sub/a.go" in project web is taken`, xID, "(tester)")
		if strings.Contains(text, "@"+pid) || strings.Contains(text, "pr_") {
			t.Errorf("%s: the error shows the project key: %s", c.name, text)
		}
		mustFail(t, y, "fs_edit", `{"session_id":"`+ys+`","path":"`+c.path+`","search":"x","replace":"y"}`, OutcomeConflict, xID)
		// y may lease it neither by path from its session.
		mustFail(t, y, "lease_acquire", `{"resource":"sub/a.go","session_id":"`+ys+`"}`, OutcomeConflict, xID)
	}
	for _, dir := range []string{root, checkout2} {
		if b, _ := os.ReadFile(filepath.Join(dir, "sub", "a.go")); string(b) != "x\n" {
			t.Errorf("%s/sub/a.go = %q after refused writes", dir, b)
		}
	}

	// A glob lease of x covers the files under it, from any root.
	mustCall(t, x, "lease_acquire", `{"resource":"sub/**","session_id":"`+xs+`"}`)
	ys := startIn(t, y, filepath.Join(alias, "sub"))
	mustFail(t, y, "fs_write", `{"session_id":"`+ys+`","path":"new.go","content":"y\n"}`, OutcomeConflict,
		`through its lease on "sub/**" in project web`)

	// The same relative path in api is another file: y writes it, and
	// takes its lease, while x holds web's.
	qs := startIn(t, y, otherRoot)
	m, _ = mustCall(t, y, "fs_write", `{"session_id":"`+qs+`","path":"sub/a.go","content":"api\n"}`)
	if m["lease"] != "sub/a.go" || m["project"] != "api" || m["lease_taken"] != true {
		t.Errorf("fs_write in api = %v", m)
	}
	recs, err := attrib.Get(ctx, y, project.File{Project: qid, Rel: "sub/a.go"}.String())
	if err != nil || len(recs) != 1 || recs[0].Session != qs || recs[0].Agent != y.Principal().Agent {
		t.Errorf("api's evidence %+v, %v", recs, err)
	}
	// ... and x's own lease in web still lets x write web's file.
	mustCall(t, x, "fs_write", `{"session_id":"`+xs+`","path":"sub/a.go","content":"x2\n"}`)
	mustCall(t, y, "lease_release", `{"resource":"sub/a.go","session_id":"`+qs+`"}`)
	mustCall(t, x, "lease_release", `{"resource":"sub/a.go","project":"`+pid+`"}`)

	// Sessions are listed by project.
	if m, _ := mustCall(t, x, "session_list", `{"project":"api"}`); len(m["sessions"].([]any)) != 1 || m["sessions"].([]any)[0].(map[string]any)["session_id"] != qs {
		t.Errorf("session_list of api = %v", m)
	}
	if m, _ := mustCall(t, x, "session_list", `{"project":"web","state":"open"}`); len(m["sessions"].([]any)) != 7 {
		t.Errorf("session_list of web = %d sessions, want 7", len(m["sessions"].([]any)))
	}

	// With two projects, a path resource needs to say which.
	mustFail(t, x, "lease_acquire", `{"resource":"sub/b.go"}`, OutcomeInvalid, `"session_id"`, `"project"`, "api (", "web (")
	mustFail(t, x, "lease_acquire", `{"resource":"sub/b.go","session_id":"`+xs+`","project":"api"}`, OutcomeInvalid, "works in project web")
	// The log finds a file's calls by project and relative path, and shows
	// lease events without the project key.
	m, text := mustCall(t, x, "audit_query", `{"project":"web","path":"sub/a.go","kind":"tool.called","limit":50}`)
	writes := 0
	for _, ev := range m["events"].([]any) {
		ev := ev.(map[string]any)
		if ev["project"] != "web" || ev["path"] != "sub/a.go" {
			t.Errorf("audit_query by file returned %v", ev)
		}
		if ev["attrs"].(map[string]any)["tool"] == "fs_write" && ev["attrs"].(map[string]any)["outcome"] == "ok" {
			writes++
		}
	}
	if writes != 2 {
		t.Errorf("%d successful writes of web's sub/a.go found, want 2:\n%s", writes, text)
	}
	m, text = mustCall(t, x, "audit_query", `{"kind":"lease.acquired"}`)
	if len(m["events"].([]any)) == 0 || strings.Contains(text, "@pr_") || !strings.Contains(text, "project=web") {
		t.Errorf("lease events as a model reads them:\n%s", text)
	}

	// Keys belong to no project.
	if m, _ := mustCall(t, x, "lease_acquire", `{"resource":"task:tk_1"}`); m["resource"] != "task:tk_1" || m["project"] != nil {
		t.Errorf("a key's lease = %v", m)
	}
}

// TestSessionWithoutProject: a session recorded before projects existed
// (a store written by an older release) reaches no files: the files tools
// tell the agent to start a new session in a project.
func TestSessionWithoutProject(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	w := newWorkspace(t, e.alice)
	if err := os.WriteFile(filepath.Join(w.root, "a.txt"), []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	key, err := e.alice.Space().Session(w.sid)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.alice.Store().Update(ctx, func(tx kv.Tx) error {
		b, err := tx.Get(key)
		if err != nil {
			return err
		}
		var rec map[string]any
		if err := json.Unmarshal(b, &rec); err != nil {
			return err
		}
		delete(rec, "project")
		delete(rec, "dir")
		b, _ = json.Marshal(rec)
		tx.Set(key, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ tool, args string }{
		{"fs_read", w.args("path", "a.txt")},
		{"fs_list", w.args()},
		{"fs_write", w.args("path", "a.txt", "content", "b\n")},
		{"lease_acquire", `{"resource":"a.txt","session_id":"` + w.sid + `"}`},
	} {
		mustFail(t, e.alice, c.tool, c.args, OutcomeNotFound, "belongs to no project", "start a new session in a project with session_start")
	}
	if b, _ := os.ReadFile(filepath.Join(w.root, "a.txt")); string(b) != "a\n" {
		t.Errorf("a.txt = %q", b)
	}
}

// TestFilesProtected: the files tools refuse Coditect's own files inside a
// project root, however the path reaches them (directly, inside a
// protected directory, through a symbolic link inside the root), also when
// the protected path was configured through a symbolic link.
func TestFilesProtected(t *testing.T) {
	e := setup(t)
	a := e.alice
	w := newWorkspace(t, a)
	link := filepath.Join(t.TempDir(), "ws")
	if err := os.Symlink(w.root, link); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(w.root, "data", "store.db-spool"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"data/store.db", "data/store.db-spool/1.spool", "data/ok.txt"} {
		if err := os.WriteFile(filepath.Join(w.root, f), []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("data/store.db", filepath.Join(w.root, "db-link")); err != nil {
		t.Fatal(err)
	}
	set := Files(Config{Protected: []string{filepath.Join(link, "data", "store.db"), filepath.Join(w.root, "data", "store.db-wal"),
		filepath.Join(w.root, "data", "store.db-spool")}})
	tool := func(name string) *Tool {
		for _, tl := range set.Tools {
			if tl.Name() == name {
				return tl
			}
		}
		t.Fatalf("no %s", name)
		return nil
	}
	for _, c := range []struct{ tool, args string }{
		{"fs_read", w.args("path", "data/store.db")},
		{"fs_read", w.args("path", "db-link")},
		{"fs_read", w.args("path", "data/store.db-wal")},
		{"fs_list", w.args("path", "data/store.db-spool")},
		{"fs_read", w.args("path", "data/store.db-spool/1.spool")},
		{"fs_write", w.args("path", "data/store.db", "content", "pwned")},
		{"fs_write", w.args("path", "data/store.db-wal", "content", "pwned")},
		{"fs_write", w.args("path", "data/store.db-spool/2.spool", "content", "pwned")},
		{"fs_edit", w.args("path", "db-link", "search", "x", "replace", "y")},
	} {
		_, text, err := callTool(t, a, nil, tool(c.tool), c.args)
		if Classify(err) != OutcomeForbidden || !strings.Contains(text, "Coditect's own files") {
			t.Errorf("%s %s: %v %q, want forbidden", c.tool, c.args, Classify(err), text)
			continue
		}
		if ev := lastCall(t, a, c.tool); ev.Attrs["outcome"] != "forbidden" || ev.Attrs["refused"] != "protected path" {
			t.Errorf("%s %s: audited as %v", c.tool, c.args, ev.Attrs)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(w.root, "data", "store.db")); string(b) != "x\n" {
		t.Errorf("store.db = %q", b)
	}
	for _, p := range []string{"data/store.db-wal", "data/store.db-spool/2.spool"} {
		if _, err := os.Stat(filepath.Join(w.root, p)); !os.IsNotExist(err) {
			t.Errorf("%s was created: %v", p, err)
		}
	}
	// The rest of the directory is the project's as usual.
	if _, text, err := callTool(t, a, nil, tool("fs_read"), w.args("path", "data/ok.txt")); err != nil {
		t.Errorf("fs_read data/ok.txt: %s", text)
	}
	if m, text, err := callTool(t, a, nil, tool("fs_list"), w.args("path", "data")); err != nil || len(m["entries"].([]any)) != 3 {
		t.Errorf("fs_list data: %v %s", m, text)
	}
}

// TestUnknownProjectNamed: every tool that takes a project names the
// project it could not find and the ones the caller may use, whichever
// path resolves it (a session's start, a task listing, a lease).
func TestUnknownProjectNamed(t *testing.T) {
	e := setup(t)
	newProject(t, e.alice, "web")
	for _, c := range []struct{ tool, args string }{
		{"session_start", `{"title":"x","project":"ghost"}`},
		{"task_list", `{"project":"ghost"}`},
		{"lease_acquire", `{"resource":"a.go","project":"ghost"}`},
	} {
		mustFail(t, e.alice, c.tool, c.args, OutcomeNotFound, `no project "ghost"`, "web")
	}
}
