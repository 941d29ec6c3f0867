package localcore

import (
	"bytes"
	"encoding/binary"
	"sync/atomic"
	"unsafe"
)

// The request journal. When a core also reads its client's input
// (Hello.Reads), the forwarder no longer sees the requests, yet must
// still send again those in flight when the core dies. The core reads
// the input straight into a memory file it shares with the forwarder, so
// that no byte it took from the input is ever only in its own memory: a
// read returns into the shared pages, and a process killed after it
// leaves the bytes there, its length found by the non-zero bytes past the
// recorded one (JSON text has no NUL bytes; the part of a buffer past
// its contents is kept zero).
//
// The journal holds two buffers, one active. A buffer holds records, the
// lines already handed to a core that must be kept (requests not yet
// answered, and the client's latest initialize and initialized, which a
// new core is replayed, flagged once answered), then the raw input from a
// line boundary: every line read since, handed on or not, and the line
// being read. The lines of the raw part are numbered (seq) from the
// buffer's rawSeq, one each, as the core numbers them; the answer ring
// says which were answered. When the active buffer fills, or its raw part
// spans maxRawLines lines (the ring remembers only the latest ringSlots
// seqs), the core writes the records and the unfinished line into the
// other buffer, which is zero, makes it active with one atomic store, and
// zeroes the first: at every instant the active buffer says what the
// forwarder must send again. A line longer than the journal keeps
// (maxLine) is handed on as it is read and not kept: the server refuses
// it; the buffer's skip says its raw part begins inside such a line.
//
// The forwarder reads the journal only when its core has gone
// (recoverJournal), and writes it only before it lets a new core read
// the input (reset).

// Word indices of the journal's header (atomic uint64s).
const (
	jActive = 0 // the active buffer, 0 or 1
	jEOF    = 1 // 1: the core read the end of the client's input
	// buffer b's words are at jBuffers + 4*b + jLen etc.
	jBuffers  = 8
	jLen      = 0 // bytes of the buffer in use: records and raw part
	jRawStart = 1 // where the raw part begins
	jRawSeq   = 2 // seq of the raw part's first line
	jSkip     = 3 // 1: the raw part begins inside a line not kept
)

// journalHeader is the size of the header before the buffers.
const journalHeader = 4096

// recordHeader is a record's header: seq (8 bytes), length (4), flags
// (4: recordAnswered).
const recordHeader = 16

// recordAnswered flags a record whose request was answered: a handshake
// line kept for replaying to a later core. (The ring cannot say it for
// long: its slot is another request's after ringSlots more.)
const recordAnswered = 1

// journalSlack is what a buffer holds besides two lines of maxLine: the
// records of small requests and room to read.
const journalSlack = 256 << 10

// journalSize is the size of a journal whose lines are at most maxLine;
// its buffers are a multiple of 64 KiB, so that they begin on a page and
// zeroing can hand their pages back.
func journalSize(maxLine int) int {
	const align = 64 << 10
	return journalHeader + 2*((2*maxLine+journalSlack+align-1)&^(align-1))
}

// journal is a mapping of the request journal.
type journal struct {
	mem   []byte
	words *[journalHeader / 8]atomic.Uint64
	size  int // of one buffer
	// zero zeroes a part of a buffer (freeing its pages where it can).
	zero func(b []byte)
}

func newJournal(mem []byte, zero func([]byte)) *journal {
	if zero == nil {
		zero = func(b []byte) { clear(b) }
	}
	return &journal{
		mem:   mem,
		words: (*[journalHeader / 8]atomic.Uint64)(unsafe.Pointer(&mem[0])),
		size:  (len(mem) - journalHeader) / 2,
		zero:  zero,
	}
}

// maxLine is the longest line the journal keeps.
func (j *journal) maxLine() int { return (j.size - journalSlack) / 2 }

func (j *journal) buf(b int) []byte {
	off := journalHeader + b*j.size
	return j.mem[off : off+j.size : off+j.size]
}

func (j *journal) word(b, w int) *atomic.Uint64 { return &j.words[jBuffers+4*b+w] }

// record is a line kept in a buffer's records.
type record struct {
	seq  uint64
	line []byte
	// answered: known answered, whatever the ring says now.
	answered bool
}

func recordSize(n int) int { return recordHeader + (n+7)&^7 }

// putRecord writes the record of line seq at buf[off:] and returns its
// size.
func putRecord(buf []byte, off int, r record) int {
	seq, line := r.seq, r.line
	binary.LittleEndian.PutUint64(buf[off:], seq)
	binary.LittleEndian.PutUint32(buf[off+8:], uint32(len(line)))
	if r.answered {
		binary.LittleEndian.PutUint32(buf[off+12:], recordAnswered)
	}
	copy(buf[off+recordHeader:], line)
	return recordSize(len(line))
}

// install writes a buffer of records and then partial as the raw part,
// its lines numbered from rawSeq, into the buffer not active, makes it
// active and zeroes the other. The buffer not active must be zero; install
// returns false when what it should hold does not fit.
func (j *journal) install(records []record, partial []byte, rawSeq uint64, skip bool) (int, bool) {
	old := int(j.words[jActive].Load() & 1)
	b := 1 - old
	dst := j.buf(b)
	off := 0
	for _, r := range records {
		if off+recordSize(len(r.line))+len(partial) > len(dst) {
			return 0, false
		}
		off += putRecord(dst, off, r)
	}
	if off+len(partial) > len(dst) {
		return 0, false
	}
	copy(dst[off:], partial)
	j.word(b, jRawStart).Store(uint64(off))
	j.word(b, jRawSeq).Store(rawSeq)
	j.word(b, jSkip).Store(boolWord(skip))
	j.word(b, jLen).Store(uint64(off + len(partial)))
	j.words[jActive].Store(uint64(b))
	j.zero(j.buf(old)[:min(int(j.word(old, jLen).Load()), j.size)])
	j.word(old, jLen).Store(0)
	return b, true
}

// reset makes the journal hold only records and partial, for a new core,
// whatever state a core that died left it in. Only the forwarder calls
// it, with no core reading the journal.
func (j *journal) reset(records []record, partial []byte, rawSeq uint64, skip bool) bool {
	active := int(j.words[jActive].Load() & 1)
	j.zero(j.buf(1 - active))
	if _, ok := j.install(records, partial, rawSeq, skip); !ok {
		return false
	}
	// All of it: a core killed may have read past the length it recorded.
	j.zero(j.buf(active))
	j.words[jEOF].Store(0)
	return true
}

func boolWord(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// recovered is what a journal says once its core has gone.
type recovered struct {
	// lines are the records and the raw part's whole lines, in the
	// journal's order (records first), each with its seq.
	lines []record
	// partial is the line being read when the core stopped.
	partial []byte
	// skip: partial continues a line too long to keep, which is dropped.
	skip bool
	// next is the seq of the next line.
	next uint64
	// eof: the core read the end of the client's input.
	eof bool
}

// recoverJournal reads what the journal says. The lines are copies.
func recoverJournal(j *journal) recovered {
	b := int(j.words[jActive].Load() & 1)
	buf := j.buf(b)
	n := min(int(j.word(b, jLen).Load()), len(buf))
	// A read whose length was not recorded yet: its bytes are not zero.
	if i := bytes.IndexByte(buf[n:], 0); i >= 0 {
		n += i
	} else {
		n = len(buf)
	}
	raw := min(int(j.word(b, jRawStart).Load()), n)
	r := recovered{next: j.word(b, jRawSeq).Load(), skip: j.word(b, jSkip).Load() != 0, eof: j.words[jEOF].Load() != 0}
	for _, rr := range readRecords(buf[:raw]) {
		r.lines = append(r.lines, record{seq: rr.seq, line: bytes.Clone(buf[rr.off : rr.off+rr.n]), answered: rr.answered})
	}
	data := buf[raw:n]
	if r.skip {
		// The end of a line too long to keep takes its seq.
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return r
		}
		data, r.skip = data[i+1:], false
		r.next++
	}
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		r.lines = append(r.lines, record{seq: r.next, line: bytes.Clone(data[:i+1])})
		r.next++
		data = data[i+1:]
	}
	r.partial = bytes.Clone(data)
	return r
}

// recordRef is where a record's line is in a buffer.
type recordRef struct {
	seq      uint64
	off, n   int
	answered bool
}

// readRecords returns the records of a buffer's records part b.
func readRecords(b []byte) []recordRef {
	var out []recordRef
	for off := 0; off+recordHeader <= len(b); {
		r := recordRef{seq: binary.LittleEndian.Uint64(b[off:]), off: off + recordHeader, n: int(binary.LittleEndian.Uint32(b[off+8:])),
			answered: binary.LittleEndian.Uint32(b[off+12:])&recordAnswered != 0}
		if r.off+r.n > len(b) {
			break
		}
		out = append(out, r)
		off += recordSize(r.n)
	}
	return out
}
