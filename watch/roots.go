package watch

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// A workspace root can go away (removed, moved, replaced by a file, hidden
// by a mount over a directory above it) and come back. While it is away
// the space is missing: its files have been reported deleted, and in
// notify mode the nearest existing directory on the way to it, its
// anchor, is watched for the next directory towards the root to appear.
// When the root is a directory again it is walked as a new directory is:
// its files are reported (created, or nothing when they are the very
// files it held), and watched. An anchor's watch is shared by the spaces
// waiting on it and removed when the last one stops waiting.

// maxAdvance bounds the steps advance takes at once; a tree that changes
// faster than that is looked at again by the poll pass.
const maxAdvance = 64

// rootGone handles the root of sp gone: its files become pending (they
// resolve as deleted) and the space waits for its root.
func (w *Watcher) rootGone(sp *space, now time.Time) {
	if sp.missing {
		return
	}
	w.log.Error("the workspace root was removed or moved; its files are reported deleted, and it is watched again when it comes back", "root", sp.root)
	w.removeDir(sp, "", now)
	sp.missing = true
	if !w.advancing { // else the advance that walked it looks again
		w.advance(sp, now)
	}
}

// advance looks for the missing root of sp: restores it when it is a
// directory again, else (notify mode) watches the nearest existing
// directory on the way to it. Without a watch (poll mode, or the watch
// cannot be added) the poll pass calls it again.
func (w *Watcher) advance(sp *space, now time.Time) {
	w.advancing = true
	defer func() { w.advancing = false }()
	w.dropAnchor(sp)
	for range maxAdvance {
		if !sp.missing {
			return
		}
		if isDir(sp.root) {
			w.restore(sp, now) // which finds it gone again at worst
			continue
		}
		if sp.mode != ModeNotify || w.fsw == nil {
			return
		}
		a := filepath.Dir(sp.root)
		for !isDir(a) {
			up := filepath.Dir(a)
			if up == a {
				break
			}
			a = up
		}
		if err := w.holdAnchor(sp, a); err != nil {
			level := w.log.Debug
			if !sp.anchorWarned {
				sp.anchorWarned, level = true, w.log.Warn
			}
			level("cannot watch a directory for the missing workspace root; looking for it every poll interval", "root", sp.root, "dir", a, "err", err, "interval", w.cfg.PollInterval)
			return
		}
		// A directory made before the watch was added raised no event.
		if isDir(childToward(a, sp.root)) {
			w.dropAnchor(sp)
			continue
		}
		return
	}
	w.dropAnchor(sp)
	w.log.Debug("the way to the missing workspace root keeps changing; looking again at the next poll", "root", sp.root)
}

// restore watches the root of sp again, which is a directory again.
func (w *Watcher) restore(sp *space, now time.Time) {
	w.dropAnchor(sp)
	sp.missing, sp.anchorWarned = false, false
	w.log.Info("the workspace root is back; its files are reported and watched", "root", sp.root)
	w.walk(sp, "", scanEmit, now)
}

// anchorEvent takes the notifications of the anchors: the anchor itself
// removed or moved, or the next directory towards a missing root made;
// it reports whether ev was one.
func (w *Watcher) anchorEvent(ev fsnotify.Event, now time.Time) bool {
	var hit []*space
	self := false
	for _, sp := range w.spaces {
		if !sp.missing || sp.anchor == "" {
			continue
		}
		switch {
		case ev.Name == sp.anchor:
			hit, self = append(hit, sp), true
		case filepath.Dir(ev.Name) == sp.anchor && ev.Name == childToward(sp.anchor, sp.root):
			hit = append(hit, sp)
		}
	}
	if len(hit) == 0 {
		return false
	}
	if self {
		// Its watch went with it (or watches what moved): drop it for
		// every space, so the next one is added afresh.
		w.releaseAnchor(ev.Name)
	}
	for _, sp := range hit {
		if sp.missing {
			w.advance(sp, now)
		}
	}
	return true
}

// holdAnchor makes dir the anchor of sp, watching it unless another
// space does already.
func (w *Watcher) holdAnchor(sp *space, dir string) error {
	if w.anchors[dir] == 0 {
		if err := w.addWatch(dir); err != nil {
			return err
		}
		w.stats.watches.Add(1)
	}
	w.anchors[dir]++
	sp.anchor = dir
	return nil
}

// dropAnchor lets go of the anchor of sp, and of its watch when no other
// space waits on it.
func (w *Watcher) dropAnchor(sp *space) {
	a := sp.anchor
	if a == "" {
		return
	}
	sp.anchor = ""
	if w.anchors[a]--; w.anchors[a] > 0 {
		return
	}
	delete(w.anchors, a)
	_ = w.fsw.Remove(a) // gone already when the directory went
	w.stats.watches.Add(-1)
}

// releaseAnchor drops the watch on dir for every space anchored there.
func (w *Watcher) releaseAnchor(dir string) {
	if _, ok := w.anchors[dir]; !ok {
		return
	}
	for _, sp := range w.spaces {
		if sp.anchor == dir {
			sp.anchor = ""
		}
	}
	delete(w.anchors, dir)
	_ = w.fsw.Remove(dir)
	w.stats.watches.Add(-1)
}

// childToward returns the entry of dir on the way to root, which is below
// dir.
func childToward(dir, root string) string {
	rest := strings.TrimPrefix(root, strings.TrimSuffix(dir, string(filepath.Separator))+string(filepath.Separator))
	first, _, _ := strings.Cut(rest, string(filepath.Separator))
	return filepath.Join(dir, first)
}

// isDir reports whether p is a directory (not a symlink to one).
func isDir(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}
