package agentbench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// client is one agent: an official-SDK session and the call it makes.
type client struct {
	cs     *mcp.ClientSession
	params *mcp.CallToolParams
}

// params returns the call of op for a session; bare servers answer every
// op with their empty tool. A message goes to the sender itself (its
// agent id from whoami), so every agent's writes stay its own.
func params(ctx context.Context, cs *mcp.ClientSession, bare bool, op string) (*mcp.CallToolParams, error) {
	if bare {
		return &mcp.CallToolParams{Name: "empty", Arguments: map[string]any{}}, nil
	}
	switch op {
	case "note":
		return &mcp.CallToolParams{Name: "note", Arguments: map[string]any{"text": "agentbench note"}}, nil
	case "whoami":
		return &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}}, nil
	case "message":
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
		if err != nil {
			return nil, err
		}
		var who struct {
			AgentID string `json:"agent_id"`
		}
		b, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(b, &who); err != nil || who.AgentID == "" {
			return nil, fmt.Errorf("whoami gave no agent id: %s", b)
		}
		return &mcp.CallToolParams{Name: "message_send", Arguments: map[string]any{"to": who.AgentID, "body": "agentbench message"}}, nil
	}
	return nil, fmt.Errorf("unknown op %q", op)
}

// connectAll connects n clients with dial (concurrently: starting 32
// processes one by one would take longer than a row) and prepares op.
func connectAll(ctx context.Context, n int, bare bool, op string, dial func(i int) mcp.Transport) ([]client, error) {
	clients := make([]client, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c := mcp.NewClient(&mcp.Implementation{Name: fmt.Sprintf("agent-%d", i), Version: "agentbench"}, nil)
			cs, err := c.Connect(ctx, dial(i), nil)
			if err != nil {
				errs[i] = err
				return
			}
			clients[i].cs = cs
			clients[i].params, errs[i] = params(ctx, cs, bare, op)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeAll(clients)
		return nil, err
	}
	return clients, nil
}

func closeAll(clients []client) {
	var wg sync.WaitGroup
	for _, c := range clients {
		if c.cs != nil {
			wg.Go(func() { c.cs.Close() })
		}
	}
	wg.Wait()
}

// drive warms every client up, then has all of them call as fast as they
// can for d, and measures calls/s and latency of the calls that ended in
// the window, and the CPU time and disk writes of the server processes
// pids over it.
func drive(ctx context.Context, clients []client, d time.Duration, pids func() []int) (result, error) {
	var wg sync.WaitGroup
	errs := make([]error, len(clients))
	for i, c := range clients {
		wg.Go(func() {
			for range 5 {
				if err := call(ctx, c); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return result{}, fmt.Errorf("warm-up: %w", err)
	}
	before := readProcs(pids())
	selfBefore := readProcs([]int{os.Getpid()})
	start := time.Now()
	end := start.Add(d)
	lats := make([][]time.Duration, len(clients))
	for i, c := range clients {
		wg.Go(func() {
			for {
				t := time.Now()
				if !t.Before(end) {
					return
				}
				if err := call(ctx, c); err != nil {
					errs[i] = err
					return
				}
				if done := time.Now(); done.Before(end) {
					lats[i] = append(lats[i], done.Sub(t))
				}
			}
		})
	}
	wg.Wait()
	after := readProcs(pids())
	selfAfter := readProcs([]int{os.Getpid()})
	if err := errors.Join(errs...); err != nil {
		return result{}, err
	}
	all := slices.Concat(lats...)
	res := latencies(all, d)
	if n := float64(len(all)); n > 0 {
		res.clientMS = float64(selfAfter.cpu-selfBefore.cpu) * 1000 / clockTick / n
	}
	if n := float64(len(all)); n > 0 && after.cpu > 0 {
		res.cpuMS = float64(after.cpu-before.cpu) * 1000 / clockTick / n
		res.coreMS = float64(after.coreCPU-before.coreCPU) * 1000 / clockTick / n
		res.kibOut = float64(after.written-before.written) / 1024 / n
	}
	return res, nil
}

func call(ctx context.Context, c client) error {
	res, err := c.cs.CallTool(ctx, c.params)
	if err != nil {
		return fmt.Errorf("%s: %w", c.params.Name, err)
	}
	if res.IsError {
		b, _ := json.Marshal(res.Content)
		return fmt.Errorf("%s: tool error: %s", c.params.Name, b)
	}
	return nil
}

// latencies gives calls/s over d and the p50 and p99 of lats.
func latencies(lats []time.Duration, d time.Duration) result {
	if len(lats) == 0 {
		return result{}
	}
	slices.Sort(lats)
	pct := func(p float64) float64 {
		return float64(lats[min(len(lats)-1, int(p*float64(len(lats))))].Microseconds()) / 1000
	}
	return result{calls: float64(len(lats)) / d.Seconds(), p50: pct(0.50), p99: pct(0.99)}
}

// runStdio measures n `coditect mcp` (or bare) processes, one per agent,
// on one fresh store.
func runStdio(ctx context.Context, tb testing.TB, v variant, op string, n int, d time.Duration) (result, error) {
	dir, err := os.MkdirTemp("", "agentbench-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	bare := v.name == "bare"
	clients, err := connectAll(ctx, n, bare, op, func(i int) mcp.Transport {
		cmd := exec.Command(v.bin)
		if !bare {
			cmd = stdioCommand(v, dir, i)
		}
		return &mcp.CommandTransport{Command: cmd}
	})
	if err != nil {
		return result{}, err
	}
	defer stopStarted(dir)
	defer closeAll(clients)
	pids := func() []int {
		if bare {
			return nil
		}
		return started(dir)
	}
	return drive(ctx, clients, d, pids)
}

// started returns the processes whose command line names dir: the `coditect
// mcp` processes of a row (their --log-file is there) and any local core
// one of them started for the store there (its --store).
func started(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(dir)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// stopStarted ends what a row started that outlived its clients (a local
// core waits for more clients): SIGTERM by pid, then SIGKILL after 10 s.
func stopStarted(dir string) {
	pids := started(dir)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond) // polling a process we cannot wait for (not our child)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// stdioCommand is agent i's `coditect mcp` on the store in dir.
func stdioCommand(v variant, dir string, i int) *exec.Cmd {
	args := []string{"mcp", "--tenant", "bench", "--user", "bench", "--agent", fmt.Sprintf("agent-%d", i),
		"--toolsets", "core,coord", "--log-file", filepath.Join(dir, fmt.Sprintf("mcp-%d.log", i))}
	cmd := exec.Command(v.bin, append(args, v.args...)...)
	cmd.Env = storeEnv(dir)
	return cmd
}

// storeEnv is the environment of a Coditect process on the store in dir,
// with its runtime and data directories there too, so that nothing is
// shared with another row or with the machine's own store.
func storeEnv(dir string) []string {
	env := slices.DeleteFunc(os.Environ(), func(s string) bool {
		return strings.HasPrefix(s, "CODITECT_") || strings.HasPrefix(s, "XDG_")
	})
	env = append(env, "CODITECT_STORE="+filepath.Join(dir, "coditect.db"),
		"XDG_RUNTIME_DIR="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_STATE_HOME="+filepath.Join(dir, "state"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	if p := os.Getenv(envProfile); p != "" {
		// A local core or daemon started for this row profiles itself to
		// its own file.
		env = append(env, "CODITECT_CPUPROFILE="+p+"."+filepath.Base(dir))
	}
	return env
}

// runHTTP measures n clients of one `coditect serve` (or an in-process
// bare mcp-go Streamable HTTP server), each its own agent (its clientInfo
// name) with its own connections.
func runHTTP(ctx context.Context, tb testing.TB, v variant, op string, n int, d time.Duration) (result, error) {
	bare := v.name == "bare"
	var url, secret string
	var pid int
	if bare {
		cmd := exec.Command(v.bin, "-http", "127.0.0.1:0")
		out, err := cmd.StdoutPipe()
		if err != nil {
			return result{}, err
		}
		if err := cmd.Start(); err != nil {
			return result{}, err
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil {
			return result{}, fmt.Errorf("baremcp -http: %w", err)
		}
		url = strings.TrimSpace(line)
	} else {
		dir, err := os.MkdirTemp("", "agentbench-")
		if err != nil {
			return result{}, err
		}
		defer os.RemoveAll(dir)
		dmn, err := startDaemon(v.bin, dir)
		if err != nil {
			return result{}, err
		}
		defer dmn.stop()
		url, secret, pid = dmn.url+"/mcp", dmn.token, dmn.cmd.Process.Pid
	}
	clients, err := connectAll(ctx, n, bare, op, func(int) mcp.Transport {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 4
		var rt http.RoundTripper = tr
		if secret != "" {
			rt = bearer{secret: secret, base: tr}
		}
		return &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: rt}, MaxRetries: -1}
	})
	if err != nil {
		return result{}, err
	}
	defer closeAll(clients)
	return drive(ctx, clients, d, func() []int {
		if pid == 0 {
			return nil
		}
		return []int{pid}
	})
}

type bearer struct {
	secret string
	base   http.RoundTripper
}

func (t bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.secret)
	return t.base.RoundTrip(r)
}

// daemon is a running `coditect serve`.
type daemon struct {
	cmd        *exec.Cmd
	url, token string
	stderr     *bytes.Buffer
}

var loginRE = regexp.MustCompile(`(http://127\.0\.0\.1:\d+)/#token=(\S+)`)

// startDaemon starts `coditect serve` on a fresh store in dir and waits for
// the login URL it prints on its first start (its admin token).
func startDaemon(bin, dir string) (*daemon, error) {
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--user", "bench",
		"--toolsets", "core", "--toolsets", "coord", "--log-level", "warn")
	cmd.Env = storeEnv(dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	d := &daemon{cmd: cmd, stderr: &bytes.Buffer{}}
	cmd.Stderr = &lockedWriter{w: d.stderr}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		defer close(found)
		for sc.Scan() {
			if m := loginRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
				break
			}
		}
		io.Copy(io.Discard, out)
	}()
	select {
	case m := <-found:
		if m == nil {
			cmd.Wait()
			return nil, fmt.Errorf("serve exited (%v) without its login URL: %s", cmd.ProcessState, d.stderr)
		}
		d.url, d.token = m[1], m[2]
		return d, nil
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("serve printed no login URL within 30 s")
	}
}

func (d *daemon) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-done
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat.
const clockTick = 100

// usage is what a set of processes spent: CPU ticks and bytes written to
// the block layer (/proc/PID/io write_bytes: the WAL, checkpoints, spools).
type usage struct {
	cpu     int64
	coreCPU int64 // of the processes among them that are a local core
	written int64
}

func readProcs(pids []int) usage {
	var u usage
	for _, pid := range pids {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
			if len(f) > 12 {
				ut, _ := strconv.ParseInt(f[11], 10, 64)
				st, _ := strconv.ParseInt(f[12], 10, 64)
				u.cpu += ut + st
				if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && isCore(cmd) {
					u.coreCPU += ut + st
				}
			}
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
			for l := range strings.SplitSeq(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
					n, _ := strconv.ParseInt(v, 10, 64)
					u.written += n
				}
			}
		}
	}
	return u
}

// isCore reports whether a /proc/PID/cmdline is a local core's
// (coditect core …).
func isCore(cmdline []byte) bool {
	args := bytes.Split(cmdline, []byte{0})
	return len(args) > 1 && string(args[1]) == "core"
}
