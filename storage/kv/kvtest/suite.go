package kvtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/kv"
)

// Run runs the conformance suite against a backend.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"Ordering", testOrdering},
		{"RangeLimitReverse", testRangeLimitReverse},
		{"RangeManyPages", testRangeManyPages},
		{"PrefixRange", testPrefixRange},
		{"InvalidRange", testInvalidRange},
		{"ReadYourWrites", testReadYourWrites},
		{"AbortAppliesNothing", testAbort},
		{"ClearRange", testClearRange},
		{"AtomicAdd", testAtomicAdd},
		{"AtomicAddConcurrent", testAtomicAddConcurrent},
		{"AtomicMax", testAtomicMax},
		{"AtomicMaxReadYourWrites", testAtomicMaxReadYourWrites},
		{"AtomicMaxConcurrent", testAtomicMaxConcurrent},
		{"SnapshotGet", testSnapshotGet},
		{"SnapshotGetNoConflict", testSnapshotGetNoConflict},
		{"Versionstamps", testVersionstamps},
		{"VersionstampUnreadable", testVersionstampUnreadable},
		{"VersionstampedValue", testVersionstampedValue},
		{"VersionstampBadOffset", testVersionstampBadOffset},
		{"ReadOnlyUpdate", testReadOnlyUpdate},
		{"SerializableAcrossProcesses", testSerializableAcrossProcesses},
		{"VersionstampsAcrossProcesses", testVersionstampsAcrossProcesses},
		{"Watch", testWatch},
		{"WatchRaceFree", testWatchRaceFree},
		{"WatchCancelAndClose", testWatchCancelAndClose},
		{"WatchFailedTransaction", testWatchFailedTransaction},
		{"WatchAcrossProcesses", testWatchAcrossProcesses},
		{"Limits", testLimits},
		{"TransactionSizeCounted", testTransactionSizeCounted},
		{"GetMany", testGetMany},
		{"FailedReadFailsCommit", testFailedReadFailsCommit},
		{"TransactionTooOld", testTooOld},
		{"ContextCancellation", testContext},
		{"UseAfterEnd", testUseAfterEnd},
		{"Reopen", testReopen},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if h.InProcess && strings.HasSuffix(tc.name, "AcrossProcesses") {
				t.Skip("the stores of this harness cannot be opened by a child process")
			}
			tc.fn(t, h)
		})
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func set(t testing.TB, s kv.Store, pairs ...[]byte) {
	t.Helper()
	if _, err := s.Update(ctxT(t), func(tx kv.Tx) error {
		for i := 0; i+1 < len(pairs); i += 2 {
			tx.Set(pairs[i], pairs[i+1])
		}
		return nil
	}); err != nil {
		t.Fatalf("set: %v", err)
	}
}

func get(t testing.TB, s kv.Store, key []byte) []byte {
	t.Helper()
	var v []byte
	if err := s.View(ctxT(t), func(tx kv.ReadTx) error {
		var err error
		v, err = tx.Get(key)
		return err
	}); err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	return v
}

func readRange(t testing.TB, s kv.Store, begin, end []byte, opts kv.RangeOptions) []kv.KeyValue {
	t.Helper()
	var out []kv.KeyValue
	if err := s.View(ctxT(t), func(tx kv.ReadTx) error {
		var err error
		out, err = kv.Collect(tx.GetRange(begin, end, opts))
		return err
	}); err != nil {
		t.Fatalf("range %q..%q %+v: %v", begin, end, opts, err)
	}
	return out
}

func keysOf(kvs []kv.KeyValue) [][]byte {
	out := make([][]byte, len(kvs))
	for i, p := range kvs {
		out[i] = p.Key
	}
	return out
}

func equalKeys(a, b [][]byte) bool {
	return slices.EqualFunc(a, b, func(x, y []byte) bool { return bytes.Equal(x, y) })
}

func testOrdering(t *testing.T, h Harness) {
	s, _ := h.New(t)
	keys := [][]byte{
		{}, {0x00}, {0x00, 0x00}, {0x00, 0xff}, {0x01}, []byte("a"), []byte("a\x00"),
		[]byte("a\x00\x00"), []byte("a\x01"), []byte("ab"), []byte("b"), {0x7f}, {0x80},
		{0xfe, 0xff}, {0xff}, {0xff, 0x00}, {0xff, 0xff}, {0xff, 0xff, 0xff},
	}
	shuffled := slices.Clone(keys)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	var pairs [][]byte
	for i, k := range shuffled {
		pairs = append(pairs, k, []byte(strconv.Itoa(i)))
	}
	set(t, s, pairs...)
	got := keysOf(readRange(t, s, []byte{}, nil, kv.RangeOptions{}))
	if !equalKeys(got, keys) {
		t.Fatalf("keys not in memcmp order:\n got %q\nwant %q", got, keys)
	}
	gotRev := keysOf(readRange(t, s, []byte{}, nil, kv.RangeOptions{Reverse: true}))
	want := slices.Clone(keys)
	slices.Reverse(want)
	if !equalKeys(gotRev, want) {
		t.Fatalf("reverse order wrong:\n got %q\nwant %q", gotRev, want)
	}
	// The empty key and the empty value are distinct from absence.
	set(t, s, []byte{}, []byte{})
	if v := get(t, s, []byte{}); v == nil || len(v) != 0 {
		t.Fatalf("empty key with empty value: got %v, want present and empty", v)
	}
	if v := get(t, s, []byte("absent")); v != nil {
		t.Fatalf("absent key: got %q, want nil", v)
	}
}

func fill(t testing.TB, s kv.Store, prefix string, n int) [][]byte {
	t.Helper()
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("%s%06d", prefix, i))
	}
	for i := 0; i < n; i += 1000 {
		batch := keys[i:min(i+1000, n)]
		if _, err := s.Update(ctxT(t), func(tx kv.Tx) error {
			for _, k := range batch {
				tx.Set(k, append([]byte("v:"), k...))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func testRangeLimitReverse(t *testing.T, h Harness) {
	s, _ := h.New(t)
	keys := fill(t, s, "k/", 100)
	set(t, s, []byte("j"), []byte("before"), []byte("l"), []byte("after"))
	begin, end := []byte("k/"), []byte("k0")
	cases := []struct {
		name  string
		begin []byte
		end   []byte
		opts  kv.RangeOptions
		want  [][]byte
	}{
		{"all", begin, end, kv.RangeOptions{}, keys},
		{"limit", begin, end, kv.RangeOptions{Limit: 7}, keys[:7]},
		{"limit exact", begin, end, kv.RangeOptions{Limit: 100}, keys},
		{"limit beyond", begin, end, kv.RangeOptions{Limit: 1000}, keys},
		{"reverse", begin, end, kv.RangeOptions{Reverse: true}, reversed(keys)},
		{"reverse limit", begin, end, kv.RangeOptions{Reverse: true, Limit: 5}, reversed(keys)[:5]},
		{"begin inclusive end exclusive", keys[10], keys[20], kv.RangeOptions{}, keys[10:20]},
		{"reverse bounds", keys[10], keys[20], kv.RangeOptions{Reverse: true}, reversed(keys[10:20])},
		{"empty range", keys[10], keys[10], kv.RangeOptions{}, nil},
		{"between keys", []byte("k/000010x"), keys[12], kv.RangeOptions{}, keys[11:12]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := keysOf(readRange(t, s, c.begin, c.end, c.opts))
			if !equalKeys(got, c.want) {
				t.Fatalf("got %d keys %q, want %d keys %q", len(got), head(got), len(c.want), head(c.want))
			}
		})
	}
	// Values come back with their keys.
	for _, p := range readRange(t, s, begin, end, kv.RangeOptions{Limit: 3}) {
		if !bytes.Equal(p.Value, append([]byte("v:"), p.Key...)) {
			t.Fatalf("value of %q is %q", p.Key, p.Value)
		}
	}
}

func head(k [][]byte) [][]byte {
	if len(k) > 4 {
		return k[:4]
	}
	return k
}

func reversed(k [][]byte) [][]byte {
	out := slices.Clone(k)
	slices.Reverse(out)
	return out
}

func testRangeManyPages(t *testing.T, h Harness) {
	s, _ := h.New(t)
	keys := fill(t, s, "p/", 10_000)
	got := keysOf(readRange(t, s, []byte("p/"), []byte("p0"), kv.RangeOptions{}))
	if !equalKeys(got, keys) {
		t.Fatalf("forward scan of 10000 keys returned %d keys", len(got))
	}
	got = keysOf(readRange(t, s, []byte("p/"), []byte("p0"), kv.RangeOptions{Reverse: true}))
	if !equalKeys(got, reversed(keys)) {
		t.Fatalf("reverse scan of 10000 keys returned %d keys", len(got))
	}
	got = keysOf(readRange(t, s, []byte("p/"), []byte("p0"), kv.RangeOptions{Limit: 5000}))
	if !equalKeys(got, keys[:5000]) {
		t.Fatalf("limited scan returned %d keys", len(got))
	}
	// Streaming: stop early, and interleave two iterators in one transaction.
	if err := s.View(ctxT(t), func(tx kv.ReadTx) error {
		a := tx.GetRange([]byte("p/"), []byte("p0"), kv.RangeOptions{})
		b := tx.GetRange([]byte("p/"), []byte("p0"), kv.RangeOptions{Reverse: true})
		for i := 0; i < 3000; i++ {
			if !a.Next() || !b.Next() {
				return fmt.Errorf("iterators ended early at %d: %v %v", i, a.Err(), b.Err())
			}
			if !bytes.Equal(a.KeyValue().Key, keys[i]) || !bytes.Equal(b.KeyValue().Key, keys[len(keys)-1-i]) {
				return fmt.Errorf("at %d: got %q and %q", i, a.KeyValue().Key, b.KeyValue().Key)
			}
		}
		return errors.Join(a.Err(), b.Err())
	}); err != nil {
		t.Fatal(err)
	}
}

func testPrefixRange(t *testing.T, h Harness) {
	s, _ := h.New(t)
	set(t, s, []byte("ab"), nil, []byte("ab\x00"), nil, []byte("ab\xff"), nil, []byte("ab\xff\xff"), nil,
		[]byte("ac"), nil, []byte("a"), nil, []byte("\xff\xff"), nil, []byte("\xff\xff\x01"), nil)
	cases := []struct {
		prefix string
		want   []string
	}{
		{"ab", []string{"ab", "ab\x00", "ab\xff", "ab\xff\xff"}},
		{"ab\xff", []string{"ab\xff", "ab\xff\xff"}},
		{"a", []string{"a", "ab", "ab\x00", "ab\xff", "ab\xff\xff", "ac"}},
		{"\xff\xff", []string{"\xff\xff", "\xff\xff\x01"}},
		{"zz", nil},
	}
	for _, c := range cases {
		b, e := kv.PrefixRange([]byte(c.prefix))
		got := keysOf(readRange(t, s, b, e, kv.RangeOptions{}))
		var want [][]byte
		for _, w := range c.want {
			want = append(want, []byte(w))
		}
		if !equalKeys(got, want) {
			t.Errorf("prefix %q: got %q, want %q", c.prefix, got, want)
		}
	}
}

func testInvalidRange(t *testing.T, h Harness) {
	s, _ := h.New(t)
	err := s.View(ctxT(t), func(tx kv.ReadTx) error {
		_, err := kv.Collect(tx.GetRange([]byte("b"), []byte("a"), kv.RangeOptions{}))
		return err
	})
	if !errors.Is(err, kv.ErrInvalidRange) {
		t.Fatalf("begin after end: got %v, want ErrInvalidRange", err)
	}
	_, err = s.Update(ctxT(t), func(tx kv.Tx) error {
		tx.ClearRange([]byte("b"), []byte("a"))
		return nil
	})
	if !errors.Is(err, kv.ErrInvalidRange) {
		t.Fatalf("clear range begin after end: got %v, want ErrInvalidRange", err)
	}
}

func testReadYourWrites(t *testing.T, h Harness) {
	s, _ := h.New(t)
	set(t, s, []byte("r/1"), []byte("old"), []byte("r/3"), []byte("three"))
	_, err := s.Update(ctxT(t), func(tx kv.Tx) error {
		tx.Set([]byte("r/1"), []byte("new"))
		tx.Set([]byte("r/2"), []byte("two"))
		tx.Clear([]byte("r/3"))
		tx.Add([]byte("r/4"), 5)
		checks := []struct {
			key  string
			want []byte
		}{{"r/1", []byte("new")}, {"r/2", []byte("two")}, {"r/3", nil}, {"r/4", kv.EncodeInt64(5)}}
		for _, c := range checks {
			v, err := tx.Get([]byte(c.key))
			if err != nil {
				return err
			}
			if !bytes.Equal(v, c.want) || (v == nil) != (c.want == nil) {
				return fmt.Errorf("in-transaction get %s = %q, want %q", c.key, v, c.want)
			}
		}
		got, err := kv.Collect(tx.GetRange([]byte("r/"), []byte("r0"), kv.RangeOptions{}))
		if err != nil {
			return err
		}
		if ks := keysOf(got); !equalKeys(ks, [][]byte{[]byte("r/1"), []byte("r/2"), []byte("r/4")}) {
			return fmt.Errorf("in-transaction range = %q", ks)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := get(t, s, []byte("r/3")); v != nil {
		t.Fatalf("cleared key still present: %q", v)
	}
}

var errAbort = errors.New("abort on purpose")

func testAbort(t *testing.T, h Harness) {
	s, _ := h.New(t)
	set(t, s, []byte("x"), []byte("1"))
	calls := 0
	_, err := s.Update(ctxT(t), func(tx kv.Tx) error {
		calls++
		tx.Set([]byte("x"), []byte("2"))
		tx.Set([]byte("y"), []byte("2"))
		tx.Add([]byte("z"), 1)
		tx.ClearRange([]byte(""), nil)
		return errAbort
	})
	if err != errAbort {
		t.Fatalf("Update returned %v, want the function's own error unchanged", err)
	}
	if calls != 1 {
		t.Fatalf("a function error was retried: %d calls", calls)
	}
	if v := get(t, s, []byte("x")); string(v) != "1" {
		t.Fatalf("aborted write applied: x = %q", v)
	}
	if v := get(t, s, []byte("y")); v != nil {
		t.Fatalf("aborted write applied: y = %q", v)
	}
}

func testClearRange(t *testing.T, h Harness) {
	s, _ := h.New(t)
	keys := fill(t, s, "c/", 50)
	if _, err := s.Update(ctxT(t), func(tx kv.Tx) error {
		tx.ClearRange(keys[10], keys[20])
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got := keysOf(readRange(t, s, []byte("c/"), []byte("c0"), kv.RangeOptions{}))
	want := append(slices.Clone(keys[:10]), keys[20:]...)
	if !equalKeys(got, want) {
		t.Fatalf("after clearing [10,20): %d keys, want %d", len(got), len(want))
	}
	// A nil end clears to the end of the keyspace.
	if _, err := s.Update(ctxT(t), func(tx kv.Tx) error {
		tx.ClearRange(keys[30], nil)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got = keysOf(readRange(t, s, []byte{}, nil, kv.RangeOptions{}))
	want = append(slices.Clone(keys[:10]), keys[20:30]...)
	if !equalKeys(got, want) {
		t.Fatalf("after clearing to the end: %d keys, want %d", len(got), len(want))
	}
}

func testAtomicAdd(t *testing.T, h Harness) {
	s, _ := h.New(t)
	cases := []struct {
		name     string
		existing []byte // nil: absent
		delta    int64
		want     []byte
	}{
		{"absent", nil, 7, kv.EncodeInt64(7)},
		{"existing", kv.EncodeInt64(40), 2, kv.EncodeInt64(42)},
		{"negative", kv.EncodeInt64(1), -3, kv.EncodeInt64(-2)},
		{"wraps", kv.EncodeInt64(-1), 1, kv.EncodeInt64(0)},
		{"shorter existing is zero-extended", []byte{0xff}, 1, kv.EncodeInt64(256)},
		{"longer existing is truncated", append(kv.EncodeInt64(1), 9, 9), 1, kv.EncodeInt64(2)},
		{"empty existing", []byte{}, 5, kv.EncodeInt64(5)},
	}
	for i, c := range cases {
		key := []byte(fmt.Sprintf("add/%d", i))
		if c.existing != nil {
			set(t, s, key, c.existing)
		}
		if _, err := s.Update(ctxT(t), func(tx kv.Tx) error {
			tx.Add(key, c.delta)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got := get(t, s, key); !bytes.Equal(got, c.want) {
			t.Errorf("%s: got %x, want %x", c.name, got, c.want)
		}
	}
}

func testAtomicAddConcurrent(t *testing.T, h Harness) {
	s, _ := h.New(t)
	const goroutines, iters = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < iters; i++ {
				if _, err := s.Update(ctxT(t), func(tx kv.Tx) error {
					tx.Add([]byte("sum"), 3)
					return nil
				}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := kv.Int64(get(t, s, []byte("sum"))); got != goroutines*iters*3 {
		t.Fatalf("sum = %d, want %d", got, goroutines*iters*3)
	}
}

// le returns n as little-endian bytes of the given width.
func le(n uint64, width int) []byte {
	b := make([]byte, width)
	for i := range b {
		b[i] = byte(n >> (8 * i))
	}
	return b
}

// maxCases pin FoundationDB's MAX (fdbclient's doMax), byte for byte.
var maxCases = []struct {
	name     string
	existing []byte // nil: absent
	param    []byte
	want     []byte
}{
	{"absent", nil, le(7, 8), le(7, 8)},
	{"empty existing", []byte{}, le(7, 8), le(7, 8)},
	{"larger param", le(40, 8), le(42, 8), le(42, 8)},
	{"smaller param", le(42, 8), le(40, 8), le(42, 8)},
	{"equal", le(42, 8), le(42, 8), le(42, 8)},
	{"high byte decides", le(0x01_00, 8), le(0xff, 8), le(0x01_00, 8)},
	{"unsigned", le(1<<63-1, 8), le(1<<63, 8), le(1<<63, 8)},
	{"shorter existing is zero-extended, param larger", []byte{0xff, 0xff}, le(0x1_0000, 8), le(0x1_0000, 8)},
	{"shorter existing is zero-extended, existing larger", []byte{0xff, 0xff}, le(0x00ff, 8), le(0xffff, 8)},
	{"longer existing is truncated, existing larger", append(le(9, 8), 0xff), le(5, 8), le(9, 8)},
	{"longer existing is truncated, param larger", append(le(5, 8), 0xff), le(9, 8), le(9, 8)},
	{"shorter param", le(0x01_0203, 8), []byte{0x09}, []byte{0x09}},
	{"shorter param, existing larger in its bytes", le(0x01_0209, 8), []byte{0x05}, []byte{0x09}},
	{"empty param", le(42, 8), []byte{}, []byte{}},
}

func testAtomicMax(t *testing.T, h Harness) {
	s, _ := h.New(t)
	for i, c := range maxCases {
		if got := kv.MaxLE(c.existing, c.param); !bytes.Equal(got, c.want) || got == nil {
			t.Errorf("%s: kv.MaxLE = %x, want %x", c.name, got, c.want)
		}
		key := []byte(fmt.Sprintf("max/%02d", i))
		if c.existing != nil {
			set(t, s, key, c.existing)
		}
		if _, err := s.Update(ctxT(t), func(tx kv.Tx) error {
			tx.Max(key, c.param)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got := get(t, s, key); !bytes.Equal(got, c.want) || got == nil {
			t.Errorf("%s: stored %x, want %x", c.name, got, c.want)
		}
	}
}

// testAtomicMaxReadYourWrites: reads in the transaction that applied Max
// see its result, over a committed value, over the transaction's own Set
// and after a second Max; and the committed value is what they saw.
func testAtomicMaxReadYourWrites(t *testing.T, h Harness) {
	s, _ := h.New(t)
	set(t, s, []byte("m/committed"), le(50, 8))
	_, err := s.Update(ctxT(t), func(tx kv.Tx) error {
		steps := []struct {
			key   string
			op    func(key []byte)
			want  []byte
			label string
		}{
			{"m/committed", func(k []byte) { tx.Max(k, le(10, 8)) }, le(50, 8), "smaller than committed"},
			{"m/committed", func(k []byte) { tx.Max(k, le(60, 8)) }, le(60, 8), "larger than committed"},
			{"m/committed", func(k []byte) { tx.Max(k, le(55, 8)) }, le(60, 8), "smaller than own Max"},
			{"m/new", func(k []byte) { tx.Max(k, le(3, 8)) }, le(3, 8), "absent"},
			{"m/new", func(k []byte) { tx.Set(k, le(1, 8)) }, le(1, 8), "Set after Max"},
			{"m/new", func(k []byte) { tx.Max(k, le(2, 8)) }, le(2, 8), "Max after own Set"},
			{"m/new", func(k []byte) { tx.Add(k, 5) }, le(7, 8), "Add after Max"},
			{"m/cleared", func(k []byte) { tx.Set(k, le(9, 8)); tx.Clear(k); tx.Max(k, le(4, 8)) }, le(4, 8), "Max after own Clear"},
		}
		for _, st := range steps {
			key := []byte(st.key)
			st.op(key)
			for _, read := range []struct {
				name string
				get  func([]byte) ([]byte, error)
			}{{"Get", tx.Get}, {"SnapshotGet", tx.SnapshotGet}} {
				v, err := read.get(key)
				if err != nil {
					return err
				}
				if !bytes.Equal(v, st.want) {
					return fmt.Errorf("%s: %s %s = %x, want %x", st.label, read.name, key, v, st.want)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string][]byte{"m/committed": le(60, 8), "m/new": le(7, 8), "m/cleared": le(4, 8)} {
		if got := get(t, s, []byte(key)); !bytes.Equal(got, want) {
			t.Errorf("committed %s = %x, want %x", key, got, want)
		}
	}
}

// testAtomicMaxConcurrent: Max from many concurrent transactions leaves the
// largest operand, whatever order they commit in.
func testAtomicMaxConcurrent(t *testing.T, h Harness) {
	s, _ := h.New(t)
	const goroutines, iters = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	largest := make([]uint64, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 11))
			for i := 0; i < iters; i++ {
				n := rng.Uint64()
				largest[g] = max(largest[g], n)
				if _, err := s.Update(ctxT(t), func(tx kv.Tx) error {
					tx.Max([]byte("max"), le(n, 8))
					return nil
				}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got, want := get(t, s, []byte("max")), le(slices.Max(largest), 8); !bytes.Equal(got, want) {
		t.Fatalf("max = %x, want %x", got, want)
	}
}

// testSnapshotGet: SnapshotGet reads what Get reads, the transaction's own
// writes included, and refuses keys the transaction wrote with a
// versionstamp, as Get does.
func testSnapshotGet(t *testing.T, h Harness) {
	s, _ := h.New(t)
	set(t, s, []byte("s/1"), []byte("old"), []byte("s/3"), []byte("three"), []byte("s/empty"), []byte{})
	_, err := s.Update(ctxT(t), func(tx kv.Tx) error {
		for _, c := range []struct {
			key  string
			want []byte
		}{{"s/1", []byte("old")}, {"s/empty", []byte{}}, {"s/absent", nil}} {
			v, err := tx.SnapshotGet([]byte(c.key))
			if err != nil {
				return err
			}
			if !bytes.Equal(v, c.want) || (v == nil) != (c.want == nil) {
				return fmt.Errorf("snapshot get %s = %q, want %q", c.key, v, c.want)
			}
		}
		tx.Set([]byte("s/1"), []byte("new"))
		tx.Set([]byte("s/2"), []byte("two"))
		tx.Clear([]byte("s/3"))
		tx.Add([]byte("s/4"), 5)
		for _, c := range []struct {
			key  string
			want []byte
		}{{"s/1", []byte("new")}, {"s/2", []byte("two")}, {"s/3", nil}, {"s/4", kv.EncodeInt64(5)}} {
			v, err := tx.SnapshotGet([]byte(c.key))
			if err != nil {
				return err
			}
			if !bytes.Equal(v, c.want) || (v == nil) != (c.want == nil) {
				return fmt.Errorf("snapshot get of an own write %s = %q, want %q", c.key, v, c.want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := append([]byte("head:"), make([]byte, kv.StampSize+2)...)
	_, err = s.Update(ctxT(t), func(tx kv.Tx) error {
		tx.SetVersionstampedValue([]byte("s/stamped"), tmpl, 5)
		_, err := tx.SnapshotGet([]byte("s/stamped"))
		return err
	})
	if !errors.Is(err, kv.ErrAccessedUnreadable) {
		t.Fatalf("snapshot get of a versionstamped value in its own transaction: got %v, want ErrAccessedUnreadable", err)
	}
}

// testSnapshotGetNoConflict: a transaction that read a key with SnapshotGet
// is not retried when another transaction commits a write to that key
// while it runs; one that read it with Get is (the control, which shows
// the two really overlapped). A backend whose writers are serialised runs
// the other transaction only after this one, so neither retries there and
// the test checks only that nothing deadlocks.
func testSnapshotGetNoConflict(t *testing.T, h Harness) {
	s, _ := h.New(t)
	set(t, s, []byte("nc/key"), []byte("0"))
	run := func(read func(kv.Tx, []byte) ([]byte, error)) (attempts int, overlapped bool) {
		t.Helper()
		other := make(chan error, 1)
		_, err := s.Update(ctxT(t), func(tx kv.Tx) error {
			attempts++
			if _, err := read(tx, []byte("nc/key")); err != nil {
				return err
			}
			if attempts == 1 {
				go func() {
					_, err := s.Update(ctxT(t), func(tx kv.Tx) error {
						tx.Set([]byte("nc/key"), []byte("changed"))
						return nil
					})
					other <- err
				}()
				select {
				case err := <-other:
					if err != nil {
						return err
					}
					overlapped = true
				case <-time.After(250 * time.Millisecond):
					// Serialised writers: the other waits for this one.
				}
			}
			tx.Set([]byte("nc/out"), []byte("x"))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !overlapped {
			if err := <-other; err != nil {
				t.Fatal(err)
			}
		}
		return attempts, overlapped
	}
	if n, overlapped := run(kv.Tx.Get); overlapped && n < 2 {
		t.Errorf("a Get of a key another transaction wrote meanwhile did not conflict (%d attempt)", n)
	}
	if n, _ := run(kv.Tx.SnapshotGet); n != 1 {
		t.Errorf("a SnapshotGet of a key another transaction wrote meanwhile made the reader retry: %d attempts", n)
	}
}

func testVersionstamps(t *testing.T, h Harness) {
	s, _ := h.New(t)
	var stamps []kv.Versionstamp
	for i := 0; i < 5; i++ {
		st, err := s.Update(ctxT(t), func(tx kv.Tx) error {
			for u := uint16(0); u < 3; u++ {
				tmpl, off := stampTemplate(u)
				tx.SetVersionstampedKey(tmpl, off, []byte(fmt.Sprintf("%d/%d", i, u)))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if st.IsZero() || !st.IsComplete() || st.UserVersion() != 0 {
			t.Fatalf("commit stamp %s: want complete, user order 0", st)
		}
		if len(stamps) > 0 && st.Compare(stamps[len(stamps)-1]) <= 0 {
			t.Fatalf("stamp %s not after %s", st, stamps[len(stamps)-1])
		}
		stamps = append(stamps, st)
	}
	got := readRange(t, s, []byte("vs/"), []byte("vs0"), kv.RangeOptions{})
	if len(got) != 15 {
		t.Fatalf("got %d versionstamped keys, want 15 (unique within each transaction)", len(got))
	}
	for i, p := range got {
		tx, u := i/3, uint16(i%3)
		want := stamps[tx].WithUserVersion(u)
		if !bytes.Equal(p.Key[3:], want[:]) {
			t.Errorf("key %d = %x, want stamp %s", i, p.Key[3:], want)
		}
		if string(p.Value) != fmt.Sprintf("%d/%d", tx, u) {
			t.Errorf("key %d value %q", i, p.Value)
		}
	}
}

func testVersionstampUnreadable(t *testing.T, h Harness) {
	s, _ := h.New(t)
	_, err := s.Update(ctxT(t), func(tx kv.Tx) error {
		tmpl, off := stampTemplate(0)
		tx.SetVersionstampedKey(tmpl, off, []byte("v"))
		_, err := kv.Collect(tx.GetRange([]byte("vs/"), []byte("vs0"), kv.RangeOptions{}))
		return err
	})
	if !errors.Is(err, kv.ErrAccessedUnreadable) {
		t.Fatalf("range over a versionstamped key in its own transaction: got %v, want ErrAccessedUnreadable", err)
	}
	// Ranges that do not touch it stay readable.
	if _, err := s.Update(ctxT(t), func(tx kv.Tx) error {
		tmpl, off := stampTemplate(0)
		tx.SetVersionstampedKey(tmpl, off, []byte("v"))
		_, err := kv.Collect(tx.GetRange([]byte("a"), []byte("b"), kv.RangeOptions{}))
		return err
	}); err != nil {
		t.Fatalf("unrelated range: %v", err)
	}
}

func testVersionstampedValue(t *testing.T, h Harness) {
	s, _ := h.New(t)
	tmpl := append([]byte("head:"), make([]byte, kv.StampSize+2)...)
	st, err := s.Update(ctxT(t), func(tx kv.Tx) error {
		tx.SetVersionstampedValue([]byte("head"), tmpl, 5)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := get(t, s, []byte("head"))
	commit := st.Commit()
	want := append(append([]byte("head:"), commit[:]...), 0, 0)
	if !bytes.Equal(got, want) {
		t.Fatalf("versionstamped value %x, want %x", got, want)
	}
	_, err = s.Update(ctxT(t), func(tx kv.Tx) error {
		tx.SetVersionstampedValue([]byte("head"), tmpl, 5)
		_, err := tx.Get([]byte("head"))
		return err
	})
	if !errors.Is(err, kv.ErrAccessedUnreadable) {
		t.Fatalf("get of a versionstamped value in its own transaction: got %v, want ErrAccessedUnreadable", err)
	}
}

func testVersionstampBadOffset(t *testing.T, h Harness) {
	s, _ := h.New(t)
	for _, off := range []int{-1, 5, 100} {
		_, err := s.Update(ctxT(t), func(tx kv.Tx) error {
			tx.SetVersionstampedKey([]byte("short-template"), off, []byte("v"))
			return nil
		})
		if !errors.Is(err, kv.ErrInvalidVersionstampOffset) {
			t.Errorf("offset %d in a 14-byte template: got %v, want ErrInvalidVersionstampOffset", off, err)
		}
	}
	if got := readRange(t, s, []byte{}, nil, kv.RangeOptions{}); len(got) != 0 {
		t.Fatalf("a refused transaction wrote %d keys", len(got))
	}
}

func testReadOnlyUpdate(t *testing.T, h Harness) {
	s, _ := h.New(t)
	st, err := s.Update(ctxT(t), func(tx kv.Tx) error {
		_, err := tx.Get([]byte("nothing"))
		return err
	})
	if err != nil || !st.IsZero() {
		t.Fatalf("read-only Update: stamp %s, err %v; want zero stamp, nil", st, err)
	}
	err = s.View(ctxT(t), func(tx kv.ReadTx) error {
		wtx, ok := tx.(kv.Tx)
		if !ok {
			return nil // the read-only handle has no write methods: fine
		}
		wtx.Set([]byte("k"), []byte("v"))
		wtx.Max([]byte("m"), le(1, 8))
		return nil
	})
	if v := get(t, s, []byte("k")); v != nil {
		t.Fatalf("a write through a View landed (err %v)", err)
	}
	if v := get(t, s, []byte("m")); v != nil {
		t.Fatalf("a Max through a View landed (err %v)", err)
	}
}

// releaseBarrier waits until n children have reached the barrier, then
// lets them all go.
func releaseBarrier(t testing.TB, s kv.Store, n int) {
	t.Helper()
	ctx := ctxT(t)
	for {
		var ready int64
		var w kv.Watch
		if err := s.View(ctx, func(tx kv.ReadTx) error {
			v, err := tx.Get([]byte("barrier/ready"))
			ready = kv.Int64(v)
			w = tx.Watch([]byte("barrier/ready"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if ready >= int64(n) {
			w.Cancel()
			break
		}
		if err := w.Wait(ctx); err != nil {
			t.Fatalf("waiting for %d children at the barrier (%d there): %v", n, ready, err)
		}
	}
	set(t, s, []byte("barrier/go"), []byte("go"))
}

// procs returns the counts for the multi-process tests.
func procCounts() (procs, goroutines, iters int) {
	if testing.Short() {
		return 3, 4, 50
	}
	return 3, 4, 200
}

func testSerializableAcrossProcesses(t *testing.T, h Harness) {
	s, loc := h.New(t)
	procs, goroutines, iters := procCounts()
	const keys = 3
	children := make([]*child, procs)
	for i := range children {
		children[i] = startChild(t, "incr", loc, keys, goroutines, iters)
	}
	releaseBarrier(t, s, procs)
	for _, c := range children {
		c.wait(t, 3*time.Minute)
	}
	var total int64
	for i := 0; i < keys; i++ {
		total += kv.Int64(get(t, s, counterKey(i)))
	}
	if want := int64(procs * goroutines * iters); total != want {
		t.Fatalf("read-modify-write increments from %d processes × %d goroutines: total %d, want %d (lost updates)",
			procs, goroutines, total, want)
	}
}

func testVersionstampsAcrossProcesses(t *testing.T, h Harness) {
	s, loc := h.New(t)
	const procs = 3
	n := 100
	if testing.Short() {
		n = 40
	}
	children := make([]*child, procs)
	for i := range children {
		children[i] = startChild(t, "stamp", loc, i, n)
	}
	releaseBarrier(t, s, procs)
	returned := map[string]string{} // stamp hex -> "proc/seq"
	for p, c := range children {
		var last kv.Versionstamp
		for i, line := range c.wait(t, 3*time.Minute) {
			var proc, seq int
			var hex string
			if _, err := fmt.Sscanf(line, "stamp %d %d %s", &proc, &seq, &hex); err != nil {
				t.Fatalf("child line %q: %v", line, err)
			}
			st, ok := kv.ParseVersionstamp(hex)
			if !ok || proc != p || seq != i {
				t.Fatalf("child line %q", line)
			}
			if st.Compare(last) <= 0 {
				t.Fatalf("process %d: stamp %s not after %s", p, st, last)
			}
			last = st
			if prev, dup := returned[hex]; dup {
				t.Fatalf("stamp %s returned twice: %s and %d/%d", hex, prev, proc, seq)
			}
			returned[hex] = fmt.Sprintf("%d/%d", proc, seq)
		}
	}
	got := readRange(t, s, []byte("vs/"), []byte("vs0"), kv.RangeOptions{})
	if len(got) != 2*procs*n {
		t.Fatalf("%d versionstamped keys, want %d", len(got), 2*procs*n)
	}
	// In stamp order, the commit order the store serialised (the shared
	// counter each transaction incremented) must strictly increase: stamps
	// order commits across processes, not just within one.
	lastOrder := 0
	for i, p := range got {
		st, _ := kv.VersionstampFromBytes(p.Key[3:])
		base := st.WithUserVersion(0)
		who, ok := returned[base.String()]
		if !ok {
			t.Fatalf("stored stamp %s was never returned by a commit", st)
		}
		prefix := fmt.Sprintf("%s/%d/", who, st.UserVersion())
		rest, ok := strings.CutPrefix(string(p.Value), prefix)
		if !ok {
			t.Fatalf("key with stamp %s holds %q, want %q…", st, p.Value, prefix)
		}
		order, err := strconv.Atoi(rest)
		if err != nil {
			t.Fatalf("value %q", p.Value)
		}
		if (i%2 == 0 && order <= lastOrder) || (i%2 == 1 && order != lastOrder) {
			t.Fatalf("stamp %s has commit order %d after order %d: stamps do not follow commit order", st, order, lastOrder)
		}
		lastOrder = order
	}
	if lastOrder != procs*n {
		t.Fatalf("last commit order %d, want %d", lastOrder, procs*n)
	}
}

// fired reports whether w has fired by now, without waiting.
func fired(w kv.Watch) bool {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return w.Wait(ctx) == nil
}

func waitWatch(t testing.TB, w kv.Watch, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Wait(ctx); err != nil {
		t.Fatalf("%s: watch did not fire: %v", what, err)
	}
}

func testWatch(t *testing.T, h Harness) {
	s, _ := h.New(t)
	set(t, s, []byte("a"), []byte("1"), []byte("b"), []byte("1"))
	var wa, wb, wc kv.Watch
	if err := s.View(ctxT(t), func(tx kv.ReadTx) error {
		wa, wb, wc = tx.Watch([]byte("a")), tx.Watch([]byte("b")), tx.Watch([]byte("c"))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	defer wa.Cancel()
	set(t, s, []byte("b"), []byte("2"))
	waitWatch(t, wb, "change of b")
	if fired(wa) {
		t.Fatal("watch on a fired for a change of b")
	}
	set(t, s, []byte("c"), []byte("new"))
	waitWatch(t, wc, "creation of c")
	// Store.Watch blocks until a change made after it was set.
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		var w kv.Watch
		err := s.View(ctxT(t), func(tx kv.ReadTx) error {
			w = tx.Watch([]byte("a"))
			return nil
		})
		close(ready)
		if err == nil {
			err = w.Wait(ctxT(t))
		}
		done <- err
	}()
	<-ready
	if _, err := s.Update(ctxT(t), func(tx kv.Tx) error {
		tx.Clear([]byte("a"))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("watch on a, then clear of a: %v", err)
	}
	waitWatch(t, wa, "clear of a")
	// The convenience form.
	errc := make(chan error, 1)
	go func() { errc <- s.Watch(ctxT(t), []byte("d")) }()
	// Keep changing d until the watcher, once set, sees a change.
	for i := 0; ; i++ {
		set(t, s, []byte("d"), []byte(strconv.Itoa(i)))
		select {
		case err := <-errc:
			if err != nil {
				t.Fatalf("Store.Watch: %v", err)
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func testWatchRaceFree(t *testing.T, h Harness) {
	s, _ := h.New(t)
	set(t, s, []byte("head"), []byte("1"))
	// The watch compares with what its transaction saw: a change committed
	// after that transaction read but before anyone waits is not missed.
	var w kv.Watch
	if err := s.View(ctxT(t), func(tx kv.ReadTx) error {
		if _, err := tx.Get([]byte("head")); err != nil {
			return err
		}
		w = tx.Watch([]byte("head"))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	set(t, s, []byte("head"), []byte("2"))
	waitWatch(t, w, "change between the read and the wait")
	// A watch set in a writing transaction compares with its own write.
	var w2 kv.Watch
	if _, err := s.Update(ctxT(t), func(tx kv.Tx) error {
		tx.Set([]byte("head"), []byte("3"))
		w2 = tx.Watch([]byte("head"))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	set(t, s, []byte("other"), []byte("x"))
	if fired(w2) {
		t.Fatal("watch fired for its own transaction's write")
	}
	set(t, s, []byte("head"), []byte("4"))
	waitWatch(t, w2, "change after a watch set with a write")
}

func testWatchCancelAndClose(t *testing.T, h Harness) {
	s, loc := h.New(t)
	var w1, w2 kv.Watch
	if err := s.View(ctxT(t), func(tx kv.ReadTx) error {
		w1, w2 = tx.Watch([]byte("x")), tx.Watch([]byte("y"))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	w1.Cancel()
	w1.Cancel()
	if err := w1.Wait(ctxT(t)); !errors.Is(err, kv.ErrWatchCancelled) {
		t.Fatalf("cancelled watch: got %v, want ErrWatchCancelled", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w2.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a cancelled context: got %v", err)
	}
	// A second store on the same data keeps its own watches.
	s2, err := h.Open(loc)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w2.Wait(ctxT(t)); !errors.Is(err, kv.ErrClosed) {
		t.Fatalf("watch after Close: got %v, want ErrClosed", err)
	}
}

func testWatchFailedTransaction(t *testing.T, h Harness) {
	s, _ := h.New(t)
	var w kv.Watch
	_, err := s.Update(ctxT(t), func(tx kv.Tx) error {
		w = tx.Watch([]byte("k"))
		return errAbort
	})
	if err != errAbort {
		t.Fatalf("got %v", err)
	}
	if err := w.Wait(ctxT(t)); err == nil {
		t.Fatal("a watch of a transaction that failed reported a change")
	}
}

func testWatchAcrossProcesses(t *testing.T, h Harness) {
	s, loc := h.New(t)
	c := startChild(t, "watch", loc)
	c.expect(t, "ready", time.Minute)
	set(t, s, []byte("watched"), []byte("by the parent"))
	c.expect(t, "fired", time.Minute)
	c.wait(t, time.Minute)
}

func testLimits(t *testing.T, h Harness) {
	s, _ := h.New(t)
	big := func(n int) []byte { return bytes.Repeat([]byte{'x'}, n) }
	maxKey := h.MaxKeySize
	if maxKey == 0 {
		maxKey = kv.MaxKeySize
	}
	cases := []struct {
		name string
		fn   func(kv.Tx)
		want error
	}{
		{"key at limit", func(tx kv.Tx) { tx.Set(big(maxKey), []byte("v")) }, nil},
		{"key over limit", func(tx kv.Tx) { tx.Set(big(maxKey+1), []byte("v")) }, kv.ErrKeyTooLarge},
		{"value at limit", func(tx kv.Tx) { tx.Set([]byte("v"), big(kv.MaxValueSize)) }, nil},
		{"value over limit", func(tx kv.Tx) { tx.Set([]byte("v2"), big(kv.MaxValueSize+1)) }, kv.ErrValueTooLarge},
		{"add key over limit", func(tx kv.Tx) { tx.Add(big(maxKey+1), 1) }, kv.ErrKeyTooLarge},
		{"max key over limit", func(tx kv.Tx) { tx.Max(big(maxKey+1), le(1, 8)) }, kv.ErrKeyTooLarge},
		{"max param over limit", func(tx kv.Tx) { tx.Max([]byte("m"), big(kv.MaxValueSize+1)) }, kv.ErrValueTooLarge},
		{"clear key over limit", func(tx kv.Tx) { tx.Clear(big(maxKey + 1)) }, kv.ErrKeyTooLarge},
		{"versionstamped value over limit", func(tx kv.Tx) {
			tx.SetVersionstampedValue([]byte("vv"), big(kv.MaxValueSize+1), 0)
		}, kv.ErrValueTooLarge},
		{"transaction over limit", func(tx kv.Tx) {
			for i := 0; i <= kv.MaxTransactionSize/kv.MaxValueSize; i++ {
				tx.Set([]byte(fmt.Sprintf("big/%03d", i)), big(kv.MaxValueSize))
			}
		}, kv.ErrTransactionTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Update(ctxT(t), func(tx kv.Tx) error {
				c.fn(tx)
				tx.Set([]byte("marker/"+c.name), []byte("written"))
				return nil
			})
			if c.want == nil {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			var le *kv.LimitError
			if !errors.As(err, &le) || le.Size <= le.Limit || !strings.Contains(err.Error(), "limit") {
				t.Fatalf("error %q does not say which size and limit", err)
			}
			if v := get(t, s, []byte("marker/"+c.name)); v != nil {
				t.Fatal("a transaction that exceeded a limit was partly applied")
			}
		})
	}
	err := s.View(ctxT(t), func(tx kv.ReadTx) error {
		_, err := tx.Get(big(maxKey + 1))
		return err
	})
	if !errors.Is(err, kv.ErrKeyTooLarge) {
		t.Fatalf("get of an oversized key: got %v", err)
	}
	_, err = s.Update(ctxT(t), func(tx kv.Tx) error {
		_, err := tx.SnapshotGet(big(maxKey + 1))
		return err
	})
	if !errors.Is(err, kv.ErrKeyTooLarge) {
		t.Fatalf("snapshot get of an oversized key: got %v", err)
	}
}

func testTooOld(t *testing.T, h Harness) {
	age := kv.MaxTransactionAge
	var s kv.Store
	if h.NewShortLived != nil {
		age = 100 * time.Millisecond
		s = h.NewShortLived(t, age)
	} else {
		if testing.Short() {
			t.Skip("the backend has no short-lived mode and the real limit takes 5 s; runs without -short")
		}
		s, _ = h.New(t)
	}
	calls := 0
	_, err := s.Update(ctxT(t), func(tx kv.Tx) error {
		calls++
		tx.Set([]byte("early"), []byte("x"))
		time.Sleep(age + age/5) // the transaction must outlive its limit: that is the point
		_, err := tx.Get([]byte("late"))
		return err
	})
	if !errors.Is(err, kv.ErrTransactionTooOld) {
		t.Fatalf("got %v, want ErrTransactionTooOld", err)
	}
	if calls != 1 {
		t.Fatalf("a too-old transaction was retried %d times", calls-1)
	}
	if v := get(t, s, []byte("early")); v != nil {
		t.Fatal("a too-old transaction was applied")
	}
}

func testContext(t *testing.T, h Harness) {
	s, _ := h.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	_, err := s.Update(ctx, func(tx kv.Tx) error {
		ran = true
		tx.Set([]byte("k"), []byte("v"))
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Update with a cancelled context: got %v (ran %v)", err, ran)
	}
	if err := s.View(ctx, func(tx kv.ReadTx) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("View with a cancelled context: got %v", err)
	}
	if v := get(t, s, []byte("k")); v != nil {
		t.Fatal("an Update with a cancelled context wrote")
	}
	// Cancelled while running: the transaction is not applied.
	ctx2, cancel2 := context.WithCancel(context.Background())
	_, err = s.Update(ctx2, func(tx kv.Tx) error {
		tx.Set([]byte("k2"), []byte("v"))
		cancel2()
		_, err := tx.Get([]byte("k2"))
		if err != nil {
			return err
		}
		return ctx2.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Update cancelled while running: got %v", err)
	}
	if v := get(t, s, []byte("k2")); v != nil {
		t.Fatal("an Update cancelled while running wrote")
	}
}

func testUseAfterEnd(t *testing.T, h Harness) {
	s, _ := h.New(t)
	var leaked kv.Tx
	if _, err := s.Update(ctxT(t), func(tx kv.Tx) error {
		leaked = tx
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := leaked.Get([]byte("k")); err == nil {
		t.Fatal("Get on a finished transaction succeeded")
	}
	if _, err := leaked.SnapshotGet([]byte("k")); err == nil {
		t.Fatal("SnapshotGet on a finished transaction succeeded")
	}
	leaked.Set([]byte("k"), []byte("v"))
	if v := get(t, s, []byte("k")); v != nil {
		t.Fatal("Set on a finished transaction wrote")
	}
	leaked.Max([]byte("m"), le(1, 8))
	if v := get(t, s, []byte("m")); v != nil {
		t.Fatal("Max on a finished transaction wrote")
	}
}

func testReopen(t *testing.T, h Harness) {
	s, loc := h.New(t)
	set(t, s, []byte("durable"), []byte("yes"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := h.Open(loc)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if v := get(t, s2, []byte("durable")); string(v) != "yes" {
		t.Fatalf("after reopen: %q", v)
	}
	st1, err := s2.Update(ctxT(t), func(tx kv.Tx) error { tx.Set([]byte("after"), nil); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if st1.IsZero() {
		t.Fatal("zero stamp after reopen")
	}
}

func testClosed(t *testing.T, h Harness) {
	s, _ := h.New(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Update(ctxT(t), func(tx kv.Tx) error { return nil }); !errors.Is(err, kv.ErrClosed) {
		t.Fatalf("Update after Close: %v", err)
	}
	if err := s.View(ctxT(t), func(tx kv.ReadTx) error { return nil }); !errors.Is(err, kv.ErrClosed) {
		t.Fatalf("View after Close: %v", err)
	}
}
