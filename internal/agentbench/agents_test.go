package agentbench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coditect/coditect/internal/testbin"
)

func TestMain(m *testing.M) { testbin.Main(m) }

// config is what a run measures; see configFromEnv.
type config struct {
	agents     []int
	readAgents []int
	ops        []string
	duration   time.Duration
	rounds     int
	base       string // a baseline coditect binary, measured beside ("base" rows)
}

// Environment variables of a full run (make bench-agents sets them).
const (
	envAgents     = "CODITECT_AGENTBENCH_AGENTS"      // e.g. 1,4,16,32
	envReadAgents = "CODITECT_AGENTBENCH_READ_AGENTS" // agent counts of the read-only rows
	envOps        = "CODITECT_AGENTBENCH_OPS"         // note,message,whoami
	envDuration   = "CODITECT_AGENTBENCH_DURATION"    // per row and round, e.g. 5s
	envRounds     = "CODITECT_AGENTBENCH_ROUNDS"      // interleaved rounds; medians over them
	envBase       = "CODITECT_AGENTBENCH_BASE"        // path of a coditect binary built from another commit
	// envProfile: each row's local core or daemon writes a CPU profile to
	// this path plus "." and the row's directory name (--cpuprofile).
	envProfile = "CODITECT_AGENTBENCH_PROFILE"
	// envOnly, when set, names the variants to run (bare, coditect,
	// coditect-core, base, raw), or a variant of one transport
	// (http/coditect, stdio/base), to iterate on one of them.
	envOnly = "CODITECT_AGENTBENCH_ONLY"
)

// configFromEnv returns the run's sizes: one quick round under -short
// (make bench-smoke), the full curve otherwise, each overridable.
func configFromEnv(tb testing.TB) config {
	c := config{agents: []int{1, 4, 16, 32}, readAgents: []int{1}, ops: []string{"note", "whoami"},
		duration: time.Second, rounds: 3}
	if testing.Short() {
		c = config{agents: []int{1, 4}, readAgents: []int{1}, ops: []string{"note", "whoami"}, duration: 300 * time.Millisecond, rounds: 1}
	}
	ints := func(s string) []int {
		var out []int
		for f := range strings.SplitSeq(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				tb.Fatalf("agentbench: %q is not a list of agent counts", s)
			}
			out = append(out, n)
		}
		return out
	}
	if v := os.Getenv(envAgents); v != "" {
		c.agents = ints(v)
	}
	if v := os.Getenv(envReadAgents); v != "" {
		c.readAgents = ints(v)
	}
	if v := os.Getenv(envOps); v != "" {
		c.ops = strings.Split(v, ",")
	}
	if v := os.Getenv(envDuration); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			tb.Fatalf("agentbench: %s: %v", envDuration, err)
		}
		c.duration = d
	}
	if v := os.Getenv(envRounds); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			tb.Fatalf("agentbench: %s=%q", envRounds, v)
		}
		c.rounds = n
	}
	c.base = os.Getenv(envBase)
	return c
}

// row names one measured configuration.
type row struct {
	transport string // stdio, http, disk
	op        string // note, message, whoami; commit for the disk row
	agents    int
	variant   string // bare, coditect, coditect-core, base, raw
}

func (r row) String() string {
	return fmt.Sprintf("%s/%s/n=%d/%s", r.transport, r.op, r.agents, r.variant)
}

// result is one measurement of a row.
type result struct {
	calls  float64 // per second
	p50    float64 // ms
	p99    float64 // ms
	cpuMS  float64 // server CPU time per call, ms; 0 when not measured
	coreMS float64 // the part of cpuMS spent in a local core
	// clientMS is the CPU time per call of the benchmark's own process:
	// the agents' SDK clients (and, for HTTP, their connections).
	clientMS float64
	kibOut   float64 // bytes the server processes wrote to disk per call, KiB
}

// BenchmarkAgents runs every row of the table once per round, the rows of
// a round in turn (interleaved), and reports the medians over the rounds as
// sub-benchmarks (BenchmarkAgents/<transport>/<op>/n=<agents>/<variant>),
// then prints the table. It measures the whole curve once whatever b.N
// is: run it with -benchtime 1x.
func BenchmarkAgents(b *testing.B) {
	cfg := configFromEnv(b)
	bin := testbin.Coditect(b)
	bare := buildBare(b)
	stdioVariants := []variant{{name: "bare", bin: bare}, {name: "coditect", bin: bin}}
	if hasFlag(bin, "mcp", "--core") {
		stdioVariants = []variant{{name: "bare", bin: bare}, {name: "coditect", bin: bin, args: []string{"--core", "off"}},
			{name: "coditect-core", bin: bin, args: []string{"--core", "auto"}}}
	}
	httpVariants := []variant{{name: "bare", bin: bare}, {name: "coditect", bin: bin}}
	if cfg.base != "" {
		stdioVariants = append(stdioVariants, variant{name: "base", bin: cfg.base})
		httpVariants = append(httpVariants, variant{name: "base", bin: cfg.base})
	}
	type job struct {
		row row
		run func(ctx context.Context) (result, error)
	}
	only := func(transport, name string) bool {
		v := os.Getenv(envOnly)
		names := strings.Split(v, ",")
		return v == "" || slices.Contains(names, name) || slices.Contains(names, transport+"/"+name)
	}
	stdioVariants = slices.DeleteFunc(stdioVariants, func(v variant) bool { return !only("stdio", v.name) })
	httpVariants = slices.DeleteFunc(httpVariants, func(v variant) bool { return !only("http", v.name) })
	var jobs []job
	for _, op := range cfg.ops {
		counts := cfg.agents
		if op == "whoami" {
			counts = cfg.readAgents
		}
		for _, n := range counts {
			for _, v := range stdioVariants {
				jobs = append(jobs, job{row{"stdio", op, n, v.name}, func(ctx context.Context) (result, error) {
					return runStdio(ctx, b, v, op, n, cfg.duration)
				}})
			}
			for _, v := range httpVariants {
				jobs = append(jobs, job{row{"http", op, n, v.name}, func(ctx context.Context) (result, error) {
					return runHTTP(ctx, b, v, op, n, cfg.duration)
				}})
			}
		}
	}
	if slices.ContainsFunc(cfg.ops, func(op string) bool { return op != "whoami" }) && only("disk", "raw") {
		for _, n := range cfg.agents {
			jobs = append(jobs, job{row{"disk", "commit", n, "raw"}, func(ctx context.Context) (result, error) {
				return runRaw(ctx, b, n, cfg.duration)
			}})
		}
	}
	ctx := context.Background()
	results := map[row][]result{}
	for round := range cfg.rounds {
		// Rotate the order each round, so that no row always follows the
		// same one.
		for i := range jobs {
			j := jobs[(i+round)%len(jobs)]
			res, err := j.run(ctx)
			if err != nil {
				b.Fatalf("%s (round %d): %v", j.row, round+1, err)
			}
			results[j.row] = append(results[j.row], res)
		}
	}
	medians := map[row]result{}
	for _, j := range jobs {
		m := median(results[j.row])
		medians[j.row] = m
		b.Run(j.row.String(), func(b *testing.B) {
			b.ReportMetric(m.calls, "calls/s")
			b.ReportMetric(m.p50, "p50-ms")
			b.ReportMetric(m.p99, "p99-ms")
			if m.cpuMS > 0 {
				b.ReportMetric(m.cpuMS, "cpu-ms/call")
				b.ReportMetric(m.kibOut, "KiB/call")
			}
			b.ReportMetric(m.clientMS, "client-cpu-ms/call")
			if m.coreMS > 0 {
				b.ReportMetric(m.coreMS, "core-cpu-ms/call")
			}
		})
	}
	fmt.Print(table(cfg, medians))
}

// variant is one server under test.
type variant struct {
	name string
	bin  string   // the binary
	args []string // extra flags of `coditect mcp`
}

// median takes each field's median over the rounds.
func median(rs []result) result {
	pick := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return result{
		calls:    pick(func(r result) float64 { return r.calls }),
		p50:      pick(func(r result) float64 { return r.p50 }),
		p99:      pick(func(r result) float64 { return r.p99 }),
		cpuMS:    pick(func(r result) float64 { return r.cpuMS }),
		coreMS:   pick(func(r result) float64 { return r.coreMS }),
		clientMS: pick(func(r result) float64 { return r.clientMS }),
		kibOut:   pick(func(r result) float64 { return r.kibOut }),
	}
}

// buildBare builds server/internal/baremcp once per test process.
var bareOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "agentbench-bare-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "baremcp")
	cmd := exec.Command("go", "build", "-o", path, "./server/internal/baremcp")
	cmd.Dir = testbin.Root()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v\n%s", err, out)
	}
	return path, nil
})

func buildBare(tb testing.TB) string {
	path, err := bareOnce()
	if err != nil {
		tb.Fatalf("building baremcp: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(filepath.Dir(path)) })
	return path
}

// hasFlag reports whether `bin sub --help` lists flag.
func hasFlag(bin, sub, flag string) bool {
	out, _ := exec.Command(bin, sub, "--help").CombinedOutput()
	return strings.Contains(string(out), flag+" ")
}

// table formats the medians as Markdown: one line per transport, op and
// agent count, the variants side by side.
func table(cfg config, m map[row]result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nagentbench: medians of %d interleaved rounds of %s per row\n\n", cfg.rounds, cfg.duration)
	b.WriteString("| transport | call | agents | server | calls/s | p50 ms | p99 ms | CPU ms/call (core) | clients' CPU ms/call | KiB written/call |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	rows := make([]row, 0, len(m))
	for r := range m {
		rows = append(rows, r)
	}
	order := func(s string, list ...string) int { return slices.Index(list, s) }
	slices.SortFunc(rows, func(a, c row) int {
		if d := order(a.transport, "stdio", "http", "disk") - order(c.transport, "stdio", "http", "disk"); d != 0 {
			return d
		}
		if d := order(a.op, "note", "message", "whoami", "commit") - order(c.op, "note", "message", "whoami", "commit"); d != 0 {
			return d
		}
		if a.agents != c.agents {
			return a.agents - c.agents
		}
		return order(a.variant, "bare", "base", "coditect", "coditect-core", "raw") - order(c.variant, "bare", "base", "coditect", "coditect-core", "raw")
	})
	for _, r := range rows {
		res := m[r]
		cpu, kib := "", ""
		if res.cpuMS > 0 {
			cpu, kib = fmt.Sprintf("%.3f", res.cpuMS), fmt.Sprintf("%.1f", res.kibOut)
			if res.coreMS > 0 {
				cpu += fmt.Sprintf(" (%.3f)", res.coreMS)
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %.0f | %.3f | %.3f | %s | %.3f | %s |\n",
			r.transport, r.op, r.agents, r.variant, res.calls, res.p50, res.p99, cpu, res.clientMS, kib)
	}
	return b.String()
}
