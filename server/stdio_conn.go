package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/coditect/coditect/server/localcore"
	"github.com/coditect/coditect/storage/tenant"
)

// ServeConn serves MCP on one connection of the local core (a forwarded
// `coditect mcp`) exactly as ServeStdio serves a process's stdin and
// stdout: the same line limit, the same identity for every call, and when
// in ends, the connection's agents marked offline and its audit records
// committed. instance is the forwarder's (localcore.Hello.Instance; ""
// when it adds no keys): the idempotency keys it adds to calls count
// neither against the limits nor in the calls' records. Any number of
// connections may be served at once: each has an MCP session of its own.
func (s *Server) ServeConn(ctx context.Context, sc *tenant.Scope, instance string, in io.Reader, out io.Writer) error {
	pr := sc.Principal()
	s.logger.Info("serving MCP on a core connection", "tenant", pr.Tenant, "user", pr.User, "role", pr.Role, "local", pr.Local)
	return s.serveLines(ctx, sc, instance, in, out)
}

// serveLines serves one stream of newline-delimited JSON-RPC, a process's
// stdio or a core connection, as the principal of sc, then ends it
// (endStdio).
func (s *Server) serveLines(ctx context.Context, sc *tenant.Scope, instance string, in io.Reader, out io.Writer) error {
	p := newPrincipal(sc, s.recheck)
	limit := int(s.maxMessage())
	if instance != "" {
		// The forwarder's keys are not the host's: the host's calls keep
		// the limits and records a direct process gives them.
		p.addedKeys = localcore.KeyPrefix(instance)
		limit += localcore.KeyRoom(instance)
	}
	w := &lockedWriter{w: out}
	err := s.serveSession(ctx, p, bufio.NewReaderSize(LimitLines(in, w, limit, s.logger), 64<<10), w)
	return s.endStdio(ctx, p, err)
}

// connSeq numbers core connections for their MCP session ids.
var connSeq atomic.Int64

// serveSession reads the stream's messages and serves them: tool calls
// on connWorkers workers, other requests each on its own goroutine,
// notifications in order; initialize, and the tool calls before it, are
// served before the next message is read. When the input ends, the calls already read
// run to their end and are answered before the session ends (a host may
// write its requests and close its end at once); only ctx's end cancels
// them.
func (s *Server) serveSession(ctx context.Context, p *principal, in *bufio.Reader, w *lockedWriter) error {
	sess := &connSession{id: "stdio-" + strconv.FormatInt(connSeq.Add(1), 10), notes: make(chan mcp.JSONRPCNotification, 100)}
	if err := s.mcp.RegisterSession(ctx, sess); err != nil {
		return fmt.Errorf("register session: %w", err)
	}
	defer s.mcp.UnregisterSession(ctx, sess.id)
	ctx = withPrincipal(s.mcp.WithContext(ctx, sess), p)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup // the calls' workers and requests' goroutines
	calls := make(chan json.RawMessage, connQueue)
	for range connWorkers {
		wg.Go(func() {
			for msg := range calls {
				s.answer(ctx, w, msg)
			}
		})
	}
	notes := make(chan struct{})
	go func() {
		defer close(notes)
		for {
			select {
			case n := <-sess.notes:
				writeJSONLine(w, n)
			case <-ctx.Done():
				return
			}
		}
	}()
	err := s.readSession(ctx, in, w, calls, &wg)
	close(calls)
	wg.Wait()
	cancel()
	<-notes
	return err
}

// The tool call workers and queue of one stream (the numbers of mcp-go's
// own stdio server).
const (
	connWorkers = 5
	connQueue   = 100
)

func (s *Server) readSession(ctx context.Context, in *bufio.Reader, w *lockedWriter, calls chan<- json.RawMessage, wg *sync.WaitGroup) error {
	initialized := false // an initialize was read
	for {
		line, err := in.ReadBytes('\n')
		if len(line) > 0 {
			s.dispatch(ctx, line, w, calls, wg, &initialized)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func (s *Server) dispatch(ctx context.Context, line []byte, w *lockedWriter, calls chan<- json.RawMessage, wg *sync.WaitGroup, initialized *bool) {
	// One parse: Unmarshal checks the whole line before it decodes, so a
	// syntax error is malformed JSON, and any other error a message that is
	// not a request object, which mcp-go answers.
	var base struct {
		Method string `json:"method"`
		ID     any    `json:"id,omitempty"`
	}
	err := json.Unmarshal(line, &base)
	if syn := (*json.SyntaxError)(nil); errors.As(err, &syn) {
		writeStdioError(w, nil, mcp.PARSE_ERROR, "Parse error")
		return
	}
	parsed := err == nil
	raw := json.RawMessage(line)
	switch {
	case parsed && base.Method == string(mcp.MethodToolsCall) && !*initialized:
		// A call before any initialize is served in line too: it runs
		// without clientInfo, as its place in the stream says, not with
		// that of an initialize read after it.
		s.answer(ctx, w, raw)
	case parsed && base.Method == string(mcp.MethodToolsCall):
		select {
		case calls <- raw:
		default:
			s.answer(ctx, w, raw) // the queue is full: serve it in line
		}
	case parsed && base.Method == string(mcp.MethodInitialize):
		// In line: the calls a host sends right behind its initialize,
		// without waiting for the answer, run with its clientInfo, as the
		// same agent.
		s.answer(ctx, w, raw)
		*initialized = true
	case parsed && base.ID != nil && base.Method != "":
		wg.Go(func() { s.answer(ctx, w, raw) })
	case parsed && base.Method == "":
		// An answer to a request of the server's: none are made.
	default:
		s.answer(ctx, w, raw)
	}
}

// answer handles one message and writes its response, if any; a panic
// in a handler becomes an internal error of that request.
func (s *Server) answer(ctx context.Context, w *lockedWriter, raw json.RawMessage) {
	var resp mcp.JSONRPCMessage
	func() {
		defer func() {
			if r := recover(); r != nil {
				s.logger.Error("panic recovered in a core connection's handler", "panic", r)
				var base struct {
					ID json.RawMessage `json:"id"`
				}
				_ = json.Unmarshal(raw, &base)
				if base.ID != nil {
					writeStdioError(w, base.ID, mcp.INTERNAL_ERROR, fmt.Sprintf("internal panic: %v", r))
				}
			}
		}()
		resp = s.mcp.HandleMessage(ctx, raw)
	}()
	if resp != nil {
		writeJSONLine(w, resp)
	}
}

func writeJSONLine(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	_, _ = w.Write(append(b, '\n'))
}

// connSession is the MCP session of one core connection.
type connSession struct {
	id          string
	notes       chan mcp.JSONRPCNotification
	initialized atomic.Bool
	level       atomic.Value

	mu   sync.Mutex
	info mcp.Implementation
	caps mcp.ClientCapabilities
}

var (
	_ mcpserver.SessionWithClientInfo = (*connSession)(nil)
	_ mcpserver.SessionWithLogging    = (*connSession)(nil)
)

func (c *connSession) SessionID() string                                   { return c.id }
func (c *connSession) NotificationChannel() chan<- mcp.JSONRPCNotification { return c.notes }
func (c *connSession) Initialize()                                         { c.initialized.Store(true) }
func (c *connSession) Initialized() bool                                   { return c.initialized.Load() }

func (c *connSession) GetClientInfo() mcp.Implementation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info
}

func (c *connSession) SetClientInfo(info mcp.Implementation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.info = info
}

func (c *connSession) GetClientCapabilities() mcp.ClientCapabilities {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.caps
}

func (c *connSession) SetClientCapabilities(caps mcp.ClientCapabilities) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.caps = caps
}

func (c *connSession) SetLogLevel(level mcp.LoggingLevel) { c.level.Store(level) }

func (c *connSession) GetLogLevel() mcp.LoggingLevel {
	if l, ok := c.level.Load().(mcp.LoggingLevel); ok {
		return l
	}
	return mcp.LoggingLevelError
}
