//go:build !unix

package server

import "os"

// ReserveStdout gives the MCP protocol sole use of the process's standard
// output: it returns the real standard output for the protocol and points
// os.Stdout at standard error, so that a stray print from any Go package
// lands in the log instead of corrupting the JSON-RPC stream. (On Unix the
// descriptor itself is redirected too.)
func ReserveStdout() (*os.File, error) {
	out := os.Stdout
	os.Stdout = os.Stderr
	return out, nil
}

// PollableStdin returns the process's standard input for a protocol
// stream: os.Stdin here.
func PollableStdin() *os.File { return os.Stdin }
