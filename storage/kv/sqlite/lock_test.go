package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/kvtest"
	"github.com/coditect/coditect/storage/kv/sqlite"
)

// holdLock is a child role that takes the store's write lock with a plain
// SQLite connection, says "locked" and keeps it until it is killed: another
// program holding a long transaction.
var holdLock = kvtest.Role{Name: "holdlock", Args: 0, Run: func(path string, _ []string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		return err
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	if _, err := conn.ExecContext(context.Background(), "INSERT INTO kv(key, value) VALUES (x'00', x'00')"); err != nil {
		return err
	}
	fmt.Fprintln(os.Stdout, "locked")
	select {} // until killed
}}

func TestLockedByAnotherProcess(t *testing.T) {
	_, path := newStore(t, sqlite.Options{})
	holder := kvtest.StartRole(t, "holdlock", path)
	holder.Expect(t, "locked", time.Minute)

	s, err := sqlite.Open(context.Background(), path, sqlite.Options{LockTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Update(context.Background(), func(tx kv.Tx) error {
		tx.Set([]byte("k"), []byte("v"))
		return nil
	})
	if !errors.Is(err, kv.ErrUnavailable) || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("write while another process holds the lock: got %v, want ErrUnavailable naming the lock", err)
	}
	if strings.Contains(err.Error(), "SQLITE_BUSY") && !errors.Is(err, kv.ErrUnavailable) {
		t.Fatalf("SQLITE_BUSY surfaced: %v", err)
	}
	// Readers are not blocked by a writer in WAL mode.
	if err := s.View(context.Background(), func(tx kv.ReadTx) error {
		_, err := tx.Get([]byte("k"))
		return err
	}); err != nil {
		t.Fatalf("read while another process holds the write lock: %v", err)
	}
	// A caller's deadline ends the wait with a clear error.
	s2, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = s2.Update(ctx, func(tx kv.Tx) error { tx.Set([]byte("k"), []byte("v")); return nil })
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "lock held by another process") {
		t.Fatalf("deadline while locked: got %v (%#v)", err, err)
	}
	// A writer waiting on the lock proceeds once the holder dies.
	done := make(chan error, 1)
	go func() {
		_, err := s2.Update(context.Background(), func(tx kv.Tx) error {
			tx.Set([]byte("k"), []byte("after"))
			return nil
		})
		done <- err
	}()
	holder.Kill(t)
	if err := <-done; err != nil {
		t.Fatalf("write after the holder died: %v", err)
	}
	var v []byte
	if err := s2.View(context.Background(), func(tx kv.ReadTx) error {
		var err error
		v, err = tx.Get([]byte("k"))
		return err
	}); err != nil || string(v) != "after" {
		t.Fatalf("after the holder died: %q, %v", v, err)
	}
	// The holder's uncommitted write vanished with it.
	if err := s2.View(context.Background(), func(tx kv.ReadTx) error {
		v, err = tx.Get([]byte{0})
		return err
	}); err != nil || v != nil {
		t.Fatalf("a killed holder's uncommitted write is visible: %q, %v", v, err)
	}
}

func TestOptions(t *testing.T) {
	if _, err := sqlite.Open(context.Background(), t.TempDir()+"/x.db", sqlite.Options{Synchronous: "OFF"}); err == nil {
		t.Fatal("synchronous=OFF accepted")
	}
	if _, err := sqlite.Open(context.Background(), "", sqlite.Options{}); err == nil {
		t.Fatal("empty path accepted")
	}
	s, path := newStore(t, sqlite.Options{})
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("new store file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if s.Path() != path {
		t.Fatalf("Path() = %q, want %q", s.Path(), path)
	}
}

// Several processes creating the same new store at once all succeed and
// share it.
func TestConcurrentCreate(t *testing.T) {
	path := t.TempDir() + "/new.db"
	const procs, n = 4, 20
	children := make([]*kvtest.Child, procs)
	for i := range children {
		children[i] = kvtest.StartRole(t, "write", path, i, n, 0)
	}
	for _, c := range children {
		c.Expect(t, "done", time.Minute)
	}
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []kv.KeyValue
	if err := s.View(context.Background(), func(tx kv.ReadTx) error {
		b, e := kv.PrefixRange([]byte("write/"))
		got, err = kv.Collect(tx.GetRange(b, e, kv.RangeOptions{}))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != procs*n {
		t.Fatalf("%d records from %d processes creating one store at once, want %d", len(got), procs, procs*n)
	}
}

// AdvanceVersion moves every later stamp past the given one, also for
// another process's store on the same file.
func TestAdvanceVersion(t *testing.T) {
	s, path := newStore(t, sqlite.Options{})
	ctx := context.Background()
	write := func(s kv.Store) kv.Versionstamp {
		t.Helper()
		st, err := s.Update(ctx, func(tx kv.Tx) error { tx.Set([]byte("k"), []byte("v")); return nil })
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	before := write(s)
	var past kv.Versionstamp
	past[0], past[7] = 0, 0x10
	past[3] = 0x01 // commit number 0x0000000100000010
	if err := s.AdvanceVersion(ctx, past); err != nil {
		t.Fatal(err)
	}
	after := write(s)
	if after.Compare(past) <= 0 || after.Compare(before) <= 0 {
		t.Fatalf("after advancing past %s: stamp %s (before %s)", past, after, before)
	}
	other, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if st := write(other); st.Compare(after) <= 0 {
		t.Fatalf("another store on the file stamped %s, not after %s", st, after)
	}
	// Advancing backwards changes nothing.
	if err := s.AdvanceVersion(ctx, before); err != nil {
		t.Fatal(err)
	}
	if st := write(s); st.Compare(after) <= 0 {
		t.Fatalf("advancing to an older stamp moved the counter back: %s", st)
	}
}
