package tenant_test

import (
	"errors"
	"testing"

	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
)

// TestOperator: the operator's scope of a tenant is its admin's, creates
// nothing (no tenant, no user), and exists only for existing tenants.
func TestOperator(t *testing.T) {
	d, s := setup(t)
	count := func() int {
		n := 0
		if err := s.View(bg, func(tx kv.ReadTx) error {
			n = 0
			it := tx.GetRange(nil, []byte{0xff}, kv.RangeOptions{})
			for it.Next() {
				n++
			}
			return it.Err()
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if _, err := d.Operator(bg, "acme"); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("operator of a missing tenant: %v", err)
	}
	if _, err := d.Operator(bg, "\xff"); !errors.Is(err, tenant.ErrInvalid) {
		t.Fatalf("operator of an invalid tenant id: %v", err)
	}
	if _, err := d.CreateTenant(bg, "acme", ""); err != nil {
		t.Fatal(err)
	}
	if err := d.SetTenantDisabled(bg, "acme", true); err != nil {
		t.Fatal(err)
	}
	before := count()
	sc, err := d.Operator(bg, "acme") // a disabled tenant too: the operator repairs it
	if err != nil {
		t.Fatal(err)
	}
	if n := count(); n != before {
		t.Fatalf("Operator wrote %d keys", n-before)
	}
	if p := sc.Principal(); p.Tenant != "acme" || p.User != "test-operator" || p.Role != tenant.RoleAdmin || p.Local || p.TokenID != "" {
		t.Fatalf("principal %+v", p)
	}
	if sc.RequireAdmin() != nil || sc.CanWrite() != nil {
		t.Fatal("the operator is not the tenant's admin")
	}
	if us, err := d.ListUsers(bg, "acme"); err != nil || len(us) != 0 {
		t.Fatalf("users after Operator: %+v, %v", us, err)
	}
	if err := sc.Check(bg); err == nil {
		t.Fatal("Check passed on a scope without a token")
	}
}
