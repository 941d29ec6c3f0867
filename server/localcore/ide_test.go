package localcore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// forwardIDEOver runs ForwardIDE with the client's input in and the
// core's side of the connection written by core; it returns what the
// client received and the status.
func forwardIDEOver(t *testing.T, in string, core func(c net.Conn)) (string, int, error) {
	t.Helper()
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		b, err := l.Accept()
		if err != nil {
			return
		}
		defer b.Close()
		core(b)
	}()
	a, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code, err := ForwardIDE(context.Background(), strings.NewReader(in), &out, a)
	return out.String(), code, err
}

func frame(body string) string {
	return "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// TestForwardIDEPassesFramesAndStatus: frames pass both ways untouched
// (headers included) and the trailer's status is the forwarder's.
func TestForwardIDEPassesFramesAndStatus(t *testing.T) {
	for _, status := range []int{0, 1} {
		frames := frame(`{"jsonrpc":"2.0","id":1,"result":{}}`) +
			"Content-Length: 2\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n{}" +
			frame(`{"jsonrpc":"2.0","method":"x","params":"Content-Length: 9\r\n\r\n"}`)
		clientIn := frame(`{"jsonrpc":"2.0","id":1,"method":"initialize"}`)
		got, code, err := forwardIDEOver(t, clientIn, func(c net.Conn) {
			buf := make([]byte, len(clientIn))
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != clientIn {
				t.Errorf("the core read %q, %v; want %q", buf, err, clientIn)
			}
			_, _ = io.WriteString(c, frames)
			_ = WriteExit(c, status)
		})
		if err != nil || code != status {
			t.Fatalf("status %d, %v; want %d", code, err, status)
		}
		if got != frames {
			t.Fatalf("the client got\n%q\nwant\n%q", got, frames)
		}
	}
}

// TestForwardIDECoreLost: a core that closes without a trailer, between
// frames or within one, is ErrCoreLost with status 1.
func TestForwardIDECoreLost(t *testing.T) {
	for _, sent := range []string{"", frame("{}"), frame("{}") + "Content-Length: 10\r\n\r\n{\"a\"", "Content-Le"} {
		_, code, err := forwardIDEOver(t, "", func(c net.Conn) { _, _ = io.WriteString(c, sent) })
		if code != 1 || !errors.Is(err, ErrCoreLost) {
			t.Errorf("after %q: status %d, %v; want 1, ErrCoreLost", sent, code, err)
		}
	}
}
