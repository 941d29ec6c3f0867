package ide

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/coditect/coditect/storage/tenant"
)

// Dashboard finds or starts the dashboard a human opens from the editor.
// The ide package cannot serve it (it must not import webview): the
// command that runs the server (cmd/coditect) supplies one.
type Dashboard interface {
	// URL returns an address of the dashboard for the scope's user,
	// logged in (a secret in the URL's path or fragment). It may start a
	// server on first use; it must be safe for concurrent use.
	URL(ctx context.Context, sc *tenant.Scope) (string, error)
}

// DashboardFunc adapts a function to Dashboard.
type DashboardFunc func(ctx context.Context, sc *tenant.Scope) (string, error)

// URL implements Dashboard.
func (f DashboardFunc) URL(ctx context.Context, sc *tenant.Scope) (string, error) { return f(ctx, sc) }

// Options configure a connection. The zero value of every field is a
// sensible default.
type Options struct {
	// Version is reported in initialize's serverInfo.
	Version string
	// Logger receives diagnostics; nil discards them. Never stdout.
	Logger *slog.Logger
	// Dashboard serves the dashboard command; nil makes it fail with a
	// message saying so.
	Dashboard Dashboard
	// MaxMessage is the largest message body read; DefaultMaxMessage when
	// zero.
	MaxMessage int64
	// EditingTTL is how long an unsaved-edit mark counts without a
	// refresh; the server refreshes marks every third of it.
	// attrib.DefaultEditingTTL when zero.
	EditingTTL time.Duration
	// Editor identifies this connection's marks; a random id when empty.
	Editor string
	// Recheck is how often the connection re-validates its scope (see
	// access.go); DefaultRecheck when zero or negative.
	Recheck time.Duration
	// Protected are the paths no workspace folder registered as a project
	// root may hold (the store's files and spool).
	Protected []string
}

// ExitCode is how a connection ended, as the process should exit.
const (
	// ExitOK: exit after shutdown, or the client went away.
	ExitOK = 0
	// ExitNoShutdown: exit without a shutdown request first (LSP §exit).
	ExitNoShutdown = 1
)

// Serve runs one connection over in and out as the scope's principal until
// the client sends exit, the input ends (the client vanished: handled as
// shutdown then exit) or ctx is done. It returns the exit code the LSP
// specification asks for. Nothing but protocol frames is written to out.
func Serve(ctx context.Context, sc *tenant.Scope, in io.Reader, out io.Writer, opts Options) (int, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Editor == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return ExitNoShutdown, err
		}
		opts.Editor = "ide-" + hex.EncodeToString(b[:])
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := newServer(ctx, cancel, sc, opts)
	st := newStream(in, out, nil, opts.MaxMessage, func(fe *frameError) {
		s.log.Warn("bad input", "code", fe.code, "error", fe.msg)
	})
	rpc := jsonrpc2.NewConn(ctx, st, s, jsonrpc2.SetLogger(slogLogger{s.log}))
	s.rpc = rpc
	close(s.ready)
	go s.run()

	var err error
	select {
	case <-rpc.DisconnectNotify():
	case <-s.exited:
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.stop()
	_ = rpc.Close()
	switch {
	case s.exitReceived():
		return s.code(), nil
	case err != nil:
		return ExitNoShutdown, err
	}
	// The input ended without exit: the client vanished, which counts as
	// shutdown then exit.
	s.log.Info("client went away: shut down")
	return ExitOK, nil
}

// server is one connection's state.
type server struct {
	ctx    context.Context
	cancel context.CancelFunc // ends ctx: the connection's end
	sc     *tenant.Scope
	opts   Options
	log    *slog.Logger
	rpc    *jsonrpc2.Conn

	// queue carries every message but $/cancelRequest, in arrival order,
	// from the read loop to run.
	queue  chan *jsonrpc2.Request
	exited chan struct{}
	// ready is closed once rpc is set: the read loop may deliver a
	// message before NewConn returns.
	ready chan struct{}

	mu       sync.Mutex
	state    state
	exitCode int
	gotExit  bool
	inflight map[jsonrpc2.ID]*pending
	client   string // the client's name and version, from initialize
	roots    []folder
	signals  bool // the client sends coditect/activity (keyboard) signals
	session  string

	docs   *documents
	feed   *feed
	access *access
	// caps are the client's capabilities; bridge its end of the IDE
	// bridge once started (bridge.go).
	caps   clientCapabilities
	bridge *bridgeConn

	bg       sync.WaitGroup // background work: the refresher, the feed, requests
	stopping bool           // set by stop, under mu: no more background work
	stopOnce sync.Once
}

func newServer(ctx context.Context, cancel context.CancelFunc, sc *tenant.Scope, opts Options) *server {
	s := &server{
		ctx: ctx, cancel: cancel, sc: sc, opts: opts, log: opts.Logger,
		queue: make(chan *jsonrpc2.Request, 1024), exited: make(chan struct{}), ready: make(chan struct{}),
		inflight: map[jsonrpc2.ID]*pending{}, exitCode: ExitNoShutdown,
	}
	s.docs = newDocuments(s)
	every := opts.Recheck
	if every <= 0 {
		every = DefaultRecheck
	}
	s.access = &access{sc: sc, every: every}
	return s
}

func (s *server) code() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exitCode
}

func (s *server) exitReceived() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gotExit
}

// goBackground runs fn in a goroutine stop waits for, unless the
// connection is stopping.
func (s *server) goBackground(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		fn()
	}()
	return true
}

// stop ends the connection's background work and releases what it holds
// in the store (the unsaved-edit marks): the shutdown path, whether the
// client asked for it, exited or vanished.
func (s *server) stop() {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.stopping = true
		s.mu.Unlock()
		s.cancel()
		s.release()
		s.bg.Wait()
	})
}

// release clears the marks this connection holds and stops the feed; it
// runs on shutdown and again, harmlessly, when the connection ends.
func (s *server) release() {
	s.mu.Lock()
	f := s.feed
	s.mu.Unlock()
	if f != nil {
		f.stop()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 10*time.Second)
	defer cancel()
	s.stopBridge(ctx)
	if err := s.docs.releaseAll(ctx); err != nil {
		s.log.Warn("clearing unsaved-edit marks", "error", err)
	}
}

// slogLogger adapts slog to jsonrpc2's Logger.
type slogLogger struct{ l *slog.Logger }

func (l slogLogger) Printf(format string, v ...any) {
	l.l.Debug("jsonrpc2", "msg", fmt.Sprintf(format, v...))
}
