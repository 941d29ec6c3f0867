//go:build unix

package server

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestPollableStdin runs this test binary with a pipe as its standard
// input: PollableStdin gives a separate, pollable file that reads what the
// pipe carries, and whose Close ends a read waiting for input (a blocking
// os.Stdin read would wait on). With a regular file as input it gives
// os.Stdin itself.
func TestPollableStdin(t *testing.T) {
	if os.Getenv("CODITECT_POLLABLE_STDIN_CHILD") == "1" {
		pollableStdinChild()
		return
	}
	run := func(stdin io.Reader) string {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run", "^TestPollableStdin$")
		cmd.Env = append(os.Environ(), "CODITECT_POLLABLE_STDIN_CHILD=1")
		cmd.Stdin = stdin
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return string(out)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = w.Write([]byte("{\"jsonrpc\":\"2.0\"}\n"))
		// The write end stays open: the child's second read must wait,
		// and end only by its Close.
	}()
	defer w.Close()
	defer r.Close()
	if out := run(r); !strings.Contains(out, "pollable: read {\"jsonrpc\":\"2.0\"}; closed read ended") {
		t.Errorf("with a pipe: %s", out)
	}
	f, err := os.CreateTemp(t.TempDir(), "in")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if out := run(f); !strings.Contains(out, "os.Stdin") {
		t.Errorf("with a file: %s", out)
	}
}

func pollableStdinChild() {
	in := PollableStdin()
	if in == os.Stdin {
		os.Stdout.WriteString("os.Stdin\n")
		return
	}
	buf := make([]byte, 64)
	n, err := in.Read(buf)
	if err != nil {
		os.Stdout.WriteString("read failed: " + err.Error() + "\n")
		return
	}
	line := string(bytes.TrimSpace(buf[:n]))
	ended := make(chan error, 1)
	go func() { _, err := in.Read(buf); ended <- err }()
	// Close ends the read whether it comes before the read starts or
	// while it waits (the case this gives time for); a read of a
	// non-pollable file would hold Close and this child until the timeout.
	time.AfterFunc(100*time.Millisecond, func() { in.Close() })
	select {
	case <-ended:
		os.Stdout.WriteString("pollable: read " + line + "; closed read ended\n")
	case <-time.After(20 * time.Second):
		os.Stdout.WriteString("pollable: read " + line + "; a closed read did not end\n")
	}
}
