package fdb

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/coditect/coditect/storage/kv"
)

// watch is a kv.Watch over a FoundationDB watch future. A goroutine waits
// on the future (parked, not polling) and records its outcome; Cancel,
// Close and a failed transaction record theirs instead and cancel the
// future, whichever comes first.
type watch struct {
	s    *Store      // nil for a watch that failed before it was set
	f    watchFuture // nil likewise
	key  []byte      // the caller's key, for errors
	done chan struct{}
	once sync.Once
	err  error // valid once done is closed
}

var _ kv.Watch = (*watch)(nil)

// failedWatch returns a watch whose Wait returns err at once.
func failedWatch(err error) *watch {
	w := &watch{done: make(chan struct{})}
	w.finish(err)
	return w
}

// addWatch registers a watch future of this store, counting it against
// kv.MaxWatches, and starts waiting on it.
func (s *Store) addWatch(key []byte, f watchFuture) (*watch, error) {
	w := &watch{s: s, f: f, key: append([]byte(nil), key...), done: make(chan struct{})}
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return nil, fmt.Errorf("fdb: watch %s: %w", kv.DisplayKey(key), kv.ErrClosed)
	case len(s.watches) >= kv.MaxWatches:
		s.mu.Unlock()
		return nil, fmt.Errorf("fdb: watch %s: %w: this store holds %d", kv.DisplayKey(key), kv.ErrTooManyWatches, kv.MaxWatches)
	}
	s.watches[w] = struct{}{}
	s.mu.Unlock()
	go func() {
		err := f.Get()
		if err != nil {
			err = opErr(context.Background(), "watch", w.key, err, false)
			var fe Error
			if errors.As(err, &fe) && cancelled(fe) {
				// Not cancelled by us (that finishes the watch first): the
				// transaction that set it was reset or destroyed without
				// committing.
				err = fmt.Errorf("fdb: watch %s: the transaction that set it did not commit: %w", kv.DisplayKey(w.key), err)
			}
		}
		w.finish(err)
	}()
	return w, nil
}

// finish records the watch's outcome once, releases its slot and cancels
// the future (which does nothing when the future is ready).
func (w *watch) finish(err error) {
	w.once.Do(func() {
		w.err = err
		close(w.done)
		if w.f != nil {
			w.f.Cancel()
		}
		if w.s != nil {
			w.s.mu.Lock()
			delete(w.s.watches, w)
			w.s.mu.Unlock()
		}
	})
}

// Wait implements kv.Watch.
func (w *watch) Wait(ctx context.Context) error {
	select {
	case <-w.done:
		return w.err
	default:
	}
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Cancel implements kv.Watch.
func (w *watch) Cancel() {
	w.finish(fmt.Errorf("fdb: watch %s: %w", kv.DisplayKey(w.key), kv.ErrWatchCancelled))
}
