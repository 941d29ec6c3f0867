package tools

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/kv/kvtest"
)

// searchProject returns a generated project of n Go files (about 150
// lines, 5 KB each, in 10×10 directories, plus an ignored build/ folder),
// committed to git's index, built once and kept in the temporary
// directory for later runs. Every file defines handlers; one file in 100
// holds the identifier rareNeedle.
func searchProject(b *testing.B, n int) string {
	b.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		b.Skip("git is not installed: the baseline is git grep (apt-get install git)")
	}
	return kvtest.CachedStore(b, fmt.Sprintf("coditect-search-bench-%d-v1", n), func(tmp string) {
		os.RemoveAll(tmp)
		for i := range n {
			dir := filepath.Join(tmp, fmt.Sprintf("pkg%02d", i%10), fmt.Sprintf("sub%02d", i/10%10))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("file%05d.go", i)), searchFile(i), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		build := filepath.Join(tmp, "build")
		if err := os.MkdirAll(build, 0o755); err != nil {
			b.Fatal(err)
		}
		for i := range 100 {
			if err := os.WriteFile(filepath.Join(build, fmt.Sprintf("gen%03d.go", i)), searchFile(i), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(tmp, ".gitignore"), []byte("/build/\n*.tmp\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}} {
			cmd := exec.Command(git, append([]string{"-C", tmp}, args...)...)
			cmd.Env = searchGitEnv(b)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("git %v: %v %s", args, err, out)
			}
		}
	})
}

// rareNeedle occurs in one file in 100.
const rareNeedle = "reconcileLedgerBatch"

// searchFile is file i of the generated project: Go-like code.
func searchFile(i int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "package pkg%02d\n\nimport (\n\t\"context\"\n\t\"net/http\"\n)\n\n", i%10)
	for f := range 12 {
		fmt.Fprintf(&b, "// Handler%d_%d serves requests of kind %d for tenant %d.\n", i, f, f, i*7%13)
		fmt.Fprintf(&b, "func Handler%d_%d(ctx context.Context, w http.ResponseWriter, r *http.Request) error {\n", i, f)
		for l := range 9 {
			fmt.Fprintf(&b, "\tv%d := compute(ctx, %d, %q)\n", l, i*31+f*7+l, fmt.Sprintf("key-%d-%d", f, l))
		}
		if f == 5 && i%100 == 0 {
			fmt.Fprintf(&b, "\t%s(ctx)\n", rareNeedle)
		}
		b.WriteString("\treturn nil\n}\n\n")
	}
	return b.Bytes()
}

func searchGitEnv(b *testing.B) []string {
	home := b.TempDir()
	return append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
}

// BenchmarkSearch is fs_search over a 10,000-file project (1,000 under
// -short) through the production middleware (heartbeat, audit), with `git
// grep` on the same tree as the baseline, the two alternating call by call
// so that both see the same load (case-sensitive both): a literal in one
// file in 100; a regular expression with a literal prefix that matches
// about one file in 100; and one without a literal prefix, which Go's
// regexp cannot skip ahead for. fs_search shows 50 lines and counts the
// rest; git grep prints every match, to a buffer. Both must find the same
// files. p50-ms and p99-ms are fs_search's per call, git-p50-ms and
// git-p99-ms git grep's, ratio-p50 their quotient.
func BenchmarkSearch(b *testing.B) {
	n := 10_000
	if testing.Short() {
		n = 1_000
	}
	tree := searchProject(b, n)
	env := searchGitEnv(b)
	for _, q := range []struct {
		name, pattern string
		regex         bool
		gitArgs       []string
	}{
		{"literal", rareNeedle, false, []string{"-F"}},
		{"regex", `compute\(ctx, [0-9]*77, "key-11-8"\)`, true, []string{"-E"}},
		{"regex-noprefix", `[a-z]+LedgerBatch\(ctx\)`, true, []string{"-E"}},
	} {
		b.Run(q.name, func(b *testing.B) {
			gitArgs := append([]string{"-C", tree, "grep", "-n", "-I"}, q.gitArgs...)
			gitArgs = append(gitArgs, q.pattern)
			gitFiles, ourFiles := -1, -1
			bf, sid := benchTree(b, tree)
			tool := finder{f: bf.f, timeout: time.Minute}.searchTool()
			h := Chain(Heartbeat(time.Second, nil), Audit(nil, nil))(tool.Handler)
			args := fmt.Sprintf(`{"session_id":%q,"pattern":%q,"regex":%v,"case_sensitive":true}`, sid, q.pattern, q.regex)
			ctx := context.Background()
			measurePair(b, func() {
				r, err := h(ctx, bf.call(tool, args))
				if err != nil {
					b.Fatal(err)
				}
				out := r.Structured.(searchOut)
				if out.TimedOut || out.FilesSearched < n {
					b.Fatalf("searched %d files of %d", out.FilesSearched, n)
				}
				ourFiles = out.TotalFiles
			}, func() {
				cmd := exec.Command("git", gitArgs...)
				cmd.Env = env
				var out bytes.Buffer
				cmd.Stdout = &out
				if err := cmd.Run(); err != nil {
					b.Fatalf("git grep: %v", err)
				}
				gitFiles = countFiles(out.String())
			})
			if gitFiles != ourFiles || ourFiles == 0 {
				b.Errorf("git grep found %d files, fs_search %d", gitFiles, ourFiles)
			}
			b.Logf("%s: %d files match", q.name, ourFiles)
		})
	}
}

// BenchmarkFind is fs_find by glob over the same project through the
// production middleware, alternating with `git ls-files` with the same
// glob as the baseline; the metrics are BenchmarkSearch's.
func BenchmarkFind(b *testing.B) {
	n := 10_000
	if testing.Short() {
		n = 1_000
	}
	tree := searchProject(b, n)
	const glob = "**/file*77.go"
	want := n / 100
	env := searchGitEnv(b)
	bf, sid := benchTree(b, tree)
	tool := finder{f: bf.f, timeout: time.Minute}.findTool()
	h := Chain(Heartbeat(time.Second, nil), Audit(nil, nil))(tool.Handler)
	args := fmt.Sprintf(`{"session_id":%q,"glob":%q}`, sid, glob)
	ctx := context.Background()
	measurePair(b, func() {
		r, err := h(ctx, bf.call(tool, args))
		if err != nil || r.Structured.(findOut).Total != want {
			b.Fatalf("fs_find: %v, %+v", err, r.Structured)
		}
	}, func() {
		cmd := exec.Command("git", "-C", tree, "ls-files", "--", ":(glob)"+glob)
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil || strings.Count(string(out), "\n") != want {
			b.Fatalf("git ls-files: %v, %d files", err, strings.Count(string(out), "\n"))
		}
	})
}

// benchTree returns the files toolset's bench set-up with a session in
// the directory tree.
func benchTree(b *testing.B, tree string) (*benchFiles, string) {
	bf := newBenchFiles(b)
	res, err := sessionStart(context.Background(), bf.call(findToolB(b, "session_start"), `{"title":"finding","workspace":"`+tree+`"}`))
	if err != nil {
		b.Fatal(err)
	}
	return bf, res.Structured.(sessionOut).SessionID
}

// countFiles counts the distinct files of `git grep -n` output.
func countFiles(out string) int {
	var files []string
	for line := range strings.SplitSeq(out, "\n") {
		if p, _, ok := strings.Cut(line, ":"); ok && (len(files) == 0 || files[len(files)-1] != p) {
			files = append(files, p)
		}
	}
	return len(slices.Compact(files))
}

// measurePair runs ours and base alternately, b.N times each after two
// warm-up rounds (the page cache, the store), and reports both latencies'
// p50 and p99 in ms and the ratio of the medians.
func measurePair(b *testing.B, ours, base func()) {
	for range 2 {
		ours()
		base()
	}
	var lat, baseLat []time.Duration
	b.ResetTimer()
	timed := func(f func()) time.Duration {
		start := time.Now()
		f()
		return time.Since(start)
	}
	for i := 0; b.Loop(); i++ {
		// Alternate which goes first, so neither always runs on the
		// other's warm cache.
		if i%2 == 0 {
			lat = append(lat, timed(ours))
			baseLat = append(baseLat, timed(base))
		} else {
			baseLat = append(baseLat, timed(base))
			lat = append(lat, timed(ours))
		}
	}
	b.StopTimer()
	kvtest.ReportLatency(b, lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(kvtest.Percentile(baseLat, 50)), "git-p50-ms")
	b.ReportMetric(ms(kvtest.Percentile(baseLat, 99)), "git-p99-ms")
	b.ReportMetric(ms(kvtest.Percentile(lat, 50))/ms(kvtest.Percentile(baseLat, 50)), "ratio-p50")
}
