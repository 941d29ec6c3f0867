package tools

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/tenant"
)

// workspace is a session over a real directory (the root of its project,
// which the local operator's session_start registered), and a directory
// outside it.
type workspace struct {
	root, outside, sid string
	// pid is the project's id.
	pid string
}

func newWorkspace(t *testing.T, sc *tenant.Scope) workspace {
	t.Helper()
	w := workspace{root: t.TempDir(), outside: t.TempDir()}
	if err := os.WriteFile(filepath.Join(w.outside, "secret.txt"), []byte("outside secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, _ := mustCall(t, sc, "session_start", `{"title":"files","workspace":"`+w.root+`"}`)
	w.sid = m["session_id"].(string)
	w.pid = sessionProject(t, sc, w.sid)
	return w
}

// sessionProject returns the id of a session's project.
func sessionProject(t *testing.T, sc *tenant.Scope, sid string) string {
	t.Helper()
	s, err := session.Get(context.Background(), sc, sid)
	if err != nil || s.Project == "" {
		t.Fatalf("session %s: %+v, %v", sid, s, err)
	}
	return s.Project
}

// key returns the attribution and lease key of a file of the workspace's
// project.
func (w workspace) key(rel string) string { return project.File{Project: w.pid, Rel: rel}.String() }

// args renders a files tool's arguments for the workspace's session.
func (w workspace) args(kv ...any) string {
	m := map[string]any{"session_id": w.sid}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func (w workspace) read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(w.root, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFilesTools(t *testing.T) {
	e := setup(t)
	a := e.alice
	me := a.Principal().Agent
	w := newWorkspace(t, a)

	// A new file in a new directory: the write takes the lease itself.
	m, text := mustCall(t, a, "fs_write", w.args("path", "src/hello.go", "content", "package main\n\nfunc main() {}\n"))
	hash := attrib.Hash([]byte("package main\n\nfunc main() {}\n"))
	if m["created"] != true || m["lease_taken"] != true || m["lease"] != "src/hello.go" || m["hash"] != hash || m["token"].(float64) != 1 ||
		!strings.Contains(text, "lease_release") {
		t.Fatalf("fs_write = %v\n%s", m, text)
	}
	if got := w.read(t, "src/hello.go"); got != "package main\n\nfunc main() {}\n" {
		t.Fatalf("on disk: %q", got)
	}
	// The evidence for the watcher: this agent wrote this content to this
	// file of the project, in this session.
	recs, err := attrib.Get(context.Background(), a, w.key("src/hello.go"))
	if err != nil || len(recs) != 1 || recs[0].Agent != me || recs[0].Hash != hash || recs[0].Model != "m1" || recs[0].Source != attrib.AgentWrite ||
		recs[0].Session != w.sid {
		t.Fatalf("attrib records %+v, %v", recs, err)
	}
	// The call's record carries the file (project and path relative to
	// its root), hash and token; no file.modified (that is the watcher's).
	ev := lastCall(t, a, "fs_write")
	if ev.Project != w.pid || ev.Path != "src/hello.go" || ev.Attrs["hash"] != hash || ev.Attrs["fencing_token"] != float64(1) ||
		ev.Attrs["outcome"] != "ok" || ev.Session != w.sid {
		t.Errorf("tool.called %+v", ev)
	}
	if c := counts(t, a); c["file.modified"]+c["file.created"] != 0 {
		t.Errorf("the tool appended file events: %v", c)
	}
	// No temporary file is left.
	ents, _ := os.ReadDir(filepath.Join(w.root, "src"))
	if len(ents) != 1 {
		t.Errorf("src holds %v", ents)
	}

	// Writing again reuses the lease; the mode is kept.
	if err := os.Chmod(filepath.Join(w.root, "src", "hello.go"), 0o640); err != nil {
		t.Fatal(err)
	}
	m, _ = mustCall(t, a, "fs_write", w.args("path", "./src/hello.go", "content", "package main\n"))
	if m["created"] != false || m["lease_taken"] == true || m["token"].(float64) != 1 {
		t.Errorf("second write = %v", m)
	}
	if fi, _ := os.Stat(filepath.Join(w.root, "src", "hello.go")); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}

	// Read, list, edit.
	m, text = mustCall(t, a, "fs_read", w.args("path", "src/hello.go"))
	if m["content"] != "package main\n" || m["encoding"] != "utf-8" || m["total_lines"].(float64) != 1 || !strings.Contains(text, "package main") {
		t.Errorf("fs_read = %v", m)
	}
	m, text = mustCall(t, a, "fs_list", w.args())
	if m["path"] != "." || len(m["entries"].([]any)) != 1 || !strings.Contains(text, "src/") {
		t.Errorf("fs_list root = %v\n%s", m, text)
	}
	m, _ = mustCall(t, a, "fs_list", w.args("path", "src"))
	if es := m["entries"].([]any); len(es) != 1 || es[0].(map[string]any)["type"] != "file" || es[0].(map[string]any)["size"].(float64) != 13 {
		t.Errorf("fs_list src = %v", m)
	}
	mustCall(t, a, "fs_write", w.args("path", "src/twice.go", "content", "x := 1\nx := 1\ny := 2\n"))
	mustFail(t, a, "fs_edit", w.args("path", "src/twice.go", "search", "x := 1", "replace", "x := 3"), OutcomeInvalid, "occurs 2 times", "exactly once")
	mustFail(t, a, "fs_edit", w.args("path", "src/twice.go", "search", "z := 9", "replace", "z := 3"), OutcomeInvalid, "does not occur", "fs_read")
	m, _ = mustCall(t, a, "fs_edit", w.args("path", "src/twice.go", "search", "y := 2", "replace", "y := 3"))
	if got := w.read(t, "src/twice.go"); got != "x := 1\nx := 1\ny := 3\n" || m["hash"] != attrib.Hash([]byte(got)) {
		t.Errorf("after fs_edit: %q, %v", got, m)
	}

	// Binary content reads as base64, with a note.
	bin := []byte{0xff, 0xfe, 0, 1, 2}
	if err := os.WriteFile(filepath.Join(w.root, "blob.bin"), bin, 0o644); err != nil {
		t.Fatal(err)
	}
	m, text = mustCall(t, a, "fs_read", w.args("path", "blob.bin"))
	if m["encoding"] != "base64" || m["content"] != base64.StdEncoding.EncodeToString(bin) || !strings.Contains(text, "not UTF-8") {
		t.Errorf("binary fs_read = %v\n%s", m, text)
	}
	mustFail(t, a, "fs_edit", w.args("path", "blob.bin", "search", "a", "replace", "b"), OutcomeInvalid, "not UTF-8 text")

	// Directories and missing files.
	mustFail(t, a, "fs_write", w.args("path", "src", "content", "x"), OutcomeInvalid, "is a directory")
	mustFail(t, a, "fs_write", w.args("path", ".", "content", "x"), OutcomeInvalid, "workspace root is a directory")
	mustFail(t, a, "fs_write", w.args("path", "src/hello.go/x", "content", "x"), OutcomeInvalid, "through a file")
	mustFail(t, a, "fs_read", w.args("path", "src"), OutcomeInvalid, "is a directory", "fs_list")
	mustFail(t, a, "fs_read", w.args("path", "nope.go"), OutcomeNotFound, "does not exist")
	mustFail(t, a, "fs_list", w.args("path", "src/hello.go"), OutcomeInvalid, "is not a directory", "fs_read")
	// A loop of links is refused with a reason.
	if err := os.Symlink("loop", filepath.Join(w.root, "loop")); err != nil {
		t.Fatal(err)
	}
	mustFail(t, a, "fs_read", w.args("path", "loop"), OutcomeInvalid, "cannot be resolved")

	// A write through a link inside the workspace writes its target and
	// leases the target's path.
	if err := os.Symlink("twice.go", filepath.Join(w.root, "src", "alias.go")); err != nil {
		t.Fatal(err)
	}
	m, _ = mustCall(t, a, "fs_write", w.args("path", "src/alias.go", "content", "via the link\n"))
	if m["path"] != "src/twice.go" || w.read(t, "src/twice.go") != "via the link\n" {
		t.Errorf("write through an inner link = %v", m)
	}
	if fi, err := os.Lstat(filepath.Join(w.root, "src", "alias.go")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi, err)
	}

	// An ended session's files are read, not written.
	mustCall(t, a, "session_end", `{"session_id":"`+w.sid+`","status":"completed"}`)
	mustFail(t, a, "fs_write", w.args("path", "late.go", "content", "x"), OutcomeConflict, "open session")
	mustCall(t, a, "fs_read", w.args("path", "src/hello.go"))
}

// lastCall returns the newest tool.called event of tool.
func lastCall(t *testing.T, sc *tenant.Scope, tool string) audit.Event {
	t.Helper()
	evs := events(t, sc, audit.Filter{Kind: "tool.called"})
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Attrs["tool"] == tool {
			return evs[i]
		}
	}
	t.Fatalf("no tool.called event for %s", tool)
	return audit.Event{}
}

// TestFilesTraversal: paths that leave the workspace are refused, audited
// with outcome forbidden and the reason, and nothing outside changes.
func TestFilesTraversal(t *testing.T) {
	e := setup(t)
	a := e.alice
	w := newWorkspace(t, a)
	if err := os.Symlink(filepath.Join(w.outside, "secret.txt"), filepath.Join(w.root, "link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(w.outside, filepath.Join(w.root, "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../nowhere", filepath.Join(w.root, "dangling")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..", filepath.Join(w.root, "up")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tool, path, reason string
	}{
		{"fs_read", "../" + filepath.Base(w.outside) + "/secret.txt", "leaves the root (..)"},
		{"fs_read", "src/../../x", "leaves the root (..)"},
		{"fs_read", "..", "leaves the root (..)"},
		{"fs_read", filepath.Join(w.outside, "secret.txt"), "absolute path"},
		{"fs_read", "link.txt", "symbolic link out"},
		{"fs_read", "out/secret.txt", "symbolic link out"},
		{"fs_list", "out", "symbolic link out"},
		{"fs_list", "up", "symbolic link out"},
		{"fs_write", "../escape.txt", "leaves the root (..)"},
		{"fs_write", "/tmp/escape.txt", "absolute path"},
		{"fs_write", "link.txt", "symbolic link out"},
		{"fs_write", "out/new.txt", "symbolic link out"},
		{"fs_write", "out/deeper/new.txt", "symbolic link out"},
		{"fs_write", "up/escape.txt", "symbolic link out"},
		{"fs_write", "dangling", "symbolic link out"},
		{"fs_edit", "link.txt", "symbolic link out"},
	} {
		args := w.args("path", c.path)
		switch c.tool {
		case "fs_write":
			args = w.args("path", c.path, "content", "pwned")
		case "fs_edit":
			args = w.args("path", c.path, "search", "outside", "replace", "pwned")
		}
		text := mustFail(t, a, c.tool, args, OutcomeForbidden)
		if strings.Contains(text, "outside secret") {
			t.Errorf("%s %s leaked the content: %s", c.tool, c.path, text)
		}
		ev := lastCall(t, a, c.tool)
		if ev.Attrs["outcome"] != "forbidden" || ev.Attrs["refused"] != c.reason || ev.Attrs["error"] == nil {
			t.Errorf("%s %s: audited as %+v, want forbidden with reason %q", c.tool, c.path, ev.Attrs, c.reason)
		}
	}
	// Nothing changed outside, and no lease or evidence was taken.
	ents, _ := os.ReadDir(w.outside)
	if len(ents) != 1 {
		t.Errorf("outside holds %v", ents)
	}
	if b, _ := os.ReadFile(filepath.Join(w.outside, "secret.txt")); string(b) != "outside secret\n" {
		t.Errorf("outside secret changed: %q", b)
	}
	if c := counts(t, a); c["lease.acquired"] != 0 {
		t.Errorf("a refused write took a lease: %v", c)
	}
	if recs, _ := attrib.Get(context.Background(), a, filepath.Join(w.outside, "secret.txt")); len(recs) != 0 {
		t.Errorf("evidence recorded outside: %v", recs)
	}
}

// TestFilesLeases: a write presents a current exclusive lease of its
// agent; another agent's lease or a stale token refuses it, naming the
// holder, and writes nothing.
func TestFilesLeases(t *testing.T) {
	e := setup(t)
	a := e.alice
	b := asAgent(t, a, "peer", "")
	bID := b.Principal().Agent
	w := newWorkspace(t, a)
	mustCall(t, a, "fs_write", w.args("path", "a.go", "content", "v1\n"))
	mustCall(t, a, "lease_release", `{"resource":"a.go"}`)

	// B holds the file: A's write is refused with B's name; a.go is unchanged.
	m, _ := mustCall(t, b, "lease_acquire", `{"resource":"a.go"}`)
	bTok := m["token"].(float64)
	mustFail(t, a, "fs_write", w.args("path", "a.go", "content", "A's\n"), OutcomeConflict, bID, "(peer)", "alive", "until")
	mustFail(t, a, "fs_edit", w.args("path", "a.go", "search", "v1", "replace", "A's"), OutcomeConflict, bID)
	// A stale token: A's old token 1 is no current grant.
	text := mustFail(t, a, "fs_write", w.args("path", "a.go", "content", "A's\n", "token", 1), OutcomeConflict,
		"token 1 is not a current lease", bID, "(peer)", fmt.Sprintf("token %d", int(bTok)), "nothing was written")
	_ = text
	if got := w.read(t, "a.go"); got != "v1\n" {
		t.Fatalf("a.go = %q after refused writes", got)
	}
	// B writes with its token, then releases; A's stale token stays refused.
	mustCall(t, b, "fs_write", w.args("path", "a.go", "content", "B's\n", "token", bTok))
	mustCall(t, b, "lease_release", `{"resource":"a.go"}`)
	mustFail(t, a, "fs_write", w.args("path", "a.go", "content", "A's\n", "token", 1), OutcomeConflict, "Nobody holds it now")
	// A holds the file again and sends its old token: it is told its
	// current one, not that someone else holds the file.
	m, _ = mustCall(t, a, "lease_acquire", `{"resource":"a.go"}`)
	mustFail(t, a, "fs_write", w.args("path", "a.go", "content", "A's\n", "token", 1), OutcomeConflict,
		fmt.Sprintf("You hold it with token %d", int(m["token"].(float64))))
	mustCall(t, a, "lease_release", `{"resource":"a.go"}`)
	if got := w.read(t, "a.go"); got != "B's\n" {
		t.Fatalf("a.go = %q", got)
	}
	// Only the successful writes left evidence.
	recs, _ := attrib.Get(context.Background(), a, w.key("a.go"))
	if len(recs) != 2 || recs[0].Agent != bID {
		t.Errorf("evidence %+v", recs)
	}

	// A glob lease covers the files under it; a shared lease does not let
	// its holder write.
	m, _ = mustCall(t, a, "lease_acquire", `{"resource":"pkg/**"}`)
	globTok := m["token"].(float64)
	m, _ = mustCall(t, a, "fs_write", w.args("path", "pkg/x/y.go", "content", "y\n"))
	if m["lease"] != "pkg/**" || m["token"] != globTok || m["lease_taken"] == true {
		t.Errorf("write under a glob lease = %v", m)
	}
	mustCall(t, a, "fs_write", w.args("path", "pkg/z.go", "content", "z\n", "token", globTok))
	mustFail(t, b, "fs_write", w.args("path", "pkg/z.go", "content", "B\n"), OutcomeConflict, `through its lease on "pkg/**"`)
	m, _ = mustCall(t, b, "lease_acquire", `{"resource":"shared.go","mode":"shared"}`)
	mustFail(t, b, "fs_write", w.args("path", "shared.go", "content", "x", "token", m["token"]), OutcomeConflict, "is shared", "exclusive")

	// Another tenant's token sees none of it.
	bob := asAgent(t, e.bob, "bob", "")
	for _, c := range []struct{ tool, args string }{
		{"fs_read", w.args("path", "a.go")},
		{"fs_list", w.args()},
		{"fs_write", w.args("path", "a.go", "content", "bob")},
		{"fs_edit", w.args("path", "a.go", "search", "B", "replace", "bob")},
	} {
		mustFail(t, bob, c.tool, c.args, OutcomeNotFound, "no session")
	}
	if got := w.read(t, "a.go"); got != "B's\n" {
		t.Fatalf("a.go = %q after bob", got)
	}
}

func TestFilesLimits(t *testing.T) {
	e := setup(t)
	a := e.alice
	w := newWorkspace(t, a)
	set := Files(Config{MaxFileRead: 64, MaxFileWrite: 32})
	tool := func(name string) *Tool {
		for _, tl := range set.Tools {
			if tl.Name() == name {
				return tl
			}
		}
		t.Fatalf("no %s", name)
		return nil
	}
	if err := os.WriteFile(filepath.Join(w.root, "big.txt"), []byte(strings.Repeat("b", 65)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tool, args string
		wants      []string
	}{
		{"fs_read", w.args("path", "big.txt"), []string{"65 bytes", "limit is 64 bytes"}},
		{"fs_write", w.args("path", "new.txt", "content", strings.Repeat("n", 33)), []string{`"content" is 33 bytes`, "limit is 32 bytes", "fs_edit"}},
		{"fs_edit", w.args("path", "big.txt", "search", "b", "replace", "c"), []string{"limit is 64 bytes"}},
	} {
		before := counts(t, a)
		_, text, err := callTool(t, a, nil, tool(c.tool), c.args)
		if Classify(err) != OutcomeInvalid {
			t.Errorf("%s: %v (%s)", c.tool, Classify(err), text)
		}
		for _, want := range c.wants {
			if !strings.Contains(text, want) {
				t.Errorf("%s: %q, want %q", c.tool, text, want)
			}
		}
		after := counts(t, a)
		if after["lease.acquired"] != before["lease.acquired"] {
			t.Errorf("%s took a lease", c.tool)
		}
	}
	if _, err := os.Stat(filepath.Join(w.root, "new.txt")); !os.IsNotExist(err) {
		t.Errorf("an oversized write created the file: %v", err)
	}
	// At the limit it works.
	if _, text, err := callTool(t, a, nil, tool("fs_write"), w.args("path", "ok.txt", "content", strings.Repeat("k", 32))); err != nil {
		t.Errorf("a write at the limit: %s", text)
	}
}

// TestFilesBadArguments: wrong arguments write nothing but the call's record.
func TestFilesBadArguments(t *testing.T) {
	e := setup(t)
	a := e.alice
	w := newWorkspace(t, a)
	for _, c := range []struct {
		tool, args string
		wants      []string
	}{
		{"fs_read", `{}`, []string{`"session_id" is required`}},
		{"fs_read", `{"session_id":"` + w.sid + `"}`, []string{`"path" is required`}},
		{"fs_write", w.args("path", "a.go"), []string{`"content" is required`}},
		{"fs_write", w.args("path", `src\a.go`, "content", "x"), []string{"use '/'"}},
		{"fs_write", w.args("path", "a[1].go", "content", "x"), []string{"*, ? or ["}},
		{"fs_write", w.args("path", "a.go", "content", "x", "token", -4), []string{"positive token"}},
		{"fs_edit", w.args("path", "a.go", "replace", "x"), []string{`"search" is required`}},
		{"fs_edit", w.args("path", "a.go", "search", "x", "replace", "x"), []string{"nothing would change"}},
		{"fs_list", w.args("path", 7), []string{`"path" must be a string`}},
	} {
		before := counts(t, a)
		_, text, err := call(t, a, c.tool, c.args)
		if err == nil || Classify(err) != OutcomeInvalid {
			t.Errorf("%s %s: %v %s", c.tool, c.args, Classify(err), text)
			continue
		}
		for _, want := range c.wants {
			if !strings.Contains(text, want) {
				t.Errorf("%s %s: %q, want %q", c.tool, c.args, text, want)
			}
		}
		after := counts(t, a)
		for k, n := range after {
			if want := before[k] + map[bool]int{true: 1}[k == "tool.called"]; n != want {
				t.Errorf("%s %s: %s events %d -> %d", c.tool, c.args, k, before[k], n)
			}
		}
	}
	if ents, _ := os.ReadDir(w.root); len(ents) != 0 {
		t.Errorf("the workspace holds %v", ents)
	}
}

// TestOneWriteWins: agents writing one file at once without a lease: one
// takes the lease and writes, the others are refused with its name, and
// the file holds the winner's content.
func TestOneWriteWins(t *testing.T) {
	e := setup(t)
	w := newWorkspace(t, e.alice)
	const n = 5
	type res struct {
		who, text string
		err       error
	}
	results := make(chan res, n)
	for i := range n {
		name := fmt.Sprintf("writer-%d", i)
		sc := asAgent(t, e.alice, name, "")
		go func() {
			_, text, err := call(t, sc, "fs_write", w.args("path", "contended.txt", "content", "written by "+name+"\n"))
			results <- res{name, text, err}
		}()
	}
	var winner string
	var losers []string
	for range n {
		r := <-results
		if r.err == nil {
			if winner != "" {
				t.Fatalf("two writes won: %s and %s", winner, r.who)
			}
			winner = r.who
			continue
		}
		if Classify(r.err) != OutcomeConflict {
			t.Errorf("%s: %s", r.who, r.text)
		}
		losers = append(losers, r.text)
	}
	if winner == "" {
		t.Fatal("no write won")
	}
	for _, l := range losers {
		if !strings.Contains(l, "("+winner+")") {
			t.Errorf("a loser's error %q does not name %s", l, winner)
		}
	}
	if got := w.read(t, "contended.txt"); got != "written by "+winner+"\n" {
		t.Errorf("the file holds %q, want %s's content", got, winner)
	}
}

// TestWorkspaceThroughLink: a session whose workspace path goes through a
// symbolic link works on the real directory, and the evidence is keyed by
// the real path (the one the watcher sees).
func TestWorkspaceThroughLink(t *testing.T) {
	e := setup(t)
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "ws")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	m, _ := mustCall(t, e.alice, "session_start", `{"title":"linked","workspace":"`+link+`"}`)
	w := workspace{root: link, sid: m["session_id"].(string)}
	w.pid = sessionProject(t, e.alice, w.sid)
	mustCall(t, e.alice, "fs_write", w.args("path", "a.txt", "content", "hi\n"))
	recs, err := attrib.Get(context.Background(), e.alice, w.key("a.txt"))
	if err != nil || len(recs) != 1 {
		t.Errorf("evidence under %s: %v %v", w.key("a.txt"), recs, err)
	}
	if ev := lastCall(t, e.alice, "fs_write"); ev.Path != "a.txt" || ev.Project != w.pid {
		t.Errorf("tool.called file %s %q, want %s a.txt", ev.Project, ev.Path, w.pid)
	}
	realRoot, _ := filepath.EvalSymlinks(real)
	if p, err := project.Get(context.Background(), e.alice, w.pid); err != nil || len(p.Roots) != 1 || p.Roots[0].Path != realRoot {
		t.Errorf("project %+v, %v: want its root at the real directory %s", p, err, realRoot)
	}
}

// TestWriteRefusesUnsavedEdits: while an editor holds unsaved human edits
// of a file (the IDE protocol's mark), fs_write and fs_edit refuse to
// replace it, say why, and leave the disk alone; once the mark is cleared
// (the human saved), the write goes through.
func TestWriteRefusesUnsavedEdits(t *testing.T) {
	e := setup(t)
	w := newWorkspace(t, e.alice)
	mustCall(t, e.alice, "fs_write", w.args("path", "a.txt", "content", "v1\n"))
	human, err := e.dir.Local(context.Background(), "t1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	abs := w.key("a.txt")
	mark := func(on bool) {
		t.Helper()
		_, err := human.Store().Update(context.Background(), func(tx kv.Tx) error {
			if on {
				return attrib.MarkEditing(tx, human, abs, attrib.Editing{Editor: "ide-1", Client: "Neovim"}, 0)
			}
			return attrib.ClearEditing(tx, human, abs, "ide-1")
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	mark(true)
	mustFail(t, e.alice, "fs_write", w.args("path", "a.txt", "content", "agent\n"), OutcomeConflict,
		"a.txt has unsaved edits by a human", "alice in Neovim", "wait until they save")
	mustFail(t, e.alice, "fs_edit", w.args("path", "a.txt", "search", "v1", "replace", "agent"), OutcomeConflict, "unsaved edits")
	if got := w.read(t, "a.txt"); got != "v1\n" {
		t.Fatalf("refused write changed the file: %q", got)
	}
	if ev := lastCall(t, e.alice, "fs_write"); ev.Attrs["outcome"] != string(OutcomeConflict) || ev.Attrs["unsaved_edits"] != float64(1) {
		t.Errorf("refused fs_write recorded as %+v", ev.Attrs)
	}
	mark(false)
	mustCall(t, e.alice, "fs_write", w.args("path", "a.txt", "content", "agent\n"))
	if got := w.read(t, "a.txt"); got != "agent\n" {
		t.Fatalf("after the save: %q", got)
	}
}
