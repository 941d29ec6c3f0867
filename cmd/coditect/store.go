package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coditect/coditect/server"
	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/storage/transfer"
)

func newStoreCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Inspect and manage the store; copy, verify, backup and restore reach every tenant and run only as the local operator",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Open the store, check it can be read and locked for writing (waiting at most " + statusLockWait.String() + " for another process's lock), and print where it is; shows nothing of any tenant",
		Args:  cobra.NoArgs,
		RunE:  runStoreStatus,
	})
	jsonFlag(cmd)
	cp := &cobra.Command{
		Use:   "copy SRC DST",
		Short: "Copy a whole store (or one tenant) to another store, e.g. sqlite:///… to fdb:///…; resumable, verified by a checksum per range",
		Args:  cobra.ExactArgs(2),
		RunE:  operatorOnly(runStoreCopy),
	}
	cp.Flags().String("tenant", "", "copy only this tenant (its keys, tokens and session index)")
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check every tenant's audit log (every index entry points at an event and every event is indexed) and count sessions that have no project",
		Long: "Check every tenant's audit log: every index entry points at an event and every event is indexed.\n" +
			"Also count the sessions started before projects existed, which have no project: the files tools\n" +
			"refuse them until --repair gives them one. --repair registers each such session's workspace as a\n" +
			"project root when it is a directory on this machine (or places it in the project whose root holds\n" +
			"it); a workspace that is not here goes to the project named after its last path element, created\n" +
			"without a root when missing, for an admin to add the root where the code is (coditect project add).",
		Args: cobra.NoArgs,
		RunE: operatorOnly(runStoreVerify),
	}
	verify.Flags().Bool("repair", false, "record in the audit clock how far event times go back (logs written before it existed), and give sessions started before projects existed a project; index damage is reported, not repaired")
	backup := &cobra.Command{
		Use:   "backup FILE",
		Short: "Write the store (or one tenant) to a portable backup file (- for stdout)",
		Args:  cobra.ExactArgs(1),
		RunE:  operatorOnly(runStoreBackup),
	}
	backup.Flags().String("tenant", "", "back up only this tenant")
	restore := &cobra.Command{
		Use:   "restore FILE",
		Short: "Restore a backup file into an empty store (- for stdin); a damaged file restores nothing",
		Args:  cobra.ExactArgs(1),
		RunE:  operatorOnly(runStoreRestore),
	}
	cmd.AddCommand(cp, verify, backup, restore)
	return cmd
}

// operatorOnly wraps a command that works on the store below its tenants
// (every tenant's keys, token hashes, the registry of project roots): no
// tenant role covers that, so it runs only as the local operator, never
// with a token (requireOperator).
func operatorOnly(run func(*cobra.Command, []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := requireOperator(); err != nil {
			return err
		}
		return run(cmd, args)
	}
}

func openURL(cmd *cobra.Command, u string) (kv.Store, error) {
	ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
	defer cancel()
	return storage.Open(ctx, u)
}

// openFlagStore opens the store --store (or the default) names.
func openFlagStore(cmd *cobra.Command) (kv.Store, error) {
	u, err := storeURL(cmd)
	if err != nil {
		return nil, err
	}
	return openURL(cmd, u)
}

func runStoreCopy(cmd *cobra.Command, args []string) error {
	src, err := openURL(cmd, args[0])
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := openURL(cmd, args[1])
	if err != nil {
		return err
	}
	defer dst.Close()
	t, _ := cmd.Flags().GetString("tenant")
	r, err := transfer.Copy(cmd.Context(), src, dst, transfer.Scope{Tenant: t})
	if jsonOutput(cmd) {
		if werr := writeJSON(cmd.OutOrStdout(), r); werr != nil {
			return werr
		}
		return err
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "copied:   %d keys, %d bytes%s\n", r.Keys, r.Bytes, map[bool]string{true: " (resumed)", false: ""}[r.Resumed])
	fmt.Fprintf(w, "verified: %d ranges, %d differ\n", r.Ranges, len(r.Mismatch))
	return err
}

func runStoreVerify(cmd *cobra.Command, _ []string) error {
	s, err := openFlagStore(cmd)
	if err != nil {
		return err
	}
	defer s.Close()
	dir := tenant.NewDirectory(s, "cli:"+server.OSUser())
	reps, err := dir.VerifyAudit(cmd.Context())
	if err != nil {
		return err
	}
	if repair, _ := cmd.Flags().GetBool("repair"); repair {
		for id, r := range reps {
			if r.ClockRecorded() {
				continue
			}
			l, err := dir.AuditLog(id)
			if err != nil {
				return err
			}
			if err := l.RaiseRegression(cmd.Context(), r.ClockRegression); err != nil {
				return fmt.Errorf("repair %s: %w", id, err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: audit clock now records event times going back by %v\n", id, time.Duration(r.ClockRegression))
			r.RecordedRegression = r.ClockRegression
			r.Problems = slices.DeleteFunc(r.Problems, func(p string) bool { return strings.Contains(p, "audit clock records") })
			reps[id] = r
		}
	}
	if err := checkSessionProjects(cmd, dir, reps); err != nil {
		return err
	}
	bad := 0
	ids := make([]string, 0, len(reps))
	for id, r := range reps {
		ids = append(ids, id)
		if !r.OK() {
			bad++
		}
	}
	slices.Sort(ids)
	if jsonOutput(cmd) {
		if err := writeJSON(cmd.OutOrStdout(), reps); err != nil {
			return err
		}
	} else {
		tw := table(cmd.OutOrStdout(), "TENANT", "EVENTS", "INDEX ENTRIES", "MISSING", "DANGLING", "MISMATCHED", "STATE")
		for _, id := range ids {
			r := reps[id]
			state := "ok"
			if !r.OK() {
				state = "INCONSISTENT"
			}
			row(tw, id, fmt.Sprint(r.Events), fmt.Sprint(r.IndexEntries), fmt.Sprint(r.Missing), fmt.Sprint(r.Dangling), fmt.Sprint(r.Mismatched), state)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, id := range ids {
			for _, p := range reps[id].Problems {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", id, p)
			}
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d tenant logs are inconsistent", bad)
	}
	return nil
}

// checkSessionProjects tells, per tenant, how many sessions have no
// project (started before projects existed), and with --repair gives them
// one (session.AssignProjects) as the directory's operator.
func checkSessionProjects(cmd *cobra.Command, dir *tenant.Directory, reps map[string]audit.VerifyReport) error {
	repair, _ := cmd.Flags().GetBool("repair")
	u, err := storeURL(cmd)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(reps))
	for id := range reps {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	w := cmd.ErrOrStderr()
	for _, id := range ids {
		sc, err := dir.Operator(cmd.Context(), id)
		if err != nil {
			return err
		}
		n, err := session.Unplaced(cmd.Context(), sc)
		if err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		if n == 0 {
			continue
		}
		if !repair {
			fmt.Fprintf(w, "%s: sessions started before projects existed, without a project: %d; the files tools refuse them: run `coditect store verify --repair` to give them one\n", id, n)
			continue
		}
		a, err := session.AssignProjects(cmd.Context(), sc, project.RootOptions{Protected: storage.OwnFiles(u)})
		if err != nil {
			return fmt.Errorf("repair %s: %w", id, err)
		}
		for _, p := range a.Places {
			fmt.Fprintf(w, "%s: %s\n", id, p)
		}
		fmt.Fprintf(w, "%s: %d of %d sessions without a project now have one\n", id, a.Assigned, a.Sessions)
	}
	return nil
}

func runStoreBackup(cmd *cobra.Command, args []string) error {
	if args[0] == "-" && jsonOutput(cmd) {
		return errors.New("--json needs a FILE: with -, stdout carries the backup itself")
	}
	s, err := openFlagStore(cmd)
	if err != nil {
		return err
	}
	defer s.Close()
	t, _ := cmd.Flags().GetString("tenant")
	var w io.Writer = cmd.OutOrStdout()
	var f *os.File
	if args[0] != "-" {
		// Written beside, renamed when complete: a failed backup never
		// leaves a file that looks whole.
		f, err = os.CreateTemp(filepath.Dir(args[0]), filepath.Base(args[0])+".partial-*")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		w = f
	}
	r, err := transfer.Backup(cmd.Context(), s, transfer.Scope{Tenant: t}, w)
	if err != nil {
		return err
	}
	if f == nil {
		return nil
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), args[0]); err != nil {
		return err
	}
	return printTransfer(cmd, "backed up", "to", args[0], t, r)
}

// transferSummary is what store backup and restore print with --json.
type transferSummary struct {
	File   string `json:"file"`
	Tenant string `json:"tenant,omitempty"`
	transfer.BackupReport
}

// printTransfer prints a backup's or restore's summary: a line saying
// what was done (verb) and with which file, or with --json an object.
func printTransfer(cmd *cobra.Command, verb, prep, file, tenantID string, r transfer.BackupReport) error {
	w := cmd.OutOrStdout()
	if jsonOutput(cmd) {
		return writeJSON(w, transferSummary{File: file, Tenant: tenantID, BackupReport: r})
	}
	_, err := fmt.Fprintf(w, "%s %d keys (%d bytes) %s %s, sha256 %s\n", verb, r.Keys, r.Bytes, prep, file, r.Checksum)
	return err
}

func runStoreRestore(cmd *cobra.Command, args []string) error {
	s, err := openFlagStore(cmd)
	if err != nil {
		return err
	}
	defer s.Close()
	var in io.Reader = cmd.InOrStdin()
	if args[0] != "-" {
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	r, err := transfer.Restore(cmd.Context(), s, in)
	if err != nil {
		return err
	}
	return printTransfer(cmd, "restored", "from", args[0], "", r)
}

// storeURL resolves --store, then CODITECT_STORE, then the default path.
func storeURL(cmd *cobra.Command) (string, error) {
	if u, _ := cmd.Flags().GetString("store"); u != "" {
		return u, nil
	}
	return storage.DefaultURL()
}

// statusLockWait bounds how long store status waits for the write lock: a
// health check answers promptly, and a lock held that long is news.
const statusLockWait = 5 * time.Second

// storeStatus is what store status finds; --json prints it as is.
type storeStatus struct {
	Store string `json:"store"`
	// Health is "ok", or "locked" when another process holds the write
	// lock (reads answer).
	Health string `json:"health"`
	// Empty is whether the store holds no key at all.
	Empty   bool    `json:"empty"`
	OpenMS  float64 `json:"open_ms"`
	ReadMS  float64 `json:"read_check_ms"`
	WriteMS float64 `json:"write_lock_ms"`
}

func (st storeStatus) text() string {
	state := "empty"
	if !st.Empty {
		state = "has data"
	}
	if st.Health == "locked" {
		return fmt.Sprintf("store:   %s\nhealth:  reads ok, writes locked out (%s; opened in %s, read check %s, write lock held by another process: gave up after %s)\n",
			st.Store, state, msText(st.OpenMS), msText(st.ReadMS), msText(st.WriteMS))
	}
	return fmt.Sprintf("store:   %s\nhealth:  ok (%s; opened in %s, read check %s, write lock %s)\n",
		st.Store, state, msText(st.OpenMS), msText(st.ReadMS), msText(st.WriteMS))
}

func runStoreStatus(cmd *cobra.Command, _ []string) error {
	u, err := storeURL(cmd)
	if err != nil {
		return err
	}
	st, err := checkStore(cmd.Context(), u)
	if st.Health == "" {
		return err
	}
	w := cmd.OutOrStdout()
	if jsonOutput(cmd) {
		if werr := writeJSON(w, st); werr != nil {
			return werr
		}
	} else if _, werr := io.WriteString(w, st.text()); werr != nil {
		return werr
	}
	return err
}

// checkStore opens the store at u, reads from it and takes its write lock
// (waiting at most statusLockWait). A status with no Health means the
// check failed before it could tell; Health "locked" comes with an error.
func checkStore(ctx context.Context, u string) (storeStatus, error) {
	st := storeStatus{Store: u}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	s, err := storage.Open(ctx, u)
	if err != nil {
		return st, err
	}
	defer s.Close()
	st.OpenMS = msSince(start)

	start = time.Now()
	keys := 0
	if err := s.View(ctx, func(tx kv.ReadTx) error {
		it := tx.GetRange(nil, nil, kv.RangeOptions{Limit: 1})
		for it.Next() {
			keys++
		}
		return it.Err()
	}); err != nil {
		return st, fmt.Errorf("store %s: read check failed: %w", u, err)
	}
	st.ReadMS = msSince(start)
	st.Empty = keys == 0

	// An Update that writes nothing still takes the write lock (SQLite) or
	// a read version (FDB): it proves writers are not shut out.
	start = time.Now()
	wctx, wcancel := context.WithTimeout(ctx, statusLockWait)
	defer wcancel()
	if _, err := s.Update(wctx, func(tx kv.Tx) error { return nil }); err != nil {
		if errors.Is(err, kv.ErrUnavailable) || (wctx.Err() != nil && ctx.Err() == nil) {
			st.Health, st.WriteMS = "locked", msSince(start)
			return st, fmt.Errorf("store %s: another process holds the write lock: reads answer, writes wait for it up to the store's lock timeout", u)
		}
		return st, fmt.Errorf("store %s: write check failed: %w", u, err)
	}
	st.Health, st.WriteMS = "ok", msSince(start)
	return st, nil
}

// msSince is the time since start in milliseconds, to the microsecond.
func msSince(start time.Time) float64 { return float64(time.Since(start).Microseconds()) / 1000 }

func msText(ms float64) string { return fmt.Sprintf("%.2f ms", ms) }
