package watch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestIgnoreConfig: the watcher's configuration reaches the rules (package
// gitignore proves the rules themselves against git check-ignore): the
// user's patterns outrank the repository's .gitignore, the defaults apply
// unless turned off and rank below it, and the extra paths (the store, the
// events file) are ignored with everything below them.
func TestIgnoreConfig(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, ".gitignore"), []byte("*.gen\n!keep.tmp\n!dist/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	extra := []string{filepath.Join(root, "events.jsonl"), filepath.Join(root, "store")}
	tests := []struct {
		path            string
		isDir           bool
		want, noDefault bool
	}{
		{"keep.tmp", false, true, true},      // the user's *.tmp outranks the repository's !keep.tmp
		{"special.gen", false, false, false}, // the user's negation outranks *.gen
		{"other.gen", false, true, true},
		{"node_modules/x.js", false, true, false}, // a default
		{"dist/app.js", false, false, false},      // a default the repository re-includes
		{"a.go~", false, true, false},
		{"events.jsonl", false, true, true},
		{"store/coditect.db", false, true, true},
		{"sub/events.jsonl", false, false, false},
		{".git/config", false, true, true},
		{"main.go", false, false, false},
	}
	for _, defaults := range []bool{true, false} {
		rules, err := newIgnoreRules(root, []string{"*.tmp", "!special.gen"}, defaults, extra)
		if err != nil {
			t.Fatal(err)
		}
		rules.LoadDir("")
		for _, tt := range tests {
			want := tt.want
			if !defaults {
				want = tt.noDefault
			}
			if got := rules.Ignored(tt.path, tt.isDir); got != want {
				t.Errorf("defaults=%v: Ignored(%q) = %v, want %v", defaults, tt.path, got, want)
			}
		}
	}
	if _, err := newIgnoreRules(root, []string{"/"}, true, nil); err == nil || !strings.HasPrefix(err.Error(), "watch: ") {
		t.Errorf("a user pattern that matches nothing: %v", err)
	}
}
