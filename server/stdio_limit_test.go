package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/internal/testbin"
)

// A 100 MB line on stdin is answered with a JSON-RPC error (with its id)
// and skipped with bounded memory; the next request is served normally.
func TestStdioOversizedLineRefused(t *testing.T) {
	e := newStdioEnv(t)
	cmd, stderr := e.command(t, nil, "--tenant", "acme")
	stdin, stdout := testbin.StartPiped(t, cmd)
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("exit: %v\n%s", err, stderr.String())
		}
	}()
	responses := make(chan map[string]json.RawMessage, 8)
	go func() {
		defer close(responses)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var m map[string]json.RawMessage
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				t.Errorf("stdout line is not JSON: %q", sc.Text())
				continue
			}
			responses <- m
		}
	}()
	await := func(id string) map[string]json.RawMessage {
		t.Helper()
		timeout := time.After(60 * time.Second)
		for {
			select {
			case m, ok := <-responses:
				if !ok {
					t.Fatalf("stdout closed waiting for response %s\n%s", id, stderr.String())
				}
				if string(m["id"]) == id {
					return m
				}
			case <-timeout:
				t.Fatalf("no response %s after 60 s\n%s", id, stderr.String())
			}
		}
	}
	send := func(line string) {
		t.Helper()
		if _, err := io.WriteString(stdin, line+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	await("1")
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	before := peakRSS(t, cmd.Process.Pid)

	// The id comes last, as many clients write it.
	const size = 100 << 20
	head := `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"note","arguments":{"text":"`
	tail := `"}},"id":7}` + "\n"
	if _, err := io.WriteString(stdin, head); err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	for n := len(head) + len(tail); n < size; n += len(chunk) {
		if _, err := stdin.Write(chunk[:min(len(chunk), size-n)]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := io.WriteString(stdin, tail); err != nil {
		t.Fatal(err)
	}
	send(`{"jsonrpc":"2.0","id":8,"method":"ping"}`)

	refused := await("7")
	var rpcErr struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(refused["error"], &rpcErr); err != nil || rpcErr.Code != -32600 || !strings.Contains(rpcErr.Message, "exceeds the limit") {
		t.Fatalf("response to the oversized line: %s", refused["error"])
	}
	if pong := await("8"); pong["result"] == nil {
		t.Fatalf("ping after the oversized line: %v", pong)
	}
	after := peakRSS(t, cmd.Process.Pid)
	t.Logf("coditect mcp peak RSS: %d MiB before the 100 MB line, %d MiB after (%s)", before>>20, after>>20, rpcErr.Message)
	if after > 200<<20 {
		t.Errorf("peak RSS %d MiB after a 100 MB line, want under 200 MiB", after>>20)
	}
}

// peakRSS is a process's peak resident set (VmHWM) in bytes; the test is
// skipped where /proc does not have it.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Skip("no VmHWM in /proc status")
	return 0
}
