package tools

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv/sqlite"
	"github.com/coditect/coditect/storage/tenant"
)

// TestRecoverSpools: the spool a killed process left is appended exactly
// once — records its queue had committed (under the spool's mark) are not
// appended again, a torn last line is skipped — then the file and the
// marks are gone; a live process's spool (locked) is left alone.
func TestRecoverSpools(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"), sqlite.Options{Synchronous: sqlite.SyncNormal})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	dir := tenant.NewDirectory(st, "test")
	for _, id := range []string{"t1", "t2"} {
		if _, err := dir.Local(ctx, id, "ada"); err != nil {
			t.Fatal(err)
		}
	}
	logOf := func(id string) *audit.Log {
		l, err := dir.AuditLog(id)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	t1, t2 := logOf("t1"), logOf("t2")
	spoolDir := filepath.Join(t.TempDir(), "spool")

	// A process spools five records of t1 and three of t2, interleaved, and
	// its queue commits t1's first two (raising the mark) before it dies.
	dead, err := openSpool(spoolDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := func(l *audit.Log, n int) audit.Event {
		return audit.Event{Kind: "tool.called", User: "ada", Summary: fmt.Sprintf("%s call %d", l.Tenant(), n),
			Attrs: map[string]any{"tool": "whoami", "n": n}}
	}
	var seqs []uint64
	for i := range 8 {
		l, n := t1, i/2
		if i%2 == 1 && i < 6 {
			l, n = t2, i/2
		} else if i >= 6 {
			n = i - 3
		}
		seq, ok := dead.write(l, rec(l, n))
		if !ok {
			t.Fatal("spool write refused")
		}
		seqs = append(seqs, seq)
	}
	// Committed by the dead queue: t1's records 0 and 1 (seqs 1 and 3).
	if _, err := t1.AppendSpool(ctx, dead.id, []audit.SpoolRecord{{Seq: seqs[0], Event: rec(t1, 0)}, {Seq: seqs[2], Event: rec(t1, 1)}}); err != nil {
		t.Fatal(err)
	}
	// The kill: a torn last line, the descriptor (and lock) gone.
	if _, err := dead.f.WriteString(`{"seq":99,"tenant":"t1","event":{"kind":"tool.ca`); err != nil {
		t.Fatal(err)
	}
	dead.f.Close()

	// A live process's spool in the same directory.
	live, err := openSpool(spoolDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := live.write(t1, rec(t1, 100)); !ok {
		t.Fatal("spool write refused")
	}

	resolve := func(id string) (*audit.Log, error) { return dir.AuditLog(id) }
	n, err := RecoverSpools(ctx, spoolDir, resolve, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n != 6 {
		t.Errorf("recovered %d records, want 6 (3 of t1 not yet committed, 3 of t2)", n)
	}
	summaries := func(l *audit.Log) []string {
		p, err := l.Query(ctx, audit.Query{Filter: audit.Filter{Kind: "tool.called"}})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ev := range p.Events {
			out = append(out, ev.Summary)
		}
		return out
	}
	if got, want := fmt.Sprint(summaries(t1)), "[t1 call 0 t1 call 1 t1 call 2 t1 call 3 t1 call 4]"; got != want {
		t.Errorf("t1 after recovery: %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(summaries(t2)), "[t2 call 0 t2 call 1 t2 call 2]"; got != want {
		t.Errorf("t2 after recovery: %s, want %s", got, want)
	}
	if _, err := os.Stat(dead.path); !os.IsNotExist(err) {
		t.Errorf("the recovered spool is still there: %v", err)
	}
	for _, l := range []*audit.Log{t1, t2} {
		if m, err := l.SpoolMark(ctx, dead.id); err != nil || m != 0 {
			t.Errorf("%s: the recovered spool's mark is %d (%v), want cleared", l.Tenant(), m, err)
		}
	}
	if _, err := os.Stat(live.path); err != nil {
		t.Errorf("the live spool was touched: %v", err)
	}
	// Nothing twice.
	if n, err := RecoverSpools(ctx, spoolDir, resolve, nil); err != nil || n != 0 {
		t.Errorf("second recovery: %d records, %v", n, err)
	}
	// Once the live process is gone too, its record is recovered.
	live.f.Close()
	if n, err := RecoverSpools(ctx, spoolDir, resolve, nil); err != nil || n != 1 {
		t.Errorf("recovery after the second process died: %d records, %v", n, err)
	}
}

// TestAuditQueueSpool: with a spool, reads are answered once their records
// are in the file, the queue commits them, and a clean Close leaves no file
// and no mark.
func TestAuditQueueSpool(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	q := NewAuditQueue(0, nil)
	spoolDir := filepath.Join(t.TempDir(), "spool")
	if n, err := q.UseSpool(ctx, spoolDir, e.dir.AuditLog); err != nil || n != 0 {
		t.Fatalf("UseSpool: %d, %v", n, err)
	}
	tool := findTool(t, "whoami")
	h := Audit(nil, q)(tool.Handler)
	const n = 300
	done := make(chan error, n)
	for range n {
		go func() {
			_, err := h(ctx, &Call{Caller: Caller{Scope: e.alice}, Tool: tool, Args: []byte(`{}`), Started: time.Now()})
			done <- err
		}()
	}
	for range n {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	id := q.spool.id
	if err := q.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := counts(t, e.alice)["tool.called"]; got != n {
		t.Errorf("%d records after Close, want %d", got, n)
	}
	if files, _ := filepath.Glob(filepath.Join(spoolDir, "*"+spoolExt)); len(files) != 0 {
		t.Errorf("spool files after a clean Close: %v", files)
	}
	if m, err := e.alice.Log().SpoolMark(ctx, id); err != nil || m != 0 {
		t.Errorf("spool mark after a clean Close: %d, %v", m, err)
	}
}

// TestSpoolRecoveredWhileRunning: a queue with a spool picks up, while it
// runs, the spool a process beside it left when it died — its records do
// not wait for a restart.
func TestSpoolRecoveredWhileRunning(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	spoolDir := filepath.Join(t.TempDir(), "spool")
	q := NewAuditQueue(0, nil)
	q.recoverEvery = 10 * time.Millisecond
	if _, err := q.UseSpool(ctx, spoolDir, e.dir.AuditLog); err != nil {
		t.Fatal(err)
	}
	defer q.Close(context.Background())
	head, err := e.alice.Log().Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A neighbour spools a record and dies.
	dead, err := openSpool(spoolDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := dead.write(e.alice.Log(), audit.Event{Kind: "tool.called", User: "alice", Summary: "left behind", Attrs: map[string]any{"tool": "whoami"}}); !ok {
		t.Fatal("spool write refused")
	}
	dead.f.Close()
	// The running queue appends it: follow the log until it shows up.
	found := errors.New("found")
	err = e.alice.Log().Tail(ctx, head, audit.Filter{Kind: "tool.called"}, func(ev audit.Event) error {
		if ev.Summary == "left behind" {
			return found
		}
		return nil
	})
	if err != found {
		t.Fatalf("the dead neighbour's record never reached the log: %v", err)
	}
}

// TestSpoolDiskFull: the spool's file system fills up (a 64 KiB tmpfs):
// reads go on — their records wait for a commit instead of the spool — and
// none is lost; once space returns the spool takes records again. Needs
// mount (root); elsewhere it is skipped.
func TestSpoolDiskFull(t *testing.T) {
	spoolDir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", spoolDir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a size-limited tmpfs here (%v: %s)", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { _ = exec.Command("umount", spoolDir).Run() })
	e := setup(t) // the store is elsewhere, with room
	ctx := context.Background()
	q := NewAuditQueue(0, nil)
	if _, err := q.UseSpool(ctx, spoolDir, e.dir.AuditLog); err != nil {
		t.Fatal(err)
	}
	// Fill the file system, leaving less than one record's room.
	filler := filepath.Join(spoolDir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 512)); err != nil {
			break
		}
	}
	f.Close()
	tool := findTool(t, "whoami")
	h := Audit(nil, q)(tool.Handler)
	call := func() {
		t.Helper()
		if _, err := h(ctx, &Call{Caller: Caller{Scope: e.alice}, Tool: tool, Args: []byte(`{}`), Started: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	before := counts(t, e.alice)["tool.called"]
	for range 5 {
		call()
	}
	// The spool could not take them, so each call waited for its commit:
	// all five are in the log already.
	if got := counts(t, e.alice)["tool.called"] - before; got != 5 {
		t.Errorf("%d of 5 reads' records committed while the spool's disk was full", got)
	}
	if !q.spool.failing {
		t.Fatal("the spool's writes did not fail: the file system was not full")
	}
	// Space returns: the spool takes records again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	call()
	if q.spool.failing || q.spool.seq == 0 {
		t.Errorf("the spool did not take a record once space returned (failing %v, seq %d)", q.spool.failing, q.spool.seq)
	}
	if err := q.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := counts(t, e.alice)["tool.called"] - before; got != 6 {
		t.Errorf("%d of 6 reads' records in the log after Close", got)
	}
}

// TestSpoolNeverVisibleUnlocked: a neighbour's recovery that runs the
// moment a new spool appears under its name finds it locked and leaves it,
// so a record spooled into it survives the process's death and is
// recovered. (Created under its name and locked after, the spool was taken
// for a dead process's and removed, and the record was spooled into a
// deleted file.)
func TestSpoolNeverVisibleUnlocked(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	spoolDir := filepath.Join(t.TempDir(), "spool")
	var unlocked, recoveries int
	prev := spoolVisible
	t.Cleanup(func() { spoolVisible = prev })
	spoolVisible = func(path string) {
		if f, err := os.Open(path); err == nil {
			if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
				unlocked++
			}
			f.Close()
		}
		if _, err := RecoverSpools(ctx, spoolDir, e.dir.AuditLog, nil); err != nil {
			t.Errorf("recovery beside a starting process: %v", err)
		}
		recoveries++
	}
	sp, err := openSpool(spoolDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if recoveries == 0 {
		t.Fatal("openSpool never made its spool visible to the hook")
	}
	if unlocked > 0 {
		t.Error("a new spool was visible under its name unlocked")
	}
	if _, ok := sp.write(e.alice.Log(), audit.Event{Kind: "tool.called", User: "alice", Summary: "acknowledged read",
		Attrs: map[string]any{"tool": "whoami"}}); !ok {
		t.Fatal("spool write refused")
	}
	// The kill: the descriptor and its lock go, the record stays.
	sp.f.Close()
	spoolVisible = prev
	n, err := RecoverSpools(ctx, spoolDir, e.dir.AuditLog, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("recovered %d records of the killed process, want its 1 acknowledged read", n)
	}
	p, err := e.alice.Log().Query(ctx, audit.Query{Filter: audit.Filter{Kind: "tool.called"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 1 || p.Events[0].Summary != "acknowledged read" {
		t.Errorf("tool.called records after recovery: %+v, want the acknowledged read once", p.Events)
	}
}

// TestSpoolStaleNewFile: the .new file of a process killed while creating
// its spool (before its rename; it holds no record) is removed by
// recovery, unless its creator holds its lock.
func TestSpoolStaleNewFile(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	spoolDir := t.TempDir()
	stale := filepath.Join(spoolDir, "host-1-00000000"+newSpoolExt)
	if err := os.WriteFile(stale, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	creating := filepath.Join(spoolDir, "host-2-00000000"+newSpoolExt)
	f, err := os.OpenFile(creating, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if n, err := RecoverSpools(ctx, spoolDir, e.dir.AuditLog, nil); err != nil || n != 0 {
		t.Fatalf("recovery: %d records, %v", n, err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the stale .new file is still there: %v", err)
	}
	if _, err := os.Stat(creating); err != nil {
		t.Errorf("the .new file of a live creator was removed: %v", err)
	}
}

// TestSpoolConcurrentStartsAndRecoveries: processes' spools opened while
// recoveries run beside them, each spooling a record and dying; no spool
// is taken from its live owner, so every record reaches the log exactly
// once.
func TestSpoolConcurrentStartsAndRecoveries(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	spoolDir := filepath.Join(t.TempDir(), "spool")
	const owners = 64
	var stop atomic.Bool
	recovering := make(chan error, 1)
	go func() {
		var err error
		for !stop.Load() && err == nil {
			_, err = RecoverSpools(ctx, spoolDir, e.dir.AuditLog, nil)
		}
		recovering <- err
	}()
	errs := make(chan error, owners)
	for i := range owners {
		go func() {
			sp, err := openSpool(spoolDir, nil)
			if err != nil {
				errs <- err
				return
			}
			if _, ok := sp.write(e.alice.Log(), audit.Event{Kind: "tool.called", User: "alice", Summary: fmt.Sprintf("read %d", i),
				Attrs: map[string]any{"tool": "whoami"}}); !ok {
				errs <- errors.New("spool write refused")
			}
			sp.f.Close() // killed
			errs <- nil
		}()
	}
	for range owners {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	if err := <-recovering; err != nil {
		t.Fatalf("recovery: %v", err)
	}
	if _, err := RecoverSpools(ctx, spoolDir, e.dir.AuditLog, nil); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, ev := range allToolCalls(t, e.alice) {
		seen[ev.Summary]++
	}
	for i := range owners {
		if s := fmt.Sprintf("read %d", i); seen[s] != 1 {
			t.Errorf("%s: %d records, want 1", s, seen[s])
		}
	}
	if left, _ := os.ReadDir(spoolDir); len(left) != 0 {
		t.Errorf("files left after the last recovery: %d", len(left))
	}
}

// allToolCalls returns sc's tenant's tool.called events.
func allToolCalls(t *testing.T, sc *tenant.Scope) []audit.Event {
	t.Helper()
	var out []audit.Event
	q := audit.Query{Filter: audit.Filter{Kind: "tool.called"}, Limit: audit.MaxLimit}
	for {
		p, err := sc.Log().Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Events...)
		if p.Next == "" {
			return out
		}
		q.Cursor = p.Next
	}
}
