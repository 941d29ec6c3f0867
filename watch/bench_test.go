package watch

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Every benchmark has a .../raw sub-benchmark (bare fsnotify or a plain
// filepath.WalkDir) measured in the same run as .../coditect, so that
// docs/BENCHMARKS.md can quote the ratio.

// treeSize is the initial-scan tree: 100,000 files in 5,000 directories
// (10,000 in 500 under -short).
func treeSize() (files, dirs int) {
	if testing.Short() {
		return 10_000, 500
	}
	return 100_000, 5_000
}

// makeTree writes files small files spread over dirs directories, two
// levels deep.
func makeTree(b *testing.B, files, dirs int) string {
	b.Helper()
	root := b.TempDir()
	for d := range dirs {
		must(b, os.MkdirAll(filepath.Join(root, fmt.Sprintf("p%02d", d%50), fmt.Sprintf("d%04d", d)), 0o755))
	}
	for i := range files {
		d := i % dirs
		p := filepath.Join(root, fmt.Sprintf("p%02d", d%50), fmt.Sprintf("d%04d", d), fmt.Sprintf("f%06d.go", i))
		must(b, os.WriteFile(p, fmt.Appendf(nil, "package p\n\n// file %d\nvar X%d = %d\n", i, i, i), 0o644))
	}
	return root
}

// peakRSS resets the process's peak resident set (Linux clear_refs) and
// returns a function that reads it, in MB.
func peakRSS() func() float64 {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	return func() float64 {
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			return 0
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				return kb / 1024
			}
		}
		return 0
	}
}

func BenchmarkInitialScan(b *testing.B) {
	files, dirs := treeSize()
	root := makeTree(b, files, dirs)
	b.Run("raw", func(b *testing.B) {
		rss := peakRSS()
		for b.Loop() {
			n := 0
			must(b, filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if !d.IsDir() {
					if _, err := d.Info(); err != nil {
						return err
					}
					n++
				}
				return nil
			}))
			if n != files {
				b.Fatalf("walked %d files, want %d", n, files)
			}
		}
		b.ReportMetric(rss(), "peak-rss-MB")
	})
	b.Run("coditect", func(b *testing.B) {
		rss := peakRSS()
		for b.Loop() {
			h := startWatch(b, root, Config{})
			if got := h.w.Stats().Files; got != int64(files) {
				b.Fatalf("%d files known, want %d", got, files)
			}
			h.stop()
		}
		b.ReportMetric(rss(), "peak-rss-MB")
	})
}

// latencies reports the median and 99th percentile of ds in ms.
func latencies(b *testing.B, ds []time.Duration) {
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(ds[len(ds)*99/100])/1e6, "p99-ms")
}

func latencySamples() int {
	if testing.Short() {
		return 100
	}
	return 300
}

// BenchmarkLatency: from a file write to the event in hand (raw) or
// stored in the audit log (coditect), with the default 50 ms window.
func BenchmarkLatency(b *testing.B) {
	n := latencySamples()
	b.Run("raw", func(b *testing.B) {
		root := b.TempDir()
		fw, err := fsnotify.NewWatcher()
		must(b, err)
		defer fw.Close()
		must(b, fw.Add(root))
		var ds []time.Duration
		for b.Loop() {
			for i := range n {
				name := filepath.Join(root, fmt.Sprintf("f%d-%d", len(ds), i))
				t0 := time.Now()
				must(b, os.WriteFile(name, []byte("x\n"), 0o644))
				for ev := range fw.Events {
					if ev.Name == name {
						break
					}
				}
				ds = append(ds, time.Since(t0))
			}
		}
		latencies(b, ds)
	})
	b.Run("coditect", func(b *testing.B) {
		h := startWatch(b, "", Config{})
		var ds []time.Duration
		for b.Loop() {
			for i := range n {
				rel := fmt.Sprintf("f%d-%d", len(ds), i)
				t0 := time.Now()
				h.write(rel, "x\n")
				for c := h.next(); c.Rel != rel; c = h.next() {
				}
				ds = append(ds, time.Since(t0))
			}
		}
		latencies(b, ds)
	})
}

// BenchmarkSustained: events per second without loss, writing files as
// fast as one goroutine can.
func BenchmarkSustained(b *testing.B) {
	n := 20_000
	if testing.Short() {
		n = 2_000
	}
	write := func(b *testing.B, root string, round int) {
		for i := range n {
			must(b, os.WriteFile(filepath.Join(root, fmt.Sprintf("r%d-%d", round, i)), []byte("x\n"), 0o644))
		}
	}
	b.Run("raw", func(b *testing.B) {
		root := b.TempDir()
		fw, err := fsnotify.NewBufferedWatcher(1 << 16)
		must(b, err)
		defer fw.Close()
		must(b, fw.Add(root))
		round := 0
		var total time.Duration
		for b.Loop() {
			round++
			t0 := time.Now()
			done := make(chan int)
			go func() {
				seen := map[string]bool{}
				for ev := range fw.Events {
					if ev.Has(fsnotify.Create) {
						seen[ev.Name] = true
						if len(seen) == n {
							break
						}
					}
				}
				done <- len(seen)
			}()
			write(b, root, round)
			if got := <-done; got != n {
				b.Fatalf("%d creations seen, want %d", got, n)
			}
			total += time.Since(t0)
		}
		b.ReportMetric(float64(n*round)/total.Seconds(), "events/s")
	})
	b.Run("coditect", func(b *testing.B) {
		h := startWatch(b, "", Config{})
		round := 0
		var total time.Duration
		for b.Loop() {
			round++
			t0 := time.Now()
			write(b, h.root, round)
			for seen := 0; seen < n; {
				if c := h.next(); c.Kind == "file.created" {
					seen++
				}
			}
			total += time.Since(t0)
		}
		b.ReportMetric(float64(n*round)/total.Seconds(), "events/s")
	})
}

// BenchmarkPollPass: one polling pass over the tree when nothing changed.
func BenchmarkPollPass(b *testing.B) {
	files, dirs := treeSize()
	root := makeTree(b, files, dirs)
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			must(b, filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					_, err = os.Lstat(p)
				}
				return err
			}))
		}
	})
	b.Run("coditect", func(b *testing.B) {
		h := startWatch(b, root, Config{Mode: ModePoll, PollInterval: time.Hour})
		h.stop() // the state stays: drive the pass from here
		w := h.w
		sp := w.spaces[0]
		for b.Loop() {
			w.walk(sp, "", scanCompare, time.Now())
		}
		if len(w.pending) != 0 {
			b.Fatalf("a pass over an unchanged tree marked %d paths", len(w.pending))
		}
	})
}
