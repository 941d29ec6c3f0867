package faults_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/tenant"
)

// TestCrashMixStdioHTTP is the kill loop of `make crash`: each iteration
// starts several `coditect mcp` processes at once, and, every other one,
// restarts `coditect serve` beside them (each start recovers the spools of
// dead processes, and the spool recovery also runs every few milliseconds
// beside them); the stdio processes and the daemon's HTTP MCP clients make
// tagged reads and notes concurrently until each has its quota
// acknowledged; then every stdio process is SIGKILLed, and so is the
// daemon every other iteration. At the end every acknowledged write and
// every acknowledged read has exactly one record. The figures (reads and
// writes acknowledged, per surface) are logged. CODITECT_CRASH_ITERATIONS
// sets the iterations (default 100; 2 with -short).
func TestCrashMixStdioHTTP(t *testing.T) {
	iterations, stdio, httpClients, quota := 2, 3, 2, 10
	if !testing.Short() {
		iterations, stdio, quota = 100, 4, 25
	}
	if v, err := strconv.Atoi(os.Getenv("CODITECT_CRASH_ITERATIONS")); err == nil && v > 0 {
		iterations = v
	}
	dbPath := filepath.Join(t.TempDir(), "coditect.db")
	storeURL := sqliteURL(dbPath)
	spoolDir := storage.SpoolDir(storeURL)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()

	d := startDaemon(t, storeURL, "127.0.0.1:0")
	if d.token == "" {
		t.Fatal("first start printed no login token")
	}
	token, addr := d.token, d.addr
	local, st := localScope(t, storeURL, "t1", "ada")
	remote := openScope(t, storeURL, token)
	dir := tenant.NewDirectory(st, "faults-test")
	sweep := sweepSpools(spoolDir, dir, 5*time.Millisecond)
	a := newAcks()
	start := time.Now()
	daemonKills := 0
	for it := range iterations {
		var wg sync.WaitGroup
		for i := range stdio {
			wg.Go(func() {
				name := fmt.Sprintf("stdio-%d-%d", it, i)
				if err := runKilledMCP(ctx, t, storeURL, name, quota, true, a); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			})
		}
		if d == nil {
			d = startDaemon(t, storeURL, addr) // while the stdio processes start
		}
		killDaemon := it%2 == 1
		var mu sync.Mutex
		reached := 0
		for i := range httpClients {
			wg.Go(func() {
				name := fmt.Sprintf("http-%d-%d", it, i)
				cs, err := connectHTTP(ctx, d, token, name)
				if err != nil {
					t.Errorf("%s: connect: %v", name, err)
					return
				}
				defer cs.Close()
				// The last client to reach its quota kills the daemon
				// (in a killing iteration) while the others' calls may
				// still be in flight.
				kill := func() {
					mu.Lock()
					reached++
					last := reached == httpClients
					mu.Unlock()
					if last && killDaemon {
						d.kill()
					}
				}
				if err := drive(ctx, cs, name, quota, true, a, kill); err != nil {
					t.Errorf("%s: %v\n%s", name, err, d.stderr)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			break
		}
		if killDaemon {
			d = nil
			daemonKills++
		}
	}
	if d != nil {
		d.stop(t) // a clean stop: its spool committed and removed
	}
	runs, err := sweep()
	if err != nil {
		t.Fatalf("periodic spool recovery: %v", err)
	}
	finishKillTest(t, a, dir, spoolDir, local, remote)
	var fig struct{ stdioReads, stdioWrites, httpReads, httpWrites int }
	a.mu.Lock()
	for _, client := range a.reads {
		if strings.HasPrefix(client, "http") {
			fig.httpReads++
		} else {
			fig.stdioReads++
		}
	}
	for _, client := range a.writes {
		if strings.HasPrefix(client, "http") {
			fig.httpWrites++
		} else {
			fig.stdioWrites++
		}
	}
	a.mu.Unlock()
	t.Logf("crash mix: %d iterations in %s; %d coditect mcp SIGKILLed (%d started at a time), %d SIGKILLs of coditect serve, %d recoveries beside them",
		iterations, time.Since(start).Round(time.Second), iterations*stdio, stdio, daemonKills, runs)
	t.Logf("crash mix: acknowledged reads %d (stdio %d, HTTP %d), acknowledged writes %d (stdio %d, HTTP %d); lost or doubled: %s",
		fig.stdioReads+fig.httpReads, fig.stdioReads, fig.httpReads, fig.stdioWrites+fig.httpWrites, fig.stdioWrites, fig.httpWrites, lostOrDoubled(t))
}

// lostOrDoubled says how the checks of the acknowledged records went.
func lostOrDoubled(t *testing.T) string {
	if t.Failed() {
		return "SOME (see the errors above)"
	}
	return "none"
}
