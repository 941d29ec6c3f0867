// Package servertest runs Coditect's MCP HTTP endpoint on a loopback
// httptest server over a fresh embedded store, for tests of the transport
// and of MCP clients. It owns nothing else; it imports server, storage and
// the storage layers, and only tests import it.
package servertest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/coditect/coditect/server"
	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
)

// Server is an MCP endpoint at URL (…/mcp) over its own store.
type Server struct {
	// HTTP is the loopback test server; its handler mounts server.MCPPath.
	HTTP *httptest.Server
	// URL is the MCP endpoint.
	URL string
	// StoreURL names the store, so a subprocess can open it too.
	StoreURL string
	Store    kv.Store
	Dir      *tenant.Directory
	MCP      *server.Server
}

// New starts a server with opts over a new embedded store in tb.TempDir(),
// with the audit spool beside it as the daemon has (unless opts names
// one); it stops when the test ends.
func New(tb testing.TB, opts server.Options, httpOpts server.HTTPOptions) *Server {
	tb.Helper()
	ctx := context.Background()
	storeURL := "sqlite://" + filepath.ToSlash(filepath.Join(tb.TempDir(), "coditect.db"))
	st, err := storage.Open(ctx, storeURL)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tenant.NewDirectory(st, "servertest")
	if opts.SpoolDir == "" {
		opts.SpoolDir = storage.SpoolDir(storeURL)
	}
	if opts.StoreURL == "" {
		opts.StoreURL = storeURL
	}
	srv, err := server.New(dir, opts)
	if err != nil {
		tb.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(server.MCPPath, srv.HTTPHandler(httpOpts))
	hs := httptest.NewServer(mux)
	tb.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			tb.Error(err)
		}
		st.Close()
	})
	return &Server{HTTP: hs, URL: hs.URL + server.MCPPath, StoreURL: storeURL, Store: st, Dir: dir, MCP: srv}
}

// Token creates the tenant and user when they do not exist and issues a
// token of role for them; it returns the secret.
func (s *Server) Token(tb testing.TB, tenantID, user string, role tenant.Role) string {
	tb.Helper()
	ctx := context.Background()
	if _, err := s.Dir.CreateTenant(ctx, tenantID, ""); err != nil && !errors.Is(err, tenant.ErrExists) {
		tb.Fatal(err)
	}
	if _, err := s.Dir.CreateUser(ctx, tenantID, user, ""); err != nil && !errors.Is(err, tenant.ErrExists) {
		tb.Fatal(err)
	}
	secret, _, err := s.Dir.IssueToken(ctx, tenantID, user, role, tenant.TokenOptions{Label: "servertest"})
	if err != nil {
		tb.Fatal(err)
	}
	return secret
}

// Project registers dir as a checkout root of the tenant's project name
// (created when missing), as an admin does with `coditect project add`,
// and returns the project's id. A token principal can start sessions only
// in registered roots.
func (s *Server) Project(tb testing.TB, tenantID, name, dir string) string {
	tb.Helper()
	ctx := context.Background()
	sc, err := s.Dir.Local(ctx, tenantID, "operator")
	if err != nil {
		tb.Fatal(err)
	}
	p, err := project.Get(ctx, sc, name)
	if errors.Is(err, project.ErrNotFound) {
		p, err = project.Create(ctx, sc, project.Spec{Name: name})
	}
	if err != nil {
		tb.Fatal(err)
	}
	p, err = project.AddRoot(ctx, sc, p.ID, dir, project.RootOptions{Protected: server.ProtectedPaths(s.StoreURL, "")})
	if err != nil {
		tb.Fatal(err)
	}
	return p.ID
}

// Scope returns the scope of a token, for inspecting its tenant's data.
func (s *Server) Scope(tb testing.TB, secret string) *tenant.Scope {
	tb.Helper()
	sc, err := s.Dir.Authenticate(context.Background(), secret)
	if err != nil {
		tb.Fatal(err)
	}
	return sc
}

// BearerClient returns an HTTP client that sends secret as a bearer token.
func BearerClient(secret string) *http.Client {
	return &http.Client{Transport: bearerTransport{secret: secret, base: http.DefaultTransport}}
}

type bearerTransport struct {
	secret string
	base   http.RoundTripper
}

func (t bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.secret)
	return t.base.RoundTrip(r)
}
