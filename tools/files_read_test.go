package tools

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/attrib"
)

// numbered returns n lines "line 1\n" … "line n\n".
func numbered(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.String()
}

// TestFsReadRanges: fs_read returns the lines asked for, numbered in the
// text and raw in content, with the hash of the whole file; a range past
// the end is clamped, a start past the end or a reversed range refused.
func TestFsReadRanges(t *testing.T) {
	e := setup(t)
	a := e.alice
	w := newWorkspace(t, a)
	whole := numbered(30)
	if err := os.WriteFile(filepath.Join(w.root, "n.txt"), []byte(whole), 0o644); err != nil {
		t.Fatal(err)
	}
	hash := attrib.Hash([]byte(whole))

	m, text := mustCall(t, a, "fs_read", w.args("path", "n.txt"))
	if m["content"] != whole || m["total_lines"] != float64(30) || m["start_line"] != float64(1) || m["end_line"] != float64(30) ||
		m["truncated"] != false || m["next_line"] != nil || m["hash"] != hash {
		t.Errorf("whole read = %v", m)
	}
	if !strings.Contains(text, "    1│ line 1\n") || !strings.Contains(text, "   30│ line 30") || strings.Contains(text, "truncated") {
		t.Errorf("whole read text:\n%s", text)
	}

	m, text = mustCall(t, a, "fs_read", w.args("path", "n.txt", "start_line", 10, "end_line", 12))
	if m["content"] != "line 10\nline 11\nline 12\n" || m["start_line"] != float64(10) || m["end_line"] != float64(12) ||
		m["total_lines"] != float64(30) || m["hash"] != hash || m["size"] != float64(len(whole)) || m["truncated"] != false {
		t.Errorf("lines 10-12 = %v", m)
	}
	if !strings.Contains(text, "lines 10–12 of 30") || !strings.Contains(text, "   10│ line 10\n   11│ line 11\n   12│ line 12") || strings.Contains(text, "line 9\n") {
		t.Errorf("lines 10-12 text:\n%s", text)
	}
	// From a line to the end; an end past the end is clamped.
	if m, _ = mustCall(t, a, "fs_read", w.args("path", "n.txt", "start_line", 29)); m["content"] != "line 29\nline 30\n" {
		t.Errorf("from 29 = %v", m)
	}
	if m, _ = mustCall(t, a, "fs_read", w.args("path", "n.txt", "start_line", 30, "end_line", 99)); m["content"] != "line 30\n" || m["end_line"] != float64(30) {
		t.Errorf("30-99 = %v", m)
	}
	mustFail(t, a, "fs_read", w.args("path", "n.txt", "start_line", 31), OutcomeInvalid, "past the end", "30 lines")
	mustFail(t, a, "fs_read", w.args("path", "n.txt", "start_line", 5, "end_line", 4), OutcomeInvalid, `"end_line" (4) is before "start_line" (5)`)
	mustFail(t, a, "fs_read", w.args("path", "n.txt", "start_line", -1), OutcomeInvalid, `"start_line" must be a line number`)

	// A last line without a line break, and an empty file.
	if err := os.WriteFile(filepath.Join(w.root, "tail.txt"), []byte("a\nb"), 0o644); err != nil {
		t.Fatal(err)
	}
	if m, text = mustCall(t, a, "fs_read", w.args("path", "tail.txt", "start_line", 2)); m["content"] != "b" || m["total_lines"] != float64(2) ||
		!strings.HasSuffix(text, "    2│ b") {
		t.Errorf("last line without a break = %v\n%s", m, text)
	}
	if err := os.WriteFile(filepath.Join(w.root, "empty.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if m, text = mustCall(t, a, "fs_read", w.args("path", "empty.txt")); m["content"] != "" || m["total_lines"] != float64(0) || !strings.Contains(text, "is empty") {
		t.Errorf("empty = %v\n%s", m, text)
	}

	// The content of a range is the file's text: fs_edit's search can be
	// copied from it.
	m, _ = mustCall(t, a, "fs_read", w.args("path", "n.txt", "start_line", 20, "end_line", 21))
	mustCall(t, a, "fs_edit", w.args("path", "n.txt", "search", m["content"], "replace", "twenty\ntwenty-one\n"))
	if got := w.read(t, "n.txt"); got != strings.Replace(whole, "line 20\nline 21\n", "twenty\ntwenty-one\n", 1) {
		t.Errorf("after an edit copied from a range: %q", got)
	}
}

// TestFsReadBudget: a read returns at most the budget's lines and bytes,
// says where to continue, and reading on from there yields the whole file;
// a line over the byte budget is cut; binary content is base64 of the
// file's first bytes within the budget.
func TestFsReadBudget(t *testing.T) {
	e := setup(t)
	a := e.alice
	w := newWorkspace(t, a)
	read := toolOf(t, Files(Config{MaxReadLines: 4, MaxReadBytes: 40}), "fs_read")
	whole := numbered(11) // 7 or 8 bytes a line
	if err := os.WriteFile(filepath.Join(w.root, "n.txt"), []byte(whole), 0o644); err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	var starts []int
	for start := 1; ; {
		starts = append(starts, start)
		m, text, err := callTool(t, a, nil, read, w.args("path", "n.txt", "start_line", start))
		if err != nil {
			t.Fatal(text)
		}
		c := m["content"].(string)
		if n := strings.Count(c, "\n"); n > 4 || len(c) > 40 {
			t.Errorf("from %d: %d lines, %d bytes, over the budget", start, n, len(c))
		}
		got.WriteString(c)
		if m["truncated"] != true {
			if m["next_line"] != nil || strings.Contains(text, "truncated") {
				t.Errorf("last read = %v\n%s", m, text)
			}
			break
		}
		next := int(m["next_line"].(float64))
		if want := fmt.Sprintf("truncated — continue at line %d", next); !strings.Contains(text, want) || next != int(m["end_line"].(float64))+1 {
			t.Errorf("from %d: %v, text without %q:\n%s", start, m, want, text)
		}
		start = next
	}
	if got.String() != whole || fmt.Sprint(starts) != "[1 5 9]" {
		t.Errorf("reading on gave %q from %v, want the whole file from [1 5 9]", got.String(), starts)
	}
	// The byte budget: lines of 10 bytes, 40 bytes a read, 4 lines.
	long := strings.Repeat("123456789\n", 6)
	if err := os.WriteFile(filepath.Join(w.root, "ten.txt"), []byte(long), 0o644); err != nil {
		t.Fatal(err)
	}
	read2 := toolOf(t, Files(Config{MaxReadLines: 100, MaxReadBytes: 35}), "fs_read")
	if m, _, err := callTool(t, a, nil, read2, w.args("path", "ten.txt")); err != nil || m["content"] != long[:30] || m["next_line"] != float64(4) {
		t.Errorf("byte budget: %v", m)
	}
	// One line over the byte budget: its first bytes (on a rune boundary).
	line := strings.Repeat("é", 30) + "\nnext\n" // 60 bytes, then a line
	if err := os.WriteFile(filepath.Join(w.root, "wide.txt"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	if m, text, err := callTool(t, a, nil, read2, w.args("path", "wide.txt")); err != nil || m["content"] != strings.Repeat("é", 17) ||
		m["next_line"] != float64(2) || !strings.Contains(text, "line 1 is longer than the budget") {
		t.Errorf("a line over the budget: %v\n%s", m, text)
	}
	// Binary: base64 within the byte budget, no lines.
	bin := make([]byte, 100)
	for i := range bin {
		bin[i] = byte(0x80 + i)
	}
	if err := os.WriteFile(filepath.Join(w.root, "b.bin"), bin, 0o644); err != nil {
		t.Fatal(err)
	}
	m, text, err := callTool(t, a, nil, read, w.args("path", "b.bin"))
	if err != nil || m["encoding"] != "base64" || len(m["content"].(string)) > 40 || m["truncated"] != true || m["hash"] != attrib.Hash(bin) {
		t.Errorf("binary = %v\n%s", m, text)
	}
	if raw, _ := base64.StdEncoding.DecodeString(m["content"].(string)); string(raw) != string(bin[:len(raw)]) || len(raw) != 30 {
		t.Errorf("binary content decodes to %d bytes", len(raw))
	}
	mustFail(t, a, "fs_read", w.args("path", "b.bin", "start_line", 2), OutcomeInvalid, "not UTF-8 text", "has no lines")
}

// toolOf returns the named tool of a toolset.
func toolOf(t *testing.T, set Toolset, name string) *Tool {
	t.Helper()
	for _, tl := range set.Tools {
		if tl.Name() == name {
			return tl
		}
	}
	t.Fatalf("no %s in %s", name, set.Name)
	return nil
}
