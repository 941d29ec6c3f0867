package kvtest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/coditect/coditect/storage/kv"
)

// testGetMany: GetMany returns each key's value in order, as Get would,
// own writes included, in Update and in View.
func testGetMany(t *testing.T, h Harness) {
	s, _ := h.New(t)
	set(t, s, []byte("gm/a"), []byte("A"), []byte("gm/empty"), []byte{})
	keys := [][]byte{[]byte("gm/a"), []byte("gm/absent"), []byte("gm/empty"), []byte("gm/own"), []byte("gm/a")}
	check := func(what string, got [][]byte, want ...[]byte) error {
		if len(got) != len(want) {
			return fmt.Errorf("%s: %d values, want %d", what, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) || (got[i] == nil) != (want[i] == nil) {
				return fmt.Errorf("%s: value %d (%s) = %q, want %q", what, i, keys[i], got[i], want[i])
			}
		}
		return nil
	}
	if _, err := s.Update(ctxT(t), func(tx kv.Tx) error {
		tx.Set([]byte("gm/own"), []byte("mine"))
		got, err := tx.GetMany(keys)
		if err != nil {
			return err
		}
		return check("update", got, []byte("A"), nil, []byte{}, []byte("mine"), []byte("A"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.View(ctxT(t), func(tx kv.ReadTx) error {
		got, err := tx.GetMany(keys)
		if err != nil {
			return err
		}
		if err := check("view", got, []byte("A"), nil, []byte{}, []byte("mine"), []byte("A")); err != nil {
			return err
		}
		none, err := tx.GetMany(nil)
		if err != nil || len(none) != 0 {
			return fmt.Errorf("GetMany(nil) = %q, %v; want no values", none, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// testFailedReadFailsCommit: a read that returned an error fails the
// transaction with that error even when the function swallows it and
// returns nil, and nothing the transaction wrote is applied
// (FoundationDB's commit waits on every read the transaction issued).
func testFailedReadFailsCommit(t *testing.T, h Harness) {
	s, _ := h.New(t)
	maxKey := h.MaxKeySize
	if maxKey == 0 {
		maxKey = kv.MaxKeySize
	}
	cases := []struct {
		name string
		read func(kv.Tx) error
		want error
	}{
		{"get", func(tx kv.Tx) error { _, err := tx.Get([]byte("fr/stamped")); return err }, kv.ErrAccessedUnreadable},
		{"snapshot get", func(tx kv.Tx) error { _, err := tx.SnapshotGet([]byte("fr/stamped")); return err }, kv.ErrAccessedUnreadable},
		{"get many", func(tx kv.Tx) error {
			_, err := tx.GetMany([][]byte{[]byte("fr/other"), []byte("fr/stamped")})
			return err
		}, kv.ErrAccessedUnreadable},
		{"range", func(tx kv.Tx) error {
			_, err := kv.Collect(tx.GetRange([]byte("fr/"), []byte("fr0"), kv.RangeOptions{}))
			return err
		}, kv.ErrAccessedUnreadable},
		{"oversized key", func(tx kv.Tx) error {
			_, err := tx.Get(bytes.Repeat([]byte{'k'}, maxKey+1))
			return err
		}, kv.ErrKeyTooLarge},
	}
	tmpl := append([]byte("head:"), make([]byte, kv.StampSize+2)...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			marker := []byte("fr-marker/" + c.name)
			var readErr error
			_, err := s.Update(ctxT(t), func(tx kv.Tx) error {
				tx.SetVersionstampedValue([]byte("fr/stamped"), tmpl, 5)
				readErr = c.read(tx)
				tx.Set(marker, []byte("written"))
				return nil // the read's error is swallowed
			})
			if !errors.Is(readErr, c.want) {
				t.Fatalf("the read returned %v, want %v", readErr, c.want)
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("the commit after a failed read returned %v, want %v", err, c.want)
			}
			if v := get(t, s, marker); v != nil {
				t.Fatal("a transaction whose read failed was applied")
			}
		})
	}
	err := s.View(ctxT(t), func(tx kv.ReadTx) error {
		_, _ = tx.Get(bytes.Repeat([]byte{'k'}, maxKey+1))
		return nil // the read's error is swallowed
	})
	if !errors.Is(err, kv.ErrKeyTooLarge) {
		t.Fatalf("a view whose read failed returned %v, want %v", err, kv.ErrKeyTooLarge)
	}
}

// testTransactionSizeCounted: the transaction size counts what FoundationDB
// counts — each write's key again in its write conflict range, each
// non-snapshot read's conflict range — not only keys and values, so a
// transaction the old key+value count passed fails here as it would at a
// FoundationDB commit (transaction_too_large), while one just under the
// full count commits.
func testTransactionSizeCounted(t *testing.T, h Harness) {
	s, _ := h.New(t)
	const keyLen, valueLen = 1000, kv.MaxValueSize - 1000 // key+value = 100,000
	key := func(i int) []byte {
		k := bytes.Repeat([]byte{'k'}, keyLen)
		copy(k, fmt.Sprintf("ts/%05d/", i))
		return k
	}
	value := bytes.Repeat([]byte{'v'}, valueLen)
	// Each set counts 3*keyLen+1+valueLen = 102,001 bytes; each Get of a
	// 1,000-byte key 2,001.
	writes := func(n int) func(kv.Tx) {
		return func(tx kv.Tx) {
			for i := 0; i < n; i++ {
				tx.Set(key(i), value)
			}
		}
	}
	reads := func(n int, snapshot bool) func(kv.Tx) {
		return func(tx kv.Tx) {
			writes(95)(tx) // 9,690,095 bytes
			for i := 0; i < n; i++ {
				k := key(1000 + i)
				var err error
				if snapshot {
					_, err = tx.SnapshotGet(k)
				} else {
					_, err = tx.Get(k)
				}
				if err != nil {
					break
				}
			}
		}
	}
	cases := []struct {
		name string
		fn   func(kv.Tx)
		want error
	}{
		{"writes under the limit", writes(97), nil},                                    // 9,894,097
		{"writes over it with conflict ranges", writes(99), kv.ErrTransactionTooLarge}, // 10,098,099; keys and values alone 9,900,000
		{"snapshot reads count nothing", reads(200, true), nil},
		{"reads count their conflict ranges", reads(200, false), kv.ErrTransactionTooLarge}, // + 400,200
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Update(ctxT(t), func(tx kv.Tx) error {
				c.fn(tx)
				tx.Set([]byte("ts-marker"), []byte(c.name))
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
			if v := get(t, s, []byte("ts-marker")); string(v) == c.name {
				t.Fatal("a transaction over the size limit was applied")
			}
		})
	}
}
