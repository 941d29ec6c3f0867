//go:build unix

package server

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ReserveStdout gives the MCP protocol sole use of the process's standard
// output. It returns a file for the protocol (a duplicate of descriptor
// 1), then points descriptor 1 and os.Stdout at standard error, so that a
// stray print from any package (or a child process) lands in the log
// instead of corrupting the JSON-RPC stream. Call it once, first thing.
func ReserveStdout() (*os.File, error) {
	fd, err := unix.Dup(1)
	if err != nil {
		return nil, fmt.Errorf("server: duplicating stdout: %w", err)
	}
	unix.CloseOnExec(fd)
	if err := unix.Dup2(2, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("server: pointing stdout at stderr: %w", err)
	}
	os.Stdout = os.Stderr
	return os.NewFile(uintptr(fd), "stdout (mcp)"), nil
}

// PollableStdin returns the process's standard input for a protocol
// stream. When it is a pipe or a socket (a host that started this
// process), the returned file is a duplicate of descriptor 0 in
// non-blocking mode, which the Go runtime's poller waits on: a read
// waiting for the next message then parks its goroutine instead of
// blocking a thread in read(2), which kept the runtime's monitor thread
// waking every 20 µs for as long as the process lived (a third of a
// forwarding process's CPU). Any other input (a terminal, a file) is
// os.Stdin as it is: a terminal's mode is shared with the shell.
func PollableStdin() *os.File {
	var st unix.Stat_t
	if err := unix.Fstat(0, &st); err != nil {
		return os.Stdin
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFIFO && t != unix.S_IFSOCK {
		return os.Stdin
	}
	fd, err := unix.Dup(0)
	if err != nil {
		return os.Stdin
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return os.Stdin
	}
	return os.NewFile(uintptr(fd), "stdin (protocol)")
}
