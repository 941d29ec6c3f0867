package server

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
)

// The line limiter hands on lines up to its limit whole and refuses longer
// ones with the id found at either end, whatever the read sizes.
func TestLineLimiter(t *testing.T) {
	long := strings.Repeat("x", 200)
	cases := []struct {
		name, in, out string
		refused       []string // ids, "null" when none was found
	}{
		{"fits", "{\"id\":1}\n{\"id\":2}\n", "{\"id\":1}\n{\"id\":2}\n", nil},
		{"last line without newline", "{\"id\":1}\n{\"id\":2}", "{\"id\":1}\n{\"id\":2}", nil},
		{"id first", `{"jsonrpc":"2.0","id":"a\"b","params":"` + long + "\"}\n{\"id\":3}\n", "{\"id\":3}\n", []string{`"a\"b"`}},
		{"id last", `{"params":"` + long + `","id":42}` + "\r\n{\"id\":3}\n", "{\"id\":3}\n", []string{"42"}},
		{"no id", `{"params":"` + long + "\"}\n{\"id\":3}\n", "{\"id\":3}\n", []string{"null"}},
		{"oversized at EOF", "{\"id\":3}\n" + long, "{\"id\":3}\n", []string{"null"}},
		{"garbage", long + "\n", "", []string{"null"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var refused []string
			l := newLineLimiter(&oneByteReader{strings.NewReader(c.in)}, 100, func(id json.RawMessage, size int64, max int) {
				if id == nil {
					id = json.RawMessage("null")
				}
				refused = append(refused, string(id))
				if size <= int64(max) {
					t.Errorf("refused a line of %d bytes with a limit of %d", size, max)
				}
			})
			out, err := io.ReadAll(l)
			if err != nil || string(out) != c.out {
				t.Errorf("read %q, %v; want %q", out, err, c.out)
			}
			if strings.Join(refused, ",") != strings.Join(c.refused, ",") {
				t.Errorf("refused ids %v, want %v", refused, c.refused)
			}
		})
	}
}

// oneByteReader reads one byte at a time, like a slow pipe.
type oneByteReader struct{ r io.Reader }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}
