package tenant

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
)

// Token is an API token's record. The secret is never stored: only its
// SHA-256, under a global index, so a token resolves to its tenant without
// the caller naming one.
type Token struct {
	ID      string    `json:"id"` // public: the first 16 hex digits of the hash
	Tenant  string    `json:"tenant"`
	User    string    `json:"user"`
	Role    Role      `json:"role"`
	Agent   string    `json:"agent,omitempty"` // the agent the token is for, if any
	Label   string    `json:"label,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
	Revoked time.Time `json:"revoked,omitzero"`
	Hash    []byte    `json:"hash"`
}

// TokenOptions shape a new token.
type TokenOptions struct {
	Label string
	Agent string
	// TTL makes the token expire; zero means never.
	TTL time.Duration
}

// tokenPrefix marks Coditect tokens, so secret scanners and people can
// recognise one.
const tokenPrefix = "cdt_"

// secretBytes is the token's randomness: 256 bits.
const secretBytes = 32

var tokenLen = len(tokenPrefix) + base64.RawURLEncoding.EncodedLen(secretBytes)

func hashToken(secret string) [sha256.Size]byte { return sha256.Sum256([]byte(secret)) }

// IssueToken creates a token for a user of a tenant and returns its secret,
// which is shown once and never stored.
func (d *Directory) IssueToken(ctx context.Context, tenantID, userID string, role Role, opts TokenOptions) (string, Token, error) {
	return d.issue(ctx, tenantID, userID, role, opts, d.operator)
}

func (d *Directory) issue(ctx context.Context, tenantID, userID string, role Role, opts TokenOptions, by string) (string, Token, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return "", Token{}, err
	}
	if opts.TTL < 0 {
		return "", Token{}, fmt.Errorf("tenant: %w: negative token TTL", ErrInvalid)
	}
	if err := checkName("label", opts.Label); err != nil {
		return "", Token{}, err
	}
	if len(opts.Agent) > keyspace.MaxIDSize {
		return "", Token{}, fmt.Errorf("tenant: %w: agent id too long", ErrInvalid)
	}
	sp, err := space(tenantID)
	if err != nil {
		return "", Token{}, err
	}
	ukey, err := userKey(sp, userID)
	if err != nil {
		return "", Token{}, err
	}
	raw := make([]byte, secretBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", Token{}, err
	}
	secret := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	h := hashToken(secret)
	now := d.now().UTC()
	tok := Token{ID: hex.EncodeToString(h[:8]), Tenant: tenantID, User: userID, Role: role, Agent: opts.Agent,
		Label: opts.Label, Created: now, Hash: h[:]}
	if opts.TTL > 0 {
		tok.Expires = now.Add(opts.TTL)
	}
	ref, _ := sp.TokenRef(tok.ID)
	_, err = d.store.Update(ctx, func(tx kv.Tx) error {
		t, err := loadTenant(tx, tenantID)
		if err != nil {
			return err
		}
		if t.Disabled {
			return fmt.Errorf("tenant: %w: %q", ErrTenantDisabled, tenantID)
		}
		var u User
		ok, err := getJSON(tx, ukey, &u)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("tenant: %w: user %q in tenant %q", ErrNotFound, userID, tenantID)
		}
		if err := setJSON(tx, keyspace.Token(h), tok); err != nil {
			return err
		}
		tx.Set(ref, h[:])
		_, err = audit.NewLog(d.store, sp).Writer(tx).Append(audit.Event{
			Kind: "token.issued", User: userID, Summary: fmt.Sprintf("token %s issued to %s as %s", tok.ID, userID, role),
			Attrs: map[string]any{"by": by, "token": tok.ID, "role": string(role), "label": opts.Label, "expires": tok.Expires},
		})
		return err
	})
	if err != nil {
		return "", Token{}, err
	}
	return secret, tok, nil
}

// ListTokens returns a tenant's tokens (without secrets), revoked and
// expired ones included. It reads them in pages, one transaction each
// (see tokenPageSize): a token issued or revoked meanwhile may be listed
// as it was or as it is, and no token is listed twice.
func (d *Directory) ListTokens(ctx context.Context, tenantID string) ([]Token, error) {
	return d.listTokens(ctx, tenantID, tokenPageSize, tokenPageTime)
}

// A page of a token listing ends after tokenPageSize tokens or once it
// has read for tokenPageTime (after at least one token): each token is a
// point read after its reference, a network round trip on FoundationDB,
// and a transaction must end well inside kv.MaxTransactionAge.
const (
	tokenPageSize = 256
	tokenPageTime = time.Second
)

func (d *Directory) listTokens(ctx context.Context, tenantID string, size int, budget time.Duration) ([]Token, error) {
	sp, err := space(tenantID)
	if err != nil {
		return nil, err
	}
	var out []Token
	from, end := sp.TokenRefs().Range()
	for from != nil {
		var page []Token
		var next []byte
		err = d.store.View(ctx, func(tx kv.ReadTx) error {
			page, next = page[:0], nil
			start := time.Now()
			if _, err := loadTenant(tx, tenantID); err != nil {
				return err
			}
			it := tx.GetRange(from, end, kv.RangeOptions{Limit: size})
			n := 0
			for it.Next() {
				n++
				p := it.KeyValue()
				var h [sha256.Size]byte
				copy(h[:], p.Value)
				var t Token
				ok, err := getJSON(tx, keyspace.Token(h), &t)
				if err != nil {
					return err
				}
				if ok {
					page = append(page, t)
				}
				if n == size || time.Since(start) >= budget {
					next = kv.KeyAfter(p.Key)
					break
				}
			}
			return it.Err()
		})
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		from = next
	}
	return out, nil
}

// RevokeToken revokes a tenant's token by id. Revocation is immediate for
// every later Authenticate and Scope.Check.
func (d *Directory) RevokeToken(ctx context.Context, tenantID, id string) error {
	return d.revoke(ctx, tenantID, id, d.operator)
}

// tokenByID reads the token record of tenant's token id and its hash.
func tokenByID(tx kv.ReadTx, sp keyspace.TenantSpace, tenantID, id string) (Token, [sha256.Size]byte, error) {
	var h [sha256.Size]byte
	ref, err := sp.TokenRef(id)
	if err != nil {
		return Token{}, h, fmt.Errorf("tenant: %w: %v", ErrInvalid, err)
	}
	hb, err := tx.Get(ref)
	if err != nil {
		return Token{}, h, err
	}
	copy(h[:], hb)
	var t Token
	ok := false
	if hb != nil {
		if ok, err = getJSON(tx, keyspace.Token(h), &t); err != nil {
			return Token{}, h, err
		}
	}
	if !ok {
		return Token{}, h, fmt.Errorf("tenant: %w: token %q in tenant %q", ErrNotFound, id, tenantID)
	}
	return t, h, nil
}

func (d *Directory) revoke(ctx context.Context, tenantID, id, by string) error {
	sp, err := space(tenantID)
	if err != nil {
		return err
	}
	_, err = d.store.Update(ctx, func(tx kv.Tx) error {
		t, h, err := tokenByID(tx, sp, tenantID, id)
		if err != nil {
			return err
		}
		if !t.Revoked.IsZero() {
			return nil
		}
		t.Revoked = d.now().UTC()
		if err := setJSON(tx, keyspace.Token(h), t); err != nil {
			return err
		}
		_, err = audit.NewLog(d.store, sp).Writer(tx).Append(audit.Event{
			Kind: "token.revoked", User: t.User, Summary: fmt.Sprintf("token %s of %s revoked", id, t.User),
			Attrs: map[string]any{"by": by, "token": id},
		})
		return err
	})
	return err
}

// Authenticate resolves a token's secret to a scope. It refuses unknown,
// malformed, revoked and expired tokens and those of disabled tenants or
// users, each with its own error.
func (d *Directory) Authenticate(ctx context.Context, secret string) (*Scope, error) {
	var p Principal
	var sp keyspace.TenantSpace
	err := d.store.View(ctx, func(tx kv.ReadTx) error {
		var err error
		p, sp, err = d.resolve(tx, secret)
		return err
	})
	if err != nil {
		return nil, err
	}
	return newScope(d, sp, p), nil
}

// resolve checks a token inside a transaction.
func (d *Directory) resolve(tx kv.ReadTx, secret string) (Principal, keyspace.TenantSpace, error) {
	var p Principal
	var sp keyspace.TenantSpace
	if len(secret) != tokenLen || !strings.HasPrefix(secret, tokenPrefix) {
		return p, sp, fmt.Errorf("tenant: %w", ErrUnauthenticated)
	}
	h := hashToken(secret)
	var t Token
	ok, err := getJSON(tx, keyspace.Token(h), &t)
	if err != nil {
		return p, sp, err
	}
	// The lookup is by hash; comparing in constant time as well costs
	// nothing and keeps the check independent of how the store matched.
	if !ok || subtle.ConstantTimeCompare(t.Hash, h[:]) != 1 {
		return p, sp, fmt.Errorf("tenant: %w", ErrUnauthenticated)
	}
	if err := d.checkToken(tx, t); err != nil {
		return p, sp, err
	}
	sp, err = space(t.Tenant)
	if err != nil {
		return p, sp, err
	}
	return Principal{Tenant: t.Tenant, User: t.User, Role: t.Role, Agent: t.Agent, TokenID: t.ID, secretHash: h}, sp, nil
}

// checkToken refuses a token that is revoked or expired, or whose tenant
// or user is disabled or gone: the rule Authenticate and Scope.Check share.
func (d *Directory) checkToken(tx kv.ReadTx, t Token) error {
	if !t.Revoked.IsZero() {
		return fmt.Errorf("tenant: %w: token %s was revoked at %s", ErrTokenRevoked, t.ID, t.Revoked.Format(time.RFC3339))
	}
	if !t.Expires.IsZero() && !d.now().Before(t.Expires) {
		return fmt.Errorf("tenant: %w: token %s expired at %s", ErrTokenExpired, t.ID, t.Expires.Format(time.RFC3339))
	}
	return checkHolder(tx, t.Tenant, t.User)
}

// checkHolder refuses a principal whose tenant or user is disabled or
// gone.
func checkHolder(tx kv.ReadTx, tenantID, userID string) error {
	ten, err := loadTenant(tx, tenantID)
	if err != nil {
		return err
	}
	if ten.Disabled {
		return fmt.Errorf("tenant: %w: %q", ErrTenantDisabled, tenantID)
	}
	sp, err := space(tenantID)
	if err != nil {
		return err
	}
	ukey, err := userKey(sp, userID)
	if err != nil {
		return err
	}
	var u User
	if ok, err := getJSON(tx, ukey, &u); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("tenant: %w: user %q of tenant %q no longer exists", ErrUnauthenticated, userID, tenantID)
	}
	if u.Disabled {
		return fmt.Errorf("tenant: %w: %q in tenant %q", ErrUserDisabled, userID, tenantID)
	}
	return nil
}

// Refused reports whether err, from Authenticate or Scope.Check, refuses
// the credentials (unknown, revoked or expired token; disabled or missing
// tenant or user) rather than failing to check them (the store is
// unavailable).
func Refused(err error) bool {
	for _, e := range []error{ErrUnauthenticated, ErrTokenRevoked, ErrTokenExpired, ErrTenantDisabled, ErrUserDisabled, ErrInvalid, ErrNotFound} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// ExtendToken moves the expiry of tenant's token id to ttl from now and
// returns the new expiry. It is for a process that keeps a short-lived
// token of its own alive while it runs (the IDE's dashboard login), so that
// the token dies within ttl of the process however the process ends. It
// refuses a token that never expires (ErrInvalid) and one Check would
// refuse (revoked, expired, its tenant or user disabled): a dead token
// stays dead. Extensions are not audited: a process renews every few
// seconds, and the token's issue and revocation are.
func (d *Directory) ExtendToken(ctx context.Context, tenantID, id string, ttl time.Duration) (time.Time, error) {
	if ttl <= 0 {
		return time.Time{}, fmt.Errorf("tenant: %w: token TTL %v is not positive", ErrInvalid, ttl)
	}
	sp, err := space(tenantID)
	if err != nil {
		return time.Time{}, err
	}
	var expires time.Time
	_, err = d.store.Update(ctx, func(tx kv.Tx) error {
		t, h, err := tokenByID(tx, sp, tenantID, id)
		if err != nil {
			return err
		}
		if t.Expires.IsZero() {
			return fmt.Errorf("tenant: %w: token %s never expires; only an expiring token can be extended", ErrInvalid, id)
		}
		if err := d.checkToken(tx, t); err != nil {
			return err
		}
		t.Expires = d.now().UTC().Add(ttl)
		expires = t.Expires
		return setJSON(tx, keyspace.Token(h), t)
	})
	if err != nil {
		return time.Time{}, err
	}
	return expires, nil
}
