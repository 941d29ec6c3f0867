package localcore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Listener is a core's socket: the store's core lock held, the socket
// reachable only by this user. Accept returns only connections of
// processes of this user (PeerUID).
type Listener struct {
	paths  Paths
	ln     *net.UnixListener
	lock   *os.File
	logger *slog.Logger
	once   sync.Once
}

// Listen takes the store's core lock (ErrRunning when another core holds
// it) and listens on the core socket: its directory 0700, the socket
// 0600. A socket file left by a core that died is removed first: holding
// the lock proves no core listens on it.
func Listen(paths Paths, logger *slog.Logger) (*Listener, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	lock, err := lockFile(paths.Lock)
	if err != nil {
		return nil, err
	}
	if err := privateDir(filepath.Dir(paths.Socket)); err != nil {
		lock.Close()
		return nil, err
	}
	if err := os.Remove(paths.Socket); err == nil {
		logger.Info("removed the socket of a core that is gone", "socket", paths.Socket)
	} else if !errors.Is(err, os.ErrNotExist) {
		lock.Close()
		return nil, fmt.Errorf("localcore: stale socket: %w", err)
	}
	// The directory keeps others out while the socket's mode is set.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: paths.Socket, Net: "unix"})
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("localcore: listen: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(paths.Socket, 0o600); err != nil {
		ln.Close()
		lock.Close()
		return nil, fmt.Errorf("localcore: socket mode: %w", err)
	}
	return &Listener{paths: paths, ln: ln, lock: lock, logger: logger}, nil
}

// Paths returns the files the listener serves.
func (l *Listener) Paths() Paths { return l.paths }

// Accept waits for the next connection of a process of this user; others
// are refused (closed) and logged.
func (l *Listener) Accept() (*net.UnixConn, error) {
	for {
		c, err := l.ln.AcceptUnix()
		if err != nil {
			return nil, err
		}
		if err := CheckPeer(c); err != nil {
			l.logger.Warn("core connection refused", "err", err)
			c.Close()
			continue
		}
		return c, nil
	}
}

// Close stops listening, removes the socket and releases the lock.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		err = l.ln.Close()
		l.lock.Close()
	})
	return err
}

// PeerUID returns the uid of the process at the other end of c.
func PeerUID(c *net.UnixConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	uid, cerr := -1, error(nil)
	if err := raw.Control(func(fd uintptr) { uid, cerr = peerUID(int(fd)) }); err != nil {
		return -1, err
	}
	return uid, cerr
}

// CheckPeer refuses a connection whose peer is not of this user.
func CheckPeer(c *net.UnixConn) error { return checkUID(c, os.Getuid()) }

func checkUID(c *net.UnixConn, want int) error {
	uid, err := PeerUID(c)
	if err != nil {
		return err
	}
	if uid != want {
		return fmt.Errorf("localcore: peer uid %d is not the core's owner (uid %d)", uid, want)
	}
	return nil
}

// Opener answers a connection's hello: it returns what serves the
// connection, or an error that refuses it (sent to the other end). serve
// owns c and returns when the connection ends.
type Opener func(ctx context.Context, h Hello) (serve func(ctx context.Context, c net.Conn) error, err error)

// Serve accepts connections on l and serves each as open says, until ctx
// ends or no connection has been open for idle (zero: never). It closes l
// when it returns, after every connection has ended.
func Serve(ctx context.Context, l *Listener, idle time.Duration, open Opener) error {
	defer l.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu     sync.Mutex
		conns  int
		timer  *time.Timer
		wg     sync.WaitGroup
		idleCh = make(chan struct{})
	)
	arm := func() {
		if idle > 0 {
			timer = time.AfterFunc(idle, func() {
				mu.Lock()
				defer mu.Unlock()
				if conns == 0 {
					select {
					case <-idleCh:
					default:
						close(idleCh)
					}
				}
			})
		}
	}
	arm()
	go func() {
		select {
		case <-ctx.Done():
		case <-idleCh:
			l.logger.Info("core idle: no connection for a while; exiting", "idle", idle)
		}
		l.Close()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			wg.Wait()
			if ctx.Err() != nil || isClosed(err) {
				return nil
			}
			return err
		}
		mu.Lock()
		select {
		case <-idleCh: // lost the race with the idle exit
			mu.Unlock()
			c.Close()
			continue
		default:
		}
		conns++
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		wg.Go(func() {
			defer func() {
				mu.Lock()
				conns--
				if conns == 0 {
					arm()
				}
				mu.Unlock()
			}()
			serveConn(ctx, l.logger, c, open)
		})
	}
}

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }

// helloTimeout bounds how long a new connection may take to say hello.
const helloTimeout = 10 * time.Second

func serveConn(ctx context.Context, logger *slog.Logger, c net.Conn, open Opener) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	_ = c.SetReadDeadline(time.Now().Add(helloTimeout))
	br, h, err := readHello(c)
	if err != nil {
		logger.Warn("core connection without a valid hello", "err", err)
		var d *DirectError
		_ = writeLine(c, Reply{Error: err.Error(), Direct: errors.As(err, &d)})
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	serve, err := open(ctx, h)
	if err != nil {
		var d *DirectError
		_ = writeLine(c, Reply{Error: err.Error(), Direct: errors.As(err, &d)})
		return
	}
	answers := h.Answers && answersSupported
	reads := answers && h.Reads
	if err := writeLine(c, Reply{OK: true, PID: os.Getpid(), Answers: answers, Reads: reads}); err != nil {
		return
	}
	var conn net.Conn = &bufferedConn{Conn: c, r: br}
	if answers {
		// Nothing follows the hello until the reply: br holds nothing,
		// and the byte carrying the descriptors is read from c itself.
		p, err := recvAnswers(c, reads)
		if err != nil {
			logger.Warn("core connection without the client's output", "err", err)
			return
		}
		ac := newAnswerConn(c, br, p.out, p.ring, p.unmap)
		if reads {
			ac.readInput(p.in, p.j, newKeyer(h.Instance, h.Keyed))
		}
		defer ac.Close()
		// The client's output closes before the connection, also when
		// the core stops.
		defer context.AfterFunc(ctx, func() { ac.Close() })()
		conn = ac
	}
	if err := serve(ctx, conn); err != nil {
		logger.Info("core connection ended", "err", err)
	}
}
