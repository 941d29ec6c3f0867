package tools

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/attrib"
)

// TestFsEditMany: several replacements are applied together, each search
// matched against the file as it is before the edits; when one fails —
// missing, ambiguous, overlapping another — none is applied and nothing
// is recorded.
func TestFsEditMany(t *testing.T) {
	e := setup(t)
	a := e.alice
	w := newWorkspace(t, a)
	const src = "package main\n\nfunc status() int {\n\treturn 301\n}\n\nfunc name() string { return \"old\" }\n"
	mustCall(t, a, "fs_write", w.args("path", "main.go", "content", src))
	type ed = map[string]any

	m, text := mustCall(t, a, "fs_edit", w.args("path", "main.go", "edits", []ed{
		{"search": "return 301", "replace": "return 302"},
		{"search": `"old"`, "replace": `"new"`},
		{"search": "package main\n", "replace": "package app\n"},
	}))
	want := "package app\n\nfunc status() int {\n\treturn 302\n}\n\nfunc name() string { return \"new\" }\n"
	if got := w.read(t, "main.go"); got != want || m["edits"] != float64(3) || m["hash"] != attrib.Hash([]byte(want)) || !strings.Contains(text, "Made 3 replacements in main.go") {
		t.Fatalf("after 3 edits: %q\n%v\n%s", got, m, text)
	}
	recs, _ := attrib.Get(context.Background(), a, w.key("main.go"))
	if len(recs) != 2 || recs[0].Hash != attrib.Hash([]byte(want)) {
		t.Errorf("evidence %+v: want one record per call", recs)
	}
	if ev := lastCall(t, a, "fs_edit"); ev.Attrs["edits"] != float64(3) || ev.Attrs["base_hash"] != attrib.Hash([]byte(src)) {
		t.Errorf("tool.called %+v", ev.Attrs)
	}

	for _, c := range []struct {
		name  string
		edits []ed
		wants []string
	}{
		{"the second does not occur", []ed{{"search": "return 302", "replace": "return 303"}, {"search": "missing", "replace": "x"}},
			[]string{"search text of edit 2 does not occur", "nothing was changed"}},
		{"ambiguous", []ed{{"search": "return 302", "replace": "return 303"}, {"search": "func ", "replace": "fn "}},
			[]string{"search text of edit 2 occurs 2 times", "nothing was changed"}},
		{"overlapping", []ed{{"search": "int {\n\treturn 302", "replace": "x"}, {"search": "return 302\n}", "replace": "y"}},
			[]string{"edits 1 and 2 overlap", "line 4", "merge them"}},
		{"the same text twice", []ed{{"search": "return 302", "replace": "a"}, {"search": "return 302", "replace": "b"}},
			[]string{"edits 1 and 2 overlap"}},
		// Each search is matched against the file before the edits: a
		// search for the text an earlier edit writes does not match.
		{"searching an earlier edit's result", []ed{{"search": "return 302", "replace": "return 303"}, {"search": "return 303", "replace": "return 304"}},
			[]string{"search text of edit 2 does not occur"}},
	} {
		before := counts(t, a)
		mustFail(t, a, "fs_edit", w.args("path", "main.go", "edits", c.edits), OutcomeInvalid, c.wants...)
		if got := w.read(t, "main.go"); got != want {
			t.Errorf("%s: the file changed: %q", c.name, got)
		}
		after := counts(t, a)
		if after["lease.acquired"] != before["lease.acquired"] || after["tool.called"] != before["tool.called"]+1 {
			t.Errorf("%s: events %v -> %v", c.name, before, after)
		}
	}
	if recs, _ := attrib.Get(context.Background(), a, w.key("main.go")); len(recs) != 2 {
		t.Errorf("refused edits left evidence: %+v", recs)
	}

	// Adjacent edits are not overlapping; the single form still works.
	mustCall(t, a, "fs_edit", w.args("path", "main.go", "edits", []ed{{"search": "package ", "replace": "package  "}, {"search": "app\n", "replace": "main\n"}}))
	mustCall(t, a, "fs_edit", w.args("path", "main.go", "search", "return 302", "replace", "return 200"))
	if got := w.read(t, "main.go"); !strings.HasPrefix(got, "package  main\n") || !strings.Contains(got, "return 200") {
		t.Errorf("after adjacent and single edits: %q", got)
	}
	// replace "" deletes the search text, in both forms.
	mustCall(t, a, "fs_edit", w.args("path", "main.go", "edits", []ed{{"search": "\n\nfunc name() string { return \"new\" }", "replace": ""}}))
	if got := w.read(t, "main.go"); strings.Contains(got, "func name") {
		t.Errorf("after a deleting edit: %q", got)
	}
}

// TestFsEditForms: fs_edit takes search and replace or edits, never both
// and never neither; every replacement needs both fields. Nothing is
// written on a refusal.
func TestFsEditForms(t *testing.T) {
	e := setup(t)
	a := e.alice
	w := newWorkspace(t, a)
	if err := os.WriteFile(filepath.Join(w.root, "a.txt"), []byte("alpha beta\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args  string
		wants []string
	}{
		{w.args("path", "a.txt"), []string{`"search" and "replace" are required`, `"edits"`}},
		{w.args("path", "a.txt", "edits", []any{}), []string{`"search" and "replace" are required`}},
		{w.args("path", "a.txt", "search", "alpha", "replace", "A", "edits", []any{map[string]any{"search": "beta", "replace": "B"}}), []string{"not both"}},
		{w.args("path", "a.txt", "edits", []any{map[string]any{"search": "beta", "replace": "beta"}}), []string{`"replace" of edit 1 equals "search" of edit 1`}},
		{w.args("path", "a.txt", "edits", []any{map[string]any{"search": "beta", "replace": "B"}, map[string]any{"search": "", "replace": "A"}}), []string{`"search" of edit 2 is required`}},
		{w.args("path", "a.txt", "edits", manyEdits(maxEdits+1)), []string{"the limit is 50"}},
	} {
		mustFail(t, a, "fs_edit", c.args, OutcomeInvalid, c.wants...)
	}
	if got := w.read(t, "a.txt"); got != "alpha beta\n" {
		t.Errorf("a.txt = %q", got)
	}
	if c := counts(t, a); c["lease.acquired"] != 0 {
		t.Errorf("a refused edit took a lease: %v", c)
	}
}

// manyEdits returns n replacements of distinct, absent texts.
func manyEdits(n int) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = map[string]any{"search": strings.Repeat("z", i+1), "replace": "y"}
	}
	return out
}
