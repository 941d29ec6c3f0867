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
// audit log (through `coditect log`).
func TestWatchCommand(t *testing.T) {
	dir := t.TempDir()
	ws := filepath.Join(dir, "ws")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	// The store and the events file inside the workspace: never reported.
	store := filepath.Join(ws, "coditect.db")
	events := filepath.Join(ws, "events.jsonl")
	pr, pw := io.Pipe()
	root := watchRoot()
	root.SetArgs([]string{"--store", store, "watch", ws, "--format", "json", "--events-file", events, "--window", "20ms", "--log-level", "warn"})
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
	if c.Rel != "hello.txt" || c.ID == "" || c.Attribution.Actor != "unknown" {
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
	} else if !strings.Contains(out.String(), "bye.txt") {
		t.Errorf("the audit log lacks the rename:\n%s", out.String())
	}
}

func TestStoreFiles(t *testing.T) {
	for _, u := range []string{"sqlite:///x/c.db", "/x/c.db", "file:///x/c.db"} {
		got := storeFiles(u)
		if len(got) != 4 || got[0] != "/x/c.db" || got[1] != "/x/c.db-wal" {
			t.Errorf("storeFiles(%q) = %v", u, got)
		}
	}
	if got := storeFiles("fdb:///etc/foundationdb/fdb.cluster"); got != nil {
		t.Errorf("fdb store files: %v", got)
	}
}
