package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/kv"
)

// Tests of the deferred atomic operations (atomic.go): whatever is
// deferred, coalesced or handed between the Updates of a commit batch, every
// read and the committed state are those of running each Add and Max at
// once, as kv.AddLE and kv.MaxLE define them.

// bothModes runs f on a store with group commit off and on.
func bothModes(t *testing.T, f func(t *testing.T, s *Store)) {
	for _, group := range []bool{false, true} {
		t.Run(fmt.Sprintf("group=%v", group), func(t *testing.T) {
			s, err := Open(context.Background(), filepath.Join(t.TempDir(), "a.db"), Options{GroupCommit: group})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			f(t, s)
		})
	}
}

func le(n uint64, width int) []byte {
	b := make([]byte, width)
	for i := range b {
		b[i] = byte(n >> (8 * i))
	}
	return b
}

func mustUpdate(t *testing.T, s *Store, fn func(kv.Tx) error) kv.Versionstamp {
	t.Helper()
	st, err := s.Update(context.Background(), fn)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func stored(t *testing.T, s *Store, key string) []byte {
	t.Helper()
	var v []byte
	if err := s.View(context.Background(), func(tx kv.ReadTx) error {
		var err error
		v, err = tx.Get([]byte(key))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// expect checks a read against the value it must return.
func expect(label string, got []byte, err error, want []byte) error {
	if err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	if !bytes.Equal(got, want) || (got == nil) != (want == nil) {
		return fmt.Errorf("%s = %s, want %s", label, show(got), show(want))
	}
	return nil
}

func show(v []byte) string {
	if v == nil {
		return "absent"
	}
	return fmt.Sprintf("%x (%d bytes)", v, len(v))
}

// TestAtomicReadYourWrites: Get, SnapshotGet and GetMany in the transaction
// that made Adds and Maxes see their results, with Add's zero-extension
// and truncation and Max's param-length rules, and the commit stores what
// they saw.
func TestAtomicReadYourWrites(t *testing.T) {
	bothModes(t, func(t *testing.T, s *Store) {
		mustUpdate(t, s, func(tx kv.Tx) error {
			tx.Set([]byte("n"), kv.EncodeInt64(10))
			tx.Set([]byte("short"), []byte{0xff})
			tx.Set([]byte("long"), append(le(0x0102, 8), 7, 7))
			return nil
		})
		mustUpdate(t, s, func(tx kv.Tx) error {
			get := func(key string, want []byte) error {
				v, err := tx.Get([]byte(key))
				if err := expect("Get "+key, v, err, want); err != nil {
					return err
				}
				v, err = tx.SnapshotGet([]byte(key))
				return expect("SnapshotGet "+key, v, err, want)
			}
			tx.Add([]byte("n"), 5)
			if err := get("n", kv.EncodeInt64(15)); err != nil {
				return err
			}
			tx.Add([]byte("n"), 1)
			tx.Max([]byte("n"), kv.EncodeInt64(3))
			tx.Add([]byte("n"), 1)
			tx.Max([]byte("n"), kv.EncodeInt64(100))
			tx.Max([]byte("n"), kv.EncodeInt64(50))
			tx.Add([]byte("n"), 1)
			if err := get("n", kv.EncodeInt64(101)); err != nil {
				return err
			}
			// Add zero-extends a shorter value; Max truncates to its
			// param's length, compares, and an empty param empties.
			tx.Add([]byte("short"), 1)
			tx.Max([]byte("short"), []byte{0x05})
			tx.Max([]byte("short"), le(0x0003, 2))
			tx.Add([]byte("long"), 1)
			tx.Add([]byte("fresh"), -1)
			tx.Max([]byte("empty"), le(9, 8))
			tx.Max([]byte("empty"), []byte{})
			tx.Max([]byte("empty"), le(2, 2))
			vs, err := tx.GetMany([][]byte{[]byte("short"), []byte("long"), []byte("fresh"), []byte("empty")})
			if err != nil {
				return err
			}
			for i, want := range [][]byte{le(0x0005, 2), le(0x0103, 8), kv.EncodeInt64(-1), le(2, 2)} {
				if err := expect(fmt.Sprintf("GetMany[%d]", i), vs[i], nil, want); err != nil {
					return err
				}
			}
			return nil
		})
		for key, want := range map[string][]byte{"n": kv.EncodeInt64(101), "short": le(5, 2),
			"long": le(0x0103, 8), "fresh": kv.EncodeInt64(-1), "empty": le(2, 2)} {
			if err := expect("committed "+key, stored(t, s, key), nil, want); err != nil {
				t.Error(err)
			}
		}
	})
}

// TestAtomicPointReadsWriteNothing: a point read of a key with pending
// Adds and Maxes, the transaction's own or (under group commit) those of
// earlier Updates of its batch, returns their result without writing the
// key (SQLite's total_changes() does not move), and the operations are
// still applied at the commit.
func TestAtomicPointReadsWriteNothing(t *testing.T) {
	bothModes(t, func(t *testing.T, s *Store) {
		changes := func() int64 {
			var n int64
			if err := s.wconn.QueryRowContext(context.Background(), "SELECT total_changes()").Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		// Updates queued together run as one batch (group=true): each
		// raises the clock and counts, then reads both.
		const updates = 8
		var wg sync.WaitGroup
		errs := make(chan error, updates)
		ready := make(chan struct{})
		for i := range updates {
			wg.Go(func() {
				<-ready
				_, err := s.Update(context.Background(), func(tx kv.Tx) error {
					tx.Max([]byte("clock"), le(uint64(100+i), 8))
					tx.Add([]byte("count"), 1)
					before := changes()
					c, err := tx.SnapshotGet([]byte("clock"))
					if err != nil {
						return err
					}
					n, err := tx.Get([]byte("count"))
					if err != nil {
						return err
					}
					vs, err := tx.GetMany([][]byte{[]byte("clock"), []byte("count")})
					if err != nil {
						return err
					}
					if after := changes(); after != before {
						return fmt.Errorf("point reads of pending keys made %d changes", after-before)
					}
					if len(c) != 8 || kv.Int64(c) < int64(100+i) || kv.Int64(n) < 1 ||
						!bytes.Equal(vs[0], c) || !bytes.Equal(vs[1], n) {
						return fmt.Errorf("read clock %s and count %s, then %s and %s", show(c), show(n), show(vs[0]), show(vs[1]))
					}
					return nil
				})
				errs <- err
			})
		}
		close(ready)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		if err := expect("committed clock", stored(t, s, "clock"), nil, le(100+updates-1, 8)); err != nil {
			t.Error(err)
		}
		if err := expect("committed count", stored(t, s, "count"), nil, kv.EncodeInt64(updates)); err != nil {
			t.Error(err)
		}
	})
}

// model is the expected state of a few keys: absent keys are missing.
type model map[string][]byte

// scriptOp is one step of a random transaction: it acts on tx and on the
// model the same way, and a read checks tx against the model.
type scriptOp func(tx kv.Tx, m model) error

var errScripted = errors.New("scripted failure")

// randomScript returns a transaction of random Adds, Maxes (params of
// several lengths, empty included), Sets, Clears, ClearRanges and reads on
// the keys under prefix.
func randomScript(rng *rand.Rand, prefix string) []scriptOp {
	keys := []string{prefix + "0", prefix + "1", prefix + "2"}
	var ops []scriptOp
	for range 1 + rng.IntN(12) {
		k := keys[rng.IntN(len(keys))]
		bk := []byte(k)
		switch p := rng.IntN(100); {
		case p < 30:
			d := int64(rng.IntN(11) - 5)
			if rng.IntN(10) == 0 {
				d = int64(rng.Uint64())
			}
			ops = append(ops, func(tx kv.Tx, m model) error {
				tx.Add(bk, d)
				m[k] = kv.AddLE(m[k], d)
				return nil
			})
		case p < 60:
			param := make([]byte, []int{0, 1, 2, 8, 8, 8}[rng.IntN(6)])
			for i := range param {
				param[i] = byte(rng.IntN(4)) // small bytes: ties and near-ties
			}
			ops = append(ops, func(tx kv.Tx, m model) error {
				tx.Max(bk, param)
				m[k] = kv.MaxLE(m[k], param)
				return nil
			})
		case p < 68:
			v := make([]byte, rng.IntN(10))
			for i := range v {
				v[i] = byte(rng.IntN(4))
			}
			ops = append(ops, func(tx kv.Tx, m model) error {
				tx.Set(bk, v)
				m[k] = slices.Clone(v)
				return nil
			})
		case p < 73:
			ops = append(ops, func(tx kv.Tx, m model) error {
				tx.Clear(bk)
				delete(m, k)
				return nil
			})
		case p < 76:
			ops = append(ops, func(tx kv.Tx, m model) error {
				tx.ClearRange([]byte(keys[1]), []byte(keys[2]))
				delete(m, keys[1])
				return nil
			})
		case p < 88:
			snapshot := rng.IntN(3) == 0
			ops = append(ops, func(tx kv.Tx, m model) error {
				get := tx.Get
				if snapshot {
					get = tx.SnapshotGet
				}
				v, err := get(bk)
				return expect("read "+k, v, err, m[k])
			})
		default:
			reverse, limit := rng.IntN(2) == 0, rng.IntN(4)
			ops = append(ops, func(tx kv.Tx, m model) error {
				var got []kv.KeyValue
				it := tx.GetRange([]byte(prefix), kv.PrefixEnd([]byte(prefix)), kv.RangeOptions{Reverse: reverse, Limit: limit})
				for it.Next() {
					got = append(got, it.KeyValue())
				}
				if err := it.Err(); err != nil {
					return err
				}
				want := slices.Sorted(maps.Keys(m))
				if reverse {
					slices.Reverse(want)
				}
				if limit > 0 && len(want) > limit {
					want = want[:limit]
				}
				if len(got) != len(want) {
					return fmt.Errorf("range read %d keys, want %d", len(got), len(want))
				}
				for i, p := range got {
					if string(p.Key) != want[i] {
						return fmt.Errorf("range key %d = %q, want %q", i, p.Key, want[i])
					}
					if err := expect("range "+want[i], p.Value, nil, m[want[i]]); err != nil {
						return err
					}
				}
				return nil
			})
		}
	}
	return ops
}

// TestAtomicMixesMatchSequential: random transactions mixing Adds and
// Maxes (of params of different lengths) with overwrites and reads on a few
// keys, some failing at the end, read and commit exactly what running each
// operation at once would (the model). With group commit all of them run
// in one batch, so operations move between the transactions and the batch,
// and back when a transaction fails.
func TestAtomicMixesMatchSequential(t *testing.T) {
	bothModes(t, func(t *testing.T, s *Store) {
		for seed := range uint64(12) {
			rng := rand.New(rand.NewPCG(seed, 99))
			prefix := fmt.Sprintf("s%d/", seed)
			cur := model{prefix + "0": kv.EncodeInt64(7), prefix + "1": {0xff}, prefix + "2": append(le(3, 8), 1)}
			mustUpdate(t, s, func(tx kv.Tx) error {
				for k, v := range cur {
					tx.Set([]byte(k), v)
				}
				return nil
			})
			const txs = 30
			fns := make([]func(kv.Tx) error, txs)
			fails := make([]bool, txs)
			for i := range fns {
				ops := randomScript(rng, prefix)
				fails[i] = rng.IntN(5) == 0
				fns[i] = func(tx kv.Tx) error {
					m := maps.Clone(cur)
					for _, op := range ops {
						if err := op(tx, m); err != nil {
							return err
						}
					}
					if fails[i] {
						return errScripted
					}
					cur = m
					return nil
				}
			}
			results := make([]result, txs)
			if s.opts.GroupCommit {
				release, first := holdBatch(s)
				chans := make([]chan result, txs)
				for i, fn := range fns {
					chans[i] = goUpdate(s, fn)
					waitQueued(t, s, i+1)
				}
				release()
				if r := <-first; r.err != nil {
					t.Fatal(r.err)
				}
				for i, c := range chans {
					results[i] = <-c
				}
				var commit []byte // the Updates that wrote share one commit number
				for _, r := range results {
					if r.err != nil || r.stamp == (kv.Versionstamp{}) {
						continue
					}
					if commit == nil {
						commit = r.stamp[:8]
					} else if !bytes.Equal(commit, r.stamp[:8]) {
						t.Fatalf("seed %d: the Updates did not run in one batch: commit %x and %x", seed, commit, r.stamp[:8])
					}
				}
			} else {
				for i, fn := range fns {
					st, err := s.Update(context.Background(), fn)
					results[i] = result{st, err}
				}
			}
			for i, r := range results {
				if fails[i] && !errors.Is(r.err, errScripted) || !fails[i] && r.err != nil {
					t.Fatalf("seed %d, Update %d (scripted to fail: %v): %v", seed, i, fails[i], r.err)
				}
			}
			for _, k := range []string{prefix + "0", prefix + "1", prefix + "2"} {
				if err := expect(fmt.Sprintf("seed %d: committed %s", seed, k), stored(t, s, k), nil, cur[k]); err != nil {
					t.Error(err)
				}
			}
		}
	})
}

// TestAtomicRollbackInBatch: in one commit batch, Updates that fail leave
// nothing of their own Adds, and give back the batch's earlier Adds they
// read (applied in their savepoint) or overwrote, while the Updates that
// commit keep theirs.
func TestAtomicRollbackInBatch(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "g.db"), Options{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := []byte("n")
	boom := errors.New("boom")
	release, first := holdBatch(s)
	var chans []chan result
	queue := func(fn func(kv.Tx) error) {
		chans = append(chans, goUpdate(s, fn))
		waitQueued(t, s, len(chans))
	}
	queue(func(tx kv.Tx) error { tx.Add(n, 1); return nil })
	queue(func(tx kv.Tx) error { // reads the batch's Add, then fails
		v, err := tx.Get(n)
		if err := expect("get n", v, err, kv.EncodeInt64(1)); err != nil {
			return err
		}
		tx.Add(n, 10)
		return boom
	})
	queue(func(tx kv.Tx) error { tx.Add(n, 100); return nil })
	queue(func(tx kv.Tx) error { tx.Set(n, []byte("overwritten")); tx.Add(n, 1000); return boom })
	queue(func(tx kv.Tx) error { tx.Max(n, kv.EncodeInt64(5)); tx.Add(n, 10_000); return boom })
	queue(func(tx kv.Tx) error { tx.Add(n, 100_000); return nil })
	release()
	if r := <-first; r.err != nil {
		t.Fatal(r.err)
	}
	var stamps []kv.Versionstamp
	for i, c := range chans {
		r := <-c
		if failing := i == 1 || i == 3 || i == 4; failing != errors.Is(r.err, boom) || !failing && r.err != nil {
			t.Fatalf("Update %d: %v", i, r.err)
		}
		if r.err == nil {
			stamps = append(stamps, r.stamp)
		}
	}
	for _, st := range stamps[1:] {
		if !bytes.Equal(st[:8], stamps[0][:8]) {
			t.Fatalf("the Updates did not run in one batch: stamps %v", stamps)
		}
	}
	if got := kv.Int64(stored(t, s, "n")); got != 100_101 {
		t.Fatalf("n = %d, want 100101: the committed Updates' Adds only", got)
	}
}

// TestAtomicConcurrentAdds: many Updates each adding 1 to one key end with
// the exact count: one full batch of them, then goroutines racing.
func TestAtomicConcurrentAdds(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "g.db"), Options{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	key := []byte("count")
	add := func(tx kv.Tx) error { tx.Add(key, 1); tx.Max([]byte("clock"), kv.EncodeInt64(1)); return nil }
	release, first := holdBatch(s)
	const batched = 40
	var chans []chan result
	for i := range batched {
		chans = append(chans, goUpdate(s, add))
		waitQueued(t, s, i+1)
	}
	release()
	if r := <-first; r.err != nil {
		t.Fatal(r.err)
	}
	var stamps []kv.Versionstamp
	for _, c := range chans {
		r := <-c
		if r.err != nil {
			t.Fatal(r.err)
		}
		stamps = append(stamps, r.stamp)
	}
	if !bytes.Equal(stamps[0][:8], stamps[batched-1][:8]) {
		t.Fatalf("the queued Updates did not run in one batch: %v, %v", stamps[0], stamps[batched-1])
	}
	if got := kv.Int64(stored(t, s, "count")); got != batched {
		t.Fatalf("count = %d after one batch, want %d", got, batched)
	}
	const goroutines, iters = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for range goroutines {
		wg.Go(func() {
			for range iters {
				if _, err := s.Update(context.Background(), add); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got, want := kv.Int64(stored(t, s, "count")), int64(batched+goroutines*iters); got != want {
		t.Fatalf("count = %d, want %d", got, want)
	}
}

// TestAtomicWatch: a watch on a counter fires once a batch of Adds to it
// commits; a watch set in a transaction that added to the key (after an
// earlier Update of its batch did) compares against the value with both
// Adds applied.
func TestAtomicWatch(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "g.db"), Options{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	key := []byte("counter")
	var w kv.Watch
	if err := s.View(context.Background(), func(tx kv.ReadTx) error {
		w = tx.Watch(key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	defer w.Cancel()
	var own kv.Watch
	release, first := holdBatch(s)
	a := goUpdate(s, func(tx kv.Tx) error { tx.Add(key, 1); return nil })
	waitQueued(t, s, 1)
	b := goUpdate(s, func(tx kv.Tx) error {
		tx.Add(key, 2)
		own = tx.Watch(key)
		return nil
	})
	waitQueued(t, s, 2)
	release()
	for _, c := range []chan result{first, a, b} {
		if r := <-c; r.err != nil {
			t.Fatal(r.err)
		}
	}
	defer own.Cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Wait(ctx); err != nil {
		t.Fatalf("watch on the counter after a batch of Adds: %v", err)
	}
	if ow := own.(*watch); !ow.exists || !bytes.Equal(ow.baseline, kv.EncodeInt64(3)) {
		t.Fatalf("baseline of a watch set after Adds in its batch = %x, want %x", ow.baseline, kv.EncodeInt64(3))
	}
	mustUpdate(t, s, func(tx kv.Tx) error { tx.Add(key, 1); return nil })
	if err := own.Wait(ctx); err != nil {
		t.Fatalf("watch set in the batch, after a later Add: %v", err)
	}
}

// TestAtomicGetRange: a range read in the transaction sees its pending Adds
// and those of earlier Updates of its batch, including an Add made between
// two pages of the read; a failed Update's range read leaves the batch's
// Add to be committed.
func TestAtomicGetRange(t *testing.T) {
	bothModes(t, func(t *testing.T, s *Store) {
		const n = 200
		key := func(i int) []byte { return []byte(fmt.Sprintf("r/%03d", i)) }
		mustUpdate(t, s, func(tx kv.Tx) error {
			for i := range n {
				tx.Set(key(i), kv.EncodeInt64(int64(i)))
			}
			return nil
		})
		check := func(tx kv.Tx, reverse bool, added map[int]int64, addAt int) error {
			it := tx.GetRange([]byte("r/"), []byte("r0"), kv.RangeOptions{Reverse: reverse})
			seen := 0
			for it.Next() {
				if seen == 0 {
					tx.Add(key(addAt), 1000) // a page of 64 keys is already read
					added[addAt] += 1000
				}
				i := seen
				if reverse {
					i = n - 1 - seen
				}
				want := kv.EncodeInt64(int64(i) + added[i])
				if err := expect("range "+string(key(i)), it.KeyValue().Value, nil, want); err != nil {
					return err
				}
				seen++
			}
			if it.Err() == nil && seen != n {
				return fmt.Errorf("range read %d keys, want %d", seen, n)
			}
			return it.Err()
		}
		added := map[int]int64{}
		mustUpdate(t, s, func(tx kv.Tx) error {
			tx.Add(key(5), 10)
			tx.Add(key(5), 10)
			added[5] += 20
			if err := check(tx, false, added, 150); err != nil {
				return err
			}
			tx.Add(key(190), 7)
			added[190] += 7
			return check(tx, true, added, 20)
		})
		if !s.opts.GroupCommit {
			return
		}
		release, first := holdBatch(s)
		a := goUpdate(s, func(tx kv.Tx) error { tx.Add(key(7), 1); return nil })
		waitQueued(t, s, 1)
		boom := errors.New("boom")
		b := goUpdate(s, func(tx kv.Tx) error {
			it := tx.GetRange(key(7), key(8), kv.RangeOptions{})
			if !it.Next() {
				return fmt.Errorf("range over r/007 is empty: %v", it.Err())
			}
			if err := expect("range r/007", it.KeyValue().Value, nil, kv.EncodeInt64(8)); err != nil {
				return err
			}
			return boom
		})
		waitQueued(t, s, 2)
		c := goUpdate(s, func(tx kv.Tx) error {
			v, err := tx.Get(key(7))
			return expect("get r/007 after a failed Update read it", v, err, kv.EncodeInt64(8))
		})
		waitQueued(t, s, 3)
		release()
		for _, ch := range []chan result{first, a, c} {
			if r := <-ch; r.err != nil {
				t.Fatal(r.err)
			}
		}
		if r := <-b; !errors.Is(r.err, boom) {
			t.Fatalf("failing Update: %v", r.err)
		}
		if got := stored(t, s, "r/007"); !bytes.Equal(got, kv.EncodeInt64(8)) {
			t.Fatalf("r/007 = %x, want %x", got, kv.EncodeInt64(8))
		}
	})
}
