package watch

import (
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mountInfo is this process's mount table (proc(5)).
const mountInfo = "/proc/self/mountinfo"

// mountMonitor tells when the mount table changes. inotify does not: a
// mount or an unmount inside a watched tree raises no event in the
// directory above it, and fsnotify swallows the IN_UNMOUNT the watches
// on an unmounted file system get. /proc/self/mountinfo, polled, raises
// POLLPRI (with POLLERR) after every mount, unmount or move in the mount
// namespace, and the poll that reports it resets it (proc(5),
// fs/proc_namespace.c mounts_poll).
type mountMonitor struct {
	// C receives a token after a change; changes are coalesced, so the
	// receiver reads the table afresh each time.
	C    chan struct{}
	fd   int // the open mountinfo, only ever polled
	wake int // the write end of a pipe: closing it stops the poller
	done chan struct{}
}

// startMountMonitor opens the mount table and starts its poller: one
// goroutine blocked in poll(2) until stop.
func startMountMonitor(log *slog.Logger) (*mountMonitor, error) {
	fd, err := unix.Open(mountInfo, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: mountInfo, Err: err}
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("pipe2", err)
	}
	m := &mountMonitor{C: make(chan struct{}, 1), fd: fd, wake: p[1], done: make(chan struct{})}
	go m.loop(p[0], log)
	return m, nil
}

func (m *mountMonitor) loop(rd int, log *slog.Logger) {
	defer close(m.done)
	defer unix.Close(rd)
	defer unix.Close(m.fd)
	fds := []unix.PollFd{{Fd: int32(m.fd), Events: unix.POLLPRI}, {Fd: int32(rd), Events: unix.POLLIN}}
	for {
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			log.Warn("cannot poll the mount table; mounts and unmounts inside workspaces are found by rescans only", "err", err)
			return
		}
		if fds[1].Revents != 0 {
			return // stop closed the pipe
		}
		if fds[0].Revents&unix.POLLNVAL != 0 {
			log.Warn("the mount table cannot be polled; mounts and unmounts inside workspaces are found by rescans only")
			return
		}
		if fds[0].Revents&(unix.POLLPRI|unix.POLLERR) != 0 {
			select {
			case m.C <- struct{}{}:
			default: // a token is waiting already
			}
		}
	}
}

// stop ends the poller and waits for it.
func (m *mountMonitor) stop() {
	unix.Close(m.wake)
	<-m.done
}

// readMounts reads the mount table: each mount's ID and mount point.
func readMounts() (map[mountKey]struct{}, error) {
	b, err := os.ReadFile(mountInfo)
	if err != nil {
		return nil, err
	}
	return parseMountInfo(string(b)), nil
}

// parseMountInfo parses mountinfo lines: "36 35 98:0 /mnt1 /mnt2 rw,...",
// the ID first and the mount point fifth, with space, tab, newline and
// backslash escaped in octal.
func parseMountInfo(s string) map[mountKey]struct{} {
	out := map[mountKey]struct{}{}
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		out[mountKey{id: f[0], point: unescapeMount(f[4])}] = struct{}{}
	}
	return out
}

// unescapeMount undoes the kernel's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
