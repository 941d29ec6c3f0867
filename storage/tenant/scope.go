package tenant

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
)

// Principal is who is acting: a user of one tenant with a role, possibly
// as an agent, resolved from a token or a trusted local identity.
type Principal struct {
	Tenant  string `json:"tenant"`
	User    string `json:"user"`
	Role    Role   `json:"role"`
	Agent   string `json:"agent,omitempty"`
	TokenID string `json:"token_id,omitempty"`
	// Local is set for a trusted local identity (no token).
	Local bool `json:"local,omitempty"`

	secretHash [sha256.Size]byte
}

// Scope is a tenant-bound handle for one principal: the only way the
// domain layers address a tenant's data. Get one from
// Directory.Authenticate or Directory.Local; it cannot be built otherwise.
type Scope struct {
	dir   *Directory
	space keyspace.TenantSpace
	p     Principal
	log   *audit.Log
}

func newScope(d *Directory, sp keyspace.TenantSpace, p Principal) *Scope {
	return &Scope{dir: d, space: sp, p: p, log: audit.NewLog(d.store, sp)}
}

// Principal returns who is acting.
func (s *Scope) Principal() Principal { return s.p }

// Tenant returns the tenant id.
func (s *Scope) Tenant() string { return s.p.Tenant }

// Store returns the store the scope's layers run on.
func (s *Scope) Store() kv.Store { return s.dir.store }

// Space returns the builder of the tenant's keys.
func (s *Scope) Space() keyspace.TenantSpace { return s.space }

// Log returns the tenant's audit log.
func (s *Scope) Log() *audit.Log { return s.log }

// WithAgent returns a scope for the same principal acting as agent id
// (after the agent registered). A token bound to an agent cannot act as
// another.
func (s *Scope) WithAgent(id string) (*Scope, error) {
	if s.p.TokenID != "" && s.p.Agent != "" && s.p.Agent != id {
		return nil, fmt.Errorf("tenant: %w: the token is bound to agent %q", ErrForbidden, s.p.Agent)
	}
	c := *s
	c.p.Agent = id
	return &c, nil
}

// CanWrite reports whether the principal may change the tenant's data.
func (s *Scope) CanWrite() error {
	if roleRank(s.p.Role) < roleRank(RoleMember) {
		return fmt.Errorf("tenant: %w: %s is a %s and may only read", ErrForbidden, s.p.User, s.p.Role)
	}
	return nil
}

// RequireAdmin reports whether the principal administers the tenant.
func (s *Scope) RequireAdmin() error {
	if s.p.Role != RoleAdmin {
		return fmt.Errorf("tenant: %w: %s is a %s; this needs an admin", ErrForbidden, s.p.User, s.p.Role)
	}
	return nil
}

// RecheckInterval is how often a long-lived connection (stdio MCP, the
// IDE, the feed, the HTTP token cache) re-validates its scope with Check:
// half the one second within which a revocation, an expiry or a disabled
// user or tenant must be refused everywhere, so the bar holds with the
// store read's time to spare. It costs one point read per connection per
// interval.
const RecheckInterval = 500 * time.Millisecond

// Check re-validates the scope as Authenticate would: its token (gone,
// revoked, expired), its tenant and its user (disabled or gone), for token
// and Local principals alike. Long-lived connections call it so that
// revocation and disabling take effect without reconnecting. An Operator
// scope has no token and fails it.
func (s *Scope) Check(ctx context.Context) error {
	return s.dir.store.View(ctx, func(tx kv.ReadTx) error {
		if s.p.Local {
			return checkHolder(tx, s.p.Tenant, s.p.User)
		}
		var t Token
		ok, err := getJSON(tx, keyspace.Token(s.p.secretHash), &t)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("tenant: %w", ErrUnauthenticated)
		}
		return s.dir.checkToken(tx, t)
	})
}

// Event returns an audit event of kind attributed to the principal.
func (s *Scope) Event(kind, summary string) audit.Event {
	ev := audit.Event{Kind: kind, User: s.p.User, Agent: s.p.Agent, Summary: summary}
	if s.p.Agent != "" {
		ev.Attribution = &audit.Attribution{Actor: audit.ActorAgent, AgentID: s.p.Agent, Evidence: "principal", Confidence: 1}
	}
	return ev
}

// Scoped administration: what an admin principal may do in its own tenant.

// IssueToken issues a token in the scope's tenant (admins only).
func (s *Scope) IssueToken(ctx context.Context, user string, role Role, opts TokenOptions) (string, Token, error) {
	if err := s.RequireAdmin(); err != nil {
		return "", Token{}, err
	}
	return s.dir.issue(ctx, s.p.Tenant, user, role, opts, s.p.User)
}

// ListTokens lists the scope's tenant's tokens (admins only).
func (s *Scope) ListTokens(ctx context.Context) ([]Token, error) {
	if err := s.RequireAdmin(); err != nil {
		return nil, err
	}
	return s.dir.ListTokens(ctx, s.p.Tenant)
}

// RevokeToken revokes a token of the scope's tenant (admins only).
func (s *Scope) RevokeToken(ctx context.Context, id string) error {
	if err := s.RequireAdmin(); err != nil {
		return err
	}
	return s.dir.revoke(ctx, s.p.Tenant, id, s.p.User)
}

// Users lists the scope's tenant's users.
func (s *Scope) Users(ctx context.Context) ([]User, error) {
	return s.dir.ListUsers(ctx, s.p.Tenant)
}

// TenantRecord returns the scope's tenant record.
func (s *Scope) TenantRecord(ctx context.Context) (Tenant, error) {
	return s.dir.GetTenant(ctx, s.p.Tenant)
}
