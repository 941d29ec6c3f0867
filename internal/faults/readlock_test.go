package faults_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/internal/testbin"
)

// cliRun is one finished `coditect` command.
type cliRun struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// runCLI runs the coditect binary with env added to the test's (and no
// token unless env sets one) and fails the test when it does not end
// within deadline.
func runCLI(t *testing.T, deadline time.Duration, env []string, args ...string) cliRun {
	t.Helper()
	r, err := execCLI(testbin.Coditect(t), deadline, env, args...)
	if err != nil {
		t.Fatalf("%v\nstderr: %s", err, r.stderr)
	}
	return r
}

// execCLI is runCLI for any goroutine: it reports instead of failing.
func execCLI(bin string, deadline time.Duration, env []string, args ...string) (cliRun, error) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(append(os.Environ(), "CODITECT_TOKEN="), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	start := time.Now()
	err := cmd.Run()
	r := cliRun{stdout: o.String(), stderr: e.String(), took: time.Since(start)}
	if ctx.Err() != nil {
		return r, fmt.Errorf("coditect %s did not answer within %v (killed)", strings.Join(args, " "), deadline)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		return r, err
	}
	return r, nil
}

// TestReadCommandsWhileLocked holds the store's write lock from another
// program (a plain SQLite connection in BEGIN IMMEDIATE) and runs the
// read-only CLI commands on a store URL whose lock timeout is ten minutes:
// a command that waited for the lock would hang, so each answering within
// a minute shows that none needs it — as the local operator, as a local
// user, and with a member's token. A local user that does not exist is a
// clear error at once, not created. store status reports the lock instead
// of waiting it out. A write with a short lock timeout fails with the
// error that says the store is locked by another process; a patient write
// waits and succeeds once the lock is released.
func TestReadCommandsWhileLocked(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "coditect.db")
	ws := t.TempDir()
	patient := []string{"CODITECT_STORE=" + sqliteURL(dbPath) + "?lock_timeout=10m"}
	impatient := []string{"CODITECT_STORE=" + sqliteURL(dbPath) + "?lock_timeout=500ms"}
	const deadline = time.Minute
	must := func(env []string, args ...string) string {
		t.Helper()
		r := runCLI(t, deadline, env, args...)
		if r.code != 0 {
			t.Fatalf("coditect %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
		return r.stdout
	}
	// Before the lock: tenant acme, its users ada (added by her first
	// write) and bob, a session of ada's and a member token of bob's.
	must(patient, "tenant", "create", "acme")
	must(patient, "user", "create", "bob", "--tenant", "acme", "--as", "ada")
	id := strings.TrimSpace(must(patient, "session", "start", "--tenant", "acme", "--as", "ada", "--title", "before the lock", "--workspace", ws))
	secret := strings.TrimSpace(must(patient, "token", "create", "--tenant", "acme", "--as", "ada", "--user", "bob", "--role", "member"))
	member := append([]string{"CODITECT_TOKEN=" + secret}, patient...)

	holder := startLockHolder(t, dbPath)

	// A write started now waits for the lock.
	type result struct {
		r   cliRun
		err error
		at  time.Time
	}
	waiting := make(chan result, 1)
	bin := testbin.Coditect(t)
	go func() {
		r, err := execCLI(bin, 3*deadline, patient, "session", "start", "--tenant", "acme", "--as", "ada", "--title", "waited for the lock", "--workspace", ws)
		waiting <- result{r, err, time.Now()}
	}()

	as := []string{"--tenant", "acme", "--as", "ada"}
	reads := [][]string{
		{"session", "list"}, {"session", "show", id},
		{"log", "query"}, {"log", "tail"}, {"log", "export"},
		{"agent", "list"}, {"project", "list"}, {"project", "show", filepath.Base(ws)},
		{"user", "list"}, {"token", "list"},
	}
	for _, who := range []struct {
		name  string
		env   []string
		extra []string
	}{
		{"local user", patient, as},
		{"local operator", patient, []string{"--tenant", "acme"}}, // the OS user is no user of acme
		{"member token", member, nil},
	} {
		for _, args := range reads {
			if who.name == "member token" && args[0] == "token" {
				continue // admins only
			}
			args = append(append([]string(nil), args...), who.extra...)
			r := runCLI(t, deadline, who.env, args...)
			t.Logf("%s: coditect %s answered in %v while the store was locked", who.name, strings.Join(args, " "), r.took.Round(time.Millisecond))
			if r.code != 0 {
				t.Errorf("%s: coditect %s while the store is locked: exit %d\n%s", who.name, strings.Join(args, " "), r.code, r.stderr)
			}
		}
	}
	if out := must(patient, "session", "list", "--tenant", "acme", "--as", "ada"); !strings.Contains(out, id) {
		t.Errorf("session list while locked does not show %s:\n%s", id, out)
	}

	// A read names no user into existence, and says so at once.
	r := runCLI(t, deadline, patient, "session", "list", "--tenant", "acme", "--as", "nobody")
	if r.code != 1 || !strings.Contains(r.stderr, `"nobody" is not a user of tenant "acme"`) {
		t.Errorf("a read as a user that does not exist: exit %d, stderr %q", r.code, r.stderr)
	}

	// store status reports the lock rather than waiting it out.
	r = runCLI(t, deadline, patient, "store", "status")
	t.Logf("store status answered in %v while the store was locked", r.took.Round(time.Millisecond))
	if r.code != 1 || !strings.Contains(r.stdout, "reads ok, writes locked out") || !strings.Contains(r.stderr, "another process holds the write lock") {
		t.Errorf("store status while locked: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	// An impatient write gives up with the clear, retryable error.
	r = runCLI(t, deadline, impatient, "session", "start", "--tenant", "acme", "--as", "ada", "--title", "while locked", "--workspace", ws)
	t.Logf("a write with lock_timeout=500ms failed after %v: %s", r.took.Round(time.Millisecond), strings.TrimSpace(r.stderr))
	if r.code != 1 || !strings.Contains(r.stderr, "locked by another process") {
		t.Errorf("a write while locked: exit %d, stderr %q; want an error saying the store is locked by another process", r.code, r.stderr)
	}

	// The patient write is still waiting; it succeeds once the lock goes.
	select {
	case w := <-waiting:
		t.Fatalf("a write finished while another process held the lock: %+v", w.r)
	default:
	}
	releasing := time.Now()
	holder.release()
	w := <-waiting
	if w.err != nil || w.r.code != 0 || w.at.Before(releasing) {
		t.Fatalf("the waiting write: %v, exit %d at %v, release began %v\n%s", w.err, w.r.code, w.at, releasing, w.r.stderr)
	}
	t.Logf("the waiting write committed %v after the lock's release began", w.at.Sub(releasing).Round(time.Millisecond))
	out := must(patient, "session", "list", "--tenant", "acme", "--as", "ada")
	if !strings.Contains(out, "waited for the lock") || strings.Contains(out, "while locked") {
		t.Errorf("sessions after the lock:\n%s", out)
	}
	if out := must(patient, "user", "list", "--tenant", "acme", "--as", "ada"); strings.Contains(out, "nobody") {
		t.Errorf("a read added a user:\n%s", out)
	}
}
