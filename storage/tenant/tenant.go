// Package tenant owns tenants, users and API tokens, and the one way to get
// a tenant-bound handle on the domain layers: a Scope, obtained from a
// Principal that a token (or a trusted local identity) resolved to. Layers
// take a *Scope; no layer API takes a tenant id from a request.
//
// Every mutation here is one transaction that also appends its audit event
// to the tenant's log. This package imports the kv contract, the keyspace
// and the audit log; the other layers import it.
package tenant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/errclass"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
)

// Role is what a principal may do in its tenant.
type Role string

// Roles, most powerful first.
const (
	RoleAdmin  Role = "admin"  // everything, including tokens and users
	RoleMember Role = "member" // read and write the tenant's work
	RoleViewer Role = "viewer" // read only
)

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleAdmin, RoleMember, RoleViewer:
		return r, nil
	}
	return "", fmt.Errorf("tenant: %w: role %q (want admin, member or viewer)", ErrInvalid, s)
}

// Errors. Each is wrapped with detail; match with errors.Is.
var (
	ErrInvalid         = errclass.New(errclass.Invalid, "invalid argument")
	ErrNotFound        = errclass.New(errclass.NotFound, "not found")
	ErrExists          = errclass.New(errclass.Conflict, "already exists")
	ErrUnauthenticated = errclass.New(errclass.Forbidden, "unknown or malformed token")
	ErrTokenRevoked    = errclass.New(errclass.Forbidden, "token revoked")
	ErrTokenExpired    = errclass.New(errclass.Forbidden, "token expired")
	ErrTenantDisabled  = errclass.New(errclass.Forbidden, "tenant disabled")
	ErrUserDisabled    = errclass.New(errclass.Forbidden, "user disabled")
	ErrForbidden       = errclass.New(errclass.Forbidden, "not allowed for this role")
)

// Tenant is a tenant's record.
type Tenant struct {
	ID        string          `json:"id"`
	Name      string          `json:"name,omitempty"`
	Disabled  bool            `json:"disabled,omitempty"`
	Created   time.Time       `json:"created"`
	Retention audit.Retention `json:"retention"`
}

// User is a user of one tenant.
type User struct {
	ID       string    `json:"id"`
	Name     string    `json:"name,omitempty"`
	Disabled bool      `json:"disabled,omitempty"`
	Created  time.Time `json:"created"`
}

// Directory is the operator's view of every tenant: it creates tenants,
// users and tokens, and resolves tokens to scopes. Transports use it only
// to Authenticate.
type Directory struct {
	store    kv.Store
	now      func() time.Time
	operator string
	limiter  authLimiter // AuthenticateFrom's failures per address
}

// NewDirectory returns the directory of a store. operator names who runs
// the operator commands (for the audit trail), e.g. "cli:alice".
func NewDirectory(store kv.Store, operator string) *Directory {
	if operator == "" {
		operator = "operator"
	}
	d := &Directory{store: store, now: time.Now, operator: operator}
	d.limiter.limits = AuthLimits{}.withDefaults()
	return d
}

// Store returns the underlying store.
func (d *Directory) Store() kv.Store { return d.store }

// AuditLog returns tenant id's audit log with no principal behind it. It is
// for the process's own housekeeping (appending the records a crashed
// process left in its write-ahead spool, tools.AuditQueue), never for a
// request: requests reach a log through their Scope.
func (d *Directory) AuditLog(id string) (*audit.Log, error) {
	sp, err := space(id)
	if err != nil {
		return nil, err
	}
	return audit.NewLog(d.store, sp), nil
}

func checkName(what, s string) error {
	if len(s) > 200 {
		return fmt.Errorf("tenant: %w: %s of %d bytes exceeds 200", ErrInvalid, what, len(s))
	}
	return nil
}

// checkID refuses ids an operator could not read or type back: the
// keyspace takes any UTF-8 (a tuple element cannot break out of its
// subspace), but an id with control characters or surrounding spaces would
// show in listings, logs and the dashboard as something other than it is.
func checkID(what, id string) error {
	for _, r := range id {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == utf8.RuneError {
			return fmt.Errorf("tenant: %w: %s %q contains a control character", ErrInvalid, what, id)
		}
	}
	if strings.TrimSpace(id) != id {
		return fmt.Errorf("tenant: %w: %s %q starts or ends with white space", ErrInvalid, what, id)
	}
	return nil
}

func space(id string) (keyspace.TenantSpace, error) {
	if err := checkID("tenant id", id); err != nil {
		return keyspace.TenantSpace{}, err
	}
	sp, err := keyspace.Tenant(id)
	if err != nil {
		return sp, fmt.Errorf("tenant: %w: %v", ErrInvalid, err)
	}
	return sp, nil
}

// userKey returns the key of user id's record in sp.
func userKey(sp keyspace.TenantSpace, id string) ([]byte, error) {
	if err := checkID("user id", id); err != nil {
		return nil, err
	}
	key, err := sp.User(id)
	if err != nil {
		return nil, fmt.Errorf("tenant: %w: %v", ErrInvalid, err)
	}
	return key, nil
}

func getJSON(tx kv.ReadTx, key []byte, v any) (bool, error) {
	b, err := tx.Get(key)
	if err != nil || b == nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("tenant: corrupt record %s: %w", kv.DisplayKey(key), err)
	}
	return true, nil
}

func setJSON(tx kv.Tx, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tx.Set(key, b)
	return nil
}

// loadTenant reads a tenant record in tx.
func loadTenant(tx kv.ReadTx, id string) (Tenant, error) {
	key, err := keyspace.TenantIndex(id)
	if err != nil {
		return Tenant{}, fmt.Errorf("tenant: %w: %v", ErrInvalid, err)
	}
	var t Tenant
	ok, err := getJSON(tx, key, &t)
	if err != nil {
		return t, err
	}
	if !ok {
		return t, fmt.Errorf("tenant: %w: tenant %q", ErrNotFound, id)
	}
	return t, nil
}

// CreateTenant creates a tenant.
func (d *Directory) CreateTenant(ctx context.Context, id, name string) (Tenant, error) {
	sp, err := space(id)
	if err != nil {
		return Tenant{}, err
	}
	if err := checkName("name", name); err != nil {
		return Tenant{}, err
	}
	key, _ := keyspace.TenantIndex(id)
	t := Tenant{ID: id, Name: name, Created: d.now().UTC()}
	_, err = d.store.Update(ctx, func(tx kv.Tx) error {
		if v, err := tx.Get(key); err != nil {
			return err
		} else if v != nil {
			return fmt.Errorf("tenant: %w: tenant %q", ErrExists, id)
		}
		if err := setJSON(tx, key, t); err != nil {
			return err
		}
		_, err := audit.NewLog(d.store, sp).Writer(tx).Append(audit.Event{
			Kind: "tenant.created", Summary: fmt.Sprintf("tenant %s created", id),
			Attrs: map[string]any{"by": d.operator, "name": name},
		})
		return err
	})
	return t, err
}

// GetTenant returns a tenant's record.
func (d *Directory) GetTenant(ctx context.Context, id string) (Tenant, error) {
	var t Tenant
	err := d.store.View(ctx, func(tx kv.ReadTx) error {
		var err error
		t, err = loadTenant(tx, id)
		return err
	})
	return t, err
}

// ListTenants returns every tenant, by id.
func (d *Directory) ListTenants(ctx context.Context) ([]Tenant, error) {
	var out []Tenant
	err := d.store.View(ctx, func(tx kv.ReadTx) error {
		out = out[:0]
		b, e := keyspace.TenantIndexes().Range()
		it := tx.GetRange(b, e, kv.RangeOptions{})
		for it.Next() {
			var t Tenant
			if err := json.Unmarshal(it.KeyValue().Value, &t); err != nil {
				return fmt.Errorf("tenant: corrupt tenant record: %w", err)
			}
			out = append(out, t)
		}
		return it.Err()
	})
	return out, err
}

// updateTenant applies change to a tenant record and logs kind.
func (d *Directory) updateTenant(ctx context.Context, id, kind, summary string, change func(*Tenant)) error {
	sp, err := space(id)
	if err != nil {
		return err
	}
	key, _ := keyspace.TenantIndex(id)
	_, err = d.store.Update(ctx, func(tx kv.Tx) error {
		t, err := loadTenant(tx, id)
		if err != nil {
			return err
		}
		change(&t)
		if err := setJSON(tx, key, t); err != nil {
			return err
		}
		_, err = audit.NewLog(d.store, sp).Writer(tx).Append(audit.Event{
			Kind: kind, Summary: summary, Attrs: map[string]any{"by": d.operator},
		})
		return err
	})
	return err
}

// SetTenantDisabled disables or enables a tenant. A disabled tenant's
// tokens are refused everywhere.
func (d *Directory) SetTenantDisabled(ctx context.Context, id string, disabled bool) error {
	kind, word := "tenant.enabled", "enabled"
	if disabled {
		kind, word = "tenant.disabled", "disabled"
	}
	return d.updateTenant(ctx, id, kind, fmt.Sprintf("tenant %s %s", id, word), func(t *Tenant) { t.Disabled = disabled })
}

// SetRetention sets a tenant's audit retention policy.
func (d *Directory) SetRetention(ctx context.Context, id string, r audit.Retention) error {
	if r.MaxAge < 0 || r.MaxEvents < 0 {
		return fmt.Errorf("tenant: %w: negative retention", ErrInvalid)
	}
	return d.updateTenant(ctx, id, "tenant.updated",
		fmt.Sprintf("retention set to max age %v, max events %d", r.MaxAge, r.MaxEvents),
		func(t *Tenant) { t.Retention = r })
}

// CreateUser adds a user to a tenant.
func (d *Directory) CreateUser(ctx context.Context, tenantID, id, name string) (User, error) {
	sp, err := space(tenantID)
	if err != nil {
		return User{}, err
	}
	key, err := userKey(sp, id)
	if err != nil {
		return User{}, err
	}
	if err := checkName("name", name); err != nil {
		return User{}, err
	}
	u := User{ID: id, Name: name, Created: d.now().UTC()}
	_, err = d.store.Update(ctx, func(tx kv.Tx) error {
		if _, err := loadTenant(tx, tenantID); err != nil {
			return err
		}
		if v, err := tx.Get(key); err != nil {
			return err
		} else if v != nil {
			return fmt.Errorf("tenant: %w: user %q in tenant %q", ErrExists, id, tenantID)
		}
		if err := setJSON(tx, key, u); err != nil {
			return err
		}
		_, err := audit.NewLog(d.store, sp).Writer(tx).Append(audit.Event{
			Kind: "user.created", User: id, Summary: fmt.Sprintf("user %s created", id),
			Attrs: map[string]any{"by": d.operator},
		})
		return err
	})
	return u, err
}

// ListUsers returns a tenant's users, by id.
func (d *Directory) ListUsers(ctx context.Context, tenantID string) ([]User, error) {
	sp, err := space(tenantID)
	if err != nil {
		return nil, err
	}
	var out []User
	err = d.store.View(ctx, func(tx kv.ReadTx) error {
		out = out[:0]
		if _, err := loadTenant(tx, tenantID); err != nil {
			return err
		}
		b, e := sp.Users().Range()
		it := tx.GetRange(b, e, kv.RangeOptions{})
		for it.Next() {
			var u User
			if err := json.Unmarshal(it.KeyValue().Value, &u); err != nil {
				return fmt.Errorf("tenant: corrupt user record: %w", err)
			}
			out = append(out, u)
		}
		return it.Err()
	})
	return out, err
}

// SetUserDisabled disables or enables a user; a disabled user's tokens are
// refused.
func (d *Directory) SetUserDisabled(ctx context.Context, tenantID, id string, disabled bool) error {
	sp, err := space(tenantID)
	if err != nil {
		return err
	}
	key, err := userKey(sp, id)
	if err != nil {
		return err
	}
	kind := "user.enabled"
	if disabled {
		kind = "user.disabled"
	}
	_, err = d.store.Update(ctx, func(tx kv.Tx) error {
		var u User
		ok, err := getJSON(tx, key, &u)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("tenant: %w: user %q in tenant %q", ErrNotFound, id, tenantID)
		}
		u.Disabled = disabled
		if err := setJSON(tx, key, u); err != nil {
			return err
		}
		_, err = audit.NewLog(d.store, sp).Writer(tx).Append(audit.Event{
			Kind: kind, User: id, Summary: fmt.Sprintf("user %s %s", id, kind[len("user."):]),
			Attrs: map[string]any{"by": d.operator},
		})
		return err
	})
	return err
}

// Local returns a scope for a trusted local identity: the OS user of a
// machine that owns the embedded store file (stdio modes without a token).
// It creates the tenant and the user when they do not exist yet; when both
// exist it only reads (LookupLocal). The principal is an admin of the
// tenant.
func (d *Directory) Local(ctx context.Context, tenantID, userID string) (*Scope, error) {
	if sc, err := d.LookupLocal(ctx, tenantID, userID); !errors.Is(err, ErrNotFound) {
		return sc, err
	}
	sp, err := space(tenantID)
	if err != nil {
		return nil, err
	}
	ukey, err := userKey(sp, userID)
	if err != nil {
		return nil, err
	}
	tkey, _ := keyspace.TenantIndex(tenantID)
	_, err = d.store.Update(ctx, func(tx kv.Tx) error {
		w := audit.NewLog(d.store, sp).Writer(tx)
		var t Tenant
		ok, err := getJSON(tx, tkey, &t)
		if err != nil {
			return err
		}
		if !ok {
			t = Tenant{ID: tenantID, Created: d.now().UTC()}
			if err := setJSON(tx, tkey, t); err != nil {
				return err
			}
			if _, err := w.Append(audit.Event{Kind: "tenant.created", Summary: fmt.Sprintf("tenant %s created for local user %s", tenantID, userID),
				Attrs: map[string]any{"by": "local:" + userID}}); err != nil {
				return err
			}
		}
		if t.Disabled {
			return fmt.Errorf("tenant: %w: %q", ErrTenantDisabled, tenantID)
		}
		var u User
		ok, err = getJSON(tx, ukey, &u)
		if err != nil {
			return err
		}
		if !ok {
			u = User{ID: userID, Created: d.now().UTC()}
			if err := setJSON(tx, ukey, u); err != nil {
				return err
			}
			if _, err := w.Append(audit.Event{Kind: "user.created", User: userID, Summary: fmt.Sprintf("local user %s created", userID),
				Attrs: map[string]any{"by": "local:" + userID}}); err != nil {
				return err
			}
		}
		if u.Disabled {
			return fmt.Errorf("tenant: %w: %q in tenant %q", ErrUserDisabled, userID, tenantID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return newScope(d, sp, localPrincipal(tenantID, userID)), nil
}

// LookupLocal returns the scope Local returns, for a tenant and a user
// that exist, without writing: a read-only command resolves its local
// identity while another process holds the store's write lock. It returns
// ErrNotFound when the tenant or the user does not exist (Local would
// create them) and refuses a disabled tenant or user as Local does.
func (d *Directory) LookupLocal(ctx context.Context, tenantID, userID string) (*Scope, error) {
	sp, err := space(tenantID)
	if err != nil {
		return nil, err
	}
	ukey, err := userKey(sp, userID)
	if err != nil {
		return nil, err
	}
	err = d.store.View(ctx, func(tx kv.ReadTx) error {
		t, err := loadTenant(tx, tenantID)
		if err != nil {
			return err
		}
		if t.Disabled {
			return fmt.Errorf("tenant: %w: %q", ErrTenantDisabled, tenantID)
		}
		var u User
		if ok, err := getJSON(tx, ukey, &u); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("tenant: %w: user %q in tenant %q", ErrNotFound, userID, tenantID)
		}
		if u.Disabled {
			return fmt.Errorf("tenant: %w: %q in tenant %q", ErrUserDisabled, userID, tenantID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return newScope(d, sp, localPrincipal(tenantID, userID)), nil
}

// localPrincipal is a trusted local identity: an admin of its tenant.
func localPrincipal(tenantID, userID string) Principal {
	return Principal{Tenant: tenantID, User: userID, Role: RoleAdmin, Local: true}
}

// roleRank orders roles for comparisons.
func roleRank(r Role) int {
	i := slices.Index(roles, r)
	if i < 0 {
		return 0
	}
	return len(roles) - i
}

var roles = []Role{RoleAdmin, RoleMember, RoleViewer}

// SweepRetention enforces every tenant's retention policy on its audit log
// (see audit.Log.Sweep) and returns how many events it removed per tenant.
// Tenants without a policy are skipped; disabled tenants are swept too.
func (d *Directory) SweepRetention(ctx context.Context) (map[string]int, error) {
	ts, err := d.ListTenants(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, t := range ts {
		if t.Retention == (audit.Retention{}) {
			continue
		}
		sp, err := space(t.ID)
		if err != nil {
			return out, err
		}
		n, err := audit.NewLog(d.store, sp).Sweep(ctx, t.Retention)
		out[t.ID] = n
		if err != nil {
			return out, fmt.Errorf("tenant %s: retention sweep: %w", t.ID, err)
		}
	}
	return out, nil
}

// VerifyAudit checks the index consistency of every tenant's audit log
// (see audit.Log.Verify).
func (d *Directory) VerifyAudit(ctx context.Context) (map[string]audit.VerifyReport, error) {
	ts, err := d.ListTenants(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]audit.VerifyReport{}
	for _, t := range ts {
		sp, err := space(t.ID)
		if err != nil {
			return out, err
		}
		r, err := audit.NewLog(d.store, sp).Verify(ctx)
		out[t.ID] = r
		if err != nil {
			return out, fmt.Errorf("tenant %s: verify: %w", t.ID, err)
		}
	}
	return out, nil
}
