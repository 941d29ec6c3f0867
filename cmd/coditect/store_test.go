package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
)

func TestStoreCopyVerifyBackupRestore(t *testing.T) {
	c := newCLI(t)
	c.ok("tenant", "create", "acme")
	ws := t.TempDir() // the local operator's workspace becomes a project root
	for i := 0; i < 5; i++ {
		c.ok("session", "start", "--tenant", "acme", "--title", "t", "--workspace", ws)
	}
	if out := c.ok("store", "verify"); !strings.Contains(out, "acme") || strings.Contains(out, "INCONSISTENT") {
		t.Fatalf("verify: %q", out)
	}
	dir := t.TempDir()
	dst := filepath.Join(dir, "copy.db")
	out := c.ok("store", "copy", c.store, "sqlite://"+dst)
	if !strings.Contains(out, "0 differ") {
		t.Fatalf("copy: %q", out)
	}
	copied := &cli{t: t, bin: c.bin, store: dst, env: []string{"CODITECT_STORE=" + dst, "CODITECT_TOKEN="}}
	if got := copied.ok("session", "list", "--tenant", "acme"); strings.Count(got, "\n") != 6 {
		t.Fatalf("sessions in the copy:\n%s", got)
	}
	file := filepath.Join(dir, "b.backup")
	if out := c.ok("store", "backup", file); !strings.Contains(out, "backed up") {
		t.Fatalf("backup: %q", out)
	}
	restored := filepath.Join(dir, "restored.db")
	r := &cli{t: t, bin: c.bin, store: restored, env: []string{"CODITECT_STORE=" + restored, "CODITECT_TOKEN="}}
	if out := r.ok("store", "restore", file); !strings.Contains(out, "restored") {
		t.Fatalf("restore: %q", out)
	}
	if got := r.ok("session", "list", "--tenant", "acme"); strings.Count(got, "\n") != 6 {
		t.Fatalf("sessions after restore:\n%s", got)
	}
	r.fail("not empty", "store", "restore", file)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.backup")
	if err := os.WriteFile(bad, data[:len(data)-10], 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(dir, "fresh.db")
	f := &cli{t: t, bin: c.bin, store: fresh, env: []string{"CODITECT_STORE=" + fresh, "CODITECT_TOKEN="}}
	f.fail("not a valid backup", "store", "restore", bad)
}

// TestStoreVerifyRepairsClock: a log whose event times go back further
// than its audit clock records (written before the clock existed: the key
// is cleared here) fails `store verify`; `store verify --repair` records it,
// and verify passes again.
func TestStoreVerifyRepairsClock(t *testing.T) {
	c := newCLI(t)
	c.ok("tenant", "create", "acme")
	ctx := context.Background()
	st, err := storage.Open(ctx, c.store)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tenant.NewDirectory(st, "test").AuditLog("acme")
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		if _, err := l.Append(ctx, audit.Event{Kind: "note.added", User: "ada", Summary: "n", Time: base.Add(-time.Duration(i) * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	sp, _ := keyspace.Tenant("acme")
	if _, err := st.Update(ctx, func(tx kv.Tx) error { tx.Clear(sp.AuditRegression()); return nil }); err != nil {
		t.Fatal(err)
	}
	st.Close()

	out, errOut, code := run(t, c.bin, c.env, "store", "verify")
	if code != 1 || !strings.Contains(out, "INCONSISTENT") || !strings.Contains(errOut, "--repair") {
		t.Fatalf("verify of an unrecorded clock: exit %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = run(t, c.bin, c.env, "store", "verify", "--repair")
	if code != 0 || strings.Contains(out, "INCONSISTENT") || !strings.Contains(errOut, "acme: audit clock now records event times going back by 4h0m0s") {
		t.Fatalf("verify --repair: exit %d\n%s\n%s", code, out, errOut)
	}
	if out := c.ok("store", "verify"); strings.Contains(out, "INCONSISTENT") {
		t.Fatalf("verify after the repair: %s", out)
	}
}

// TestStoreVerifyAssignsProjects: on a store written before projects
// existed, `store verify` says how many sessions have no project and what
// to run; `store verify --repair` gives them one (their workspaces are not
// on this machine: projects named after them, without roots), and verify
// is quiet about them afterwards.
func TestStoreVerifyAssignsProjects(t *testing.T) {
	c := newCLI(t)
	if _, err := os.Stat("/tmp/coditect-prerelease/home"); err == nil {
		t.Skip("the fixture's workspaces exist on this machine")
	}
	data, err := os.ReadFile(filepath.Join("..", "..", "storage", "session", "testdata", "prerelease.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.store, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, c.bin, c.env, "store", "verify")
	if code != 0 || strings.Contains(out, "INCONSISTENT") ||
		!strings.Contains(errOut, "acme: sessions started before projects existed, without a project: 3;") ||
		!strings.Contains(errOut, "globex: sessions started before projects existed, without a project: 1;") ||
		!strings.Contains(errOut, "coditect store verify --repair") {
		t.Fatalf("verify of a pre-project store: exit %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = run(t, c.bin, c.env, "store", "verify", "--repair")
	if code != 0 || strings.Contains(out, "INCONSISTENT") ||
		!strings.Contains(errOut, "acme: 1 session in /tmp/coditect-prerelease/home/alice/src/webapp/services/api → project webapp/services/api") ||
		!strings.Contains(errOut, "acme: 3 of 3 sessions without a project now have one") ||
		!strings.Contains(errOut, "globex: 1 of 1 sessions without a project now have one") {
		t.Fatalf("verify --repair: exit %d\n%s\n%s", code, out, errOut)
	}
	if out := c.ok("store", "verify"); strings.Contains(out, "INCONSISTENT") {
		t.Fatalf("verify after the repair: %s", out)
	}
	if got := c.ok("session", "list", "--tenant", "acme"); strings.Count(got, "\n") != 4 {
		t.Fatalf("sessions after the repair:\n%s", got)
	}
}

// TestStoreCommandsOperatorOnly: copy, verify, backup and restore work on
// the store below its tenants (every tenant's keys and token hashes), so a
// token of any role is refused before the store is touched (nothing on
// stdout, no file written, no store created), while the local operator
// runs them. store status shows nothing of any tenant and answers anyone.
func TestStoreCommandsOperatorOnly(t *testing.T) {
	c := newCLI(t)
	ws := t.TempDir()
	for _, ten := range []string{"acme", "globex"} {
		c.ok("tenant", "create", ten)
		if err := os.Mkdir(filepath.Join(ws, ten), 0o755); err != nil {
			t.Fatal(err)
		}
		c.ok("session", "start", "--tenant", ten, "--as", "alice", "--title", "secret of "+ten, "--workspace", filepath.Join(ws, ten))
	}
	dir := t.TempDir()
	backup := filepath.Join(dir, "all.backup")
	c.ok("store", "backup", backup)
	for _, role := range []string{"member", "admin"} {
		out, _, code := run(t, c.bin, c.env, "token", "create", "--tenant", "acme", "--as", "alice", "--role", role)
		secret := strings.TrimSpace(out)
		if code != 0 || secret == "" {
			t.Fatalf("token create: exit %d", code)
		}
		tok := c.withToken(secret)
		dumped := filepath.Join(dir, role+".backup")
		copied := filepath.Join(dir, role+"-copy.db")
		restored := filepath.Join(dir, role+"-restored.db")
		for _, args := range [][]string{
			{"store", "backup", dumped},
			{"store", "backup", "-"},
			{"store", "backup", "--tenant", "acme", dumped},
			{"store", "verify"},
			{"store", "verify", "--repair"},
			{"store", "copy", c.store, "sqlite://" + copied},
			{"store", "copy", "--tenant", "acme", c.store, "sqlite://" + copied},
			{"store", "restore", backup, "--store", restored},
		} {
			tok.fail("unset CODITECT_TOKEN", args...)
		}
		for _, p := range []string{dumped, copied, restored} {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Errorf("a %s token's refused command left %s (%v)", role, p, err)
			}
		}
		if out := tok.ok("store", "status"); !strings.Contains(out, "health:  ok") || strings.Contains(out, "acme") || strings.Contains(out, "globex") {
			t.Errorf("store status with a %s token: %q", role, out)
		}
	}
	// The local operator still runs every one of them.
	if out := c.ok("store", "verify"); !strings.Contains(out, "acme") || !strings.Contains(out, "globex") {
		t.Fatalf("the operator's verify: %q", out)
	}
	c.ok("store", "copy", "--tenant", "acme", c.store, "sqlite://"+filepath.Join(dir, "op-copy.db"))
	c.ok("store", "backup", "--tenant", "acme", filepath.Join(dir, "op.backup"))
	c.ok("store", "restore", backup, "--store", filepath.Join(dir, "op-restored.db"))
}
