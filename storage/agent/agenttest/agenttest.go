// Package agenttest is the test kit of the coordination layers (agent,
// lease, message, task): real SQLite stores in temporary directories,
// scopes of several tenants, a clock tests move by hand, snapshots that
// prove nothing was written, and child processes started by re-executing
// the test binary in a role (as storage/kv/kvtest does for the kv
// contract), so that races run across real OS processes.
//
// Only tests import it. It imports the kv contract, the SQLite backend and
// the tenant and agent layers.
package agenttest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/sqlite"
	"github.com/coditect/coditect/storage/tenant"
)

// Open opens a fresh SQLite store in t's temporary directory and returns
// it with its path, which child processes open too.
func Open(t testing.TB) (kv.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "coord.db")
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// OpenPath opens the store at path (in a child process).
func OpenPath(ctx context.Context, path string) (kv.Store, error) {
	return sqlite.Open(ctx, path, sqlite.Options{})
}

// Scope returns an admin scope of user in tenant (both created when
// missing), as a trusted local identity.
func Scope(t testing.TB, s kv.Store, tenantID, user string) *tenant.Scope {
	t.Helper()
	sc, err := tenant.NewDirectory(s, "test").Local(context.Background(), tenantID, user)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// RoleScope returns a scope of a new user of tenantID with role, obtained
// through a real token.
func RoleScope(t testing.TB, s kv.Store, tenantID, user string, role tenant.Role) *tenant.Scope {
	t.Helper()
	ctx := context.Background()
	d := tenant.NewDirectory(s, "test")
	if _, err := d.Local(ctx, tenantID, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateUser(ctx, tenantID, user, ""); err != nil {
		t.Fatal(err)
	}
	secret, _, err := d.IssueToken(ctx, tenantID, user, role, tenant.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := d.Authenticate(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// Agent registers an agent named name in sc's tenant and returns it with
// a scope acting as it.
func Agent(t testing.TB, ctx context.Context, sc *tenant.Scope, name string, reg agent.Registration) (agent.Agent, *tenant.Scope) {
	t.Helper()
	reg.Name = name
	if reg.Client == "" {
		reg.Client = "test"
	}
	a, err := agent.Register(ctx, sc, reg)
	if err != nil {
		t.Fatal(err)
	}
	as, err := sc.WithAgent(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	return a, as
}

// Clock is a clock that moves only when told to.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock set to a fixed instant.
func NewClock() *Clock {
	return &Clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Context returns a context that ends with the test (or after a minute),
// whose coordination layers read time from c when c is not nil.
func Context(t testing.TB, c *Clock) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	if c != nil {
		ctx = agent.WithClock(ctx, c.Now)
	}
	return ctx
}

// Snapshot returns every key and value in [begin, end) as one string, for
// comparing a range before and after calls that must write nothing.
func Snapshot(t testing.TB, s kv.Store, begin, end []byte) string {
	t.Helper()
	var buf bytes.Buffer
	err := s.View(context.Background(), func(tx kv.ReadTx) error {
		buf.Reset()
		it := tx.GetRange(begin, end, kv.RangeOptions{})
		for it.Next() {
			p := it.KeyValue()
			fmt.Fprintf(&buf, "%x=%x\n", p.Key, p.Value)
		}
		return it.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// SnapshotAll is Snapshot of every key of the store.
func SnapshotAll(t testing.TB, s kv.Store) string {
	t.Helper()
	return Snapshot(t, s, []byte{0x00}, []byte{0xff})
}

// Environment of a child process.
const (
	envRole = "CODITECT_COORD_ROLE"
	envArgs = "CODITECT_COORD_ARGS"
)

// A Role is what a child process does: it runs with the arguments its
// parent gave, may print lines for the parent to Expect, and its error
// fails the child.
type Role func(args []string, out io.Writer, in *bufio.Reader) error

// Main runs a child role when the test binary was started as one, and the
// tests otherwise. Call it from TestMain.
func Main(m *testing.M, roles map[string]Role) {
	name := os.Getenv(envRole)
	if name == "" {
		os.Exit(m.Run())
	}
	role, ok := roles[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown role %q\n", name)
		os.Exit(2)
	}
	out := &syncWriter{w: os.Stdout}
	if err := role(strings.Split(os.Getenv(envArgs), "\x1f"), out, bufio.NewReader(os.Stdin)); err != nil {
		fmt.Fprintf(out, "error %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// syncWriter lets a role's goroutines print whole lines concurrently.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// Child is a child process running a role.
type Child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	done  chan error
	// exited is closed once the process has been waited for.
	exited chan struct{}
}

// Start starts the test binary as a child running role with args.
func Start(t testing.TB, role string, args ...string) *Child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envRole+"="+role, envArgs+"="+strings.Join(args, "\x1f"))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child %s: %v", role, err)
	}
	c := &Child{cmd: cmd, stdin: stdin, lines: make(chan string, 4096), done: make(chan error, 1), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.done <- cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-c.exited:
		default:
			_ = cmd.Process.Kill()
		}
	})
	return c
}

// Send writes a line to the child's standard input.
func (c *Child) Send(t testing.TB, line string) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		t.Fatalf("write to child: %v", err)
	}
}

// CloseInput closes the child's standard input (a stop signal).
func (c *Child) CloseInput() { c.stdin.Close() }

// Expect waits up to timeout for a line starting with prefix and returns
// the rest of it, trimmed. A line "error …" fails the test.
func (c *Child) Expect(t testing.TB, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				t.Fatalf("child exited before printing %q: %v", prefix, <-c.done)
			}
			if strings.HasPrefix(line, "error ") {
				t.Fatalf("child failed: %s", line)
			}
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				return strings.TrimSpace(rest)
			}
		case <-deadline:
			t.Fatalf("no %q from child within %v", prefix, timeout)
		}
	}
}

// Wait waits up to timeout for the child to exit successfully and returns
// the lines it printed that were not consumed by Expect.
func (c *Child) Wait(t testing.TB, timeout time.Duration) []string {
	t.Helper()
	var lines []string
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				if err := <-c.done; err != nil {
					t.Fatalf("child failed: %v; last lines %q", err, tail(lines))
				}
				return lines
			}
			if strings.HasPrefix(line, "error ") {
				t.Fatalf("child failed: %s", line)
			}
			lines = append(lines, line)
		case <-deadline:
			t.Fatalf("child did not exit within %v; last lines %q", timeout, tail(lines))
		}
	}
}

func tail(lines []string) []string {
	if len(lines) > 5 {
		return lines[len(lines)-5:]
	}
	return lines
}

// HeartbeatKey returns the heartbeat key of agent id in sc's tenant: the
// key whose reads the read-set tests (kvtest.ReadSet) look for.
func HeartbeatKey(t testing.TB, sc *tenant.Scope, id string) []byte {
	t.Helper()
	a, err := sc.Space().Agent(id)
	if err != nil {
		t.Fatal(err)
	}
	return a.Heartbeat()
}
