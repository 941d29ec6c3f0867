package localcore

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

// intakeEnv is a core's intake of a client's input: a real pipe, a real
// answer ring and journal in memory files, as a forwarder makes them.
type intakeEnv struct {
	a      *Answers
	w      *os.File // the client's end of its input
	t      *intake
	seqs   map[string]uint64
	stop   chan struct{}
	reader *bufio.Reader
}

// journaledAnswers returns a forwarder's Answers whose client's input is
// a pipe, and the pipe's other end.
func journaledAnswers(t *testing.T, maxLine int) (*Answers, *os.File) {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAnswers(out)
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close(); out.Close() })
	if err := a.WithInput(r, maxLine); err != nil {
		t.Fatal(err)
	}
	return a, w
}

func newIntakeEnv(t *testing.T, maxLine int) *intakeEnv {
	t.Helper()
	a, w := journaledAnswers(t, maxLine)
	e := &intakeEnv{a: a, w: w, seqs: map[string]uint64{}, stop: make(chan struct{})}
	e.start()
	return e
}

// start begins a core's intake on the journal as it is.
func (e *intakeEnv) start() {
	k := newKeyer("test", []string{"note"})
	e.t = newIntake(e.a.journal, e.a.in, e.a.ring, k, func(key string, seq uint64) { e.seqs[key] = seq }, make(chan struct{}), e.stop)
	e.reader = bufio.NewReaderSize(e.t, 64<<10)
}

// line reads the next line the intake hands on.
func (e *intakeEnv) line(t *testing.T) string {
	t.Helper()
	l, err := e.reader.ReadString('\n')
	if err != nil {
		t.Fatalf("intake: %v", err)
	}
	return l
}

func call(id int, text string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"note","arguments":{"text":%q}}}`+"\n", id, text)
}

const (
	initLine   = `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}` + "\n"
	initedLine = `{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n"
)

// TestIntakeRecover: whatever the core took from the input is in the
// journal when it dies: the requests it did not answer (one read long
// before, moved through several compactions), the handshake, the line
// being read, and a read whose length it had not recorded yet; a
// compaction it had not finished changes nothing.
func TestIntakeRecover(t *testing.T) {
	e := newIntakeEnv(t, 4096)
	const calls = 8000 // about 1.7 MiB: several compactions
	pending := map[int]bool{5: true, 1700: true, calls - 1: true}
	go func() {
		var b strings.Builder
		b.WriteString(initLine + initedLine)
		for i := 1; i < calls; i++ {
			b.WriteString(call(i, strings.Repeat("x", 100)))
		}
		_, _ = io.WriteString(e.w, b.String())
		_, _ = io.WriteString(e.w, call(calls, "last")+`{"jsonrpc":"2.0","id":99`)
	}()
	flips := 0
	active := e.a.journal.words[jActive].Load()
	// Lines: the initialize (id 0), initialized, then calls 1 to calls.
	for i := 0; i <= calls+1; i++ {
		l := e.line(t)
		if i == 0 && l != initLine {
			t.Fatalf("first line %q", l)
		}
		if i >= 2 && !strings.Contains(l, `"idempotency_key":"core-test-`) {
			t.Fatalf("call without the forwarder's key: %q", l)
		}
		id := max(i-1, 0)
		if i == 1 || pending[id] {
			continue
		}
		// The core answers every other request at once.
		key := wireKey(idKey([]byte(fmt.Sprint(id))))
		e.a.ring.begin(e.seqs[key], false)
		e.a.ring.end(e.seqs[key])
		if a := e.a.journal.words[jActive].Load(); a != active {
			flips, active = flips+1, a
		}
	}
	if flips < 2 {
		t.Fatalf("%d compactions, want several", flips)
	}
	check := func(what string, wantExtra string) {
		t.Helper()
		rec := recoverJournal(e.a.journal)
		var got []string
		for _, l := range rec.lines {
			if !l.answered && !e.a.ring.isWritten(l.seq) {
				got = append(got, strings.TrimSpace(string(l.line)))
			}
		}
		want := []string{strings.TrimSpace(initedLine)}
		for _, id := range []int{5, 1700, calls - 1} {
			want = append(want, strings.TrimSpace(call(id, strings.Repeat("x", 100))))
		}
		if wantExtra != "" {
			want = append(want, wantExtra)
		}
		if !sameSet(got, want) {
			t.Errorf("%s: recovered %d unanswered lines:\n%q\nwant\n%q", what, len(got), got, want)
		}
		hasInit := false
		for _, l := range rec.lines {
			hasInit = hasInit || string(l.line) == initLine
		}
		if !hasInit {
			t.Errorf("%s: the initialize is not kept", what)
		}
		if string(rec.partial) != `{"jsonrpc":"2.0","id":99` || rec.eof || rec.skip {
			t.Errorf("%s: partial %q, eof %v, skip %v", what, rec.partial, rec.eof, rec.skip)
		}
	}
	check("after the last read", "")

	// A compaction begun, not finished: the other buffer holds part of
	// a new state, the active one is as it was.
	j := e.a.journal
	other := j.buf(1 - int(j.words[jActive].Load()&1))
	copy(other, "garbage that no recovery reads\n")
	check("mid-compaction", "")
	clear(other[:64])

	// A read returned into the journal, its length not yet recorded.
	b := int(j.words[jActive].Load() & 1)
	n := int(j.word(b, jLen).Load())
	copy(j.buf(b)[n:], `,"method":"ping"}`+"\n"+`{"jsonrpc":"2.0","id":99`)
	check("after an unrecorded read", `{"jsonrpc":"2.0","id":99,"method":"ping"}`)
}

func texts(rs []record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%d %s", r.seq, r.line))
	}
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

// TestIntakeOversized: a line that grows past what the journal keeps is
// handed on as it comes and leaves the journal (the server refuses it); a
// core that dies inside it leaves it skipped, and the lines after it are
// numbered as the core numbered them.
func TestIntakeOversized(t *testing.T) {
	e := newIntakeEnv(t, 4096)
	long := e.a.journal.maxLine() + 1000 // the journal keeps a little more than it was made for
	big := call(7, strings.Repeat("y", long+8000))
	go func() { _, _ = io.WriteString(e.w, big[:long]) }()
	got := readN(t, e.t, long)
	// Killed now, the core leaves the line's beginning, or (once it has
	// moved on) the line skipped: a new core hands it on, or not, as this
	// one did.
	rec := recoverJournal(e.a.journal)
	if !(rec.skip && len(rec.partial) == 0 || !rec.skip && string(rec.partial) == big[:long]) || len(rec.lines) != 0 {
		t.Errorf("inside an oversized line: skip %v, partial %d bytes, %d lines", rec.skip, len(rec.partial), len(rec.lines))
	}
	go func() { _, _ = io.WriteString(e.w, big[long:long+2000]) }()
	got += readN(t, e.t, 2000)
	rec = recoverJournal(e.a.journal)
	if !rec.skip || len(rec.partial) != 0 || len(rec.lines) != 0 {
		t.Errorf("further inside an oversized line: skip %v, partial %d bytes, %d lines", rec.skip, len(rec.partial), len(rec.lines))
	}
	go func() { _, _ = io.WriteString(e.w, big[long+2000:]+call(8, "after")) }()
	got += readN(t, e.t, len(big)-long-2000)
	if got != big {
		t.Fatalf("oversized line handed on as %d bytes, want %d", len(got), len(big))
	}
	if l := e.line(t); !strings.Contains(l, `"after"`) {
		t.Fatalf("next line %q", l)
	}
	if _, ok := e.seqs[wireKey(idKey([]byte("7")))]; ok {
		t.Errorf("the oversized line was remembered")
	}
	rec = recoverJournal(e.a.journal)
	seq := e.seqs[wireKey(idKey([]byte("8")))]
	if len(rec.lines) != 1 || !bytes.Contains(rec.lines[0].line, []byte(`"after"`)) || rec.lines[0].seq != seq || seq != 1 {
		t.Errorf("recovered %q (seq %d), want the call after the oversized line, seq 1", texts(rec.lines), seq)
	}
}

// readN reads n bytes from r.
func readN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestIntakeAfterReset: a journal a forwarder reset for a new core holds
// the handshake, which the core keeps and does not hand on, and the line
// the old core left unfinished, which the new core finishes reading.
func TestIntakeAfterReset(t *testing.T) {
	e := newIntakeEnv(t, 4096)
	j := e.a.journal
	// A dead core's unrecorded read in the active buffer.
	copy(j.buf(int(j.words[jActive].Load()&1)), "stale bytes of a dead core\n")
	if !j.reset([]record{{seq: 40, line: []byte(initLine)}, {seq: 41, line: []byte(initedLine)}}, []byte(`{"jsonrpc":"2.0","id":3,`), 42, false) {
		t.Fatal("reset refused")
	}
	e.start()
	go func() { _, _ = io.WriteString(e.w, `"method":"ping"}`+"\n") }()
	if got := e.line(t); got != `{"jsonrpc":"2.0","id":3,"method":"ping"}`+"\n" {
		t.Fatalf("first line handed on %q", got)
	}
	if seq := e.seqs[wireKey(idKey([]byte("3")))]; seq != 42 {
		t.Errorf("seq %d, want 42", seq)
	}
	rec := recoverJournal(j)
	if len(rec.lines) != 3 || string(rec.lines[0].line) != initLine || string(rec.lines[1].line) != initedLine || rec.lines[2].seq != 42 {
		t.Errorf("recovered %q", texts(rec.lines))
	}
	for _, l := range rec.lines {
		if bytes.Contains(l.line, []byte("stale")) {
			t.Errorf("a dead core's bytes survived the reset")
		}
	}
}

// TestIntakeLastLine: a last line without its newline is handed on when
// the input ends, ended as a forwarder ends it, and the journal says the
// input ended.
func TestIntakeLastLine(t *testing.T) {
	e := newIntakeEnv(t, 4096)
	go func() {
		_, _ = io.WriteString(e.w, `{"jsonrpc":"2.0","id":4,"method":"ping"}`)
		e.w.Close()
	}()
	if got := e.line(t); got != `{"jsonrpc":"2.0","id":4,"method":"ping"}`+"\n" {
		t.Fatalf("last line %q", got)
	}
	if _, err := e.reader.ReadString('\n'); err != io.EOF {
		t.Errorf("after the last line: %v, want EOF", err)
	}
	if rec := recoverJournal(e.a.journal); !rec.eof || len(rec.lines) != 1 || len(rec.partial) != 0 {
		t.Errorf("recovered eof %v, %d lines, partial %q", rec.eof, len(rec.lines), rec.partial)
	}
}

// TestIntakeStop: a core reading a client's input that writes nothing
// stops when its forwarder goes, and when it closes the connection: the
// input is read through the poller, and passing it did not make it block.
func TestIntakeStop(t *testing.T) {
	for _, how := range []string{"forwarder gone", "core closes"} {
		t.Run(how, func(t *testing.T) {
			a, _ := journaledAnswers(t, 4096)
			fc, cc := socketPair(t)
			if err := sendAnswers(fc, a, true); err != nil {
				t.Fatal(err)
			}
			p, err := recvAnswers(cc, true)
			if err != nil {
				t.Fatal(err)
			}
			ac := newAnswerConn(cc, bufio.NewReader(cc), p.out, p.ring, p.unmap)
			ac.readInput(p.in, p.j, keyer{})
			if _, err := fc.Write([]byte(inControl + "\n")); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := ac.Read(make([]byte, 1024))
				done <- err
			}()
			if how == "forwarder gone" {
				fc.Close()
				if err := <-done; err != io.EOF {
					t.Errorf("Read: %v, want EOF", err)
				}
				ac.Close()
				return
			}
			ac.Close()
			if err := <-done; err == nil {
				t.Errorf("Read after Close returned no error")
			}
		})
	}
}

// TestJournalSize: a journal keeps lines of the length it was made for,
// and its buffers begin on a page, so that zeroing one hands its pages
// back to the system instead of writing zeros over them.
func TestJournalSize(t *testing.T) {
	for _, maxLine := range []int{1, 4096, 1<<20 + 64<<10 + 3} {
		a, _ := journaledAnswers(t, maxLine)
		j := a.journal
		if j.maxLine() < maxLine {
			t.Errorf("made for %d, keeps %d", maxLine, j.maxLine())
		}
		for b := range 2 {
			if off := journalHeader + b*j.size; off%os.Getpagesize() != 0 {
				t.Errorf("made for %d: buffer %d at %d", maxLine, b, off)
			}
		}
	}
}

// TestIntakeManySmallLines: however many short requests fit in a buffer,
// the journal holds no more lines than the answer ring remembers, so
// that requests answered long ago are not taken for requests in flight.
func TestIntakeManySmallLines(t *testing.T) {
	e := newIntakeEnv(t, 4096)
	const n = 6000 // 40 bytes each: all of them would fit in one buffer
	go func() {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"ping"}`+"\n", i)
		}
		_, _ = io.WriteString(e.w, b.String())
	}()
	for i := range n {
		e.line(t)
		seq := e.seqs[wireKey(idKey([]byte(fmt.Sprint(i))))]
		e.a.ring.begin(seq, false)
		e.a.ring.end(seq)
	}
	var unanswered []string
	for _, l := range recoverJournal(e.a.journal).lines {
		if !l.answered && !e.a.ring.isWritten(l.seq) {
			unanswered = append(unanswered, string(l.line))
		}
	}
	if len(unanswered) != 0 {
		t.Errorf("%d answered requests taken for requests in flight, the first %q", len(unanswered), unanswered[0])
	}
}
