package watch

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"

	"github.com/coditect/coditect/storage/attrib"
)

// entry is what the watcher knows about one file (or symlink) of a
// workspace: enough to tell a real change from noise and to pair the two
// halves of a rename, in about 100 bytes with its path.
type entry struct {
	size   int64
	mtime  int64 // ns
	ctime  int64 // ns
	ino    uint64
	dev    uint64
	link   bool
	hashed bool
	lines  int32 // -1: not text, or not counted
	hash   [sha256.Size]byte
}

// sameStat reports whether nothing that a write changes differs.
func (e *entry) sameStat(o *entry) bool {
	return e.size == o.size && e.mtime == o.mtime && e.ctime == o.ctime && e.ino == o.ino && e.dev == o.dev && e.link == o.link
}

// sameContent reports whether o has e's content as far as we can tell:
// the same hash when both were hashed, else the same size and time.
func (e *entry) sameContent(o *entry) bool {
	if e.link != o.link {
		return false
	}
	if e.hashed && o.hashed {
		return e.hash == o.hash
	}
	return e.size == o.size && e.mtime == o.mtime
}

func (e *entry) hashString() string {
	if !e.hashed {
		return ""
	}
	return attrib.HashPrefix + hex.EncodeToString(e.hash[:])
}

// observation is one path's state on disk.
type observation struct {
	exists bool
	isDir  bool
	e      entry
	err    error // an error other than "does not exist" (permission, I/O)
}

// bufPool holds read buffers for hashing.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// observe stats abs and, when it is a regular file or symlink whose stat
// differs from prev (nil when unknown), hashes it and counts its lines.
func observe(abs string, prev *entry, maxHash int64) observation {
	fi, err := os.Lstat(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return observation{}
		}
		return observation{err: err}
	}
	if fi.IsDir() {
		return observation{exists: true, isDir: true, e: statEntry(fi)}
	}
	if !fi.Mode().IsRegular() && fi.Mode()&fs.ModeSymlink == 0 {
		return observation{} // sockets, fifos, devices: not files we report
	}
	o := observation{exists: true, e: statEntry(fi)}
	if prev != nil && prev.sameStat(&o.e) && prev.hashed == (maxHash >= 0 && o.e.size <= maxHash) {
		o.e.hashed, o.e.hash, o.e.lines = prev.hashed, prev.hash, prev.lines
		return o
	}
	o.e.lines = -1
	if o.e.link {
		target, err := os.Readlink(abs)
		if err == nil {
			o.e.hash = sha256.Sum256([]byte(target))
			o.e.hashed = true
		}
		return o
	}
	if maxHash < 0 || o.e.size > maxHash {
		return o
	}
	if err := hashFile(abs, &o.e); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return observation{}
		}
		o.err = err
	}
	return o
}

// hashFile hashes the file's content into e and, for text (no NUL byte in
// its first 8000 bytes, git's test), counts its lines.
func hashFile(abs string, e *entry) error {
	f, err := os.Open(abs)
	if err != nil {
		return err
	}
	defer f.Close()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	h := sha256.New()
	var lines, read int64
	text := true
	var last byte
	for {
		n, err := f.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			h.Write(chunk)
			if text {
				if read < 8000 {
					probe := chunk
					if int64(len(probe)) > 8000-read {
						probe = probe[:8000-read]
					}
					if bytes.IndexByte(probe, 0) >= 0 {
						text = false
					}
				}
				lines += int64(bytes.Count(chunk, []byte{'\n'}))
			}
			read += int64(n)
			last = chunk[n-1]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	h.Sum(e.hash[:0])
	e.hashed = true
	e.size = read
	e.lines = -1
	if text {
		if read > 0 && last != '\n' {
			lines++
		}
		if lines > 1<<30 {
			lines = 1 << 30
		}
		e.lines = int32(lines)
	}
	return nil
}
