//go:build unix

package server_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/coditect/coditect/server"
)

// TestReserveStdout runs itself as a child that prints every way it can;
// only what it writes to the reserved file may reach its stdout.
func TestReserveStdout(t *testing.T) {
	if os.Getenv("CODITECT_RESERVE_CHILD") == "1" {
		proto, err := server.ReserveStdout()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println("stray fmt.Println")
		syscall.Write(1, []byte("stray write to fd 1\n"))
		child := exec.Command("sh", "-c", "echo stray child")
		child.Stdout = os.Stdout
		_ = child.Run()
		fmt.Fprintln(proto, `{"jsonrpc":"2.0","id":1,"result":{}}`)
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReserveStdout$")
	cmd.Env = append(os.Environ(), "CODITECT_RESERVE_CHILD=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	if got := stdout.String(); got != "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n" {
		t.Errorf("stdout %q: want only the protocol line", got)
	}
	for _, w := range []string{"stray fmt.Println", "stray write to fd 1", "stray child"} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("stderr %q lacks %q", stderr.String(), w)
		}
	}
}
