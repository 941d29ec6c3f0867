package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coditect/coditect/internal/testbin"
)

func TestMain(m *testing.M) { testbin.Main(m) }

// The identity every agent works as: the daemon's first admin, and the
// local user of the stdio processes, in the daemon's tenant.
const (
	soakTenant  = "default"
	soakUser    = "soak"
	soakProject = "soak"
)

// config is the run's shape, from the environment (docs/SOAK.md).
type config struct {
	Duration     time.Duration `json:"-"`
	DurationS    float64       `json:"duration_s"`
	Agents       int           `json:"agents"`       // CODITECT_SOAK_AGENTS
	Stdio        int           `json:"stdio_agents"` // half of them, rounded down
	HTTP         int           `json:"http_agents"`
	Every        time.Duration `json:"-"` // CODITECT_SOAK_INTERVAL: one call per agent per tick
	EveryMS      float64       `json:"agent_interval_ms"`
	Feeds        int           `json:"feed_clients"`
	ChurnEvery   time.Duration `json:"-"`
	ChurnEveryMS float64       `json:"file_change_interval_ms"`
}

func loadConfig(t *testing.T) config {
	t.Helper()
	c := config{Duration: 30 * time.Second, Agents: 24, Every: 100 * time.Millisecond, Feeds: 20, ChurnEvery: 20 * time.Millisecond}
	if v := os.Getenv("CODITECT_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("CODITECT_SOAK_DURATION=%q: want a positive duration such as 10m", v)
		}
		c.Duration = d
	}
	if v := os.Getenv("CODITECT_SOAK_AGENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 {
			t.Fatalf("CODITECT_SOAK_AGENTS=%q: want a number of agents, at least 2", v)
		}
		c.Agents = n
	}
	if v := os.Getenv("CODITECT_SOAK_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("CODITECT_SOAK_INTERVAL=%q: want a positive duration such as 100ms", v)
		}
		c.Every = d
	}
	c.Stdio = c.Agents / 2
	c.HTTP = c.Agents - c.Stdio
	c.DurationS, c.EveryMS, c.ChurnEveryMS = c.Duration.Seconds(), ms(c.Every), ms(c.ChurnEvery)
	return c
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// env is where the run's processes live: the binary, a fresh store, and
// a data directory, so nothing touches the user's own.
type env struct {
	bin, store, data string
}

func (e *env) environ() []string {
	return append(os.Environ(), "CODITECT_STORE="+e.store, "CODITECT_TOKEN=", "XDG_DATA_HOME="+e.data, "CODITECT_CONFIG=")
}

// report is the JSON summary written to CODITECT_SOAK_REPORT.
type report struct {
	Config        config             `json:"config"`
	LoadSeconds   float64            `json:"load_seconds"`
	Calls         int                `json:"calls"`
	CallsPerSec   float64            `json:"calls_per_s"`
	ToolErrors    int                `json:"tool_errors"` // refusals such as a taken lease: part of the mix
	PerTool       map[string]latency `json:"per_tool"`
	EventsInRun   int                `json:"events_appended_during_load"`
	EventsPerSec  float64            `json:"events_per_s"`
	FileChanges   int                `json:"file_changes_made"`
	FileEvents    int                `json:"file_events_ingested"`
	FileEventsSec float64            `json:"file_events_per_s"`
	EventKinds    map[string]int     `json:"event_kinds"`
	FanOut        latency            `json:"fanout_append_to_ws"`
	Feeds         feedResult         `json:"feeds"`
	Acks          ackResult          `json:"audit_check"`
	Daemon        []sample           `json:"daemon_samples"`
	RSSMaxMB      float64            `json:"daemon_rss_max_mb"`
	CPUMeanPct    float64            `json:"daemon_cpu_mean_pct"`
	CPUMaxPct     float64            `json:"daemon_cpu_max_pct"`
	ProtocolErrs  []string           `json:"protocol_errors,omitempty"`
}

// TestSoak runs one daemon under agents over stdio and HTTP, a stream of
// file changes and feed clients for a bounded time, reports what it
// measured, and checks that the audit log holds exactly the acknowledged
// operations and that every feed client got the log in order.
func TestSoak(t *testing.T) {
	if testing.Short() {
		// It loads both cores for half a minute: beside the other
		// packages' tests it would skew their timing and its own figures.
		// make test runs it on its own (docs/SOAK.md).
		t.Skip("the soak runs on its own, without -short: go test -run TestSoak ./internal/soak")
	}
	cfg := loadConfig(t)
	e := &env{bin: testbin.Coditect(t), data: t.TempDir()}
	e.store = "sqlite://" + filepath.ToSlash(filepath.Join(e.data, "soak.db"))
	// The daemon watches ws, which it registers as the root of a project
	// named after it, soakProject: the agents work in that project.
	ws := filepath.Join(e.data, soakProject)
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, e, ws)
	t.Logf("daemon %s (pid %d); %d stdio + %d HTTP agents, one call each per %v, %d feed clients, a file change per %v, for %v",
		d.url, d.cmd.Process.Pid, cfg.Stdio, cfg.HTTP, cfg.Every, cfg.Feeds, cfg.ChurnEvery, cfg.Duration)

	// Feed clients, subscribed before the load starts.
	sentinel := fmt.Sprintf("soak-end-%d.txt", time.Now().UnixNano())
	fanout := newHist()
	feedCtx, stopFeeds := context.WithCancel(context.Background())
	defer stopFeeds()
	var feeds []*feedClient
	var feedWG sync.WaitGroup
	for range cfg.Feeds {
		f := newFeedClient(d.url, d.token, sentinel, fanout)
		feeds = append(feeds, f)
		feedWG.Go(func() { f.run(feedCtx) })
	}
	for i, f := range feeds {
		select {
		case <-f.subscribed:
		case <-time.After(30 * time.Second):
			t.Fatalf("feed client %d not subscribed within 30 s; stderr:\n%s", i, d.stderr)
		}
	}

	// Agents, connected (and known to the store by whoami) before the load.
	lat := &hists{}
	hc := bearer(d.token, cfg.HTTP)
	var agents agentSet
	for i := range cfg.Stdio {
		agents = append(agents, newAgent(fmt.Sprintf("soak-s%02d", i), "stdio", uint64(i), lat))
	}
	for i := range cfg.HTTP {
		agents = append(agents, newAgent(fmt.Sprintf("soak-h%02d", i), "http", uint64(1000+i), lat))
	}
	connCtx, cancelConn := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancelConn()
	connErrs := make([]error, len(agents))
	var connWG sync.WaitGroup
	for i, a := range agents {
		connWG.Go(func() {
			if a.transport == "stdio" {
				connErrs[i] = a.connectStdio(connCtx, e, eras[i%2])
			} else {
				connErrs[i] = a.connectHTTP(connCtx, d.url, hc, eras[i%2])
			}
		})
	}
	connWG.Wait()
	defer func() {
		for _, a := range agents {
			if a.cs != nil && a.cmd != nil && a.cmd.ProcessState == nil {
				a.cs.Close()
			}
		}
	}()
	for _, err := range connErrs {
		if err != nil {
			t.Fatal(err)
		}
	}

	// The load: agents, file changes and the daemon's /proc, for the
	// duration; every loop is also bounded in count.
	sampleCtx, stopSampling := context.WithCancel(context.Background())
	samples := make(chan []sample, 1)
	start := time.Now()
	go func() { samples <- sampleProc(sampleCtx, d.cmd.Process.Pid, start) }()
	loadCtx, endLoad := context.WithTimeout(context.Background(), cfg.Duration)
	defer endLoad()
	var changes int
	var churnErr error
	var loadWG sync.WaitGroup
	loadWG.Go(func() { changes, churnErr = churn(loadCtx, ws, cfg.ChurnEvery, int(cfg.Duration/cfg.ChurnEvery)+1) })
	agents.run(loadCtx, cfg.Every, int(cfg.Duration/cfg.Every)+1)
	loadWG.Wait()
	end := time.Now()
	stopSampling()
	if churnErr != nil {
		t.Errorf("changing files: %v", churnErr)
	}

	// The end: one last file whose event every feed client must see, so
	// the feeds have caught up with the watcher before they stop.
	if err := os.WriteFile(filepath.Join(ws, sentinel), []byte("end\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	caughtUp := time.Now()
	for i, f := range feeds {
		select {
		case <-f.sawEnd:
		case <-time.After(30 * time.Second):
			t.Errorf("feed client %d did not receive the last file's event within 30 s of the load's end (%d events, %d reconnects, %v)", i, f.n, f.reconnects, f.err)
		}
	}
	t.Logf("the feeds caught up %v after the last file change", time.Since(caughtUp).Round(time.Millisecond))
	stopFeeds()
	feedWG.Wait()
	for _, a := range agents {
		if err := a.close(); err != nil {
			t.Error(err)
		}
	}
	d.stop(t)

	// The checks, on the log as the store holds it.
	v := exportLog(t, e, agents, start, end)
	r := report{Config: cfg, LoadSeconds: end.Sub(start).Seconds(), PerTool: lat.summaries(), EventKinds: v.kinds,
		FanOut: fanout.summary(), FileChanges: changes, EventsInRun: v.inRun, FileEvents: v.files, Daemon: <-samples}
	r.Acks = checkAcks(t, agents, v)
	r.Feeds = checkFeeds(t, feeds, v.ids)
	r.ProtocolErrs = agents.errors()
	for _, err := range r.ProtocolErrs {
		t.Errorf("protocol error: %s", err)
	}
	for _, a := range agents {
		r.Calls += a.ok + a.bad
		r.ToolErrors += a.bad
	}
	r.CallsPerSec = float64(r.Calls) / r.LoadSeconds
	r.EventsPerSec = float64(r.EventsInRun) / r.LoadSeconds
	r.FileEventsSec = float64(r.FileEvents) / r.LoadSeconds
	var cpuSum float64
	for _, s := range r.Daemon {
		r.RSSMaxMB = max(r.RSSMaxMB, s.RSSMB)
		r.CPUMaxPct = max(r.CPUMaxPct, s.CPUPct)
		cpuSum += s.CPUPct
	}
	if len(r.Daemon) > 0 {
		r.CPUMeanPct = round1(cpuSum / float64(len(r.Daemon)))
	}
	if r.FileEvents == 0 {
		t.Errorf("the watcher recorded no file events for %d changes", changes)
	}
	logReport(t, &r)
	if path := os.Getenv("CODITECT_SOAK_REPORT"); path != "" {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("report written to %s", path)
	}
}

func logReport(t *testing.T, r *report) {
	t.Helper()
	t.Logf("%d calls in %.1f s: %.0f calls/s (%d tool errors, %d protocol errors)", r.Calls, r.LoadSeconds, r.CallsPerSec, r.ToolErrors, len(r.ProtocolErrs))
	names := make([]string, 0, len(r.PerTool))
	for n := range r.PerTool {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		l := r.PerTool[n]
		t.Logf("  %-14s %7d calls  p50 %8.2f ms  p99 %8.2f ms  max %8.2f ms", n, l.Count, l.P50, l.P99, l.Max)
	}
	t.Logf("events appended during the load: %d (%.0f/s); file events: %d for %d changes (%.0f/s)",
		r.EventsInRun, r.EventsPerSec, r.FileEvents, r.FileChanges, r.FileEventsSec)
	t.Logf("fan-out append -> WebSocket client: %d deliveries, p50 %.2f ms, p99 %.2f ms, max %.2f ms; %d reconnects",
		r.FanOut.Count, r.FanOut.P50, r.FanOut.P99, r.FanOut.Max, r.Feeds.Reconnects)
	t.Logf("daemon: RSS max %.1f MB, CPU mean %.1f%% max %.1f%% of a core over %d samples", r.RSSMaxMB, r.CPUMeanPct, r.CPUMaxPct, len(r.Daemon))
	for i, s := range r.Daemon {
		if i%10 == 9 || i == len(r.Daemon)-1 {
			t.Logf("  t=%5.0fs RSS %6.1f MB CPU %5.1f%%", s.T, s.RSSMB, s.CPUPct)
		}
	}
	a := r.Acks
	t.Logf("audit check: %d acknowledged calls, %d tool.called events; %d acknowledged mutations, %d mutation events; %d of unknown outcome; %d mismatches",
		a.Calls, a.ToolEvents, a.Mutations, a.MutationEvents, a.Unknown, a.Mismatches)
}
