package faults_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/internal/testbin"
	"github.com/coditect/coditect/server/localcore"
	"github.com/coditect/coditect/storage/audit"
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

// command is `coditect mcp` in core mode as t1/ada.
func (s *coreStore) command(t *testing.T) (*exec.Cmd, *syncBuffer) {
	cmd := exec.Command(testbin.Coditect(t), "mcp", "--core", "auto", "--store", s.url, "--tenant", "t1", "--user", "ada")
	cmd.Env = append(os.Environ(), "CODITECT_TOKEN=", "CODITECT_CORE=", "XDG_DATA_HOME="+t.TempDir(), "XDG_RUNTIME_DIR="+s.run, "CODITECT_CORE_IDLE=30s")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	return cmd, &stderr
}

// connect starts a `coditect mcp` forwarding to the store's core and
// connects the official SDK client to it; what fails names the step.
func (s *coreStore) connect(ctx context.Context, t *testing.T, step string) (*mcp.ClientSession, *exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd, stderr := s.command(t)
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "lmstudio", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("%s: %v\n%s", step, err, stderr)
	}
	return cs, cmd, stderr
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

// TestCoreSIGKILLMidTraffic kills the local core (SIGKILL) while an
// agent's host writes notes and reads whoami through `coditect mcp`: the
// forwarder starts a new core and sends the calls in flight again, notes
// with the idempotency keys it added. No call fails with a protocol
// error; every acknowledged note is in the log exactly once; every
// acknowledged read has its tool.called record (the new core recovers the
// killed one's spool); the store is intact. 3 kills with -short, else 100
// (make crash) or CODITECT_CRASH_ITERATIONS.
func TestCoreSIGKILLMidTraffic(t *testing.T) {
	s := newCoreStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cs, cmd, stderr := s.connect(ctx, t, "connect")
	defer cs.Close()
	kills, every := 3, 30
	if !testing.Short() {
		kills = 100 // make crash
	}
	if v, err := strconv.Atoi(os.Getenv("CODITECT_CRASH_ITERATIONS")); err == nil && v > 0 {
		kills = v
	}
	var (
		mu       sync.Mutex
		acked    = map[string]string{} // note text -> event id
		unknown  int
		reads    int
		protocol []error
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		writes   = make(chan struct{}, 1<<16)
	)
	wg.Go(func() { // writer
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			text := fmt.Sprintf("note %d", n)
			r, err := callTool(ctx, cs, "note", map[string]any{"text": text})
			mu.Lock()
			switch {
			case err != nil:
				protocol = append(protocol, fmt.Errorf("%s: %w", text, err))
			case !r.isError:
				acked[text], _ = r.structured["event_id"].(string)
			case strings.Contains(r.text, "still running") || strings.Contains(r.text, "may or may not"):
				// A note holds its key in its own transaction: the call
				// sent again after a kill is run or replayed, never left
				// running or unknown.
				unknown++
				protocol = append(protocol, fmt.Errorf("%s: re-sent after the kill and told %s", text, r.text))
			default:
				protocol = append(protocol, fmt.Errorf("%s: tool error %s", text, r.text))
			}
			mu.Unlock()
			writes <- struct{}{}
		}
	})
	wg.Go(func() { // reader
		for {
			select {
			case <-stop:
				return
			default:
			}
			r, err := callTool(ctx, cs, "whoami", map[string]any{})
			mu.Lock()
			if err != nil || r.isError {
				protocol = append(protocol, fmt.Errorf("whoami: %v %s", err, r.text))
			} else {
				reads++
			}
			mu.Unlock()
		}
	})
	pid := s.waitCore(t, 0)
	for range kills {
		for range every {
			<-writes
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		pid = s.waitCore(t, pid)
	}
	for range every {
		<-writes
	}
	close(stop)
	wg.Wait()
	if len(protocol) > 0 {
		t.Fatalf("%d calls failed: %v\n%s", len(protocol), protocol[:min(5, len(protocol))], stderr)
	}
	// Closing stdin ends the forwarder once the core has committed the
	// connection's records.
	_ = cs.Close()
	_ = cmd.Wait()

	sc, _ := localScope(t, s.url, "t1", "ada")
	count := map[string]int{}
	for _, ev := range allEvents(t, sc, audit.Filter{Kind: "note.added"}) {
		count[ev.Summary]++
	}
	for text := range acked {
		if count[text] != 1 {
			t.Errorf("acknowledged %q is in the log %d times, want once", text, count[text])
		}
	}
	for text, n := range count {
		if n > 1 {
			t.Errorf("%q is in the log %d times", text, n)
		}
	}
	calls := 0
	for _, ev := range allEvents(t, sc, audit.Filter{Kind: "tool.called"}) {
		if ev.Attrs["tool"] == "whoami" {
			calls++
		}
	}
	// A read in flight at a kill may run twice (once per core).
	if calls < reads || calls > reads+kills {
		t.Errorf("whoami: %d acknowledged, %d tool.called records; want every acknowledged call's record", reads, calls)
	}
	t.Logf("%d core kills: %d notes acknowledged, each logged once, %d told their outcome is unknown; whoami: %d acknowledged, %d records",
		kills, len(acked), unknown, reads, calls)
	checkStore(t, sc, s.dbPath)
}

// TestForwarderSIGKILLMidTraffic kills `coditect mcp` forwarding to a
// core while its host writes and reads: every acknowledged note is in the
// log, the core marks the agent offline and commits the acknowledged
// reads' records (its connection ended), and the next process is served
// by the same core.
func TestForwarderSIGKILLMidTraffic(t *testing.T) {
	s := newCoreStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cs, cmd, _ := s.connect(ctx, t, "connect")
	defer cs.Close()
	core := s.waitCore(t, 0)
	var (
		mu     sync.Mutex
		acked  []string
		reads  int
		killed = make(chan struct{})
		once   sync.Once
		wg     sync.WaitGroup
	)
	kill := func() { once.Do(func() { close(killed); _ = cmd.Process.Signal(syscall.SIGKILL) }) }
	wg.Go(func() {
		for n := 0; ; n++ {
			id, err := note(ctx, cs, fmt.Sprintf("note %d", n))
			if err != nil {
				kill()
				return
			}
			mu.Lock()
			acked = append(acked, id)
			done := len(acked) >= 40
			mu.Unlock()
			if done {
				kill()
			}
		}
	})
	wg.Go(func() {
		for {
			r, err := callTool(ctx, cs, "whoami", map[string]any{})
			if err != nil || r.isError {
				kill()
				return
			}
			mu.Lock()
			reads++
			mu.Unlock()
		}
	})
	wg.Wait()
	<-killed

	sc, _ := localScope(t, s.url, "t1", "ada")
	inLog := map[string]bool{}
	for _, ev := range allEvents(t, sc, audit.Filter{Kind: "note.added"}) {
		inLog[ev.ID] = true
	}
	for _, id := range acked {
		if !inLog[id] {
			t.Errorf("acknowledged note %s lost by SIGKILL of coditect mcp", id)
		}
	}
	// When the connection ends the core marks its agent offline and
	// commits the connection's read records, in no promised order: wait
	// for both.
	whoamiRecords := func() int {
		n := 0
		for _, ev := range allEvents(t, sc, audit.Filter{Kind: "tool.called"}) {
			if ev.Attrs["tool"] == "whoami" {
				n++
			}
		}
		return n
	}
	offline := func() bool { return len(allEvents(t, sc, audit.Filter{Kind: "agent.offline"})) > 0 }
	deadline := time.Now().Add(20 * time.Second)
	for backoff := time.Millisecond; whoamiRecords() < reads || !offline(); backoff = min(2*backoff, 100*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("20s after the kill: whoami %d acknowledged, %d records; agent marked offline: %v", reads, whoamiRecords(), offline())
		}
		time.Sleep(backoff)
	}

	cs2, _, stderr2 := s.connect(ctx, t, "a new coditect mcp after SIGKILL")
	defer cs2.Close()
	if _, err := note(ctx, cs2, "after the kill"); err != nil {
		t.Fatalf("note after the kill: %v\n%s", err, stderr2)
	}
	if pid := localcore.Owner(s.paths); pid != core {
		t.Errorf("the core changed from %d to %d when its client was killed", core, pid)
	}
	t.Logf("%d notes acknowledged, all logged; whoami: %d acknowledged, %d records", len(acked), reads, whoamiRecords())
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
