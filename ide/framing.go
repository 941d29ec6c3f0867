package ide

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/coditect/coditect/internal/textclip"
)

// LSP base framing: a header block of "Name: value\r\n" lines ended by an
// empty line, then exactly Content-Length bytes of JSON.
//
// stream is the jsonrpc2.ObjectStream of a connection. sourcegraph/jsonrpc2
// closes the connection when ReadObject fails, so ReadObject never returns
// an error for bad input: it answers a malformed frame, an oversized one, a
// body that is not JSON and a JSON value that is not a JSON-RPC message
// with the JSON-RPC error the spec names (id null when the message's id
// cannot be read) and reads on. Only the end of the input or a failing
// reader ends it.

// DefaultMaxMessage is the largest message body the server reads (64 MiB):
// a didOpen of a large generated file must fit.
const DefaultMaxMessage = 64 << 20

// Framing limits.
const (
	// maxHeaderLine bounds one header line; longer lines are consumed and
	// reported, never buffered whole.
	maxHeaderLine = 8 << 10
	// maxHeaderLines bounds the lines of one header block.
	maxHeaderLines = 64
)

// JSON-RPC and LSP error codes.
const (
	codeParseError           = -32700
	codeInvalidRequest       = -32600
	codeMethodNotFound       = -32601
	codeInvalidParams        = -32602
	codeInternalError        = -32603
	codeServerNotInitialized = -32002
	codeRequestCancelled     = -32800
	codeRequestFailed        = -32803
)

// frameError is input the stream could not turn into a message. The
// stream answers it and reads on.
type frameError struct {
	code int64
	msg  string
	id   *jsonrpc2.ID // the message's id, when it could be read
}

func (e *frameError) Error() string { return e.msg }

type stream struct {
	r      *bufio.Reader
	w      io.Writer
	closer io.Closer
	max    int64
	// onBad is told of every bad frame (for logs and counters); may be nil.
	onBad func(*frameError)
	// resync is set after a frame of unknown extent: the lines up to the
	// next Content-Length header are its rest.
	resync bool

	wmu sync.Mutex
}

func newStream(r io.Reader, w io.Writer, closer io.Closer, max int64, onBad func(*frameError)) *stream {
	if max <= 0 {
		max = DefaultMaxMessage
	}
	return &stream{r: bufio.NewReaderSize(r, 64<<10), w: w, closer: closer, max: max, onBad: onBad}
}

// WriteObject implements jsonrpc2.ObjectStream.
func (s *stream) WriteObject(obj any) error {
	body, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	return s.writeFrame(body)
}

func (s *stream) writeFrame(body []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	// One write per frame: a frame is never interleaved with another.
	buf := make([]byte, 0, len(body)+32)
	buf = append(buf, "Content-Length: "...)
	buf = strconv.AppendInt(buf, int64(len(body)), 10)
	buf = append(buf, "\r\n\r\n"...)
	buf = append(buf, body...)
	_, err := s.w.Write(buf)
	return err
}

// Close implements jsonrpc2.ObjectStream.
func (s *stream) Close() error {
	if s.closer != nil {
		return s.closer.Close()
	}
	return nil
}

// ReadObject implements jsonrpc2.ObjectStream: it stores the next valid
// JSON-RPC message in v, answering and skipping bad input.
func (s *stream) ReadObject(v any) error {
	for {
		body, err := s.readFrame()
		var fe *frameError
		if errors.As(err, &fe) {
			s.reject(fe)
			continue
		}
		if err != nil {
			return err
		}
		if fe := checkMessage(body); fe != nil {
			s.reject(fe)
			continue
		}
		if err := json.Unmarshal(body, v); err != nil {
			s.reject(&frameError{code: codeInvalidRequest, msg: "invalid JSON-RPC message: " + err.Error(), id: messageID(body)})
			continue
		}
		return nil
	}
}

// reject answers bad input with an error response (a response to a
// notification's id would be wrong, but a message whose id cannot be read
// gets id null, as JSON-RPC 2.0 §5 says).
func (s *stream) reject(fe *frameError) {
	if s.onBad != nil {
		s.onBad(fe)
	}
	type rpcError struct {
		Code    int64  `json:"code"`
		Message string `json:"message"`
	}
	resp := struct {
		JSONRPC string       `json:"jsonrpc"`
		ID      *jsonrpc2.ID `json:"id"`
		Error   rpcError     `json:"error"`
	}{"2.0", fe.id, rpcError{fe.code, fe.msg}}
	body, err := json.Marshal(resp)
	if err == nil {
		_ = s.writeFrame(body) // a failing writer ends the connection elsewhere
	}
}

// readFrame reads one frame's body. A *frameError means the frame was bad
// and has been consumed; any other error ends the stream.
func (s *stream) readFrame() ([]byte, error) {
	length := int64(-1)
	var bad string
	lines, lengths := 0, 0
	conflict := false // two Content-Length headers disagree
	for {
		line, long, err := s.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) && lines > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if line == "" && !long {
			if lines == 0 {
				continue // blank lines between frames
			}
			break
		}
		if s.resync {
			// The rest of a frame whose length was ambiguous: skip it,
			// already answered, up to the next Content-Length header.
			i := indexContentLength(line)
			if i < 0 {
				continue
			}
			s.resync = false
			line = line[i:]
		}
		lines++
		if lines > maxHeaderLines {
			bad = fmt.Sprintf("header block of more than %d lines", maxHeaderLines)
			continue
		}
		if long {
			bad = fmt.Sprintf("header line longer than %d bytes", maxHeaderLine)
			continue
		}
		// Resynchronise after junk: a header that starts mid-line.
		if i := indexContentLength(line); i > 0 {
			bad = fmt.Sprintf("%d bytes of junk before a header", i)
			line = line[i:]
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			bad = fmt.Sprintf("malformed header line %q", textclip.Clip(line, 60))
			continue
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "content-length":
			lengths++
			n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
			if err != nil || n < 0 {
				bad = fmt.Sprintf("Content-Length %q is not a byte count", textclip.Clip(strings.TrimSpace(value), 40))
				conflict = conflict || lengths > 1
				length = -1
				continue
			}
			if lengths > 1 && n != length {
				conflict = true
			}
			length = n
		case "content-type":
			// The spec's only charset is utf-8 (and the legacy utf8).
		}
	}
	if lengths > 1 {
		return nil, s.duplicateLength(length, conflict)
	}
	if length < 0 {
		if bad == "" {
			bad = "header block without Content-Length"
		}
		return nil, &frameError{code: codeParseError, msg: "malformed frame: " + bad}
	}
	if length > s.max {
		// Answer first, then skip exactly the declared bytes: the frame
		// after it is read normally.
		fe := &frameError{code: codeInvalidRequest, msg: fmt.Sprintf("message of %d bytes exceeds the limit of %d bytes; it was skipped", length, s.max)}
		s.reject(fe)
		if _, err := io.CopyN(io.Discard, s.r, length); err != nil {
			return nil, err
		}
		return s.readFrame()
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(s.r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if bad != "" {
		// The frame itself was readable: report the junk, keep the frame.
		s.reject(&frameError{code: codeParseError, msg: "malformed frame: " + bad})
	}
	return body, nil
}

// duplicateLength handles a header block with more than one
// Content-Length. Trusting either would let the message's bytes run into
// the next frame (or the next frame's into this one), swallowing a
// request, so the frame is refused: when the lengths agree its body is
// skipped; when they disagree, nothing can say where it ends, so the
// stream skips to the next Content-Length header.
func (s *stream) duplicateLength(length int64, conflict bool) error {
	fe := &frameError{code: codeParseError, msg: "malformed frame: more than one Content-Length header; the message was skipped"}
	if conflict {
		fe.msg = "malformed frame: conflicting Content-Length headers; the message was skipped"
		s.resync = true
		return fe
	}
	if _, err := io.CopyN(io.Discard, s.r, length); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return fe
}

// readLine reads a header line without its "\r\n" (or "\n"). long is set
// when the line exceeded maxHeaderLine: it was consumed and dropped.
func (s *stream) readLine() (line string, long bool, err error) {
	var buf []byte
	for {
		chunk, err := s.r.ReadSlice('\n')
		if len(buf)+len(chunk) > maxHeaderLine {
			long = true
			buf = nil
		} else if !long {
			buf = append(buf, chunk...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if long || len(buf) > 0 {
				return "", long, io.ErrUnexpectedEOF
			}
			return "", false, err
		}
		break
	}
	buf = bytes.TrimSuffix(bytes.TrimSuffix(buf, []byte("\n")), []byte("\r"))
	return string(buf), long, nil
}

// checkMessage refuses a body that is not one JSON-RPC 2.0 message: not
// JSON (parse error), a batch (LSP has none), or an object without a
// string method nor a result or error.
func checkMessage(body []byte) *frameError {
	if !json.Valid(body) {
		return &frameError{code: codeParseError, msg: "the message body is not valid JSON"}
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		if len(trimmed) > 0 && trimmed[0] == '[' {
			return &frameError{code: codeInvalidRequest, msg: "batches are not supported: send one message per frame"}
		}
		return &frameError{code: codeInvalidRequest, msg: "a message must be a JSON object"}
	}
	var m struct {
		JSONRPC *string         `json:"jsonrpc"`
		Method  json.RawMessage `json:"method"`
		ID      json.RawMessage `json:"id"`
		Result  json.RawMessage `json:"result"`
		Error   json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return &frameError{code: codeInvalidRequest, msg: "invalid JSON-RPC message: " + err.Error()}
	}
	id := messageID(body)
	if m.JSONRPC == nil || *m.JSONRPC != "2.0" {
		return &frameError{code: codeInvalidRequest, msg: `"jsonrpc" must be "2.0"`, id: id}
	}
	if m.ID != nil && !bytes.Equal(m.ID, []byte("null")) && id == nil {
		return &frameError{code: codeInvalidRequest, msg: fmt.Sprintf("id %s must be a non-negative integer or a string", textclip.Clip(string(m.ID), 40))}
	}
	switch {
	case m.Method != nil:
		var method string
		if err := json.Unmarshal(m.Method, &method); err != nil {
			return &frameError{code: codeInvalidRequest, msg: `"method" must be a string`, id: id}
		}
		if m.Result != nil || m.Error != nil {
			return &frameError{code: codeInvalidRequest, msg: "a message cannot be both a request and a response", id: id}
		}
	case m.Result != nil || m.Error != nil:
		if m.ID == nil {
			return &frameError{code: codeInvalidRequest, msg: "a response needs an id"}
		}
	default:
		return &frameError{code: codeInvalidRequest, msg: `neither a request ("method") nor a response ("result" or "error")`, id: id}
	}
	return nil
}

// messageID returns the id of a message, nil when it has none that
// jsonrpc2 accepts.
func messageID(body []byte) *jsonrpc2.ID {
	var m struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(body, &m) != nil || m.ID == nil || bytes.Equal(m.ID, []byte("null")) {
		return nil
	}
	var id jsonrpc2.ID
	if json.Unmarshal(m.ID, &id) != nil {
		return nil
	}
	return &id
}

// indexContentLength returns the byte offset in line of a Content-Length
// header's name, in any case, or -1. It folds ASCII letters only, so the
// offset holds in line itself (strings.ToLower may change the length of
// a line that is not valid UTF-8).
func indexContentLength(line string) int {
	const name = "content-length:"
	for i := 0; i+len(name) <= len(line); i++ {
		j := 0
		for ; j < len(name); j++ {
			c := line[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != name[j] {
				break
			}
		}
		if j == len(name) {
			return i
		}
	}
	return -1
}
