package tenant

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCheckRefusesEveryChange: an open scope, of a token or of a local
// identity, fails Check once its token is revoked or expires, or its user
// or tenant is disabled, with the error that says which; re-enabling lets
// it pass again. Every refusal is one Refused recognises.
func TestCheckRefusesEveryChange(t *testing.T) {
	ctx := context.Background()
	type change struct {
		name   string
		local  bool // the scope is Local's, not a token's
		apply  func(d *Directory, clock *fakeClock, tokenID string) error
		undo   func(d *Directory) error // nil: the refusal is final
		reason error
	}
	disableUser := func(d *Directory, _ *fakeClock, _ string) error { return d.SetUserDisabled(ctx, "acme", "alice", true) }
	enableUser := func(d *Directory) error { return d.SetUserDisabled(ctx, "acme", "alice", false) }
	disableTenant := func(d *Directory, _ *fakeClock, _ string) error { return d.SetTenantDisabled(ctx, "acme", true) }
	enableTenant := func(d *Directory) error { return d.SetTenantDisabled(ctx, "acme", false) }
	cases := []change{
		{name: "token revoked", apply: func(d *Directory, _ *fakeClock, id string) error { return d.RevokeToken(ctx, "acme", id) }, reason: ErrTokenRevoked},
		{name: "token expired", apply: func(_ *Directory, c *fakeClock, _ string) error { c.add(2 * time.Hour); return nil }, reason: ErrTokenExpired},
		{name: "token's user disabled", apply: disableUser, undo: enableUser, reason: ErrUserDisabled},
		{name: "token's tenant disabled", apply: disableTenant, undo: enableTenant, reason: ErrTenantDisabled},
		{name: "local user disabled", local: true, apply: disableUser, undo: enableUser, reason: ErrUserDisabled},
		{name: "local tenant disabled", local: true, apply: disableTenant, undo: enableTenant, reason: ErrTenantDisabled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, clock, secret, _ := limiterSetup(t)
			sc, err := d.Authenticate(ctx, secret)
			if c.local {
				sc, err = d.Local(ctx, "acme", "alice")
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := sc.Check(ctx); err != nil {
				t.Fatalf("Check before the change: %v", err)
			}
			if err := c.apply(d, clock, sc.Principal().TokenID); err != nil {
				t.Fatal(err)
			}
			err = sc.Check(ctx)
			if !errors.Is(err, c.reason) || !Refused(err) {
				t.Fatalf("Check after the change: %v, want %v", err, c.reason)
			}
			if c.undo == nil {
				return
			}
			if err := c.undo(d); err != nil {
				t.Fatal(err)
			}
			if err := sc.Check(ctx); err != nil {
				t.Fatalf("Check after undoing the change: %v", err)
			}
		})
	}
}

// TestExtendToken: extending moves an expiring token's expiry to ttl from
// now, so a token kept alive outlives its first expiry and dies ttl after
// the last extension; a dead token (expired, revoked, its user disabled)
// cannot be brought back, and a token that never expires is not
// shortened.
func TestExtendToken(t *testing.T) {
	ctx := context.Background()
	d, clock, _, _ := limiterSetup(t)
	secret, tok, err := d.IssueToken(ctx, "acme", "alice", RoleMember, TokenOptions{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := d.Authenticate(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	// Renewed every 20 s for five minutes: alive throughout.
	for range 15 {
		clock.add(20 * time.Second)
		exp, err := d.ExtendToken(ctx, "acme", tok.ID, time.Minute)
		if err != nil {
			t.Fatalf("extending at %v: %v", clock.now(), err)
		}
		if want := clock.now().UTC().Add(time.Minute); !exp.Equal(want) {
			t.Fatalf("expiry %v, want %v", exp, want)
		}
		if err := sc.Check(ctx); err != nil {
			t.Fatalf("a renewed token refused: %v", err)
		}
	}
	// No longer renewed: dead one TTL later, for good.
	clock.add(time.Minute)
	if _, err := d.Authenticate(ctx, secret); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("a token not renewed for its TTL: %v", err)
	}
	if _, err := d.ExtendToken(ctx, "acme", tok.ID, time.Minute); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("extending an expired token: %v", err)
	}

	_, live, _ := d.IssueToken(ctx, "acme", "alice", RoleMember, TokenOptions{TTL: time.Minute})
	if err := d.RevokeToken(ctx, "acme", live.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ExtendToken(ctx, "acme", live.ID, time.Minute); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("extending a revoked token: %v", err)
	}
	_, other, _ := d.IssueToken(ctx, "acme", "alice", RoleMember, TokenOptions{TTL: time.Minute})
	if err := d.SetUserDisabled(ctx, "acme", "alice", true); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ExtendToken(ctx, "acme", other.ID, time.Minute); !errors.Is(err, ErrUserDisabled) {
		t.Fatalf("extending a disabled user's token: %v", err)
	}
	if err := d.SetUserDisabled(ctx, "acme", "alice", false); err != nil {
		t.Fatal(err)
	}
	_, forever, _ := d.IssueToken(ctx, "acme", "alice", RoleMember, TokenOptions{})
	if _, err := d.ExtendToken(ctx, "acme", forever.ID, time.Minute); !errors.Is(err, ErrInvalid) {
		t.Fatalf("extending a token that never expires: %v", err)
	}
	for _, bad := range []struct {
		tenant, id string
		ttl        time.Duration
		want       error
	}{
		{"acme", other.ID, 0, ErrInvalid},
		{"acme", "0000000000000000", time.Minute, ErrNotFound},
		{"globex", other.ID, time.Minute, ErrNotFound},
	} {
		if _, err := d.ExtendToken(ctx, bad.tenant, bad.id, bad.ttl); !errors.Is(err, bad.want) {
			t.Errorf("ExtendToken(%q, %q, %v): %v, want %v", bad.tenant, bad.id, bad.ttl, err, bad.want)
		}
	}
}
