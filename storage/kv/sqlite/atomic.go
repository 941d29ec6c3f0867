package sqlite

import (
	"bytes"
	"context"
	"maps"
	"slices"

	"github.com/coditect/coditect/storage/kv"
)

// Deferred atomic operations. Add and Max do not touch SQLite when called:
// each is recorded as the key's pending operations, in order, and applied
// later with one read and at most one write per key, whatever the number
// of operations:
//   - not by a point read (Get, GetMany, SnapshotGet): it reads the
//     stored value and folds the key's pending operations, the batch's
//     then the transaction's, over it in memory, and leaves them pending.
//     A key every Update of a batch reads and raises (the audit clock) is
//     then read once per Update and written once per batch;
//   - before a range read's page that covers the key or a watch's
//     baseline reads it, so those reads see the transaction's own writes;
//   - not at all when a Set, Clear, ClearRange or versionstamped write
//     overwrites the key: the overwrite alone decides its value;
//   - at the transaction's commit, without group commit;
//   - under group commit, the operations of an Update whose savepoint is
//     released join the batch's pending operations on the same keys, which
//     are applied before the batch's COMMIT, or earlier by a later Update
//     of the batch that reads or overwrites the key. An Update that rolls
//     back hands the batch's operations it applied or overwrote back to the
//     batch (the rollback undid them); its own operations are dropped.
//
// Applying a key's operations is their left fold over its stored value,
// with kv.AddLE and kv.MaxLE: exactly what running them one after another
// would store.

// atomicOp is one pending Add (add: delta) or Max (param).
type atomicOp struct {
	add   bool
	delta int64
	param []byte
}

func (op atomicOp) apply(v []byte) []byte {
	if op.add {
		return kv.AddLE(v, op.delta)
	}
	return kv.MaxLE(v, op.param)
}

// pendingOps holds, by key, the atomic operations not yet applied, in the
// order they were made.
type pendingOps map[string][]atomicOp

// push appends op to key's operations, merged into the last one when the
// two have the effect of one operation on every value:
//   - Add d1 then Add d2 is Add d1+d2: AddLE reads the value as 8 bytes
//     and sums modulo 2^64, and int64 addition wraps the same way;
//   - Max p1 then Max p2, both of one nonzero length, is Max of the larger
//     (MaxLE(p1, p2)): both compare the value at that length and leave a
//     value of that length. Params of different lengths, or empty ones, do
//     not merge (MaxLE truncates, zero-extends or empties the value).
func (p pendingOps) push(key string, op atomicOp) {
	ops := p[key]
	if n := len(ops); n > 0 {
		last := &ops[n-1]
		switch {
		case last.add && op.add:
			last.delta += op.delta
			return
		case !last.add && !op.add && len(op.param) > 0 && len(last.param) == len(op.param):
			last.param = kv.MaxLE(last.param, op.param)
			return
		}
	}
	p[key] = append(ops, op)
}

// applyOps applies ops to key's stored value: one read, then one write
// unless the value is present and unchanged (an atomic operation on an
// absent key always stores a value).
func applyOps(ctx context.Context, st *stmtSet, key []byte, ops []atomicOp) error {
	old, err := readValue(ctx, st, key)
	if err != nil {
		return wrapErr("atomic operation", key, err)
	}
	v := old
	for _, op := range ops {
		v = op.apply(v)
	}
	if old != nil && bytes.Equal(v, old) {
		return nil
	}
	if _, err := st.set.ExecContext(ctx, key, nonNil(v)); err != nil {
		return wrapErr("atomic operation", key, err)
	}
	return nil
}

// deferOp records an atomic operation on key.
func (t *txn) deferOp(key []byte, op atomicOp) {
	t.pmu.Lock()
	defer t.pmu.Unlock()
	if t.pending == nil {
		t.pending = pendingOps{}
	}
	t.pending.push(string(key), op)
}

// pendingFor returns key's pending operations, the batch's then the
// transaction's, in order, without applying or taking them.
func (t *txn) pendingFor(key []byte) []atomicOp {
	t.pmu.Lock()
	defer t.pmu.Unlock()
	if !t.hasPending() {
		return nil
	}
	var ops []atomicOp
	if b := t.batch; b != nil {
		ops = append(ops, b.pending[string(key)]...)
	}
	return append(ops, t.pending[string(key)]...)
}

// hasPending reports, under pmu, whether any atomic operation is pending
// in the transaction or its batch.
func (t *txn) hasPending() bool {
	return len(t.pending) > 0 || (t.batch != nil && len(t.batch.pending) > 0)
}

// settleKey prepares key for an operation: when apply is set (a read) it
// applies the key's pending operations, the batch's then the
// transaction's; otherwise (an overwrite) it drops them.
func (t *txn) settleKey(key []byte, apply bool) error {
	t.pmu.Lock()
	defer t.pmu.Unlock()
	if !t.hasPending() {
		return nil
	}
	return t.settleLocked(string(key), apply)
}

// settleRange is settleKey for every key in [begin, end) (end nil: to the
// end of the keyspace).
func (t *txn) settleRange(begin, end []byte, apply bool) error {
	t.pmu.Lock()
	defer t.pmu.Unlock()
	if !t.hasPending() {
		return nil
	}
	in := func(k string) bool {
		return k >= string(begin) && (end == nil || k < string(end))
	}
	var keys []string
	for k := range t.pending {
		if in(k) {
			keys = append(keys, k)
		}
	}
	if t.batch != nil {
		for k := range t.batch.pending {
			if in(k) {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	for _, k := range slices.Compact(keys) {
		if err := t.settleLocked(k, apply); err != nil {
			return err
		}
	}
	return nil
}

// settleLocked is settleKey's work, under pmu. The batch's operations it
// takes are kept in taken, for the batch to have back if this transaction
// rolls back.
func (t *txn) settleLocked(k string, apply bool) error {
	var ops []atomicOp
	if b := t.batch; b != nil {
		if bops, ok := b.pending[k]; ok {
			delete(b.pending, k)
			if t.taken == nil {
				t.taken = pendingOps{}
			}
			t.taken[k] = append(t.taken[k], bops...)
			ops = bops[:len(bops):len(bops)] // appending below copies
		}
	}
	if own, ok := t.pending[k]; ok {
		delete(t.pending, k)
		ops = append(ops, own...)
	}
	if !apply || len(ops) == 0 {
		return nil
	}
	return applyOps(t.sctx, t.st, []byte(k), ops)
}

// applyPending applies all the transaction's pending operations (at its
// commit, when it runs without group commit); a failure fails the
// transaction.
func (t *txn) applyPending() error {
	if err := t.settleRange(nil, nil, true); err != nil {
		t.fail(err)
		return err
	}
	return nil
}

// adopt moves the pending operations of t, whose savepoint was released,
// to the batch, after the batch's own on the same keys.
func (b *batch) adopt(t *txn) {
	t.pmu.Lock()
	defer t.pmu.Unlock()
	for k, ops := range t.pending {
		for _, op := range ops {
			b.pending.push(k, op)
		}
	}
	t.pending, t.taken = nil, nil
}

// restore gives back to the batch the operations t took from it, as t's
// savepoint rolled back (undoing those t applied); t's own are dropped.
func (b *batch) restore(t *txn) {
	t.pmu.Lock()
	defer t.pmu.Unlock()
	if b.pending == nil {
		b.pending = pendingOps{}
	}
	for k, ops := range t.taken {
		// Nothing joins the batch's operations while t runs, so the key
		// has none now; appending its (absent) rest keeps the order anyway.
		b.pending[k] = append(ops, b.pending[k]...)
	}
	t.pending, t.taken = nil, nil
}

// apply applies the batch's pending operations on the writer connection,
// before its COMMIT.
func (b *batch) apply(st *stmtSet) error {
	for _, k := range slices.Sorted(maps.Keys(b.pending)) {
		if err := applyOps(context.Background(), st, []byte(k), b.pending[k]); err != nil {
			return err
		}
	}
	b.pending = nil
	return nil
}
