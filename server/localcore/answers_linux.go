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
	fd, err := unix.MemfdCreate("coditect-answers", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("localcore: answer ring: %w", err)
	}
	f := os.NewFile(uintptr(fd), "coditect-answers")
	if err := f.Truncate(ringBytes); err != nil {
		f.Close()
		return nil, fmt.Errorf("localcore: answer ring: %w", err)
	}
	// Sealed at its size: a mapping of a file that shrinks faults on
	// access, and the core maps what a client passes it.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		f.Close()
		return nil, fmt.Errorf("localcore: sealing the answer ring: %w", err)
	}
	r, _, err := mapRing(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Answers{out: out, ringFile: f, ring: r}, nil
}

// mapRing maps the ring file f shared and returns the ring and how to
// unmap it. The file must be sealed against shrinking (NewAnswers): the
// core maps what a client passed, and a mapped file cut short would fault
// when the core marks an answer.
func mapRing(f *os.File) (*ring, func(), error) {
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil || seals&unix.F_SEAL_SHRINK == 0 {
		return nil, nil, fmt.Errorf("localcore: the answer ring is not sealed against shrinking")
	}
	if st, err := f.Stat(); err != nil || st.Size() != ringBytes {
		return nil, nil, fmt.Errorf("localcore: the answer ring is not %d bytes", ringBytes)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, ringBytes, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("localcore: mapping the answer ring: %w", err)
	}
	r := &ring{}
	r.writing = (*[ringSlots]atomic.Uint64)(unsafe.Pointer(&mem[0]))
	r.written = (*[ringSlots]atomic.Uint64)(unsafe.Pointer(&mem[ringBytes/2]))
	return r, func() { _ = unix.Munmap(mem) }, nil
}

// sendAnswers passes the client's output and the ring over c, a byte
// with both descriptors.
func sendAnswers(c net.Conn, a *Answers) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("localcore: not a Unix socket")
	}
	rights := unix.UnixRights(int(a.out.Fd()), int(a.ringFile.Fd()))
	_, _, err := uc.WriteMsgUnix([]byte{0}, rights, nil)
	return err
}

// recvAnswers receives what sendAnswers sent, waiting at most
// helloTimeout: the client's output, the ring and how to unmap it.
func recvAnswers(c net.Conn) (*os.File, *ring, func(), error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, nil, nil, fmt.Errorf("localcore: not a Unix socket")
	}
	_ = uc.SetReadDeadline(time.Now().Add(helloTimeout))
	defer uc.SetReadDeadline(time.Time{})
	var b [1]byte
	oob := make([]byte, unix.CmsgSpace(2*4))
	n, oobn, _, _, err := uc.ReadMsgUnix(b[:], oob)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("localcore: receiving the client's output: %w", err)
	}
	var fds []int
	if msgs, perr := unix.ParseSocketControlMessage(oob[:oobn]); perr == nil {
		for _, m := range msgs {
			if got, err := unix.ParseUnixRights(&m); err == nil {
				fds = append(fds, got...)
			}
		}
	}
	if n != 1 || len(fds) != 2 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, nil, nil, fmt.Errorf("localcore: the client passed %d descriptors, want its output and the answer ring", len(fds))
	}
	out := os.NewFile(uintptr(fds[0]), "client output")
	rf := os.NewFile(uintptr(fds[1]), "coditect-answers")
	defer rf.Close() // the mapping outlives the descriptor
	r, unmap, err := mapRing(rf)
	if err != nil {
		out.Close()
		return nil, nil, nil, err
	}
	return out, r, unmap, nil
}
