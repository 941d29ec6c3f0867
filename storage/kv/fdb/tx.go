package fdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/coditect/coditect/storage/kv"
)

// tx is one attempt of a transaction: a kv.Tx over a FoundationDB
// transaction. Writes cannot return errors in the contract, so the first
// one a write meets is kept and returned when the function ends, which stops
// Transact without committing.
type tx struct {
	s     *Store
	ctx   context.Context
	tr    transaction
	start time.Time // when the attempt had its read version
	// readVersion is the attempt's read version.
	readVersion int64

	mu      sync.Mutex
	done    bool
	err     error // the first deferred write error
	size    int   // bytes written so far, as FoundationDB counts them (kv.SetSize and the rest)
	wrote   bool
	watches []*watch
}

var _ kv.Tx = (*tx)(nil)

// readTx hides the write methods of a View's transaction.
type readTx struct{ t *tx }

var _ kv.ReadTx = readTx{}

func (r readTx) Get(key []byte) ([]byte, error) { return r.t.Get(key) }
func (r readTx) GetRange(begin, end []byte, opts kv.RangeOptions) kv.Iterator {
	return r.t.GetRange(begin, end, opts)
}
func (r readTx) Watch(key []byte) kv.Watch { return r.t.Watch(key) }

// run runs fn as this attempt and ends the attempt.
func (t *tx) run(fn func(*tx) error) (err error) {
	defer func() { t.end(err) }()
	return fn(t)
}

// end marks the attempt over. When it failed, the watches it set end with
// its error: they will never be activated by a commit.
func (t *tx) end(err error) {
	t.mu.Lock()
	t.done = true
	ws := t.watches
	t.watches = nil
	t.mu.Unlock()
	if err != nil {
		for _, w := range ws {
			w.finish(err)
		}
	}
}

// finish is the last check before the commit: a deferred write error, or
// an attempt that ran too long.
func (t *tx) finish() error {
	t.mu.Lock()
	err := t.err
	t.mu.Unlock()
	if err != nil {
		return err
	}
	return t.checkAge()
}

// old reports whether the attempt has outlived the store's age limit,
// measured from its read version: FoundationDB's transaction_too_old (1007)
// means the contract's sentinel only then (see translate).
func (t *tx) old() bool { return time.Since(t.start) > t.s.maxAge }

// opErr is opErr for an operation of this attempt.
func (t *tx) opErr(op string, key []byte, err error) error {
	return opErr(t.ctx, op, key, err, t.old())
}

// checkAge is the client-side half of the 5 s limit; FoundationDB's own
// transaction_too_old (1007) of an old attempt is translated to the same
// sentinel.
func (t *tx) checkAge() error {
	if age := time.Since(t.start); age > t.s.maxAge {
		return fmt.Errorf("fdb: %w: running for %v, the limit is %v; split the work into shorter transactions",
			kv.ErrTransactionTooOld, age.Round(time.Millisecond), t.s.maxAge)
	}
	return nil
}

// usable reports why the transaction cannot run another read, if so.
func (t *tx) usable() error {
	t.mu.Lock()
	done := t.done
	t.mu.Unlock()
	if done {
		return fmt.Errorf("fdb: %w", kv.ErrTransactionDone)
	}
	if err := t.ctx.Err(); err != nil {
		return err
	}
	return t.checkAge()
}

// write admits one mutation of size bytes after its checks (check is the
// first failed one, or nil). It returns false when the mutation must not be
// sent: the transaction already failed, this mutation fails, or the attempt
// has ended (a handle used after its function returned has nobody to report
// to, and the FoundationDB transaction may already serve the next attempt).
func (t *tx) write(op string, key []byte, size int, check error) bool {
	if check == nil {
		check = t.checkAge()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done || t.err != nil {
		return false
	}
	if check != nil {
		t.err = check
		return false
	}
	t.size += size
	if t.size > kv.MaxTransactionSize {
		t.err = &kv.LimitError{Err: kv.ErrTransactionTooLarge, Op: op, Key: key, Size: t.size, Limit: kv.MaxTransactionSize}
		return false
	}
	t.wrote = true
	return true
}

// firstErr returns the first non-nil error.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Get implements kv.ReadTx.
func (t *tx) Get(key []byte) ([]byte, error) {
	if err := firstErr(t.usable(), t.s.checkKey("get", key)); err != nil {
		return nil, t.readFailed(err)
	}
	t.countRead("get", key, kv.PointRangeSize(t.s.storedSize(key)))
	v, err := t.tr.Get(t.s.key(key), false)
	if err != nil {
		return nil, t.readFailed(t.opErr("get", key, err))
	}
	return v, nil
}

// SnapshotGet implements kv.Tx with a snapshot read, which adds no read
// conflict range. FoundationDB's snapshot reads see the transaction's own
// writes unless SNAPSHOT_RYW_DISABLE is set, which this store never sets.
func (t *tx) SnapshotGet(key []byte) ([]byte, error) {
	if err := firstErr(t.usable(), t.s.checkKey("snapshot get", key)); err != nil {
		return nil, t.readFailed(err)
	}
	v, err := t.tr.Get(t.s.key(key), true)
	if err != nil {
		return nil, t.readFailed(t.opErr("snapshot get", key, err))
	}
	return v, nil
}

// GetRange implements kv.ReadTx.
func (t *tx) GetRange(begin, end []byte, opts kv.RangeOptions) kv.Iterator {
	if err := t.usable(); err != nil {
		return kv.ErrIterator{E: t.readFailed(err)}
	}
	if opts.Limit < 0 {
		return kv.ErrIterator{E: t.readFailed(fmt.Errorf("fdb: range %s..%s: %w: negative limit %d",
			kv.DisplayKey(begin), displayEnd(end), kv.ErrInvalidRange, opts.Limit))}
	}
	b, e, err := t.s.bounds("range", begin, end)
	if err != nil {
		return kv.ErrIterator{E: t.readFailed(err)}
	}
	t.countRead("range", begin, kv.ReadRangeSize(len(b), len(e)))
	// A caller that set a limit will usually read all of it: ask for it in
	// as few batches as possible. Without a limit the caller may stop at
	// any point: start small and grow, as FoundationDB's iterator mode does.
	it := t.tr.GetRange(b, e, opts.Limit, opts.Reverse, opts.Limit > 0)
	return &iterator{t: t, it: it, begin: begin}
}

// Watch implements kv.ReadTx.
func (t *tx) Watch(key []byte) kv.Watch {
	if err := firstErr(t.usable(), t.s.checkKey("watch", key)); err != nil {
		return failedWatch(err)
	}
	f := t.tr.Watch(t.s.key(key))
	w, err := t.s.addWatch(key, f)
	if err != nil {
		f.Cancel()
		return failedWatch(err)
	}
	t.mu.Lock()
	t.watches = append(t.watches, w)
	t.mu.Unlock()
	return w
}

// Set implements kv.Tx.
func (t *tx) Set(key, value []byte) {
	const op = "set"
	check := firstErr(t.s.checkKey(op, key), kv.CheckValue(op, key, value))
	if t.write(op, key, kv.SetSize(t.s.storedSize(key), len(value)), check) {
		t.tr.Set(t.s.key(key), value)
	}
}

// Clear implements kv.Tx.
func (t *tx) Clear(key []byte) {
	const op = "clear"
	if t.write(op, key, kv.ClearSize(t.s.storedSize(key)), t.s.checkKey(op, key)) {
		t.tr.Clear(t.s.key(key))
	}
}

// ClearRange implements kv.Tx. A nil end clears to the end of the store's
// keys.
func (t *tx) ClearRange(begin, end []byte) {
	const op = "clear range"
	b, e, err := t.s.bounds(op, begin, end)
	if t.write(op, begin, kv.ClearRangeSize(len(b), len(e)), err) {
		t.tr.ClearRange(b, e)
	}
}

// Add implements kv.Tx with FoundationDB's ADD and an 8-byte little-endian
// operand, which gives exactly the contract's zero-extend, truncate and
// wrap.
func (t *tx) Add(key []byte, delta int64) {
	const op = "add"
	if t.write(op, key, kv.SetSize(t.s.storedSize(key), 8), t.s.checkKey(op, key)) {
		t.tr.Add(t.s.key(key), kv.EncodeInt64(delta))
	}
}

// Max implements kv.Tx with FoundationDB's MAX, whose semantics the
// contract states (kv.MaxLE computes the same result).
func (t *tx) Max(key, param []byte) {
	const op = "max"
	check := firstErr(t.s.checkKey(op, key), kv.CheckValue(op, key, param))
	if t.write(op, key, kv.SetSize(t.s.storedSize(key), len(param)), check) {
		t.tr.Max(t.s.key(key), param)
	}
}

// SetVersionstampedKey implements kv.Tx with SET_VERSIONSTAMPED_KEY: the
// key is the prefixed template followed by the stamp's offset in it, 4
// bytes little-endian (API version 520 and later), counted from the start
// of the stored key, so past the prefix.
func (t *tx) SetVersionstampedKey(template []byte, offset int, value []byte) {
	const op = "set versionstamped key"
	check := firstErr(kv.CheckStampOffset(template, offset), t.s.checkKey(op, template), kv.CheckValue(op, template, value))
	if !t.write(op, template, kv.VersionstampedKeySize(t.s.storedSize(template), len(value)), check) {
		return
	}
	k := make([]byte, 0, len(t.s.prefix)+len(template)+4)
	k = append(k, t.s.prefix...)
	k = append(k, template...)
	k = binary.LittleEndian.AppendUint32(k, uint32(len(t.s.prefix)+offset))
	t.tr.SetVersionstampedKey(k, value)
}

// SetVersionstampedValue implements kv.Tx with SET_VERSIONSTAMPED_VALUE:
// the operand is the template followed by the stamp's offset in it, 4 bytes
// little-endian. The prefix is on the key, so the offset is the caller's.
func (t *tx) SetVersionstampedValue(key, template []byte, offset int) {
	const op = "set versionstamped value"
	check := firstErr(kv.CheckStampOffset(template, offset), t.s.checkKey(op, key), kv.CheckValue(op, key, template))
	if !t.write(op, key, kv.VersionstampedValueSize(t.s.storedSize(key), len(template)), check) {
		return
	}
	v := make([]byte, 0, len(template)+4)
	v = append(v, template...)
	v = binary.LittleEndian.AppendUint32(v, uint32(offset))
	t.tr.SetVersionstampedValue(t.s.key(key), v)
}

// key returns the stored key for a caller's key.
func (s *Store) key(k []byte) []byte {
	out := make([]byte, 0, len(s.prefix)+len(k))
	return append(append(out, s.prefix...), k...)
}

// storedSize is the size FoundationDB counts for a caller's key.
func (s *Store) storedSize(k []byte) int { return len(s.prefix) + len(k) }

// checkKey applies FoundationDB's key rules to a caller's key: the stored
// key (prefix included) may not exceed kv.MaxKeySize, and without a prefix
// a key may not be a system key.
func (s *Store) checkKey(op string, k []byte) error {
	if limit := kv.MaxKeySize - len(s.prefix); len(k) > limit {
		return &kv.LimitError{Err: kv.ErrKeyTooLarge, Op: op, Key: k, Size: len(k), Limit: limit}
	}
	if len(s.prefix) == 0 && len(k) > 0 && k[0] == 0xff {
		return fmt.Errorf("fdb: %s %s: %w: keys from 0xff on are FoundationDB's system keys; open the store with a prefix to use them",
			op, kv.DisplayKey(k), kv.ErrKeyOutsideLegalRange)
	}
	return nil
}

// checkBound is checkKey for the bound of a range, which may be 0xff
// itself: the end of the user keyspace.
func (s *Store) checkBound(op string, k []byte) error {
	if limit := kv.MaxKeySize - len(s.prefix); len(k) > limit {
		return &kv.LimitError{Err: kv.ErrKeyTooLarge, Op: op, Key: k, Size: len(k), Limit: limit}
	}
	if len(s.prefix) == 0 && bytes.Compare(k, s.end) > 0 {
		return fmt.Errorf("fdb: %s bound %s: %w: keys after 0xff are FoundationDB's system keys; open the store with a prefix to use them",
			op, kv.DisplayKey(k), kv.ErrKeyOutsideLegalRange)
	}
	return nil
}

// bounds returns the stored range for a caller's [begin, end), end nil
// meaning the end of the store's keys.
func (s *Store) bounds(op string, begin, end []byte) (b, e []byte, err error) {
	if err := s.checkBound(op, begin); err != nil {
		return nil, nil, err
	}
	if end == nil {
		return s.key(begin), s.end, nil
	}
	if err := s.checkBound(op, end); err != nil {
		return nil, nil, err
	}
	if bytes.Compare(begin, end) > 0 {
		return nil, nil, fmt.Errorf("fdb: %s %s..%s: %w: begin is after end",
			op, kv.DisplayKey(begin), kv.DisplayKey(end), kv.ErrInvalidRange)
	}
	return s.key(begin), s.key(end), nil
}

func displayEnd(end []byte) string {
	if end == nil {
		return "(end)"
	}
	return kv.DisplayKey(end)
}
