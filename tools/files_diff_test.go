package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/audit"
)

// TestChangesRecordTheirDiff: every change of a file through the files
// tools records in its tool.called event the unified diff of what it
// did: a new file all added, a replaced or edited file its changed lines
// with context, a deleted file all removed, with the line counts; a move
// changes no content and records none.
func TestChangesRecordTheirDiff(t *testing.T) {
	e := setup(t)
	a := e.alice
	w := newWorkspace(t, a)
	type want struct {
		diff         []string
		added, remov int
	}
	check := func(tool string, wt want) {
		t.Helper()
		ev := lastCall(t, a, tool)
		d, _ := ev.Attrs["diff"].(string)
		for _, s := range wt.diff {
			if !strings.Contains(d, s) {
				t.Errorf("%s: diff lacks %q:\n%s", tool, s, d)
			}
		}
		if ev.Attrs["diff_added"] != float64(wt.added) || ev.Attrs["diff_removed"] != float64(wt.remov) {
			t.Errorf("%s: added %v removed %v, want %d and %d", tool, ev.Attrs["diff_added"], ev.Attrs["diff_removed"], wt.added, wt.remov)
		}
	}

	mustCall(t, a, "fs_write", w.args("path", "src/a.go", "content", "package a\n\nfunc A() {}\n"))
	check("fs_write", want{[]string{"--- /dev/null\n+++ b/src/a.go\n@@ -0,0 +1,3 @@\n+package a\n+\n+func A() {}\n"}, 3, 0})

	mustCall(t, a, "fs_write", w.args("path", "src/a.go", "content", "package a\n\nfunc B() {}\n"))
	check("fs_write", want{[]string{"--- a/src/a.go\n+++ b/src/a.go\n", " package a\n \n-func A() {}\n+func B() {}\n"}, 1, 1})

	mustCall(t, a, "fs_edit", w.args("path", "src/a.go", "search", "package a\n", "replace", "// Package a.\npackage a\n"))
	check("fs_edit", want{[]string{"@@ -1,3 +1,4 @@\n+// Package a.\n package a\n"}, 1, 0})

	mustCall(t, a, "fs_move", w.args("path", "src/a.go", "to", "src/b.go"))
	if ev := lastCall(t, a, "fs_move"); ev.Attrs["diff"] != nil {
		t.Errorf("fs_move recorded a diff: %v", ev.Attrs["diff"])
	}

	mustCall(t, a, "fs_delete", w.args("path", "src/b.go"))
	check("fs_delete", want{[]string{"--- a/src/b.go\n+++ /dev/null\n@@ -1,4 +0,0 @@\n-// Package a.\n-package a\n"}, 0, 4})

	// Writing the same content again changes nothing and records no diff.
	mustCall(t, a, "fs_write", w.args("path", "same.txt", "content", "x\n"))
	mustCall(t, a, "fs_write", w.args("path", "same.txt", "content", "x\n"))
	if ev := lastCall(t, a, "fs_write"); ev.Attrs["diff"] != nil {
		t.Errorf("an unchanged file recorded a diff: %v", ev.Attrs["diff"])
	}
}

// TestDiffOfBinaryIsSummarised: content that is not text is told by its
// sizes, before and after.
func TestDiffOfBinaryIsSummarised(t *testing.T) {
	e := setup(t)
	a := e.alice
	w := newWorkspace(t, a)
	if err := os.WriteFile(filepath.Join(w.root, "logo.png"), []byte{0x89, 'P', 'N', 'G', 0, 1}, 0o644); err != nil {
		t.Fatal(err)
	}
	mustCall(t, a, "fs_write", w.args("path", "logo.png", "content", "now text\n"))
	ev := lastCall(t, a, "fs_write")
	if ev.Attrs["diff"] != "binary, 6 bytes → 9 bytes" || ev.Attrs["diff_binary"] != true || ev.Attrs["diff_added"] != nil {
		t.Errorf("write over a binary file: %v", ev.Attrs)
	}
	mustCall(t, a, "fs_write", w.args("path", "nul.bin", "content", "a\u0000b"))
	if ev := lastCall(t, a, "fs_write"); ev.Attrs["diff"] != "binary, none → 3 bytes" {
		t.Errorf("new file with a NUL: %v", ev.Attrs["diff"])
	}
	mustCall(t, a, "fs_delete", w.args("path", "nul.bin"))
	if ev := lastCall(t, a, "fs_delete"); ev.Attrs["diff"] != "binary, 3 bytes → none" {
		t.Errorf("deleted binary file: %v", ev.Attrs["diff"])
	}
}

// TestDiffIsBounded: the diff of a large change is cut, says how many
// lines it left out, and keeps the event within the audit log's limits
// even when its text is all characters JSON escapes; token-looking text
// in it is redacted as in the arguments.
func TestDiffIsBounded(t *testing.T) {
	e := setup(t)
	a := e.alice
	w := newWorkspace(t, a)
	var b strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&b, "<&>\"\\ %d\n", i)
	}
	mustCall(t, a, "fs_write", w.args("path", "big.txt", "content", b.String()))
	ev := lastCall(t, a, "fs_write")
	d, _ := ev.Attrs["diff"].(string)
	if !strings.Contains(d, "+<&>\"\\ 0\n") || !strings.HasSuffix(d, " more lines\n") || ev.Attrs["diff_added"] != float64(5000) {
		t.Errorf("diff of 5,000 new lines: added %v, %d bytes ending %q", ev.Attrs["diff_added"], len(d), d[max(0, len(d)-60):])
	}
	enc, _ := json.Marshal(ev.Attrs)
	if len(enc) > audit.MaxAttrs/2+4<<10 {
		t.Errorf("attrs of %d bytes: the diff's bound should keep them near %d", len(enc), audit.MaxAttrs/2)
	}
	t.Logf("attrs of a cut diff: %d bytes (audit.MaxAttrs %d)", len(enc), audit.MaxAttrs)

	secret := "cdt_" + strings.Repeat("s3cr3t", 4)
	mustCall(t, a, "fs_write", w.args("path", "conf.env", "content", "TOKEN="+secret+"\n"))
	if d, _ := lastCall(t, a, "fs_write").Attrs["diff"].(string); strings.Contains(d, secret) || !strings.Contains(d, "+TOKEN=[redacted]") {
		t.Errorf("a token in a diff: %q", d)
	}
}

// BenchmarkFsEdit1000Lines is fs_edit of one line of a 1,000-line file
// through the production middleware, diff included; compare it with
// internal/filediff's BenchmarkEdit1000Lines, the diff alone.
func BenchmarkFsEdit1000Lines(b *testing.B) {
	bf := newBenchFiles(b)
	var src strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&src, "\tline %d of the file\n", i)
	}
	write := findToolB(b, "fs_write")
	ctx := context.Background()
	if _, err := write.Handler(ctx, bf.call(write, `{"session_id":"`+bf.sid+`","path":"src/big.go","content":`+strconv.Quote(src.String())+`}`)); err != nil {
		b.Fatal(err)
	}
	tool := findToolB(b, "fs_edit")
	h := Chain(Heartbeat(time.Second, nil), Audit(nil, nil))(tool.Handler)
	flip := [2]string{`"search":"line 500 of","replace":"LINE 500 of"`, `"search":"LINE 500 of","replace":"line 500 of"`}
	i := 0
	for b.Loop() {
		if _, err := h(ctx, bf.call(tool, `{"session_id":"`+bf.sid+`","path":"src/big.go",`+flip[i%2]+`}`)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// TestDiffOfUnreadableOld: when the old content is over the read limit,
// the write says it was not diffed instead of passing it off as new.
func TestDiffOfUnreadableOld(t *testing.T) {
	e := setup(t)
	a := e.alice
	w := newWorkspace(t, a)
	if err := os.WriteFile(filepath.Join(w.root, "big.txt"), []byte(strings.Repeat("b\n", 50)), 0o644); err != nil {
		t.Fatal(err)
	}
	var write *Tool
	for _, tl := range Files(Config{MaxFileRead: 64}).Tools {
		if tl.Name() == "fs_write" {
			write = tl
		}
	}
	if _, text, err := callTool(t, a, nil, write, w.args("path", "big.txt", "content", "small\n")); err != nil {
		t.Fatal(text)
	}
	if d, _ := lastCall(t, a, "fs_write").Attrs["diff"].(string); !strings.HasPrefix(d, "not diffed") {
		t.Errorf("diff over an unreadable old content: %q", d)
	}
}
