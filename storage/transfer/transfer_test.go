package transfer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/kvtest"
	"github.com/coditect/coditect/storage/kv/sqlite"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/storage/transfer"
	"github.com/coditect/coditect/storage/tuple"
)

func openPath(path string) (kv.Store, error) {
	return sqlite.Open(context.Background(), path, sqlite.Options{})
}

// copyRole copies the store at its locator into the store at args[0].
var copyRole = kvtest.Role{Name: "copy", Args: 1, Run: func(src string, args []string) error {
	s, err := openPath(src)
	if err != nil {
		return err
	}
	defer s.Close()
	d, err := openPath(args[0])
	if err != nil {
		return err
	}
	defer d.Close()
	_, err = transfer.Copy(context.Background(), s, d, transfer.Scope{})
	return err
}}

func TestMain(m *testing.M) { kvtest.Main(m, openPath, copyRole) }

var bg = context.Background()

func open(t *testing.T) (kv.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := openPath(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// fill gives a store two tenants with users, tokens, projects, sessions
// and events, and returns a token secret of each.
func fill(t *testing.T, s kv.Store, events int) map[string]string {
	secrets, _ := fillProjects(t, s, events)
	return secrets
}

// fillProjects is fill that also returns the root of each tenant's
// project.
func fillProjects(t *testing.T, s kv.Store, events int) (secrets, roots map[string]string) {
	t.Helper()
	d := tenant.NewDirectory(s, "test")
	secrets, roots = map[string]string{}, map[string]string{}
	for _, id := range []string{"acme", "globex"} {
		sc, err := d.Local(bg, id, "alice")
		if err != nil {
			t.Fatal(err)
		}
		secret, _, err := d.IssueToken(bg, id, "alice", tenant.RoleAdmin, tenant.TokenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		secrets[id] = secret
		// The local operator's workspace becomes the root of a project.
		sess, err := session.Start(bg, sc, session.Spec{Title: "t", Workspace: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		roots[id] = sess.Workspace
		batch := make([]audit.Event, 0, 100)
		for i := 0; i < events; i++ {
			ev := sc.Event("note.added", fmt.Sprint("note ", i))
			ev.Session = sess.ID
			batch = append(batch, ev)
			if len(batch) == cap(batch) || i == events-1 {
				if _, err := sc.Log().Append(bg, batch...); err != nil {
					t.Fatal(err)
				}
				batch = batch[:0]
			}
		}
	}
	return secrets, roots
}

func dump(t *testing.T, s kv.Store, begin, end []byte) []kv.KeyValue {
	t.Helper()
	var out []kv.KeyValue
	for {
		var batch []kv.KeyValue
		if err := s.View(bg, func(tx kv.ReadTx) error {
			var err error
			batch, err = kv.Collect(tx.GetRange(begin, end, kv.RangeOptions{Limit: 2000}))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		out = append(out, batch...)
		if len(batch) < 2000 {
			return out
		}
		begin = kv.KeyAfter(batch[len(batch)-1].Key)
	}
}

func sameData(t *testing.T, a, b []kv.KeyValue) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d keys against %d", len(a), len(b))
	}
	for i := range a {
		if !bytes.Equal(a[i].Key, b[i].Key) || !bytes.Equal(a[i].Value, b[i].Value) {
			t.Fatalf("key %d differs: %s", i, kv.DisplayKey(a[i].Key))
		}
	}
}

// After a copy the destination answers like the source: same keys, the
// tokens authenticate, the logs query, and new events follow the copied
// ones.
func TestCopyWholeStore(t *testing.T) {
	src, _ := open(t)
	dst, _ := open(t)
	secrets := fill(t, src, 300)
	r, err := transfer.Copy(bg, src, dst, transfer.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Keys == 0 || r.Ranges == 0 || !r.Advanced || r.Resumed {
		t.Fatalf("report %+v", r)
	}
	b, e := keyspace.Root().Range()
	sameData(t, dump(t, src, b, e), dump(t, dst, b, e))
	d := tenant.NewDirectory(dst, "test")
	sc, err := d.Authenticate(bg, secrets["globex"])
	if err != nil {
		t.Fatalf("a copied token: %v", err)
	}
	p, err := sc.Log().Query(bg, audit.Query{Order: audit.NewestFirst, Limit: 1})
	if err != nil || len(p.Events) != 1 {
		t.Fatalf("query the copied log: %v", err)
	}
	newer, err := sc.Log().Append(bg, sc.Event("note.added", "after the copy"))
	if err != nil {
		t.Fatal(err)
	}
	if newer[0].ID <= p.Events[0].ID {
		t.Fatalf("an event appended after the copy has id %s, not after the copied %s", newer[0].ID, p.Events[0].ID)
	}
	rep, err := d.VerifyAudit(bg)
	if err != nil {
		t.Fatal(err)
	}
	for id, r := range rep {
		if !r.OK() {
			t.Fatalf("tenant %s after the copy: %+v", id, r)
		}
	}
}

func TestCopyOneTenant(t *testing.T) {
	src, _ := open(t)
	dst, _ := open(t)
	secrets, roots := fillProjects(t, src, 50)
	if _, err := transfer.Copy(bg, src, dst, transfer.Scope{Tenant: "acme"}); err != nil {
		t.Fatal(err)
	}
	d := tenant.NewDirectory(dst, "test")
	sc, err := d.Authenticate(bg, secrets["acme"])
	if err != nil {
		t.Fatalf("acme's token after a tenant copy: %v", err)
	}
	// Acme's project root came along in the global root index, so its
	// paths resolve in the destination; globex's root did not.
	if pl, err := project.Resolve(bg, sc, roots["acme"]+"/main.go"); err != nil || pl.Rel != "main.go" {
		t.Fatalf("acme's file in the copy: %+v, %v", pl, err)
	}
	rb, re := keyspace.AllRoots().Range()
	if got := dump(t, dst, rb, re); len(got) != 1 || !strings.Contains(string(got[0].Value), `"acme"`) {
		t.Fatalf("root index after copying acme: %v", got)
	}
	if _, err := d.Authenticate(bg, secrets["globex"]); err == nil {
		t.Fatal("globex's token came along with acme")
	}
	ts, err := d.ListTenants(bg)
	if err != nil || len(ts) != 1 || ts[0].ID != "acme" {
		t.Fatalf("tenants after copying acme: %+v %v", ts, err)
	}
	g, _ := keyspace.Tenant("globex")
	b, e := g.Range()
	if got := dump(t, dst, b, e); len(got) != 0 {
		t.Fatalf("%d of globex's keys copied", len(got))
	}
	a, _ := keyspace.Tenant("acme")
	b, e = a.Range()
	sameData(t, dump(t, src, b, e), dump(t, dst, b, e))
}

// A copy killed mid-way continues where it stopped.
func TestCopyResumes(t *testing.T) {
	src, srcPath := open(t)
	dst, dstPath := open(t)
	fill(t, src, 6000)
	// Wait (with a watch) for the child's first progress record, then
	// kill it.
	progress := keyspace.NewSubspace(tuple.Tuple{"coditect-transfer"}.Pack()).Pack(tuple.Tuple{"copy", "", int64(0)})
	var w kv.Watch
	if err := dst.View(bg, func(tx kv.ReadTx) error { w = tx.Watch(progress); return nil }); err != nil {
		t.Fatal(err)
	}
	child := kvtest.StartRole(t, "copy", srcPath, dstPath)
	ctx, cancel := context.WithTimeout(bg, time.Minute)
	defer cancel()
	if err := w.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	child.Kill(t)
	r, err := transfer.Copy(bg, src, dst, transfer.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Resumed {
		t.Fatalf("the second copy did not resume: %+v", r)
	}
	b, e := keyspace.Root().Range()
	sameData(t, dump(t, src, b, e), dump(t, dst, b, e))
}

// Verification catches a destination that differs.
func TestCopyDetectsMismatch(t *testing.T) {
	src, _ := open(t)
	dst, _ := open(t)
	fill(t, src, 20)
	extra := keyspace.Root().Pack(tuple.Tuple{"stray"})
	if _, err := dst.Update(bg, func(tx kv.Tx) error { tx.Set(extra, []byte("x")); return nil }); err != nil {
		t.Fatal(err)
	}
	_, err := transfer.Copy(bg, src, dst, transfer.Scope{})
	if !errors.Is(err, transfer.ErrMismatch) {
		t.Fatalf("a destination with a stray key: %v", err)
	}
}

func TestBackupRestore(t *testing.T) {
	src, _ := open(t)
	secrets := fill(t, src, 500)
	var buf bytes.Buffer
	br, err := transfer.Backup(bg, src, transfer.Scope{}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	dst, _ := open(t)
	rr, err := transfer.Restore(bg, dst, bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if rr.Keys != br.Keys || rr.Checksum != br.Checksum || !rr.Advanced {
		t.Fatalf("backup %+v, restore %+v", br, rr)
	}
	b, e := keyspace.Root().Range()
	sameData(t, dump(t, src, b, e), dump(t, dst, b, e))
	if _, err := tenant.NewDirectory(dst, "t").Authenticate(bg, secrets["acme"]); err != nil {
		t.Fatalf("a restored token: %v", err)
	}
	// Into a store that is not empty: refused, nothing changed.
	if _, err := transfer.Restore(bg, dst, bytes.NewReader(buf.Bytes())); !errors.Is(err, transfer.ErrNotEmpty) {
		t.Fatalf("restore into a non-empty store: %v", err)
	}
	// Damaged or truncated files: refused, and the destination left empty.
	data := buf.Bytes()
	damaged := bytes.Clone(data)
	damaged[len(damaged)/2] ^= 0x40
	for name, in := range map[string][]byte{
		"damaged":   damaged,
		"truncated": data[:len(data)*2/3],
		"no header": data[5:],
		"empty":     nil,
	} {
		fresh, _ := open(t)
		if _, err := transfer.Restore(bg, fresh, bytes.NewReader(in)); !errors.Is(err, transfer.ErrBadBackup) {
			t.Errorf("%s backup: %v", name, err)
		}
		if got := dump(t, fresh, b, e); len(got) != 0 {
			t.Errorf("%s backup left %d keys behind", name, len(got))
		}
	}
}

// plainStore hides a store's kv.VersionAdvancer.
type plainStore struct{ kv.Store }

// lazyAdvancer claims to advance and does not.
type lazyAdvancer struct{ kv.Store }

func (lazyAdvancer) AdvanceVersion(context.Context, kv.Versionstamp) error { return nil }

// A copy into a store whose versions are behind the copied history, and
// that cannot be advanced past it, fails with ErrNotOrdered instead of
// reporting success with Advanced false.
func TestCopyRefusesUnorderedDestination(t *testing.T) {
	src, _ := open(t)
	fill(t, src, 50)
	// src's commit counter is far ahead of a fresh store's.
	far := kv.NewVersionstamp([kv.StampSize]byte{0, 0, 0, 1}, 0)
	if err := src.(kv.VersionAdvancer).AdvanceVersion(bg, far); err != nil {
		t.Fatal(err)
	}
	fill(t, src, 5)
	for name, wrap := range map[string]func(kv.Store) kv.Store{
		"not an advancer":       func(s kv.Store) kv.Store { return plainStore{s} },
		"advancer that did not": func(s kv.Store) kv.Store { return lazyAdvancer{s} },
	} {
		t.Run(name, func(t *testing.T) {
			dst, _ := open(t)
			r, err := transfer.Copy(bg, src, wrap(dst), transfer.Scope{})
			if !errors.Is(err, transfer.ErrNotOrdered) || r.Advanced {
				t.Fatalf("Copy: %v, report %+v; want transfer.ErrNotOrdered", err, r)
			}
			t.Log(err)
		})
	}
}
