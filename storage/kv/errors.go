package kv

import (
	"errors"
	"fmt"

	"github.com/coditect/coditect/storage/errclass"
)

// Sentinel errors of the contract. Backends wrap them with detail; match them
// with errors.Is.
var (
	// ErrKeyTooLarge: a key is longer than MaxKeySize.
	ErrKeyTooLarge = errclass.New(errclass.Invalid, "key too large")
	// ErrValueTooLarge: a value is longer than MaxValueSize.
	ErrValueTooLarge = errclass.New(errclass.Invalid, "value too large")
	// ErrTransactionTooLarge: a transaction is larger than MaxTransactionSize
	// as FoundationDB counts it (writes, conflict ranges, stamp offsets).
	ErrTransactionTooLarge = errors.New("transaction too large")
	// ErrTransactionTooOld: a transaction ran longer than MaxTransactionAge.
	// It is not retried: the same work would very likely run as long again,
	// so the caller must split it.
	ErrTransactionTooOld = errors.New("transaction too old")
	// ErrAccessedUnreadable: a read touched a key written by
	// SetVersionstampedKey in the same transaction, whose final key is not
	// known until commit.
	ErrAccessedUnreadable = errors.New("read of a versionstamped key written in the same transaction")
	// ErrInvalidVersionstampOffset: a versionstamp template is too short for
	// the 10-byte stamp at the given offset.
	ErrInvalidVersionstampOffset = errors.New("versionstamp offset outside the template")
	// ErrInvalidRange: a range whose begin is after its end.
	ErrInvalidRange = errors.New("invalid range")
	// ErrKeyOutsideLegalRange: a key the backend reserves (FoundationDB's
	// system keys, 0xff and above, when the store has no prefix).
	ErrKeyOutsideLegalRange = errors.New("key outside the legal range")
	// ErrTooManyWatches: the store holds MaxWatches watches already.
	ErrTooManyWatches = errors.New("too many watches")
	// ErrWatchCancelled: the watch was cancelled.
	ErrWatchCancelled = errors.New("watch cancelled")
	// ErrUnavailable: the store could not be reached or stayed locked by
	// another process beyond the backend's lock timeout. Retrying later may
	// succeed; nothing of the failed transaction was applied.
	ErrUnavailable = errclass.New(errclass.Unavailable, "store unavailable")
	// ErrClosed: the store is closed.
	ErrClosed = errclass.New(errclass.Unavailable, "store closed")
	// ErrTransactionDone: a transaction handle was used after its function
	// returned.
	ErrTransactionDone = errors.New("transaction used after it ended")
)

// LimitError reports a FoundationDB limit exceeded. It matches its sentinel
// (ErrKeyTooLarge, ErrValueTooLarge, ErrTransactionTooLarge) with errors.Is.
type LimitError struct {
	Err   error  // the sentinel
	Op    string // the operation, e.g. "set"
	Key   []byte // the key involved, possibly truncated for display
	Size  int    // the offending size in bytes
	Limit int    // the limit in bytes
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("kv: %s %s: %d bytes exceeds the limit of %d bytes (key %s)",
		e.Op, e.Err, e.Size, e.Limit, DisplayKey(e.Key))
}

func (e *LimitError) Unwrap() error { return e.Err }

// DisplayKey renders a key for an error message: printable ASCII as is,
// other bytes as \xNN, truncated after 64 bytes with the total length.
func DisplayKey(k []byte) string {
	const max = 64
	b := k
	if len(b) > max {
		b = b[:max]
	}
	s := fmt.Sprintf("%+q", b)
	if len(k) > max {
		s += fmt.Sprintf("…(%d bytes)", len(k))
	}
	return s
}

// CheckKey returns a *LimitError when key exceeds MaxKeySize.
func CheckKey(op string, key []byte) error {
	if len(key) > MaxKeySize {
		return &LimitError{Err: ErrKeyTooLarge, Op: op, Key: key, Size: len(key), Limit: MaxKeySize}
	}
	return nil
}

// CheckValue returns a *LimitError when value exceeds MaxValueSize.
func CheckValue(op string, key, value []byte) error {
	if len(value) > MaxValueSize {
		return &LimitError{Err: ErrValueTooLarge, Op: op, Key: key, Size: len(value), Limit: MaxValueSize}
	}
	return nil
}

// CheckStampOffset validates a versionstamp template and offset.
func CheckStampOffset(template []byte, offset int) error {
	if offset < 0 || offset+StampSize > len(template) {
		return fmt.Errorf("kv: %w: offset %d, template of %d bytes needs room for %d bytes",
			ErrInvalidVersionstampOffset, offset, len(template), StampSize)
	}
	return nil
}
