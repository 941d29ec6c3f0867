package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/coditect/coditect/watch"
)

// watchRoot is the root command, which registers `watch`.
func watchRoot() *cobra.Command { return newRootCommand() }

// TestWatchCommand runs `coditect watch DIR --format json --events-file F`
// on a real directory and a real store, makes changes, reads the printed
// events, stops it with its context, and checks the events file and the
// audit log (through `coditect log`). DIR becomes a project (the local
// operator registers it); every event names it, with paths relative to
// its root. A directory holding the store cannot be watched.
func TestWatchCommand(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ws := filepath.Join(dir, "ws")
	if err := os.MkdirAll(filepath.Join(ws, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "coditect.db")
	// The store inside the directory: refused, naming why.
	var refused strings.Builder
	bad := watchRoot()
	bad.SetArgs([]string{"--store", store, "watch", dir, "--format", "none"})
	bad.SetOut(&refused)
	bad.SetErr(&refused)
	if err := bad.Execute(); err == nil || !strings.Contains(err.Error(), "store") {
		t.Fatalf("watching the store's directory: %v\n%s", err, refused.String())
	}
	// The events file inside the workspace: never reported. A directory
	// inside the project watches the project's root.
	events := filepath.Join(ws, "events.jsonl")
	pr, pw := io.Pipe()
	root := watchRoot()
	root.SetArgs([]string{"--store", store, "watch", ws, filepath.Join(ws, "sub"), "--format", "json", "--events-file", events, "--window", "20ms", "--log-level", "warn"})
	root.SetOut(pw)
	var stderr strings.Builder
	root.SetErr(&stderr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx); pw.Close() }()

	lines := make(chan watch.Change, 16)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var c watch.Change
			if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
				t.Errorf("not a JSON event line: %q", sc.Text())
				continue
			}
			lines <- c
		}
		close(lines)
	}()
	next := func() watch.Change {
		t.Helper()
		select {
		case c, ok := <-lines:
			if !ok {
				t.Fatalf("the command ended: %v\n%s", <-done, stderr.String())
			}
			return c
		case <-time.After(10 * time.Second):
			t.Fatalf("no event printed within 10 s\n%s", stderr.String())
		}
		return watch.Change{}
	}
	// The watcher is ready once it reports a change made after it started;
	// retry the first write until it is seen.
	first := filepath.Join(ws, "hello.txt")
	var c watch.Change
	for attempt := 0; ; attempt++ {
		if err := os.WriteFile(first, []byte("hello "+strings.Repeat("!", attempt)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		select {
		case c = <-lines:
		case <-time.After(time.Second):
			if attempt < 10 {
				continue
			}
			t.Fatalf("the watcher never reported a change\n%s", stderr.String())
		}
		break
	}
	if c.Rel != "hello.txt" || c.ID == "" || c.Attribution.Actor != "unknown" || !strings.HasPrefix(c.Project, "pr_") || c.Root != ws {
		t.Errorf("first event %+v", c)
	}
	if err := os.Rename(first, filepath.Join(ws, "bye.txt")); err != nil {
		t.Fatal(err)
	}
	for c = next(); c.Kind != "file.renamed"; c = next() {
		if c.Rel != "hello.txt" {
			t.Errorf("unexpected %s %s", c.Kind, c.Rel)
		}
	}
	if c.Rel != "bye.txt" {
		t.Errorf("renamed %+v", c)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("watch: %v\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"kind":"file.renamed"`) {
		t.Errorf("events file:\n%s", b)
	}
	if strings.Contains(string(b), "coditect.db") || strings.Contains(string(b), "events.jsonl") {
		t.Errorf("the store or the events file was reported:\n%s", b)
	}
	// The audit log has them.
	var out strings.Builder
	log := newRootCommand()
	log.SetArgs([]string{"--store", store, "log", "query", "--kind", "file.renamed", "--json"})
	log.SetOut(&out)
	log.SetErr(&out)
	if err := log.Execute(); err != nil {
		t.Logf("coditect log query: %v (%s)", err, out.String())
	} else {
		var res struct {
			Events []struct{ Project, Path string } `json:"events"`
		}
		if err := json.Unmarshal([]byte(out.String()), &res); err != nil || len(res.Events) != 1 ||
			res.Events[0].Path != "bye.txt" || res.Events[0].Project != c.Project {
			t.Errorf("the audit log lacks the rename of bye.txt in project %s (%v):\n%s", c.Project, err, out.String())
		}
	}
}
