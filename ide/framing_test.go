package ide

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
)

// readFrames decodes the frames a stream wrote.
func readFrames(t testing.TB, b []byte) []map[string]any {
	t.Helper()
	r := bufio.NewReader(bytes.NewReader(b))
	var out []map[string]any
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "Content-Length: ")))
		if err != nil {
			t.Fatalf("bad header %q", line)
		}
		if l, _ := r.ReadString('\n'); l != "\r\n" {
			t.Fatalf("no blank line after the header: %q", l)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("frame %q: %v", body, err)
		}
		out = append(out, m)
	}
}

func frame(body string) string { return fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body) }

type anyMsg struct{ raw json.RawMessage }

func (m *anyMsg) UnmarshalJSON(b []byte) error { m.raw = append(m.raw[:0], b...); return nil }

// TestFramingRecovers feeds bad input between good messages: every bad
// frame is answered with the JSON-RPC error the spec names and the good
// messages after it are read intact.
func TestFramingRecovers(t *testing.T) {
	good := `{"jsonrpc":"2.0","id":7,"method":"x"}`
	cases := []struct {
		name, input string
		code        float64
		id          any
	}{
		{"not JSON", frame(`{"jsonrpc":`), codeParseError, nil},
		{"no Content-Length", "Content-Type: x\r\n\r\n", codeParseError, nil},
		{"Content-Length not a number", "Content-Length: ten\r\n\r\n", codeParseError, nil},
		{"negative Content-Length", "Content-Length: -5\r\n\r\n", codeParseError, nil},
		{"overflowing Content-Length", "Content-Length: 99999999999999999999999\r\n\r\n", codeParseError, nil},
		{"too large", frame(strings.Repeat(" ", 2000)), codeInvalidRequest, nil},
		{"batch", frame(`[` + good + `]`), codeInvalidRequest, nil},
		{"a number", frame(`42`), codeInvalidRequest, nil},
		{"no jsonrpc", frame(`{"id":3,"method":"x"}`), codeInvalidRequest, float64(3)},
		{"method not a string", frame(`{"jsonrpc":"2.0","id":"a","method":5}`), codeInvalidRequest, "a"},
		{"object id", frame(`{"jsonrpc":"2.0","id":{},"method":"x"}`), codeInvalidRequest, nil},
		{"negative id", frame(`{"jsonrpc":"2.0","id":-1,"method":"x"}`), codeInvalidRequest, nil},
		{"neither request nor response", frame(`{"jsonrpc":"2.0","id":4}`), codeInvalidRequest, float64(4)},
		{"both", frame(`{"jsonrpc":"2.0","id":4,"method":"x","result":1}`), codeInvalidRequest, float64(4)},
		{"header line too long", "X-Junk: " + strings.Repeat("a", maxHeaderLine+10) + "\r\n\r\n", codeParseError, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			s := newStream(strings.NewReader(c.input+frame(good)), &out, nil, 1000, nil)
			var m anyMsg
			if err := s.ReadObject(&m); err != nil {
				t.Fatalf("ReadObject: %v", err)
			}
			if string(m.raw) != good {
				t.Fatalf("read %s, want the good message", m.raw)
			}
			frames := readFrames(t, out.Bytes())
			if len(frames) != 1 {
				t.Fatalf("answers %v, want one error", frames)
			}
			e, _ := frames[0]["error"].(map[string]any)
			if e == nil || e["code"] != c.code || frames[0]["id"] != c.id || e["message"] == "" {
				t.Fatalf("answer %v, want code %v id %v", frames[0], c.code, c.id)
			}
			if err := s.ReadObject(&m); !errors.Is(err, io.EOF) {
				t.Fatalf("at the end: %v, want EOF", err)
			}
		})
	}
}

// TestFramingDuplicateContentLength: a header block with two
// Content-Length headers is a framing error whichever comes first, agreeing
// or not; it is answered once and the request after it is read intact
// (trusting either header would run the frame into the next one and
// swallow that request).
func TestFramingDuplicateContentLength(t *testing.T) {
	good := `{"jsonrpc":"2.0","id":7,"method":"x"}`
	next := frame(good)
	long := fmt.Sprint(2 + len(next)) // the bad body plus the next frame
	cases := []struct{ name, input string }{
		{"agreeing", "Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}"},
		{"the second swallows the next frame", "Content-Length: 2\r\nContent-Length: " + long + "\r\n\r\n{}"},
		{"the first swallows the next frame", "Content-Length: " + long + "\r\nContent-Length: 2\r\n\r\n{}"},
		{"one not a byte count", "Content-Length: two\r\nContent-Length: " + long + "\r\n\r\n{}"},
		{"a body of several lines", "Content-Length: 5\r\ncontent-length: " + long + "\r\n\r\n{\r\n\r\n}"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			s := newStream(strings.NewReader(c.input+next), &out, nil, 1000, nil)
			var m anyMsg
			if err := s.ReadObject(&m); err != nil {
				t.Fatalf("ReadObject: %v", err)
			}
			if string(m.raw) != good {
				t.Fatalf("read %s, want the request after the bad frame", m.raw)
			}
			frames := readFrames(t, out.Bytes())
			if len(frames) != 1 {
				t.Fatalf("answers %v, want one error", frames)
			}
			e, _ := frames[0]["error"].(map[string]any)
			if e == nil || e["code"] != float64(codeParseError) || frames[0]["id"] != nil || !strings.Contains(fmt.Sprint(e["message"]), "Content-Length header") {
				t.Fatalf("answer %v, want a parse error about the Content-Length headers", frames[0])
			}
			if err := s.ReadObject(&m); !errors.Is(err, io.EOF) {
				t.Fatalf("at the end: %v (%s), want EOF", err, m.raw)
			}
		})
	}
}

// TestFramingJunkBeforeHeader: bytes before a header (a client that wrote
// a stray line) are reported and the frame behind them is still read.
func TestFramingJunkBeforeHeader(t *testing.T) {
	good := `{"jsonrpc":"2.0","method":"n"}`
	var out bytes.Buffer
	s := newStream(strings.NewReader("garbage"+frame(good)), &out, nil, 0, nil)
	var m anyMsg
	if err := s.ReadObject(&m); err != nil || string(m.raw) != good {
		t.Fatalf("ReadObject = %s, %v", m.raw, err)
	}
	if f := readFrames(t, out.Bytes()); len(f) != 1 || f[0]["error"].(map[string]any)["code"] != float64(codeParseError) {
		t.Fatalf("answers %v", f)
	}
}

// TestFramingExactLength: the body is exactly Content-Length bytes, even
// when the next frame follows without a gap, and a truncated body is an
// unexpected EOF rather than a message.
func TestFramingExactLength(t *testing.T) {
	a, b := `{"jsonrpc":"2.0","method":"a"}`, `{"jsonrpc":"2.0","method":"b"}`
	s := newStream(strings.NewReader(frame(a)+frame(b)+"Content-Length: 50\r\n\r\n{}"), io.Discard, nil, 0, nil)
	for _, want := range []string{a, b} {
		var m anyMsg
		if err := s.ReadObject(&m); err != nil || string(m.raw) != want {
			t.Fatalf("ReadObject = %s, %v; want %s", m.raw, err, want)
		}
	}
	var m anyMsg
	if err := s.ReadObject(&m); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated frame: %v", err)
	}
}

// FuzzReadObject: no input makes the stream panic or loop; it ends with
// the input.
func FuzzReadObject(f *testing.F) {
	f.Add([]byte(frame(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`)))
	f.Add([]byte("Content-Length: 3\r\n\r\n{}}Content-Length: 2\r\n\r\n{}"))
	f.Add([]byte("Content-Length: 5\r\nContent-Length: 2\r\n\r\n[1,2]"))
	f.Add([]byte("\r\n\r\nContent-Length:\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := newStream(bytes.NewReader(in), io.Discard, nil, 1<<16, nil)
		for i := 0; i <= len(in)+1; i++ {
			var m anyMsg
			if err := s.ReadObject(&m); err != nil {
				return
			}
			if !json.Valid(m.raw) {
				t.Fatalf("delivered invalid JSON %q", m.raw)
			}
		}
		t.Fatal("more messages than input bytes")
	})
}
