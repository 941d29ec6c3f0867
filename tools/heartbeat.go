package tools

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/coditect/coditect/storage/agent"
)

// Heartbeat makes every tool call of an agent count as its heartbeat
// (agent.Heartbeat), before the tool runs. Calls of the same agent within
// every of the last recorded beat share that beat, so a burst of calls
// costs one write; every = 0 beats on every call. Callers without an
// agent, or whose role may not write (a viewer), are passed through. A failed
// heartbeat is logged and does not fail the call.
func Heartbeat(every time.Duration, logger *slog.Logger) Middleware {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var mu sync.Mutex
	last := map[[2]string]time.Time{}
	return func(next Handler) Handler {
		return func(ctx context.Context, c *Call) (Result, error) {
			id := c.Scope.Principal().Agent
			if id == "" || c.Scope.CanWrite() != nil {
				return next(ctx, c)
			}
			key := [2]string{c.Scope.Tenant(), id}
			now := time.Now()
			mu.Lock()
			due := every <= 0 || now.Sub(last[key]) >= every
			if due {
				if len(last) > 10_000 {
					clear(last)
				}
				last[key] = now
			}
			mu.Unlock()
			if due {
				if err := agent.Heartbeat(ctx, c.Scope, id); err != nil {
					logger.Warn("heartbeat failed", "agent", id, "tenant", c.Scope.Tenant(), "err", err)
					mu.Lock()
					delete(last, key)
					mu.Unlock()
				}
			}
			return next(ctx, c)
		}
	}
}
