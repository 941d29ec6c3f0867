package localcore

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// newTestAnswers returns Answers writing to a pipe and the pipe's read end.
func newTestAnswers(t *testing.T) (*Answers, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	a, err := NewAnswers(w)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.ringFile.Close() })
	return a, r
}

// TestAnswerRing: marks made through one mapping of the ring (the core's)
// are seen through the other (the forwarder's); a slot reused by a later
// seq no longer says anything of the earlier one.
func TestAnswerRing(t *testing.T) {
	a, _ := newTestAnswers(t)
	core, unmap, err := mapRing(a.ringFile)
	if err != nil {
		t.Fatal(err)
	}
	defer unmap()
	fw := a.ring
	core.begin(7, false)
	if fw.isWritten(7) || fw.isPartial(7) {
		t.Error("a short answer begun: written or partial")
	}
	core.end(7)
	if !fw.isWritten(7) || fw.isWritten(8) {
		t.Error("the answer to 7 written: not seen, or seen for 8")
	}
	core.begin(9, true)
	if !fw.isPartial(9) {
		t.Error("a long answer begun and not written is not partial")
	}
	core.end(9)
	if fw.isPartial(9) {
		t.Error("a long answer written is partial")
	}
	core.begin(7+ringSlots, false)
	core.end(7 + ringSlots)
	if fw.isWritten(7) || !fw.isWritten(7+ringSlots) {
		t.Error("a reused slot still says the earlier seq was answered")
	}
}

// TestAnswerRingRefused: the core maps only a ring of its size sealed
// against shrinking: a client could otherwise cut the file short under
// the core's mapping, which would fault at the next answer.
func TestAnswerRingRefused(t *testing.T) {
	plain, err := os.CreateTemp(t.TempDir(), "ring")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.Truncate(ringBytes); err != nil {
		t.Fatal(err)
	}
	if _, _, err := mapRing(plain); err == nil || !strings.Contains(err.Error(), "sealed") {
		t.Errorf("an unsealed ring file: %v", err)
	}
	a, _ := newTestAnswers(t)
	if err := a.ringFile.Truncate(ringBytes / 2); err == nil {
		t.Error("the ring shrank")
	}
}

// socketPair returns both ends of a real Unix stream connection.
func socketPair(t *testing.T) (client, core *net.UnixConn) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "s"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan *net.UnixConn, 1)
	go func() {
		c, _ := ln.AcceptUnix()
		done <- c
	}()
	client, err = net.DialUnix("unix", nil, ln.Addr().(*net.UnixAddr))
	if err != nil {
		t.Fatal(err)
	}
	core = <-done
	t.Cleanup(func() { client.Close(); core.Close() })
	return client, core
}

// handOver passes a's output and ring from fc to cc as a forwarder does
// after its hello, and returns what the core's side received.
func handOver(t *testing.T, a *Answers, fc, cc *net.UnixConn) (*os.File, *ring, func()) {
	t.Helper()
	if err := sendAnswers(fc, a, false); err != nil {
		t.Fatal(err)
	}
	p, err := recvAnswers(cc, false)
	if err != nil {
		t.Fatal(err)
	}
	return p.out, p.ring, p.unmap
}

// TestAnswerConn: the core's side of a connection reads the requests
// without their control lines (a request may arrive in pieces; a long id
// is named by its digest), writes answers to the client's output passed
// over the socket, marking those of numbered requests in the ring, and
// sends the answer to a replayed initialize back over the socket.
func TestAnswerConn(t *testing.T) {
	a, clientOut := newTestAnswers(t)
	fc, cc := socketPair(t)
	out, r, unmap := handOver(t, a, fc, cc)
	req1 := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"note"}}` + "\n"
	note := `{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n"
	req2 := `{"jsonrpc":"2.0","id":"x y","method":"ping"}` + "\n"
	longID := strings.Repeat("i", 10000) // named by its digest on the wire
	req4 := `{"jsonrpc":"2.0","id":"` + longID + `","method":"ping"}` + "\n"
	long := `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"note","arguments":{"text":"` + strings.Repeat("z", 10000) + `"}}}` + "\n"
	// The input arrives in these pieces, one a read: a request may be cut
	// anywhere, and be longer than the reader's buffer.
	in := &pieces{parts: []string{
		string(controlLine(0, "n1")) + req1 + note,
		string(controlLine(1, "sx y")) + req2[:10],
		req2[10:] + string(controlLine(2, "n3")) + long[:5000],
		long[5000:],
		string(controlLine(4, "s"+longID)) + req4,
	}}
	ac := newAnswerConn(cc, bufio.NewReader(in), out, r, unmap)
	defer ac.Close()
	want := req1 + note + req2 + long + req4
	got, err := io.ReadAll(ac)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("read %.200q, want %.200q", got, want)
	}

	answer1 := `{"jsonrpc":"2.0","id":1,"result":{}}` + "\n"
	progress := `{"jsonrpc":"2.0","method":"notifications/progress","params":{}}` + "\n"
	answer2 := `{"jsonrpc":"2.0","id":"x y","result":{}}` + "\n"
	answer4 := `{"jsonrpc":"2.0","id":"` + longID + `","result":{}}` + "\n"
	replay := `{"jsonrpc":"2.0","id":"` + replayPrefix + `1","result":{}}` + "\n"
	for _, line := range []string{answer1, progress, replay, answer2, answer4} {
		if _, err := ac.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	toClient := make([]byte, len(answer1+progress+answer2+answer4))
	if _, err := io.ReadFull(clientOut, toClient); err != nil {
		t.Fatal(err)
	}
	if string(toClient) != answer1+progress+answer2+answer4 {
		t.Errorf("the client read %q", toClient)
	}
	back, err := bufio.NewReader(fc).ReadString('\n')
	if err != nil || back != replay {
		t.Errorf("over the socket: %q, %v; want the replayed initialize's answer", back, err)
	}
	if !a.ring.isWritten(0) || !a.ring.isWritten(1) || a.ring.isWritten(2) || !a.ring.isWritten(4) {
		t.Error("the ring does not say exactly requests 0, 1 and 4 were answered")
	}
}

// pieces reads its parts one a Read, then EOF.
type pieces struct{ parts []string }

func (p *pieces) Read(b []byte) (int, error) {
	if len(p.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(b, p.parts[0])
	if p.parts[0] = p.parts[0][n:]; p.parts[0] == "" {
		p.parts = p.parts[1:]
	}
	return n, nil
}

// TestAnswerConnBadControl: a malformed or overlong control line ends the
// connection's input with an error.
func TestAnswerConnBadControl(t *testing.T) {
	for name, line := range map[string]string{
		"no key":   "@12\n",
		"bad seq":  "@x \"n1\"\n",
		"unquoted": "@1 n1\n",
		"overlong": "@1 \"" + strings.Repeat("a", 2*maxControlLine) + "\"\n",
	} {
		t.Run(name, func(t *testing.T) {
			a, _ := newTestAnswers(t)
			fc, cc := socketPair(t)
			out, err := os.Open(os.DevNull)
			if err != nil {
				t.Fatal(err)
			}
			ac := newAnswerConn(cc, bufio.NewReaderSize(cc, maxControlLine), out, a.ring, func() {})
			defer ac.Close()
			go func() { _, _ = fc.Write([]byte(line + "{}\n")) }()
			if n, err := ac.Read(make([]byte, 64)); err == nil || !strings.Contains(err.Error(), "control line") {
				t.Errorf("read %d bytes, err %v; want a control line error", n, err)
			}
		})
	}
}

// TestForwarderSettle: when the core that answered directly dies, the
// forwarder keeps only the requests it did not mark answered, and ends
// with a newline a long answer it may have left half written.
func TestForwarderSettle(t *testing.T) {
	for _, long := range []bool{false, true} {
		a, _ := newTestAnswers(t)
		f := &Forwarder{Answers: a, direct: true, pending: map[string]*inflight{}}
		for i, key := range []string{"answered", "begun", "sent"} {
			f.pending[key] = &inflight{seq: uint64(i)}
		}
		a.ring.begin(0, false)
		a.ring.end(0)
		a.ring.begin(1, long)
		var out bytes.Buffer
		f.settle(&lineWriter{w: &out})
		if _, ok := f.pending["answered"]; ok || len(f.pending) != 2 {
			t.Errorf("long %v: pending after settle: %v", long, f.pending)
		}
		if want := map[bool]string{false: "", true: "\n"}[long]; out.String() != want {
			t.Errorf("long %v: wrote %q, want %q", long, out.String(), want)
		}
		if f.direct {
			t.Error("still direct after settle")
		}
	}
}

// TestForwarderPrunes: a forwarder whose core answers directly drops the
// answered requests it keeps for a replacement core, once minPruneAt are
// pending or they hold minPruneBytes, and keeps those not answered.
func TestForwarderPrunes(t *testing.T) {
	a, _ := newTestAnswers(t)
	fc, cc := socketPair(t)
	go func() { _, _ = io.Copy(io.Discard, cc) }()
	f := &Forwarder{Answers: a, direct: true, pending: map[string]*inflight{}, pruneAt: minPruneAt, pruneAtBytes: minPruneBytes, conn: fc}
	call := func(i int, text string) []byte {
		return []byte(`{"jsonrpc":"2.0","id":` + strconv.Itoa(i) + `,"method":"tools/call","params":{"name":"note","arguments":{"text":"` + text + `"}}}` + "\n")
	}
	for i := range 200 {
		f.send(call(i, "x"))
		if i != 5 {
			a.ring.begin(uint64(i), false)
			a.ring.end(uint64(i)) // the core answered all but the sixth
		}
	}
	if _, ok := f.pending["n5"]; !ok || len(f.pending) >= minPruneAt {
		t.Errorf("%d requests pending after 200 with one unanswered (n5 kept: %v)", len(f.pending), ok)
	}
	// Two large requests: the first answered is dropped by the prune the
	// second's bytes start, though few requests are pending.
	big := strings.Repeat("y", minPruneBytes)
	f.send(call(200, big))
	a.ring.begin(200, true)
	a.ring.end(200)
	f.send(call(201, big))
	if _, ok := f.pending["n200"]; ok || len(f.pending) > 3 {
		t.Errorf("an answered request of %d bytes kept (%d pending)", minPruneBytes, len(f.pending))
	}
}

// TestRecvAnswersRefused: a core takes the client's output only with the
// answer ring beside it, and a byte without descriptors is refused.
func TestRecvAnswersRefused(t *testing.T) {
	for name, fds := range map[string][]int{"output only": {1}, "none": nil} {
		t.Run(name, func(t *testing.T) {
			fc, cc := socketPair(t)
			var oob []byte
			if fds != nil {
				oob = unix.UnixRights(fds...)
			}
			if _, _, err := fc.WriteMsgUnix([]byte{0}, oob, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := recvAnswers(cc, false); err == nil || !strings.Contains(err.Error(), "descriptors") {
				t.Errorf("recvAnswers: %v, want a refusal", err)
			}
		})
	}
}

// TestForwarderEscapesControl: a client's line that begins as a control
// line does is not taken for one: the core reads it as a line that is not
// JSON, and answers it so.
func TestForwarderEscapesControl(t *testing.T) {
	a, _ := newTestAnswers(t)
	fc, cc := socketPair(t)
	f := &Forwarder{Answers: a, direct: true, pending: map[string]*inflight{}, pruneAt: minPruneAt, pruneAtBytes: minPruneBytes, conn: fc}
	f.send([]byte("@7 \"n1\"\n"))
	got, err := bufio.NewReader(cc).ReadString('\n')
	if err != nil || got != " @7 \"n1\"\n" {
		t.Errorf("the core got %q (%v)", got, err)
	}
}

// TestAnswerConnWriteAfterClose: an answer written after the connection
// closed (a call that outlived its session) fails, without touching the
// unmapped ring or the closed output.
func TestAnswerConnWriteAfterClose(t *testing.T) {
	a, _ := newTestAnswers(t)
	fc, cc := socketPair(t)
	out, r, unmap := handOver(t, a, fc, cc)
	ac := newAnswerConn(cc, bufio.NewReader(&pieces{parts: []string{string(controlLine(0, "n1")) + "{}\n"}}), out, r, unmap)
	if _, err := io.ReadAll(ac); err != nil {
		t.Fatal(err)
	}
	ac.Close()
	if _, err := ac.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}` + "\n")); err == nil {
		t.Error("a write after Close succeeded")
	}
	if a.ring.isWritten(0) {
		t.Error("the ring was marked after Close")
	}
}

// TestAnswerConnBoundsSeqs: the seqs of requests never answered (a
// client may cancel them) do not grow past maxSeqs.
func TestAnswerConnBoundsSeqs(t *testing.T) {
	a, _ := newTestAnswers(t)
	var b strings.Builder
	for i := range maxSeqs + 10 {
		b.Write(controlLine(uint64(i), "n"+strconv.Itoa(i)))
		b.WriteString("{}\n")
	}
	out, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	_, cc := socketPair(t)
	ac := newAnswerConn(cc, bufio.NewReader(strings.NewReader(b.String())), out, a.ring, func() {})
	defer ac.Close()
	if _, err := io.ReadAll(ac); err != nil {
		t.Fatal(err)
	}
	if n := ac.nseqs; n > maxSeqs || n == 0 || len(ac.seqs) > n {
		t.Errorf("%d seqs remembered, want at most %d", n, maxSeqs)
	}
}

// TestAnswerConnReusedID: a host that sends a request with the id of one
// still in flight has each answer marked against one of the two requests,
// so both are known answered once both answers are written.
func TestAnswerConnReusedID(t *testing.T) {
	a, clientOut := newTestAnswers(t)
	fc, cc := socketPair(t)
	out, r, unmap := handOver(t, a, fc, cc)
	req := `{"jsonrpc":"2.0","id":7,"method":"ping"}` + "\n"
	in := &pieces{parts: []string{string(controlLine(0, "n7")) + req + string(controlLine(1, "n7")) + req}}
	ac := newAnswerConn(cc, bufio.NewReader(in), out, r, unmap)
	defer ac.Close()
	if _, err := io.ReadAll(ac); err != nil {
		t.Fatal(err)
	}
	answer := `{"jsonrpc":"2.0","id":7,"result":{}}` + "\n"
	if _, err := ac.Write([]byte(answer)); err != nil {
		t.Fatal(err)
	}
	if a.ring.isWritten(0) == a.ring.isWritten(1) {
		t.Error("after one answer, the ring does not say exactly one request was answered")
	}
	if _, err := ac.Write([]byte(answer)); err != nil {
		t.Fatal(err)
	}
	if !a.ring.isWritten(0) || !a.ring.isWritten(1) {
		t.Error("after two answers, the ring does not say both requests were answered")
	}
	got := make([]byte, 2*len(answer))
	if _, err := io.ReadFull(clientOut, got); err != nil || string(got) != answer+answer {
		t.Errorf("the client read %q, %v", got, err)
	}
}
