package watch

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestWatchedDirFaults: a watched directory is deleted, replaced by a
// file, and comes back; each is reported and the rest of the workspace
// stays watched throughout.
func TestWatchedDirFaults(t *testing.T) {
	for _, mode := range []Mode{ModeNotify, ModePoll} {
		t.Run(string(mode), func(t *testing.T) {
			root := t.TempDir()
			must(t, os.MkdirAll(root+"/sub/deep", 0o755))
			must(t, os.MkdirAll(root+"/other", 0o755))
			must(t, os.WriteFile(root+"/sub/a.go", []byte("a\n"), 0o644))
			must(t, os.WriteFile(root+"/sub/deep/b.go", []byte("b\n"), 0o644))
			h := startWatch(t, root, Config{Mode: mode, PollInterval: 20 * time.Millisecond})

			// Deleted: its files are reported deleted; the rest is watched.
			must(t, os.RemoveAll(h.path("sub")))
			h.expect("file.deleted sub/a.go", "file.deleted sub/deep/b.go")
			h.write("other/c.go", "c\n")
			h.expect("file.created other/c.go")

			// Replaced by a file: the file is reported.
			h.write("sub", "now a file\n")
			h.expect("file.created sub")
			h.sentinel("other/s1.go")

			// The directory comes back: it is watched again.
			must(t, os.Remove(h.path("sub")))
			must(t, os.Mkdir(h.path("sub"), 0o755))
			h.expect("file.deleted sub")
			h.write("sub/d.go", "d\n")
			h.expect("file.created sub/d.go")
			h.write("other/e.go", "e\n")
			h.expect("file.created other/e.go")
		})
	}
}

// TestWatchedRootRemoved: the workspace root itself is removed; the
// watcher says so in its log, reports the files deleted, and keeps
// running (Run does not fail).
func TestWatchedRootRemoved(t *testing.T) {
	parent := t.TempDir()
	root := parent + "/ws"
	must(t, os.MkdirAll(root+"/src", 0o755))
	must(t, os.WriteFile(root+"/src/a.go", []byte("a\n"), 0o644))
	h := startWatch(t, root, Config{})
	must(t, os.RemoveAll(root))
	h.expect("file.deleted src/a.go")
	if !strings.Contains(h.logs.String(), "the workspace root was removed or moved") {
		t.Errorf("the log does not say the root was removed:\n%s", h.logs.String())
	}
	select {
	case err := <-h.done:
		t.Fatalf("Run ended when its root was removed: %v", err)
	default:
	}
}

// TestWatchedMountUnmounted: a file system mounted inside the workspace is
// unmounted: the watcher keeps running and the rest stays watched. It
// needs root (mount); elsewhere it is skipped.
//
// Known gap: fsnotify (v1.10.1, backend_inotify.go) swallows IN_UNMOUNT,
// so in notify mode the unmounted files are not reported deleted and the
// directory under the mount point is not watched until a rescan.
func TestWatchedMountUnmounted(t *testing.T) {
	root := t.TempDir()
	must(t, os.MkdirAll(root+"/mnt", 0o755))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", root+"/mnt").CombinedOutput(); err != nil {
		t.Skipf("cannot mount here: %v %s", err, out)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			_ = exec.Command("umount", root+"/mnt").Run()
		}
	})
	must(t, os.WriteFile(root+"/mnt/f.go", []byte("f\n"), 0o644))
	h := startWatch(t, root, Config{})
	h.write("mnt/g.go", "g\n")
	h.expect("file.created mnt/g.go")
	if out, err := exec.Command("umount", root+"/mnt").CombinedOutput(); err != nil {
		t.Fatalf("umount: %v %s", err, out)
	}
	mounted = false
	h.write("top.go", "t\n")
	h.expect("file.created top.go")
	select {
	case err := <-h.done:
		t.Fatalf("Run ended after an unmount: %v", err)
	default:
	}
}
