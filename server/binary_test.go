package server_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/coditect/coditect/internal/testbin"
)

// Binaries are built once per test run into binDir.
var (
	binDir   string
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
	testbin.Cleanup()
	os.Exit(code)
}

// coditectBinary is ./cmd/coditect, built once per run.
func coditectBinary(t testing.TB) string {
	t.Helper()
	return testbin.Coditect(t)
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
