package server_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Binaries are built once per test run into binDir.
var (
	binDir   string
	binOnce  sync.Once
	binPath  string
	binErr   error
	bareOnce sync.Once
	barePath string
	bareErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "coditect-server-test-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// coditectBinary builds ./cmd/coditect once per run.
func coditectBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		root, err := filepath.Abs("..")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(binDir, "coditect")
		args := []string{"build", "-o", binPath}
		cmd := exec.Command("go", append(args, "./cmd/coditect")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = &buildError{err: err, out: string(out)}
		}
	})
	if binErr != nil {
		t.Fatalf("building coditect: %v", binErr)
	}
	return binPath
}

// bareBinary builds the bare mcp-go server of the benchmarks once per run.
func bareBinary(t testing.TB) string {
	t.Helper()
	bareOnce.Do(func() {
		barePath = filepath.Join(binDir, "baremcp")
		cmd := exec.Command("go", "build", "-o", barePath, "./internal/baremcp")
		if out, err := cmd.CombinedOutput(); err != nil {
			bareErr = &buildError{err: err, out: string(out)}
		}
	})
	if bareErr != nil {
		t.Fatalf("building baremcp: %v", bareErr)
	}
	return barePath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }
