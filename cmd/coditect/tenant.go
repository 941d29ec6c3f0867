package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/tenant"
)

func newTenantCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tenant",
		Short: "Create, list, disable and enable tenants (local operator only)",
	}
	jsonFlag(cmd)
	create := &cobra.Command{
		Use:   "create ID",
		Short: "Create a tenant",
		Args:  cobra.ExactArgs(1),
	}
	create.Flags().String("name", "", "display name")
	create.RunE = withStore(func(e *env, args []string) error {
		if err := requireOperator(); err != nil {
			return err
		}
		name, _ := e.cmd.Flags().GetString("name")
		t, err := e.dir.CreateTenant(e.ctx, args[0], name)
		if err != nil {
			return err
		}
		return printTenants(e.cmd, []tenant.Tenant{t}, true)
	})
	list := &cobra.Command{
		Use:   "list",
		Short: "List every tenant",
		Args:  cobra.NoArgs,
		RunE: withStore(func(e *env, _ []string) error {
			if err := requireOperator(); err != nil {
				return err
			}
			ts, err := e.dir.ListTenants(e.ctx)
			if err != nil {
				return err
			}
			return printTenants(e.cmd, ts, false)
		}),
	}
	setDisabled := func(use, short string, disabled bool) *cobra.Command {
		return &cobra.Command{
			Use:   use + " ID",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: withStore(func(e *env, args []string) error {
				if err := requireOperator(); err != nil {
					return err
				}
				if err := e.dir.SetTenantDisabled(e.ctx, args[0], disabled); err != nil {
					return err
				}
				t, err := e.dir.GetTenant(e.ctx, args[0])
				if err != nil {
					return err
				}
				return printTenants(e.cmd, []tenant.Tenant{t}, true)
			}),
		}
	}
	retention := &cobra.Command{
		Use:   "retention ID",
		Short: "Set how long a tenant's audit log keeps events (0 keeps everything); `coditect log sweep` enforces it",
		Args:  cobra.ExactArgs(1),
		RunE: withStore(func(e *env, args []string) error {
			if err := requireOperator(); err != nil {
				return err
			}
			age, _ := e.cmd.Flags().GetDuration("max-age")
			n, _ := e.cmd.Flags().GetInt64("max-events")
			if err := e.dir.SetRetention(e.ctx, args[0], audit.Retention{MaxAge: age, MaxEvents: n}); err != nil {
				return err
			}
			t, err := e.dir.GetTenant(e.ctx, args[0])
			if err != nil {
				return err
			}
			return printTenants(e.cmd, []tenant.Tenant{t}, true)
		}),
	}
	retention.Flags().Duration("max-age", 0, "remove events older than this, e.g. 2160h for 90 days (0: no age limit)")
	retention.Flags().Int64("max-events", 0, "keep at most this many events (0: no count limit)")
	cmd.AddCommand(create, list, retention,
		setDisabled("disable", "Disable a tenant: its tokens and local users are refused everywhere", true),
		setDisabled("enable", "Enable a disabled tenant", false))
	return cmd
}

func printTenants(cmd *cobra.Command, ts []tenant.Tenant, one bool) error {
	w := cmd.OutOrStdout()
	if jsonOutput(cmd) {
		return writeRecords(w, ts, one)
	}
	tw := table(w, "ID", "NAME", "STATE", "CREATED", "RETENTION")
	for _, t := range ts {
		state := "enabled"
		if t.Disabled {
			state = "disabled"
		}
		row(tw, t.ID, t.Name, state, stamp(t.Created), retentionText(t.Retention))
	}
	return tw.Flush()
}

func newUserCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Create, list, disable and enable the users of a tenant",
	}
	identityFlags(cmd)
	create := &cobra.Command{
		Use:   "create ID",
		Short: "Add a user to the tenant (admins only)",
		Args:  cobra.ExactArgs(1),
	}
	create.Flags().String("name", "", "display name")
	create.RunE = withStore(func(e *env, args []string) error {
		sc, err := e.scope()
		if err != nil {
			return err
		}
		if err := sc.RequireAdmin(); err != nil {
			return err
		}
		name, _ := e.cmd.Flags().GetString("name")
		u, err := e.dir.CreateUser(e.ctx, sc.Tenant(), args[0], name)
		if err != nil {
			return err
		}
		return printUsers(e.cmd, []tenant.User{u}, true)
	})
	list := &cobra.Command{
		Use:   "list",
		Short: "List the tenant's users",
		Args:  cobra.NoArgs,
		RunE: withStore(func(e *env, _ []string) error {
			sc, err := e.readScope()
			if err != nil {
				return err
			}
			us, err := sc.Users(e.ctx)
			if err != nil {
				return err
			}
			return printUsers(e.cmd, us, false)
		}),
	}
	setDisabled := func(use, short string, disabled bool) *cobra.Command {
		return &cobra.Command{
			Use:   use + " ID",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: withStore(func(e *env, args []string) error {
				sc, err := e.scope()
				if err != nil {
					return err
				}
				if err := sc.RequireAdmin(); err != nil {
					return err
				}
				if err := e.dir.SetUserDisabled(e.ctx, sc.Tenant(), args[0], disabled); err != nil {
					return err
				}
				us, err := sc.Users(e.ctx)
				if err != nil {
					return err
				}
				for _, u := range us {
					if u.ID == args[0] {
						return printUsers(e.cmd, []tenant.User{u}, true)
					}
				}
				return fmt.Errorf("user %q vanished", args[0])
			}),
		}
	}
	cmd.AddCommand(create, list,
		setDisabled("disable", "Disable a user: their tokens are refused (admins only)", true),
		setDisabled("enable", "Enable a disabled user (admins only)", false))
	return cmd
}

func printUsers(cmd *cobra.Command, us []tenant.User, one bool) error {
	w := cmd.OutOrStdout()
	if jsonOutput(cmd) {
		return writeRecords(w, us, one)
	}
	tw := table(w, "ID", "NAME", "STATE", "CREATED")
	for _, u := range us {
		state := "enabled"
		if u.Disabled {
			state = "disabled"
		}
		row(tw, u.ID, u.Name, state, stamp(u.Created))
	}
	return tw.Flush()
}

func newTokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Issue, list and revoke API tokens of a tenant (admins only)",
	}
	identityFlags(cmd)
	create := &cobra.Command{
		Use:   "create",
		Short: "Issue a token and print its secret, once",
		Long: "Issue a token for a user of the tenant and print its secret on stdout. The secret is stored only\n" +
			"as a hash: it is shown this once and never again.",
		Args: cobra.NoArgs,
	}
	create.Flags().String("user", "", "user the token acts as (default: the acting user)")
	create.Flags().String("role", "member", "role: admin, member or viewer")
	create.Flags().String("label", "", "what the token is for, e.g. \"lmstudio on laptop\"")
	create.Flags().String("agent", "", "bind the token to one agent id")
	create.Flags().Duration("ttl", 0, "expire the token after this long, e.g. 720h (default: never)")
	create.RunE = withStore(func(e *env, _ []string) error {
		sc, err := e.scope()
		if err != nil {
			return err
		}
		fl := e.cmd.Flags()
		userID, _ := fl.GetString("user")
		if userID == "" {
			userID = sc.Principal().User
		}
		roleName, _ := fl.GetString("role")
		role, err := tenant.ParseRole(roleName)
		if err != nil {
			return err
		}
		var opts tenant.TokenOptions
		opts.Label, _ = fl.GetString("label")
		opts.Agent, _ = fl.GetString("agent")
		opts.TTL, _ = fl.GetDuration("ttl")
		secret, tok, err := sc.IssueToken(e.ctx, userID, role, opts)
		if err != nil {
			return err
		}
		w := e.cmd.OutOrStdout()
		if jsonOutput(e.cmd) {
			err = writeJSON(w, struct {
				Secret string       `json:"secret"`
				Token  tenant.Token `json:"token"`
			}{secret, tok})
		} else {
			_, err = fmt.Fprintln(w, secret)
		}
		if err != nil {
			return err
		}
		// The notice goes to stderr so that `$(coditect token create)`
		// captures the secret alone.
		fmt.Fprintf(e.cmd.ErrOrStderr(), "Token %s for %s (%s) in tenant %s. This secret will not be shown again: store it now.\n",
			tok.ID, tok.User, tok.Role, tok.Tenant)
		return nil
	})
	list := &cobra.Command{
		Use:   "list",
		Short: "List the tenant's tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: withStore(func(e *env, _ []string) error {
			sc, err := e.readScope()
			if err != nil {
				return err
			}
			toks, err := sc.ListTokens(e.ctx)
			if err != nil {
				return err
			}
			w := e.cmd.OutOrStdout()
			if jsonOutput(e.cmd) {
				if toks == nil {
					toks = []tenant.Token{}
				}
				return writeJSON(w, toks)
			}
			now := time.Now()
			tw := table(w, "ID", "USER", "ROLE", "AGENT", "LABEL", "STATE", "CREATED", "EXPIRES")
			for _, t := range toks {
				state := "active"
				switch {
				case !t.Revoked.IsZero():
					state = "revoked"
				case !t.Expires.IsZero() && !now.Before(t.Expires):
					state = "expired"
				}
				row(tw, t.ID, t.User, string(t.Role), t.Agent, t.Label, state, stamp(t.Created), stamp(t.Expires))
			}
			return tw.Flush()
		}),
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token at once, everywhere",
		Args:  cobra.ExactArgs(1),
		RunE: withStore(func(e *env, args []string) error {
			sc, err := e.scope()
			if err != nil {
				return err
			}
			if err := sc.RevokeToken(e.ctx, args[0]); err != nil {
				return err
			}
			if jsonOutput(e.cmd) {
				return writeJSON(e.cmd.OutOrStdout(), map[string]any{"id": args[0], "revoked": true})
			}
			_, err = fmt.Fprintf(e.cmd.OutOrStdout(), "token %s revoked\n", args[0])
			return err
		}),
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func retentionText(r audit.Retention) string {
	var parts []string
	if r.MaxAge > 0 {
		parts = append(parts, "max age "+r.MaxAge.String())
	}
	if r.MaxEvents > 0 {
		parts = append(parts, fmt.Sprintf("max %d events", r.MaxEvents))
	}
	if len(parts) == 0 {
		return "keep all"
	}
	return strings.Join(parts, ", ")
}

// writeRecords writes records as a JSON array, or the first one alone when
// one is set (a command that shows a single record).
func writeRecords[T any](w io.Writer, records []T, one bool) error {
	if one {
		return writeJSON(w, records[0])
	}
	if records == nil {
		records = []T{}
	}
	return writeJSON(w, records)
}
