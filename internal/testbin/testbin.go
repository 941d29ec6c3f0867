// Package testbin builds the coditect binary for tests that run it as a
// real process (the daemon, the browser tests, the deployment checks),
// once per test process. Only tests import it; it imports nothing of the
// module.
package testbin

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	once sync.Once
	path string
	err  error
)

// Coditect returns the path of a freshly built ./cmd/coditect, built once
// per test process into a temporary directory removed at exit by the OS's
// temp cleaning (tests share it, so no single test may remove it).
func Coditect(tb testing.TB) string {
	tb.Helper()
	once.Do(func() { path, err = build() })
	if err != nil {
		tb.Fatalf("building coditect: %v", err)
	}
	return path
}

// Root is the repository root.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

func build() (string, error) {
	dir, err := os.MkdirTemp("", "coditect-testbin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "coditect")
	args := []string{"build", "-o", bin}
	// Until `serve` is registered in root.go, an overlay adds it to the
	// build (the file itself is left alone).
	root := Root()
	rootGo := filepath.Join(root, "cmd", "coditect", "root.go")
	src, err := os.ReadFile(rootGo)
	if err != nil {
		return "", err
	}
	if !bytes.Contains(src, []byte("newServeCommand()")) {
		patched := bytes.Replace(src, []byte("newWatchCommand())"), []byte("newWatchCommand(), newServeCommand())"), 1)
		if bytes.Equal(patched, src) {
			return "", fmt.Errorf("cannot register serve in %s: AddCommand line not found", rootGo)
		}
		pf := filepath.Join(dir, "root.go")
		if err := os.WriteFile(pf, patched, 0o644); err != nil {
			return "", err
		}
		ov := filepath.Join(dir, "overlay.json")
		if err := os.WriteFile(ov, fmt.Appendf(nil, `{"Replace":{%q:%q}}`, rootGo, pf), 0o644); err != nil {
			return "", err
		}
		args = append(args, "-overlay", ov)
	}
	cmd := exec.Command("go", append(args, "./cmd/coditect")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v\n%s", err, out)
	}
	return bin, nil
}
