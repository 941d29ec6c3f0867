package tools

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/attrib"
)

// --- fs_read ---

// The default budget of one fs_read (Config.MaxReadLines, MaxReadBytes):
// what a small model's context takes in one tool result.
const (
	DefaultReadLines = 2000
	DefaultReadBytes = 64 << 10
)

type readArgs struct {
	SessionID string `json:"session_id"`
	Path      string `json:"path"`
	StartLine int    `json:"start_line"`
	EndLine   int    `json:"end_line"`
}

// fileOut is what fs_read returns. Content is the raw text of lines
// StartLine to EndLine (1-based, inclusive), line breaks included and
// without the line-number gutter of the text block, so that fs_edit's
// search can be copied from it; base64 of the file's first bytes when it
// is not UTF-8 (then TotalLines is 0). Size and Hash are those of the
// whole file.
type fileOut struct {
	Path       string    `json:"path"`
	Size       int64     `json:"size"`
	Hash       string    `json:"hash"`
	Encoding   string    `json:"encoding"`
	Content    string    `json:"content"`
	TotalLines int       `json:"total_lines"`
	StartLine  int       `json:"start_line,omitempty"`
	EndLine    int       `json:"end_line,omitempty"`
	Truncated  bool      `json:"truncated"`
	NextLine   int       `json:"next_line,omitempty"`
	Modified   time.Time `json:"modified"`
}

func (f *files) readTool() *Tool {
	return spec{
		name: "fs_read", title: "Read a file",
		description: "Read a file, or lines start_line to end_line, of a session's workspace; the text numbers the lines.",
		hints:       readOnly,
		input: `{"type":"object","required":["session_id","path"],"additionalProperties":false,"properties":{
			"session_id":{"type":"string"},
			"path":{"type":"string","description":"Relative to the workspace root, e.g. src/main.go"},
			"start_line":{"type":"integer","minimum":1,"description":"First line to return (1-based); default 1"},
			"end_line":{"type":"integer","minimum":1,"description":"Last line to return, inclusive; default the end (within the budget)"}}}`,
		output: `{"type":"object","required":["path","size","hash","encoding","content","total_lines","truncated","modified"],"properties":{
			"path":{"type":"string"},"size":{"type":"integer"},"hash":{"type":"string","description":"Of the whole file"},
			"encoding":{"type":"string","enum":["utf-8","base64"]},
			"content":{"type":"string","description":"The lines' raw text, without the line numbers the text block shows"},
			"total_lines":{"type":"integer"},"start_line":{"type":"integer"},"end_line":{"type":"integer"},
			"truncated":{"type":"boolean"},"next_line":{"type":"integer","description":"Where to continue when truncated"},
			"modified":{"type":"string"}}}`,
		example: `{"session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T","path":"src/main.go","start_line":3,"end_line":40}`,
		handler: f.read,
	}.tool()
}

func (f *files) read(ctx context.Context, c *Call) (Result, error) {
	var a readArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	switch {
	case a.StartLine < 0:
		return Result{}, c.argError("%q must be a line number, 1 or more, not %d", "start_line", a.StartLine)
	case a.EndLine < 0:
		return Result{}, c.argError("%q must be a line number, 1 or more, not %d", "end_line", a.EndLine)
	case a.EndLine > 0 && a.EndLine < max(a.StartLine, 1):
		return Result{}, c.argError("%q (%d) is before %q (%d): send end_line >= start_line", "end_line", a.EndLine, "start_line", max(a.StartLine, 1))
	}
	pl, root, err := f.openPlace(ctx, c, a.SessionID, a.Path, fileToRead)
	if err != nil {
		return Result{}, err
	}
	defer root.Close()
	b, fi, err := readFile(root, pl.rel, a.Path, f.maxRead)
	if err != nil {
		return Result{}, err
	}
	out := fileOut{Path: pl.rel, Size: int64(len(b)), Hash: attrib.Hash(b), Modified: fi.ModTime().UTC()}
	c.record("hash", out.Hash)
	if !utf8.Valid(b) {
		if a.StartLine > 0 || a.EndLine > 0 {
			return Result{}, &toolError{err: ErrNotText, msg: fmt.Sprintf("%q is not UTF-8 text, so it has no lines: read it without start_line and end_line to get its first bytes, base64-encoded", textclip.Clip(a.Path, 200))}
		}
		return f.readBinary(out, b), nil
	}
	out.Encoding = "utf-8"
	out.TotalLines = countLines(b)
	if a.StartLine > max(out.TotalLines, 1) {
		return Result{}, c.argError("%q is %d, past the end of %s, which has %d lines", "start_line", a.StartLine, pl.rel, out.TotalLines)
	}
	r := f.lines(b, max(a.StartLine, 1), a.EndLine)
	out.Content = string(b[r.from:r.to])
	if r.last >= r.first {
		out.StartLine, out.EndLine = r.first, r.last
	}
	if r.next > 0 {
		out.Truncated, out.NextLine = true, r.next
		c.record("truncated", true)
	}
	return Result{Structured: out, Text: readText(out, r)}, nil
}

// countLines returns the number of lines of b: its line breaks, plus one
// for a last line without one.
func countLines(b []byte) int {
	n := bytes.Count(b, []byte{'\n'})
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

// span is the part of a file fs_read returns: lines first to last (last <
// first when none), bytes from to to of the file; next is the line to
// continue at when the budget cut the range short (0 when it did not), and
// cut is set when line last was longer than the byte budget and only its
// first bytes are returned.
type span struct {
	first, last, next int
	from, to          int
	cut               bool
}

// lines picks lines start to end (0: the last line) of b within the
// budget: at most f.readLines lines and f.readBytes bytes, and at least
// one line (cut on a rune boundary when it alone is over the byte budget).
func (f *files) lines(b []byte, start, end int) span {
	pos := 0
	for line := 1; line < start; line++ {
		i := bytes.IndexByte(b[pos:], '\n')
		pos += i + 1
	}
	s := span{first: start, last: start - 1, from: pos, to: pos}
	for pos < len(b) && (end == 0 || s.last < end) {
		next := len(b)
		if i := bytes.IndexByte(b[pos:], '\n'); i >= 0 {
			next = pos + i + 1
		}
		if s.last-s.first+1 >= f.readLines || next-s.from > f.readBytes {
			if s.last < s.first { // one line over the byte budget: its first bytes
				cut := s.from + f.readBytes
				for cut > s.from && !utf8.RuneStart(b[cut]) {
					cut--
				}
				s.last, s.to, s.cut = s.first, cut, true
				if next < len(b) && (end == 0 || s.last < end) {
					s.next = s.last + 1
				}
				return s
			}
			s.next = s.last + 1
			return s
		}
		s.last, s.to, pos = s.last+1, next, next
	}
	return s
}

// readText is fs_read's text block: a header, the lines under a
// line-number gutter (which is not part of the file) and, when the budget
// cut the range short, where to continue.
func readText(out fileOut, r span) string {
	var b strings.Builder
	if out.TotalLines == 0 {
		fmt.Fprintf(&b, "%s is empty (0 bytes, %s).", out.Path, out.Hash)
		return b.String()
	}
	fmt.Fprintf(&b, "%s, lines %d–%d of %d (%d of %d bytes, %s); the numbers before │ are not part of the file:\n",
		out.Path, out.StartLine, out.EndLine, out.TotalLines, len(out.Content), out.Size, out.Hash)
	width := max(5, len(strconv.Itoa(out.EndLine)))
	b.Grow(len(out.Content) + (out.EndLine-out.StartLine+1)*(width+5) + 120)
	n := out.StartLine
	for line := range strings.Lines(out.Content) {
		fmt.Fprintf(&b, "%*d│ %s", width, n, line)
		n++
	}
	if !strings.HasSuffix(out.Content, "\n") {
		b.WriteByte('\n')
	}
	switch {
	case r.cut && r.next > 0:
		fmt.Fprintf(&b, "[line %d is longer than the budget of %d bytes and was cut; truncated — continue at line %d (start_line %d)]", r.last, r.to-r.from, r.next, r.next)
	case r.cut:
		fmt.Fprintf(&b, "[line %d is longer than the budget of %d bytes and was cut]", r.last, r.to-r.from)
	case r.next > 0:
		fmt.Fprintf(&b, "[truncated — continue at line %d (start_line %d)]", r.next, r.next)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// readBinary is fs_read of a file that is not UTF-8: its first bytes,
// base64-encoded within the byte budget.
func (f *files) readBinary(out fileOut, b []byte) Result {
	n := min(len(b), base64.StdEncoding.DecodedLen(f.readBytes))
	out.Encoding, out.Content = "base64", base64.StdEncoding.EncodeToString(b[:n])
	if n < len(b) {
		out.Truncated = true
		return Result{Structured: out, Text: fmt.Sprintf("%s (%d bytes, %s) is not UTF-8 text (binary?); its first %d bytes, base64-encoded (truncated to the budget of %d bytes):\n%s",
			out.Path, out.Size, out.Hash, n, f.readBytes, out.Content)}
	}
	return Result{Structured: out, Text: fmt.Sprintf("%s (%d bytes, %s) is not UTF-8 text (binary?); its bytes, base64-encoded:\n%s", out.Path, out.Size, out.Hash, out.Content)}
}

// --- fs_list ---

type listArgs struct {
	SessionID string `json:"session_id"`
	Path      string `json:"path"`
}

type entryOut struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Size int64  `json:"size,omitempty"`
}

type listOut struct {
	Path    string     `json:"path"`
	Entries []entryOut `json:"entries"`
	// Total counts the entries read; Entries holds at most maxListEntries.
	Total     int  `json:"total"`
	Truncated bool `json:"truncated,omitempty"`
}

func (f *files) listTool() *Tool {
	return spec{
		name: "fs_list", title: "List a directory",
		description: "List a directory of a session's workspace (its root when path is empty): names, types and sizes.",
		hints:       readOnly,
		input: `{"type":"object","required":["session_id"],"additionalProperties":false,"properties":{
			"session_id":{"type":"string"},
			"path":{"type":"string","description":"Directory relative to the workspace root; empty for the root"}}}`,
		output: `{"type":"object","required":["path","entries","total"],"properties":{
			"path":{"type":"string"},"entries":{"type":"array","items":{"type":"object","required":["name","type"],"properties":{
			"name":{"type":"string"},"type":{"type":"string","enum":["file","dir","symlink","other"]},"size":{"type":"integer"}}}},
			"total":{"type":"integer"},"truncated":{"type":"boolean"}}}`,
		example: `{"session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T","path":"src"}`,
		handler: f.list,
	}.tool()
}

func (f *files) list(ctx context.Context, c *Call) (Result, error) {
	var a listArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	pl, root, err := f.openPlace(ctx, c, a.SessionID, a.Path, anyPlace)
	if err != nil {
		return Result{}, err
	}
	defer root.Close()
	// Stat before opening: opening a named pipe would block the call.
	if fi, err := root.Stat(pl.rel); err != nil {
		return Result{}, notExist(err, a.Path)
	} else if !fi.IsDir() {
		return Result{}, &toolError{err: ErrNotFile, msg: fmt.Sprintf("%q is not a directory: read a file with fs_read", textclip.Clip(a.Path, 200))}
	}
	dir, err := root.Open(pl.rel)
	if err != nil {
		return Result{}, notExist(err, a.Path)
	}
	defer dir.Close()
	ents, err := dir.ReadDir(maxListScan)
	if err != nil && !errors.Is(err, io.EOF) {
		return Result{}, err
	}
	slices.SortFunc(ents, func(x, y fs.DirEntry) int { return strings.Compare(x.Name(), y.Name()) })
	out := listOut{Path: pl.rel, Entries: []entryOut{}, Total: len(ents), Truncated: len(ents) > maxListEntries || len(ents) == maxListScan}
	var b strings.Builder
	fmt.Fprintf(&b, "%s:\n", pl.rel)
	for _, e := range ents[:min(len(ents), maxListEntries)] {
		o := entryOut{Name: e.Name()}
		switch t := e.Type(); {
		case t.IsDir():
			o.Type = "dir"
			fmt.Fprintf(&b, "%s/\n", o.Name)
		case t&fs.ModeSymlink != 0:
			o.Type = "symlink"
			fmt.Fprintf(&b, "%s (symlink)\n", o.Name)
		case t.IsRegular():
			o.Type = "file"
			if info, err := e.Info(); err == nil {
				o.Size = info.Size()
			}
			fmt.Fprintf(&b, "%s %d\n", o.Name, o.Size)
		default:
			o.Type = "other"
			fmt.Fprintf(&b, "%s (%s)\n", o.Name, t)
		}
		out.Entries = append(out.Entries, o)
	}
	switch {
	case len(ents) == 0:
		b.WriteString("(empty)\n")
	case out.Truncated:
		fmt.Fprintf(&b, "Only the first %d entries are shown.\n", len(out.Entries))
	}
	return Result{Structured: out, Text: strings.TrimSuffix(b.String(), "\n")}, nil
}
