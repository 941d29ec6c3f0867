package kvtest

import (
	"bytes"
	"context"
	"sync"

	"github.com/coditect/coditect/storage/kv"
)

// ReadSet wraps a store and records the read set of the read-write
// transactions run through it while Record runs: the keys and ranges read
// with a read conflict (Get, GetRange), as FoundationDB's resolver may see
// them. A range read that returned its whole limit covers [begin, the last
// key returned]; any other covers [begin, end) — also one the caller
// stopped iterating early, since the binding fetches ahead in batches and
// a fetched batch is in the read set. Snapshot reads (SnapshotGet) are
// left out. On the embedded
// store, whose writers are serialised, a conflict never shows; the read
// set is what decides whether a transaction conflicts with concurrent
// writers on a cluster, so tests assert on it.
type ReadSet struct {
	kv.Store
	mu     sync.Mutex
	on     bool
	reads  *Reads
	ranges []*rangeRead
}

// Reads is what a transaction read with a conflict.
type Reads struct {
	Keys   [][]byte
	Ranges [][2][]byte // [begin, end)
}

// Has reports whether key is in the read set.
func (r Reads) Has(key []byte) bool {
	for _, k := range r.Keys {
		if bytes.Equal(k, key) {
			return true
		}
	}
	for _, rg := range r.Ranges {
		if bytes.Compare(key, rg[0]) >= 0 && bytes.Compare(key, rg[1]) < 0 {
			return true
		}
	}
	return false
}

// NewReadSet wraps s.
func NewReadSet(s kv.Store) *ReadSet { return &ReadSet{Store: s} }

// Record runs fn and returns the read set of the Updates it ran (every
// attempt). Records do not nest.
func (r *ReadSet) Record(fn func()) Reads {
	r.mu.Lock()
	r.on, r.reads, r.ranges = true, &Reads{}, nil
	r.mu.Unlock()
	fn()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.on = false
	out := *r.reads
	for _, rg := range r.ranges {
		out.Ranges = append(out.Ranges, rg.covered())
	}
	return out
}

// Update implements kv.Store.
func (r *ReadSet) Update(ctx context.Context, fn func(kv.Tx) error) (kv.Versionstamp, error) {
	return r.Store.Update(ctx, func(tx kv.Tx) error { return fn(&recordingTx{Tx: tx, r: r}) })
}

type recordingTx struct {
	kv.Tx
	r *ReadSet
}

func (t *recordingTx) Get(key []byte) ([]byte, error) {
	t.r.mu.Lock()
	if t.r.on {
		t.r.reads.Keys = append(t.r.reads.Keys, bytes.Clone(key))
	}
	t.r.mu.Unlock()
	return t.Tx.Get(key)
}

func (t *recordingTx) GetRange(begin, end []byte, opts kv.RangeOptions) kv.Iterator {
	it := t.Tx.GetRange(begin, end, opts)
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	if !t.r.on {
		return it
	}
	rg := &rangeRead{begin: bytes.Clone(begin), end: bytes.Clone(end), reverse: opts.Reverse, limit: opts.Limit}
	t.r.ranges = append(t.r.ranges, rg)
	return &recordingIter{Iterator: it, rg: rg, mu: &t.r.mu}
}

// rangeRead is one range read and how far it was iterated.
type rangeRead struct {
	begin, end []byte
	reverse    bool
	limit      int
	n          int    // keys returned
	last       []byte // the last key returned
}

func (rg *rangeRead) covered() [2][]byte {
	switch {
	case rg.limit == 0 || rg.n < rg.limit:
		return [2][]byte{rg.begin, rg.end}
	case rg.reverse:
		return [2][]byte{rg.last, rg.end}
	default:
		return [2][]byte{rg.begin, kv.KeyAfter(rg.last)}
	}
}

type recordingIter struct {
	kv.Iterator
	rg *rangeRead
	mu *sync.Mutex
}

func (it *recordingIter) Next() bool {
	ok := it.Iterator.Next()
	it.mu.Lock()
	defer it.mu.Unlock()
	if ok {
		it.rg.last = bytes.Clone(it.Iterator.KeyValue().Key)
		it.rg.n++
	}
	return ok
}
