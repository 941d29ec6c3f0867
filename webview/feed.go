package webview

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
)

// Feed close statuses (RFC 6455 leaves 4000–4999 to applications).
const (
	// StatusBadRequest: the subscription was missing or malformed.
	StatusBadRequest websocket.StatusCode = 4400
	// StatusUnauthorized: no token, or a refused, revoked or expired one.
	StatusUnauthorized websocket.StatusCode = 4401
	// StatusSlowConsumer: the client fell a full queue behind, or one
	// write to it took longer than SlowAfter; it should reconnect with the
	// id of the last event it received.
	StatusSlowConsumer websocket.StatusCode = 4408
	// StatusTooManyFeeds: the token (or its tenant) already has as many
	// feeds open as Options.MaxFeedsPerToken (MaxFeedsPerTenant) allow;
	// close one first.
	StatusTooManyFeeds websocket.StatusCode = 4409
	// StatusRateLimited: the subscription's token came from an address
	// locked out for failing authentication too often (HTTP's 429); the
	// close reason says after how many seconds to retry.
	StatusRateLimited websocket.StatusCode = 4429
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
	// Project selects one project's events, by name or id (the feed
	// follows its id); Path is then relative to the project root.
	Project string `json:"project,omitempty"`
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

	sub, sc, status, reason := h.subscribe(base, c, sc, r.RemoteAddr)
	if status != 0 {
		if status == StatusUnauthorized || status == StatusRateLimited {
			h.authFail.Add(1)
		}
		c.Close(status, reason)
		return
	}
	release, refused := h.slots.take(sc.Principal())
	if refused != "" {
		h.opts.Logger.Warn("webview: feed refused", "tenant", sc.Tenant(), "remote", r.RemoteAddr, "reason", refused)
		c.Close(StatusTooManyFeeds, refused)
		return
	}
	defer release()
	f := feedFilter(sub.Filter)
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
	q := newQueue(h.opts.QueueSize, h.opts.QueueBytes)
	tailErr := make(chan error, 1)
	go func() {
		if h.opts.PerClientTail {
			tailErr <- sc.Log().Tail(ctx, cursor, f, func(ev audit.Event) error {
				it, err := encodeItem(ev)
				if err != nil {
					return err
				}
				return h.enqueue(ctx, q, it, sc.Tenant(), r.RemoteAddr)
			})
			return
		}
		tailErr <- h.follow(ctx, sc, tailKey{tenant: sc.Tenant(), filter: sub.Filter}, f, cursor, q, r.RemoteAddr)
	}()
	defer func() { stop(); <-tailErr }()

	recheck := time.NewTicker(h.opts.Recheck)
	defer recheck.Stop()
	for {
		// A client found slow is closed before anything else is sent.
		select {
		case err := <-tailErr:
			tailErr <- err // for the deferred wait
			h.closeTailErr(ctx, c, err)
			return
		default:
		}
		select {
		case <-ctx.Done():
			if h.feeds.Err() != nil {
				c.Close(websocket.StatusGoingAway, "server shutting down: reconnect with your cursor")
			}
			return
		case err := <-tailErr:
			tailErr <- err
			h.closeTailErr(ctx, c, err)
			return
		case <-recheck.C:
			if err := sc.Check(ctx); err != nil {
				if tenant.Refused(err) {
					h.authFail.Add(1)
					c.Close(StatusUnauthorized, textclip.Prefix(clean(err), 120))
					return
				}
				if ctx.Err() == nil {
					h.opts.Logger.Warn("webview: feed token check failed", "err", err)
				}
			}
		case it := <-q.ch:
			q.took(it)
			if !h.send(c, it, q, sc.Tenant(), r.RemoteAddr) {
				return
			}
		}
	}
}

// closeTailErr closes a feed whose tail ended with err.
func (h *Handler) closeTailErr(ctx context.Context, c *websocket.Conn, err error) {
	switch {
	case errors.Is(err, errSlow):
		h.closeSlow(c)
	case h.feeds.Err() != nil:
		c.Close(websocket.StatusGoingAway, "server shutting down: reconnect with your cursor")
	case err != nil && ctx.Err() == nil:
		h.opts.Logger.Error("webview: feed tail", "err", err)
		c.Close(websocket.StatusInternalError, "the store is unavailable; reconnect with your cursor")
	}
}

func (h *Handler) closeSlow(c *websocket.Conn) {
	c.Close(StatusSlowConsumer, "too slow: reconnect with the id of the last event you received as cursor")
}

// catchUpPage is how many events a client catching up reads from the log
// at once: the page waits in memory while the client's queue is full.
const catchUpPage = 128

// maxFeedMessage bounds the bytes of one "events" message (but for a
// single larger event): with the pooled buffers, it bounds what a feed
// holds while a write is blocked on its client.
const maxFeedMessage = 64 << 10

// send writes it and what else is queued, up to MaxBatch events and about
// maxFeedMessage bytes, as one "events" message. It reports whether the
// feed goes on: a failed write ends it, and so does a write that took
// longer than SlowAfter: the client is slow and gets 4408 as soon as the
// write is through (a close frame cannot overtake a message in flight).
func (h *Handler) send(c *websocket.Conn, it item, q *queue, tenantID, remote string) bool {
	buf, _ := h.messages.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	defer func() {
		if cap(*buf) <= 2*maxFeedMessage {
			h.messages.Put(buf)
		}
	}()
	msg := append((*buf)[:0], `{"type":"events","events":[`...)
	msg = append(msg, it.raw...)
	n := 1
drain:
	for n < h.opts.MaxBatch && len(msg) < maxFeedMessage {
		select {
		case it := <-q.ch:
			q.took(it)
			msg = append(append(msg, ','), it.raw...)
			n++
		default:
			break drain
		}
	}
	msg = append(msg, "]}"...)
	*buf = msg
	// The write is bounded by WriteTimeout and shutdown, not by the
	// tail: events already handed to the socket go out before a
	// slow-consumer close.
	slow := time.AfterFunc(h.opts.SlowAfter, func() {
		h.markSlow(q, "tenant", tenantID, "remote", remote, "write_blocked", h.opts.SlowAfter)
	})
	err := h.writeRaw(h.feeds, c, msg)
	wasSlow := !slow.Stop()
	if err != nil {
		return false
	}
	h.events.Add(int64(n))
	if wasSlow {
		h.closeSlow(c)
		return false
	}
	return true
}

// subscribe reads and checks the client's subscription; a non-zero status
// refuses it.
func (h *Handler) subscribe(ctx context.Context, c *websocket.Conn, sc *tenant.Scope, remote string) (Subscription, *tenant.Scope, websocket.StatusCode, string) {
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
		sc, err = h.dir.AuthenticateFrom(ctx, remote, sub.Token)
		if err != nil {
			var limited *tenant.RateLimitError
			if errors.As(err, &limited) {
				h.opts.Logger.Warn("webview: too many failed authentications", "remote", remote, "retry_after", limited.RetryAfter)
				return sub, nil, StatusRateLimited, fmt.Sprintf("too many failed authentications; retry after %d s", int(limited.RetryAfter/time.Second))
			}
			if tenant.Refused(err) {
				return sub, nil, StatusUnauthorized, textclip.Prefix(clean(err), 120)
			}
			h.opts.Logger.Error("webview: feed authentication failed", "err", err)
			return sub, nil, websocket.StatusInternalError, "the store is unavailable; retry"
		}
	}
	if sub.Filter.Project != "" {
		p, err := project.Get(ctx, sc, sub.Filter.Project)
		switch {
		case errors.Is(err, project.ErrNotFound), errors.Is(err, project.ErrInvalid):
			return sub, nil, StatusBadRequest, textclip.Prefix(clean(err), 120)
		case err != nil:
			h.opts.Logger.Error("webview: feed project", "err", err)
			return sub, nil, websocket.StatusInternalError, "the store is unavailable; retry"
		}
		sub.Filter.Project = p.ID
	}
	if err := feedFilter(sub.Filter).Validate(); err != nil {
		return sub, nil, StatusBadRequest, textclip.Prefix(clean(err), 120)
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
	return h.writeRaw(ctx, c, b)
}

func (h *Handler) writeRaw(ctx context.Context, c *websocket.Conn, b []byte) error {
	wctx, cancel := context.WithTimeout(ctx, h.opts.WriteTimeout)
	defer cancel()
	return c.Write(wctx, websocket.MessageText, b)
}

func feedFilter(f FeedFilter) audit.Filter {
	return audit.Filter{User: f.User, Session: f.Session, Agent: f.Agent, Kind: f.Kind, Path: f.Path, Project: f.Project}
}

// enqueue puts it in a client's queue. A client catching up drains a full
// queue within moments (and its reader, which reads the log at its own
// pace, waits); one whose queue stays full for SlowAfter is slow: enqueue
// returns errSlow.
func (h *Handler) enqueue(ctx context.Context, q *queue, it item, tenantID, remote string) error {
	err := q.put(ctx, it, h.opts.SlowAfter)
	if errors.Is(err, errSlow) {
		// Counted here, not when the close is sent: the writer may be
		// blocked on the very client that fell behind.
		h.markSlow(q, "tenant", tenantID, "remote", remote, "queue", cap(q.ch), "full_for", h.opts.SlowAfter)
	}
	return err
}

// markSlow counts and logs a client found slow, once however it was found.
func (h *Handler) markSlow(q *queue, attrs ...any) {
	if q.slow.CompareAndSwap(false, true) {
		h.slow.Add(1)
		h.opts.Logger.Warn(slowMessage, attrs...)
	}
}

// slowMessage is logged when a feed client is disconnected for falling
// behind.
const slowMessage = "webview: feed client too slow, disconnecting it (it resumes from its cursor)"

// follow feeds q with the events matching f after cursor: it reads the
// backlog from the log at the client's pace, then follows the shared tail
// of key; when the tail lets it go (its queue was full), it catches up
// again from the last event it queued. It returns errSlow, or the store's
// error, or ctx's.
func (h *Handler) follow(ctx context.Context, sc *tenant.Scope, key tailKey, f audit.Filter, cursor string, q *queue, remote string) error {
	l := sc.Log()
	pos := cursor
	for {
		// Catch up: everything up to the head read here was examined once
		// the pages run out, so pos may advance to it even if it did not
		// match.
		head, err := l.Head(ctx)
		if err != nil {
			return err
		}
		for page := pos; ; {
			p, err := l.Query(ctx, audit.Query{Filter: f, Order: audit.OldestFirst, Cursor: page, Limit: catchUpPage})
			if err != nil {
				return err
			}
			for _, ev := range p.Events {
				it, err := encodeItem(ev)
				if err != nil {
					return err
				}
				if err := h.enqueue(ctx, q, it, key.tenant, remote); err != nil {
					return err
				}
				pos = ev.ID
			}
			if p.Next == "" {
				break
			}
			page = p.Next
		}
		if head > pos {
			pos = head
		}
		st, fl, ok, err := h.tails.attach(ctx, l, key, f, pos, q)
		if err != nil {
			return err
		}
		if !ok {
			continue // the shared tail is further ahead than q holds
		}
		select {
		case <-ctx.Done():
			h.tails.detach(st, fl)
			return ctx.Err()
		case <-fl.detached:
			pos = st.lastOf(fl)
		}
	}
}

// feedSlots counts the open feeds of each token and each tenant.
type feedSlots struct {
	perToken, perTenant int

	mu      sync.Mutex
	tokens  map[string]int // by token id, or "user:" and the user for a local identity
	tenants map[string]int
}

func newFeedSlots(perToken, perTenant int) *feedSlots {
	return &feedSlots{perToken: perToken, perTenant: perTenant, tokens: map[string]int{}, tenants: map[string]int{}}
}

// take counts a feed of p, returning the function that uncounts it, or
// the reason it is refused.
func (s *feedSlots) take(p tenant.Principal) (release func(), refused string) {
	tok := p.TokenID
	if tok == "" {
		tok = "user:" + p.User
	}
	tok = p.Tenant + "/" + tok
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.tokens[tok] >= s.perToken:
		return nil, fmt.Sprintf("this token already has %d feeds open (the limit); close one first", s.perToken)
	case s.tenants[p.Tenant] >= s.perTenant:
		return nil, fmt.Sprintf("this tenant already has %d feeds open (the limit); close one first", s.perTenant)
	}
	s.tokens[tok]++
	s.tenants[p.Tenant]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.tokens[tok]--; s.tokens[tok] == 0 {
				delete(s.tokens, tok)
			}
			if s.tenants[p.Tenant]--; s.tenants[p.Tenant] == 0 {
				delete(s.tenants, p.Tenant)
			}
		})
	}, ""
}
