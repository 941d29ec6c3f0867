// Package kv owns Coditect's transactional key-value contract: FoundationDB's
// semantics (ordered byte keys, serializable transactions run through a retry
// loop, range and snapshot reads, atomic add and max, versionstamps, watches
// and FDB's size and time limits) stated once, so that every layer above is
// written once and runs unchanged on the embedded SQLite backend or on a
// FoundationDB cluster.
//
// The package holds the interfaces, the typed errors, the versionstamp type and
// small helpers that are pure functions of the contract (prefix ranges, the
// little-endian ADD and MAX arithmetic, limit checks) so that backends share one
// definition of them. It must not import any backend or any layer above it.
package kv

import (
	"context"
	"time"
)

// FoundationDB's limits, enforced by every backend with typed errors.
const (
	// MaxKeySize is the largest key, in bytes, a transaction may write or read.
	MaxKeySize = 10_000
	// MaxValueSize is the largest value, in bytes.
	MaxValueSize = 100_000
	// MaxTransactionSize is the largest size of a transaction as FoundationDB
	// counts it: the bytes of its mutations plus the bounds of its read and
	// write conflict ranges (see SetSize, ReadRangeSize and the other size
	// functions). A transaction that only reads is not limited.
	MaxTransactionSize = 10_000_000
	// MaxTransactionAge is how long a transaction may run: operations after it
	// fail with ErrTransactionTooOld.
	MaxTransactionAge = 5 * time.Second
	// MaxWatches is how many watches one open store may hold at once.
	MaxWatches = 10_000
)

// Store is an open key-value store. All methods are safe for concurrent use.
//
// Invariants a caller may rely on, whatever the backend:
//   - keys are ordered by bytes.Compare (memcmp), the empty key first;
//   - every Update is serializable with every other Update, in this process
//     or any other process or host using the same store;
//   - an Update that returned nil is durable;
//   - fn may run more than once: it must have no side effects outside the
//     transaction other than ones it is safe to repeat.
type Store interface {
	// Update runs fn in a read-write transaction and commits it. Conflicts
	// and a busy store are retried (fn runs again) until ctx is done; they
	// are never returned as such. An error returned by fn aborts the
	// transaction (nothing it wrote is applied) and is returned unchanged.
	//
	// The returned Versionstamp is the commit's stamp with user order 0
	// (the 10 bytes written into versionstamped keys); it is the zero value
	// when fn wrote nothing.
	Update(ctx context.Context, fn func(Tx) error) (Versionstamp, error)

	// View runs fn in a read-only transaction that sees one consistent
	// snapshot. Like Update, it retries transient failures.
	View(ctx context.Context, fn func(ReadTx) error) error

	// Watch blocks until key's value differs from its value when Watch was
	// called, or ctx is done. For a race-free read-then-wait, read the key
	// and set the watch in one transaction with ReadTx.Watch instead.
	Watch(ctx context.Context, key []byte) error

	// Close releases the store. Pending watches return ErrClosed.
	Close() error
}

// WithRelaxedDurability returns a context whose Update commits survive a
// crash of the process that made them (and are visible to every process at
// once) but may be lost in a power failure or operating-system crash that
// follows soon after — together with other relaxed commits made since the
// last durable one, never out of order. Use it for frequent records whose
// loss in a power failure is tolerable (the audit records of reads). The
// embedded store then skips the fsync of its write-ahead log for the commit
// (SQLite's synchronous=NORMAL); FoundationDB commits are always durable and
// ignore it.
func WithRelaxedDurability(ctx context.Context) context.Context {
	return context.WithValue(ctx, relaxedKey{}, true)
}

// RelaxedDurability reports whether ctx asks for relaxed durability.
func RelaxedDurability(ctx context.Context) bool {
	v, _ := ctx.Value(relaxedKey{}).(bool)
	return v
}

type relaxedKey struct{}

// ReadTx is the read side of a transaction. A ReadTx is valid only inside
// the function it was passed to.
//
// A failed read fails the transaction: when a read (Get, GetMany,
// SnapshotGet, or a range iterator's Err) returned an error, Update or View
// returns the first such error, and Update applies nothing, even if fn
// handled the error and returned nil. FoundationDB's commit waits on every
// read the transaction issued and fails with a read's error; every backend
// does the same.
type ReadTx interface {
	// Get returns the key's value, or (nil, nil) when the key is absent.
	Get(key []byte) ([]byte, error)

	// GetMany returns the values of keys, in order, each as Get returns it
	// (nil for an absent key), or the first error. The reads may run
	// concurrently: on FoundationDB they cost one round trip, not
	// len(keys). Use it instead of a loop of Gets whose keys are known.
	GetMany(keys [][]byte) ([][]byte, error)

	// GetRange returns an iterator over keys in [begin, end), in order, or
	// in reverse order when opts.Reverse is set. It streams: a range of any
	// size may be read a page at a time while the transaction lasts.
	GetRange(begin, end []byte, opts RangeOptions) Iterator

	// Watch returns a watch that fires when key's value differs from the
	// value this transaction sees. It becomes active when the transaction
	// completes successfully; if the transaction fails, Wait returns the
	// transaction's error. A change followed by a change back may not fire.
	Watch(key []byte) Watch
}

// Tx is a read-write transaction. Reads see the transaction's own writes
// (read-your-writes), except keys written with SetVersionstampedKey, which
// cannot be read in the transaction that writes them (ErrAccessedUnreadable).
type Tx interface {
	ReadTx

	// SnapshotGet is Get without a read conflict: FoundationDB's snapshot
	// read. Another transaction's write to key, committed while this one
	// runs, does not make this one retry, so the value may be stale by the
	// time this transaction commits: use it for hints that tolerate that.
	// Like Get it returns (nil, nil) for an absent key, sees the
	// transaction's own writes (atomic operations included) and refuses
	// keys written with a versionstamp in this transaction.
	SnapshotGet(key []byte) ([]byte, error)

	// Set writes value at key.
	Set(key, value []byte)
	// Clear removes key.
	Clear(key []byte)
	// ClearRange removes every key in [begin, end).
	ClearRange(begin, end []byte)
	// Add adds delta to the little-endian integer at key, exactly as
	// FoundationDB's ADD atomic operation with an 8-byte operand: a missing
	// value counts as zero, a shorter one is zero-extended, a longer one is
	// truncated to 8 bytes, and the sum wraps.
	Add(key []byte, delta int64)
	// Max stores the larger of key's value and param, exactly as
	// FoundationDB's MAX atomic operation (see MaxLE): both compare as
	// little-endian unsigned integers of param's length, a missing or
	// empty value counts as param, a shorter one is zero-extended, a
	// longer one is truncated, and the result has param's length (an empty
	// param stores an empty value). Like Add it is a blind write: it adds
	// no read conflict, so concurrent Max operations on one key never make
	// each other retry.
	Max(key, param []byte)
	// SetVersionstampedKey writes value at a key made from template by
	// overwriting the 10 bytes at offset with the commit's versionstamp
	// (FoundationDB's SET_VERSIONSTAMPED_KEY). The 2 bytes of order inside
	// the transaction are the caller's: they follow the placeholder in the
	// template, as FDB's tuple layer places them.
	SetVersionstampedKey(template []byte, offset int, value []byte)
	// SetVersionstampedValue writes at key a value made from template by
	// overwriting the 10 bytes at offset with the commit's versionstamp.
	SetVersionstampedValue(key, template []byte, offset int)
}

// A Watch reports a change of one key's value.
type Watch interface {
	// Wait blocks until the watched value changes (nil), the watch is
	// cancelled or the store closes (ErrWatchCancelled, ErrClosed), the
	// transaction that set it failed, or ctx is done (ctx.Err()).
	Wait(ctx context.Context) error
	// Cancel releases the watch; pending and later Waits return
	// ErrWatchCancelled. Cancel is idempotent.
	Cancel()
}

// RangeOptions shape a range read.
type RangeOptions struct {
	// Limit is the most key-value pairs to return; 0 means no limit.
	Limit int
	// Reverse returns keys from the end of the range backwards.
	Reverse bool
}

// KeyValue is one pair returned by a range read. The slices belong to the
// caller.
type KeyValue struct {
	Key   []byte
	Value []byte
}

// Iterator walks a range. Use it as:
//
//	for it.Next() { kv := it.KeyValue(); ... }
//	if err := it.Err(); err != nil { ... }
type Iterator interface {
	// Next advances to the next pair and reports whether there is one.
	Next() bool
	// KeyValue returns the current pair.
	KeyValue() KeyValue
	// Err returns the error that stopped the iteration, if any.
	Err() error
}

// VersionAdvancer is implemented by stores whose commit order can be moved
// forward: after AdvanceVersion(past), every later commit's versionstamp is
// greater than past. Copying data between stores keeps its versionstamped
// keys; advancing the destination past the largest of them keeps later
// appends after the copied history. (A FoundationDB cluster's versions
// advance by about a million a second and cannot be set; the embedded
// store's commit counter can.)
type VersionAdvancer interface {
	AdvanceVersion(ctx context.Context, past Versionstamp) error
}
