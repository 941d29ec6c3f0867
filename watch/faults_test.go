package watch

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// TestWatchedRootReturns: the workspace root is removed and made again,
// then replaced by a file and by a directory again, then removed with its
// parent and made again; each time it is back, its files are reported and
// it is watched again, and the watch on the directory above it that
// waited for it is gone.
func TestWatchedRootReturns(t *testing.T) {
	for _, mode := range []Mode{ModeNotify, ModePoll} {
		t.Run(string(mode), func(t *testing.T) { testRootReturns(t, mode) })
	}
}

func testRootReturns(t *testing.T, mode Mode) {
	parent := t.TempDir()
	root := parent + "/ws"
	must(t, os.MkdirAll(root+"/src", 0o755))
	must(t, os.WriteFile(root+"/src/a.go", []byte("a\n"), 0o644))
	h := startWatch(t, root, Config{Mode: mode, PollInterval: 20 * time.Millisecond})
	watches := func(n int64) int64 {
		if mode == ModePoll {
			return 0
		}
		return n
	}

	// Removed, then made again: what it holds is reported created.
	must(t, os.RemoveAll(root))
	h.expect("file.deleted src/a.go")
	must(t, os.MkdirAll(root+"/src", 0o755))
	must(t, os.WriteFile(root+"/src/b.go", []byte("b\n"), 0o644))
	h.write("c.go", "c\n")
	h.expect("file.created src/b.go", "file.created c.go")
	h.write("src/d.go", "d\n")
	h.expect("file.created src/d.go")
	checkWatches(t, h, parent, watches(2))

	// Replaced by a file, which is no workspace, then by a directory.
	must(t, os.RemoveAll(root))
	h.expect("file.deleted src/b.go", "file.deleted src/d.go", "file.deleted c.go")
	must(t, os.WriteFile(root, []byte("a file\n"), 0o644))
	must(t, os.Remove(root))
	must(t, os.Mkdir(root, 0o755))
	h.write("e.go", "e\n")
	h.expect("file.created e.go")
	checkWatches(t, h, parent, watches(1))

	// Removed with the directory above it: the wait moves up, and down
	// again as the path is made.
	must(t, os.RemoveAll(parent))
	h.expect("file.deleted e.go")
	must(t, os.Mkdir(parent, 0o755))
	must(t, os.Mkdir(root, 0o755))
	h.write("f.go", "f\n")
	h.expect("file.created f.go")
	checkWatches(t, h, filepath.Dir(parent), watches(1))
	if !strings.Contains(h.logs.String(), "the workspace root is back") {
		t.Errorf("the log does not say the root is back:\n%s", h.logs.String())
	}
}

// TestWatchedRootMovedBack: the root moved away and back is the same
// workspace: no event, and its directories still know their files (a
// directory then moved out reports them deleted).
func TestWatchedRootMovedBack(t *testing.T) {
	parent := t.TempDir()
	root := parent + "/ws"
	must(t, os.MkdirAll(root+"/sub", 0o755))
	must(t, os.WriteFile(root+"/sub/a.go", []byte("a\n"), 0o644))
	h := startWatch(t, root, Config{})
	must(t, os.Rename(root, parent+"/away"))
	must(t, os.Rename(parent+"/away", root))
	h.sentinel("s1.go")
	must(t, os.Rename(root+"/sub", parent+"/sub"))
	h.expect("file.deleted sub/a.go")
	h.write("b.go", "b\n")
	h.expect("file.created b.go")
	checkWatches(t, h, parent, 1)
}

// checkWatches checks the watcher's count of watches, and that none is
// left on dir, above the root.
func checkWatches(t *testing.T, h *harness, dir string, want int64) {
	t.Helper()
	if got := h.w.Stats().Watches; got != want {
		t.Errorf("%d watches, want %d", got, want)
	}
	if h.w.fsw == nil {
		return
	}
	list := h.w.fsw.WatchList()
	if int64(len(list)) != want {
		t.Errorf("fsnotify holds %d watches, want %d: %v", len(list), want, list)
	}
	if dir != "" && slices.Contains(list, dir) {
		t.Errorf("%s is still watched: %v", dir, list)
	}
}

// mount mounts (mount(8) args) or skips the test: it needs root, which
// it has in the CI container. The mount is undone at cleanup unless the
// returned func undid it first.
func mount(t *testing.T, args ...string) (umount func()) {
	t.Helper()
	target := args[len(args)-1]
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		t.Skipf("cannot mount here: %v %s", err, out)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			_ = exec.Command("umount", target).Run()
		}
	})
	return func() {
		t.Helper()
		if out, err := exec.Command("umount", target).CombinedOutput(); err != nil {
			t.Fatalf("umount: %v %s", err, out)
		}
		mounted = false
	}
}

// TestWatchedMountUnmounted: a file system mounted inside the workspace is
// unmounted: its files are reported deleted, the directory under the
// mount point is visible again (its files reported created) and watched,
// and the rest stays watched. It needs root (mount); elsewhere it is
// skipped. fsnotify swallows the IN_UNMOUNT of the watches on the
// unmounted file system: the change is seen in the mount table.
func TestWatchedMountUnmounted(t *testing.T) {
	root := t.TempDir()
	must(t, os.MkdirAll(root+"/mnt", 0o755))
	must(t, os.WriteFile(root+"/mnt/under.go", []byte("under\n"), 0o644))
	umount := mount(t, "-t", "tmpfs", "-o", "size=1m", "tmpfs", root+"/mnt")
	must(t, os.MkdirAll(root+"/mnt/sub", 0o755))
	must(t, os.WriteFile(root+"/mnt/f.go", []byte("f\n"), 0o644))
	h := startWatch(t, root, Config{})
	h.write("mnt/g.go", "g\n")
	h.write("mnt/sub/s.go", "s\n")
	h.expect("file.created mnt/g.go", "file.created mnt/sub/s.go")
	umount()
	h.expect("file.deleted mnt/f.go", "file.deleted mnt/g.go", "file.deleted mnt/sub/s.go", "file.created mnt/under.go")
	h.write("mnt/h.go", "h\n")
	h.expect("file.created mnt/h.go")
	checkWatches(t, h, "", 2) // the root and mnt: none left on the unmounted file system
	h.write("top.go", "t\n")
	h.expect("file.created top.go")
	select {
	case err := <-h.done:
		t.Fatalf("Run ended after an unmount: %v", err)
	default:
	}
}

// TestWatchedMountMounted: a file system is mounted inside the workspace:
// the files it hides are reported deleted, the ones it shows created, and
// it is watched, its new directories too; unmounted, the hidden files are
// back. It needs root.
func TestWatchedMountMounted(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	must(t, os.MkdirAll(root+"/mnt", 0o755))
	must(t, os.WriteFile(root+"/mnt/under.go", []byte("under\n"), 0o644))
	must(t, os.MkdirAll(outside+"/dir", 0o755))
	must(t, os.WriteFile(outside+"/on.go", []byte("on\n"), 0o644))
	must(t, os.WriteFile(outside+"/dir/deep.go", []byte("deep\n"), 0o644))
	h := startWatch(t, root, Config{})
	umount := mount(t, "--bind", outside, root+"/mnt")
	h.expect("file.deleted mnt/under.go", "file.created mnt/on.go", "file.created mnt/dir/deep.go")
	h.write("mnt/new.go", "new\n")
	h.write("mnt/dir/new.go", "new\n")
	h.write("mnt/made/x.go", "x\n")
	h.expect("file.created mnt/new.go", "file.created mnt/dir/new.go", "file.created mnt/made/x.go")
	checkWatches(t, h, "", 4) // the root, mnt, mnt/dir and mnt/made
	umount()
	h.expect("file.deleted mnt/on.go", "file.deleted mnt/dir/deep.go", "file.deleted mnt/new.go",
		"file.deleted mnt/dir/new.go", "file.deleted mnt/made/x.go", "file.created mnt/under.go")
	h.write("mnt/after.go", "after\n")
	h.expect("file.created mnt/after.go")
	checkWatches(t, h, "", 2)
}

// TestWatchedRootUnderMount: the workspace root is on a file system that
// is unmounted, then mounted again (empty) and the root made on it: the
// root goes and comes back as when removed and made again. It needs root.
func TestWatchedRootUnderMount(t *testing.T) {
	parent := t.TempDir()
	root := parent + "/data/ws"
	must(t, os.MkdirAll(parent+"/data", 0o755))
	umount := mount(t, "-t", "tmpfs", "-o", "size=1m", "tmpfs", parent+"/data")
	must(t, os.MkdirAll(root, 0o755))
	must(t, os.WriteFile(root+"/a.go", []byte("a\n"), 0o644))
	h := startWatch(t, root, Config{})
	umount()
	h.expect("file.deleted a.go")
	// The anchor now watches the directory under the mount point, which
	// the next mount hides: the watcher must look past it.
	mount(t, "-t", "tmpfs", "-o", "size=1m", "tmpfs", parent+"/data")
	must(t, os.Mkdir(root, 0o755))
	h.write("b.go", "b\n")
	h.expect("file.created b.go")
	checkWatches(t, h, parent+"/data", 1)
}

// TestWatchedRootMountedOver: a file system is mounted on the workspace
// root itself: the whole workspace is what the mount shows, watched, and
// what it hid is back once it is unmounted. It needs root.
func TestWatchedRootMountedOver(t *testing.T) {
	root := t.TempDir()
	must(t, os.MkdirAll(root+"/src", 0o755))
	must(t, os.WriteFile(root+"/src/a.go", []byte("a\n"), 0o644))
	h := startWatch(t, root, Config{})
	umount := mount(t, "-t", "tmpfs", "-o", "size=1m", "tmpfs", root)
	h.expect("file.deleted src/a.go")
	h.write("src/b.go", "b\n")
	h.expect("file.created src/b.go")
	checkWatches(t, h, "", 2)
	umount()
	h.expect("file.deleted src/b.go", "file.created src/a.go")
	h.write("c.go", "c\n")
	h.expect("file.created c.go")
	checkWatches(t, h, "", 2)
}
