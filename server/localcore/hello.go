package localcore

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
)

// versionRefused begins a core's refusal of a hello of another version.
const versionRefused = "localcore: hello of version"

// Version is the version of the hello protocol; a core refuses another,
// telling the client to serve the store itself.
// Version 2: harmless tools' calls carry the transport's keys too.
const Version = 2

// Hello is the first line a client sends on a core connection: who it
// is, exactly as a stdio process would resolve it, and what it serves.
type Hello struct {
	V int `json:"v"`
	// Kind is the protocol that follows: "mcp" or "ide" (see ForwardIDE).
	Kind string `json:"kind"`
	// Token, Tenant and User are what the stdio process was given
	// ($CODITECT_TOKEN, --tenant, --user; User the OS user when neither a
	// token nor --user was given).
	Token  string `json:"token,omitempty"`
	Tenant string `json:"tenant,omitempty"`
	User   string `json:"user,omitempty"`
	// Workspace is the client's working directory.
	Workspace string `json:"workspace,omitempty"`
	// Store is the store URL as the client was given it: a core serves
	// only clients whose URL has its own parameters (lock_timeout, …).
	Store string `json:"store,omitempty"`
	// PID is the client process's pid, for the core's log.
	PID int `json:"pid,omitempty"`
	// Options are the protocol's own settings (flags of the stdio mode).
	Options json.RawMessage `json:"options,omitempty"`
	// Answers: after an OK reply that agrees (Reply.Answers), the client
	// passes its output and an answer ring, and the core writes its
	// answers there (see answers.go). Set by WithAnswers.
	Answers bool `json:"answers,omitempty"`
	// Reads: with Answers, the client also passes its input and a request
	// journal, and the core reads the input itself (see journal.go). Set
	// by Dial when the Answers offer the input.
	Reads bool `json:"reads,omitempty"`
	// Instance and Keyed are how the client adds idempotency keys (the
	// Forwarder's Instance, the tools its Tools add keys to, AddsKey): a
	// core that reads the input adds the same.
	Instance string   `json:"instance,omitempty"`
	Keyed    []string `json:"keyed,omitempty"`

	answers *Answers
}

// WithAnswers returns h asking the core to answer through a (see
// answers.go); a nil a asks for nothing.
func (h Hello) WithAnswers(a *Answers) Hello {
	h.Answers, h.answers = a != nil, a
	return h
}

// Reply answers a hello: OK with the core's pid, or why it was refused.
type Reply struct {
	OK    bool   `json:"ok,omitempty"`
	PID   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
	// Direct: the client should serve itself (the core opened the store
	// with other parameters); Error says why.
	Direct bool `json:"direct,omitempty"`
	// Answers: the core writes its answers to the client's output, which
	// the client passes next (Hello.Answers).
	Answers bool `json:"answers,omitempty"`
	// Reads: the core reads the client's input too (Hello.Reads).
	Reads bool `json:"reads,omitempty"`
}

// maxHello bounds a hello line (and a reply).
const maxHello = 64 << 10

// DirectError is returned by an Opener to tell the client to serve
// itself rather than fail.
type DirectError struct{ Reason string }

func (e *DirectError) Error() string { return e.Reason }

// ErrRefused wraps a core's refusal of a hello; its text is the core's.
var ErrRefused = errors.New("refused by the local core")

// RefusedError is a hello the core refused, with the core's reason.
type RefusedError struct {
	Reason string
	// Direct: the client should serve itself (see Reply.Direct).
	Direct bool
}

func (e *RefusedError) Error() string { return e.Reason }

// Unwrap makes errors.Is(err, ErrRefused) hold.
func (e *RefusedError) Unwrap() error { return ErrRefused }

func writeLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// readLine reads one JSON line of at most maxHello bytes into v and
// returns the reader, which may hold what follows the line.
func readLine(r io.Reader, v any) (*bufio.Reader, error) {
	br := bufio.NewReaderSize(r, maxHello)
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return br, fmt.Errorf("localcore: hello longer than %d bytes", maxHello)
	}
	if err != nil {
		return br, err
	}
	if err := json.Unmarshal(line, v); err != nil {
		return br, fmt.Errorf("localcore: hello is not JSON: %w", err)
	}
	return br, nil
}

func readHello(r io.Reader) (*bufio.Reader, Hello, error) {
	var h Hello
	br, err := readLine(r, &h)
	if err != nil {
		return br, h, err
	}
	if h.V != Version {
		return br, h, &DirectError{Reason: fmt.Sprintf(versionRefused+" %d; this core speaks version %d (the client serves the store itself until this core exits idle)", h.V, Version)}
	}
	return br, h, nil
}

// bufferedConn is a connection whose first bytes were read ahead into r.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
	// answers: the core answers the client directly (Reply.Answers);
	// reads: it reads the client's input too (Reply.Reads).
	answers, reads bool
}

// AnswersDirectly reports whether the core at the other end of c, a
// connection Dial returned, writes its answers to the client's output.
func AnswersDirectly(c net.Conn) bool {
	bc, ok := c.(*bufferedConn)
	return ok && bc.answers
}

// ReadsDirectly reports whether the core at the other end of c, a
// connection Dial returned, reads the client's input itself.
func ReadsDirectly(c net.Conn) bool {
	bc, ok := c.(*bufferedConn)
	return ok && bc.reads
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite half-closes the connection when it can: the other end reads
// EOF and may still answer.
func (c *bufferedConn) CloseWrite() error { return closeWrite(c.Conn) }

func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}
