package webview

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coditect/coditect/storage/tenant"
)

// APIPrefix is where the REST API and the feed are mounted.
const APIPrefix = "/api/v1/"

// FeedPath is the WebSocket feed.
const FeedPath = "/api/v1/feed"

// Defaults of Options.
const (
	DefaultQueueSize    = 1024
	DefaultQueueBytes   = 256 << 10
	DefaultWriteTimeout = 30 * time.Second
	DefaultAuthTimeout  = 10 * time.Second
	DefaultRecheck      = tenant.RecheckInterval
	DefaultMaxBatch     = 256
	DefaultSlowAfter    = 5 * time.Second
	// DefaultMaxFeedsPerToken and DefaultMaxFeedsPerTenant bound the open
	// feeds of one token and of one tenant (status 4409 beyond them).
	DefaultMaxFeedsPerToken  = 32
	DefaultMaxFeedsPerTenant = 512
)

// Options configure a Handler. The zero value of every field is a sensible
// default.
type Options struct {
	// Logger receives the handler's diagnostics; nil discards them. Tokens
	// are never logged.
	Logger *slog.Logger
	// OriginPatterns are the WebSocket origins allowed besides the page's
	// own, as coder/websocket patterns ("vscode-webview://*",
	// "dash.example.com"); nil means just "vscode-webview://*".
	OriginPatterns []string
	// QueueSize bounds the events waiting for one feed client; a client
	// whose queue stays full for SlowAfter is disconnected (status 4408)
	// and resumes from its cursor. DefaultQueueSize when zero.
	QueueSize int
	// QueueBytes bounds the bytes of those events (JSON), however many
	// they are: a full queue is full by either bound. DefaultQueueBytes
	// when zero.
	QueueBytes int
	// SlowAfter is how long a feed client's queue may stay full before the
	// client counts as slow. DefaultSlowAfter when zero.
	SlowAfter time.Duration
	// MaxBatch is the most events sent in one feed message.
	MaxBatch int
	// WriteTimeout bounds one feed write: a client that reads nothing for
	// that long is dropped without a close frame (none can reach it). A
	// write that takes longer than SlowAfter makes the client slow (4408).
	// DefaultWriteTimeout when zero.
	WriteTimeout time.Duration
	// MaxFeedsPerToken and MaxFeedsPerTenant bound the feeds open at once
	// with one token (or one local user) and in one tenant; a
	// subscription beyond either is closed with status 4409.
	// DefaultMaxFeedsPerToken and DefaultMaxFeedsPerTenant when zero.
	MaxFeedsPerToken  int
	MaxFeedsPerTenant int
	// AuthTimeout is how long a feed client has to send its subscription.
	AuthTimeout time.Duration
	// Recheck is how often a feed re-validates its token, so that a
	// revoked or expired token, or a disabled user or tenant, closes open
	// feeds within it (REST requests authenticate every time, uncached).
	// DefaultRecheck (one second, as for MCP) when zero.
	Recheck time.Duration
	// Version is shown by the dashboard.
	Version string
	// ProtectedPaths are paths no project root registered through the API
	// may contain or lie inside: the embedded store's files and its spool.
	ProtectedPaths []string
	// PerClientTail makes every feed client follow the store on its own
	// instead of sharing one tail per tenant and filter; for comparison
	// (BenchmarkFeedFanout) and as a fallback.
	PerClientTail bool
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.OriginPatterns == nil {
		o.OriginPatterns = []string{"vscode-webview://*"}
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = DefaultQueueBytes
	}
	if o.SlowAfter <= 0 {
		o.SlowAfter = DefaultSlowAfter
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.MaxFeedsPerToken <= 0 {
		o.MaxFeedsPerToken = DefaultMaxFeedsPerToken
	}
	if o.MaxFeedsPerTenant <= 0 {
		o.MaxFeedsPerTenant = DefaultMaxFeedsPerTenant
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.AuthTimeout <= 0 {
		o.AuthTimeout = DefaultAuthTimeout
	}
	if o.Recheck <= 0 {
		o.Recheck = DefaultRecheck
	}
	return o
}

// Stats are the handler's counters, for metrics.
type Stats struct {
	FeedClients     int64 // open feed connections
	FeedEvents      int64 // events sent on feeds
	FeedSlow        int64 // clients disconnected for falling behind
	AuthFailures    int64 // requests refused for a missing or bad token
	APIRequests     int64 // REST requests served
	FeedConnections int64 // feed connections accepted, ever
}

// Handler serves the dashboard, the REST API and the feed. It is safe for
// concurrent use. Mount it at "/" (it routes /api/v1/ itself).
type Handler struct {
	dir  *tenant.Directory
	opts Options
	mux  *http.ServeMux

	// feeds is canceled by Shutdown: it ends every open feed.
	feeds      context.Context
	stopFeeds  context.CancelFunc
	feedsWG    sync.WaitGroup
	shutdownMu sync.Mutex
	closed     bool

	tails *tails     // shared store tails of the feeds
	slots *feedSlots // open feeds per token and tenant
	// messages are the buffers the feeds build "events" messages in
	// (*[]byte), shared: an idle feed holds none.
	messages sync.Pool

	patterns []string // the API's routes, for Routes

	clients, events, slow, authFail, requests, accepted atomic.Int64
}

// New returns the handler of dir's tenants.
func New(dir *tenant.Directory, opts Options) *Handler {
	h := &Handler{dir: dir, opts: opts.withDefaults(), mux: http.NewServeMux()}
	h.feeds, h.stopFeeds = context.WithCancel(context.Background())
	h.tails = newTails(h.feeds, &h.feedsWG, h.opts.Logger)
	h.slots = newFeedSlots(h.opts.MaxFeedsPerToken, h.opts.MaxFeedsPerTenant)
	h.routes()
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Routes returns the patterns of the API's routes ("GET /api/v1/events/{id}"),
// the feed's included, in registration order: the tenant-isolation suite
// checks it has a case for each.
func (h *Handler) Routes() []string { return slices.Clone(h.patterns) }

// Stats returns the handler's counters.
func (h *Handler) Stats() Stats {
	return Stats{
		FeedClients: h.clients.Load(), FeedEvents: h.events.Load(), FeedSlow: h.slow.Load(),
		AuthFailures: h.authFail.Load(), APIRequests: h.requests.Load(), FeedConnections: h.accepted.Load(),
	}
}

// Shutdown closes every open feed with status 1001 (going away), so that
// clients reconnect elsewhere or later from their cursor, and waits for
// them to end or ctx to be done. http.Server.Shutdown does not wait for
// WebSockets (they are hijacked): call this beside it.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.shutdownMu.Lock()
	h.closed = true
	h.shutdownMu.Unlock()
	h.stopFeeds()
	done := make(chan struct{})
	go func() { h.feedsWG.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Handler) routes() {
	api := func(pattern string, fn func(http.ResponseWriter, *http.Request, *tenant.Scope)) {
		h.patterns = append(h.patterns, pattern)
		h.mux.Handle(pattern, h.authenticated(fn))
	}
	api("GET /api/v1/whoami", h.whoami)
	api("GET /api/v1/kinds", h.kinds)
	api("GET /api/v1/events", h.listEvents)
	api("GET /api/v1/events/{id}", h.getEvent)
	api("GET /api/v1/files", h.listFiles)
	api("GET /api/v1/sessions", h.listSessions)
	api("GET /api/v1/sessions/{id}", h.getSession)
	api("GET /api/v1/sessions/{id}/summary", h.sessionSummary)
	api("GET /api/v1/agents", h.listAgents)
	api("GET /api/v1/agents/{id}", h.getAgent)
	api("GET /api/v1/leases", h.listLeases)
	api("GET /api/v1/tasks", h.listTasks)
	api("GET /api/v1/tasks/{id}", h.getTask)
	api("GET /api/v1/projects", h.listProjects)
	api("GET /api/v1/projects/{id}", h.getProject)
	api("POST /api/v1/projects", h.createProject)
	api("GET /api/v1/tenant", h.getTenant)
	api("GET /api/v1/users", h.listUsers)
	api("GET /api/v1/tokens", h.listTokens)
	api("POST /api/v1/tokens", h.createToken)
	api("DELETE /api/v1/tokens/{id}", h.revokeToken)
	// People's write actions (actions.go).
	api("POST /api/v1/messages", h.sendMessage)
	api("POST /api/v1/tasks", h.createTask)
	api("PATCH /api/v1/tasks/{id}", h.changeTask)
	api("DELETE /api/v1/leases/{resource}", h.releaseLease)
	api("POST /api/v1/sessions/{id}/end", h.endSession)
	// Review before write (reviews.go).
	api("GET /api/v1/reviews", h.listReviews)
	api("GET /api/v1/reviews/{id}", h.getReview)
	api("POST /api/v1/reviews/{id}/accept", h.acceptReview)
	api("POST /api/v1/reviews/{id}/reject", h.rejectReview)
	api("GET /api/v1/projects/{id}/review-policy", h.getPolicy)
	api("PUT /api/v1/projects/{id}/review-policy", h.putPolicy)
	api("DELETE /api/v1/projects/{id}/review-policy", h.deletePolicy)
	api("GET /api/v1/inbox", h.listInbox)     // inbox.go
	api("POST /api/v1/inbox/ack", h.ackInbox) // inbox.go
	h.mux.HandleFunc("GET "+FeedPath, h.feed)
	h.patterns = append(h.patterns, "GET "+FeedPath)
	// Everything else under the API is a JSON 404 (after authentication,
	// so that probing reveals nothing about which routes exist).
	h.mux.Handle(APIPrefix, h.authenticated(func(w http.ResponseWriter, r *http.Request, _ *tenant.Scope) {
		writeError(w, http.StatusNotFound, "not_found", "no such API route: "+r.Method+" "+r.URL.Path)
	}))
	h.mux.Handle("/", h.static())
}

// authenticated resolves the request's bearer token to a scope and calls
// fn with it; without a valid token it answers 401 with a JSON error.
func (h *Handler) authenticated(fn func(http.ResponseWriter, *http.Request, *tenant.Scope)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.requests.Add(1)
		setAPIHeaders(w)
		sc, ok := h.authenticate(w, r)
		if !ok {
			return
		}
		fn(w, r, sc)
	})
}

// authenticate resolves the Authorization header, writing the error
// response when it fails. It does not cache: a revoked token is refused by
// the next request. Failures count against the remote address in the
// Directory's AuthLimits (shared with MCP over HTTP); a locked-out address
// gets 429 with Retry-After and code "rate_limited".
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (*tenant.Scope, bool) {
	secret, ok := bearer(r)
	if !ok {
		h.authFail.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer realm="coditect"`)
		writeError(w, http.StatusUnauthorized, "unauthorized",
			"send the header Authorization: Bearer <token>; create one with `coditect token create`")
		return nil, false
	}
	sc, err := h.dir.AuthenticateFrom(r.Context(), r.RemoteAddr, secret)
	if err != nil {
		var limited *tenant.RateLimitError
		if errors.As(err, &limited) {
			h.authFail.Add(1)
			h.opts.Logger.Warn("webview: too many failed authentications", "remote", r.RemoteAddr, "retry_after", limited.RetryAfter)
			secs := int(limited.RetryAfter / time.Second)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			writeError(w, http.StatusTooManyRequests, "rate_limited",
				fmt.Sprintf("too many failed authentications from this address; retry after %d s", secs))
			return nil, false
		}
		if tenant.Refused(err) {
			h.authFail.Add(1)
			w.Header().Set("WWW-Authenticate", `Bearer realm="coditect", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", strings.TrimPrefix(err.Error(), "tenant: "))
			return nil, false
		}
		h.opts.Logger.Error("webview: authentication failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the store is unavailable; retry shortly")
		return nil, false
	}
	return sc, true
}

// bearer returns the token of an Authorization: Bearer header.
func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func setAPIHeaders(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
}

// APIError is the body of every error response:
// {"error":{"code":…,"class":…,"message":…}}. Class is the layer error's
// class (invalid, not_found, conflict, forbidden, unavailable, or
// internal) for errors of the API's handlers; authentication failures
// carry only a code.
type APIError struct {
	Code    string `json:"code"`
	Class   string `json:"class,omitempty"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeClassedError(w, status, code, "", msg)
}

func writeClassedError(w http.ResponseWriter, status int, code, class, msg string) {
	writeJSON(w, status, struct {
		Error APIError `json:"error"`
	}{APIError{Code: code, Class: class, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}
