package watch

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/audit"
)

// TestDetect: the local file system is watched with inotify, and the file
// systems that need polling are known.
func TestDetect(t *testing.T) {
	kind, desc := fsKind(t.TempDir())
	t.Logf("temporary directory: %s (%s)", kind, desc)
	if kind == "remote" {
		t.Skipf("the temporary directory is on a remote file system (%s)", desc)
	}
	h := startWatch(t, "", Config{})
	if ws := h.w.Workspaces()[0]; ws.Mode != ModeNotify {
		t.Errorf("workspace %+v, want notify", ws)
	}
	for _, want := range []string{"9p", "FUSE", "NFS", "SMB", "CIFS"} {
		found := false
		for _, d := range remoteMagic {
			found = found || strings.Contains(d, want)
		}
		if !found {
			t.Errorf("%s is not among the polled file systems", want)
		}
	}
}

// TestAttributionProcess: with exactly one known AI tool working in the
// workspace, the change is the tool's; with two, nobody's.
func TestAttributionProcess(t *testing.T) {
	root := t.TempDir()
	bin := t.TempDir()
	start := func(name string) *exec.Cmd {
		t.Helper()
		exe := filepath.Join(bin, name)
		copyFile(t, "/bin/sleep", exe)
		cmd := exec.Command(exe, "60")
		cmd.Dir = root
		must(t, cmd.Start())
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	aider := start("aider")
	h := startWatch(t, root, Config{})
	h.write("x.py", "print(1)\n")
	c := h.expect("file.created x.py")[0]
	wantAttribution(t, c, audit.ActorAgent, "aider", FromProcess)
	if !strings.Contains(c.Attribution.Evidence, "Aider") || c.Attribution.Confidence != confProcess {
		t.Errorf("evidence %+v", c.Attribution)
	}
	h.stop()

	// A second tool in the same workspace: ambiguous.
	start("goose")
	h = startWatch(t, root, Config{})
	h.write("y.py", "print(2)\n")
	wantAttribution(t, h.expect("file.created y.py")[0], audit.ActorUnknown, "", FromNothing)
	h.stop()
	_ = aider
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Skipf("no %s to run as a fake AI tool: %v", from, err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	must(t, err)
	_, err = io.Copy(out, in)
	must(t, err)
	must(t, out.Close())
}
