package faults_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/tenant"
)

// mountTmpfs mounts a tmpfs of size at a new directory, or skips the test
// where mounting is not allowed (not root, no CAP_SYS_ADMIN).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a size-limited tmpfs here (%v: %s)", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// TestDiskFullWhileAppending fills a 4 MiB file system with audit appends
// through the store: the append that runs out of space fails with an
// error that says so, nothing of a failed transaction is visible, every
// acknowledged append is; once space returns (the file system grows), the
// same open store writes again, and the reopened store passes SQLite's
// integrity check and the log's consistency check.
func TestDiskFullWhileAppending(t *testing.T) {
	dir := mountTmpfs(t, "4m")
	dbPath := filepath.Join(dir, "coditect.db")
	storeURL := sqliteURL(dbPath)
	ctx := context.Background()
	st, err := storage.Open(ctx, storeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if st != nil {
			st.Close()
		}
	}()
	sc, err := tenant.NewDirectory(st, "faults-test").Local(ctx, "t1", "ada")
	if err != nil {
		t.Fatal(err)
	}
	payload := strings.Repeat("x", 16<<10)
	event := func(i int) audit.Event {
		ev := sc.Event("note.added", fmt.Sprintf("note %d", i))
		ev.Attrs = map[string]any{"payload": payload}
		return ev
	}
	// Three events per transaction, so a failure could leave a partial one.
	var acked []string
	var full error
	for i := 0; i < 10_000 && full == nil; i += 3 {
		evs, err := sc.Log().Append(ctx, event(i), event(i+1), event(i+2))
		if err != nil {
			full = err
			break
		}
		for _, ev := range evs {
			acked = append(acked, ev.ID)
		}
	}
	if full == nil {
		t.Fatal("4 MiB never filled up")
	}
	t.Logf("after %d acknowledged events: %v", len(acked), full)
	msg := strings.ToLower(full.Error())
	if !strings.Contains(msg, "full") && !strings.Contains(msg, "no space") {
		t.Errorf("the disk-full error does not say the disk is full: %v", full)
	}
	// Everything acknowledged, nothing more, in whole transactions.
	check := func(when string) []audit.Event {
		t.Helper()
		evs := allEvents(t, sc, audit.Filter{Kind: "note.added"})
		if len(evs) != len(acked) {
			t.Fatalf("%s: %d events in the log, %d acknowledged", when, len(evs), len(acked))
		}
		for i, ev := range evs {
			if ev.ID != acked[i] {
				t.Fatalf("%s: event %d is %s, acknowledged %s", when, i, ev.ID, acked[i])
			}
		}
		return evs
	}
	check("disk full")
	// While the disk stays full a further write fails cleanly, or, when
	// SQLite finds room in pages it freed (the failed transaction's WAL
	// frames), succeeds: either way the log holds exactly what was
	// acknowledged.
	if evs, err := sc.Log().Append(ctx, event(-1)); err == nil {
		acked = append(acked, evs[0].ID)
	}
	check("disk still full")

	// Space returns.
	if out, err := exec.Command("mount", "-o", "remount,size=64m", dir).CombinedOutput(); err != nil {
		t.Fatalf("growing the tmpfs: %v %s", err, out)
	}
	evs, err := sc.Log().Append(ctx, event(-2))
	if err != nil {
		t.Fatalf("the open store cannot write after space returned: %v", err)
	}
	acked = append(acked, evs[0].ID)
	check("space returned")
	if err := st.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	st = nil

	st2, err := storage.Open(ctx, storeURL)
	if err != nil {
		t.Fatalf("reopening after a disk-full: %v", err)
	}
	defer st2.Close()
	sc2, err := tenant.NewDirectory(st2, "faults-test").Local(ctx, "t1", "ada")
	if err != nil {
		t.Fatal(err)
	}
	sc = sc2
	check("reopened")
	checkStore(t, sc2, dbPath)
	if fi, err := os.Stat(dbPath); err == nil {
		t.Logf("store %d bytes", fi.Size())
	}
}
