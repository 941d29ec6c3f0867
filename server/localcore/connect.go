package localcore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// ErrNoCore: no core listens on the store's socket.
var ErrNoCore = errors.New("localcore: no core is running for this store")

// Dial connects to the core at paths and says hello; ErrNoCore when no
// core listens, a *RefusedError when the core refused the hello.
func Dial(ctx context.Context, paths Paths, h Hello) (net.Conn, Reply, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", paths.Socket)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, Reply{}, fmt.Errorf("%w (%v)", ErrNoCore, err)
		}
		return nil, Reply{}, fmt.Errorf("localcore: %w", err)
	}
	// The client checks the listener as the core checks it: a socket of
	// another user's process never hears the client's token.
	if err := CheckPeer(c.(*net.UnixConn)); err != nil {
		c.Close()
		return nil, Reply{}, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(helloTimeout))
	}
	h.V = Version
	h.Reads = h.answers.offersInput()
	if err := writeLine(c, h); err != nil {
		c.Close()
		return nil, Reply{}, fmt.Errorf("%w (hello not sent: %v)", ErrNoCore, err)
	}
	var r Reply
	br, err := readLine(c, &r)
	if err != nil {
		// A core exiting idle closes connections it accepted too late.
		c.Close()
		return nil, Reply{}, fmt.Errorf("%w (no answer to hello: %v)", ErrNoCore, err)
	}
	_ = c.SetDeadline(time.Time{})
	if !r.OK {
		c.Close()
		// A core of another build (the binary was upgraded while it ran)
		// refuses the hello; the client serves itself until that core
		// exits idle. Cores before hello version 2 did not say so.
		direct := r.Direct || strings.HasPrefix(r.Error, versionRefused)
		return nil, r, &RefusedError{Reason: r.Error, Direct: direct}
	}
	direct := r.Answers && h.answers != nil
	reads := direct && r.Reads && h.Reads
	if direct {
		if err := sendAnswers(c, h.answers, reads); err != nil {
			c.Close()
			return nil, Reply{}, fmt.Errorf("%w (client output not passed: %v)", ErrNoCore, err)
		}
	}
	return &bufferedConn{Conn: c, r: br, answers: direct, reads: reads}, r, nil
}

// Ready messages a core writes to its ready pipe.
const (
	readyListening = "listening"
	readyRunning   = "running"
)

// ReadyFD is the descriptor of the ready pipe a core started by Start
// inherits.
const ReadyFD = 3

// SignalReady tells the process that started this core (Start) that it
// listens (err nil) or why it will not: ErrRunning (another core serves
// the store) or another error. Without a ready pipe it does nothing.
func SignalReady(err error) {
	f := os.NewFile(ReadyFD, "ready")
	if f == nil {
		return
	}
	defer f.Close()
	msg := readyListening
	switch {
	case errors.Is(err, ErrRunning):
		msg = readyRunning
	case err != nil:
		msg = "error: " + strings.ReplaceAll(err.Error(), "\n", " ")
	}
	_, _ = f.WriteString(msg + "\n")
}

// Start starts a core with argv (argv[0] the binary), detached in a
// session of its own so that it outlives its starter, its stderr appended
// to paths.Log, and waits until it listens or says it will not (another
// core won the race: no error), or ctx ends. env is its environment.
func Start(ctx context.Context, paths Paths, argv, env []string) error {
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("localcore: ready pipe: %w", err)
	}
	defer pr.Close()
	logf, err := os.OpenFile(paths.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		pw.Close()
		return fmt.Errorf("localcore: core log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stderr = logf
	cmd.ExtraFiles = []*os.File{pw} // fd 3: ReadyFD
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return fmt.Errorf("localcore: start core: %w", err)
	}
	// Reap it when it exits while this process still runs.
	go func() { _ = cmd.Wait() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = pr.SetReadDeadline(dl)
	}
	line, err := bufio.NewReader(pr).ReadString('\n')
	line = strings.TrimSpace(line)
	switch {
	case line == readyListening, line == readyRunning:
		return nil
	case strings.HasPrefix(line, "error: "):
		return fmt.Errorf("localcore: the core did not start: %s (see %s)", strings.TrimPrefix(line, "error: "), paths.Log)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("localcore: the core did not get ready in time (see %s)", paths.Log)
	default:
		return fmt.Errorf("localcore: the core exited before listening (see %s)", paths.Log)
	}
}

// Connect connects to the store's core and says hello, starting a core
// with argv and env when none runs, until ctx ends. A core's refusal of
// the hello is returned at once (a *RefusedError).
func Connect(ctx context.Context, paths Paths, h Hello, argv, env []string) (net.Conn, Reply, error) {
	backoff := 5 * time.Millisecond
	started := false
	for {
		c, r, err := Dial(ctx, paths, h)
		if err == nil || !errors.Is(err, ErrNoCore) {
			return c, r, err
		}
		if ctx.Err() != nil {
			return nil, Reply{}, fmt.Errorf("localcore: no core reachable in time: %w", err)
		}
		if !started || Owner(paths) == 0 {
			if serr := Start(ctx, paths, argv, env); serr != nil {
				return nil, Reply{}, serr
			}
			started = true
			continue
		}
		// A core holds the lock but does not answer yet (it is starting,
		// or exiting idle): try again shortly.
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}
