package textclip

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	for _, c := range []struct {
		s                    string
		n                    int
		prefix, clip, within string
	}{
		{"abc", 3, "abc", "abc", "abc"},
		{"abcdef", 4, "abcd", "abcd…", "a…"},
		{"aé", 2, "a", "a…", "…"},
		{"日本語", 4, "日", "日…", "…"},
		{"日本語", 6, "日本", "日本…", "日…"},
		{"x", 0, "", "…", "…"},
		{"xyz", -1, "", "…", "…"},
	} {
		if got := Prefix(c.s, c.n); got != c.prefix {
			t.Errorf("Prefix(%q, %d) = %q, want %q", c.s, c.n, got, c.prefix)
		}
		if got := Clip(c.s, c.n); got != c.clip {
			t.Errorf("Clip(%q, %d) = %q, want %q", c.s, c.n, got, c.clip)
		}
		if got := Within(c.s, c.n); got != c.within {
			t.Errorf("Within(%q, %d) = %q, want %q", c.s, c.n, got, c.within)
		}
	}
}

// Every cut of a text of mixed widths is valid UTF-8 and within its bound.
func TestClipBounds(t *testing.T) {
	s := strings.Repeat("aé日😀", 5)
	for n := range len(s) + 2 {
		p, c, w := Prefix(s, n), Clip(s, n), Within(s, n)
		if !utf8.ValidString(p) || !utf8.ValidString(c) || !utf8.ValidString(w) {
			t.Fatalf("n=%d: invalid UTF-8: %q %q %q", n, p, c, w)
		}
		if len(p) > n || len(c) > n+len(Mark) || (len(s) > n && n >= len(Mark) && len(w) > n) {
			t.Fatalf("n=%d: too long: %d %d %d", n, len(p), len(c), len(w))
		}
		_, next := utf8.DecodeRuneInString(s[len(p):])
		if !strings.HasPrefix(s, p) || len(p) < len(s) && len(p)+next <= n {
			t.Fatalf("n=%d: Prefix %q is not the longest prefix", n, p)
		}
	}
}
