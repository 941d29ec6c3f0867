// Package archtest holds the tests that keep the architecture honest:
// imports point down only, the transports never import each other, and
// nothing above the storage layers can address a tenant's keys except
// through a tenant.Scope obtained from a principal.
package archtest

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/coditect/coditect/"

// root is the repository root, two levels up from this package.
func root(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(wd))
}

// imports returns, for every Go file under dir (tests included), the
// module-internal packages it imports and the selector calls it makes.
type file struct {
	path    string
	imports []string
	calls   []string // "pkg.Func"
}

func parseTree(t *testing.T, dir string) []file {
	t.Helper()
	var out []file
	fset := token.NewFileSet()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return filepath.SkipDir
			}
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		var fi file
		fi.path = path
		names := map[string]string{} // local name -> import path
		for _, im := range f.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			fi.imports = append(fi.imports, p)
			name := filepath.Base(p)
			if im.Name != nil {
				name = im.Name.Name
			}
			names[name] = p
		}
		for _, c := range selectorCalls(f) {
			if p, ok := names[c[0]]; ok {
				fi.calls = append(fi.calls, p+"."+c[1])
			}
		}
		out = append(out, fi)
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

// The transports and the watcher reach tenant data only through
// tenant.Scope: they may not build tenant keys or open a tenant's log by id.
func TestTransportsUseScopes(t *testing.T) {
	r := root(t)
	forbiddenImports := []string{module + "storage/keyspace", module + "storage/kv/sqlite", module + "storage/kv/fdb"}
	forbiddenCalls := []string{module + "storage/audit.NewLog"}
	for _, dir := range []string{"server", "tools", "ide", "webview", "watch"} {
		for _, f := range parseTree(t, filepath.Join(r, dir)) {
			if strings.HasSuffix(f.path, "_test.go") {
				continue
			}
			for _, im := range f.imports {
				for _, bad := range forbiddenImports {
					if im == bad {
						t.Errorf("%s imports %s: transports reach tenant data through tenant.Scope and storage.Open only", rel(r, f.path), im)
					}
				}
			}
			for _, c := range f.calls {
				for _, bad := range forbiddenCalls {
					if c == bad {
						t.Errorf("%s calls %s: a tenant's log comes from its Scope", rel(r, f.path), c)
					}
				}
			}
		}
	}
}

// Imports point down: tools, ide and webview never import each other, and
// neither tools nor webview imports watch (what tools and watch share lives
// below them, as internal/gitignore does); the storage layers import
// nothing above them.
func TestImportsPointDown(t *testing.T) {
	r := root(t)
	rules := map[string][]string{
		"tools":   {"ide", "webview", "watch", "server", "cmd"},
		"ide":     {"tools", "webview", "server", "cmd"},
		"webview": {"tools", "ide", "watch", "server", "cmd"},
		"watch":   {"tools", "ide", "webview", "server", "cmd"},
		// Rules shared by the watcher and the files tools, and the diffs
		// of agents' changes the files tools record: leaves.
		"internal/gitignore": {"tools", "ide", "webview", "watch", "server", "cmd", "storage"},
		"internal/filediff":  {"tools", "ide", "webview", "watch", "server", "cmd", "storage"},
		"storage":            {"tools", "ide", "webview", "server", "cmd", "watch"},
		"server":             {"cmd"},

		// The disk step of the files tools' and reviews' changes: a leaf.
		"internal/atomicwrite": {"tools", "ide", "webview", "watch", "server", "cmd", "storage"},
		// How text is shortened for messages and records: a leaf.
		"internal/textclip": {"tools", "ide", "webview", "watch", "server", "cmd", "storage"},
	}
	for dir, banned := range rules {
		for _, f := range parseTree(t, filepath.Join(r, dir)) {
			for _, im := range f.imports {
				for _, b := range banned {
					if im == module+b || strings.HasPrefix(im, module+b+"/") {
						t.Errorf("%s imports %s: %s must not import %s", rel(r, f.path), im, dir, b)
					}
				}
			}
		}
	}
}

func rel(root, p string) string {
	r, err := filepath.Rel(root, p)
	if err != nil {
		return p
	}
	return r
}
