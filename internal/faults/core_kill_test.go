package faults_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/internal/testbin"
	"github.com/coditect/coditect/server/localcore"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/tenant"
)

// coreStore is an embedded store whose `coditect mcp` processes forward
// to a local core (--core auto), with the socket under a runtime
// directory of the test's own. The core is killed when the test ends.
type coreStore struct {
	dbPath, url, run string
	paths            localcore.Paths
}

func newCoreStore(t *testing.T) *coreStore {
	t.Helper()
	s := &coreStore{dbPath: filepath.Join(t.TempDir(), "coditect.db"), run: t.TempDir()}
	s.url = sqliteURL(s.dbPath)
	p, err := localcore.Locate(s.dbPath, s.run)
	if err != nil {
		t.Fatal(err)
	}
	s.paths = p
	t.Cleanup(func() {
		if pid := localcore.Owner(p); pid != 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return s
}

// command is `coditect mcp` in core mode as t1/ada, with args added.
func (s *coreStore) command(t *testing.T, args ...string) (*exec.Cmd, *syncBuffer) {
	cmd := exec.Command(testbin.Coditect(t), append([]string{"mcp", "--core", "auto", "--store", s.url, "--tenant", "t1", "--user", "ada"}, args...)...)
	cmd.Env = append(os.Environ(), "CODITECT_TOKEN=", "CODITECT_CORE=", "XDG_DATA_HOME="+t.TempDir(), "XDG_RUNTIME_DIR="+s.run, "CODITECT_CORE_IDLE=30s")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	return cmd, &stderr
}

// connect starts a `coditect mcp` forwarding to the store's core and
// connects the official SDK client to it (clientInfo lmstudio); what fails
// names the step.
func (s *coreStore) connect(ctx context.Context, t *testing.T, step string) (*mcp.ClientSession, *exec.Cmd, *syncBuffer) {
	t.Helper()
	cs, cmd, stderr, err := s.connectAs(ctx, t, "lmstudio")
	if err != nil {
		t.Fatalf("%s: %v\n%s", step, err, stderr)
	}
	return cs, cmd, stderr
}

// connectAs is connect with the clientInfo name and the command's args
// added (--agent, for one). Closing the session closes the process's stdin and waits
// up to 30s for it to exit before signalling it, so that a forwarder
// slow to end is seen in its exit status rather than ended by SIGTERM.
func (s *coreStore) connectAs(ctx context.Context, t *testing.T, name string, args ...string) (*mcp.ClientSession, *exec.Cmd, *syncBuffer, error) {
	cmd, stderr := s.command(t, args...)
	cs, err := mcp.NewClient(&mcp.Implementation{Name: name, Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd, TerminateDuration: 30 * time.Second}, nil)
	return cs, cmd, stderr, err
}

// waitCore waits until a core other than not holds the store's lock and
// returns its pid.
func (s *coreStore) waitCore(t *testing.T, not int) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for backoff := time.Millisecond; ; backoff = min(2*backoff, 100*time.Millisecond) {
		if pid := localcore.Owner(s.paths); pid != 0 && pid != not {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no core (other than %d) holds the lock after 20s", not)
		}
		time.Sleep(backoff)
	}
}

// waitFor polls cond until it holds, failing the test after limit with
// the state cond last described.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for backoff := time.Millisecond; ; backoff = min(2*backoff, 100*time.Millisecond) {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %s", what, limit, state)
		}
		time.Sleep(backoff)
	}
}

// killLoad is the traffic of several agents through `coditect mcp`
// processes forwarding to one core: per agent, a writer adds notes and a
// reader calls whoami, each one call at a time, without pause, and what
// each call was told is kept for the checks against the log.
type killLoad struct {
	s      *coreStore
	ctx    context.Context
	agents []*loadAgent

	stop     chan struct{} // closed: the writers and readers end
	progress chan struct{} // one slot: a call was acknowledged
	failed   chan struct{} // closed at the first call that failed unexpectedly
	stopOnce sync.Once
	failOnce sync.Once
	wg       sync.WaitGroup
}

// loadAgent is one agent of a killLoad: its name is its client's
// clientInfo name and its --agent, so each is an agent of its own.
type loadAgent struct {
	name string

	mu    sync.Mutex
	sent  int               // notes sent; numbers their texts
	acked map[string]string // acknowledged note text -> its event id
	reads int               // acknowledged whoami calls
	self  string            // the agent id whoami answers
	kills int               // its processes SIGKILLed by the test
	errs  []error
	procs []*loadProc // its processes, the current one last
}

// loadProc is one `coditect mcp` process of an agent and its session.
type loadProc struct {
	cs     *mcp.ClientSession
	cmd    *exec.Cmd
	stderr *syncBuffer
	killed atomic.Bool   // SIGKILLed by the test: its calls may fail
	done   chan struct{} // closed once its writer and reader have returned
}

// startLoad starts n agents' processes and their traffic. The test's
// cleanup ends the traffic and kills the processes still running.
func startLoad(ctx context.Context, t *testing.T, s *coreStore, n int) *killLoad {
	t.Helper()
	l := &killLoad{s: s, ctx: ctx, stop: make(chan struct{}), progress: make(chan struct{}, 1), failed: make(chan struct{})}
	t.Cleanup(func() {
		l.stopOnce.Do(func() { close(l.stop) })
		for _, a := range l.agents {
			for _, p := range a.procs {
				_ = p.cmd.Process.Kill() // os: process already finished when it was waited for
			}
		}
		l.wg.Wait()
	})
	for i := range n {
		a := &loadAgent{name: fmt.Sprintf("agent-%d", i), acked: map[string]string{}}
		l.agents = append(l.agents, a)
		l.start(t, a)
	}
	return l
}

// start starts a `coditect mcp` process for a and its writer and reader.
func (l *killLoad) start(t *testing.T, a *loadAgent) {
	t.Helper()
	cs, cmd, stderr, err := l.s.connectAs(l.ctx, t, a.name, "--agent", a.name)
	if err != nil {
		t.Fatalf("connect %s: %v\n%s", a.name, err, stderr)
	}
	p := &loadProc{cs: cs, cmd: cmd, stderr: stderr, done: make(chan struct{})}
	a.mu.Lock()
	a.procs = append(a.procs, p)
	a.mu.Unlock()
	var calls sync.WaitGroup
	calls.Go(func() { l.write(a, p) })
	calls.Go(func() { l.read(a, p) })
	l.wg.Go(func() {
		calls.Wait()
		close(p.done)
	})
}

func (l *killLoad) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

func (l *killLoad) acknowledged() {
	select {
	case l.progress <- struct{}{}:
	default:
	}
}

// fail records a call's failure, unless the test killed its process.
func (l *killLoad) fail(a *loadAgent, p *loadProc, err error) {
	if p.killed.Load() {
		return
	}
	a.mu.Lock()
	a.errs = append(a.errs, err)
	a.mu.Unlock()
	l.failOnce.Do(func() { close(l.failed) })
}

// write adds notes through p until the load stops or a call fails. A
// note's text names its agent and number, so that the log tells which
// acknowledged note is there and how often.
func (l *killLoad) write(a *loadAgent, p *loadProc) {
	for !l.stopped() {
		a.mu.Lock()
		text := fmt.Sprintf("%s note %d", a.name, a.sent)
		a.sent++
		a.mu.Unlock()
		r, err := callTool(l.ctx, p.cs, "note", map[string]any{"text": text})
		id, _ := r.structured["event_id"].(string)
		if err != nil || r.isError || id == "" {
			// A note holds its key in its own transaction: a call sent
			// again after a core's kill is run or replayed, never told
			// its outcome is unknown.
			l.fail(a, p, fmt.Errorf("%s: %v %s", text, err, r.text))
			return
		}
		a.mu.Lock()
		a.acked[text] = id
		a.mu.Unlock()
		l.acknowledged()
	}
}

// read calls whoami through p until the load stops or a call fails; every
// answer must name the agent (after a core's kill, the forwarder's
// replayed initialize makes the calls act as the same agent).
func (l *killLoad) read(a *loadAgent, p *loadProc) {
	for !l.stopped() {
		r, err := callTool(l.ctx, p.cs, "whoami", map[string]any{})
		id, _ := r.structured["agent_id"].(string)
		name, _ := r.structured["agent_name"].(string)
		if err != nil || r.isError || id == "" {
			l.fail(a, p, fmt.Errorf("whoami: %v %s", err, r.text))
			return
		}
		a.mu.Lock()
		if a.self == "" {
			a.self = id
		}
		self := a.self
		a.reads++
		a.mu.Unlock()
		if id != self || name != a.name {
			l.fail(a, p, fmt.Errorf("whoami answered agent %s (%q), earlier %s (%q)", id, name, self, a.name))
			return
		}
		l.acknowledged()
	}
}

// waitAcked waits until every agent has had every more notes and one more
// whoami acknowledged than when it was called: every agent's traffic then
// flows through the current processes and core.
func (l *killLoad) waitAcked(t *testing.T, every int) {
	t.Helper()
	type mark struct{ notes, reads int }
	marks := make([]mark, len(l.agents))
	for i, a := range l.agents {
		a.mu.Lock()
		marks[i] = mark{len(a.acked), a.reads}
		a.mu.Unlock()
	}
	for {
		behind := ""
		for i, a := range l.agents {
			a.mu.Lock()
			if len(a.acked) < marks[i].notes+every || a.reads < marks[i].reads+1 {
				behind = fmt.Sprintf("%s: %d notes and %d reads acknowledged, %d and %d before", a.name, len(a.acked), a.reads, marks[i].notes, marks[i].reads)
			}
			a.mu.Unlock()
		}
		if behind == "" {
			return
		}
		select {
		case <-l.progress:
		case <-l.failed:
			l.fatal(t, "a call failed")
		case <-l.ctx.Done():
			l.fatal(t, "no progress ("+behind+")")
		}
	}
}

// fatal fails the test with the calls that failed and the processes' logs.
func (l *killLoad) fatal(t *testing.T, what string) {
	t.Helper()
	var b strings.Builder
	for _, a := range l.agents {
		a.mu.Lock()
		if len(a.errs) > 0 {
			fmt.Fprintf(&b, "%s: %d calls failed: %v\n", a.name, len(a.errs), a.errs[:min(5, len(a.errs))])
		}
		for _, p := range a.procs {
			if s := p.stderr.String(); s != "" {
				fmt.Fprintf(&b, "--- %s pid %d:\n%s", a.name, p.cmd.Process.Pid, s)
			}
		}
		a.mu.Unlock()
	}
	t.Fatalf("%s\n%s", what, b.String())
}

// kill SIGKILLs a's current process mid-traffic and waits until its calls
// have ended and the process is reaped.
func (l *killLoad) kill(t *testing.T, a *loadAgent) {
	t.Helper()
	a.mu.Lock()
	p := a.procs[len(a.procs)-1]
	a.kills++
	a.mu.Unlock()
	p.killed.Store(true)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-l.ctx.Done():
		l.fatal(t, fmt.Sprintf("the calls through the killed %s (pid %d) did not end", a.name, p.cmd.Process.Pid))
	}
	_ = p.cs.Close() // reaps the process; its error is the SIGKILL
}

// finish ends the traffic, checks that no call failed, and closes every
// process still running: each must exit by itself (status 0) once its
// stdin is closed, the core having committed its connection's records.
func (l *killLoad) finish(t *testing.T) {
	t.Helper()
	l.stopOnce.Do(func() { close(l.stop) })
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-l.ctx.Done():
		l.fatal(t, "the calls did not end")
	}
	select {
	case <-l.failed:
		l.fatal(t, "a call failed")
	default:
	}
	for _, a := range l.agents {
		p := a.procs[len(a.procs)-1]
		if err := p.cs.Close(); err != nil {
			t.Errorf("%s (pid %d) did not exit cleanly once its stdin closed: %v\n%s", a.name, p.cmd.Process.Pid, err, p.stderr)
		}
	}
}

// resent is how many calls in flight at a core's death the agents'
// processes sent again to the next core, from their logs.
func (l *killLoad) resent() int {
	n := 0
	for _, a := range l.agents {
		for _, p := range a.procs {
			for _, m := range resentRE.FindAllStringSubmatch(p.stderr.String(), -1) {
				k, _ := strconv.Atoi(m[1])
				n += k
			}
		}
	}
	return n
}

var resentRE = regexp.MustCompile(`connected to a new local core.* resent=(\d+)`)

// loadTotals are the figures of a kill test's log check.
type loadTotals struct {
	sent, acked, logged, unacked int // notes
	reads, records               int // whoami calls acknowledged, their records
}

// checkLoad checks the store's log against what the agents were told:
// every acknowledged note is in the log exactly once, as its agent's, with
// the event id its call was told; no note is in the log twice; each
// agent's whoami records are at least its acknowledged calls and at most
// inFlightKills more: one per kill of the agent's own process, which
// leaves the call it had in flight run but unacknowledged. Notes logged
// but never acknowledged (in flight when their process was killed) are
// counted in unacked.
func checkLoad(t *testing.T, sc *tenant.Scope, agents []*loadAgent, inFlightKills func(*loadAgent) int) loadTotals {
	t.Helper()
	var tot loadTotals
	type logged struct {
		n         int
		id, agent string
	}
	notes := map[string]*logged{}
	for _, ev := range allEvents(t, sc, audit.Filter{Kind: "note.added"}) {
		l := notes[ev.Summary]
		if l == nil {
			l = &logged{id: ev.ID, agent: ev.Agent}
			notes[ev.Summary] = l
		}
		l.n++
	}
	records := map[string]int{}
	for _, ev := range allEvents(t, sc, audit.Filter{Kind: "tool.called"}) {
		if ev.Attrs["tool"] == "whoami" {
			records[ev.Agent]++
		}
	}
	acked := map[string]bool{}
	for _, a := range agents {
		for text, id := range a.acked {
			acked[text] = true
			switch l := notes[text]; {
			case l == nil:
				t.Errorf("%s: acknowledged %q (event %s) is not in the log", a.name, text, id)
			case l.n != 1:
				t.Errorf("%s: acknowledged %q is in the log %d times, want once", a.name, text, l.n)
			case l.id != id || l.agent != a.self:
				t.Errorf("%s: acknowledged %q as event %s of agent %s; the log has event %s of agent %s", a.name, text, id, a.self, l.id, l.agent)
			}
		}
		tot.sent += a.sent
		tot.acked += len(a.acked)
		extra := inFlightKills(a)
		if n := records[a.self]; n < a.reads || n > a.reads+extra {
			t.Errorf("%s: whoami acknowledged %d times, %d tool.called records; want every acknowledged call's record and at most %d more", a.name, a.reads, n, extra)
		}
		tot.reads += a.reads
		tot.records += records[a.self]
	}
	for text, l := range notes {
		tot.logged += l.n
		if l.n > 1 {
			t.Errorf("%q is in the log %d times", text, l.n)
		}
		if !acked[text] {
			tot.unacked++
		}
	}
	return tot
}

// crashIterations is short with -short, else long (make crash), unless
// CODITECT_CRASH_ITERATIONS sets it.
func crashIterations(short, long int) int {
	n := long
	if testing.Short() {
		n = short
	}
	if v, err := strconv.Atoi(os.Getenv("CODITECT_CRASH_ITERATIONS")); err == nil && v > 0 {
		n = v
	}
	return n
}

// loadAgents is how many agents the kill tests drive at once, each
// through its own `coditect mcp`.
const loadAgents = 4

// TestCoreSIGKILLMidTraffic kills the local core (SIGKILL) while several
// agents write notes and read whoami through their own `coditect mcp`
// processes, so that the core's group commit holds several agents'
// transactions when it dies: each kill waits until every agent has had
// notes and a read acknowledged by the current core. The forwarders start
// a new core and send the calls in flight again, with the idempotency
// keys they added. No call fails or is told its outcome is unknown; per
// agent, every acknowledged note is in the log exactly once and no note
// twice, and every acknowledged read has exactly one tool.called record
// (the new core recovers the killed one's spool, and a read that ran on
// both cores is recorded once); the store is intact. 3 kills with -short, else 200 (make crash) or
// CODITECT_CRASH_ITERATIONS. The totals are logged.
func TestCoreSIGKILLMidTraffic(t *testing.T) {
	kills, every := crashIterations(3, 200), 5
	s := newCoreStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second+time.Duration(kills)*5*time.Second)
	defer cancel()
	start := time.Now()
	l := startLoad(ctx, t, s, loadAgents)
	pid := s.waitCore(t, 0)
	for range kills {
		l.waitAcked(t, every)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		pid = s.waitCore(t, pid)
	}
	l.waitAcked(t, every)
	l.finish(t)
	elapsed := time.Since(start)

	sc, _ := localScope(t, s.url, "t1", "ada")
	// A read in flight at a kill may run twice, once per core, and is
	// recorded once: every read is acknowledged, and has one record.
	tot := checkLoad(t, sc, l.agents, func(*loadAgent) int { return 0 })
	if tot.unacked > 0 || tot.acked != tot.sent {
		t.Errorf("%d notes sent, %d acknowledged, %d in the log unacknowledged: every note is answered when no forwarder dies", tot.sent, tot.acked, tot.unacked)
	}
	t.Logf("%d core kills under %d agents in %v: %d calls in flight at the kills sent again to the next core; notes: %d acknowledged, %d in the log (each once); whoami: %d acknowledged, %d records",
		kills, len(l.agents), elapsed.Round(time.Millisecond), l.resent(), tot.acked, tot.logged, tot.reads, tot.records)
	checkStore(t, sc, s.dbPath)
}

// TestForwarderSIGKILLMidTraffic kills `coditect mcp` processes
// forwarding to one core, one at a time, while several agents write and
// read through their own: each iteration SIGKILLs one agent's process
// mid-traffic, waits until the core has marked that agent offline (its
// connection ended), and starts a replacement, while the other agents'
// calls go on. No call of a process not killed fails; the core is the
// same throughout; per agent, every acknowledged note is in the log
// exactly once and no note twice, and every acknowledged read's record is
// committed; the store is intact. 2 iterations with -short, else 100
// (make crash) or CODITECT_CRASH_ITERATIONS. The totals are logged.
func TestForwarderSIGKILLMidTraffic(t *testing.T) {
	iterations, every := crashIterations(2, 100), 5
	s := newCoreStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second+time.Duration(iterations)*5*time.Second)
	defer cancel()
	start := time.Now()
	l := startLoad(ctx, t, s, loadAgents)
	core := s.waitCore(t, 0)
	sc, _ := localScope(t, s.url, "t1", "ada")
	offline := func(a *loadAgent) int {
		a.mu.Lock()
		id := a.self
		a.mu.Unlock()
		return len(allEvents(t, sc, audit.Filter{Kind: "agent.offline", Agent: id}))
	}
	for i := range iterations {
		l.waitAcked(t, every)
		a := l.agents[i%len(l.agents)]
		before := offline(a)
		l.kill(t, a)
		waitFor(t, 20*time.Second, fmt.Sprintf("%s marked offline after its process's SIGKILL", a.name), func() (bool, string) {
			n := offline(a)
			return n > before, fmt.Sprintf("%d agent.offline events, %d before the kill", n, before)
		})
		if pid := localcore.Owner(s.paths); pid != core {
			t.Fatalf("the core changed from %d to %d when a forwarder was killed", core, pid)
		}
		l.start(t, a)
	}
	l.waitAcked(t, every)
	l.finish(t)
	elapsed := time.Since(start)
	// The records of a killed connection's reads are committed after its
	// agent is marked offline, the others' when their processes end.
	waitFor(t, 20*time.Second, "every acknowledged read's record committed", func() (bool, string) {
		records := map[string]int{}
		for _, ev := range allEvents(t, sc, audit.Filter{Kind: "tool.called"}) {
			if ev.Attrs["tool"] == "whoami" {
				records[ev.Agent]++
			}
		}
		for _, a := range l.agents {
			if records[a.self] < a.reads {
				return false, fmt.Sprintf("%s: whoami acknowledged %d times, %d records", a.name, a.reads, records[a.self])
			}
		}
		return true, ""
	})
	// A read in flight when its process was killed may have run.
	tot := checkLoad(t, sc, l.agents, func(a *loadAgent) int { return a.kills })
	if pid := localcore.Owner(s.paths); pid != core {
		t.Errorf("the core changed from %d to %d", core, pid)
	}
	t.Logf("%d forwarders SIGKILLed under %d agents in %v, one core throughout: notes: %d acknowledged, %d in the log (each once; %d of them in flight at a kill, unacknowledged); whoami: %d acknowledged, %d records",
		iterations, len(l.agents), elapsed.Round(time.Millisecond), tot.acked, tot.logged, tot.unacked, tot.reads, tot.records)
	checkStore(t, sc, s.dbPath)
}

// TestStoreLockedByAnotherProcessCore is TestStoreLockedByAnotherProcess
// through the local core: while another program holds the store's write
// lock, a read through the core is served, a write fails after the
// store's lock_timeout with the tool error that says the store is locked
// and to retry (the key the forwarder added is released: nothing was
// changed), the core survives, and once the lock is gone the next write
// succeeds and the read's record is committed.
func TestStoreLockedByAnotherProcessCore(t *testing.T) {
	s := newCoreStore(t)
	s.url += "?lock_timeout=500ms"
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cs, cmd, stderr := s.connect(ctx, t, "connect")
	defer cs.Close()
	core := s.waitCore(t, 0)
	before, err := note(ctx, cs, "before the lock")
	if err != nil {
		t.Fatal(err)
	}
	holder := startLockHolder(t, s.dbPath)
	if r, err := callTool(ctx, cs, "audit_query", map[string]any{"kind": "note.added"}); err != nil || r.isError || !strings.Contains(r.text+toJSON(r.structured), before) {
		t.Fatalf("a read while the store is locked: %v %+v", err, r)
	}
	r, err := callTool(ctx, cs, "note", map[string]any{"text": "while locked"})
	if err != nil {
		t.Fatalf("a write while locked broke the connection: %v", err)
	}
	if !r.isError || !strings.Contains(r.text, "locked by another process") || !strings.Contains(strings.ToLower(r.text), "retry") {
		t.Fatalf("a write while another process holds the lock: %+v; want the tool error saying the store is locked and to retry", r)
	}
	holder.release()
	if _, err := note(ctx, cs, "after the lock"); err != nil {
		t.Fatalf("a write after the lock: %v\n%s", err, stderr)
	}
	if pid := localcore.Owner(s.paths); pid != core {
		t.Errorf("the core changed from %d to %d while the store was locked", core, pid)
	}
	_ = cs.Close()
	_ = cmd.Wait()
	sc, _ := localScope(t, s.url, "t1", "ada")
	var texts []string
	for _, ev := range allEvents(t, sc, audit.Filter{Kind: "note.added"}) {
		texts = append(texts, ev.Summary)
	}
	if len(texts) != 2 || texts[0] != "before the lock" || texts[1] != "after the lock" {
		t.Errorf("notes after the lock: %q", texts)
	}
	reads := 0
	for _, ev := range allEvents(t, sc, audit.Filter{Kind: "tool.called"}) {
		if ev.Attrs["tool"] == "audit_query" && ev.Attrs["outcome"] == "ok" {
			reads++
		}
	}
	if reads != 1 {
		t.Errorf("%d records of the read served during the lock, want 1", reads)
	}
	checkStore(t, sc, s.dbPath)
}
