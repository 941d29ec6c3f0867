package faults_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/tools"
)

// spoolPauseEnv makes a starting coditect process pause right after its
// audit spool appears under its name in the spool directory (tools'
// spoolVisible): the moment a neighbour's recovery could take the spool
// of a live process for a dead one's, widened so that a test hits it.
const spoolPauseEnv = "CODITECT_SPOOL_PAUSE"

// TestMCPSpoolRaceConcurrentStarts starts `coditect mcp` processes several
// at once — each recovers the spools of dead processes as it starts —
// while the spool recovery also runs every few milliseconds beside them
// (the daemon's periodic sweep, much more often), each process pausing
// right after its spool appears; each makes read-only calls and is
// SIGKILLed after some are acknowledged. No recovery takes a live
// process's spool, so every acknowledged read has exactly one tool.called
// record once the spools of the killed processes are recovered.
func TestMCPSpoolRaceConcurrentStarts(t *testing.T) {
	rounds, procs, quota := 3, 6, 10
	if !testing.Short() {
		rounds, procs, quota = 40, 8, 40
	}
	dbPath := filepath.Join(t.TempDir(), "coditect.db")
	storeURL := sqliteURL(dbPath)
	sc, st := localScope(t, storeURL, "t1", "ada")
	dir := tenant.NewDirectory(st, "faults-test")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	sweep := sweepSpools(storage.SpoolDir(storeURL), dir, 2*time.Millisecond)
	a := newAcks()
	start := time.Now()
	for r := range rounds {
		var wg sync.WaitGroup
		for i := range procs {
			wg.Go(func() {
				name := fmt.Sprintf("r%d-p%d", r, i)
				if err := runKilledMCP(ctx, t, storeURL, name, quota, false, a, spoolPauseEnv+"=20ms"); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			break
		}
	}
	runs, err := sweep()
	if err != nil {
		t.Fatalf("periodic spool recovery: %v", err)
	}
	reads, writes := finishKillTest(t, a, dir, storage.SpoolDir(storeURL), sc)
	t.Logf("%d coditect mcp processes started %d at a time and SIGKILLed, %d recoveries beside them in %s: %d reads acknowledged (%d writes)",
		rounds*procs, procs, runs, time.Since(start).Round(time.Millisecond), reads, writes)
}

// acks tallies the calls of a kill test, each with the client that made
// it: the tag of every read sent (acknowledged or in flight at a kill) and
// of every read acknowledged, and the event id of every acknowledged write
// (a note).
type acks struct {
	mu     sync.Mutex
	sent   map[string]string
	reads  map[string]string
	writes map[string]string
}

func newAcks() *acks {
	return &acks{sent: map[string]string{}, reads: map[string]string{}, writes: map[string]string{}}
}

func (a *acks) add(m map[string]string, key, client string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m[key] = client
}

// readTag is the workspace argument of a tagged read: session_list, a
// read-only call whose tool.called record carries its arguments, so that
// each call's record can be told apart.
func readTag(client string, n int) string { return fmt.Sprintf("/probe/%s/%d", client, n) }

// drive calls tagged reads on cs, and notes when writes is set, from one
// goroutine each, until kill has been called: it calls kill once quota
// reads (and quota notes) are acknowledged. Calls may fail after that
// (the process is gone); a call failing before is an error.
func drive(ctx context.Context, cs *mcp.ClientSession, client string, quota int, writes bool, a *acks, kill func()) error {
	var (
		mu       sync.Mutex
		nr, nw   int
		errs     []error
		killed   = make(chan struct{})
		killOnce sync.Once
		wg       sync.WaitGroup
	)
	doKill := func() { killOnce.Do(func() { close(killed); kill() }) }
	acked := func(n *int) {
		mu.Lock()
		*n++
		done := nr >= quota && (!writes || nw >= quota)
		mu.Unlock()
		if done {
			doKill()
		}
	}
	fail := func(err error) {
		select {
		case <-killed:
		default:
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
			doKill()
		}
	}
	running := func() bool {
		select {
		case <-killed:
			return false
		default:
			return true
		}
	}
	wg.Go(func() {
		for n := 0; running(); n++ {
			tag := readTag(client, n)
			a.add(a.sent, tag, client)
			r, err := callTool(ctx, cs, "session_list", map[string]any{"workspace": tag})
			if err == nil && r.isError {
				err = fmt.Errorf("session_list: %s", r.text)
			}
			if err != nil {
				fail(err)
				return
			}
			a.add(a.reads, tag, client)
			acked(&nr)
		}
	})
	if writes {
		wg.Go(func() {
			for n := 0; running(); n++ {
				id, err := note(ctx, cs, fmt.Sprintf("%s note %d", client, n))
				if err != nil {
					fail(err)
					return
				}
				a.add(a.writes, id, client)
				acked(&nw)
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("calls failed before the kill: %v", errs)
	}
	return nil
}

// runKilledMCP starts `coditect mcp` (t1/ada) with env added, drives it
// as client (see drive) and SIGKILLs it once its quota is acknowledged.
func runKilledMCP(ctx context.Context, t *testing.T, storeURL, client string, quota int, writes bool, a *acks, env ...string) error {
	cmd, stderr := mcpCommand(t, storeURL)
	cmd.Env = append(cmd.Env, env...)
	cs, err := mcp.NewClient(&mcp.Implementation{Name: client, Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		return fmt.Errorf("connect: %w\n%s", err, stderr)
	}
	defer cs.Close()
	if err := drive(ctx, cs, client, quota, writes, a, func() { _ = cmd.Process.Signal(syscall.SIGKILL) }); err != nil {
		return fmt.Errorf("%w\n%s", err, stderr)
	}
	return nil
}

// sweepSpools runs the spool recovery of spoolDir every period, as a
// daemon's periodic sweep does, until the returned stop is called; stop
// returns how many sweeps ran and the first error.
func sweepSpools(spoolDir string, dir *tenant.Directory, every time.Duration) (stop func() (int, error)) {
	done, result := make(chan struct{}), make(chan error, 1)
	runs := 0
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				result <- nil
				return
			case <-tick.C:
			}
			// Not canceled by stop: an append cut short is not what
			// this test is about.
			if _, err := tools.RecoverSpools(context.Background(), spoolDir, dir.AuditLog, nil); err != nil {
				result <- err
				<-done
				return
			}
			runs++
		}
	}()
	return func() (int, error) {
		close(done)
		err := <-result
		return runs, err
	}
}

// finishKillTest recovers what the killed processes left in spoolDir and
// checks the logs of scopes against a: every acknowledged write is
// logged, every acknowledged read has exactly one tool.called record, no
// read has two, and no spool file is left. It returns the numbers of
// acknowledged reads and writes.
func finishKillTest(t *testing.T, a *acks, dir *tenant.Directory, spoolDir string, scopes ...*tenant.Scope) (reads, writes int) {
	t.Helper()
	if _, err := tools.RecoverSpools(context.Background(), spoolDir, dir.AuditLog, nil); err != nil {
		t.Fatalf("recovering the killed processes' spools: %v", err)
	}
	records := map[string]int{}
	notes := map[string]int{}
	for _, sc := range scopes {
		for _, ev := range allEvents(t, sc, audit.Filter{Kind: "tool.called"}) {
			if ev.Attrs["tool"] != "session_list" {
				continue
			}
			args, _ := ev.Attrs["args"].(map[string]any)
			tag, _ := args["workspace"].(string)
			records[tag]++
		}
		for _, ev := range allEvents(t, sc, audit.Filter{Kind: "note.added"}) {
			notes[ev.ID]++
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	lost := 0
	for tag := range a.reads {
		if records[tag] == 0 {
			lost++
			if lost <= 10 {
				t.Errorf("acknowledged read %s has no tool.called record", tag)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged reads lost their tool.called record", lost, len(a.reads))
	}
	for tag, n := range records {
		if n > 1 {
			t.Errorf("read %s has %d tool.called records, want 1", tag, n)
		}
		if _, ok := a.sent[tag]; !ok {
			t.Errorf("a tool.called record of read %s, which was never sent", tag)
		}
	}
	for id := range a.writes {
		if notes[id] != 1 {
			t.Errorf("acknowledged note %s: %d records, want 1", id, notes[id])
		}
	}
	left, _ := filepath.Glob(filepath.Join(spoolDir, "*"))
	if len(left) > 0 {
		t.Errorf("spool files left after the last recovery: %v", left)
	}
	if _, err := os.Stat(spoolDir); err != nil {
		t.Errorf("spool directory: %v", err)
	}
	return len(a.reads), len(a.writes)
}
