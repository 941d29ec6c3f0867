package localcore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestLocate(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "coditect.db")
	run := t.TempDir()
	long := filepath.Join(t.TempDir(), strings.Repeat("r", 120))
	for _, tc := range []struct {
		name, runtime string
		wantDir       string
	}{
		{"runtime dir", run, filepath.Join(run, "coditect")},
		{"no runtime dir", "", filepath.Join(dir, ".coditect-core")},
		{"relative runtime dir", "run", filepath.Join(dir, ".coditect-core")},
		{"runtime dir too long", long, filepath.Join(dir, ".coditect-core")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Locate(store, tc.runtime)
			if err != nil {
				t.Fatal(err)
			}
			canonDir, _ := filepath.EvalSymlinks(tc.wantDir[:len(tc.wantDir)-len(filepath.Base(tc.wantDir))])
			if got := filepath.Dir(p.Socket); filepath.Base(got) != filepath.Base(tc.wantDir) || !strings.HasPrefix(got, canonDir) {
				t.Errorf("socket %s, want it in %s", p.Socket, tc.wantDir)
			}
			if len(p.Socket) > maxSocketPath {
				t.Errorf("socket path of %d bytes", len(p.Socket))
			}
			if p.Lock != p.Store+"-core.lock" || p.Log != p.Store+"-core.log" {
				t.Errorf("lock %s, log %s beside %s", p.Lock, p.Log, p.Store)
			}
		})
	}
	// The same store by another path (a symbolic link to its directory)
	// has the same socket; another store has another.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	a, _ := Locate(store, run)
	b, _ := Locate(filepath.Join(link, "coditect.db"), run)
	c, _ := Locate(filepath.Join(dir, "other.db"), run)
	if a.Socket != b.Socket || a.Socket == c.Socket {
		t.Errorf("sockets %s, %s (same store), %s (another)", a.Socket, b.Socket, c.Socket)
	}
}

func listenTemp(t *testing.T) (Paths, *Listener) {
	t.Helper()
	p, err := Locate(filepath.Join(t.TempDir(), "coditect.db"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l, err := Listen(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return p, l
}

// TestListenPrivate: the socket's directory is 0700, the socket 0600, and
// both belong to this user; the lock keeps a second core off the store and
// names the first one's pid.
func TestListenPrivate(t *testing.T) {
	p, l := listenTemp(t)
	for path, want := range map[string]os.FileMode{filepath.Dir(p.Socket): os.ModeDir | 0o700, p.Socket: os.ModeSocket | 0o600} {
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; int(uid) != os.Getuid() {
			t.Errorf("%s: owner %d", path, uid)
		}
	}
	if _, err := Listen(p, nil); !errors.Is(err, ErrRunning) {
		t.Errorf("a second core: %v, want ErrRunning", err)
	}
	if pid := Owner(p); pid != os.Getpid() {
		t.Errorf("Owner %d, want %d", pid, os.Getpid())
	}
	l.Close()
	if _, err := os.Lstat(p.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after Close: %v", err)
	}
	if pid := Owner(p); pid != 0 {
		t.Errorf("Owner after Close %d, want 0", pid)
	}
}

// TestListenLoosensNothing: a socket directory another mode left open is
// made private; one that is not a directory is refused.
func TestListenTightensDir(t *testing.T) {
	p, err := Locate(filepath.Join(t.TempDir(), "coditect.db"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(p.Socket), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(p.Socket), 0o755)
	l, err := Listen(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if fi, _ := os.Stat(filepath.Dir(p.Socket)); fi.Mode().Perm() != 0o700 {
		t.Errorf("socket directory mode %v, want 0700", fi.Mode().Perm())
	}

	q, _ := Locate(filepath.Join(t.TempDir(), "coditect.db"), t.TempDir())
	os.MkdirAll(filepath.Dir(filepath.Dir(q.Socket)), 0o700)
	if err := os.WriteFile(filepath.Dir(q.Socket), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if l, err := Listen(q, nil); err == nil {
		l.Close()
		t.Error("Listen with a file where the socket directory goes: no error")
	}
}

// TestStaleSocketReplaced: a socket file with no listener (its core was
// killed) is refused by Dial as no core, and the next core removes it.
func TestStaleSocketReplaced(t *testing.T) {
	p, err := Locate(filepath.Join(t.TempDir(), "coditect.db"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := privateDir(filepath.Dir(p.Socket)); err != nil {
		t.Fatal(err)
	}
	// A bound socket nobody listens on any more.
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: p.Socket}); err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)
	if _, _, err := Dial(context.Background(), p, Hello{Kind: "mcp"}); !errors.Is(err, ErrNoCore) {
		t.Fatalf("Dial to a stale socket: %v, want ErrNoCore", err)
	}
	l, err := Listen(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go Serve(context.Background(), l, 0, func(ctx context.Context, h Hello) (func(context.Context, net.Conn) error, error) {
		return func(ctx context.Context, c net.Conn) error { return nil }, nil
	})
	c, r, err := Dial(context.Background(), p, Hello{Kind: "mcp"})
	if err != nil {
		t.Fatalf("Dial after the stale socket was replaced: %v", err)
	}
	c.Close()
	if r.PID != os.Getpid() {
		t.Errorf("reply pid %d", r.PID)
	}
}

// TestCheckPeer: a connection from this user passes; the same
// connection checked against another owner is refused, naming both uids.
func TestCheckPeer(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]*net.UnixConn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "pair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c.(*net.UnixConn)
		defer c.Close()
	}
	if err := CheckPeer(conns[0]); err != nil {
		t.Errorf("own connection refused: %v", err)
	}
	uid, err := PeerUID(conns[0])
	if err != nil || uid != os.Getuid() {
		t.Errorf("PeerUID %d, %v; want %d", uid, err, os.Getuid())
	}
	other := os.Getuid() + 1
	err = checkUID(conns[1], other)
	if err == nil || !strings.Contains(err.Error(), "not the core's owner") {
		t.Errorf("a peer of another uid: %v, want a refusal", err)
	}
}

// TestServeIdleExit: a core with no connection exits after its idle
// grace, removing its socket and releasing its lock; one with a
// connection open does not.
func TestServeIdleExit(t *testing.T) {
	p, l := listenTemp(t)
	hold := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Serve(context.Background(), l, 50*time.Millisecond, func(ctx context.Context, h Hello) (func(context.Context, net.Conn) error, error) {
			return func(ctx context.Context, c net.Conn) error { <-hold; return nil }, nil
		})
	}()
	c, _, err := Dial(context.Background(), p, Hello{Kind: "mcp"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case err := <-done:
		t.Fatalf("core exited with a connection open: %v", err)
	case <-time.After(300 * time.Millisecond): // six idle graces
	}
	close(hold)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("core did not exit idle")
	}
	if _, err := os.Lstat(p.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after idle exit: %v", err)
	}
	if Owner(p) != 0 {
		t.Error("lock still held after idle exit")
	}
}

// TestHelloRefused: the core's refusal reaches Dial as a RefusedError
// with the core's words; a hello of another version is refused.
func TestHelloRefused(t *testing.T) {
	p, l := listenTemp(t)
	go Serve(context.Background(), l, 0, func(ctx context.Context, h Hello) (func(context.Context, net.Conn) error, error) {
		return nil, errors.New("CODITECT_TOKEN: token not valid")
	})
	_, _, err := Dial(context.Background(), p, Hello{Kind: "mcp", Token: "x"})
	var r *RefusedError
	if !errors.As(err, &r) || r.Reason != "CODITECT_TOKEN: token not valid" {
		t.Errorf("Dial: %v, want the core's refusal", err)
	}
	c, err := net.Dial("unix", p.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := writeLine(c, Hello{V: Version + 1, Kind: "mcp"}); err != nil {
		t.Fatal(err)
	}
	var reply Reply
	if _, err := readLine(c, &reply); err != nil || reply.OK || !strings.Contains(reply.Error, "version") || !reply.Direct {
		t.Errorf("hello of another version: %+v, %v; want a refusal telling the client to serve itself", reply, err)
	}
}

// TestHelloRefusedByOldCore: a core of hello version 1 (a binary from
// before version 2, still running after an upgrade) refused another
// version without saying the client may serve itself; Dial says it may.
func TestHelloRefusedByOldCore(t *testing.T) {
	p, l := listenTemp(t)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var h Hello
		if _, err := readLine(c, &h); err == nil {
			_ = writeLine(c, Reply{Error: fmt.Sprintf("localcore: hello of version %d; this core speaks version 1 (restart it, or the client, so both are the same build)", h.V)})
		}
	}()
	_, _, err := Dial(context.Background(), p, Hello{Kind: "mcp"})
	var r *RefusedError
	if !errors.As(err, &r) || !r.Direct || !strings.Contains(r.Reason, "speaks version 1") {
		t.Errorf("Dial: %#v, want the old core's refusal, to serve directly", err)
	}
}

// TestAcceptRefusesAnotherUser runs a process as another user (root
// only: it needs setuid) against a core socket whose directory and mode
// were opened up for the test: the core's peer check closes the
// connection before any hello is answered.
func TestAcceptRefusesAnotherUser(t *testing.T) {
	if path := os.Getenv("LOCALCORE_DIAL"); path != "" {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		_ = writeLine(c, Hello{V: Version, Kind: "mcp"})
		var r Reply
		if _, err := readLine(c, &r); err == nil {
			t.Fatalf("the core answered a process of another user: %+v", r)
		}
		return
	}
	if os.Getuid() != 0 {
		t.Skip("needs root to run a process as another user")
	}
	const nobody = 65534
	p, l := listenTemp(t)
	served := make(chan struct{}, 1)
	go Serve(context.Background(), l, 0, func(ctx context.Context, h Hello) (func(context.Context, net.Conn) error, error) {
		served <- struct{}{}
		return func(ctx context.Context, c net.Conn) error { return nil }, nil
	})
	// Open the way to the socket, so that only the peer check stands.
	for dir := filepath.Dir(p.Socket); dir != "/" && dir != "."; dir = filepath.Dir(dir) {
		os.Chmod(dir, 0o755)
	}
	os.Chmod(p.Socket, 0o777)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "localcore.test")
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	for dir := filepath.Dir(bin); dir != "/" && dir != "."; dir = filepath.Dir(dir) {
		os.Chmod(dir, 0o755)
	}
	cmd := exec.Command(bin, "-test.run=^TestAcceptRefusesAnotherUser$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LOCALCORE_DIAL="+p.Socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the process of uid %d: %v\n%s", nobody, err, out)
	}
	select {
	case <-served:
		t.Fatal("the core served a hello from another user")
	default:
	}
	// The owner is still served.
	c, _, err := Dial(context.Background(), p, Hello{Kind: "mcp"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
