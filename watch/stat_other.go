//go:build !linux

package watch

import "io/fs"

// statEntry fills an entry from an lstat result. Without inode numbers,
// renames are not paired off Linux.
func statEntry(fi fs.FileInfo) entry {
	return entry{size: fi.Size(), mtime: fi.ModTime().UnixNano(), link: fi.Mode()&fs.ModeSymlink != 0}
}
