package fdb

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/kv"
)

// newFaulty opens a store over a fresh memDB.
func newFaulty(t testing.TB, opts Options) (*memDB, *Store) {
	t.Helper()
	db := newMemDB()
	s, err := OpenFaulty(context.Background(), db, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return db, s
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// incr reads key and writes it back plus one, counting the attempts.
func incr(key []byte, attempts *int) func(kv.Tx) error {
	return func(tx kv.Tx) error {
		*attempts++
		v, err := tx.Get(key)
		if err != nil {
			return err
		}
		tx.Set(key, kv.EncodeInt64(kv.Int64(v)+1))
		return nil
	}
}

func get(t testing.TB, s *Store, key []byte) int64 {
	t.Helper()
	var n int64
	if err := s.View(ctxT(t), func(tx kv.ReadTx) error {
		v, err := tx.Get(key)
		n = kv.Int64(v)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// A transaction_too_old at a read of a young attempt (a recovery's version
// jump) is retried through OnError; the contract's ErrTransactionTooOld is
// only for attempts that are old or when OnError gives up.
func TestReadTooOldOfYoungAttemptRetried(t *testing.T) {
	db, s := newFaulty(t, Options{})
	db.plan(func(f *faultPlan) { f.readErrs = []int{codeTransactionTooOld} })
	var attempts int
	if _, err := s.Update(ctxT(t), incr([]byte("k"), &attempts)); err != nil {
		t.Fatalf("Update after one transaction_too_old at a read: %v", err)
	}
	if attempts != 2 || get(t, s, []byte("k")) != 1 {
		t.Fatalf("attempts %d, value %d; want 2 and 1", attempts, get(t, s, []byte("k")))
	}

	db.plan(func(f *faultPlan) { f.commitErrs = []commitErr{{code: codeTransactionTooOld}} })
	attempts = 0
	if _, err := s.Update(ctxT(t), incr([]byte("k"), &attempts)); err != nil || attempts != 2 {
		t.Fatalf("Update after transaction_too_old at commit: %v after %d attempts", err, attempts)
	}
}

func TestTooOldAtRetryLimit(t *testing.T) {
	db, s := newFaulty(t, Options{RetryLimit: 3})
	db.plan(func(f *faultPlan) { f.readErrs = slices.Repeat([]int{codeTransactionTooOld}, 5) })
	var attempts int
	_, err := s.Update(ctxT(t), incr([]byte("k"), &attempts))
	if !errors.Is(err, kv.ErrTransactionTooOld) || attempts != 4 {
		t.Fatalf("Update with every read too old (retry limit 3): %v after %d attempts; want kv.ErrTransactionTooOld after 4", err, attempts)
	}
}

func TestConflictsAndUnknownResults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault commitErr
		want  int64 // the counter after one Update
	}{
		{"not_committed", commitErr{code: codeNotCommitted}, 1},
		{"unknown_not_applied", commitErr{code: codeCommitUnknownResult}, 1},
		// The commit landed and was reported unknown: the retry applies
		// the increment again, which is why appends carry idempotency
		// keys (package documentation, "Idempotent appends").
		{"unknown_applied", commitErr{code: codeCommitUnknownResult, applied: true}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, s := newFaulty(t, Options{})
			db.plan(func(f *faultPlan) { f.commitErrs = []commitErr{tc.fault} })
			var attempts int
			if _, err := s.Update(ctxT(t), incr([]byte("k"), &attempts)); err != nil {
				t.Fatal(err)
			}
			if got := get(t, s, []byte("k")); attempts != 2 || got != tc.want {
				t.Fatalf("attempts %d, counter %d; want 2 and %d", attempts, got, tc.want)
			}
		})
	}
}

// appendOnce appends a versionstamped record unless the idempotency key
// says an earlier attempt did.
func appendOnce(idem []byte) func(kv.Tx) error {
	return func(tx kv.Tx) error {
		v, err := tx.Get(idem)
		if err != nil || v != nil {
			return err
		}
		tmpl := append([]byte("log/"), make([]byte, kv.StampSize)...)
		tx.SetVersionstampedKey(tmpl, 4, []byte("record"))
		tx.Set(idem, []byte("done"))
		return nil
	}
}

func TestAppendOnceAfterUnknownResult(t *testing.T) {
	db, s := newFaulty(t, Options{})
	db.plan(func(f *faultPlan) { f.commitErrs = []commitErr{{code: codeCommitUnknownResult, applied: true}} })
	if _, err := s.Update(ctxT(t), appendOnce([]byte("idem/1"))); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.View(ctxT(t), func(tx kv.ReadTx) error {
		kvs, err := kv.Collect(tx.GetRange([]byte("log/"), []byte("log0"), kv.RangeOptions{}))
		n = len(kvs)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d records after a commit that landed and was reported unknown; want 1", n)
	}
}

// During an outage every read blocks; the database's transaction timeout
// ends the transaction, and the caller gets kv.ErrUnavailable rather than
// blocking until its context ends.
func TestOutageTimesOutUnavailable(t *testing.T) {
	db, s := newFaulty(t, Options{TransactionTimeout: 200 * time.Millisecond})
	db.plan(func(f *faultPlan) { f.outage = true })
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.View(ctx, func(tx kv.ReadTx) error { _, err := tx.Get([]byte("k")); return err })
	if !errors.Is(err, kv.ErrUnavailable) {
		t.Fatalf("View during an outage: %v; want kv.ErrUnavailable", err)
	}
	t.Logf("View failed with kv.ErrUnavailable after %v (timeout 200ms)", time.Since(start).Round(time.Millisecond))
}

func TestDefaultTimeoutAndRetryLimitSet(t *testing.T) {
	db, _ := newFaulty(t, Options{})
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.timeout != DefaultTransactionTimeout || db.retries != DefaultRetryLimit {
		t.Fatalf("database options: timeout %v, retry limit %d; want %v and %d", db.timeout, db.retries, DefaultTransactionTimeout, DefaultRetryLimit)
	}
}

func TestInjectedErrorsTranslated(t *testing.T) {
	for _, tc := range []struct {
		name string
		plan func(*faultPlan)
		want error
	}{
		{"accessed_unreadable", func(f *faultPlan) { f.readErrs = []int{codeAccessedUnreadable} }, kv.ErrAccessedUnreadable},
		{"transaction_too_large", func(f *faultPlan) { f.commitErrs = []commitErr{{code: codeTransactionTooLarge}} }, kv.ErrTransactionTooLarge},
		{"transaction_timed_out", func(f *faultPlan) { f.commitErrs = []commitErr{{code: codeTransactionTimedOut}} }, kv.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, s := newFaulty(t, Options{})
			db.plan(tc.plan)
			var attempts int
			_, err := s.Update(ctxT(t), incr([]byte("k"), &attempts))
			if !errors.Is(err, tc.want) || attempts != 1 {
				t.Fatalf("Update: %v after %d attempts; want %v after 1", err, attempts, tc.want)
			}
		})
	}
}

func TestVersionstampedKeyUnreadable(t *testing.T) {
	_, s := newFaulty(t, Options{Prefix: []byte("p/")})
	tmpl := append([]byte("log/"), make([]byte, kv.StampSize)...)
	_, err := s.Update(ctxT(t), func(tx kv.Tx) error {
		tx.SetVersionstampedKey(tmpl, 4, []byte("v"))
		_, err := tx.Get(tmpl)
		return err
	})
	if !errors.Is(err, kv.ErrAccessedUnreadable) {
		t.Fatalf("reading a versionstamped key in its transaction: %v; want kv.ErrAccessedUnreadable", err)
	}
}

// A late watch still fires after a change; a change and change back
// within its delay may never fire, as FoundationDB documents.
func TestLateAndLostWatches(t *testing.T) {
	db, s := newFaulty(t, Options{})
	db.plan(func(f *faultPlan) { f.watchDelay = 50 * time.Millisecond })
	key := []byte("w")
	set := func(v string) {
		if _, err := s.Update(ctxT(t), func(tx kv.Tx) error { tx.Set(key, []byte(v)); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	watch := func() kv.Watch {
		var w kv.Watch
		if err := s.View(ctxT(t), func(tx kv.ReadTx) error { w = tx.Watch(key); return nil }); err != nil {
			t.Fatal(err)
		}
		return w
	}
	w := watch()
	set("a")
	if err := w.Wait(ctxT(t)); err != nil {
		t.Fatalf("late watch: %v", err)
	}
	w = watch()
	defer w.Cancel()
	db.plan(func(f *faultPlan) { f.watchDelay = time.Hour })
	set("b")
	set("a")
	db.mu.Lock()
	for dw := range db.watches {
		db.fireIfChanged(dw) // the delayed check, now
	}
	db.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := w.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("watch after a change and change back: %v; want no notification", err)
	}
}

func TestAdvanceVersion(t *testing.T) {
	_, s := newFaulty(t, Options{Prefix: []byte("p/")})
	set := func() kv.Versionstamp {
		vs, err := s.Update(ctxT(t), func(tx kv.Tx) error { tx.Set([]byte("k"), []byte("v")); return nil })
		if err != nil {
			t.Fatal(err)
		}
		return vs
	}
	before := set()
	past := kv.NewVersionstamp([kv.StampSize]byte{0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff}, 0)
	if before.Compare(past) >= 0 {
		t.Fatalf("the store starts past %s", past)
	}
	if err := s.AdvanceVersion(ctxT(t), past); err != nil {
		t.Fatal(err)
	}
	if after := set(); after.Compare(past) <= 0 {
		t.Fatalf("a commit after AdvanceVersion(%s) has stamp %s", past, after)
	}
}

func TestOverlappingPrefixesRefused(t *testing.T) {
	db := newMemDB()
	open := func(prefix string) error {
		s, err := OpenFaulty(ctxT(t), db, Options{Prefix: []byte(prefix)})
		if err == nil {
			s.Close()
		}
		return err
	}
	for _, p := range []string{"acme/", "acme-staging/", "acme/", "globex"} {
		if err := open(p); err != nil {
			t.Fatalf("open %q: %v", p, err)
		}
	}
	for _, p := range []string{"acme", "acme/x/", "glob", "globex-2", ""} {
		if err := open(p); !errors.Is(err, ErrPrefixOverlap) {
			t.Fatalf("open %q beside acme/, acme-staging/ and globex: %v; want ErrPrefixOverlap", p, err)
		}
	}
	if err := open(string(registryPrefix) + "x"); !errors.Is(err, kv.ErrKeyOutsideLegalRange) {
		t.Fatalf("a prefix inside the registry: %v", err)
	}
	whole := newMemDB()
	if s, err := OpenFaulty(ctxT(t), whole, Options{}); err != nil {
		t.Fatal(err)
	} else {
		s.Close()
	}
	if _, err := OpenFaulty(ctxT(t), whole, Options{Prefix: []byte("a/")}); !errors.Is(err, ErrPrefixOverlap) {
		t.Fatalf("a prefixed store beside the whole keyspace's: %v", err)
	}
}

func TestEmptyPrefixParameterRefused(t *testing.T) {
	u, _ := url.Parse("fdb:///etc/foundationdb/fdb.cluster?prefix=")
	if _, _, err := ParseURL(u); err == nil {
		t.Fatal("ParseURL accepted an empty prefix=, which would mean the whole keyspace")
	}
	u, _ = url.Parse("fdb:///etc/foundationdb/fdb.cluster?prefix=acme%2F")
	if _, opts, err := ParseURL(u); err != nil || string(opts.Prefix) != "acme/" {
		t.Fatalf("ParseURL: %q, %v", opts.Prefix, err)
	}
}

func TestDropFreesThePrefix(t *testing.T) {
	db := newMemDB()
	a, err := OpenFaulty(ctxT(t), db, Options{Prefix: []byte("acme")})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Drop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	b, err := OpenFaulty(ctxT(t), db, Options{Prefix: []byte("acme-staging")})
	if err != nil {
		t.Fatalf("open beside a dropped store: %v", err)
	}
	b.Close()
}
