package ide

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"go.lsp.dev/protocol"

	"github.com/coditect/coditect/internal/textclip"
)

// buffer is the text of one open document as the client holds it, edited
// incrementally. Positions are LSP's: a zero-based line and a column in
// UTF-16 code units (the default position encoding, the only one offered).
// Lines end at '\n'; a '\r' before it belongs to the line ending.
type buffer struct {
	text []byte
	// lines holds the byte offset at which every line starts; lines[0] is
	// 0 and there is one entry per '\n' plus one.
	lines []int
}

func newBuffer(text []byte) *buffer {
	b := &buffer{text: text}
	b.index(0)
	return b
}

// index rebuilds the line starts from line first on.
func (b *buffer) index(first int) {
	if first >= len(b.lines) {
		first = len(b.lines) - 1
	}
	if first < 0 {
		b.lines = append(b.lines[:0], 0)
		first = 0
	}
	b.lines = b.lines[:first+1]
	for off := b.lines[first]; ; {
		i := bytes.IndexByte(b.text[off:], '\n')
		if i < 0 {
			break
		}
		off += i + 1
		b.lines = append(b.lines, off)
	}
}

// offset returns the byte offset of pos. Following the specification, a
// character past the end of its line means the line's end; a line past
// the last means the end of the text.
func (b *buffer) offset(pos protocol.Position) int {
	line := int(pos.Line)
	if line >= len(b.lines) {
		return len(b.text)
	}
	start := b.lines[line]
	end := len(b.text)
	if line+1 < len(b.lines) {
		end = b.lines[line+1] - 1 // the '\n'
		if end > start && b.text[end-1] == '\r' {
			end--
		}
	}
	want := int(pos.Character)
	off, units := start, 0
	for off < end && units < want {
		r, size := utf8.DecodeRune(b.text[off:end])
		n := utf16.RuneLen(r)
		if n < 0 {
			n = 1 // an invalid byte counts as one unit (U+FFFD)
		}
		if units+n > want {
			break // the position splits a surrogate pair: stay before it
		}
		units += n
		off += size
	}
	return off
}

// errBadRange: a change's range ends before it starts.
var errBadRange = errors.New("range end before start")

// apply replaces rng (the whole text when nil) with text.
func (b *buffer) apply(rng *protocol.Range, text string) error {
	if rng == nil {
		b.text = []byte(text)
		b.index(0)
		return nil
	}
	start, end := b.offset(rng.Start), b.offset(rng.End)
	if end < start {
		return fmt.Errorf("%w: %d:%d before %d:%d", errBadRange, rng.End.Line, rng.End.Character, rng.Start.Line, rng.Start.Character)
	}
	first := min(int(rng.Start.Line), len(b.lines)-1)
	last := min(int(rng.End.Line), len(b.lines)-1)
	// In place when the capacity allows: a keystroke moves the tail, it
	// does not copy the text.
	b.text = slices.Replace(b.text, start, end, []byte(text)...)
	// Line starts: those up to the edit's first line stay, the inserted
	// text brings its own, and those after its last line shift.
	delta := len(text) - (end - start)
	var added []int
	for off := 0; ; {
		i := strings.IndexByte(text[off:], '\n')
		if i < 0 {
			break
		}
		off += i + 1
		added = append(added, start+off)
	}
	b.lines = slices.Replace(b.lines, first+1, last+1, added...)
	for i := first + 1 + len(added); i < len(b.lines); i++ {
		b.lines[i] += delta
	}
	return nil
}

// lineCount is the number of lines (a text ending in '\n' has an empty
// last line).
func (b *buffer) lineCount() int { return len(b.lines) }

// uriPath returns the real absolute path a file: URI names (symbolic links
// resolved, as the watcher and the files toolset see it).
func uriPath(uri string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("uri %q: %w", textclip.Clip(uri, 80), err)
	}
	if u.Scheme != "file" {
		return "", fmt.Errorf("uri %q is not a file: URI", textclip.Clip(uri, 80))
	}
	p := filepath.FromSlash(u.Path)
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("uri %q has no absolute path", textclip.Clip(uri, 80))
	}
	return realPath(filepath.Clean(p)), nil
}

// realPath resolves the symbolic links of p's longest existing prefix.
func realPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	dir := filepath.Dir(p)
	if dir == p {
		return p
	}
	return filepath.Join(realPath(dir), filepath.Base(p))
}
