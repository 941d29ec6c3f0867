package server_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/internal/testbin"
	"github.com/coditect/coditect/server"
	"github.com/coditect/coditect/server/localcore"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/tools"
)

// coreTestEnv is a store whose `coditect mcp` processes share a local
// core, with its socket under a runtime directory of the test's own.
type coreTestEnv struct {
	*stdioEnv
	run   string
	paths localcore.Paths
	env   []string // more environment of the processes mcp returns
}

func newCoreEnv(t *testing.T) *coreTestEnv {
	t.Helper()
	e := &coreTestEnv{stdioEnv: newStdioEnv(t), run: t.TempDir()}
	p, err := localcore.Locate(filepath.Join(e.data, "coditect.db"), e.run)
	if err != nil {
		t.Fatal(err)
	}
	e.paths = p
	// Cores started by the test's processes end with it.
	t.Cleanup(func() { e.killCore(t) })
	return e
}

// mcp returns `coditect mcp args…` in core mode (idle grace idle).
func (e *coreTestEnv) mcp(t *testing.T, idle string, args ...string) (*exec.Cmd, *syncBuffer) {
	return e.command(t, append([]string{"XDG_RUNTIME_DIR=" + e.run, "CODITECT_CORE_IDLE=" + idle, "CODITECT_CORE="}, e.env...), args...)
}

// corePID is the pid of the core holding the store's core lock, 0 if none.
func (e *coreTestEnv) corePID() int { return localcore.Owner(e.paths) }

// killCore kills the running core, if any, and waits until its lock is
// released.
func (e *coreTestEnv) killCore(t *testing.T) {
	t.Helper()
	pid := e.corePID()
	if pid == 0 {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, 10*time.Second, "the killed core to release its lock", func() bool { return e.corePID() != pid })
}

// waitFor polls cond, backing off, until it holds or d has passed.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	backoff := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// running reports whether process pid runs (a zombie, exited but not
// yet reaped by its new parent, does not).
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

var corePIDPattern = regexp.MustCompile(`core_pid=(\d+)`)

// resentPattern finds how many calls a forwarder sent again to a new core.
var resentPattern = regexp.MustCompile(`connected to a new local core.* resent=(\d+)`)

// directPattern finds each core connection that answers the client
// directly.
var directPattern = regexp.MustCompile(`serving MCP on stdio through the local core.* answers_directly=true`)

// readsPattern is the log line of a forwarder whose core reads its
// client's input itself.
var readsPattern = regexp.MustCompile(`serving MCP on stdio through the local core.* reads_input=true`)

// forwardedTo is the pid of the core a coditect mcp said it forwards to.
func forwardedTo(t *testing.T, stderr *syncBuffer) int {
	t.Helper()
	m := corePIDPattern.FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("coditect mcp did not forward to a core; stderr: %s", stderr.String())
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// TestCoreSharedByTwoProcesses: two `coditect mcp` processes of two users
// on one store are served by one core; each call is audited as its own
// user and agent; each sees the other's agent; when a process's stdin
// closes, its agent goes offline, as in direct mode.
func TestCoreSharedByTwoProcesses(t *testing.T) {
	e := newCoreEnv(t)
	start := func(user, name string) (*client, *syncBuffer) {
		cmd, stderr := e.mcp(t, "30s", "--tenant", "acme", "--user", user, "--agent", name, "--toolsets", "core,coord")
		return connect(t, &mcp.CommandTransport{Command: cmd}, "lmstudio", eraLegacy), stderr
	}
	alice, aErr := start("alice", "coder-a")
	bob, bErr := start("bob", "coder-b")
	aPID, bPID := forwardedTo(t, aErr), forwardedTo(t, bErr)
	if aPID != bPID || aPID != e.corePID() || aPID == 0 {
		t.Fatalf("core pids %d and %d, lock held by %d: want one core", aPID, bPID, e.corePID())
	}
	ws := t.TempDir()
	sids := map[string]string{}
	for user, c := range map[string]*client{"alice": alice, "bob": bob} {
		m, _ := c.ok("whoami", map[string]any{})
		if m["user"] != user || m["tenant"] != "acme" {
			t.Errorf("whoami through the core = %v, want user %s", m, user)
		}
		m, _ = c.ok("session_start", map[string]any{"title": "shared core", "workspace": ws})
		sids[user] = m["session_id"].(string)
		c.ok("note", map[string]any{"text": "note by " + user, "session_id": sids[user]})
	}
	for self, c := range map[string]*client{"coder-a": alice, "coder-b": bob} {
		m, text := c.ok("agents_list", map[string]any{})
		for _, other := range []string{"coder-a", "coder-b"} {
			if !strings.Contains(text, other) && !strings.Contains(fmt.Sprint(m), other) {
				t.Errorf("%s's agents_list does not show %s: %s", self, other, text)
			}
		}
	}
	sc := e.local(t, "acme", "alice")
	agents := map[string]string{} // agent id -> user
	for _, ev := range events(t, sc, audit.Filter{Kind: "tool.called"}) {
		if ev.Agent == "" || ev.Attrs["client"] != "lmstudio" {
			t.Errorf("tool.called %+v: want an agent of client lmstudio", ev)
		}
		if u, ok := agents[ev.Agent]; ok && u != ev.User {
			t.Errorf("agent %s called as %s and %s", ev.Agent, u, ev.User)
		}
		agents[ev.Agent] = ev.User
	}
	users := slices.Sorted(func(yield func(string) bool) {
		for _, u := range agents {
			if !yield(u) {
				return
			}
		}
	})
	if !slices.Equal(users, []string{"alice", "bob"}) {
		t.Errorf("calls audited as %v, want one agent of alice and one of bob", agents)
	}
	for user, sid := range sids {
		notes := events(t, sc, audit.Filter{Kind: "note.added", Session: sid})
		if len(notes) != 1 || notes[0].User != user || notes[0].Summary != "note by "+user {
			t.Errorf("%s's session holds notes %+v", user, notes)
		}
	}
	// Closing alice's stdin ends her process; the core marks her agent
	// offline before the process exits, as a direct process does.
	aliceID := alice.agentID()
	if err := alice.cs.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	ag, err := agent.Get(context.Background(), sc, aliceID)
	if err != nil {
		t.Fatal(err)
	}
	if ag.Liveness != agent.Offline {
		t.Errorf("alice's agent after her process ended: %+v, want offline", ag)
	}
	if _, text := bob.ok("whoami", map[string]any{}); text == "" {
		t.Error("bob's whoami after alice left: no text")
	}
	if e.corePID() != aPID {
		t.Errorf("core %d replaced while bob was connected (now %d)", aPID, e.corePID())
	}
}

// TestCoreOffServesDirectly: --core off, and CODITECT_CORE=off, serve in
// the process itself: no core is started.
func TestCoreOffServesDirectly(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"flag", nil, []string{"--core", "off"}},
		{"environment", []string{"CODITECT_CORE=off"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCoreEnv(t)
			cmd, stderr := e.command(t, append([]string{"XDG_RUNTIME_DIR=" + e.run}, tc.env...), append([]string{"--tenant", "acme"}, tc.args...)...)
			c := connect(t, &mcp.CommandTransport{Command: cmd}, "direct", eraModern)
			c.ok("whoami", map[string]any{})
			if pid := e.corePID(); pid != 0 {
				t.Errorf("a core (pid %d) runs", pid)
			}
			if _, err := os.Lstat(e.paths.Socket); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("core socket: %v", err)
			}
			if s := stderr.String(); !strings.Contains(s, "serving MCP on stdio") || strings.Contains(s, "local core") {
				t.Errorf("stderr %q: want the direct server's log", s)
			}
		})
	}
}

// TestCoreNotForSharedStores: an FDB store is served directly (its
// identity rules apply: a token is required), and no core is started.
func TestCoreNotForSharedStores(t *testing.T) {
	run := t.TempDir()
	for _, core := range []string{"auto", "off"} {
		cmd := exec.Command(coditectBinary(t), "mcp", "--core", core, "--store", "fdb:///nonexistent/fdb.cluster")
		cmd.Env = append(os.Environ(), "CODITECT_TOKEN=", "XDG_RUNTIME_DIR="+run)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("--core %s on an FDB store without a token: no error\n%s", core, out)
		}
		if strings.Contains(string(out), "local core") {
			t.Errorf("--core %s on an FDB store: %s", core, out)
		}
	}
	if entries, _ := os.ReadDir(run); len(entries) != 0 {
		t.Errorf("runtime dir holds %v after FDB runs", entries)
	}
}

// TestCoreIdleExit: a core whose last connection ended exits after its
// idle grace, removing its socket; the next coditect mcp starts another.
func TestCoreIdleExit(t *testing.T) {
	e := newCoreEnv(t)
	cmd, stderr := e.mcp(t, "100ms", "--tenant", "acme")
	c := connect(t, &mcp.CommandTransport{Command: cmd}, "idle", eraModern)
	first := forwardedTo(t, stderr)
	c.ok("whoami", map[string]any{})
	c.cs.Close()
	waitFor(t, 20*time.Second, "the idle core to exit", func() bool { return e.corePID() == 0 })
	if _, err := os.Lstat(e.paths.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after idle exit: %v", err)
	}
	// The lock goes first; the process ends once it has committed its
	// last records and closed the store.
	waitFor(t, 20*time.Second, "the idle core's process to end", func() bool { return !running(first) })
	cmd, stderr = e.mcp(t, "30s", "--tenant", "acme")
	c = connect(t, &mcp.CommandTransport{Command: cmd}, "idle", eraModern)
	c.ok("whoami", map[string]any{})
	if second := forwardedTo(t, stderr); second == first || second != e.corePID() {
		t.Errorf("second core %d (first %d, lock held by %d)", second, first, e.corePID())
	}
}

// TestCoreStaleSocketReplaced: a socket file left by a core that was
// killed (no listener, no lock) does not stop the next coditect mcp: the
// core it starts replaces the file.
func TestCoreStaleSocketReplaced(t *testing.T) {
	e := newCoreEnv(t)
	if err := os.MkdirAll(filepath.Dir(e.paths.Socket), 0o700); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: e.paths.Socket}); err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)
	cmd, stderr := e.mcp(t, "30s", "--tenant", "acme")
	c := connect(t, &mcp.CommandTransport{Command: cmd}, "stale", eraModern)
	c.ok("whoami", map[string]any{})
	if pid := forwardedTo(t, stderr); pid != e.corePID() {
		t.Errorf("forwarded to %d, lock held by %d", pid, e.corePID())
	}
}

// TestCoreRefusesBadToken: a token the core refuses fails the process
// with the error a direct process gives, and nothing is served.
func TestCoreRefusesBadToken(t *testing.T) {
	e := newCoreEnv(t)
	var outs []string
	for _, core := range []string{"auto", "off"} {
		cmd, stderr := e.command(t, []string{"XDG_RUNTIME_DIR=" + e.run, "CODITECT_TOKEN=cdt_bogus"}, "--core", core)
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.Output()
		if err == nil || len(out) != 0 {
			t.Fatalf("--core %s with a bogus token: err %v, stdout %q", core, err, out)
		}
		s := stderr.String()
		outs = append(outs, s[strings.LastIndex(strings.TrimSpace(s), "\n")+1:])
	}
	if outs[0] != outs[1] || !strings.Contains(outs[0], "CODITECT_TOKEN") {
		t.Errorf("core mode said %q, direct mode %q: want the same error", outs[0], outs[1])
	}
}

// TestCoreKilledMidStream: the core is killed (SIGKILL) while an agent
// makes a stream of note calls; the forwarder starts a new core and sends
// the calls in flight again with the idempotency keys it added. No call
// gets a protocol error, every acknowledged note is in the store exactly
// once, and the next call works: with the core answering the client
// directly (on Linux) and with the forwarder relaying its answers.
func TestCoreKilledMidStream(t *testing.T) {
	for _, answers := range []string{"direct", "answers", "relay"} {
		t.Run(answers, func(t *testing.T) {
			e := newCoreEnv(t)
			e.env = []string{"CODITECT_CORE_ANSWERS=" + answers}
			linux := runtime.GOOS == "linux"
			coreKilledMidStream(t, e, answers != "relay" && linux, answers == "direct" && linux)
		})
	}
}

// coreKilledMidStream: direct, the cores answer the client themselves;
// reads, they read its input too.
func coreKilledMidStream(t *testing.T, e *coreTestEnv, direct, reads bool) {
	cmd, stderr := e.mcp(t, "30s", "--tenant", "acme", "--user", "alice")
	c := connect(t, &mcp.CommandTransport{Command: cmd}, "stream", eraLegacy)
	first := forwardedTo(t, stderr)
	const workers, perWorker = 4, 40
	kills := 2
	if testing.Short() {
		kills = 1
	}
	type outcome struct {
		text string
		ok   bool
		msg  string
	}
	results := make(chan outcome, workers*perWorker)
	var sent sync.WaitGroup
	progress := make(chan struct{}, workers*perWorker)
	for w := range workers {
		sent.Go(func() {
			for i := range perWorker {
				text := fmt.Sprintf("note %d-%d", w, i)
				res, err := c.cs.CallTool(testContext(t), &mcp.CallToolParams{Name: "note", Arguments: map[string]any{"text": text}})
				if err != nil {
					t.Errorf("%s: protocol error %v", text, err)
					results <- outcome{text: text}
					continue
				}
				msg := ""
				for _, ct := range res.Content {
					if tc, ok := ct.(*mcp.TextContent); ok {
						msg += tc.Text
					}
				}
				results <- outcome{text: text, ok: !res.IsError, msg: msg}
				progress <- struct{}{}
			}
		})
	}
	// Kill the core after some calls were answered, kills times, each
	// time once its successor has answered calls too.
	pid := first
	for k := range kills {
		for range 10 + 20*k {
			<-progress
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "a new core", func() bool { p := e.corePID(); return p != 0 && p != pid })
		pid = e.corePID()
	}
	sent.Wait()
	close(results)
	acked, unknown := map[string]bool{}, 0
	for r := range results {
		switch {
		case r.ok:
			acked[r.text] = true
		case strings.Contains(r.msg, "outcome") || strings.Contains(r.msg, "still running"):
			// A note holds its key in its own transaction: the call sent
			// again after a kill is run or replayed, never left running.
			unknown++
			t.Errorf("%s: re-sent after the kill and told %q", r.text, r.msg)
		default:
			t.Errorf("%s: tool error %q", r.text, r.msg)
		}
	}
	sc := e.local(t, "acme", "alice")
	count := map[string]int{}
	for _, ev := range events(t, sc, audit.Filter{Kind: "note.added"}) {
		count[ev.Summary]++
	}
	for text := range acked {
		if count[text] != 1 {
			t.Errorf("acknowledged %q is in the store %d times, want once", text, count[text])
		}
	}
	for text, n := range count {
		if n > 1 {
			t.Errorf("%q is in the store %d times", text, n)
		}
	}
	if len(acked) < workers*perWorker/2 {
		t.Errorf("only %d of %d calls acknowledged", len(acked), workers*perWorker)
	}
	// Only the calls in flight at a kill are sent again, and the one whose
	// answer the core wrote but had not marked written when it died: not
	// those it answered, also when it wrote the answers to the client
	// itself (on Linux, where every core here does).
	log := stderr.String()
	resends := resentPattern.FindAllStringSubmatch(log, -1)
	if len(resends) != kills {
		t.Errorf("%d core replacements logged, want %d", len(resends), kills)
	}
	for _, m := range resends {
		if n, _ := strconv.Atoi(m[1]); n > workers+1 {
			t.Errorf("%d calls sent again after a kill, with %d in flight at most", n, workers)
		}
	}
	if n := len(directPattern.FindAllString(log, -1)); direct && n != kills+1 || !direct && n != 0 {
		t.Errorf("%d of %d cores answered the client directly (want all: %v): %s", n, kills+1, direct, log)
	}
	if n := len(readsPattern.FindAllString(log, -1)); reads && n != kills+1 || !reads && n != 0 {
		t.Errorf("%d of %d cores read the client's input (want all: %v): %s", n, kills+1, reads, log)
	}
	t.Logf("%d acknowledged, %d with an unknown outcome, %d kills", len(acked), unknown, kills)
	c.ok("whoami", map[string]any{})
	if forwardedTo(t, stderr) != first {
		t.Errorf("first core pid changed in the log")
	}
}

// TestCoreControlLookalike: a host's line that begins as a forwarder's
// control line does (an @, a number, a quoted id) reaches the core as a
// line that is not JSON, and the host gets the parse error a direct
// process gives; the requests around it are answered under their ids,
// one of them a long string.
func TestCoreControlLookalike(t *testing.T) {
	e := newCoreEnv(t)
	cmd, stderr := e.mcp(t, "30s", "--tenant", "acme")
	stdin, stdout := testbin.StartPiped(t, cmd)
	defer cmd.Wait()
	defer stdin.Close()
	_, err := io.WriteString(stdin, strings.Join([]string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`@3 "n3"`,
		`{"jsonrpc":"2.0","id":3,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":"` + strings.Repeat("i", 10000) + `","method":"ping"}`,
	}, "\n")+"\n")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var ids []any
	parseErrors := 0
	for len(ids) < 3 && sc.Scan() {
		var msg struct {
			ID    any `json:"id"`
			Error *struct {
				Code int `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &msg); err != nil {
			t.Fatalf("stdout line is not JSON: %q", sc.Text())
		}
		switch {
		case msg.ID == nil && msg.Error != nil && msg.Error.Code == -32700:
			parseErrors++
		case msg.ID != nil:
			ids = append(ids, msg.ID)
		default:
			t.Errorf("unexpected line %q", sc.Text())
		}
	}
	if len(ids) != 3 || parseErrors != 1 {
		t.Errorf("answers to %.80v and %d parse errors; want ids 1, 3 and a long one and one parse error\n%s", ids, parseErrors, stderr.String())
	}
	if runtime.GOOS == "linux" && !directPattern.MatchString(stderr.String()) {
		t.Errorf("the core does not answer directly: %s", stderr.String())
	}
}

// TestCoreAnswersSetting: $CODITECT_CORE_ANSWERS other than direct,
// answers or relay is refused with a clear error before anything is served.
func TestCoreAnswersSetting(t *testing.T) {
	e := newCoreEnv(t)
	e.env = []string{"CODITECT_CORE_ANSWERS=sometimes"}
	cmd, stderr := e.mcp(t, "30s", "--tenant", "acme")
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.Output()
	if err == nil || len(out) != 0 || !strings.Contains(stderr.String(), `CODITECT_CORE_ANSWERS="sometimes": want direct, answers or relay`) {
		t.Errorf("exit %v, stdout %q, stderr %q", err, out, stderr.String())
	}
}

// TestCoreRequestIDReused: a host that gives later calls the id of an
// earlier one, once that one was answered, has each call run, through
// the core as in a direct process: the keys the forwarder (or a core
// reading the input) adds name the request, not its id. The third call
// repeats the first's arguments too, which a key drawn from the id would
// have answered as a replay without running it. Each call's record shows
// the arguments the host sent, as in a direct process: without the key
// the forwarder added, with a key of the host's own.
func TestCoreRequestIDReused(t *testing.T) {
	for _, answers := range []string{"direct", "answers", "relay", "off"} {
		t.Run(answers, func(t *testing.T) {
			e := newCoreEnv(t)
			e.env = []string{"CODITECT_CORE_ANSWERS=" + answers}
			args := []string{"--tenant", "acme", "--user", "alice"}
			if answers == "off" {
				args = append(args, "--core", "off")
				e.env = nil
			}
			cmd, stderr := e.mcp(t, "30s", args...)
			stdin, stdout := testbin.StartPiped(t, cmd)
			defer cmd.Wait()
			defer stdin.Close()
			lines := bufio.NewScanner(stdout)
			send := func(line string) {
				t.Helper()
				if _, err := io.WriteString(stdin, line+"\n"); err != nil {
					t.Fatal(err)
				}
			}
			answer := func() string {
				t.Helper()
				if !lines.Scan() {
					t.Fatalf("no answer: %v\n%s", lines.Err(), stderr.String())
				}
				return lines.Text()
			}
			send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
			answer()
			send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
			sent := []string{`{"text":"first"}`, `{"text":"second"}`, `{"text":"first"}`, `{"idempotency_key":"mine-1","text":"own"}`}
			for _, args := range sent {
				send(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"note","arguments":` + args + `}}`)
				got := answer()
				var res answerLine
				if err := json.Unmarshal([]byte(got), &res); err != nil || string(res.ID) != "5" || res.Result.IsError || res.Result.StructuredContent["replayed"] != nil {
					t.Errorf("note %s: answer %s", args, got)
				}
			}
			sc := e.local(t, "acme", "alice")
			count := map[string]int{}
			for _, ev := range events(t, sc, audit.Filter{Kind: "note.added"}) {
				count[ev.Summary]++
			}
			if count["first"] != 2 || count["second"] != 1 || count["own"] != 1 {
				t.Errorf("notes in the store %v, want first twice, second and own once", count)
			}
			var recorded []string
			for _, ev := range events(t, sc, audit.Filter{Kind: "tool.called"}) {
				if ev.Attrs["tool"] == "note" {
					b, _ := json.Marshal(ev.Attrs["args"])
					recorded = append(recorded, fmt.Sprintf("%s %v", b, ev.Attrs["idempotency_key"]))
				}
			}
			want := []string{`{"text":"first"} <nil>`, `{"text":"second"} <nil>`, `{"text":"first"} <nil>`, `{"text":"own"} mine-1`}
			if !slices.Equal(recorded, want) {
				t.Errorf("recorded arguments and keys\n%s\nwant\n%s", strings.Join(recorded, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestCoreAnswersAsDirect: a host that writes odd and hostile lines gets
// the same answers through the core, in each of its modes, as from a
// process serving the store itself (--core off): the same ids, results
// and errors, compared once event ids and times are masked, whatever
// their order.
func TestCoreAnswersAsDirect(t *testing.T) {
	lines := []string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{not json`,
		``,
		`[]`,
		`[{"jsonrpc":"2.0","id":3,"method":"ping"}]`,
		`{"jsonrpc":"2.0","id":null,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`,
		`{"jsonrpc":"2.0","id":"1e400","method":"ping"}`,
		`{"jsonrpc":"2.0","id":"a\"b\\c","method":"ping"}`,
		`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"note","arguments":null}}`,
		`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"note","arguments":{"text":null}}}`,
		`{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"note","arguments":"text"}}`,
		`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"nope","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"note","arguments":{"text":"x","idempotency_key":null}}}`,
		`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"note","arguments":{"text":"x","idempotency_key":5}}}`,
		`{"jsonrpc":"2.0","id":10,"method":"nonexistent"}`,
		`{"jsonrpc":"2.0","id":11}`,
		`{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"note","arguments":{"text":"y"}},"extra":1}`,
		`{"jsonrpc":"2.0","id":13,"method":"tools/call","params":{"name":"note"}}`,
		`{"jsonrpc":"2.0","id":14,"method":"tools/call","params":{"name":"message_send","arguments":{"to":"nobody","body":"hi"}}}`,
		`{"jsonrpc":"2.0","method":"tools/call","params":{"name":"note","arguments":{"text":"a notification"}}}`,
		`{"jsonrpc":"2.0","id":15,"method":"tools/call","params":{"name":"note","arguments":{"text":"` + strings.Repeat("z", 70000) + `"}}}`,
		`{"jsonrpc":"2.0","id":16,"method":"ping"}`,
		// Arguments just under the tool's limit (they name an unknown
		// argument, which is refused once their size passed).
		`{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"note","arguments":{"text":"x","pad":"` + strings.Repeat("p", tools.MaxArgs-10-21) + `"}}}`,
	}
	// A line just under the line limit, its call's arguments small.
	limit, err := server.MaxStdioMessage(server.CoreMCP{})
	if err != nil {
		t.Fatal(err)
	}
	long := `{"jsonrpc":"2.0","id":18,"method":"tools/call","params":{"_meta":{"pad":"%s"},"name":"note","arguments":{"text":"near the line limit"}}}`
	lines = append(lines, fmt.Sprintf(long, strings.Repeat("m", limit-8-len(long)+2)))
	// The handshake out of order, the other methods, and calls that
	// write, once and again with a key.
	handshake := []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":3,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`,
		`{"jsonrpc":"2.0","id":4,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"again","version":"2"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":5,"method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":6,"method":"logging/setLevel","params":{"level":"debug"}}`,
		`{"jsonrpc":"2.0","id":7,"method":"resources/list"}`,
		`{"jsonrpc":"2.0","id":8,"method":"prompts/list"}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":99}}`,
		`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"session_start","arguments":{"title":"x","workspace":"/nonexistent"}}}`,
		`{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"task_create","arguments":{"title":"t"}}}`,
		`{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"task_create","arguments":{"title":"t","idempotency_key":"k1"}}}`,
	}
	masks := []struct {
		re   *regexp.Regexp
		with string
	}{
		{regexp.MustCompile(`[0-9a-f]{24}`), "EVENT"},
		{regexp.MustCompile(`\d{4}-\d\d-\d\dT[0-9:.]+Z`), "TIME"},
		{regexp.MustCompile(`\b[a-z]{2,8}_[0-9A-Z]{26}\b`), "ID"},
		// The two keyed calls of handshake run at once: either is the
		// one that creates, the other replays it.
		{regexp.MustCompile(`^\{"jsonrpc":"2.0","id":1[23],`), `{"jsonrpc":"2.0","id":"12 or 13",`},
	}
	// A long call the host cancels, then a call behind it.
	cancel := []string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"inbox","arguments":{"wait_seconds":60}}}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2,"reason":"the user gave up"}}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"agents_list","arguments":{}}}`,
	}
	// Ids a host should not send, each on a call that writes.
	ids := []string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
	}
	for i, id := range []string{`1e400`, `9007199254740993`, `9007199254740992`, `-0`, `1.5`, `""`, `" "`, `"ü\u2028é"`, `"` + strings.Repeat("i", 5000) + `"`, `true`, `[2]`} {
		ids = append(ids, `{"jsonrpc":"2.0","id":`+id+`,"method":"tools/call","params":{"name":"note","arguments":{"text":"id `+strconv.Itoa(i)+`"}}}`)
	}
	run := func(t *testing.T, answers string, lines []string) []string {
		e := newCoreEnv(t)
		args := []string{"--tenant", "acme", "--user", "alice", "--toolsets", "core,coord"}
		if answers == "off" {
			args = append(args, "--core", "off")
		} else {
			e.env = []string{"CODITECT_CORE_ANSWERS=" + answers}
		}
		cmd, stderr := e.mcp(t, "30s", args...)
		stdin, stdout := testbin.StartPiped(t, cmd)
		go func() {
			_, _ = io.WriteString(stdin, strings.Join(lines, "\n")+"\n")
			stdin.Close()
		}()
		out, err := io.ReadAll(stdout)
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("exit: %v\n%s", err, stderr.String())
		}
		var got []string
		// The calls' records: tool, outcome, arguments and the other
		// attributes a host's call determines.
		for _, ev := range events(t, e.local(t, "acme", "alice"), audit.Filter{Kind: "tool.called"}) {
			delete(ev.Attrs, "duration_ms")
			b, _ := json.Marshal(ev.Attrs)
			got = append(got, "record "+ev.Summary[:strings.LastIndex(ev.Summary, " in ")]+" "+string(b))
		}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if !json.Valid([]byte(l)) {
				t.Errorf("stdout line is not JSON: %.200q", l)
				continue
			}
			var m struct {
				Result struct {
					Tools json.RawMessage `json:"tools"`
				} `json:"result"`
			}
			if json.Unmarshal([]byte(l), &m) == nil && m.Result.Tools != nil {
				sum := sha256.Sum256([]byte(l))
				l = fmt.Sprintf("tools/list %x", sum[:8])
			}
			for _, mk := range masks {
				l = mk.re.ReplaceAllString(l, mk.with)
			}
			got = append(got, l)
		}
		slices.Sort(got)
		return got
	}
	for name, lines := range map[string][]string{"hostile": lines, "handshake": append(handshake, strings.Replace(handshake[len(handshake)-1], `"id":12`, `"id":13`, 1)), "cancel": cancel, "ids": ids} {
		t.Run(name, func(t *testing.T) {
			want := run(t, "off", lines)
			if len(want) < len(lines) {
				t.Fatalf("a direct process gave %d answers and records:\n%s", len(want), strings.Join(want, "\n"))
			}
			for _, answers := range []string{"direct", "answers", "relay"} {
				t.Run(answers, func(t *testing.T) {
					if got := run(t, answers, lines); !slices.Equal(got, want) {
						t.Errorf("through the core:\n%s\n\ndirect:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
					}
				})
			}
		})
	}
}

// TestPipelinedInitialize: a host that writes its initialize and its first
// calls at once, without waiting for the answer, has every call run as
// the one agent of its clientInfo and recorded with it, through the core
// and in a direct process.
func TestPipelinedInitialize(t *testing.T) {
	for _, mode := range []string{"core", "off"} {
		t.Run(mode, func(t *testing.T) {
			e := newCoreEnv(t)
			args := []string{"--tenant", "acme", "--user", "alice"}
			if mode == "off" {
				args = append(args, "--core", "off")
			}
			cmd, stderr := e.mcp(t, "30s", args...)
			stdin, stdout := testbin.StartPiped(t, cmd)
			const calls = 40
			lines := []string{
				`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"eager","version":"2"}}}`,
				`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
			}
			for i := range calls {
				tool := "whoami"
				if i%2 == 1 {
					tool = "note"
				}
				lines = append(lines, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"%s","arguments":{"text":"n%d"}}}`, i+1, tool, i))
			}
			go func() {
				_, _ = io.WriteString(stdin, strings.Join(lines, "\n")+"\n")
				stdin.Close()
			}()
			if _, err := io.Copy(io.Discard, stdout); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("exit: %v\n%s", err, stderr.String())
			}
			sc := e.local(t, "acme", "alice")
			agents := map[string]bool{}
			recs := events(t, sc, audit.Filter{Kind: "tool.called"})
			for _, ev := range recs {
				agents[ev.Agent] = true
				if ev.Attrs["client"] != "eager" || ev.Attrs["client_version"] != "2" {
					t.Errorf("%s recorded with client %v %v, want eager 2", ev.Attrs["tool"], ev.Attrs["client"], ev.Attrs["client_version"])
				}
			}
			if len(recs) != calls || len(agents) != 1 {
				t.Errorf("%d records by agents %v, want %d by one agent", len(recs), agents, calls)
			}
			all, err := agent.List(context.Background(), sc, agent.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != 1 || all[0].Client != "eager" {
				t.Errorf("agents registered: %+v, want one, of client eager", all)
			}
		})
	}
}

// TestCancelledAtOnce: a host that cancels a call right behind it, in the
// same write, has the call cancelled, through the core and in a direct
// process, although the call had not started when the cancellation was
// read: the inbox wait ends with the cancellation instead of running its
// 60 s and answering that nothing came.
func TestCancelledAtOnce(t *testing.T) {
	for _, mode := range []string{"core", "off"} {
		t.Run(mode, func(t *testing.T) {
			e := newCoreEnv(t)
			args := []string{"--tenant", "acme", "--user", "alice", "--toolsets", "core,coord"}
			if mode == "off" {
				args = append(args, "--core", "off")
			}
			cmd, stderr := e.mcp(t, "30s", args...)
			stdin, stdout := testbin.StartPiped(t, cmd)
			defer cmd.Wait()
			defer stdin.Close()
			lines := []string{
				`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`,
				`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
			}
			for i := 2; i < 8; i++ {
				lines = append(lines,
					fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"inbox","arguments":{"wait_seconds":60}}}`, i),
					fmt.Sprintf(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":%d,"reason":"the user gave up"}}`, i))
			}
			if _, err := io.WriteString(stdin, strings.Join(lines, "\n")+"\n"); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(stdout)
			for answered := 0; answered < 6; {
				if !sc.Scan() {
					t.Fatalf("output ended: %v\n%s", sc.Err(), stderr.String())
				}
				var m answerLine
				if json.Unmarshal(sc.Bytes(), &m) != nil || string(m.ID) == "1" {
					continue
				}
				answered++
				if !m.Result.IsError || !strings.Contains(m.text(), "cancel") {
					t.Errorf("call %s, cancelled: answered %s", m.ID, sc.Bytes())
				}
			}
		})
	}
}
