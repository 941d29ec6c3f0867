package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/coditect/coditect/storage/kv"
)

// watch is one pending kv.Watch.
type watch struct {
	key      []byte
	baseline []byte
	exists   bool

	hub  *watchHub // set once registered
	once sync.Once
	err  error
	done chan struct{}
}

func (w *watch) fire(err error) {
	w.once.Do(func() {
		w.err = err
		close(w.done)
	})
}

// Wait implements kv.Watch.
func (w *watch) Wait(ctx context.Context) error {
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Cancel implements kv.Watch.
func (w *watch) Cancel() {
	if w.hub != nil {
		w.hub.remove(w)
	}
	w.fire(kv.ErrWatchCancelled)
}

// watchHub checks pending watches whenever the database may have changed:
// when PRAGMA data_version (polled on a connection of its own, which sees
// every other connection's commits, in this process or another) moves, and
// right after a local commit or a new registration.
type watchHub struct {
	s       *Store
	mu      sync.Mutex
	watches map[*watch]struct{}
	running bool
	closed  bool
	wake    chan struct{}
	stop    chan struct{}
	exited  chan struct{}
}

func newWatchHub(s *Store) *watchHub {
	return &watchHub{s: s, watches: map[*watch]struct{}{}, wake: make(chan struct{}, 1)}
}

func (h *watchHub) register(w *watch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		w.fire(kv.ErrClosed)
		return
	case len(h.watches) >= kv.MaxWatches:
		w.fire(fmt.Errorf("kv/sqlite: watch %s: %w: %d pending", kv.DisplayKey(w.key), kv.ErrTooManyWatches, len(h.watches)))
		return
	}
	w.hub = h
	h.watches[w] = struct{}{}
	if !h.running {
		h.running = true
		h.stop = make(chan struct{})
		h.exited = make(chan struct{})
		go h.poll(h.stop, h.exited)
	}
	h.signal()
}

func (h *watchHub) remove(w *watch) {
	h.mu.Lock()
	delete(h.watches, w)
	h.mu.Unlock()
}

// localCommit tells the hub that this process just committed.
func (h *watchHub) localCommit() {
	h.mu.Lock()
	if h.running {
		h.signal()
	}
	h.mu.Unlock()
}

func (h *watchHub) signal() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func (h *watchHub) close() {
	h.mu.Lock()
	h.closed = true
	for w := range h.watches {
		w.fire(kv.ErrClosed)
	}
	h.watches = map[*watch]struct{}{}
	running, stop, exited := h.running, h.stop, h.exited
	h.mu.Unlock()
	if running {
		close(stop)
		<-exited
	}
}

// snapshot returns the pending watches, or stops the poller (under the lock,
// so a concurrent register starts a new one) when there are none.
func (h *watchHub) snapshot() ([]*watch, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.watches) == 0 || h.closed {
		h.running = false
		return nil, false
	}
	ws := make([]*watch, 0, len(h.watches))
	for w := range h.watches {
		ws = append(ws, w)
	}
	return ws, true
}

func (h *watchHub) poll(stop <-chan struct{}, exited chan<- struct{}) {
	defer close(exited)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	conn, err := h.s.readers.Conn(ctx)
	if err != nil {
		h.failAll(fmt.Errorf("kv/sqlite: watch poller: %w", err))
		return
	}
	defer conn.Close()
	get, err := conn.PrepareContext(ctx, `SELECT value FROM kv WHERE key = ?`)
	if err != nil {
		h.failAll(fmt.Errorf("kv/sqlite: watch poller: %w", err))
		return
	}
	defer get.Close()

	ticker := time.NewTicker(h.s.opts.WatchPoll)
	defer ticker.Stop()
	var last int64 = -1
	for {
		check := false
		select {
		case <-stop:
			return
		case <-h.wake:
			check = true
		case <-ticker.C:
		}
		ws, ok := h.snapshot()
		if !ok {
			return
		}
		var dv int64
		if err := conn.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&dv); err != nil {
			if ctx.Err() != nil {
				return
			}
			if !isBusy(err) {
				slog.Warn("kv/sqlite: watch poller", "path", h.s.path, "err", err)
			}
			continue
		}
		if dv != last {
			check, last = true, dv
		}
		if !check {
			continue
		}
		h.checkAll(ctx, get, ws)
	}
}

// checkAll fires every watch whose key's value differs from its baseline.
// Watches on one key share one read.
func (h *watchHub) checkAll(ctx context.Context, get *sql.Stmt, ws []*watch) {
	type cur struct {
		v      []byte
		exists bool
		err    error
	}
	seen := map[string]cur{}
	for _, w := range ws {
		c, ok := seen[string(w.key)]
		if !ok {
			var v []byte
			err := get.QueryRowContext(ctx, w.key).Scan(&v)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				c = cur{}
			case err != nil:
				c = cur{err: err}
			default:
				c = cur{v: v, exists: true}
			}
			seen[string(w.key)] = c
		}
		if c.err != nil {
			continue // busy or transient: the next poll reads again
		}
		if c.exists != w.exists || !bytes.Equal(c.v, w.baseline) {
			h.remove(w)
			w.fire(nil)
		}
	}
}

func (h *watchHub) failAll(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watches {
		w.fire(err)
	}
	h.watches = map[*watch]struct{}{}
	h.running = false
}
