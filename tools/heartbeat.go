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
	return NewHeartbeats(every, logger).Middleware
}

// Heartbeats is the Heartbeat middleware with its memory of when each
// agent last beat, which Forget clears. It is safe for concurrent use.
type Heartbeats struct {
	every  time.Duration
	logger *slog.Logger

	mu     sync.Mutex
	agents map[[2]string]*beatState
}

type beatState struct {
	last     time.Time
	inflight bool // a background beat is running
}

// NewHeartbeats returns the Heartbeat middleware's state; see Heartbeat.
func NewHeartbeats(every time.Duration, logger *slog.Logger) *Heartbeats {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Heartbeats{every: every, logger: logger, agents: map[[2]string]*beatState{}}
}

// Forget makes the next call of agent id of tenant beat, whenever the
// last one did: the transport calls it once it marked the agent offline
// (agent.MarkOffline), so that an agent that comes back is alive from its
// first call.
func (h *Heartbeats) Forget(tenant, id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st := h.agents[[2]string{tenant, id}]; st != nil {
		st.last = time.Time{}
	}
}

// Middleware is the Heartbeat middleware.
func (h *Heartbeats) Middleware(next Handler) Handler {
	return func(ctx context.Context, c *Call) (Result, error) {
		if c.Unavailable != nil && !c.Tool.ReadOnly() {
			return Result{}, c.Unavailable
		}
		id := c.Scope.Principal().Agent
		if id == "" || c.Scope.CanWrite() != nil {
			return next(ctx, c)
		}
		readOnly := c.Tool.ReadOnly()
		st, due := h.due([2]string{c.Scope.Tenant(), id}, readOnly)
		if !due {
			return next(ctx, c)
		}
		beat := func(ctx context.Context) error {
			err := agent.Heartbeat(ctx, c.Scope, id)
			h.mu.Lock()
			if readOnly {
				st.inflight = false
			}
			if err != nil {
				st.last = time.Time{} // beat again on the next call
			}
			h.mu.Unlock()
			if err != nil {
				h.logger.Warn("heartbeat failed", "agent", id, "tenant", c.Scope.Tenant(), "err", err)
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

// due reports whether a call of the agent keyed by key beats now, and
// records the beat as started when it does.
func (h *Heartbeats) due(key [2]string, readOnly bool) (*beatState, bool) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.agents[key]
	if st == nil {
		if len(h.agents) > 10_000 {
			clear(h.agents)
		}
		st = &beatState{}
		h.agents[key] = st
	}
	due := (h.every <= 0 || now.Sub(st.last) >= h.every) && !(readOnly && st.inflight)
	if due {
		st.last = now
		st.inflight = st.inflight || readOnly
	}
	return st, due
}
