package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// moduleRoot is the module this test checks: the real tree, read through an
// overlay where a case changes a file.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	// go test caches a passing result until a file the test opened changes,
	// and the checker's go list subprocesses read files it does not see.
	// Listing every directory of the module makes an added or removed file
	// anywhere count as a change.
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// checkWith runs the checker on the module with files replaced or added
// (module-relative path -> content) and returns its exit code and output.
func checkWith(t *testing.T, root string, files map[string]string) (code int, stdout, stderr string) {
	t.Helper()
	args := []string{"-C", root}
	if len(files) > 0 {
		dir := t.TempDir()
		replace := make(map[string]string)
		for rel, content := range files {
			tmp := filepath.Join(dir, strings.ReplaceAll(rel, "/", "_"))
			if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			replace[filepath.Join(root, filepath.FromSlash(rel))] = tmp
		}
		data, err := json.Marshal(map[string]any{"Replace": replace})
		if err != nil {
			t.Fatal(err)
		}
		overlay := filepath.Join(dir, "overlay.json")
		if err := os.WriteFile(overlay, data, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-overlay", overlay)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code = run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestModuleTypeChecks runs the check the Makefile runs.
func TestModuleTypeChecks(t *testing.T) {
	code, stdout, stderr := checkWith(t, moduleRoot(t), nil)
	if code != 0 {
		t.Fatalf("fdbcheck exited %d on the module as it is:\n%s%s", code, stdout, stderr)
	}
	if lines := strings.Split(strings.TrimSpace(stdout), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "fdbcheck: ok: ") {
		t.Errorf("success should print one summary line, got %q", stdout)
	}
}

// misspeltBindingCall returns a copy of the backend's tx.go with its first
// call of a method of the binding's Transaction misspelt, the method's
// name, and the line of the call.
func misspeltBindingCall(t *testing.T, root string) (src, method string, line int) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "storage", "kv", "fdb", "tx.go"))
	if err != nil {
		t.Fatal(err)
	}
	loc := regexp.MustCompile(`\bt\.tr\.([A-Z]\w*)\(`).FindSubmatchIndex(data)
	if loc == nil {
		t.Fatal("storage/kv/fdb/tx.go no longer calls a method of the binding's Transaction as t.tr.Method(: update this test")
	}
	method = string(data[loc[2]:loc[3]])
	line = bytes.Count(data[:loc[0]], []byte("\n")) + 1
	src = string(data[:loc[3]]) + "x" + string(data[loc[3]:])
	return src, method, line
}

func TestErrorsFail(t *testing.T) {
	root := moduleRoot(t)
	txSrc, method, txLine := misspeltBindingCall(t, root)

	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string // in stderr
	}{
		{
			name:  "misspelt binding call in the backend",
			files: map[string]string{"storage/kv/fdb/tx.go": txSrc},
			want: []string{
				fmt.Sprintf("storage/kv/fdb/tx.go:%d:", txLine),
				fmt.Sprintf("t.tr.%sx undefined", method),
				fmt.Sprintf("has no field or method %sx", method),
			},
		},
		{
			name: "wrong argument type to a binding call",
			files: map[string]string{"storage/kv/fdb/zz_fdbcheck.go": `//go:build fdb

package fdb

import fdbapi "github.com/apple/foundationdb/bindings/go/src/fdb"

func addOne(tr fdbapi.Transaction) {
	tr.Add(fdbapi.Key("counter"), int64(1))
}
`},
			want: []string{"storage/kv/fdb/zz_fdbcheck.go:8:32: cannot use int64(1)", "as []byte value in argument to tr.Add"},
		},
		{
			name: "misspelt call in an fdb-tagged test file",
			files: map[string]string{"storage/kv/fdb/zz_fdbcheck_test.go": `//go:build fdb

package fdb_test

import (
	"context"
	"net/url"

	"github.com/coditect/coditect/storage/kv/fdb"
)

func openTwice(u *url.URL) { fdb.OpenURLL(context.Background(), u) }
`},
			want: []string{"storage/kv/fdb/zz_fdbcheck_test.go:12:34: undefined: fdb.OpenURLL"},
		},
		{
			name: "misspelt call to the binding's tuple layer in another package's test",
			files: map[string]string{"storage/tuple/zz_fdbcheck_test.go": `//go:build fdb

package tuple_test

import fdbtuple "github.com/apple/foundationdb/bindings/go/src/fdb/tuple"

var packed = fdbtuple.Tuple{"a"}.Packk()
`},
			want: []string{"storage/tuple/zz_fdbcheck_test.go:7:34: fdbtuple.Tuple{…}.Packk undefined"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := checkWith(t, root, tc.files)
			if code != 1 {
				t.Errorf("fdbcheck exited %d, want 1", code)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q", w)
				}
			}
			if !strings.Contains(stderr, "fdbcheck: FAIL: ") || stdout != "" {
				t.Errorf("a failed check should end with a FAIL line on stderr and print nothing on stdout")
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
			}
		})
	}
}

// TestUsage checks that a bad command line is told apart from a failed
// check.
func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"-nosuchflag"}, &out, &errOut); code != 2 {
		t.Errorf("exit %d for an unknown flag, want 2", code)
	}
}
