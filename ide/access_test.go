package ide_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/coditect/coditect/ide"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/tenant"
)

// refusedWithin polls coditect.status until the server refuses it, and
// returns the refusal; it fails the test after wait.
func (c *client) refused() *jsonrpc2.Error {
	c.t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		err := c.call("workspace/executeCommand", map[string]any{"command": "coditect.status"}, nil)
		var e *jsonrpc2.Error
		if errors.As(err, &e) && e.Code == -32803 && strings.HasPrefix(e.Message, "access refused: ") {
			return e
		}
		if err != nil {
			c.t.Fatalf("status while waiting for the refusal: %v", err)
		}
	}
	c.t.Fatalf("the connection was not refused within %v", wait)
	return nil
}

// TestAccessRefused: once a connection's token is revoked, or its user or
// tenant disabled (for a token and for a local identity), requests fail
// with RequestFailed saying why — session.end included, which leaves the
// session open — notifications are dropped, and the client is told once
// by window/showMessage; enabling the user or tenant again restores the
// connection.
func TestAccessRefused(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		local  bool
		change func(d *tenant.Directory, sc *tenant.Scope) error
		undo   func(d *tenant.Directory) error
		reason error
	}{
		{"token revoked", false, func(d *tenant.Directory, sc *tenant.Scope) error {
			return d.RevokeToken(ctx, "acme", sc.Principal().TokenID)
		}, nil, tenant.ErrTokenRevoked},
		{"token's user disabled", false, func(d *tenant.Directory, _ *tenant.Scope) error {
			return d.SetUserDisabled(ctx, "acme", "ada", true)
		}, func(d *tenant.Directory) error { return d.SetUserDisabled(ctx, "acme", "ada", false) }, tenant.ErrUserDisabled},
		{"local user disabled", true, func(d *tenant.Directory, _ *tenant.Scope) error {
			return d.SetUserDisabled(ctx, "acme", "ada", true)
		}, func(d *tenant.Directory) error { return d.SetUserDisabled(ctx, "acme", "ada", false) }, tenant.ErrUserDisabled},
		{"local tenant disabled", true, func(d *tenant.Directory, _ *tenant.Scope) error {
			return d.SetTenantDisabled(ctx, "acme", true)
		}, func(d *tenant.Directory) error { return d.SetTenantDisabled(ctx, "acme", false) }, tenant.ErrTenantDisabled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := agenttest.Open(t)
			d := tenant.NewDirectory(s, "test")
			sc := agenttest.RoleScope(t, s, "acme", "ada", tenant.RoleMember)
			if tc.local {
				sc = agenttest.Scope(t, s, "acme", "ada")
			}
			admin := agenttest.Scope(t, s, "acme", "admin")
			c := start(t, sc, ide.Options{Recheck: 10 * time.Millisecond})
			if _, err := project.Register(ctx, admin, "", c.root, project.RootOptions{}); err != nil {
				t.Fatal(err)
			}
			c.initialize(nil)
			var se struct{ ID string }
			c.mustCall("workspace/executeCommand", map[string]any{"command": "coditect.session.start"}, &se)

			if err := tc.change(d, sc); err != nil {
				t.Fatal(err)
			}
			e := c.refused()
			if !strings.Contains(e.Message, strings.TrimPrefix(tc.reason.Error(), "tenant: ")) {
				t.Fatalf("refusal %q does not say %q", e.Message, tc.reason)
			}
			c.note("window/showMessage", func(p json.RawMessage) bool {
				var m struct {
					Type    int
					Message string
				}
				return json.Unmarshal(p, &m) == nil && m.Type == 1 && strings.Contains(m.Message, tc.reason.Error())
			})
			if err := c.call("workspace/executeCommand", map[string]any{"command": "coditect.session.end"}, nil); code(err) != -32803 {
				t.Fatalf("session.end after the refusal: %v", err)
			}
			if got, err := session.Get(ctx, admin, se.ID); err != nil || got.State != session.Open {
				t.Fatalf("the session after a refused session.end: %+v, %v", got, err)
			}
			file := filepath.Join(c.root, "refused.go")
			c.notify("textDocument/didOpen", map[string]any{"textDocument": map[string]any{"uri": fileURI(file), "languageId": "go", "version": 1, "text": "package x\n"}})
			if tc.undo == nil {
				return
			}
			if err := tc.undo(d); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(wait)
			for c.call("workspace/executeCommand", map[string]any{"command": "coditect.status"}, nil) != nil {
				if time.Now().After(deadline) {
					t.Fatal("the connection was not restored")
				}
			}
			// The status answer follows the didOpen sent while refused: it
			// was dropped, so nothing recorded it.
			if evs, err := admin.Log().Query(ctx, audit.Query{Filter: audit.Filter{Kind: "ide.opened"}, Limit: 10}); err != nil || len(evs.Events) != 0 {
				t.Fatalf("ide.opened events of a refused didOpen: %+v, %v", evs.Events, err)
			}
			c.mustCall("workspace/executeCommand", map[string]any{"command": "coditect.session.end"}, nil)
		})
	}
}
