package filediff_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coditect/coditect/internal/filediff"
)

// numbered returns n lines "line 1\n" … with the lines in change replaced.
func numbered(n int, change map[int]string) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		if s, ok := change[i]; ok {
			b.WriteString(s)
			continue
		}
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.String()
}

// TestPatchAppliesTheDiff: the text is a standard unified diff: GNU
// patch turns the old file into the new one with it, for edits, a new
// file, a deletion and a file without a final newline.
func TestPatchAppliesTheDiff(t *testing.T) {
	if _, err := exec.LookPath("patch"); err != nil {
		t.Skip("no patch(1) here")
	}
	cases := []struct {
		name     string
		old, new *string
	}{
		{"edit", ptr(numbered(40, nil)), ptr(numbered(40, map[int]string{2: "two\n", 20: "", 21: "x\ny\n", 39: "last-but-one\n"}))},
		{"create", nil, ptr("a\nb\n")},
		{"delete", ptr("a\nb\n"), nil},
		{"no final newline", ptr("a\nb"), ptr("a\nc")},
		{"append", ptr("a\n"), ptr("a\nb\nc\n")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f := filepath.Join(dir, "f.txt")
			if tc.old != nil {
				if err := os.WriteFile(f, []byte(*tc.old), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			d := filediff.Of("f.txt", bytesOf(tc.old), bytesOf(tc.new), 16<<10)
			if d.Text == "" || d.Cut != 0 || d.Binary {
				t.Fatalf("diff %+v", d)
			}
			cmd := exec.Command("patch", "-p1", "-s", "-E", "--no-backup-if-mismatch")
			cmd.Dir, cmd.Stdin = dir, strings.NewReader(d.Text)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("patch: %v\n%s\ndiff:\n%s", err, out, d.Text)
			}
			got, err := os.ReadFile(f)
			switch {
			case tc.new == nil && !os.IsNotExist(err):
				t.Errorf("deleted file still there (%v)", err)
			case tc.new != nil && string(got) != *tc.new:
				t.Errorf("patched file %q, want %q\ndiff:\n%s", got, *tc.new, d.Text)
			}
		})
	}
}

// TestCounts: added and removed lines count the whole change.
func TestCounts(t *testing.T) {
	d := filediff.Of("f", []byte(numbered(10, nil)), []byte(numbered(10, map[int]string{3: "3a\n3b\n", 7: ""})), 16<<10)
	if d.Added != 2 || d.Removed != 2 {
		t.Errorf("added %d removed %d, want 2 and 2\n%s", d.Added, d.Removed, d.Text)
	}
	if d := filediff.Of("f", []byte("same\n"), []byte("same\n"), 100); d.Text != "" {
		t.Errorf("no change gave %q", d.Text)
	}
}

// TestCut: a diff past the limit is cut at a line, says how many lines
// it left out, and its JSON encoding stays within the limit, however
// much escaping its text needs.
func TestCut(t *testing.T) {
	const limit = 4 << 10
	for _, fill := range []string{"plain text", `<&>"\` + "\x01\t"} {
		big := strings.Repeat(fill+"\n", 5000)
		d := filediff.Of("f", nil, []byte(big), limit)
		if d.Cut == 0 || !strings.HasSuffix(d.Text, fmt.Sprintf("… %d more lines\n", d.Cut)) {
			t.Fatalf("fill %q: cut %d, tail %q", fill, d.Cut, d.Text[max(0, len(d.Text)-40):])
		}
		if d.Added != 5000 {
			t.Errorf("added %d, want 5000", d.Added)
		}
		shown := strings.Count(d.Text, "\n") - 1 // less the "more lines" line
		if shown+d.Cut != 5000+3 {               // two headers and a hunk header
			t.Errorf("shown %d + cut %d lines, want %d", shown, d.Cut, 5003)
		}
		enc, _ := json.Marshal(strings.TrimSuffix(d.Text, fmt.Sprintf("… %d more lines\n", d.Cut)))
		if len(enc)-2 > limit {
			t.Errorf("fill %q: encoded %d bytes, limit %d", fill, len(enc)-2, limit)
		}
	}
}

// TestBinary: content that is not UTF-8 or holds a NUL is summarised.
func TestBinary(t *testing.T) {
	for _, tc := range []struct {
		old, new []byte
		want     string
	}{
		{[]byte("text\n"), []byte{0x89, 'P', 'N', 'G', 0}, "binary, 5 bytes → 5 bytes"},
		{nil, []byte{0xff, 0xfe}, "binary, none → 2 bytes"},
		{[]byte("a\x00b"), nil, "binary, 3 bytes → none"},
	} {
		d := filediff.Of("f", tc.old, tc.new, 16<<10)
		if !d.Binary || d.Text != tc.want || d.Added+d.Removed != 0 {
			t.Errorf("%q → %q: %+v, want %q", tc.old, tc.new, d, tc.want)
		}
	}
}

func ptr(s string) *string { return &s }

func bytesOf(s *string) []byte {
	if s == nil {
		return nil
	}
	return []byte(*s)
}

// BenchmarkEdit1000Lines: the diff of a 1,000-line file with three lines
// changed, as fs_edit records it.
func BenchmarkEdit1000Lines(b *testing.B) {
	old := []byte(numbered(1000, nil))
	new := []byte(numbered(1000, map[int]string{10: "ten\n", 500: "five hundred\n", 990: "x\ny\n"}))
	b.SetBytes(int64(len(old)))
	for b.Loop() {
		filediff.Of("f.go", old, new, 16<<10)
	}
}

// BenchmarkRewrite1000Lines: every line of a 1,000-line file changed
// (fs_write of new content), which the limit cuts.
func BenchmarkRewrite1000Lines(b *testing.B) {
	old := []byte(numbered(1000, nil))
	new := []byte(strings.ReplaceAll(string(old), "line", "LINE"))
	b.SetBytes(int64(len(old)))
	for b.Loop() {
		filediff.Of("f.go", old, new, 16<<10)
	}
}
