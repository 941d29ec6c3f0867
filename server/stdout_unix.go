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
