package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStoreCopyVerifyBackupRestore(t *testing.T) {
	c := newCLI(t)
	c.ok("tenant", "create", "acme")
	for i := 0; i < 5; i++ {
		c.ok("session", "start", "--tenant", "acme", "--title", "t", "--workspace", "/tmp")
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
