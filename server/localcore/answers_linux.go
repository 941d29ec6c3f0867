package localcore

import (
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// answersSupported: this platform passes descriptors and shares memory
// the way direct answers need (memfd_create, SCM_RIGHTS).
const answersSupported = true

// NewAnswers returns the Answers of a forwarder whose client reads out: a
// new answer ring in memory shared with the cores it will pass it to.
func NewAnswers(out *os.File) (*Answers, error) {
	f, err := sealedMemfd("coditect-answers", ringBytes)
	if err != nil {
		return nil, fmt.Errorf("localcore: answer ring: %w", err)
	}
	r, _, err := mapRing(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Answers{out: out, ringFile: f, ring: r}, nil
}

// sealedMemfd returns a new memory file of size bytes, sealed at that
// size: a mapping of a file that shrinks faults on access, and a core
// maps what a client passes it.
func sealedMemfd(name string, size int) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	if err := f.Truncate(int64(size)); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		f.Close()
		return nil, fmt.Errorf("sealing: %w", err)
	}
	return f, nil
}

// WithInput lets the cores read the client's input in, a pipe or socket
// whose reads do not block (server.PollableStdin), themselves: the
// forwarder then relays nothing while its core lives. Lines longer than
// maxLine are not journaled (the server refuses them).
func (a *Answers) WithInput(in *os.File, maxLine int) error {
	size := journalSize(maxLine)
	f, err := sealedMemfd("coditect-journal", size)
	if err != nil {
		return fmt.Errorf("localcore: request journal: %w", err)
	}
	j, _, err := mapJournal(f)
	if err != nil {
		f.Close()
		return err
	}
	a.in, a.jfile, a.journal = in, f, j
	return nil
}

// mapJournal maps the journal file f shared, as mapRing maps the ring.
func mapJournal(f *os.File) (*journal, func(), error) {
	mem, unmap, err := mapSealed(f, "the request journal", int64(journalSize(1)), 1<<40)
	if err != nil {
		return nil, nil, err
	}
	return newJournal(mem, zeroShared), unmap, nil
}

// mapSealed maps the memory file f, what, shared, and returns the
// mapping and how to unmap it. The file must be sealed against shrinking
// (sealedMemfd): the core maps what a client passed, and a mapped file
// cut short would fault when the core writes it. Its size must be from
// lo to hi bytes.
func mapSealed(f *os.File, what string, lo, hi int64) ([]byte, func(), error) {
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil || seals&unix.F_SEAL_SHRINK == 0 {
		return nil, nil, fmt.Errorf("localcore: %s is not sealed against shrinking", what)
	}
	st, err := f.Stat()
	if err != nil || st.Size() < lo || st.Size() > hi {
		return nil, nil, fmt.Errorf("localcore: %s is not of the size a client makes it", what)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("localcore: mapping %s: %w", what, err)
	}
	return mem, func() { _ = unix.Munmap(mem) }, nil
}

// zeroShared zeroes b, part of a shared mapping, handing whole pages past
// the first zeroPages bytes back to the system (they read as zero).
func zeroShared(b []byte) {
	const keep = 64 << 10
	page := os.Getpagesize()
	if len(b) <= keep+page {
		clear(b)
		return
	}
	start := (keep + page - 1) &^ (page - 1)
	end := len(b) &^ (page - 1)
	// b begins on a page: buffers are at page multiples of the mapping.
	clear(b[:start])
	if err := unix.Madvise(b[start:end], unix.MADV_REMOVE); err != nil {
		clear(b[start:end])
	}
	clear(b[end:])
}

// mapRing maps the ring file f shared (mapSealed) and returns the ring
// and how to unmap it.
func mapRing(f *os.File) (*ring, func(), error) {
	mem, unmap, err := mapSealed(f, "the answer ring", ringBytes, ringBytes)
	if err != nil {
		return nil, nil, err
	}
	r := &ring{}
	r.writing = (*[ringSlots]atomic.Uint64)(unsafe.Pointer(&mem[0]))
	r.written = (*[ringSlots]atomic.Uint64)(unsafe.Pointer(&mem[ringBytes/2]))
	return r, unmap, nil
}

// sendAnswers passes the client's output and the ring over c, a byte
// with both descriptors, and when reads the client's input and the
// journal too.
func sendAnswers(c net.Conn, a *Answers, reads bool) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("localcore: not a Unix socket")
	}
	files := []*os.File{a.out, a.ringFile}
	if reads {
		files = append(files, a.in, a.jfile)
	}
	fds := make([]int, len(files))
	for i, f := range files {
		// Not f.Fd(), which would make the input block, in the forwarder
		// and the core alike (they share its file description), and a
		// blocking read cannot be stopped.
		rc, err := f.SyscallConn()
		if err != nil {
			return err
		}
		if err := rc.Control(func(fd uintptr) { fds[i] = int(fd) }); err != nil {
			return err
		}
	}
	rights := unix.UnixRights(fds...)
	_, _, err := uc.WriteMsgUnix([]byte{0}, rights, nil)
	return err
}

// passed is what a client passed its core after the hello.
type passed struct {
	out   *os.File
	ring  *ring
	in    *os.File // when the core reads the input, and:
	j     *journal
	unmap func() // the ring and the journal
}

// recvAnswers receives what sendAnswers sent, waiting at most
// helloTimeout.
func recvAnswers(c net.Conn, reads bool) (*passed, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, fmt.Errorf("localcore: not a Unix socket")
	}
	want := 2
	if reads {
		want = 4
	}
	_ = uc.SetReadDeadline(time.Now().Add(helloTimeout))
	defer uc.SetReadDeadline(time.Time{})
	var b [1]byte
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := uc.ReadMsgUnix(b[:], oob)
	if err != nil {
		return nil, fmt.Errorf("localcore: receiving the client's output: %w", err)
	}
	var fds []int
	if msgs, perr := unix.ParseSocketControlMessage(oob[:oobn]); perr == nil {
		for _, m := range msgs {
			if got, err := unix.ParseUnixRights(&m); err == nil {
				fds = append(fds, got...)
			}
		}
	}
	if n != 1 || len(fds) != want {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("localcore: the client passed %d descriptors, want %d", len(fds), want)
	}
	files := make([]*os.File, len(fds))
	for i, fd := range fds {
		files[i] = os.NewFile(uintptr(fd), "client descriptor")
	}
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	r, unmap, err := mapRing(files[1])
	if err != nil {
		closeAll()
		return nil, err
	}
	p := &passed{out: files[0], ring: r, unmap: unmap}
	if reads {
		j, junmap, err := mapJournal(files[3])
		if err != nil {
			unmap()
			closeAll()
			return nil, err
		}
		p.in, p.j = files[2], j
		p.unmap = func() { unmap(); junmap() }
	}
	// The mappings outlive the descriptors.
	files[1].Close()
	if reads {
		files[3].Close()
	}
	return p, nil
}
