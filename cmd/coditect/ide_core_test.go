package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/internal/testbin"
	"github.com/coditect/coditect/server/localcore"
	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/tenant"
)

// ideCoreEnv is a store whose `coditect ide` and `coditect mcp` processes
// share a local core, its socket under a runtime directory of the test's
// own; the test's cleanup kills the core.
type ideCoreEnv struct {
	bin, store, ws, run string
	paths               localcore.Paths
}

func newIDECoreEnv(t *testing.T) *ideCoreEnv {
	t.Helper()
	e := &ideCoreEnv{bin: ideBinary(t), run: t.TempDir()}
	e.store, e.ws = ideWorkspace(t)
	p, err := localcore.Locate(strings.TrimPrefix(e.store, "sqlite://"), e.run)
	if err != nil {
		t.Fatal(err)
	}
	e.paths = p
	t.Cleanup(func() {
		if pid := localcore.Owner(p); pid != 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return e
}

// env is the environment of a process forwarding to the test's core.
func (e *ideCoreEnv) env(t *testing.T) []string {
	return append(os.Environ(), "CODITECT_TOKEN=", "CODITECT_CORE=", "CODITECT_CORE_IDLE=30s",
		"XDG_RUNTIME_DIR="+e.run, "XDG_DATA_HOME="+t.TempDir())
}

// ide starts `coditect ide --core auto` on the test's store.
func (e *ideCoreEnv) ide(t *testing.T) *ideProc {
	t.Helper()
	cmd := exec.Command(e.bin, "ide", "--core", "auto", "--store", e.store, "--tenant", "t1", "--user", "ada")
	cmd.Env = e.env(t)
	cmd.Dir = e.ws
	return driveIDE(t, cmd)
}

// coreLog is what the core wrote to its log so far.
func (e *ideCoreEnv) coreLog() string {
	b, _ := os.ReadFile(e.paths.Log)
	return string(b)
}

// TestIDEThroughLocalCore: two `coditect ide` and one `coditect mcp` on one
// store are served by one core; the IDE protocol works through it and the
// forwarders exit with the status the LSP asks for: 0 after shutdown then
// exit, 1 on exit without shutdown.
func TestIDEThroughLocalCore(t *testing.T) {
	e := newIDECoreEnv(t)
	p1 := e.ide(t)
	p1.initialize(e.ws)
	core := localcore.Owner(e.paths)
	if core == 0 {
		t.Fatalf("no core holds the store's lock\n%s", e.coreLog())
	}
	p2 := e.ide(t)
	p2.initialize(e.ws)

	ctx, cancel := context.WithTimeout(context.Background(), ideWait)
	defer cancel()
	mcmd := exec.Command(testbin.Coditect(t), "mcp", "--core", "auto", "--store", e.store, "--tenant", "t1", "--user", "ada")
	mcmd.Env = e.env(t)
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "ide-core-test", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: mcmd}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}}); err != nil || res.IsError {
		t.Fatalf("whoami: %v %+v\n%s", err, res, e.coreLog())
	}

	// Each process is a connection of the one core.
	log := e.coreLog()
	for _, want := range []string{
		`msg="core IDE connection" pid=` + strconv.Itoa(p1.cmd.Process.Pid),
		`msg="core IDE connection" pid=` + strconv.Itoa(p2.cmd.Process.Pid),
		`msg="core connection" pid=` + strconv.Itoa(mcmd.Process.Pid),
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the core's log lacks %q:\n%s", want, log)
		}
	}
	if pid := localcore.Owner(e.paths); pid != core {
		t.Fatalf("the core changed from %d to %d", core, pid)
	}

	file := filepath.Join(e.ws, "main.go")
	if err := os.WriteFile(file, []byte("package main\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p1.send(map[string]any{"method": "textDocument/didOpen", "params": map[string]any{"textDocument": map[string]any{"uri": fileURL(file), "languageId": "go", "version": 1, "text": "package main\n"}}})
	p1.send(map[string]any{"id": 2, "method": "workspace/executeCommand", "params": map[string]any{"command": "coditect.status"}})
	if r := p1.response(2); r["result"] == nil {
		t.Fatalf("coditect.status through the core: %v", r)
	}

	p1.shutdown(3)
	p2.send(map[string]any{"method": "exit"})
	if code := p2.wait(); code != 1 {
		t.Fatalf("exit without shutdown through the core: status %d, want 1\n%s", code, p2.stderr)
	}
	for _, p := range []*ideProc{p1, p2} {
		if want := "core_pid=" + strconv.Itoa(core); !strings.Contains(p.stderr.String(), want) {
			t.Errorf("coditect ide did not say it forwards to the core (%s): %s", want, p.stderr)
		}
	}
	if pid := localcore.Owner(e.paths); pid != core {
		t.Fatalf("the core changed from %d to %d", core, pid)
	}

	// An editor that goes away is a shutdown: status 0.
	p3 := e.ide(t)
	p3.initialize(e.ws)
	p3.stdin.Close()
	if code := p3.wait(); code != 0 {
		t.Fatalf("stdin closed through the core: status %d, want 0\n%s", code, p3.stderr)
	}
}

// TestIDECoreKilled: when the core dies mid-session, `coditect ide` exits
// with status 1 and says why (the editor starts a new server).
func TestIDECoreKilled(t *testing.T) {
	e := newIDECoreEnv(t)
	p := e.ide(t)
	p.initialize(e.ws)
	core := localcore.Owner(e.paths)
	if core == 0 {
		t.Fatal("no core holds the store's lock")
	}
	if err := syscall.Kill(core, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(); code != 1 {
		t.Fatalf("core killed: status %d, want 1\n%s", code, p.stderr)
	}
	if !strings.Contains(p.stderr.String(), "the local core ended the IDE session") {
		t.Fatalf("no clear message on stderr:\n%s", p.stderr)
	}
	// The next server the editor starts gets a new core.
	p = e.ide(t)
	p.initialize(e.ws)
	if pid := localcore.Owner(e.paths); pid == 0 || pid == core {
		t.Fatalf("after the core was killed the lock is held by %d", pid)
	}
	p.shutdown(2)
}

// TestIDENodeClientThroughCore runs the Node vscode-jsonrpc client of
// TestIDENodeClient against `coditect ide` forwarding to a local core.
func TestIDENodeClientThroughCore(t *testing.T) {
	dir := extensionDir()
	node := needNode(t, "vscode-jsonrpc")
	e := newIDECoreEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*ideWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "test", "e2e.mjs"), e.bin, e.store, e.ws)
	cmd.Dir = dir
	cmd.Env = e.env(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node e2e through the core: %v\n%s\ncore log:\n%s", err, out, e.coreLog())
	}
	if !strings.Contains(e.coreLog(), "core IDE connection") {
		t.Fatalf("the node client's server did not forward to the core:\n%s", e.coreLog())
	}
	t.Logf("node e2e: %s", strings.TrimSpace(string(out)))
}

// TestIDECoreDashboardTokenDiesWithSession: the dashboard login token an
// IDE session in the core issues is revoked by the time its forwarder
// has exited.
func TestIDECoreDashboardTokenDiesWithSession(t *testing.T) {
	e := newIDECoreEnv(t)
	p := e.ide(t)
	p.initialize(e.ws)
	token := p.dashboardToken(2)
	ctx := context.Background()
	st, err := storage.Open(ctx, e.store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dir := tenant.NewDirectory(st, "test")
	if _, err := dir.Authenticate(ctx, token); err != nil {
		t.Fatalf("the dashboard token does not log in: %v", err)
	}
	p.shutdown(3)
	if _, err := dir.Authenticate(ctx, token); !errors.Is(err, tenant.ErrTokenRevoked) {
		t.Fatalf("the dashboard token after the session ended: %v, want revoked", err)
	}
}

// TestIDEForwardsToServe: a daemon on the embedded store is the local
// core of `coditect ide` too.
func TestIDEForwardsToServe(t *testing.T) {
	e := newIDECoreEnv(t)
	t.Setenv("XDG_RUNTIME_DIR", e.run)
	t.Setenv("CODITECT_CORE", "") // testbin turns the core off for other tests
	d := startServe(t, e.store)
	if pid := localcore.Owner(e.paths); pid != d.cmd.Process.Pid {
		t.Fatalf("core lock held by %d, daemon is %d", pid, d.cmd.Process.Pid)
	}
	p := e.ide(t)
	p.initialize(e.ws)
	p.shutdown(2)
	if want := "core_pid=" + strconv.Itoa(d.cmd.Process.Pid); !strings.Contains(p.stderr.String(), want) {
		t.Fatalf("coditect ide did not forward to the daemon (%s): %s", want, p.stderr)
	}
}
