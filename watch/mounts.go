package watch

import (
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// mountKey is one mount of the mount table: its ID and mount point. A
// mount moved elsewhere keeps its ID, so both its old and its new point
// count as changed.
type mountKey struct {
	id    string
	point string
}

// watchMounts starts the mount monitor and reads the mount table; it
// returns nil where there is no monitor or it cannot start (the log says
// so: mounts and unmounts are then found by rescans only).
func (w *Watcher) watchMounts() *mountMonitor {
	m, err := startMountMonitor(w.log)
	if err != nil {
		w.log.Warn("cannot watch the mount table; mounts and unmounts inside workspaces are found by rescans only", "err", err)
		return nil
	}
	if m == nil {
		return nil
	}
	if w.mounts, err = readMounts(); err != nil {
		m.stop()
		w.log.Warn("cannot read the mount table; mounts and unmounts inside workspaces are found by rescans only", "err", err)
		return nil
	}
	return m
}

// mountsChanged reads the mount table after the monitor said it changed
// and rescans what the mounts that came or went affect: the subtree under
// a mount point inside a workspace, the whole workspace when the mount
// point is its root or above it. inotify says nothing of either: the
// watches on an unmounted file system just end, and the ones on a
// directory a mount now covers go on watching the hidden directory.
func (w *Watcher) mountsChanged(now time.Time) {
	cur, err := readMounts()
	if err != nil {
		w.log.Warn("cannot read the mount table", "err", err)
		return
	}
	var points []string
	for k := range cur {
		if _, ok := w.mounts[k]; !ok {
			points = append(points, k.point)
		}
	}
	for k := range w.mounts {
		if _, ok := cur[k]; !ok {
			points = append(points, k.point)
		}
	}
	w.mounts = cur
	if len(points) > 0 {
		w.remounted(points, now)
	}
}

// remounted rescans the parts of the workspaces under the mount points
// given (absolute paths) that came or went.
func (w *Watcher) remounted(points []string, now time.Time) {
	var waiting []*space
	for _, sp := range w.spaces {
		if sp.missing {
			// A mount on the way to a missing root changes what the
			// anchor's path resolves to: look for the root afresh.
			for _, p := range points {
				if within(sp.root, p) {
					waiting = append(waiting, sp)
					break
				}
			}
			continue
		}
		for _, rel := range mountRels(sp.root, points) {
			if rel != "" && (sp.dirs[parentOf(rel)] == nil || sp.rules.Ignored(rel, true)) {
				continue // below an ignored directory, or not one we know
			}
			w.log.Info("the mount table changed inside a workspace; rescanning", "root", sp.root, "dir", filepath.Join(sp.root, filepath.FromSlash(rel)))
			// Forget the subtree, watches included (the old ones watch what
			// is now hidden, or nothing), and walk it again: its files are
			// compared with what it held, so what vanished is reported
			// deleted, what appeared created, and what is the same again
			// nothing.
			w.removeDir(sp, rel, now)
			w.walk(sp, rel, scanEmit, now)
		}
	}
	for _, sp := range waiting {
		if sp.anchor != "" {
			w.releaseAnchor(sp.anchor)
		}
	}
	for _, sp := range waiting {
		if sp.missing {
			w.advance(sp, now)
		}
	}
}

// mountRels returns the workspace-relative directories under root that
// the changed mount points affect, outermost only: "" alone when a point
// is root or above it.
func mountRels(root string, points []string) []string {
	var rels []string
	for _, p := range points {
		switch {
		case within(root, p):
			return []string{""}
		case within(p, root):
			rel, err := filepath.Rel(root, p)
			if err != nil {
				continue
			}
			rels = append(rels, filepath.ToSlash(rel))
		}
	}
	slices.Sort(rels)
	var out []string
	for _, r := range rels {
		if !slices.ContainsFunc(out, func(o string) bool { return r == o || strings.HasPrefix(r, o+"/") }) {
			out = append(out, r)
		}
	}
	return out
}
