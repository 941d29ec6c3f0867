//go:build fdb

package fdb_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/fdb"
	"github.com/coditect/coditect/storage/kv/kvtest"
)

func TestMain(m *testing.M) { kvtest.Main(m, open) }

// open opens a store by its locator: the store URL fdb.URL returns, which
// carries the cluster file and the test's prefix to child processes.
func open(locator string) (kv.Store, error) {
	u, err := url.Parse(locator)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := fdb.OpenURL(ctx, u)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// clusterFile returns $FDB_CLUSTER_FILE, or skips the test without one.
func clusterFile(t testing.TB) string {
	t.Helper()
	cf := os.Getenv("FDB_CLUSTER_FILE")
	if cf == "" {
		t.Skip("FDB_CLUSTER_FILE is not set: these tests need a FoundationDB cluster " +
			"(FDB_CLUSTER_FILE=/etc/foundationdb/fdb.cluster go test -tags fdb ./storage/kv/fdb/; see docs/FOUNDATIONDB.md)")
	}
	return cf
}

// newStore opens an empty store under a fresh random prefix and drops it
// (its keys and its registry record) when the test ends, so runs share a cluster without seeing each
// other's keys or leaving any behind.
func newStore(t testing.TB, opts fdb.Options) (*fdb.Store, string) {
	t.Helper()
	cf := clusterFile(t)
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	opts.Prefix = []byte("coditect-test/" + hex.EncodeToString(r[:]) + "/")
	locator, err := fdb.URL(cf, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := fdb.Open(ctx, cf, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		// The test may have closed s: clear through a handle of our own.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := fdb.Open(ctx, cf, fdb.Options{Prefix: opts.Prefix})
		if err != nil {
			t.Errorf("clear test prefix: %v", err)
			return
		}
		defer c.Close()
		if err := c.Drop(ctx); err != nil {
			t.Errorf("clear test prefix: %v", err)
		}
	})
	return s, locator
}

// harness is the conformance suite's view of this backend.
// testPrefixLen is the length of newStore's "coditect-test/<16 hex>/".
const testPrefixLen = len("coditect-test/") + 16 + 1

var harness = kvtest.Harness{
	Name:       "fdb",
	MaxKeySize: kv.MaxKeySize - testPrefixLen,
	New: func(t testing.TB) (kv.Store, string) {
		return newStore(t, fdb.Options{})
	},
	Open: open,
	NewShortLived: func(t testing.TB, age time.Duration) kv.Store {
		s, _ := newStore(t, fdb.Options{MaxTransactionAge: age})
		return s
	},
}

func TestConformance(t *testing.T) {
	clusterFile(t)
	kvtest.Run(t, harness)
}

// TestCrash kills client processes mid-commit: every acknowledged commit
// must be in the cluster, nothing half-applied.
func TestCrash(t *testing.T) {
	clusterFile(t)
	kvtest.RunCrash(t, harness, kvtest.CrashKills())
}

// appendOnce appends record to a stream's log, ordered by versionstamp,
// exactly once per idempotency id however often it runs: Transact re-runs a
// function after commit_unknown_result (1021) even when the first commit
// landed, and a caller whose Update returned a context error does not know
// either. The idempotency key is written in the same transaction as the
// record, so both land or neither does, and an attempt that finds the key
// returns the stamp the first one recorded instead of appending again.
// Real layers build these keys with storage/tuple.
func appendOnce(ctx context.Context, s kv.Store, stream, id string, record []byte) (kv.Versionstamp, error) {
	idKey := []byte("idem/" + stream + "/" + id)
	logKey := []byte("log/" + stream + "/")
	var prior kv.Versionstamp
	stamp, err := s.Update(ctx, func(tx kv.Tx) error {
		prior = kv.Versionstamp{} // fn may run more than once
		v, err := tx.Get(idKey)
		if err != nil {
			return err
		}
		if v != nil {
			var ok bool
			if prior, ok = kv.VersionstampFromBytes(v); !ok {
				return fmt.Errorf("idempotency key %q holds %d bytes, not a versionstamp", idKey, len(v))
			}
			return nil
		}
		placeholder := kv.IncompleteVersionstamp(0)
		tx.SetVersionstampedKey(append(slices.Clone(logKey), placeholder[:]...), len(logKey), record)
		tx.SetVersionstampedValue(idKey, placeholder[:], 0)
		return nil
	})
	if err != nil {
		return kv.Versionstamp{}, err
	}
	if !prior.IsZero() {
		return prior, nil
	}
	return stamp, nil
}

func TestIdempotentAppend(t *testing.T) {
	s, _ := newStore(t, fdb.Options{})
	ctx := context.Background()

	first, err := appendOnce(ctx, s, "s", "req-1", []byte("one"))
	if err != nil || first.IsZero() {
		t.Fatalf("first append: stamp %v, err %v", first, err)
	}
	// The same request again, as after a commit whose result was unknown.
	again, err := appendOnce(ctx, s, "s", "req-1", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Fatalf("repeated append returned stamp %v, want the first one, %v", again, first)
	}
	second, err := appendOnce(ctx, s, "s", "req-2", []byte("two"))
	if err != nil {
		t.Fatal(err)
	}
	if second.Compare(first) <= 0 {
		t.Fatalf("second append's stamp %v is not after the first's %v", second, first)
	}

	var got []kv.KeyValue
	err = s.View(ctx, func(tx kv.ReadTx) (err error) {
		begin, end := kv.PrefixRange([]byte("log/s/"))
		got, err = kv.Collect(tx.GetRange(begin, end, kv.RangeOptions{}))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []kv.KeyValue{
		{Key: append([]byte("log/s/"), first[:]...), Value: []byte("one")},
		{Key: append([]byte("log/s/"), second[:]...), Value: []byte("two")},
	}
	if !equalKVs(got, want) {
		t.Errorf("log holds %q, want %q: one record per idempotency id", got, want)
	}
}

// TestPrefixIsolation checks that two stores on one cluster see only their
// own keys, without their prefixes, and that a nil end stops at the prefix.
func TestPrefixIsolation(t *testing.T) {
	a, _ := newStore(t, fdb.Options{})
	b, _ := newStore(t, fdb.Options{})
	ctx := context.Background()
	for _, s := range []*fdb.Store{a, b} {
		if _, err := s.Update(ctx, func(tx kv.Tx) error {
			tx.Set([]byte("k"), s.Prefix())
			tx.Set([]byte{0xff, 0xff}, []byte("top"))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []*fdb.Store{a, b} {
		var got []kv.KeyValue
		err := s.View(ctx, func(tx kv.ReadTx) (err error) {
			got, err = kv.Collect(tx.GetRange(nil, nil, kv.RangeOptions{}))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []kv.KeyValue{{Key: []byte("k"), Value: s.Prefix()}, {Key: []byte{0xff, 0xff}, Value: []byte("top")}}
		if !equalKVs(got, want) {
			t.Errorf("store %q reads %q, want %q", s.Prefix(), got, want)
		}
	}
}

func equalKVs(a, b []kv.KeyValue) bool {
	return slices.EqualFunc(a, b, func(x, y kv.KeyValue) bool {
		return bytes.Equal(x.Key, y.Key) && bytes.Equal(x.Value, y.Value)
	})
}

// TestVersionstampedKeyUnderPrefix checks that the stamp lands at the
// caller's offset although the stored key starts with the prefix, and that
// the key cannot be read in the transaction that writes it.
func TestVersionstampedKeyUnderPrefix(t *testing.T) {
	s, _ := newStore(t, fdb.Options{})
	ctx := context.Background()
	placeholder := kv.IncompleteVersionstamp(7)
	template := append(append([]byte("vs/"), placeholder[:]...), "/tail"...)
	// A failed read fails the commit (the kv contract; FoundationDB's
	// commit waits on every read and fails with accessed_unreadable).
	_, err := s.Update(ctx, func(tx kv.Tx) error {
		tx.SetVersionstampedKey(template, 3, []byte("v"))
		_, err := kv.Collect(tx.GetRange([]byte("vs/"), []byte("vs0"), kv.RangeOptions{}))
		if !errors.Is(err, kv.ErrAccessedUnreadable) {
			return fmt.Errorf("range over a versionstamped key written in this transaction: err %v, want %v", err, kv.ErrAccessedUnreadable)
		}
		return nil
	})
	if !errors.Is(err, kv.ErrAccessedUnreadable) {
		t.Fatalf("commit after an unreadable range read: err %v, want %v", err, kv.ErrAccessedUnreadable)
	}
	calls := 0
	stamp, err := s.Update(ctx, func(tx kv.Tx) error {
		calls++
		tx.SetVersionstampedKey(template, 3, []byte("v"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("the function ran %d times, want 1", calls)
	}
	final := stamp.WithUserVersion(7)
	want := []kv.KeyValue{{Key: append(append([]byte("vs/"), final[:]...), "/tail"...), Value: []byte("v")}}
	var got []kv.KeyValue
	err = s.View(ctx, func(tx kv.ReadTx) (err error) {
		got, err = kv.Collect(tx.GetRange([]byte("vs/"), []byte("vs0"), kv.RangeOptions{}))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !equalKVs(got, want) {
		t.Errorf("after the commit with stamp %v the range holds %q, want %q", stamp, got, want)
	}
}

// TestSystemKeysRefusedWithoutPrefix checks the 0xff rule of a store on the
// whole keyspace; nothing is written.
func TestSystemKeysRefusedWithoutPrefix(t *testing.T) {
	cf := clusterFile(t)
	ctx := context.Background()
	s, err := fdb.Open(ctx, cf, fdb.Options{})
	if errors.Is(err, fdb.ErrPrefixOverlap) {
		t.Skipf("a store on the whole keyspace must be alone on its cluster: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer func() {
		if err := s.Unregister(ctx); err != nil {
			t.Error(err)
		}
	}()
	_, err = s.Update(ctx, func(tx kv.Tx) error {
		tx.Set([]byte("\xff/coditect"), []byte("x"))
		return nil
	})
	if !errors.Is(err, kv.ErrKeyOutsideLegalRange) {
		t.Errorf("set of a system key: err %v, want %v", err, kv.ErrKeyOutsideLegalRange)
	}
	err = s.View(ctx, func(tx kv.ReadTx) error {
		_, err := kv.Collect(tx.GetRange([]byte("\xfe"), []byte("\xff\x01"), kv.RangeOptions{}))
		return err
	})
	if !errors.Is(err, kv.ErrKeyOutsideLegalRange) {
		t.Errorf("range past 0xff: err %v, want %v", err, kv.ErrKeyOutsideLegalRange)
	}
}

// TestTooOldIsNotRetried checks that an attempt past the age limit fails
// with the contract's error and does not run again.
func TestTooOldIsNotRetried(t *testing.T) {
	s, _ := newStore(t, fdb.Options{MaxTransactionAge: 50 * time.Millisecond})
	calls := 0
	_, err := s.Update(context.Background(), func(tx kv.Tx) error {
		calls++
		time.Sleep(80 * time.Millisecond) // the limit is what is under test
		_, err := tx.Get([]byte("k"))
		return err
	})
	if !errors.Is(err, kv.ErrTransactionTooOld) || calls != 1 {
		t.Fatalf("err %v after %d runs, want %v after 1", err, calls, kv.ErrTransactionTooOld)
	}
}

// TestCancelStopsTheRetryLoop checks that a context cancelled inside the
// function ends the transaction with the context's error, without a retry.
func TestCancelStopsTheRetryLoop(t *testing.T) {
	s, _ := newStore(t, fdb.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	_, err := s.Update(ctx, func(tx kv.Tx) error {
		calls++
		cancel()
		tx.Set([]byte("k"), []byte("v"))
		_, err := tx.Get([]byte("other"))
		return err
	})
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("err %v after %d runs, want %v after 1", err, calls, context.Canceled)
	}
	if err := s.View(context.Background(), func(tx kv.ReadTx) error {
		v, err := tx.Get([]byte("k"))
		if err == nil && v != nil {
			return fmt.Errorf("the cancelled transaction committed k=%q", v)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func TestURL(t *testing.T) {
	for _, tc := range []struct {
		clusterFile string
		prefix      []byte
		want        string
	}{
		{"/etc/foundationdb/fdb.cluster", nil, "fdb:///etc/foundationdb/fdb.cluster"},
		{"", nil, "fdb:///"},
		{"/etc/fdb.cluster", []byte("acme/"), "fdb:///etc/fdb.cluster?prefix=acme%2F"},
		{"/tmp/a b.cluster", []byte{0x00, 0x02, 'x', 0xfe, '&', '='}, "fdb:///tmp/a%20b.cluster?prefix=%00%02x%FE%26%3D"},
	} {
		got, err := fdb.URL(tc.clusterFile, fdb.Options{Prefix: tc.prefix})
		if err != nil || got != tc.want {
			t.Errorf("URL(%q, %q) = %q, %v; want %q", tc.clusterFile, tc.prefix, got, err, tc.want)
			continue
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatal(err)
		}
		cf, opts, err := fdb.ParseURL(u)
		if err != nil || cf != tc.clusterFile || !bytes.Equal(opts.Prefix, tc.prefix) {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q", got, cf, opts.Prefix, err, tc.clusterFile, tc.prefix)
		}
	}
	for _, bad := range []string{
		"fdb://host/etc/fdb.cluster",
		"fdb:relative.cluster",
		"fdb:///etc/fdb.cluster?prefx=acme",
		"fdb:///etc/fdb.cluster?prefix=a&prefix=b",
		"fdb:///etc/fdb.cluster?prefix=%FFsys",
		"sqlite:///tmp/x.db",
	} {
		u, err := url.Parse(bad)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := fdb.ParseURL(u); err == nil {
			t.Errorf("ParseURL(%q) succeeded, want an error", bad)
		}
	}
}
