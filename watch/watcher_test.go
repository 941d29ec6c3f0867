package watch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/project"
)

// script is a sequence of changes, each followed by the events it must
// produce; both modes must produce the same sequence for it.
func script(t *testing.T, h *harness) []Change {
	var all []Change
	step := func(do func(), want ...string) {
		t.Helper()
		do()
		got := h.expect(want...)
		// Within a step, the order of independent paths is not defined.
		slices.SortFunc(got, func(a, b Change) int { return strings.Compare(a.Kind+a.Rel, b.Kind+b.Rel) })
		all = append(all, got...)
	}
	step(func() { h.write("a.txt", "one\n") }, "file.created a.txt")
	step(func() { h.write("a.txt", "one\ntwo\nthree\n") }, "file.modified a.txt")
	step(func() { must(t, os.Rename(h.path("a.txt"), h.path("b.txt"))) }, "file.renamed b.txt")
	// An editor's atomic save: write a temporary file, rename it over.
	step(func() {
		h.write("b.txt.tmp~x", "one\ntwo\n")
		must(t, os.Rename(h.path("b.txt.tmp~x"), h.path("b.txt")))
	}, "file.modified b.txt")
	// mkdir -p with files created at once at every level.
	step(func() {
		must(t, os.MkdirAll(h.path("d1/d2/d3"), 0o755))
		h.write("d1/f1.go", "package d1\n")
		h.write("d1/d2/f2.go", "package d2\n")
		h.write("d1/d2/d3/f3.go", "package d3\n\nvar x = 1\n")
	}, "file.created d1/f1.go", "file.created d1/d2/f2.go", "file.created d1/d2/d3/f3.go")
	// Noise that must not be reported: chmod, touch, ignored paths.
	step(func() {
		must(t, os.Chmod(h.path("b.txt"), 0o600))
		now := time.Now().Add(time.Hour)
		must(t, os.Chtimes(h.path("d1/f1.go"), now, now))
		h.write("node_modules/pkg/index.js", "x")
		h.write("build.log", "ignored by .gitignore")
		h.write("d1/d2/cache.tmp", "ignored by the user")
		h.write("sentinel-1", "s")
	}, "file.created sentinel-1")
	// A directory renamed: each file renamed.
	step(func() { must(t, os.Rename(h.path("d1/d2"), h.path("d1/e2"))) }, "file.renamed d1/e2/f2.go", "file.renamed d1/e2/d3/f3.go")
	step(func() { must(t, os.Remove(h.path("b.txt"))) }, "file.deleted b.txt")
	step(func() { must(t, os.RemoveAll(h.path("d1"))) }, "file.deleted d1/f1.go", "file.deleted d1/e2/f2.go", "file.deleted d1/e2/d3/f3.go")
	return all
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func prepare(t *testing.T) string {
	root := t.TempDir()
	must(t, os.WriteFile(filepath.Join(root, ".gitignore"), []byte("*.log\n"), 0o644))
	return root
}

// TestScriptNotifyAndPoll runs the same script of changes under inotify
// and under polling: the event sequences must be the same.
func TestScriptNotifyAndPoll(t *testing.T) {
	var got [2]string
	for i, mode := range []Mode{ModeNotify, ModePoll} {
		t.Run(string(mode), func(t *testing.T) {
			h := startWatch(t, prepare(t), Config{Mode: mode, PollInterval: 50 * time.Millisecond, Ignore: []string{"*.tmp"}})
			if ws := h.w.Workspaces(); ws[0].Mode != mode {
				t.Fatalf("mode = %s, want %s", ws[0].Mode, mode)
			}
			cs := script(t, h)
			for _, c := range cs {
				if c.Via != mode {
					t.Errorf("%s %s seen via %s", c.Kind, c.Rel, c.Via)
				}
			}
			// Details the sequence check does not show.
			if d := cs[1].LinesDelta; d == nil || *d != 2 || cs[1].Lines != 3 {
				t.Errorf("modify: lines %d delta %v, want 3 and +2", cs[1].Lines, cs[1].LinesDelta)
			}
			if cs[2].From != h.path("a.txt") || cs[2].Hash != attrib.Hash([]byte("one\ntwo\nthree\n")) {
				t.Errorf("rename: from %q hash %s", cs[2].From, cs[2].Hash)
			}
			got[i] = seq(cs)
		})
	}
	if got[0] != "" && got[1] != "" && got[0] != got[1] {
		t.Errorf("polling reported\n%s\ninotify reported\n%s", got[1], got[0])
	}
}

// TestEventsAreStored: the events are in the audit log, attributed, with
// their attributes.
func TestEventsAreStored(t *testing.T) {
	h := startWatch(t, "", Config{})
	h.write("src/main.go", "package main\n\nfunc main() {}\n")
	c := h.expect("file.created src/main.go")[0]
	ev, err := h.sc.Log().Get(context.Background(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Kind != "file.created" || ev.Project != h.project || ev.Path != "src/main.go" || ev.Attrs["abs"] != h.path("src/main.go") ||
		ev.Attrs["root"] != h.root || ev.Attrs["hash"] != c.Hash || ev.Session != "" {
		t.Errorf("stored %+v", ev)
	}
	// The path index finds it by project and relative path.
	page, err := h.sc.Log().Query(context.Background(), audit.Query{Filter: audit.Filter{Project: h.project, Path: "src/main.go"}})
	if err != nil || len(page.Events) != 1 || page.Events[0].ID != c.ID {
		t.Errorf("query by project path: %+v, %v", page.Events, err)
	}
	if ev.Attribution == nil || ev.Attribution.Actor != audit.ActorUnknown || !strings.HasPrefix(ev.Attribution.Evidence, "none") {
		t.Errorf("attribution %+v, want unknown with no evidence", ev.Attribution)
	}
	if lines, _ := ev.Attrs["lines"].(float64); lines != 3 {
		t.Errorf("lines = %v, want 3", ev.Attrs["lines"])
	}
}

// TestCoalescing: a burst on one file is one event; a file created and
// removed inside the window is none.
func TestCoalescing(t *testing.T) {
	h := startWatch(t, "", Config{Window: 100 * time.Millisecond})
	f, err := os.Create(h.path("burst.txt"))
	must(t, err)
	for i := range 200 {
		fmt.Fprintf(f, "line %d\n", i)
	}
	must(t, f.Close())
	c := h.expect("file.created burst.txt")[0]
	if c.Lines != 200 {
		t.Errorf("lines = %d, want 200", c.Lines)
	}
	h.write("flash.txt", "here and gone")
	must(t, os.Remove(h.path("flash.txt")))
	h.sentinel("sentinel")
}

// TestDeepMkdir: files created at once in a deep new tree all appear,
// although the watches on its directories come after them.
func TestDeepMkdir(t *testing.T) {
	h := startWatch(t, "", Config{})
	var want []string
	dir := ""
	for i := range 30 {
		dir = filepath.Join(dir, fmt.Sprintf("l%02d", i))
		must(t, os.MkdirAll(h.path(dir), 0o755))
		for j := range 3 {
			rel := filepath.ToSlash(filepath.Join(dir, fmt.Sprintf("f%d.txt", j)))
			h.write(rel, rel)
			want = append(want, "file.created "+rel)
		}
	}
	h.expect(want...)
	if got := h.w.Stats().Watches; got != 31 {
		t.Errorf("%d watches, want 31", got)
	}
}

// TestSymlinksNotFollowed: a symlink to a directory outside the workspace
// is a file of the workspace, never a way out of it.
func TestSymlinksNotFollowed(t *testing.T) {
	outside := t.TempDir()
	must(t, os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("x"), 0o644))
	h := startWatch(t, "", Config{})
	must(t, os.Symlink(outside, h.path("out")))
	c := h.expect("file.created out")[0]
	if c.Hash != attrib.Hash([]byte(outside)) {
		t.Errorf("a symlink's hash is its target's: %s", c.Hash)
	}
	must(t, os.WriteFile(filepath.Join(outside, "new.txt"), []byte("y"), 0o644))
	h.sentinel("sentinel")
	if w := h.w.Stats().Watches; w != 1 {
		t.Errorf("%d watches, want 1 (the root)", w)
	}
}

// TestWatchLimit: when inotify runs out of watches, the message names
// fs.inotify.max_user_watches and its value, and the subtrees left
// unwatched are polled: their changes are still reported.
func TestWatchLimit(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a", "b/c", "b/d"} {
		must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	added := 0
	h := startWatch(t, root, Config{Mode: ModeNotify, PollInterval: 50 * time.Millisecond,
		addWatch: func(add func(string) error, p string) error {
			if added >= 2 {
				return fmt.Errorf("fsnotify: %w", syscall.ENOSPC)
			}
			added++
			return add(p)
		}})
	logs := h.logs.String()
	limit := inotifyLimit()
	if !strings.Contains(logs, "fs.inotify.max_user_watches = "+limit) || limit == "" {
		t.Errorf("the log does not name the limit and its value (%q):\n%s", limit, logs)
	}
	polled := h.w.Workspaces()[0].Polled
	if len(polled) == 0 {
		t.Fatal("no subtree is polled")
	}
	h.write("b/d/x.txt", "x")
	h.write("b/c/y.txt", "y")
	h.write("a/z.txt", "z")
	cs := h.expect("file.created b/d/x.txt", "file.created b/c/y.txt", "file.created a/z.txt")
	via := map[string]Mode{}
	for _, c := range cs {
		via[c.Rel] = c.Via
	}
	t.Logf("polled %v; seen via %v", polled, via)
	if via["b/d/x.txt"] != ModePoll && via["b/c/y.txt"] != ModePoll && via["a/z.txt"] != ModePoll {
		t.Error("no change was seen by polling")
	}
}

// TestOverflowRescans: after an inotify overflow the watcher rescans and
// reports what it missed.
func TestOverflowRescans(t *testing.T) {
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "blind"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "blind", "old.txt"), []byte("old"), 0o644))
	h := startWatch(t, root, Config{Mode: ModeNotify})
	// Lose the directory's events, as an overflow would.
	must(t, h.w.fsw.Remove(h.path("blind")))
	h.write("blind/missed.txt", "missed")
	must(t, os.Remove(h.path("blind/old.txt")))
	h.sentinel("sentinel-1") // nothing seen
	before := h.w.Stats().Rescans
	h.w.fsw.Errors <- fsnotify.ErrEventOverflow
	h.expect("file.created blind/missed.txt", "file.deleted blind/old.txt")
	if st := h.w.Stats(); st.Overflows != 1 || st.Rescans <= before {
		t.Errorf("stats %+v", st)
	}
}

// TestPendingLimit: more changed paths than MaxPending are dropped and
// found again by a rescan: every one is reported once.
func TestPendingLimit(t *testing.T) {
	h := startWatch(t, "", Config{MaxPending: 50})
	var want []string
	for i := range 400 {
		rel := fmt.Sprintf("d%d/f%03d.txt", i%4, i)
		h.write(rel, rel)
		want = append(want, "file.created "+rel)
	}
	h.expect(want...)
	h.sentinel("sentinel")
	if h.w.Stats().Overflows == 0 {
		t.Error("the pending limit was never reached")
	}
}

// TestGitignoreChange: a .gitignore edit takes effect at once, silently.
func TestGitignoreChange(t *testing.T) {
	h := startWatch(t, "", Config{})
	h.write("gen/a.pb.go", "x")
	h.expect("file.created gen/a.pb.go")
	h.write(".gitignore", "gen/\n")
	h.expect("file.created .gitignore")
	h.write("gen/b.pb.go", "y")
	h.write("gen/a.pb.go", "changed")
	h.sentinel("sentinel-1")
	h.write(".gitignore", "# nothing ignored\n")
	h.expect("file.modified .gitignore")
	h.write("gen/a.pb.go", "changed again")
	h.expect("file.modified gen/a.pb.go")
}

// TestRunErrors: bad configurations fail early.
func TestRunErrors(t *testing.T) {
	s := startWatch(t, "", Config{})
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "inner"), 0o755))
	roots, _, err := Register(context.Background(), s.sc, []string{root}, project.RootOptions{})
	must(t, err)
	r := roots[0]
	for _, cfg := range []Config{
		{},
		{Roots: []Root{{Project: r.Project, Dir: filepath.Join(root, "missing")}}},
		{Roots: []Root{r, {Project: r.Project, Dir: filepath.Join(root, "inner")}}},
		{Roots: []Root{r}, Mode: "sometimes"},
		{Roots: []Root{{Dir: root}}},                                             // no project
		{Roots: []Root{{Project: s.project, Dir: root}}},                         // another project's root
		{Roots: []Root{{Project: r.Project, Dir: filepath.Join(root, "inner")}}}, // not a root
		{Roots: []Root{{Project: r.Project, Dir: t.TempDir()}}},                  // in no project
	} {
		if _, err := New(s.sc, cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	if _, err := New(nil, Config{Roots: []Root{r}}); err == nil {
		t.Error("New without a scope succeeded")
	}
	if errors.Is(nil, os.ErrNotExist) {
		t.Fatal("unreachable")
	}
}

// TestEventsFile: every stored event is a JSON line; the file rotates by
// size, keeping whole lines and Keep old files.
func TestEventsFile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "events.jsonl")
	ef, err := OpenEventsFile(name, 2000, 2)
	must(t, err)
	h := startWatch(t, "", Config{EventsFile: ef, IgnorePaths: []string{name}})
	var want []string
	for i := range 30 {
		rel := fmt.Sprintf("f%02d.txt", i)
		h.write(rel, rel)
		want = append(want, "file.created "+rel)
	}
	h.expect(want...)
	h.stop()
	must(t, ef.Close())
	lines := 0
	for _, n := range []string{name, name + ".1", name + ".2"} {
		b, err := os.ReadFile(n)
		must(t, err)
		if len(b) > 2000 {
			t.Errorf("%s has %d bytes, over the 2000 limit", n, len(b))
		}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if !strings.HasPrefix(l, `{"id":"`) || !strings.HasSuffix(l, "}") {
				t.Errorf("%s: a broken line %q", n, l)
			}
			lines++
		}
	}
	if _, err := os.Stat(name + ".3"); err == nil {
		t.Error("more than 2 old files kept")
	}
	if lines == 0 || lines > 30 {
		t.Errorf("%d lines", lines)
	}
}
