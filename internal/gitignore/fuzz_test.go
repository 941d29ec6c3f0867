package gitignore

import (
	"strings"
	"testing"
)

// FuzzIgnorePattern: any .gitignore line parses or is skipped, and matching
// any path against it neither panics nor disagrees with itself.
func FuzzIgnorePattern(f *testing.F) {
	for _, s := range []string{"*.go", "!keep/**/", "/build", "a/**/b", "\\#x", "[!a-z]?", "x**y", "**", "[", "\\", "foo/ ", "a[]b"} {
		f.Add(s, "a/b/c.go", false)
	}
	f.Fuzz(func(t *testing.T, line, path string, isDir bool) {
		p, ok := parseLine(line, "")
		if !ok {
			return
		}
		path = strings.Trim(path, "/")
		first := p.match(path, isDir)
		if p.match(path, isDir) != first {
			t.Fatalf("pattern %q on %q gives different answers", line, path)
		}
	})
}
