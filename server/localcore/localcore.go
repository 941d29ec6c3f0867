// Package localcore owns the local core's rendezvous: where the Unix
// socket of the one process serving every stdio connection to an embedded
// store lives (Locate), the lock that keeps a second core off the same
// store, the socket's permissions and the peer check on every accept
// (Listen), the hello that opens each connection (Hello, Reply), starting a
// core and connecting to it (Connect), the accept loop with its idle exit
// (Serve), and the stdio-to-core forwarder of MCP (Forwarder), which
// replays a dead core's work on its successor.
//
// It knows nothing of what a core serves: server builds the MCP side on it
// and cmd/coditect wires the processes. It must not import server, tools
// or storage.
package localcore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxSocketPath is the longest socket path bind(2) takes: sun_path holds
// 108 bytes on Linux and 104 on the BSDs and macOS, with its NUL.
const maxSocketPath = 103

// Paths are the files of the local core of one embedded store.
type Paths struct {
	// Store is the store's database file, its symbolic links resolved.
	Store string
	// Socket is the core's Unix socket; its directory is private (0700).
	Socket string
	// Lock is the file beside the store whose exclusive flock the running
	// core holds; it holds the core's pid.
	Lock string
	// Log is where a core started by Connect writes its stderr.
	Log string
}

// Locate names the core files of the embedded store whose database file
// is storePath: the socket under $XDG_RUNTIME_DIR/coditect, named by a
// hash of the canonical path, or beside the store when runtimeDir is empty
// or that path would be too long for a socket; the lock and the log beside
// the store.
func Locate(storePath, runtimeDir string) (Paths, error) {
	canon, err := canonical(storePath)
	if err != nil {
		return Paths{}, err
	}
	sum := sha256.Sum256([]byte(canon))
	name := "core-" + hex.EncodeToString(sum[:8]) + ".sock"
	p := Paths{Store: canon, Lock: canon + "-core.lock", Log: canon + "-core.log"}
	if runtimeDir != "" && filepath.IsAbs(runtimeDir) {
		if s := filepath.Join(runtimeDir, "coditect", name); len(s) <= maxSocketPath {
			p.Socket = s
			return p, nil
		}
	}
	// Beside the store, in a private directory of its own: the store's
	// directory may be readable by others.
	s := filepath.Join(filepath.Dir(canon), ".coditect-core", name)
	if len(s) > maxSocketPath {
		return Paths{}, fmt.Errorf("localcore: no socket path for %s within %d bytes (set XDG_RUNTIME_DIR to a short directory)", canon, maxSocketPath)
	}
	p.Socket = s
	return p, nil
}

// canonical returns path absolute with the symbolic links of its
// directory resolved (the file itself may not exist yet).
func canonical(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("localcore: %w", err)
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return "", fmt.Errorf("localcore: store directory: %w", err)
	}
	base := filepath.Join(dir, filepath.Base(abs))
	if t, err := filepath.EvalSymlinks(base); err == nil {
		return t, nil
	}
	return base, nil
}

// privateDir makes dir (and its parents) and checks that it belongs to
// this user and that no one else may enter it, tightening its mode when
// this user created it looser.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("localcore: socket directory: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("localcore: socket directory: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("localcore: socket directory %s is not a directory", dir)
	}
	if int(st.Uid) != os.Getuid() {
		return fmt.Errorf("localcore: socket directory %s belongs to uid %d, not to this user (uid %d)", dir, st.Uid, os.Getuid())
	}
	if st.Mode&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("localcore: socket directory: %w", err)
		}
	}
	return nil
}

// ErrRunning: another core holds the store's core lock.
var ErrRunning = errors.New("localcore: a core is already running for this store")

// lockFile takes the exclusive flock of path without waiting and writes
// this process's pid into it. The lock lasts as long as the returned file
// is open (and ends with the process).
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("localcore: lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrRunning
		}
		return nil, fmt.Errorf("localcore: lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// Owner returns the pid of the core holding the lock at paths, or 0 when
// no core holds it.
func Owner(paths Paths) int {
	f, err := os.OpenFile(paths.Lock, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return 0
	}
	b, err := os.ReadFile(paths.Lock)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
