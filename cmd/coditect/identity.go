package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/coditect/coditect/server"
	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
)

// The operator commands (tenant, user, token, session, log, agent) act on a
// store as one principal: CODITECT_TOKEN's when it is set, else the trusted
// local identity --tenant/--as (default tenant "default", the OS user as
// server.OSUser names it), an admin of the tenant. A command that writes
// resolves it with Directory.Local, which creates the tenant and the user
// on first use; a read-only command (readScope) only reads, so it answers
// while another process holds the store's write lock, and creates no one.
// The acting user is --as, not --user, because --user filters listings
// (session list --user alice, log tail --user alice).

// tokenEnv names the environment variable holding an API token.
const tokenEnv = "CODITECT_TOKEN"

// identityFlags adds the persistent identity and output flags to a command
// group.
func identityFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.String("tenant", "default", "tenant to act in (with "+tokenEnv+", the token's tenant)")
	f.String("as", "", "local user to act as (default: the OS user; not allowed with "+tokenEnv+")")
	jsonFlag(cmd)
}

// jsonFlag adds the persistent --json flag to a command group.
func jsonFlag(cmd *cobra.Command) {
	cmd.PersistentFlags().Bool("json", false, "print JSON instead of aligned text")
}

// env is one command's open store and directory.
type env struct {
	cmd   *cobra.Command
	ctx   context.Context
	store kv.Store
	dir   *tenant.Directory
}

// open opens the store --store names.
func open(cmd *cobra.Command) (*env, error) {
	u, err := storeURL(cmd)
	if err != nil {
		return nil, err
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	s, err := storage.Open(ctx, u)
	if err != nil {
		return nil, err
	}
	return &env{cmd: cmd, ctx: ctx, store: s, dir: tenant.NewDirectory(s, "cli:"+server.OSUser())}, nil
}

func (s *env) Close() error { return s.store.Close() }

// withStore adapts a command body that needs the open store.
func withStore(body func(e *env, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		e, err := open(cmd)
		if err != nil {
			return err
		}
		defer e.Close()
		return body(e, args)
	}
}

// scope resolves the principal of a command that writes; a local user is
// created on first use (Directory.Local).
func (s *env) scope() (*tenant.Scope, error) { return s.resolve(s.dir.Local) }

// readScope resolves the principal of a read-only command. It writes
// nothing, so it does not wait for another process's write lock, and it
// creates no tenant and no user: the local user when it exists
// (Directory.LookupLocal); without --as, when the OS user is no user of the
// tenant, the local operator, who reads every tenant and belongs to none
// (Directory.Operator); otherwise an error that says what to do.
func (s *env) readScope() (*tenant.Scope, error) { return s.resolve(s.lookupLocal) }

// lookupLocal is readScope's local identity.
func (s *env) lookupLocal(ctx context.Context, tenantID, as string) (*tenant.Scope, error) {
	sc, err := s.dir.LookupLocal(ctx, tenantID, as)
	if !errors.Is(err, tenant.ErrNotFound) {
		return sc, err
	}
	// LookupLocal checks the tenant (found and enabled) before the user.
	if _, terr := s.dir.GetTenant(ctx, tenantID); errors.Is(terr, tenant.ErrNotFound) {
		return nil, fmt.Errorf("tenant %q does not exist yet, so there is nothing to read: a command that writes (coditect session start, coditect mcp, coditect serve) creates it", tenantID)
	}
	if !s.cmd.Flags().Changed("as") {
		return s.dir.Operator(ctx, tenantID)
	}
	return nil, fmt.Errorf("%q is not a user of tenant %q, and a read-only command adds no one: see the tenant's users with `coditect user list --tenant %s`", as, tenantID, tenantID)
}

// resolve returns CODITECT_TOKEN's scope when it is set, else local's for
// the local identity.
func (s *env) resolve(local func(ctx context.Context, tenantID, userID string) (*tenant.Scope, error)) (*tenant.Scope, error) {
	fl := s.cmd.Flags()
	tenantID, _ := fl.GetString("tenant")
	as, _ := fl.GetString("as")
	if secret := os.Getenv(tokenEnv); secret != "" {
		if fl.Changed("as") {
			return nil, fmt.Errorf("--as cannot be used with %s: the token names the user; unset %s to act as a local user", tokenEnv, tokenEnv)
		}
		sc, err := s.dir.Authenticate(s.ctx, secret)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tokenEnv, err)
		}
		if fl.Changed("tenant") && tenantID != sc.Tenant() {
			return nil, fmt.Errorf("%s belongs to tenant %q, not %q: drop --tenant or unset %s", tokenEnv, sc.Tenant(), tenantID, tokenEnv)
		}
		// Directory changes made with a token are attributed to its user.
		s.dir = tenant.NewDirectory(s.store, fmt.Sprintf("token:%s:%s", sc.Principal().TokenID, sc.Principal().User))
		return sc, nil
	}
	if as == "" {
		as = server.OSUser()
	}
	// A tenant named with --tenant must exist: Local would create it, fine
	// for the default one (nothing to set up on a laptop), a typo otherwise.
	if fl.Changed("tenant") {
		if _, err := s.dir.GetTenant(s.ctx, tenantID); errors.Is(err, tenant.ErrNotFound) {
			return nil, fmt.Errorf("tenant %q does not exist: create it with `coditect tenant create %s` or see `coditect tenant list`", tenantID, tenantID)
		} else if err != nil {
			return nil, err
		}
	}
	return local(s.ctx, tenantID, as)
}

// requireOperator refuses operator-only commands (which reach every
// tenant, or the store below the tenants) to a token holder, whose
// authority ends at its tenant, whatever its role.
func requireOperator() error {
	if os.Getenv(tokenEnv) != "" {
		return fmt.Errorf("this command reaches every tenant and runs only as the local operator, never with a token: unset %s", tokenEnv)
	}
	return nil
}

func jsonOutput(cmd *cobra.Command) bool {
	v, _ := cmd.Flags().GetBool("json")
	return v
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns; call Flush.
func table(w io.Writer, header ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(header) > 0 {
		fmt.Fprintln(tw, strings.Join(header, "\t"))
	}
	return tw
}

// row writes one table row, each cell cleaned of tabs and line breaks.
func row(tw io.Writer, cells ...string) {
	for i, c := range cells {
		cells[i] = cell(c)
	}
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
}

// cell makes a value safe for one table cell or log line: control
// characters become spaces, and an empty value a dash.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// stamp formats a time for tables, in UTC; "-" when zero.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// parseWhen reads a time flag: a duration ago ("90m", "2h", "7d") or a
// time ("2026-03-01", "2026-03-01T09:00", RFC 3339). Dates and times
// without a zone are local.
func parseWhen(flag, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil && days >= 0 {
			return now.AddDate(0, 0, -days), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			d = -d
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--%s %q: want a time ago such as 30m, 2h or 7d, or a time such as 2026-03-01, 2026-03-01T09:00 or 2026-03-01T09:00:00Z", flag, s)
}

// timeRange reads --since and --until.
func timeRange(cmd *cobra.Command) (since, until time.Time, err error) {
	now := time.Now()
	s, _ := cmd.Flags().GetString("since")
	if since, err = parseWhen("since", s, now); err != nil {
		return
	}
	if cmd.Flags().Lookup("until") != nil {
		u, _ := cmd.Flags().GetString("until")
		until, err = parseWhen("until", u, now)
	}
	return
}

// cancelled reports whether err is the end of a command stopped by a signal,
// which is a normal way for a follower to end.
func cancelled(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, ctx.Err()))
}
