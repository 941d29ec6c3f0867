package tenant_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/sqlite"
	"github.com/coditect/coditect/storage/tenant"
)

func setup(t *testing.T) (*tenant.Directory, kv.Store) {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "t.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return tenant.NewDirectory(s, "test-operator"), s
}

var bg = context.Background()

// TestIDsWithSeparators: separators, inner spaces and non-ASCII letters are
// fine in ids (they are tuple elements); control characters are refused
// (TestTenantsAndUsers).
func TestIDsWithSeparators(t *testing.T) {
	d, _ := setup(t)
	for _, good := range []string{"a:b/c", "équipe", "a b"} {
		if _, err := d.Local(bg, good, good); err != nil {
			t.Errorf("id %q: %v", good, err)
		}
	}
}

func TestTenantsAndUsers(t *testing.T) {
	d, _ := setup(t)
	if _, err := d.CreateTenant(bg, "acme", "Acme Inc."); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateTenant(bg, "acme", "again"); !errors.Is(err, tenant.ErrExists) {
		t.Fatalf("duplicate tenant: %v", err)
	}
	badIDs := []string{"", strings.Repeat("x", 300), "\xff", "a\x00b", "a\nb", "\x1b[31mred", "a\u2028b", " acme", "acme\t"}
	for _, bad := range badIDs {
		if _, err := d.CreateTenant(bg, bad, ""); !errors.Is(err, tenant.ErrInvalid) {
			t.Errorf("tenant id %q: %v", bad, err)
		}
		if _, err := d.Local(bg, bad, "ada"); !errors.Is(err, tenant.ErrInvalid) {
			t.Errorf("local tenant id %q: %v", bad, err)
		}
		if _, err := d.Local(bg, "local", bad); !errors.Is(err, tenant.ErrInvalid) {
			t.Errorf("local user id %q: %v", bad, err)
		}
		if _, err := d.CreateUser(bg, "acme", bad, ""); !errors.Is(err, tenant.ErrInvalid) {
			t.Errorf("user id %q: %v", bad, err)
		}
	}
	if _, err := d.CreateTenant(bg, "globex", ""); err != nil {
		t.Fatal(err)
	}
	ts, err := d.ListTenants(bg)
	if err != nil || len(ts) != 2 || ts[0].ID != "acme" || ts[1].ID != "globex" || ts[0].Name != "Acme Inc." {
		t.Fatalf("tenants %+v, %v", ts, err)
	}
	if _, err := d.CreateUser(bg, "acme", "alice", "Alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateUser(bg, "acme", "alice", ""); !errors.Is(err, tenant.ErrExists) {
		t.Fatalf("duplicate user: %v", err)
	}
	if _, err := d.CreateUser(bg, "nope", "alice", ""); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("user in a missing tenant: %v", err)
	}
	us, err := d.ListUsers(bg, "acme")
	if err != nil || len(us) != 1 || us[0].ID != "alice" {
		t.Fatalf("users %+v, %v", us, err)
	}
	if us, _ := d.ListUsers(bg, "globex"); len(us) != 0 {
		t.Fatalf("globex lists acme's users: %+v", us)
	}
}

func TestTokens(t *testing.T) {
	d, _ := setup(t)
	ok(t)(d.CreateTenant(bg, "acme", ""))
	ok(t)(d.CreateUser(bg, "acme", "alice", ""))
	secret, tok, err := d.IssueToken(bg, "acme", "alice", tenant.RoleMember, tenant.TokenOptions{Label: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "cdt_") || len(secret) < 40 || strings.Contains(tok.ID, secret) {
		t.Fatalf("secret %q, token %+v", secret, tok)
	}
	sc, err := d.Authenticate(bg, secret)
	if err != nil {
		t.Fatal(err)
	}
	if p := sc.Principal(); p.Tenant != "acme" || p.User != "alice" || p.Role != tenant.RoleMember || p.TokenID != tok.ID {
		t.Fatalf("principal %+v", p)
	}
	// The secret is not stored anywhere.
	found := false
	_ = d.Store().View(bg, func(tx kv.ReadTx) error {
		it := tx.GetRange(nil, nil, kv.RangeOptions{})
		for it.Next() {
			p := it.KeyValue()
			if strings.Contains(string(p.Key)+string(p.Value), secret[4:]) {
				found = true
			}
		}
		return it.Err()
	})
	if found {
		t.Fatal("the token secret is stored in the store")
	}
	last := "A"
	if strings.HasSuffix(secret, "A") {
		last = "B"
	}
	for _, bad := range []string{"", "cdt_", secret + "x", secret[:len(secret)-1] + last, strings.Repeat("a", 10000), "Bearer " + secret} {
		if _, err := d.Authenticate(bg, bad); !errors.Is(err, tenant.ErrUnauthenticated) {
			t.Errorf("token %.20q: %v", bad, err)
		}
	}
	toks, err := d.ListTokens(bg, "acme")
	if err != nil || len(toks) != 1 || toks[0].ID != tok.ID {
		t.Fatalf("tokens %+v %v", toks, err)
	}
	if err := d.RevokeToken(bg, "acme", tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Authenticate(bg, secret); !errors.Is(err, tenant.ErrTokenRevoked) {
		t.Fatalf("revoked token: %v", err)
	}
	if err := sc.Check(bg); !errors.Is(err, tenant.ErrTokenRevoked) {
		t.Fatalf("a scope of a revoked token still checks: %v", err)
	}
	if err := d.RevokeToken(bg, "acme", "0000000000000000"); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}
	// Every change is in the tenant's audit log.
	p, err := sc.Log().Query(bg, audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range p.Events {
		kinds = append(kinds, ev.Kind)
	}
	if strings.Join(kinds, ",") != "tenant.created,user.created,token.issued,token.revoked" {
		t.Fatalf("audit trail %v", kinds)
	}
}

func TestExpiryAndDisabling(t *testing.T) {
	d, _ := setup(t)
	ok(t)(d.CreateTenant(bg, "acme", ""))
	ok(t)(d.CreateUser(bg, "acme", "alice", ""))
	ok(t)(d.CreateUser(bg, "acme", "bob", ""))
	short, _, err := d.IssueToken(bg, "acme", "alice", tenant.RoleAdmin, tenant.TokenOptions{TTL: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Authenticate(bg, short); !errors.Is(err, tenant.ErrTokenExpired) {
		t.Fatalf("expired token: %v", err)
	}
	alice, _, _ := d.IssueToken(bg, "acme", "alice", tenant.RoleAdmin, tenant.TokenOptions{})
	bob, _, _ := d.IssueToken(bg, "acme", "bob", tenant.RoleAdmin, tenant.TokenOptions{})
	sc, err := d.Authenticate(bg, alice)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetUserDisabled(bg, "acme", "bob", true); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Authenticate(bg, bob); !errors.Is(err, tenant.ErrUserDisabled) {
		t.Fatalf("disabled user: %v", err)
	}
	if err := d.SetTenantDisabled(bg, "acme", true); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Authenticate(bg, alice); !errors.Is(err, tenant.ErrTenantDisabled) {
		t.Fatalf("disabled tenant: %v", err)
	}
	if err := sc.Check(bg); !errors.Is(err, tenant.ErrTenantDisabled) {
		t.Fatalf("scope of a disabled tenant: %v", err)
	}
	if _, _, err := d.IssueToken(bg, "acme", "alice", tenant.RoleAdmin, tenant.TokenOptions{}); !errors.Is(err, tenant.ErrTenantDisabled) {
		t.Fatalf("token for a disabled tenant: %v", err)
	}
	if err := d.SetTenantDisabled(bg, "acme", false); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Authenticate(bg, alice); err != nil {
		t.Fatalf("re-enabled tenant: %v", err)
	}
}

func TestRolesAndScopedAdmin(t *testing.T) {
	d, _ := setup(t)
	ok(t)(d.CreateTenant(bg, "acme", ""))
	ok(t)(d.CreateTenant(bg, "globex", ""))
	for _, u := range []string{"admin", "member", "viewer"} {
		ok(t)(d.CreateUser(bg, "acme", u, ""))
	}
	ok(t)(d.CreateUser(bg, "globex", "gina", ""))
	scopes := map[tenant.Role]*tenant.Scope{}
	for _, r := range []tenant.Role{tenant.RoleAdmin, tenant.RoleMember, tenant.RoleViewer} {
		secret, _, err := d.IssueToken(bg, "acme", string(r), r, tenant.TokenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if scopes[r], err = d.Authenticate(bg, secret); err != nil {
			t.Fatal(err)
		}
	}
	if err := scopes[tenant.RoleViewer].CanWrite(); !errors.Is(err, tenant.ErrForbidden) {
		t.Fatalf("viewer can write: %v", err)
	}
	if err := scopes[tenant.RoleMember].CanWrite(); err != nil {
		t.Fatalf("member cannot write: %v", err)
	}
	if _, _, err := scopes[tenant.RoleMember].IssueToken(bg, "member", tenant.RoleAdmin, tenant.TokenOptions{}); !errors.Is(err, tenant.ErrForbidden) {
		t.Fatalf("member issued a token: %v", err)
	}
	admin := scopes[tenant.RoleAdmin]
	// An admin of acme issues tokens in acme only: a user of globex is not found.
	if _, _, err := admin.IssueToken(bg, "gina", tenant.RoleAdmin, tenant.TokenOptions{}); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("acme admin issued a token for globex's user: %v", err)
	}
	_, gtok, err := d.IssueToken(bg, "globex", "gina", tenant.RoleAdmin, tenant.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.RevokeToken(bg, gtok.ID); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("acme admin revoked globex's token: %v", err)
	}
	toks, err := admin.ListTokens(bg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range toks {
		if tk.Tenant != "acme" {
			t.Fatalf("acme admin lists %+v", tk)
		}
	}
	if _, err := tenant.ParseRole("root"); !errors.Is(err, tenant.ErrInvalid) {
		t.Fatalf("role root: %v", err)
	}
}

func TestLocal(t *testing.T) {
	d, _ := setup(t)
	sc, err := d.Local(bg, "default", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if p := sc.Principal(); p.Tenant != "default" || p.User != "alice" || p.Role != tenant.RoleAdmin || !p.Local {
		t.Fatalf("local principal %+v", p)
	}
	if _, err := d.Local(bg, "default", "alice"); err != nil {
		t.Fatalf("second Local: %v", err)
	}
	if n, _ := sc.Log().Count(bg); n != 2 {
		t.Fatalf("Local twice logged %d events, want 2 (tenant and user created once)", n)
	}
	if err := d.SetTenantDisabled(bg, "default", true); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Local(bg, "default", "alice"); !errors.Is(err, tenant.ErrTenantDisabled) {
		t.Fatalf("Local on a disabled tenant: %v", err)
	}
	ag, err := sc.WithAgent("agent-1")
	if err != nil || ag.Principal().Agent != "agent-1" || sc.Principal().Agent != "" {
		t.Fatalf("WithAgent: %+v, %v", ag.Principal(), err)
	}
	ev := ag.Event("note.added", "hi")
	if ev.Agent != "agent-1" || ev.User != "alice" || ev.Attribution == nil || ev.Attribution.Actor != audit.ActorAgent {
		t.Fatalf("scope event %+v", ev)
	}
}

func TestAgentBoundToken(t *testing.T) {
	d, _ := setup(t)
	ok(t)(d.CreateTenant(bg, "acme", ""))
	ok(t)(d.CreateUser(bg, "acme", "alice", ""))
	secret, _, err := d.IssueToken(bg, "acme", "alice", tenant.RoleMember, tenant.TokenOptions{Agent: "bot-1"})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := d.Authenticate(bg, secret)
	if err != nil || sc.Principal().Agent != "bot-1" {
		t.Fatalf("%+v %v", sc, err)
	}
	if _, err := sc.WithAgent("bot-2"); !errors.Is(err, tenant.ErrForbidden) {
		t.Fatalf("agent-bound token acting as another agent: %v", err)
	}
}

// ok fails the test when the call it wraps returned an error.
func ok(t *testing.T) func(any, error) {
	return func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestSweepRetention(t *testing.T) {
	d, _ := setup(t)
	a, err := d.Local(bg, "a", "alice")
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.Local(bg, "b", "bob")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		for _, sc := range []*tenant.Scope{a, b} {
			if _, err := sc.Log().Append(bg, sc.Event("note.added", "n")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := d.SetRetention(bg, "a", audit.Retention{MaxEvents: 5}); err != nil {
		t.Fatal(err)
	}
	if err := d.SetRetention(bg, "a", audit.Retention{MaxEvents: -1}); !errors.Is(err, tenant.ErrInvalid) {
		t.Fatalf("negative retention: %v", err)
	}
	removed, err := d.SweepRetention(bg)
	if err != nil {
		t.Fatal(err)
	}
	// a had 2 (tenant, user) + 10 notes + 1 retention change = 13 events.
	if removed["a"] != 8 || removed["b"] != 0 {
		t.Fatalf("removed %v", removed)
	}
	if n, _ := a.Log().Count(bg); n != 5 {
		t.Fatalf("a keeps %d events", n)
	}
	if n, _ := b.Log().Count(bg); n != 12 {
		t.Fatalf("b keeps %d events: another tenant's policy touched it", n)
	}
}
