// Package transfer owns moving Coditect's data between stores: Copy from
// one backend to another (the whole store or one tenant, with the same
// keys, resumable, verified by a checksum per range), and Backup/Restore to
// and from a portable file. It works on the kv contract only, so any pair
// of backends works (SQLite to FoundationDB is the path from one machine to
// a cluster).
//
// Copied data keeps its versionstamped keys; the destination is advanced
// past the largest stamp it received (kv.VersionAdvancer) so later appends
// still follow the copied history.
//
// This package imports storage/kv, storage/keyspace and storage/tuple; no
// layer above them.
package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tuple"
)

// Batch limits of one copying transaction, well inside FDB's limits.
const (
	batchKeys  = 1000
	batchBytes = 2 << 20
	// verifyKeys is the size of one checksummed range.
	verifyKeys = 5000
)

// Span is a key range [Begin, End) to transfer.
type Span struct{ Begin, End []byte }

// Scope names what to transfer: the whole store, or one tenant.
type Scope struct {
	// Tenant limits the transfer to one tenant: its keys, its registry
	// record, its tokens, its global session index entries and its
	// projects' entries in the global root index.
	Tenant string
}

// progressRoot holds copy progress in the destination, outside ("coditect")
// so a whole-store copy never copies or clears it.
var progressRoot = keyspace.NewSubspace(tuple.Tuple{"coditect-transfer"}.Pack())

// CopyReport says what Copy did.
type CopyReport struct {
	Keys      int64           `json:"keys"`
	Bytes     int64           `json:"bytes"`
	Resumed   bool            `json:"resumed"`
	Ranges    int             `json:"verified_ranges"`
	MaxStamp  kv.Versionstamp `json:"-"`
	Advanced  bool            `json:"advanced"`
	Mismatch  []string        `json:"mismatched_ranges,omitempty"`
	MaxStampS string          `json:"max_stamp,omitempty"`
}

// ErrMismatch: verification found ranges that differ.
var ErrMismatch = errors.New("copy verification failed")

// ErrNotOrdered: the destination's new versionstamps would sort before the
// copied history (heads, tails and cursors would break), and its versions
// could not be advanced past it. The data is copied; do not use the
// destination until it can be advanced (kv.VersionAdvancer).
var ErrNotOrdered = errors.New("the destination's versions are behind the copied history")

// spans lists the key ranges of a scope in src.
func spans(ctx context.Context, src kv.Store, sc Scope) ([]Span, error) {
	if sc.Tenant == "" {
		b, e := keyspace.Root().Range()
		return []Span{{b, e}}, nil
	}
	sp, err := keyspace.Tenant(sc.Tenant)
	if err != nil {
		return nil, err
	}
	b, e := sp.Range()
	out := []Span{{b, e}}
	reg, _ := keyspace.TenantIndex(sc.Tenant)
	out = append(out, Span{reg, kv.KeyAfter(reg)})
	// Global entries that belong to the tenant: its tokens, sessions and
	// project roots.
	err = src.View(ctx, func(tx kv.ReadTx) error {
		out = out[:2]
		tb, te := keyspace.Tokens().Range()
		it := tx.GetRange(tb, te, kv.RangeOptions{})
		for it.Next() {
			p := it.KeyValue()
			var rec struct {
				Tenant string `json:"tenant"`
			}
			if json.Unmarshal(p.Value, &rec) == nil && rec.Tenant == sc.Tenant {
				out = append(out, Span{p.Key, kv.KeyAfter(p.Key)})
			}
		}
		if err := it.Err(); err != nil {
			return err
		}
		sb, se := keyspace.SessionIndexes().Range()
		it = tx.GetRange(sb, se, kv.RangeOptions{})
		for it.Next() {
			p := it.KeyValue()
			if string(p.Value) == sc.Tenant {
				out = append(out, Span{p.Key, kv.KeyAfter(p.Key)})
			}
		}
		if err := it.Err(); err != nil {
			return err
		}
		rb, re := keyspace.AllRoots().Range()
		it = tx.GetRange(rb, re, kv.RangeOptions{})
		for it.Next() {
			p := it.KeyValue()
			var rec struct {
				Tenant string `json:"tenant"`
			}
			if json.Unmarshal(p.Value, &rec) == nil && rec.Tenant == sc.Tenant {
				out = append(out, Span{p.Key, kv.KeyAfter(p.Key)})
			}
		}
		return it.Err()
	})
	return out, err
}

func progressKey(sc Scope, span int) []byte {
	return progressRoot.Pack(tuple.Tuple{"copy", sc.Tenant, int64(span)})
}

// Copy copies the scope's keys from src to dst in bounded transactions,
// recording its progress in dst so that a Copy interrupted at any point
// continues where it stopped when called again. It then compares both
// stores range by range with SHA-256 checksums and advances dst past the
// largest versionstamp it copied. Keys in dst that src does not have are
// reported as mismatches, not deleted.
func Copy(ctx context.Context, src, dst kv.Store, sc Scope) (CopyReport, error) {
	var r CopyReport
	sp, err := spans(ctx, src, sc)
	if err != nil {
		return r, err
	}
	for i, s := range sp {
		if err := copySpan(ctx, src, dst, sc, i, s, &r); err != nil {
			return r, err
		}
	}
	for _, s := range sp {
		if err := verifySpan(ctx, src, dst, s, &r); err != nil {
			return r, err
		}
	}
	if err := advance(ctx, dst, &r); err != nil {
		return r, err
	}
	if len(r.Mismatch) > 0 {
		return r, fmt.Errorf("transfer: %w: %d ranges differ, first %s", ErrMismatch, len(r.Mismatch), r.Mismatch[0])
	}
	// Done: forget the progress, so a later copy starts afresh.
	_, err = dst.Update(ctx, func(tx kv.Tx) error {
		b, e := progressRoot.Range()
		tx.ClearRange(b, e)
		return nil
	})
	return r, err
}

func copySpan(ctx context.Context, src, dst kv.Store, sc Scope, i int, s Span, r *CopyReport) error {
	pk := progressKey(sc, i)
	begin := s.Begin
	if err := dst.View(ctx, func(tx kv.ReadTx) error {
		v, err := tx.Get(pk)
		if v != nil {
			begin = kv.KeyAfter(v)
			r.Resumed = true
		}
		return err
	}); err != nil {
		return err
	}
	for {
		var batch []kv.KeyValue
		size := 0
		if err := src.View(ctx, func(tx kv.ReadTx) error {
			batch, size = batch[:0], 0
			it := tx.GetRange(begin, s.End, kv.RangeOptions{Limit: batchKeys})
			for it.Next() {
				p := it.KeyValue()
				batch = append(batch, p)
				size += len(p.Key) + len(p.Value)
				if size >= batchBytes {
					break
				}
			}
			return it.Err()
		}); err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		last := batch[len(batch)-1].Key
		if _, err := dst.Update(ctx, func(tx kv.Tx) error {
			for _, p := range batch {
				tx.Set(p.Key, p.Value)
			}
			tx.Set(pk, last)
			return nil
		}); err != nil {
			return err
		}
		for _, p := range batch {
			r.Keys++
			r.Bytes += int64(len(p.Key) + len(p.Value))
			noteStamp(p.Key, r)
		}
		begin = kv.KeyAfter(last)
	}
}

// noteStamp records the largest complete versionstamp found in a key.
func noteStamp(key []byte, r *CopyReport) {
	t, err := tuple.Unpack(key)
	if err != nil {
		return
	}
	for _, e := range t {
		if vs, ok := e.(kv.Versionstamp); ok && vs.IsComplete() && vs.Compare(r.MaxStamp) > 0 {
			r.MaxStamp = vs
		}
	}
}

func advance(ctx context.Context, dst kv.Store, r *CopyReport) error {
	if r.MaxStamp.IsZero() {
		return nil
	}
	r.MaxStampS = r.MaxStamp.String()
	a, ok := dst.(kv.VersionAdvancer)
	if !ok {
		return fmt.Errorf("transfer: %w: the copied history's versionstamps reach %s, and the destination (%T) cannot advance its versions past them", ErrNotOrdered, r.MaxStamp, dst)
	}
	if err := a.AdvanceVersion(ctx, r.MaxStamp); err != nil {
		return fmt.Errorf("transfer: advance the destination's versions past %s: %w", r.MaxStamp, err)
	}
	// Check the outcome rather than trust it: a commit now must stamp
	// after the copied history.
	probe := progressRoot.Pack(tuple.Tuple{"advanced"})
	stamp, err := dst.Update(ctx, func(tx kv.Tx) error {
		tx.Set(probe, []byte(r.MaxStampS))
		return nil
	})
	if err == nil {
		_, err = dst.Update(ctx, func(tx kv.Tx) error {
			tx.Clear(probe)
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("transfer: check the destination's versions: %w", err)
	}
	if stamp.Compare(r.MaxStamp) <= 0 {
		return fmt.Errorf("transfer: %w: after advancing, the destination's commit %s still stamps before the copied history's %s", ErrNotOrdered, stamp, r.MaxStamp)
	}
	r.Advanced = true
	return nil
}

// verifySpan compares src and dst over s in ranges of verifyKeys keys.
func verifySpan(ctx context.Context, src, dst kv.Store, s Span, r *CopyReport) error {
	begin := s.Begin
	for {
		var sum [sha256.Size]byte
		var last []byte
		n := 0
		if err := src.View(ctx, func(tx kv.ReadTx) error {
			h := sha256.New()
			last, n = nil, 0
			it := tx.GetRange(begin, s.End, kv.RangeOptions{Limit: verifyKeys})
			for it.Next() {
				p := it.KeyValue()
				hashPair(h, p)
				last = p.Key
				n++
			}
			copy(sum[:], h.Sum(nil))
			return it.Err()
		}); err != nil {
			return err
		}
		end := s.End
		if n == verifyKeys {
			end = kv.KeyAfter(last)
		}
		var got [sha256.Size]byte
		if err := dst.View(ctx, func(tx kv.ReadTx) error {
			h := sha256.New()
			it := tx.GetRange(begin, end, kv.RangeOptions{})
			for it.Next() {
				hashPair(h, it.KeyValue())
			}
			copy(got[:], h.Sum(nil))
			return it.Err()
		}); err != nil {
			return err
		}
		r.Ranges++
		if got != sum {
			r.Mismatch = append(r.Mismatch, fmt.Sprintf("[%s, %s)", kv.DisplayKey(begin), kv.DisplayKey(end)))
		}
		if n < verifyKeys {
			return nil
		}
		begin = end
	}
}

func hashPair(h interface{ Write([]byte) (int, error) }, p kv.KeyValue) {
	var n [8]byte
	put := func(b []byte) {
		l := uint64(len(b))
		for i := range n {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:])
		h.Write(b)
	}
	put(p.Key)
	put(p.Value)
}

// empty reports whether a store holds no Coditect keys.
func empty(ctx context.Context, s kv.Store) (bool, error) {
	b, e := keyspace.Root().Range()
	found := false
	err := s.View(ctx, func(tx kv.ReadTx) error {
		it := tx.GetRange(b, e, kv.RangeOptions{Limit: 1})
		found = it.Next()
		return it.Err()
	})
	return !found, err
}
