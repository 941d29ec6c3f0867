//go:build fdb

package fdb

import (
	"context"
	"errors"
	"fmt"

	fdbapi "github.com/apple/foundationdb/bindings/go/src/fdb"

	"github.com/coditect/coditect/storage/kv"
)

// FoundationDB error codes this package acts on
// (https://apple.github.io/foundationdb/api-error-codes.html).
const (
	codeTransactionTooOld    = 1007 // transaction_too_old
	codeTransactionCancelled = 1025 // transaction_cancelled
	codeTooManyWatches       = 1032 // too_many_watches
	codeAccessedUnreadable   = 1036 // accessed_unreadable
	codeOperationCancelled   = 1101 // operation_cancelled
	codeKeyOutsideLegalRange = 2004 // key_outside_legal_range
	codeTransactionTooLarge  = 2101 // transaction_too_large
	codeKeyTooLarge          = 2102 // key_too_large
	codeValueTooLarge        = 2103 // value_too_large
)

// translate maps the FoundationDB errors that mean a sentinel of the
// contract to the code's name, for the message, and that sentinel; other
// codes to nil.
func translate(code int) (name string, sentinel error) {
	switch code {
	case codeTransactionTooOld:
		return "transaction_too_old", kv.ErrTransactionTooOld
	case codeTooManyWatches:
		return "too_many_watches", kv.ErrTooManyWatches
	case codeAccessedUnreadable:
		return "accessed_unreadable", kv.ErrAccessedUnreadable
	case codeKeyOutsideLegalRange:
		return "key_outside_legal_range", kv.ErrKeyOutsideLegalRange
	case codeTransactionTooLarge:
		return "transaction_too_large", kv.ErrTransactionTooLarge
	case codeKeyTooLarge:
		return "key_too_large", kv.ErrKeyTooLarge
	case codeValueTooLarge:
		return "value_too_large", kv.ErrValueTooLarge
	}
	return "", nil
}

// contractError is a FoundationDB error translated to a sentinel of the
// contract. It deliberately does not wrap the fdb.Error: a transaction
// function that returns it must stop Transact's retry loop (FoundationDB
// would retry transaction_too_old, and the contract says not to).
type contractError struct {
	op       string
	key      []byte // the caller's key, nil when none applies
	code     int
	name     string
	sentinel error
}

func (e *contractError) Error() string {
	where := e.op
	if e.key != nil {
		where += " " + kv.DisplayKey(e.key)
	}
	return fmt.Sprintf("fdb: %s: %v (FoundationDB error %d, %s)", where, e.sentinel, e.code, e.name)
}

func (e *contractError) Unwrap() error { return e.sentinel }

// opError is a FoundationDB error from one operation, with the operation
// and key for the message. It wraps the fdb.Error so that Transact's retry
// loop still recognises retryable errors when a function returns it.
type opError struct {
	op  string
	key []byte
	err fdbapi.Error
}

func (e *opError) Error() string {
	if e.key == nil {
		return fmt.Sprintf("fdb: %s: %v", e.op, e.err)
	}
	return fmt.Sprintf("fdb: %s %s: %v", e.op, kv.DisplayKey(e.key), e.err)
}

func (e *opError) Unwrap() error { return e.err }

// opErr turns an error of a FoundationDB operation inside a transaction
// into what the caller sees: ctx's error when the transaction was cancelled
// because ctx ended, a sentinel of the contract when one applies, else an
// opError that Transact may retry.
func opErr(ctx context.Context, op string, key []byte, err error) error {
	var fe fdbapi.Error
	if !errors.As(err, &fe) {
		return err
	}
	if ctxErr := ctx.Err(); ctxErr != nil && cancelled(fe) {
		return ctxErr
	}
	if name, sentinel := translate(fe.Code); sentinel != nil {
		return &contractError{op: op, key: key, code: fe.Code, name: name, sentinel: sentinel}
	}
	return &opError{op: op, key: key, err: fe}
}

func cancelled(fe fdbapi.Error) bool {
	return fe.Code == codeTransactionCancelled || fe.Code == codeOperationCancelled
}

// finalErr turns what Transact returned into what Update and View return.
// A bare fdb.Error comes from the commit (or from OnError after a retry
// limit); errors the function returned, ours included, are already in their
// final form and pass unchanged, as the contract requires.
func (s *Store) finalErr(ctx context.Context, err error) error {
	var fe fdbapi.Error
	if errors.As(err, &fe) && cancelled(fe) {
		// The transaction was cancelled by ctx or by Close.
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		if s.closing.Err() != nil {
			return fmt.Errorf("fdb: %w", kv.ErrClosed)
		}
	}
	if bare, ok := err.(fdbapi.Error); ok {
		return opErr(ctx, "commit", nil, bare)
	}
	return err
}
