package watch

import (
	"io/fs"
	"syscall"
)

// statEntry fills an entry from an lstat result.
func statEntry(fi fs.FileInfo) entry {
	e := entry{size: fi.Size(), mtime: fi.ModTime().UnixNano(), link: fi.Mode()&fs.ModeSymlink != 0}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.ctime = st.Ctim.Nano()
		e.ino = st.Ino
		e.dev = uint64(st.Dev) //nolint:unconvert // Dev is not uint64 on every architecture
	}
	return e
}
