package localcore

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Direct answers. A forwarder relays its client's requests to the core,
// but the core may write its answers straight to the client's output: the
// forwarder passes that descriptor, and a shared answer ring, over the
// core's socket after the hello (Hello.Answers, where the platform allows
// it). A call then costs the forwarder one read and one write instead of
// two of each; on 2 cores this measured 5-15 % more calls per second
// with 1 to 32 agents (docs/BENCHMARKS.md).
//
// The forwarder must still know which requests were answered, to send
// again only those in flight when the core dies. Before each request it
// sends a control line, "@<seq> <quoted id key>" (wireKey), that the core's side
// strips (answerConn); the core marks the request's seq in the ring when
// it begins writing the answer and again when the write returned. When
// the core dies, the forwarder reads the ring (settle): answered requests
// are dropped, the others sent again. An answer begun and not marked
// written may have reached the client, which may then see a second
// answer to that request (a client drops an answer to an id it no longer
// waits for). A long answer begun may have left part of a line, which the
// forwarder ends with a newline before it writes anything else.
//
// Only one process writes the client's output at a time: the core while
// its connection lasts (it stops writing before it closes the
// connection), the forwarder only after the old core's connection ended
// and before it connects a new core. The answer to the forwarder's replayed initialize
// (replayPrefix) goes back over the socket.

// ringSlots is the number of seqs the ring remembers. A forwarder checks
// its pending requests against the ring at least every minPruneAt
// requests (prune), long before a slot is reused.
const ringSlots = 4096

// ringBytes is the ring's size: a writing and a written mark per slot.
const ringBytes = 2 * ringSlots * 8

// ring is the answer ring, shared by a forwarder and its core: for slot
// seq%ringSlots, the seq+1 whose answer the core began writing and the
// seq+1 whose answer it wrote.
type ring struct {
	writing *[ringSlots]atomic.Uint64
	written *[ringSlots]atomic.Uint64
}

// begin marks the answer to seq as being written, with whether it is
// longer than an atomic write to a pipe (pipeBuf).
func (r *ring) begin(seq uint64, long bool) {
	m := (seq + 1) << 1
	if long {
		m |= 1
	}
	r.writing[seq%ringSlots].Store(m)
}

func (r *ring) end(seq uint64)            { r.written[seq%ringSlots].Store(seq + 1) }
func (r *ring) isWritten(seq uint64) bool { return r.written[seq%ringSlots].Load() == seq+1 }

// isPartial reports whether a long answer to seq was being written when
// the core stopped: part of it may be in the client's output. (A pipe
// takes a write of at most pipeBuf bytes whole or not at all.)
func (r *ring) isPartial(seq uint64) bool {
	return r.writing[seq%ringSlots].Load() == (seq+1)<<1|1 && !r.isWritten(seq)
}

// pipeBuf is the longest write a pipe takes whole (PIPE_BUF on Linux).
const pipeBuf = 4096

// Answers is what a forwarder gives its cores so that they answer its
// client directly: the client's output and the answer ring.
type Answers struct {
	out      *os.File
	ringFile *os.File
	ring     *ring

	// When the cores may also read the client's input (WithInput): the
	// input, the request journal (journal.go) and its file.
	in       *os.File
	jfile    *os.File
	journal  *journal
	selfRead atomic.Bool // the forwarder reads the input itself now
}

// offersInput reports whether a core may read the client's input.
func (a *Answers) offersInput() bool { return a != nil && a.in != nil && !a.selfRead.Load() }

// replayPrefix begins the id of the initialize a forwarder replays to a
// new core: its answer goes back over the socket, not to the client.
const replayPrefix = "coditect-core-replay-"

// controlLine is the line a forwarder sends before request seq whose id
// key is key.
func controlLine(seq uint64, key string) []byte {
	key = wireKey(key)
	b := make([]byte, 0, 24+len(key))
	b = append(b, '@')
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, ' ')
	b = strconv.AppendQuote(b, key)
	return append(b, '\n')
}

// maxWireKey is the longest id key a control line carries as it is.
const maxWireKey = 128

// wireKey is how an id key (idKey) names its request on the connection
// between a forwarder and its core: itself, or when it is longer than
// maxWireKey (a client may use long string ids) a digest of it, so that
// a control line stays short.
func wireKey(key string) string {
	if len(key) <= maxWireKey {
		return key
	}
	d := sha256.Sum256([]byte(key))
	return "#" + hex.EncodeToString(d[:])
}

// maxControlLine bounds a control line: a seq and a quoted id key.
const maxControlLine = 4 << 10

// parseControl parses a control line (without its newline).
func parseControl(line []byte) (uint64, string, error) {
	s, k, ok := bytes.Cut(bytes.TrimPrefix(line, []byte("@")), []byte(" "))
	if !ok {
		return 0, "", fmt.Errorf("localcore: malformed control line %.64q", line)
	}
	seq, err := strconv.ParseUint(string(s), 10, 64)
	if err != nil {
		return 0, "", fmt.Errorf("localcore: malformed control line %.64q", line)
	}
	key, err := strconv.Unquote(string(k))
	if err != nil {
		return 0, "", fmt.Errorf("localcore: malformed control line %.64q", line)
	}
	return seq, key, nil
}

// answerConn is the core's side of a connection whose answers go straight
// to the client: it reads the requests without the control lines and
// writes each message to the client's output, marking answers in the
// ring, except the answer to a replayed initialize, which goes back over
// the connection.
type answerConn struct {
	net.Conn               // writes to the forwarder; Close
	in       *bufio.Reader // the connection's input, past the hello
	out      *os.File
	ring     *ring
	unmap    func()

	rmu     sync.Mutex // Read's state
	midLine bool       // Read is inside a request line
	readErr error
	mu      sync.Mutex // the seqs of requests not answered yet
	// seqs holds them by id key, oldest first: when a host reuses the id
	// of a request in flight, each answer marks one of the requests.
	seqs      map[string][]uint64
	nseqs     int
	wmu       sync.Mutex // whole lines to the client's output; closed
	closed    bool       // the output closed and the ring unmapped
	closeOnce sync.Once

	// When the core reads the client's input (readInput): the input, the
	// journal and the keyer, and the intake once the forwarder has sent
	// what it had ("@in").
	inFile   *os.File
	journal  *journal
	keyer    keyer
	intake   *intake
	answered chan struct{} // an answer was written
	stop     chan struct{} // closed when the core stops reading the input
	stopOnce sync.Once
}

// inControl is the control line after which the core reads the client's
// input itself: the forwarder has sent everything it had.
const inControl = "@in"

// readInput makes the core read the client's input in itself, through
// the journal j, once the forwarder says so (inControl).
func (a *answerConn) readInput(in *os.File, j *journal, k keyer) {
	a.inFile, a.journal, a.keyer = in, j, k
	a.answered = make(chan struct{}, 1)
	a.stop = make(chan struct{})
}

// stopInput stops the core's reading of the client's input.
func (a *answerConn) stopInput() {
	a.stopOnce.Do(func() {
		close(a.stop)
		_ = a.inFile.SetReadDeadline(time.Unix(1, 0))
	})
}

// startIntake begins reading the client's input. The forwarder sends
// nothing more on the connection: its end, or anything, means the
// forwarder has gone, and the core stops reading the input. a.rmu is held.
func (a *answerConn) startIntake() {
	a.intake = newIntake(a.journal, a.inFile, a.ring, a.keyer, a.remember, a.answered, a.stop)
	go func() {
		_, _ = a.in.ReadByte()
		a.stopInput()
	}()
}

func (a *answerConn) remember(key string, seq uint64) {
	a.mu.Lock()
	if a.nseqs >= maxSeqs {
		clear(a.seqs)
		a.nseqs = 0
	}
	a.seqs[key] = append(a.seqs[key], seq)
	a.nseqs++
	a.mu.Unlock()
}

// readIntake reads the client's input; its end, or the core stopping,
// ends it as the end of input.
func (a *answerConn) readIntake(p []byte) (int, error) {
	n, err := a.intake.Read(p)
	if err != nil && (errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, os.ErrClosed)) {
		err = io.EOF
	}
	return n, err
}

// maxSeqs bounds the seqs a connection remembers: requests a client
// cancelled may never be answered. Past it they are forgotten, and the
// forwarder sends those requests again if the core dies.
const maxSeqs = 1 << 16

func newAnswerConn(c net.Conn, in *bufio.Reader, out *os.File, r *ring, unmap func()) *answerConn {
	return &answerConn{Conn: c, in: in, out: out, ring: r, unmap: unmap, seqs: map[string][]uint64{}}
}

// Read returns the client's requests as the forwarder sent them, without
// the control lines, whose seqs it remembers by id key.
func (a *answerConn) Read(p []byte) (int, error) {
	a.rmu.Lock()
	defer a.rmu.Unlock()
	if a.readErr != nil {
		return 0, a.readErr
	}
	if a.intake != nil {
		return a.readIntake(p)
	}
	for !a.midLine {
		b, err := a.in.Peek(1)
		if err != nil {
			return 0, err
		}
		if b[0] != '@' {
			a.midLine = true
			break
		}
		line, err := a.in.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) || len(line) > maxControlLine {
			a.readErr = fmt.Errorf("localcore: control line longer than %d bytes", maxControlLine)
			return 0, a.readErr
		}
		if err != nil {
			return 0, err
		}
		if string(bytes.TrimSuffix(line, []byte("\n"))) == inControl && a.journal != nil {
			a.startIntake()
			return a.readIntake(p)
		}
		seq, key, err := parseControl(bytes.TrimSuffix(line, []byte("\n")))
		if err != nil {
			a.readErr = err
			return 0, err
		}
		a.remember(key, seq)
	}
	// Up to the end of the request line, which may take several reads.
	if buffered := a.in.Buffered(); buffered == 0 {
		if _, err := a.in.Peek(1); err != nil {
			return 0, err
		}
	}
	chunk, _ := a.in.Peek(min(len(p), a.in.Buffered()))
	if i := bytes.IndexByte(chunk, '\n'); i >= 0 {
		chunk = chunk[:i+1]
		a.midLine = false
	}
	n := copy(p, chunk)
	_, _ = a.in.Discard(n)
	return n, nil
}

// Write writes the core's messages, whole lines, to the client's output,
// marking each answer to a request with a seq in the ring before and
// after its write; the answer to a replayed initialize goes back over the
// connection.
func (a *answerConn) Write(p []byte) (int, error) {
	for rest := p; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		rest = rest[len(line):]
		if err := a.writeLine(line); err != nil {
			return len(p) - len(rest) - len(line), err
		}
	}
	return len(p), nil
}

func (a *answerConn) writeLine(line []byte) error {
	id, ok := answerID(line)
	var seq uint64
	numbered := false
	if ok {
		key := idKey(id)
		if strings.HasPrefix(key, "s"+replayPrefix) {
			_, err := a.Conn.Write(line)
			return err
		}
		key = wireKey(key)
		a.mu.Lock()
		if q := a.seqs[key]; len(q) > 0 {
			seq, numbered = q[0], true
			if len(q) == 1 {
				delete(a.seqs, key)
			} else {
				a.seqs[key] = q[1:]
			}
			a.nseqs--
		}
		a.mu.Unlock()
	}
	a.wmu.Lock()
	defer a.wmu.Unlock()
	if a.closed {
		return net.ErrClosed
	}
	if numbered {
		a.ring.begin(seq, len(line) > pipeBuf)
	}
	if _, err := a.out.Write(line); err != nil {
		return err
	}
	if numbered {
		a.ring.end(seq)
		if a.answered != nil {
			select {
			case a.answered <- struct{}{}:
			default:
			}
		}
	}
	return nil
}

// Close closes the client's output, and stops reading its input, before
// the connection: once the forwarder reads the connection's end, this
// core writes no more, to the output, the ring or the journal. A write
// after Close fails and touches neither the output nor the ring.
func (a *answerConn) Close() error {
	a.closeOnce.Do(func() {
		if a.stop != nil {
			a.stopInput()
		}
		// A Read in progress returns; the next fails.
		_ = a.Conn.SetReadDeadline(time.Unix(1, 0))
		a.rmu.Lock()
		if a.readErr == nil {
			a.readErr = net.ErrClosed
		}
		a.wmu.Lock()
		a.closed = true
		_ = a.out.Close()
		if a.inFile != nil {
			_ = a.inFile.Close()
		}
		a.unmap()
		a.wmu.Unlock()
		a.rmu.Unlock()
	})
	return a.Conn.Close()
}

// CloseWrite half-closes the connection when it can.
func (a *answerConn) CloseWrite() error { return closeWrite(a.Conn) }

// answerID returns the id of a line that answers a request (a response),
// and false for any other message.
func answerID(line []byte) (json.RawMessage, bool) {
	if id, ok := responseID(line); ok {
		return id, true
	}
	var m message
	if json.Unmarshal(line, &m) == nil && m.Method == "" {
		return m.ID, true
	}
	return nil, false
}
