// Package testbin builds the coditect binary for tests that run it as a
// real process (the daemon, the browser tests, the deployment checks),
// once per test process. Only tests import it; it imports nothing of the
// module.
package testbin

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	once sync.Once
	dir  string
	path string
	err  error
)

// Coditect returns the path of a freshly built ./cmd/coditect, built once
// per test process into a temporary directory that Main removes when the
// tests end (tests share it, so no single test may remove it).
//
// Unless the test process's environment already sets CODITECT_CORE, the
// first call sets it to "off", so the binaries tests start serve their
// stores themselves: a local core started by `coditect mcp --core auto`
// outlives its clients by its idle grace and would still hold files in a
// test's t.TempDir when the test removes it. Tests of the local core pass
// --core auto (a flag beats the variable) or set CODITECT_CORE= in the
// child's environment.
func Coditect(tb testing.TB) string {
	tb.Helper()
	once.Do(func() {
		if _, ok := os.LookupEnv("CODITECT_CORE"); !ok {
			os.Setenv("CODITECT_CORE", "off")
		}
		path, err = build()
	})
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
	var err error
	dir, err = os.MkdirTemp("", "coditect-testbin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "coditect")
	args := []string{"build", "-o", bin}
	root := Root()
	cmd := exec.Command("go", append(args, "./cmd/coditect")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v\n%s", err, out)
	}
	return bin, nil
}

// Main runs the tests of a package that uses Coditect and removes the
// built binary afterwards. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// Cleanup removes the built binary; for a TestMain that does more than
// Main.
func Cleanup() {
	if dir != "" {
		os.RemoveAll(dir)
	}
}

// StartPiped starts cmd with pipes to its stdin and from its stdout (set
// cmd.Stderr first).
func StartPiped(tb testing.TB, cmd *exec.Cmd) (io.WriteCloser, io.ReadCloser) {
	tb.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	return stdin, stdout
}
