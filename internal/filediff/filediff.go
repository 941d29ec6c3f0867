// Package filediff owns the diffs Coditect records of the changes agents
// make to files: a unified diff of a file's old and new content (diff -u
// form, three lines of context), bounded so that it fits in an audit
// event, and a one-line summary instead for binary content. The longest
// common subsequence comes from github.com/aymanbagabas/go-udiff/lcs (a
// copy of golang.org/x/tools' internal diff, whose search is bounded, so a
// hostile pair of files cannot stall its caller); hunks and the bound are
// ours. The package imports nothing of Coditect's.
package filediff

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/aymanbagabas/go-udiff/lcs"
)

// context is the number of unchanged lines shown around each change.
const context = 3

// Diff is the difference between a file's old and new content.
type Diff struct {
	// Text is the unified diff, cut once its JSON encoding would exceed
	// the limit (its last line then reads "… N more lines"); for binary
	// content, a summary ("binary, 12 → 40 bytes"). "" when nothing
	// changed.
	Text string
	// Added and Removed count the lines of the whole diff, cut or not;
	// both are 0 for binary content.
	Added, Removed int
	// Binary is set when either side is not UTF-8 text or holds a NUL.
	Binary bool
	// Cut is the number of lines of the diff Text leaves out.
	Cut int
}

// Of returns the diff of the file name from old to new, its Text's JSON
// encoding (encoding/json's, HTML-escaped) at most limit bytes plus the
// closing "… N more lines". A nil old is a file created, a nil new a file
// deleted (an empty slice is an empty file).
func Of(name string, old, new []byte, limit int) Diff {
	if old != nil && new != nil && bytes.Equal(old, new) {
		return Diff{}
	}
	if binary(old) || binary(new) {
		return Diff{Binary: true, Text: fmt.Sprintf("binary, %s → %s", size(old), size(new))}
	}
	a, b := lines(string(old)), lines(string(new))
	ds := lcs.DiffLines(a, b)
	w := writer{limit: limit}
	from, to := "a/"+name, "b/"+name
	if old == nil {
		from = "/dev/null"
	}
	if new == nil {
		to = "/dev/null"
	}
	w.line("--- " + from + "\n")
	w.line("+++ " + to + "\n")
	var d Diff
	for i := 0; i < len(ds); {
		j := i + 1 // the hunk holds ds[i:j]
		for j < len(ds) && ds[j].Start-ds[j-1].End <= 2*context {
			j++
		}
		w.hunk(a, b, ds[i:j])
		i = j
	}
	for _, x := range ds {
		d.Removed += x.End - x.Start
		d.Added += x.ReplEnd - x.ReplStart
	}
	d.Text, d.Cut = w.text()
	return d
}

// size says how many bytes a side holds ("none" for a missing file).
func size(b []byte) string {
	if b == nil {
		return "none"
	}
	return fmt.Sprintf("%d bytes", len(b))
}

func binary(b []byte) bool { return bytes.IndexByte(b, 0) >= 0 || !utf8.Valid(b) }

// lines splits s into lines, each keeping its "\n".
func lines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:i+1])
		s = s[i+1:]
	}
	return out
}

// writer builds the diff's text within its limit, counting the lines
// past it.
type writer struct {
	b     strings.Builder
	limit int
	used  int
	more  int
}

func (w *writer) line(s string) {
	if w.more > 0 {
		w.more++
		return
	}
	n := jsonLen(s)
	if w.used+n > w.limit {
		w.more = 1
		return
	}
	w.used += n
	w.b.WriteString(s)
}

func (w *writer) text() (string, int) {
	if w.more > 0 {
		fmt.Fprintf(&w.b, "… %d more lines\n", w.more)
	}
	return w.b.String(), w.more
}

// hunk writes one hunk: the changes ds of a into b with their context.
func (w *writer) hunk(a, b []string, ds []lcs.Diff) {
	first, last := ds[0], ds[len(ds)-1]
	fromStart := max(0, first.Start-context)
	fromEnd := min(len(a), last.End+context)
	toStart := fromStart + first.ReplStart - first.Start
	toEnd := last.ReplEnd + fromEnd - last.End
	w.line(fmt.Sprintf("@@ -%s +%s @@\n", span(fromStart, fromEnd-fromStart), span(toStart, toEnd-toStart)))
	pos := fromStart
	for _, d := range ds {
		w.lines(" ", a[pos:d.Start])
		w.lines("-", a[d.Start:d.End])
		w.lines("+", b[d.ReplStart:d.ReplEnd])
		pos = d.End
	}
	w.lines(" ", a[pos:fromEnd])
}

func (w *writer) lines(mark string, ls []string) {
	for _, l := range ls {
		if strings.HasSuffix(l, "\n") {
			w.line(mark + l)
		} else {
			w.line(mark + l + "\n\\ No newline at end of file\n")
		}
	}
}

// span is a hunk range as diff -u writes it: start line (1-based; the
// line before for an empty range) and count, which is left out when 1.
func span(start, n int) string {
	switch n {
	case 0:
		return fmt.Sprintf("%d,0", start)
	case 1:
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

// jsonLen is the length of s inside a JSON string as encoding/json
// writes it (with HTML escaping), counting U+2028 and U+2029 (which it
// escapes) by their lead byte, so a few other runes count a little high.
func jsonLen(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
			n += 2
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			n += 6
		case c == 0xE2:
			n += 4
		default:
			n++
		}
	}
	return n
}
