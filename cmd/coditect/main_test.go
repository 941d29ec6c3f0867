package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coditect/coditect/internal/testbin"
)

func TestMain(m *testing.M) { testbin.Main(m) }

// binary is the coditect binary, built once per test process.
func binary(t *testing.T) string {
	t.Helper()
	return testbin.Coditect(t)
}

func run(t *testing.T, bin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func TestCLI(t *testing.T) {
	bin := binary(t)
	data := t.TempDir()
	env := []string{"XDG_DATA_HOME=" + data, "CODITECT_STORE="}

	out, errOut, code := run(t, bin, env, "version")
	if code != 0 || !strings.HasPrefix(out, "coditect ") || errOut != "" {
		t.Fatalf("version: code %d, stdout %q, stderr %q", code, out, errOut)
	}

	out, errOut, code = run(t, bin, env, "store", "status")
	wantPath := filepath.Join(data, "coditect", "coditect.db")
	if code != 0 || !strings.Contains(out, "sqlite://"+wantPath) || !strings.Contains(out, "health:  ok") {
		t.Fatalf("store status: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, err := os.Stat(wantPath); err != nil {
		t.Fatalf("the default store was not created under XDG_DATA_HOME: %v", err)
	}

	other := filepath.Join(t.TempDir(), "other.db")
	out, _, code = run(t, bin, []string{"CODITECT_STORE=" + other}, "store", "status")
	if code != 0 || !strings.Contains(out, other) {
		t.Fatalf("CODITECT_STORE ignored: code %d, %q", code, out)
	}

	cases := []struct {
		args []string
		want string
	}{
		{[]string{"store", "status", "--store", "mysql://x"}, "unknown scheme"},
		{[]string{"store", "status", "--store", "fdb:///etc/fdb.cluster"}, "-tags fdb"},
		{[]string{"no-such-command"}, "unknown command"},
		{[]string{"version", "extra"}, "unknown command"},
	}
	for _, c := range cases {
		out, errOut, code := run(t, bin, env, c.args...)
		if code == 0 || !strings.Contains(errOut, c.want) || out != "" {
			t.Errorf("%v: code %d, stdout %q, stderr %q; want a failure saying %q and nothing on stdout", c.args, code, out, errOut, c.want)
		}
	}
}
