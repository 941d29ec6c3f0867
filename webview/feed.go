package webview

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/tenant"
)

// Feed close statuses (RFC 6455 leaves 4000–4999 to applications).
const (
	// StatusBadRequest: the subscription was missing or malformed.
	StatusBadRequest websocket.StatusCode = 4400
	// StatusUnauthorized: no token, or a refused, revoked or expired one.
	StatusUnauthorized websocket.StatusCode = 4401
	// StatusSlowConsumer: the client fell QueueSize events behind; it
	// should reconnect with the id of the last event it received.
	StatusSlowConsumer websocket.StatusCode = 4408
)

// Subscription is the first message a feed client sends.
type Subscription struct {
	Type string `json:"type"` // "subscribe"
	// Token authenticates the client, unless the handshake carried an
	// Authorization header.
	Token string `json:"token,omitempty"`
	// Cursor is the id of the last event the client has: the feed sends
	// what comes after it. "" starts at the beginning of the log, "head"
	// with the next event committed.
	Cursor string `json:"cursor"`
	// Filter selects events; empty fields match everything.
	Filter FeedFilter `json:"filter"`
}

// FeedFilter is the audit filter of a subscription.
type FeedFilter struct {
	User    string `json:"user,omitempty"`
	Session string `json:"session,omitempty"`
	Agent   string `json:"agent,omitempty"`
	Kind    string `json:"kind,omitempty"`
	Path    string `json:"path,omitempty"`
}

// FeedMessage is what the server sends: one "subscribed" (with the cursor
// the feed starts after and the tenant), then "events" batches in log
// order.
type FeedMessage struct {
	Type   string        `json:"type"`
	Cursor string        `json:"cursor,omitempty"`
	Tenant string        `json:"tenant,omitempty"`
	Events []audit.Event `json:"events,omitempty"`
}

var errSlow = errors.New("client fell behind")

// feed serves one WebSocket client: authenticate, read the subscription,
// then stream matching events from the tenant's log tail.
func (h *Handler) feed(w http.ResponseWriter, r *http.Request) {
	h.shutdownMu.Lock()
	if h.closed {
		h.shutdownMu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the server is shutting down")
		return
	}
	h.feedsWG.Add(1)
	h.shutdownMu.Unlock()
	defer h.feedsWG.Done()

	var sc *tenant.Scope
	if _, ok := bearer(r); ok {
		if sc, ok = h.authenticate(w, r); !ok {
			return
		}
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: h.opts.OriginPatterns})
	if err != nil {
		// Accept has answered (403 for a foreign Origin).
		h.opts.Logger.Warn("webview: feed refused", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"), "err", err)
		return
	}
	defer c.CloseNow()
	h.accepted.Add(1)
	h.clients.Add(1)
	defer h.clients.Add(-1)
	c.SetReadLimit(64 << 10)

	base, cancel := context.WithCancelCause(h.feeds)
	defer cancel(nil)

	sub, sc, status, reason := h.subscribe(base, c, sc)
	if status != 0 {
		if status == StatusUnauthorized {
			h.authFail.Add(1)
		}
		c.Close(status, reason)
		return
	}
	f := audit.Filter{User: sub.Filter.User, Session: sub.Filter.Session, Agent: sub.Filter.Agent, Kind: sub.Filter.Kind, Path: sub.Filter.Path}
	cursor := sub.Cursor
	if cursor == "head" {
		if cursor, err = sc.Log().Head(base); err != nil {
			h.opts.Logger.Error("webview: feed head", "err", err)
			c.Close(websocket.StatusInternalError, "the store is unavailable; retry")
			return
		}
	}
	if err := h.write(base, c, FeedMessage{Type: "subscribed", Cursor: cursor, Tenant: sc.Tenant()}); err != nil {
		return
	}

	// From here the client only listens; a data message from it is a
	// protocol violation. gone ends when the client goes away; it is not
	// derived from base, so that a shutdown can still send "going away".
	gone := c.CloseRead(context.Background())
	ctx, stop := context.WithCancel(base)
	defer stop()
	context.AfterFunc(gone, stop)
	tailCtx := ctx
	q := make(chan audit.Event, h.opts.QueueSize)
	tailErr := make(chan error, 1)
	go func() {
		tailErr <- sc.Log().Tail(tailCtx, cursor, f, func(ev audit.Event) error {
			select {
			case q <- ev:
				return nil
			default:
			}
			// The queue is full. A client catching up drains it within
			// moments (and the tail, which reads the log at its own pace,
			// waits); one that stays full for SlowAfter is slow.
			t := time.NewTimer(h.opts.SlowAfter)
			defer t.Stop()
			select {
			case q <- ev:
				return nil
			case <-tailCtx.Done():
				return tailCtx.Err()
			case <-t.C:
				// Counted here, not when the close is sent: the writer may
				// be blocked on the very client that fell behind.
				h.slow.Add(1)
				return errSlow
			}
		})
	}()
	defer func() { stop(); <-tailErr }()

	recheck := time.NewTicker(h.opts.Recheck)
	defer recheck.Stop()
	batch := make([]audit.Event, 0, h.opts.MaxBatch)
	for {
		select {
		case <-ctx.Done():
			if h.feeds.Err() != nil {
				c.Close(websocket.StatusGoingAway, "server shutting down: reconnect with your cursor")
			}
			return
		case err := <-tailErr:
			tailErr <- err // for the deferred wait
			switch {
			case errors.Is(err, errSlow):
				c.Close(StatusSlowConsumer, "too slow: reconnect with the id of the last event you received as cursor")
			case h.feeds.Err() != nil:
				c.Close(websocket.StatusGoingAway, "server shutting down: reconnect with your cursor")
			case err != nil && ctx.Err() == nil:
				h.opts.Logger.Error("webview: feed tail", "err", err)
				c.Close(websocket.StatusInternalError, "the store is unavailable; reconnect with your cursor")
			}
			return
		case <-recheck.C:
			if err := sc.Check(ctx); err != nil {
				if authError(err) {
					h.authFail.Add(1)
					c.Close(StatusUnauthorized, truncate(clean(err), 120))
					return
				}
				if ctx.Err() == nil {
					h.opts.Logger.Warn("webview: feed token check failed", "err", err)
				}
			}
		case ev := <-q:
			batch = append(batch[:0], ev)
		drain:
			for len(batch) < h.opts.MaxBatch {
				select {
				case ev := <-q:
					batch = append(batch, ev)
				default:
					break drain
				}
			}
			// The write is bounded by WriteTimeout and shutdown, not by the
			// tail: events already handed to the socket go out before a
			// slow-consumer close.
			if err := h.write(h.feeds, c, FeedMessage{Type: "events", Events: batch}); err != nil {
				return
			}
			h.events.Add(int64(len(batch)))
		}
	}
}

// subscribe reads and checks the client's subscription; a non-zero status
// refuses it.
func (h *Handler) subscribe(ctx context.Context, c *websocket.Conn, sc *tenant.Scope) (Subscription, *tenant.Scope, websocket.StatusCode, string) {
	var sub Subscription
	rctx, cancel := context.WithTimeout(ctx, h.opts.AuthTimeout)
	defer cancel()
	if err := wsjson.Read(rctx, c, &sub); err != nil {
		return sub, nil, StatusBadRequest, "send {\"type\":\"subscribe\",\"token\":…,\"cursor\":…,\"filter\":{…}} first"
	}
	if sub.Type != "subscribe" {
		return sub, nil, StatusBadRequest, "the first message must be of type \"subscribe\""
	}
	if sc == nil {
		if sub.Token == "" {
			return sub, nil, StatusUnauthorized, "a token is required"
		}
		var err error
		sc, err = h.dir.Authenticate(ctx, sub.Token)
		if err != nil {
			if authError(err) {
				return sub, nil, StatusUnauthorized, truncate(clean(err), 120)
			}
			h.opts.Logger.Error("webview: feed authentication failed", "err", err)
			return sub, nil, websocket.StatusInternalError, "the store is unavailable; retry"
		}
	}
	f := audit.Filter{User: sub.Filter.User, Session: sub.Filter.Session, Agent: sub.Filter.Agent, Kind: sub.Filter.Kind, Path: sub.Filter.Path}
	if err := f.Validate(); err != nil {
		return sub, nil, StatusBadRequest, truncate(clean(err), 120)
	}
	if sub.Cursor != "" && sub.Cursor != "head" {
		if _, err := audit.ParseID(sub.Cursor); err != nil {
			return sub, nil, StatusBadRequest, "cursor: want an event id (24 hex digits), \"\" or \"head\""
		}
	}
	return sub, sc, 0, ""
}

func (h *Handler) write(ctx context.Context, c *websocket.Conn, m FeedMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, h.opts.WriteTimeout)
	defer cancel()
	return c.Write(wctx, websocket.MessageText, b)
}

// truncate keeps a close reason within the 123 bytes a close frame allows.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
