package atomicwrite

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/coditect/coditect/internal/textclip"
)

// NotDirError is the error of a directory a change needs whose path
// exists and is not a directory (or cannot be examined).
type NotDirError struct {
	// Path is the element in the way, relative to the root.
	Path string
}

func (e *NotDirError) Error() string {
	return fmt.Sprintf("%q is a file, not a directory", e.Path)
}

// Dirs are the directories MakeDirs created for a change, outermost
// first.
type Dirs struct {
	root *os.Root
	made []string
}

// MakeDirs creates the missing directories of dir (relative to root,
// '/'-separated; "." is the root) and returns those it created. A failed
// MakeDirs removes those it created before the failure.
func MakeDirs(root *os.Root, dir string) (Dirs, error) {
	d := Dirs{root: root}
	if dir == "." {
		return d, nil
	}
	cur := ""
	for seg := range strings.SplitSeq(dir, "/") {
		cur = path.Join(cur, seg)
		err := root.Mkdir(cur, 0o777)
		switch {
		case err == nil:
			d.made = append(d.made, cur)
		case errors.Is(err, fs.ErrExist):
			if fi, err := root.Stat(cur); err != nil || !fi.IsDir() {
				d.Remove()
				return Dirs{}, &NotDirError{Path: cur}
			}
		default:
			d.Remove()
			return Dirs{}, err
		}
	}
	return d, nil
}

// Remove removes the directories MakeDirs created, innermost first, each
// only while it is still empty.
func (d Dirs) Remove() {
	for i := len(d.made) - 1; i >= 0; i-- {
		_ = d.root.Remove(d.made[i])
	}
}

// Staged is a file's new content waiting, synced, in a temporary file in
// the file's directory, with the directories created for it.
type Staged struct {
	Dirs
	rel, tmp string
}

// Stage creates the missing directories of the file rel (relative to
// root) and writes data to a new temporary file beside it, synced, with
// mode: the permission bits of the file it will replace, or, when created
// (there is no file yet), the mode of the new file. The temporary's name
// ends in "~". A failed Stage leaves nothing behind.
func Stage(root *os.Root, rel string, data []byte, mode fs.FileMode, created bool) (*Staged, error) {
	dir := path.Dir(rel)
	d, err := MakeDirs(root, dir)
	if err != nil {
		return nil, err
	}
	tmp, err := writeTemp(root, dir, path.Base(rel), data, mode, created)
	if err != nil {
		d.Remove()
		return nil, err
	}
	return &Staged{Dirs: d, rel: rel, tmp: tmp}, nil
}

// Commit renames the temporary file over the file and syncs its
// directory. When the rename fails the caller still owns s: Abort
// removes it.
func (s *Staged) Commit() error {
	if err := s.root.Rename(s.tmp, s.rel); err != nil {
		return err
	}
	s.tmp = ""
	SyncDir(s.root, path.Dir(s.rel))
	return nil
}

// Abort removes the temporary file and the directories created for it
// (those still empty): the change is given up. After a Commit it does
// nothing to the file.
func (s *Staged) Abort() {
	if s.tmp == "" {
		return
	}
	_ = s.root.Remove(s.tmp)
	s.tmp = ""
	s.Remove()
}

// Rename moves the file from to the path to (both relative to root),
// whose directory must exist (MakeDirs), and syncs the directories of
// both.
func Rename(root *os.Root, from, to string) error {
	if err := root.Rename(from, to); err != nil {
		return err
	}
	SyncDir(root, path.Dir(to))
	if d := path.Dir(from); d != path.Dir(to) {
		SyncDir(root, d)
	}
	return nil
}

// Remove removes the file rel (relative to root) and syncs its directory.
func Remove(root *os.Root, rel string) error {
	if err := root.Remove(rel); err != nil {
		return err
	}
	SyncDir(root, path.Dir(rel))
	return nil
}

// SyncDir makes the renames and removals in dir (relative to root)
// durable; a failure leaves them merely as durable as the file system
// makes them by itself.
func SyncDir(root *os.Root, dir string) {
	if d, err := root.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// writeTemp writes data to a new temporary file in dir, synced, with the
// mode of the file it will replace (or the mode of a new file), and
// returns its name relative to root. The name ends in "~", which the
// watcher ignores: it sees the rename over the file, not the temporary.
func writeTemp(root *os.Root, dir, base string, data []byte, mode fs.FileMode, created bool) (string, error) {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	name := path.Join(dir, "."+textclip.Clip(base, 64)+".coditect-"+hex.EncodeToString(rnd[:])+"~")
	perm := fs.FileMode(0o600)
	if created {
		perm = mode
	}
	file, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return "", err
	}
	_, err = file.Write(data)
	if err == nil && !created {
		err = file.Chmod(mode)
	}
	if err == nil {
		err = file.Sync()
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = root.Remove(name)
		return "", err
	}
	return name, nil
}
