package tools

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/kv"
)

// backgroundBeatTimeout bounds a read-only call's background heartbeat,
// which no caller waits for.
const backgroundBeatTimeout = 30 * time.Second

// Heartbeat makes every tool call of an agent count as its heartbeat
// (agent.Heartbeat). Calls of the same agent within every of the last
// recorded beat share that beat, so a burst of calls costs one write;
// every = 0 beats on every call. Callers without an agent, or whose role
// may not write (a viewer), are passed through.
//
// A tool that may write beats before it runs, in the call, because what it
// does can depend on the agent being alive (a lease is refused to a gone
// agent). A read-only tool does not wait for the write: its beat runs in
// the background, one at a time per agent, so reads go on at full speed —
// also while another process holds the store's write lock.
//
// A failed heartbeat is logged and does not fail the call, with one
// exception: when the store is unavailable (locked by another process
// past its lock timeout), a tool that may write fails at once with that
// retryable error instead of waiting a second lock timeout for its own
// write — likewise when the caller's agent could not be registered for
// that reason (Caller.Unavailable).
func Heartbeat(every time.Duration, logger *slog.Logger) Middleware {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	type state struct {
		last     time.Time
		inflight bool // a background beat is running
	}
	var mu sync.Mutex
	agents := map[[2]string]*state{}
	return func(next Handler) Handler {
		return func(ctx context.Context, c *Call) (Result, error) {
			if c.Unavailable != nil && !c.Tool.ReadOnly() {
				return Result{}, c.Unavailable
			}
			id := c.Scope.Principal().Agent
			if id == "" || c.Scope.CanWrite() != nil {
				return next(ctx, c)
			}
			key := [2]string{c.Scope.Tenant(), id}
			readOnly := c.Tool.ReadOnly()
			now := time.Now()
			mu.Lock()
			st := agents[key]
			if st == nil {
				if len(agents) > 10_000 {
					clear(agents)
				}
				st = &state{}
				agents[key] = st
			}
			due := (every <= 0 || now.Sub(st.last) >= every) && !(readOnly && st.inflight)
			if due {
				st.last = now
				st.inflight = st.inflight || readOnly
			}
			mu.Unlock()
			if !due {
				return next(ctx, c)
			}
			beat := func(ctx context.Context) error {
				err := agent.Heartbeat(ctx, c.Scope, id)
				mu.Lock()
				if readOnly {
					st.inflight = false
				}
				if err != nil {
					st.last = time.Time{} // beat again on the next call
				}
				mu.Unlock()
				if err != nil {
					logger.Warn("heartbeat failed", "agent", id, "tenant", c.Scope.Tenant(), "err", err)
				}
				return err
			}
			if readOnly {
				go func() {
					bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backgroundBeatTimeout)
					defer cancel()
					_ = beat(bctx)
				}()
				return next(ctx, c)
			}
			if err := beat(ctx); errors.Is(err, kv.ErrUnavailable) {
				return Result{}, err
			}
			return next(ctx, c)
		}
	}
}
