package localcore

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
)

// intake is the core's reader of a client's input when the core reads it
// itself (Hello.Reads): it reads into the request journal (journal.go),
// numbers the lines, remembers the seqs of requests (so their answers are
// marked in the ring), adds idempotency keys as the forwarder would
// (keyer), and hands the lines on. It is used by one goroutine at a time
// (answerConn.Read).
type intake struct {
	j     *journal
	in    *os.File
	ring  *ring
	keyer keyer
	// remember records the seq of a request by its id key.
	remember func(key string, seq uint64)
	// answered, when it can be received from, an answer was written: a
	// full journal may have room again.
	answered <-chan struct{}
	// stop is closed when the connection closes.
	stop <-chan struct{}

	b      int    // the active buffer
	rawSeq uint64 // the seq of its raw part's first line
	n      int    // its bytes in use
	scan   int    // the first byte of the raw part not yet handed on
	seq    uint64 // the seq of the line at scan
	skip   bool   // the bytes at scan continue a line not kept
	// kept are the records and the lines handed on from this buffer that
	// a compaction may have to keep.
	kept     []keptLine
	keptSize int    // their records' size
	pass     []byte // what is left to hand on of the current line
}

type keptLine struct {
	seq    uint64
	off, n int
	// hand is the handshake message the line is, kept while it is the
	// client's latest ("" for any other line).
	hand string
	// request: kept until answered; answered: known answered (a
	// handshake line kept after its answer).
	request, answered bool
}

// handshake returns the method of a handshake message, the lines a new
// core is replayed, and "" for other methods.
func handshake(method string) string {
	if method == "initialize" || method == "notifications/initialized" {
		return method
	}
	return ""
}

// keep adds a line to those a compaction may keep; the client's latest
// handshake message replaces the one before (kept still, when it is a
// request not answered).
func (t *intake) keep(k keptLine) {
	if k.hand != "" {
		kept := t.kept[:0]
		for _, o := range t.kept {
			if o.hand == k.hand {
				if !o.request {
					t.keptSize -= recordSize(o.n)
					continue
				}
				o.hand = ""
			}
			kept = append(kept, o)
		}
		t.kept = kept
	}
	t.kept = append(t.kept, k)
	t.keptSize += recordSize(k.n)
}

// compactAt is how full the active buffer may get before the core moves
// what it keeps into the other buffer.
const compactAt = 128 << 10

// maxRawLines bounds the lines of a buffer's raw part, well under
// ringSlots, so that the ring says which of them were answered.
const maxRawLines = ringSlots / 4

// minRead is the least room the core reads into.
const minRead = 16 << 10

// errJournalFull: the journal cannot take the line being read until
// requests are answered; the core waits for answers.
var errJournalFull = errors.New("localcore: the request journal is full")

func newIntake(j *journal, in *os.File, r *ring, k keyer, remember func(string, uint64), answered, stop <-chan struct{}) *intake {
	t := &intake{j: j, in: in, ring: r, keyer: k, remember: remember, answered: answered, stop: stop}
	t.b = int(j.words[jActive].Load() & 1)
	buf := j.buf(t.b)
	t.n = min(int(j.word(t.b, jLen).Load()), len(buf))
	raw := min(int(j.word(t.b, jRawStart).Load()), t.n)
	t.scan, t.seq, t.skip = raw, j.word(t.b, jRawSeq).Load(), j.word(t.b, jSkip).Load() != 0
	t.rawSeq = t.seq
	// The records a forwarder installed are the handshake, kept for a
	// later core; they are not handed on.
	for _, rec := range readRecords(buf[:raw]) {
		var m message
		_ = json.Unmarshal(buf[rec.off:rec.off+rec.n], &m)
		t.keep(keptLine{seq: rec.seq, off: rec.off, n: rec.n, hand: handshake(m.Method), answered: rec.answered})
	}
	return t
}

// Read hands on the client's lines.
func (t *intake) Read(p []byte) (int, error) {
	for {
		if len(t.pass) > 0 {
			n := copy(p, t.pass)
			t.pass = t.pass[n:]
			return n, nil
		}
		buf := t.j.buf(t.b)
		rest := buf[t.scan:t.n]
		i := bytes.IndexByte(rest, '\n')
		switch {
		case t.skip:
			// A line too long to keep: handed on as it comes, up to its
			// end, which takes a seq as every line does.
			if i >= 0 {
				rest, t.skip = rest[:i+1], false
				t.seq++
			}
			t.pass = rest
			t.scan += len(rest)
			if len(rest) > 0 {
				continue
			}
		case i >= 0:
			t.pass = t.take(rest[:i+1], t.scan)
			t.scan += i + 1
			continue
		case len(rest) > t.j.maxLine():
			t.skip = true
			continue
		}
		if err := t.fill(); err != nil {
			if errors.Is(err, io.EOF) && !t.skip && t.scan < t.n && t.n < len(buf) {
				// A last line without its newline ends with the input,
				// as a forwarder ends it.
				buf[t.n] = '\n'
				t.n++
				t.j.word(t.b, jLen).Store(uint64(t.n))
				continue
			}
			return 0, err
		}
	}
}

// take numbers the line at off of the active buffer and returns it as it
// is handed on.
func (t *intake) take(line []byte, off int) []byte {
	seq, n := t.seq, len(line)
	t.seq++
	var m message
	if json.Unmarshal(line, &m) != nil {
		return line
	}
	k := keptLine{seq: seq, off: off, n: n, hand: handshake(m.Method)}
	if key := idKey(m.ID); key != "" && m.Method != "" {
		t.remember(wireKey(key), seq)
		k.request = true
		if m.Method == "tools/call" {
			line, _ = t.keyer.line(line, m, seq)
		}
	}
	if k.request || k.hand != "" {
		t.keep(k)
	}
	return line
}

// fill reads more of the input into the active buffer, first moving what
// it keeps into the other buffer when the active one is full.
func (t *intake) fill() error {
	for {
		if t.skip {
			// What was handed on of a line too long to keep leaves the
			// journal, which says the raw part begins inside it.
			if err := t.compact(); err == nil {
				break
			}
		}
		// keptSize bounds what a compaction keeps: it runs once it frees
		// compactAt bytes or more, or when room to read runs out.
		// Also before the raw part spans maxRawLines: the ring speaks
		// for the latest ringSlots seqs only.
		if t.n >= compactAt+t.keptSize || t.j.size-t.n < minRead || t.seq-t.rawSeq >= maxRawLines {
			if err := t.compact(); errors.Is(err, errJournalFull) {
				// Wait for an answer to free a request's record.
				select {
				case <-t.answered:
					continue
				case <-t.stop:
					return io.EOF
				}
			}
		}
		break
	}
	buf := t.j.buf(t.b)
	n, err := t.in.Read(buf[t.n:])
	if n > 0 {
		t.n += n
		t.j.word(t.b, jLen).Store(uint64(t.n))
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			t.j.words[jEOF].Store(1)
		}
		return err
	}
	return nil
}

// compact moves the records still needed and the raw part not handed on
// into the other buffer.
func (t *intake) compact() error {
	buf := t.j.buf(t.b)
	var records []record
	var kept []keptLine
	size := 0
	for _, k := range t.kept {
		written := k.answered || t.ring.isWritten(k.seq)
		if k.hand != "" || k.request && !written {
			k.answered = k.request && written
			records = append(records, record{seq: k.seq, line: buf[k.off : k.off+k.n], answered: k.answered})
			k.off = size + recordHeader
			kept = append(kept, k)
			size += recordSize(k.n)
		}
	}
	partial := buf[t.scan:t.n]
	if t.skip {
		partial = nil
	}
	if size+len(partial)+minRead > t.j.size {
		t.kept, t.keptSize = kept, size
		return errJournalFull
	}
	b, ok := t.j.install(records, partial, t.seq, t.skip)
	if !ok {
		return errJournalFull
	}
	t.b, t.kept, t.keptSize = b, kept, size
	t.rawSeq = t.seq
	t.scan = size
	t.n = size + len(partial)
	return nil
}
