package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// pinnedBinding is the FoundationDB Go binding go.mod must name: the commit
// of FoundationDB's 7.3.63 release tag. The binding's own README
// (bindings/go/README.md upstream) gives this pseudo-version for
// `go get github.com/apple/foundationdb/bindings/go@7.3.63`; the module proxy
// serves it by pseudo-version although it refuses the tag and branch names.
const pinnedBinding = "v0.0.0-20250221231555-5140696da2df"

// TestBindingPinnedToRelease73: go.mod pins the binding to the 7.3 release
// commit, whose cgo header selects API version 730 (a 7.3 client library,
// 7.3 servers), and docs/FOUNDATIONDB.md names that exact version.
func TestBindingPinnedToRelease73(t *testing.T) {
	root := moduleRoot(t)
	cmd := exec.Command("go", "list", "-m", "-json", "github.com/apple/foundationdb/bindings/go")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	var m struct{ Version, Dir string }
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if m.Version != pinnedBinding {
		t.Fatalf("go.mod pins the binding at %s, want %s (FoundationDB 7.3.63)", m.Version, pinnedBinding)
	}
	if m.Dir == "" {
		t.Fatalf("the binding %s is not in the module cache", m.Version)
	}
	src, err := os.ReadFile(filepath.Join(m.Dir, "src", "fdb", "fdb.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), "#define FDB_API_VERSION 730") || !strings.Contains(string(src), "headerVersion := 730") {
		t.Errorf("the pinned binding's header does not select API version 730")
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "FOUNDATIONDB.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), pinnedBinding) {
		t.Errorf("docs/FOUNDATIONDB.md does not name the pinned binding %s", pinnedBinding)
	}
}
