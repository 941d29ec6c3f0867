package watch

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/attrib"
)

// TestFlood makes 50,000 changes (5,000 under -short) as fast as the disk
// allows: creations, several rewrites of each file, renames and deletions.
// When the watcher has caught up, replaying its stored events must give
// exactly the files on disk with their content, and the heap must have
// stayed bounded.
func TestFlood(t *testing.T) {
	changes := 50_000
	if testing.Short() {
		changes = 5_000
	}
	files := changes / 5 // each file: created, rewritten 3 times, then renamed or deleted
	root := t.TempDir()

	var mu sync.Mutex
	state := map[string]string{} // replayed: path -> hash
	var stored atomic.Int64
	h := startWatch(t, root, Config{BatchSize: 1024, OnStored: func(cs []Change) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range cs {
			switch c.Kind {
			case "file.created", "file.modified":
				state[c.Path] = c.Hash
			case "file.renamed":
				delete(state, c.From)
				state[c.Path] = c.Hash
			case "file.deleted":
				delete(state, c.Path)
			}
		}
		stored.Add(int64(len(cs)))
	}})
	// The heap, sampled while the flood runs (a measurement, not a wait).
	var peak atomic.Uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()

	start := time.Now()
	dirs := 50
	for d := range dirs {
		must(t, os.MkdirAll(filepath.Join(root, fmt.Sprintf("d%02d", d)), 0o755))
	}
	name := func(i int) string {
		return filepath.Join(root, fmt.Sprintf("d%02d", i%dirs), fmt.Sprintf("f%06d.txt", i))
	}
	made := 0
	for i := range files {
		must(t, os.WriteFile(name(i), fmt.Appendf(nil, "v0 %d\n", i), 0o644))
		made++
	}
	for round := 1; round <= 3; round++ {
		for i := range files {
			must(t, os.WriteFile(name(i), fmt.Appendf(nil, "v%d %d\nline\n", round, i), 0o644))
			made++
		}
	}
	for i := range files {
		if i%2 == 0 {
			must(t, os.Rename(name(i), name(i)+".moved"))
		} else {
			must(t, os.Remove(name(i)))
		}
		made++
	}
	wrote := time.Since(start)

	// What is on disk now.
	want := map[string]string{}
	must(t, filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		want[p] = attrib.HashPrefix + fmt.Sprintf("%x", sum)
		return nil
	}))

	// Wait, with a deadline, until replaying the stored events gives the
	// disk's state: checked whenever the event stream pauses.
	diff := func(report bool) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for p, hash := range want {
			if state[p] != hash {
				if report && n < 5 {
					t.Errorf("%s: replayed %q, on disk %q", p, state[p], hash)
				}
				n++
			}
		}
		for p := range state {
			if _, ok := want[p]; !ok {
				if report && n < 10 {
					t.Errorf("%s: replayed, but not on disk", p)
				}
				n++
			}
		}
		return n
	}
	deadline := time.After(120 * time.Second)
	for diff(false) > 0 {
		select {
		case <-h.ch:
			for len(h.ch) > 0 {
				<-h.ch
			}
		case err := <-h.done:
			t.Fatalf("Run ended: %v", err)
		case <-deadline:
			t.Fatalf("not caught up after 120 s: %d paths differ, %d events stored; %+v", diff(true), stored.Load(), h.w.Stats())
		}
	}
	caught := time.Since(start)
	close(stopSampling)
	<-sampled

	st := h.w.Stats()
	t.Logf("%d changes written in %v; all stored after %v: %d events in %d transactions, %d raw notifications, %d overflows, %d rescans; peak heap %.1f MB",
		made, wrote.Round(time.Millisecond), caught.Round(time.Millisecond), st.Events, st.Batches, st.Raw, st.Overflows, st.Rescans, float64(peak.Load())/(1<<20))
	if limit := uint64(256 << 20); peak.Load() > limit {
		t.Errorf("peak heap %d MB exceeds %d MB", peak.Load()>>20, limit>>20)
	}
	if st.Batches >= st.Events {
		t.Errorf("%d transactions for %d events: not batched", st.Batches, st.Events)
	}
}
