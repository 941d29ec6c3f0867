// Package kvtest owns the conformance suite of the kv contract: one set of
// tests that every backend runs (the embedded SQLite store always, the
// FoundationDB store whenever a cluster is reachable), so that code which
// passes on one backend passes on the other. It also owns the crash-safety
// test and the child-process roles both need: several real OS processes
// sharing one store; and ReadSet, which records the read set of the layers'
// transactions, for tests of what they conflict with on a cluster.
//
// A backend's test package wires it up with
//
//	func TestMain(m *testing.M) { kvtest.Main(m, open) }
//	func TestConformance(t *testing.T) { kvtest.Run(t, harness) }
//
// This package imports only the kv contract and the standard library.
package kvtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/kv"
)

// Harness tells the suite how to make stores of one backend.
type Harness struct {
	// Name labels the backend in failures.
	Name string
	// New creates a fresh, empty store for one test and returns it with a
	// locator string that Open accepts, in this process or a child.
	New func(t testing.TB) (s kv.Store, locator string)
	// Open opens an existing store by locator.
	Open func(locator string) (kv.Store, error)
	// NewShortLived, if set, creates a fresh store whose transactions grow
	// too old after age instead of kv.MaxTransactionAge, so the limit can be
	// tested quickly. Without it the test waits the real 5 s.
	NewShortLived func(t testing.TB, age time.Duration) kv.Store
	// InProcess says the stores live in this process only (an in-memory
	// model), so the tests that open them from child processes are
	// skipped.
	InProcess bool
	// MaxKeySize is the largest key a caller may use, when the backend
	// stores keys under a prefix that counts towards kv.MaxKeySize (the
	// FoundationDB store); zero means kv.MaxKeySize.
	MaxKeySize int
}

// Environment of a child process.
const (
	envRole    = "KVTEST_ROLE"
	envLocator = "KVTEST_LOCATOR"
	envArgs    = "KVTEST_ARGS"
)

// Role is a child-process role a backend adds for its own tests, such as a
// baseline that bypasses the kv contract.
type Role struct {
	Name string
	Args int
	Run  func(locator string, args []string) error
}

// Main runs a child-process role when the test binary was started as one,
// and the tests otherwise. Call it from TestMain with the backend's opener.
func Main(m *testing.M, open func(locator string) (kv.Store, error), extra ...Role) {
	role := os.Getenv(envRole)
	if role == "" {
		os.Exit(m.Run())
	}
	var args []string
	if v := os.Getenv(envArgs); v != "" {
		args = strings.Split(v, argSep)
	}
	err := runChild(role, os.Getenv(envLocator), args, open, extra)
	if err != nil {
		fmt.Fprintf(os.Stdout, "error %v\n", err)
		fmt.Fprintf(os.Stderr, "kvtest child %s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// argSep separates a child's arguments in its environment.
const argSep = "\x1f"

func runChild(role, locator string, args []string, open func(string) (kv.Store, error), extra []Role) error {
	for _, r := range extra {
		if r.Name == role {
			if len(args) != r.Args {
				return fmt.Errorf("role %s takes %d arguments, got %d", role, r.Args, len(args))
			}
			return r.Run(locator, args)
		}
	}
	ints, err := Ints(args)
	if err != nil {
		return err
	}
	need := map[string]int{"incr": 3, "stamp": 2, "watch": 0, "crash": 1, "write": 3, "watchlat": 1}
	n, ok := need[role]
	if !ok {
		return fmt.Errorf("unknown role %q", role)
	}
	if len(ints) != n {
		return fmt.Errorf("role %s takes %d arguments, got %d", role, n, len(ints))
	}
	s, err := open(locator)
	if err != nil {
		return err
	}
	defer s.Close()
	ctx := context.Background()
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	switch role {
	case "incr":
		return childIncr(ctx, s, ints[0], ints[1], ints[2])
	case "stamp":
		return childStamp(ctx, s, out, ints[0], ints[1])
	case "watch":
		return childWatch(ctx, s, out)
	case "crash":
		return childCrash(ctx, s, ints[0])
	case "write":
		return childWrite(ctx, s, ints[0], ints[1], ints[2] != 0)
	case "watchlat":
		return childWatchLat(ctx, s, ints[0])
	}
	return fmt.Errorf("unknown role %q", role)
}

// AwaitGo is the child side of a start barrier: it says "ready" and blocks
// until the parent releases it (Child.Release, or the parent's end).
func AwaitGo() error {
	fmt.Fprintln(os.Stdout, "ready")
	_, err := bufio.NewReader(os.Stdin).ReadString('\n')
	return err
}

// Release lets a child waiting in AwaitGo start.
func (c *Child) Release(t testing.TB) {
	t.Helper()
	c.c.release(t)
}

func (c *child) release(t testing.TB) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
		t.Fatalf("release child: %v", err)
	}
}

// Ints parses a role's arguments as integers.
func Ints(args []string) ([]int, error) {
	ints := make([]int, len(args))
	for i, a := range args {
		n, err := strconv.Atoi(a)
		if err != nil {
			return nil, fmt.Errorf("argument %q: %w", a, err)
		}
		ints[i] = n
	}
	return ints, nil
}

// Child is a child process started with StartRole.
type Child struct{ c *child }

// StartRole starts the test binary in a role (one of the backend's own,
// passed to Main) and returns a handle to it.
func StartRole(t testing.TB, role, locator string, args ...any) *Child {
	t.Helper()
	return &Child{startChild(t, role, locator, args...)}
}

// Lines returns the child's output lines; the channel closes when it exits.
func (c *Child) Lines() <-chan string { return c.c.lines }

// Wait drains the child's output and waits for it to exit successfully,
// returning the lines it printed.
func (c *Child) Wait(t testing.TB, timeout time.Duration) []string {
	t.Helper()
	return c.c.wait(t, timeout)
}

// Expect waits for a line with the given prefix and returns the rest.
func (c *Child) Expect(t testing.TB, prefix string, timeout time.Duration) string {
	t.Helper()
	return c.c.expect(t, prefix, timeout)
}

// Kill kills the child with SIGKILL and waits for it to exit.
func (c *Child) Kill(t testing.TB) {
	t.Helper()
	if err := c.c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for range c.c.lines {
	}
	<-c.c.errc
}

// child is a running child process whose stdout lines arrive on lines.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	errc  chan error
	mu    sync.Mutex
	tail  []string // the last lines, for failure messages
}

// startChild starts the test binary in a role.
func startChild(t testing.TB, role, locator string, args ...any) *child {
	t.Helper()
	strs := make([]string, len(args))
	for i, a := range args {
		strs[i] = fmt.Sprint(a)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envRole+"="+role, envLocator+"="+locator, envArgs+"="+strings.Join(strs, argSep))
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
	c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 1024), errc: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.tail = append(c.tail, line)
			if len(c.tail) > 5 {
				c.tail = c.tail[1:]
			}
			c.mu.Unlock()
			c.lines <- line
		}
		close(c.lines)
		_, _ = io.Copy(io.Discard, stdout)
		c.errc <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	return c
}

// expect waits for a line with the given prefix and returns the rest of it.
func (c *child) expect(t testing.TB, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				t.Fatalf("child exited before printing %q; last lines: %q", prefix, c.lastLines())
			}
			if strings.HasPrefix(line, "error ") {
				t.Fatalf("child failed: %s", line)
			}
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				return strings.TrimSpace(rest)
			}
		case <-deadline:
			t.Fatalf("no %q from child within %v; last lines: %q", prefix, timeout, c.lastLines())
		}
	}
}

func (c *child) lastLines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.tail...)
}

// wait drains the child's output and waits for it to exit successfully.
func (c *child) wait(t testing.TB, timeout time.Duration) []string {
	t.Helper()
	var lines []string
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				if err := <-c.errc; err != nil {
					t.Fatalf("child failed: %v; last lines: %q", err, c.lastLines())
				}
				return lines
			}
			if strings.HasPrefix(line, "error ") {
				t.Fatalf("child failed: %s", line)
			}
			lines = append(lines, line)
		case <-deadline:
			_ = c.cmd.Process.Kill()
			t.Fatalf("child did not finish within %v; last lines: %q", timeout, c.lastLines())
		}
	}
}
