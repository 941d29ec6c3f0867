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
// served before the next message is read. A cancellation reaches a
// request read before it, whether it is running or still queued. When
// the input ends, the calls already read run to their end and are
// answered before the session ends (a host may write its requests and
// close its end at once); only ctx's end cancels them.
func (s *Server) serveSession(ctx context.Context, p *principal, in *bufio.Reader, w *lockedWriter) error {
	sess := &connSession{id: "stdio-" + strconv.FormatInt(connSeq.Add(1), 10), notes: make(chan mcp.JSONRPCNotification, 100)}
	if err := s.mcp.RegisterSession(ctx, sess); err != nil {
		return fmt.Errorf("register session: %w", err)
	}
	defer s.mcp.UnregisterSession(ctx, sess.id)
	ctx = withPrincipal(s.mcp.WithContext(ctx, sess), p)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st := &stream{s: s, w: w, calls: make(chan request, connQueue), pending: map[string]map[uint64]context.CancelFunc{}}
	for range connWorkers {
		st.wg.Go(func() {
			for r := range st.calls {
				st.serve(r)
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
	err := st.read(ctx, in)
	close(st.calls)
	st.wg.Wait()
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

// stream is the state of one stream's serving.
type stream struct {
	s     *Server
	w     *lockedWriter
	calls chan request   // tool calls for the workers
	wg    sync.WaitGroup // the workers and the requests' goroutines
	// initialized: an initialize was read
	initialized bool

	// pending holds the cancels of the requests read and not answered,
	// by id (mcp.RequestId's text), so that a cancellation reaches a
	// request mcp-go has not started yet, which it would not see.
	mu      sync.Mutex
	pending map[string]map[uint64]context.CancelFunc
	next    uint64
}

// request is a request read, with its context and what ends it.
type request struct {
	ctx  context.Context
	raw  json.RawMessage
	done func()
}

// start returns the context of a request with id read now, cancelled by a
// cancellation of id, and what to call once it is answered.
func (st *stream) start(ctx context.Context, id any) (context.Context, func()) {
	key := mcp.NewRequestId(id).String()
	ctx, cancel := context.WithCancel(ctx)
	st.mu.Lock()
	n := st.next
	st.next++
	if st.pending[key] == nil {
		st.pending[key] = map[uint64]context.CancelFunc{}
	}
	st.pending[key][n] = cancel
	st.mu.Unlock()
	return ctx, func() {
		st.mu.Lock()
		delete(st.pending[key], n)
		if len(st.pending[key]) == 0 {
			delete(st.pending, key)
		}
		st.mu.Unlock()
		cancel()
	}
}

// cancel cancels the requests read with the id a cancellation names.
func (st *stream) cancel(line []byte) {
	var n struct {
		Params struct {
			RequestID any `json:"requestId"`
		} `json:"params"`
	}
	if json.Unmarshal(line, &n) != nil || n.Params.RequestID == nil {
		return
	}
	key := mcp.NewRequestId(n.Params.RequestID).String()
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, cancel := range st.pending[key] {
		cancel()
	}
}

func (st *stream) serve(r request) {
	defer r.done()
	st.s.answer(r.ctx, st.w, r.raw)
}

func (st *stream) read(ctx context.Context, in *bufio.Reader) error {
	for {
		line, err := in.ReadBytes('\n')
		if len(line) > 0 {
			st.dispatch(ctx, line)
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

func (st *stream) dispatch(ctx context.Context, line []byte) {
	// One parse: Unmarshal checks the whole line before it decodes, so a
	// syntax error is malformed JSON, and any other error a message that is
	// not a request object, which mcp-go answers.
	var base struct {
		Method string          `json:"method"`
		ID     json.RawMessage `json:"id"`
	}
	err := json.Unmarshal(line, &base)
	if syn := (*json.SyntaxError)(nil); errors.As(err, &syn) {
		writeStdioError(st.w, nil, mcp.PARSE_ERROR, "Parse error")
		return
	}
	if te := (*json.UnmarshalTypeError)(nil); errors.As(err, &te) && te.Value == "array" && te.Field == "" {
		writeStdioError(st.w, nil, mcp.INVALID_REQUEST, batchRefused)
		return
	}
	parsed := err == nil
	if msg := requestIDProblem(base.ID, base.Method); parsed && msg != "" {
		writeStdioError(st.w, nil, mcp.INVALID_REQUEST, msg)
		return
	}
	// A request has an id (a string or a number, as checked); "id": null
	// is a notification's.
	isRequest := len(base.ID) > 0 && string(base.ID) != "null"
	raw := json.RawMessage(line)
	started := func() request {
		var id any
		_ = json.Unmarshal(base.ID, &id)
		rctx, done := st.start(ctx, id)
		return request{ctx: rctx, raw: raw, done: done}
	}
	switch {
	case parsed && base.Method == string(mcp.MethodToolsCall) && !st.initialized:
		// A call before any initialize is served in line too: it runs
		// without clientInfo, as its place in the stream says, not with
		// that of an initialize read after it.
		st.s.answer(ctx, st.w, raw)
	case parsed && base.Method == string(mcp.MethodToolsCall) && isRequest:
		r := started()
		select {
		case st.calls <- r:
		default:
			st.serve(r) // the queue is full: serve it in line
		}
	case parsed && base.Method == string(mcp.MethodInitialize):
		// In line: the calls a host sends right behind its initialize,
		// without waiting for the answer, run with its clientInfo, as the
		// same agent.
		st.s.answer(ctx, st.w, raw)
		st.initialized = true
	case parsed && isRequest && base.Method != "":
		r := started()
		st.wg.Go(func() { st.serve(r) })
	case parsed && base.Method == "":
		// An answer to a request of the server's: none are made.
	case parsed && base.Method == string(mcp.MethodNotificationCancelled):
		st.cancel(line)
		st.s.answer(ctx, st.w, raw)
	default:
		st.s.answer(ctx, st.w, raw)
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
