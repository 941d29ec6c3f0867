package server

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/user"
	"strings"
	"sync"
	"time"

	"github.com/coditect/coditect/storage/tenant"
)

// TokenEnv names the environment variable holding an API token for the
// stdio transports.
const TokenEnv = "CODITECT_TOKEN"

// DefaultTenant is the tenant of a local identity when none is named.
const DefaultTenant = "default"

// StdioIdentity is what a stdio process was told about who runs it.
type StdioIdentity struct {
	// Token is an API token (CODITECT_TOKEN); when set it decides the
	// tenant and user.
	Token string
	// Tenant and User name a trusted local identity (--tenant, --user);
	// empty means DefaultTenant and the OS user.
	Tenant, User string
	// StoreURL is the store's URL: a local identity is trusted only on an
	// embedded store, whose file the OS user owns.
	StoreURL string
}

// Errors of identity resolution.
var (
	// ErrIdentityConflict: a token and a local identity were both given.
	ErrIdentityConflict = errors.New("both a token and --tenant/--user given")
	// ErrTokenRequired: the store is shared (FoundationDB), so a local
	// identity is not trusted.
	ErrTokenRequired = errors.New("a token is required")
)

// ResolveStdio returns the scope a stdio process acts in: the token's
// (Authenticate) when one is set, else the trusted local identity
// (Directory.Local, which creates the tenant and user on first use) on an
// embedded store. It never falls back from a refused token to the local
// identity.
func ResolveStdio(ctx context.Context, dir *tenant.Directory, id StdioIdentity) (*tenant.Scope, error) {
	if id.Token != "" {
		if id.Tenant != "" || id.User != "" {
			return nil, fmt.Errorf("%w: %s names the tenant and user; drop --tenant/--user or unset %s", ErrIdentityConflict, TokenEnv, TokenEnv)
		}
		sc, err := dir.Authenticate(ctx, strings.TrimSpace(id.Token))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", TokenEnv, err)
		}
		return sc, nil
	}
	if !EmbeddedStore(id.StoreURL) {
		return nil, fmt.Errorf("%w: the store %s is shared, so a local identity is not trusted there; set %s (coditect token create)",
			ErrTokenRequired, id.StoreURL, TokenEnv)
	}
	ten, usr := id.Tenant, id.User
	if ten == "" {
		ten = DefaultTenant
	}
	if usr == "" {
		usr = OSUser()
	}
	return dir.Local(ctx, ten, usr)
}

// EmbeddedStore reports whether a store URL names the embedded (SQLite)
// store, a file on this machine, as storage.Open reads it.
func EmbeddedStore(rawURL string) bool {
	if rawURL == "" {
		return false
	}
	if !strings.Contains(rawURL, ":") {
		return true
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	return u.Scheme == "sqlite" || u.Scheme == "file"
}

// OSUser is the local identity's default user: the OS account name, the
// one rule for every mode (the CLI, coditect mcp, coditect ide, the
// daemon's first admin).
func OSUser() string { return osUser(user.Current, os.Getenv) }

// osUser names the OS account: current's user name, else $USER, else
// $USERNAME (Windows), else "local"; without the DOMAIN\ that Windows puts
// before a name, so that every mode acts as the same user.
func osUser(current func() (*user.User, error), getenv func(string) string) string {
	var names []string
	if u, err := current(); err == nil {
		names = append(names, u.Username)
	}
	for _, n := range append(names, getenv("USER"), getenv("USERNAME")) {
		if i := strings.LastIndexByte(n, '\\'); i >= 0 {
			n = n[i+1:]
		}
		if n != "" {
			return n
		}
	}
	return "local"
}

// principal is an authenticated scope with the time it was last
// re-validated. A stdio process holds one for its whole life, so it
// re-checks the token (revocation, expiry, a disabled tenant) at most every
// recheck; an HTTP request authenticates afresh.
type principal struct {
	sc      *tenant.Scope
	recheck time.Duration
	// addedKeys starts the idempotency keys the connection's forwarder
	// adds to calls (tools.Caller.AddedKeys); "" when it adds none.
	addedKeys string

	mu      sync.Mutex
	checked time.Time
	// acted are the agents the principal's connection acted as: a stdio
	// process, or a legacy HTTP client's MCP session, marks them offline
	// when it ends.
	acted *actedSet
}

// actedSet is the agents one connection acted as, by id, with a scope
// acting as each. It is safe for concurrent use.
type actedSet struct {
	mu sync.Mutex
	m  map[string]*tenant.Scope
}

// maxActed bounds the agents one connection remembers acting as.
const maxActed = 1024

// add remembers that the connection acted as sc's agent.
func (a *actedSet) add(sc *tenant.Scope) {
	id := sc.Principal().Agent
	if id == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.m[id]; ok || len(a.m) >= maxActed {
		return
	}
	if a.m == nil {
		a.m = map[string]*tenant.Scope{}
	}
	a.m[id] = sc
}

// scopes returns a scope acting as each agent the connection acted as.
func (a *actedSet) scopes() []*tenant.Scope {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*tenant.Scope, 0, len(a.m))
	for _, sc := range a.m {
		out = append(out, sc)
	}
	return out
}

// actedAs remembers that the principal's connection acted as sc's agent.
func (p *principal) actedAs(sc *tenant.Scope) { p.acted.add(sc) }

func newPrincipal(sc *tenant.Scope, recheck time.Duration) *principal {
	return &principal{sc: sc, recheck: recheck, checked: time.Now(), acted: &actedSet{}}
}

// scope returns the principal's scope after re-validating it when due.
func (p *principal) scope(ctx context.Context) (*tenant.Scope, error) {
	if p.recheck <= 0 {
		return p.sc, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.checked) < p.recheck {
		return p.sc, nil
	}
	if err := p.sc.Check(ctx); err != nil {
		return nil, err
	}
	p.checked = time.Now()
	return p.sc, nil
}

type principalKey struct{}

func withPrincipal(ctx context.Context, p *principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

func principalFrom(ctx context.Context) *principal {
	p, _ := ctx.Value(principalKey{}).(*principal)
	return p
}
