package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/tools"
)

// MCPPath is where the daemon mounts the MCP endpoint.
const MCPPath = "/mcp"

// DefaultMaxBody bounds an MCP request body (1 MiB) unless a served tool
// accepts larger arguments (the file writes: tools.MaxArgsOf), in which
// case the bound is that plus bodyEnvelope.
const DefaultMaxBody = 1 << 20

// batchRefused answers a JSON-RPC batch, on every transport: MCP removed
// batches in its 2025-06-18 revision, and mcp-go serves none.
const batchRefused = "JSON-RPC batches are not supported (MCP removed them in 2025-06-18): send one message at a time"

// bodyEnvelope is room for the JSON-RPC envelope around a tool's arguments.
const bodyEnvelope = 64 << 10

// BodyTimeout bounds the reading of a request body, from the start of the
// request: a client that sends its body slower than that is cut off. The
// response is not bounded (MCP streams, the WebSocket feed has no body).
const BodyTimeout = 30 * time.Second

// bodyDeadline gives every request with a body timeout to send it, by
// the connection's read deadline. net/http clears that deadline once the
// body has been read (it then watches the connection for the client going
// away), so a response streamed after the body is not cut.
func bodyDeadline(h http.Handler, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout))
		}
		h.ServeHTTP(w, r)
	})
}

// maxMessage is the largest JSON-RPC message the server reads, over HTTP
// (a request body) and stdio (a line): DefaultMaxBody, or more when a
// served tool accepts larger arguments.
func (s *Server) maxMessage() int64 {
	return max(DefaultMaxBody, int64(tools.MaxArgsOf(s.toolsets))+bodyEnvelope)
}

// HTTPOptions configure the MCP HTTP handler.
type HTTPOptions struct {
	// AllowedOrigins are browser origins allowed besides loopback ones
	// (http://localhost:*, http://127.0.0.1:*, http://[::1]:*): exact
	// origins such as "https://dash.example.com", or a scheme pattern
	// such as "vscode-webview://*". Requests without an Origin header (every
	// non-browser MCP client) are not affected.
	AllowedOrigins []string
	// MaxBody bounds a request body; zero means DefaultMaxBody, or more
	// when a served tool accepts larger arguments.
	MaxBody int64
}

// HTTPHandler returns the Streamable HTTP handler for MCPPath, serving
// both protocol eras: 2025-11-25 clients initialize (stateless session
// ids, which survive a restart), 2026-07-28 clients send server/discover
// and carry their clientInfo in every request.
//
// In order, every request is checked for:
//   - DNS rebinding: on a loopback connection the Host header must name a
//     loopback host, and a browser Origin must be loopback or allowed
//     (403 otherwise; mcp-go's own Host check stays on behind ours);
//   - a bearer token (Authorization: Bearer cdt_…) that the directory
//     authenticates: missing or refused is 401 with WWW-Authenticate and
//     a JSON-RPC error body; a store failure is 503; an address that
//     failed too often (the Directory's AuthLimits, shared with the REST
//     API and the feed) is 429 with Retry-After and error code -32029.
//
// The authenticated scope is bound to the request through mcp-go's
// WithHTTPContextFunc: each request acts in exactly one tenant, the
// token's, and the tools never see another.
func (s *Server) HTTPHandler(opts HTTPOptions) http.Handler {
	maxBody := opts.MaxBody
	if maxBody <= 0 {
		maxBody = s.maxMessage()
	}
	streamable := mcpserver.NewStreamableHTTPServer(s.mcp,
		mcpserver.WithHTTPContextFunc(func(ctx context.Context, r *http.Request) context.Context {
			if p := principalFrom(r.Context()); p != nil {
				return withPrincipal(ctx, p)
			}
			return ctx
		}),
		mcpserver.WithStreamableHTTPLogger(s.logger),
	)
	tokens := &tokenCache{ttl: s.recheck, byHash: map[[sha256.Size]byte]cachedScope{}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if msg := rebinding(r, opts.AllowedOrigins); msg != "" {
			s.logger.Warn("mcp http: refused", "reason", msg, "remote", r.RemoteAddr)
			writeRPCError(w, http.StatusForbidden, -32000, msg)
			return
		}
		secret, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="coditect"`)
			writeRPCError(w, http.StatusUnauthorized, -32001,
				"Unauthorized: send the header Authorization: Bearer <token>; an operator creates one with `coditect token create`")
			return
		}
		sc, err := tokens.authenticate(r.Context(), s.dir, r.RemoteAddr, secret)
		if err != nil {
			var limited *tenant.RateLimitError
			if errors.As(err, &limited) {
				s.logger.Warn("mcp http: too many failed authentications", "remote", r.RemoteAddr, "retry_after", limited.RetryAfter)
				w.Header().Set("Retry-After", strconv.Itoa(int(limited.RetryAfter/time.Second)))
				writeRPCError(w, http.StatusTooManyRequests, rpcRateLimited,
					fmt.Sprintf("Too many failed authentications from this address: retry after %d s", int(limited.RetryAfter/time.Second)))
				return
			}
			if !tenant.Refused(err) {
				s.logger.Error("mcp http: authentication failed", "err", err)
				writeRPCError(w, http.StatusServiceUnavailable, -32603, "the store is unavailable; retry shortly")
				return
			}
			desc := strings.TrimPrefix(err.Error(), "tenant: ")
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="coditect", error="invalid_token", error_description=%q`, desc))
			writeRPCError(w, http.StatusUnauthorized, -32001, "Unauthorized: "+desc)
			return
		}
		p := newPrincipal(sc, 0)
		sid := r.Header.Get(mcpserver.HeaderKeySessionID)
		if sid != "" {
			p.acted = s.agents.conn(sc.Principal(), sid)
		}
		r = r.WithContext(withPrincipal(r.Context(), p))
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
			if r.Method == http.MethodPost && refuseBody(w, r) {
				return
			}
		}
		streamable.ServeHTTP(w, r)
		if r.Method == http.MethodDelete && sid != "" {
			s.disconnected(r.Context(), sc.Principal(), sid)
		}
	})
}

// refuseBody answers a POST body that mcp-go would mishandle, and
// reports whether it did: a JSON-RPC batch (batchRefused), and a request
// whose id is neither a string nor a number (requestIDProblem), which the
// stdio server refuses too. Any other body is left for mcp-go, which
// answers one that is not JSON with a parse error; a body that could not
// be read whole (over maxBody) reaches it with its read error.
func refuseBody(w http.ResponseWriter, r *http.Request) bool {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), errReader{err}), r.Body}
		return false
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{bytes.NewReader(body), r.Body}
	if start := bytes.TrimLeft(body, " \t\r\n"); len(start) > 0 && start[0] == '[' {
		if !json.Valid(start) {
			return false
		}
		writeRPCError(w, http.StatusBadRequest, mcp.INVALID_REQUEST, batchRefused)
		return true
	}
	if !mayHaveOddID(body) {
		return false
	}
	var m struct {
		Method string          `json:"method"`
		ID     json.RawMessage `json:"id"`
	}
	if json.Unmarshal(body, &m) != nil {
		return false
	}
	msg := requestIDProblem(m.ID, m.Method)
	if msg == "" {
		return false
	}
	writeRPCError(w, http.StatusBadRequest, mcp.INVALID_REQUEST, msg)
	return true
}

// errReader fails every read with err.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// disconnected marks offline the agents a legacy HTTP client acted as in
// its MCP session sid, which it just ended (DELETE): the one way an HTTP
// client says it is going away. A 2026-07-28 client has no session and
// no connection to lose; its agents turn stale after their TTL and gone
// after agent.GoneAfter TTLs, as do those of a client that vanishes
// without a DELETE.
func (s *Server) disconnected(ctx context.Context, p tenant.Principal, sid string) {
	acted := s.agents.endConn(p, sid)
	if acted == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	s.markOffline(ctx, acted, "its HTTP client ended its MCP session")
}

// rpcRateLimited is the JSON-RPC error code of a 429: in the range
// JSON-RPC leaves to servers, chosen to read like the HTTP status.
const rpcRateLimited = -32029

// tokenCache remembers the scopes of recently authenticated tokens for
// ttl (the server's Recheck), so that a busy client costs one token lookup
// per ttl rather than one per request. Revocation, expiry and a disabled
// tenant therefore take effect within ttl, as for a stdio process. Only
// successes are cached, by the token's hash.
type tokenCache struct {
	ttl time.Duration

	mu     sync.Mutex
	byHash map[[sha256.Size]byte]cachedScope
}

type cachedScope struct {
	sc *tenant.Scope
	at time.Time
}

func (c *tokenCache) authenticate(ctx context.Context, dir *tenant.Directory, remote, secret string) (*tenant.Scope, error) {
	h := sha256.Sum256([]byte(secret))
	now := time.Now()
	c.mu.Lock()
	e, ok := c.byHash[h]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < c.ttl {
		return e.sc, nil
	}
	sc, err := dir.AuthenticateFrom(ctx, remote, secret)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		delete(c.byHash, h)
		return nil, err
	}
	if len(c.byHash) >= maxBound {
		clear(c.byHash)
	}
	c.byHash[h] = cachedScope{sc: sc, at: now}
	return sc, nil
}

// bearer returns the token of an Authorization: Bearer header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// rebinding returns why a request looks like DNS rebinding or a foreign
// browser page, "" when it does not.
func rebinding(r *http.Request, allowed []string) string {
	if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && local != nil {
		if loopback(local.String()) && !loopback(r.Host) {
			return fmt.Sprintf("Forbidden: Host %q is not a loopback name on a loopback connection", r.Host)
		}
	}
	origin := r.Header.Get("Origin")
	if origin == "" || originAllowed(origin, allowed) {
		return ""
	}
	return fmt.Sprintf("Forbidden: Origin %q is not allowed", origin)
}

func originAllowed(origin string, allowed []string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Scheme == "" {
		return false
	}
	if (u.Scheme == "http" || u.Scheme == "https") && loopback(u.Host) {
		return true
	}
	for _, a := range allowed {
		if a == origin {
			return true
		}
		if scheme, pattern, ok := strings.Cut(a, "://"); ok && scheme == u.Scheme {
			if m, _ := path.Match(pattern, u.Host); m {
				return true
			}
		}
	}
	return false
}

// loopback reports whether a host or host:port names a loopback address.
func loopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = strings.Trim(hostport, "[]")
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// writeRPCError answers a refused HTTP request with a JSON-RPC error body,
// which MCP clients show to the user.
func writeRPCError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(mcp.JSONRPCError{
		JSONRPC: mcp.JSONRPC_VERSION,
		Error:   mcp.NewJSONRPCErrorDetails(code, msg, nil),
	})
}
