package watch

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
)

// harness runs a Watcher on real directories and lets a test wait for the
// events it stores.
type harness struct {
	t       testing.TB
	root    string
	project string // the id of the project whose root root is
	sc      *tenant.Scope
	w       *Watcher
	ch      chan Change
	cancel  context.CancelFunc
	done    chan error
	logs    *syncBuffer
	all     []Change
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// timeout is how long a test waits for an event.
const timeout = 10 * time.Second

// startWatch starts a watcher on root (a new temporary directory when
// empty) with cfg and waits until it is ready.
func startWatch(t testing.TB, root string, cfg Config) *harness {
	t.Helper()
	if root == "" {
		root = t.TempDir()
	}
	s, _ := agenttest.Open(t)
	sc := agenttest.Scope(t, s, "acme", "ada")
	return startWatchScope(t, sc, root, cfg)
}

// startWatchScope starts a watcher for sc on root, registered as a
// project's root, or on cfg.Roots when set (root is then the one path
// and key name files in).
func startWatchScope(t testing.TB, sc *tenant.Scope, root string, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, root: root, sc: sc, ch: make(chan Change, 1<<16), done: make(chan error, 1), logs: &syncBuffer{}}
	if len(cfg.Roots) == 0 {
		roots, _, err := Register(context.Background(), sc, []string{root}, project.RootOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Roots = roots
	}
	h.project = cfg.Roots[0].Project
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	user := cfg.OnStored
	cfg.OnStored = func(cs []Change) {
		if user != nil {
			user(cs)
		}
		for _, c := range cs {
			h.ch <- c
		}
	}
	w, err := New(sc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.w = w
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- w.Run(ctx) }()
	select {
	case <-w.Ready():
	case err := <-h.done:
		t.Fatalf("Run: %v", err)
	case <-time.After(timeout):
		t.Fatal("the watcher was not ready in time")
	}
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(timeout):
		h.t.Error("the watcher did not stop")
	}
}

func (h *harness) path(rel string) string { return filepath.Join(h.root, filepath.FromSlash(rel)) }

// key is the file's key (project.File): what evidence and leases name.
func (h *harness) key(rel string) string { return project.File{Project: h.project, Rel: rel}.String() }

func (h *harness) write(rel, content string) {
	h.t.Helper()
	p := h.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// next returns the next stored change.
func (h *harness) next() Change {
	h.t.Helper()
	select {
	case c := <-h.ch:
		h.all = append(h.all, c)
		return c
	case err := <-h.done:
		h.t.Fatalf("Run ended: %v\n%s", err, h.logs.String())
	case <-time.After(timeout):
		h.t.Fatalf("no event within %s; log:\n%s", timeout, h.logs.String())
	}
	return Change{}
}

// expect waits for the given events (kind and rel, any order) and fails
// on any other event before them.
func (h *harness) expect(want ...string) []Change {
	h.t.Helper()
	left := map[string]int{}
	for _, wnt := range want {
		left[wnt]++
	}
	var got []Change
	for len(got) < len(want) {
		c := h.next()
		key := c.Kind + " " + c.Rel
		if left[key] == 0 {
			h.t.Fatalf("unexpected event %s (from %q) while waiting for %v", key, c.From, want)
		}
		left[key]--
		got = append(got, c)
	}
	return got
}

// sentinel writes a fresh file and waits for its event, failing on any
// event before it: proof that the changes made before were (rightly)
// not reported, without sleeping.
func (h *harness) sentinel(name string) {
	h.t.Helper()
	h.write(name, "sentinel "+name+"\n")
	h.expect("file.created " + name)
}

// seq renders changes for comparing sequences.
func seq(cs []Change) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "%s %s", c.Kind, c.Rel)
		if c.From != "" {
			fmt.Fprintf(&b, " from %s", relOf(c.Root, c.From))
		}
		fmt.Fprintf(&b, " size=%d lines=%d", c.Size, c.Lines)
		if c.LinesDelta != nil {
			fmt.Fprintf(&b, " delta=%+d", *c.LinesDelta)
		}
		b.WriteString("\n")
	}
	return b.String()
}
