package tenant

import (
	"context"

	"github.com/coditect/coditect/storage/kv"
)

// Operator returns an admin scope of an existing tenant for the
// directory's operator (NewDirectory's operator), for operator commands
// that change a tenant's data as its admin would, such as the repairs of
// `coditect store verify --repair`. Unlike Local it creates nothing: the
// operator is no user of the tenant, and the events it writes name the
// operator as their user. The scope has no token, so Check fails on it:
// it is for one command, not a connection.
func (d *Directory) Operator(ctx context.Context, tenantID string) (*Scope, error) {
	sp, err := space(tenantID)
	if err != nil {
		return nil, err
	}
	if err := d.store.View(ctx, func(tx kv.ReadTx) error {
		_, err := loadTenant(tx, tenantID)
		return err
	}); err != nil {
		return nil, err
	}
	return newScope(d, sp, Principal{Tenant: tenantID, User: d.operator, Role: RoleAdmin}), nil
}
