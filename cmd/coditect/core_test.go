package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/internal/testbin"
	"github.com/coditect/coditect/server/localcore"
)

// TestServeIsTheLocalCore: a daemon on the embedded store listens on the
// store's core socket, so `coditect mcp` forwards to it instead of
// starting a core; when the daemon stops, the forwarder's next call is
// served by a core it starts.
func TestServeIsTheLocalCore(t *testing.T) {
	run := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", run)
	t.Setenv("CODITECT_CORE", "") // testbin turns the core off for other tests
	db := filepath.Join(t.TempDir(), "coditect.db")
	storeURL := "sqlite://" + filepath.ToSlash(db)
	paths, err := localcore.Locate(db, run)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if pid := localcore.Owner(paths); pid != 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	d := startServe(t, storeURL)
	if pid := localcore.Owner(paths); pid != d.cmd.Process.Pid {
		t.Fatalf("core lock held by %d, daemon is %d\n%s", pid, d.cmd.Process.Pid, d.stderr)
	}

	cmd := exec.Command(testbin.Coditect(t), "mcp", "--store", storeURL, "--tenant", "acme", "--user", "ada")
	cmd.Env = append(os.Environ(), "CODITECT_TOKEN=", "CODITECT_CORE=", "CODITECT_CORE_IDLE=30s")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "core-test", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	whoami := func() {
		t.Helper()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
		if err != nil || res.IsError {
			log, _ := os.ReadFile(paths.Log)
			t.Fatalf("whoami: %v %+v\ncoditect mcp: %s\ncore log: %s", err, res, stderr.String(), log)
		}
		if m, _ := res.StructuredContent.(map[string]any); m["user"] != "ada" || m["tenant"] != "acme" {
			t.Fatalf("whoami = %v", res.StructuredContent)
		}
	}
	whoami()
	if want := "core_pid=" + strconv.Itoa(d.cmd.Process.Pid); !strings.Contains(stderr.String(), want) {
		t.Fatalf("coditect mcp did not forward to the daemon (%s): %s", want, stderr.String())
	}

	d.stop(t)
	whoami()
	if pid := localcore.Owner(paths); pid == 0 || pid == d.cmd.Process.Pid {
		t.Errorf("after the daemon stopped, the core lock is held by %d", pid)
	}
}

// serverGC, which coditect serve and coditect core run first, sets the
// collector to 400 % unless $GOGC chooses.
func TestServerGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)
	t.Setenv("GOGC", "")
	serverGC()
	if got := debug.SetGCPercent(100); got != 400 {
		t.Errorf("without $GOGC: GC percentage %d, want 400", got)
	}
	t.Setenv("GOGC", "50")
	serverGC()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with $GOGC set: serverGC changed the GC percentage to %d", got)
	}
}
