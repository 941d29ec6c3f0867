package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/coditect/coditect/storage/tenant"
)

// ServeStdio serves MCP over in and out (newline-delimited JSON-RPC) as
// the principal of sc until in ends or ctx is canceled; the calls read
// before in ended are answered first. It writes nothing
// but protocol messages to out; its own logs go to the server's logger.
// Use ReserveStdout to keep everything else in the process off the real
// standard output as well.
//
// A line longer than the largest message the server accepts (as over
// HTTP) is answered with a JSON-RPC error and skipped, holding at most
// that many bytes of it in memory; the next line is read normally.
func (s *Server) ServeStdio(ctx context.Context, sc *tenant.Scope, in io.Reader, out io.Writer) error {
	pr := sc.Principal()
	s.logger.Info("serving MCP on stdio", "tenant", pr.Tenant, "user", pr.User, "role", pr.Role, "local", pr.Local)
	return s.serveLines(ctx, sc, "", in, out)
}

// endStdio ends a stdio connection whose serving ended with err: the
// host may kill the process once stdin is closed, so it marks the
// connection's agents offline and commits the queued audit records now.
func (s *Server) endStdio(ctx context.Context, p *principal, err error) error {
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		err = nil
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	reason := "its coditect mcp process ended (stdin closed)"
	if err != nil {
		reason = "its coditect mcp process stopped (" + err.Error() + ")"
	}
	s.markOffline(fctx, p.acted, reason)
	if ferr := s.Flush(fctx); ferr != nil {
		s.logger.Error("audit records not flushed", "err", ferr)
	}
	s.logger.Info("stdio closed", "err", err)
	return err
}

// LimitLines returns the lines of in up to max bytes each, as ServeStdio
// reads them: a longer line is answered on out with a JSON-RPC error
// (one Write) and skipped, holding at most max bytes of it in memory.
func LimitLines(in io.Reader, out io.Writer, max int, logger *slog.Logger) io.Reader {
	return newLineLimiter(in, max, func(id json.RawMessage, size int64, max int) {
		logger.Warn("stdio: oversized message skipped", "bytes", size, "limit", max)
		writeStdioError(out, id, mcp.INVALID_REQUEST, fmt.Sprintf("message of %d bytes exceeds the limit of %d bytes; it was skipped", size, max))
	})
}

// lockedWriter serialises writes: the stdio server writes each message
// with one Write, and so does the line limiter's refusal, so messages
// never interleave.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func writeStdioError(w io.Writer, id json.RawMessage, code int, msg string) {
	if id == nil {
		id = json.RawMessage("null")
	}
	b, err := json.Marshal(struct {
		JSONRPC string                  `json:"jsonrpc"`
		ID      json.RawMessage         `json:"id"`
		Error   mcp.JSONRPCErrorDetails `json:"error"`
	}{mcp.JSONRPC_VERSION, id, mcp.JSONRPCErrorDetails{Code: code, Message: msg}})
	if err != nil {
		return
	}
	_, _ = w.Write(append(b, '\n'))
}

// lineLimiter hands on the lines of r whole, up to max bytes each. A
// longer line is not handed on: refuse is called with its request id
// (when its first or last bytes show one) and its size, and the rest of
// it is skipped up to its newline. It holds at most max bytes of a line.
type lineLimiter struct {
	r       *bufio.Reader
	max     int
	refuse  func(id json.RawMessage, size int64, max int)
	line    []byte // the line being read
	pending []byte // what is left to hand on of a complete line
}

func newLineLimiter(r io.Reader, max int, refuse func(id json.RawMessage, size int64, max int)) *lineLimiter {
	return &lineLimiter{r: bufio.NewReaderSize(r, 64<<10), max: max, refuse: refuse}
}

func (l *lineLimiter) Read(p []byte) (int, error) {
	for len(l.pending) == 0 {
		if err := l.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, l.pending)
	l.pending = l.pending[n:]
	return n, nil
}

// next reads lines until one fits, and makes it pending.
func (l *lineLimiter) next() error {
	l.line = l.line[:0]
	for {
		chunk, err := l.r.ReadSlice('\n')
		if len(l.line)+len(chunk) > l.max {
			l.skip(chunk, err)
			l.line = l.line[:0]
			continue
		}
		l.line = append(l.line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if len(l.line) == 0 {
			return err
		}
		// A last line without a newline is handed on; the error comes
		// with the next read.
		l.pending = l.line
		return nil
	}
}

// skip discards the rest of an oversized line, of which l.line and chunk
// have been read, and refuses it.
func (l *lineLimiter) skip(chunk []byte, err error) {
	const look = 4 << 10
	head := append(l.line, chunk[:min(len(chunk), max(0, look-len(l.line)))]...)
	id := leadingID(head)
	size := int64(len(l.line) + len(chunk))
	tail := make([]byte, 0, 2*idTail)
	tail = appendTail(tail, chunk)
	for errors.Is(err, bufio.ErrBufferFull) {
		chunk, err = l.r.ReadSlice('\n')
		size += int64(len(chunk))
		tail = appendTail(tail, chunk)
	}
	if id == nil {
		id = trailingID(tail)
	}
	size -= int64(len(tail) - len(bytes.TrimRight(tail, "\r\n")))
	l.refuse(id, size, l.max)
}

// idTail is how many of an oversized line's last bytes are kept to find
// its id: clients that put the id last (after the params) are common.
const idTail = 256

// appendTail appends b to tail and keeps its last idTail bytes.
func appendTail(tail, b []byte) []byte {
	tail = append(tail, b[max(0, len(b)-idTail):]...)
	if len(tail) > idTail {
		tail = append(tail[:0], tail[len(tail)-idTail:]...)
	}
	return tail
}

// leadingID returns the id of a JSON-RPC message of which head is the
// beginning, when a top-level "id" comes before anything head cuts.
func leadingID(head []byte) json.RawMessage {
	dec := json.NewDecoder(bytes.NewReader(head))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	for {
		key, err := dec.Token()
		if err != nil {
			return nil
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil
		}
		if key == "id" {
			return validID(v)
		}
	}
}

// trailingIDPattern finds a message's last member when it is the id.
var trailingIDPattern = regexp.MustCompile(`"id"\s*:\s*(-?[0-9]+|"(?:[^"\\]|\\.){0,128}")\s*\}\s*$`)

// trailingID returns the id of a JSON-RPC message ending with tail, when
// the id is its last member.
func trailingID(tail []byte) json.RawMessage {
	m := trailingIDPattern.FindSubmatch(tail)
	if m == nil {
		return nil
	}
	return validID(m[1])
}

// validID returns v when it is a JSON-RPC id: a string or a number.
func validID(v []byte) json.RawMessage {
	var id any
	if json.Unmarshal(v, &id) != nil {
		return nil
	}
	switch id.(type) {
	case string, float64:
		return json.RawMessage(bytes.Clone(v))
	}
	return nil
}
