package webview_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/coditect/coditect/internal/testbin"
	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv/kvtest"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/webview"
)

// BenchmarkFeedFanout: 100 WebSocket clients follow one tenant's feed
// while events are appended at 1,000 per second; one op is one event, and
// the latency is from the start of its Append to its arrival at a client,
// over every client; events/s is the rate the writer held. SharedTail is the default (one store tail per tenant
// and filter); PerClientTail has every client follow the store on its own.
func BenchmarkFeedFanout(b *testing.B) {
	for _, c := range []struct {
		name      string
		perClient bool
	}{{"SharedTail", false}, {"PerClientTail", true}} {
		b.Run(c.name, func(b *testing.B) {
			// One token's 100 dashboards: more than the per-token cap,
			// which the benchmark does not measure.
			benchFanout(b, webview.Options{PerClientTail: c.perClient, MaxFeedsPerToken: 100}, 100, time.Millisecond)
		})
	}
}

func benchFanout(b *testing.B, opts webview.Options, clients int, every time.Duration) {
	// synchronous=normal: one durable (FULL) append at a time peaks below
	// 1,000 commits/s on this kind of disk (storage/audit's
	// BenchmarkAppend); this benchmark measures the fan-out.
	f := newFixtureOn(b, opts, "?synchronous=normal")
	acme := f.t["acme"]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	n := b.N
	sent := make([]atomic.Int64, n) // UnixNano at the start of each append
	lats := make([][]time.Duration, clients)
	var got sync.WaitGroup
	url := "ws" + strings.TrimPrefix(f.srv.URL, "http") + webview.FeedPath
	errc := make(chan error, clients)
	for i := range clients {
		c, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer c.CloseNow()
		c.SetReadLimit(32 << 20)
		if err := wsjson.Write(ctx, c, webview.Subscription{Type: "subscribe", Token: acme.viewer, Cursor: "head", Filter: webview.FeedFilter{Kind: "note.added"}}); err != nil {
			b.Fatal(err)
		}
		var m webview.FeedMessage
		if err := wsjson.Read(ctx, c, &m); err != nil || m.Type != "subscribed" {
			b.Fatalf("subscribe: %+v %v", m, err)
		}
		lats[i] = make([]time.Duration, 0, n)
		got.Add(1)
		go func() {
			defer got.Done()
			for len(lats[i]) < n {
				var m webview.FeedMessage
				if err := wsjson.Read(ctx, c, &m); err != nil {
					errc <- fmt.Errorf("client %d after %d events: %w", i, len(lats[i]), err)
					return
				}
				now := time.Now().UnixNano()
				for _, ev := range m.Events {
					k, err := strconv.Atoi(strings.TrimPrefix(ev.Summary, "bench "))
					if err != nil || k >= n {
						errc <- fmt.Errorf("client %d: unexpected event %q", i, ev.Summary)
						return
					}
					lats[i] = append(lats[i], time.Duration(now-sent[k].Load()))
				}
			}
		}()
	}
	b.ResetTimer()
	start := time.Now()
	for i := range n {
		// Pacing, not synchronisation: the writer holds a fixed rate.
		if d := time.Until(start.Add(time.Duration(i) * every)); d > 0 {
			time.Sleep(d)
		}
		sent[i].Store(time.Now().UnixNano())
		if _, err := acme.sc.Log().Append(ctx, acme.sc.Event("note.added", "bench "+strconv.Itoa(i))); err != nil {
			b.Fatal(err)
		}
	}
	issued := time.Since(start)
	done := make(chan struct{})
	go func() { got.Wait(); close(done) }()
	select {
	case <-done:
	case err := <-errc:
		b.Fatal(err)
	case <-ctx.Done():
		b.Fatal("clients did not receive every event")
	}
	b.StopTimer()
	select {
	case err := <-errc:
		b.Fatal(err)
	default:
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	kvtest.ReportLatency(b, all)
	b.ReportMetric(float64(n)/issued.Seconds(), "events/s")
	b.ReportMetric(float64(clients), "clients")
}

// largeStore returns the URL of a store whose tenant "acme" holds n
// note and file events in 1,000 sessions by 8 agents, with a user "bench"
// and a viewer token whose secret is kept beside the database; built once
// and kept in the temporary directory (kvtest.CachedStore).
func largeStore(b *testing.B, n int) (storeURL, token string) {
	ctx := context.Background()
	path := kvtest.CachedStore(b, fmt.Sprintf("coditect-bench-webview-%d-v1.db", n), func(tmp string) {
		st, err := storage.Open(ctx, "sqlite://"+filepath.ToSlash(tmp)+"?synchronous=normal")
		if err != nil {
			b.Fatal(err)
		}
		dir := tenant.NewDirectory(st, "bench")
		if _, err := dir.CreateTenant(ctx, "acme", ""); err != nil {
			b.Fatal(err)
		}
		if _, err := dir.CreateUser(ctx, "acme", "bench", ""); err != nil {
			b.Fatal(err)
		}
		secret, _, err := dir.IssueToken(ctx, "acme", "bench", tenant.RoleViewer, tenant.TokenOptions{Label: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		sc, err := dir.Authenticate(ctx, secret)
		if err != nil {
			b.Fatal(err)
		}
		batch := make([]audit.Event, 0, 1000)
		for i := range n {
			batch = append(batch, largeEvent(i))
			if len(batch) == cap(batch) || i == n-1 {
				if _, err := sc.Log().Append(ctx, batch...); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		// The secret goes beside the final name, which the store takes
		// when the build is complete.
		if err := os.WriteFile(strings.TrimSuffix(tmp, ".building")+".token", []byte(secret), 0o600); err != nil {
			b.Fatal(err)
		}
	})
	tok, err := os.ReadFile(path + ".token")
	if err != nil {
		b.Fatal(err)
	}
	return "sqlite://" + filepath.ToSlash(path), string(tok)
}

func largeEvent(i int) audit.Event {
	ev := audit.Event{User: "bench", Session: fmt.Sprintf("s%04d", i%1000), Agent: fmt.Sprintf("agent-%d", i%8),
		Kind: "note.added", Summary: "a note of some length, like an agent would write " + strconv.Itoa(i)}
	if i%4 == 0 {
		ev.Kind, ev.Path, ev.Summary = "file.modified", fmt.Sprintf("src/pkg%d/file%d.go", i%50, i%500), "edited 3 lines"
		ev.Attribution = &audit.Attribution{Actor: audit.ActorAgent, AgentID: ev.Agent, Evidence: "fs_write", Confidence: 1}
	}
	return ev
}

// BenchmarkRESTQuery: GET /api/v1/events over HTTP, token check included,
// on a log of 1,000,000 events (100,000 with -short): the newest page, a
// session's newest 100, one agent's file changes, and the files view.
func BenchmarkRESTQuery(b *testing.B) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	u, token := largeStore(b, n)
	ctx := context.Background()
	st, err := storage.Open(ctx, u)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	h := webview.New(tenant.NewDirectory(st, "bench"), webview.Options{})
	srv := newBenchServer(b, h)
	for _, q := range []struct {
		name  string
		query func() string
		want  int
	}{
		{"Newest100", func() string { return "/api/v1/events?limit=100" }, 100},
		{"Session100", func() string { return fmt.Sprintf("/api/v1/events?limit=100&session=s%04d", rand.IntN(1000)) }, 100},
		{"AgentFiles100", func() string {
			// Agents 0 and 4 made the file changes (largeEvent).
			return fmt.Sprintf("/api/v1/events?limit=100&kind=file.modified&agent=agent-%d", 4*rand.IntN(2))
		}, 100},
		{"FilesView200", func() string { return "/api/v1/files?limit=200" }, 200},
	} {
		b.Run(q.name, func(b *testing.B) {
			lats := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				start := time.Now()
				page := getPage(b, srv, q.query(), token)
				lats = append(lats, time.Since(start))
				if len(page.Events) != q.want {
					b.Fatalf("%s: %d events, want %d", q.name, len(page.Events), q.want)
				}
			}
			b.StopTimer()
			kvtest.ReportLatency(b, lats)
		})
	}
}

// BenchmarkDaemonIdle: the real `coditect serve` on an empty store, idle
// for a fixed window (10 s, 2 s with -short) after its ready line: its
// CPU use over the window and its resident memory at the end, from /proc.
func BenchmarkDaemonIdle(b *testing.B) {
	window := 10 * time.Second
	if testing.Short() {
		window = 2 * time.Second
	}
	bin := testbin.Coditect(b)
	var cpu, rss, hwm []float64
	for range b.N {
		store := "sqlite://" + filepath.ToSlash(filepath.Join(b.TempDir(), "c.db"))
		cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--store", store)
		cmd.Env = append(os.Environ(), "CODITECT_TOKEN=")
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		ready := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if strings.Contains(sc.Text(), "http://127.0.0.1:") {
					ready <- true
					break
				}
			}
			for sc.Scan() {
			}
			ready <- false
		}()
		select {
		case ok := <-ready:
			if !ok {
				b.Fatal("serve exited before its ready line")
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			b.Fatal("serve printed no ready line")
		}
		pid := cmd.Process.Pid
		t0, c0 := time.Now(), procCPU(b, pid)
		// The measurement window itself: nothing to wait for but time.
		<-time.After(window)
		t1, c1 := time.Now(), procCPU(b, pid)
		status := procStatus(b, pid)
		cpu = append(cpu, (c1-c0).Seconds()/t1.Sub(t0).Seconds()*100)
		rss = append(rss, status["VmRSS"]/1024)
		hwm = append(hwm, status["VmHWM"]/1024)
		cmd.Process.Kill()
		cmd.Wait()
	}
	b.ReportMetric(median(cpu), "cpu-%")
	b.ReportMetric(median(rss), "rss-MiB")
	b.ReportMetric(median(hwm), "peak-rss-MiB")
}

// procCPU is the user+system time of a process, from /proc/PID/stat (in
// clock ticks of 1/100 s, USER_HZ on Linux).
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14 and stime 15.
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, err1 := strconv.ParseInt(fields[14-3], 10, 64)
	stime, err2 := strconv.ParseInt(fields[15-3], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", pid, s)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// procStatus returns the kB fields of /proc/PID/status.
func procStatus(b *testing.B, pid int) map[string]float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	m := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if f := strings.Fields(v); ok && len(f) == 2 && f[1] == "kB" {
			if n, err := strconv.ParseFloat(f[0], 64); err == nil {
				m[k] = n
			}
		}
	}
	return m
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

type benchServer struct {
	url    string
	client *http.Client
}

func newBenchServer(b *testing.B, h http.Handler) *benchServer {
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	return &benchServer{url: srv.URL, client: srv.Client()}
}

func getPage(b *testing.B, s *benchServer, path, token string) webview.EventPage {
	req, _ := http.NewRequest("GET", s.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var p webview.EventPage
	if resp.StatusCode != 200 {
		b.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		b.Fatal(err)
	}
	return p
}
