package ide

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"go.lsp.dev/protocol"
)

func rng(l1, c1, l2, c2 uint32) *protocol.Range {
	return &protocol.Range{Start: protocol.Position{Line: l1, Character: c1}, End: protocol.Position{Line: l2, Character: c2}}
}

// TestBufferEdits applies incremental edits as clients send them, with
// UTF-16 columns (a surrogate pair counts two), CRLF line endings,
// positions past a line's end or the text's end (clamped, per the spec)
// and multi-line replacements, and checks the text after each.
func TestBufferEdits(t *testing.T) {
	b := newBuffer([]byte("héllo 😀 world\r\nsecond\nthird"))
	steps := []struct {
		r    *protocol.Range
		text string
		want string
	}{
		// After the emoji (two UTF-16 units): column 8.
		{rng(0, 8, 0, 8), "!", "héllo 😀! world\r\nsecond\nthird"},
		// Delete "é" (one unit).
		{rng(0, 1, 0, 2), "e", "hello 😀! world\r\nsecond\nthird"},
		// Past the end of line 0 means before its "\r\n".
		{rng(0, 99, 0, 99), ".", "hello 😀! world.\r\nsecond\nthird"},
		// A multi-line replacement.
		{rng(0, 16, 2, 1), "\nX", "hello 😀! world.\nXhird"},
		// Past the last line means the end of the text.
		{rng(9, 0, 9, 0), "\n", "hello 😀! world.\nXhird\n"},
		// Inserting on the empty last line.
		{rng(2, 0, 2, 0), "end", "hello 😀! world.\nXhird\nend"},
		// A full replacement.
		{nil, "new\ntext", "new\ntext"},
		// Splitting a surrogate pair stays before it.
		{nil, "😀", "😀"},
		{rng(0, 1, 0, 1), "x", "x😀"},
	}
	for i, s := range steps {
		if err := b.apply(s.r, s.text); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := string(b.text); got != s.want {
			t.Fatalf("step %d: text %q, want %q", i, got, s.want)
		}
		if want := strings.Count(s.want, "\n") + 1; b.lineCount() != want {
			t.Fatalf("step %d: %d lines, want %d", i, b.lineCount(), want)
		}
	}
	if err := b.apply(rng(0, 1, 0, 0), ""); err == nil {
		t.Fatal("a range ending before its start was accepted")
	}
}

// BenchmarkDidChange10k measures one keystroke's incremental edit in the
// middle of a 10,000-line file (the buffer work of a didChange).
func BenchmarkDidChange10k(b *testing.B) {
	var sb strings.Builder
	for i := range 10_000 {
		sb.WriteString("\tfmt.Println(\"line ")
		sb.WriteString(strings.Repeat("x", i%40))
		sb.WriteString("\")\n")
	}
	buf := newBuffer([]byte(sb.String()))
	b.SetBytes(int64(len(buf.text)))
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			_ = buf.apply(rng(5000, 3, 5000, 3), "a")
		} else {
			_ = buf.apply(rng(5000, 3, 5000, 4), "")
		}
	}
}

// TestBufferIndexRandom: after every one of many random edits (some
// multi-line, some past the end) the incrementally kept line index equals
// one built from scratch.
func TestBufferIndexRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"", "a", "é", "😀", "\n", "\r\n", "xy\nz", "\n\n", "line\nline\n"}
	b := newBuffer([]byte("start\n"))
	for i := range 5000 {
		n := uint32(b.lineCount() + 1)
		l1, l2 := r.Uint32N(n), r.Uint32N(n)
		if l2 < l1 {
			l1, l2 = l2, l1
		}
		c1, c2 := r.Uint32N(8), r.Uint32N(8)
		if l1 == l2 && c2 < c1 {
			c1, c2 = c2, c1
		}
		if err := b.apply(rng(l1, c1, l2, c2), pieces[r.IntN(len(pieces))]); err != nil {
			t.Fatalf("edit %d: %v", i, err)
		}
		if want := newBuffer(b.text).lines; !slices.Equal(b.lines, want) {
			t.Fatalf("edit %d: lines %v, want %v for %q", i, b.lines, want, b.text)
		}
	}
}
