package fdb

import (
	"context"
	"errors"
	"fmt"

	"github.com/coditect/coditect/storage/kv"
)

// FoundationDB error codes this package acts on
// (https://apple.github.io/foundationdb/api-error-codes.html).
const (
	codeTransactionTooOld    = 1007 // transaction_too_old
	codeNotCommitted         = 1020 // not_committed
	codeCommitUnknownResult  = 1021 // commit_unknown_result
	codeTransactionCancelled = 1025 // transaction_cancelled
	codeTransactionTimedOut  = 1031 // transaction_timed_out
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
// codes to nil. transaction_too_old is translated only when the attempt is
// old (see tx.old): FoundationDB also raises it after a recovery moves
// the cluster's version forward, and then a retry succeeds.
func translate(code int, old bool) (name string, sentinel error) {
	switch code {
	case codeTransactionTooOld:
		if old {
			return "transaction_too_old", kv.ErrTransactionTooOld
		}
	case codeTransactionTimedOut:
		return "transaction_timed_out", kv.ErrUnavailable
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
// contract. It deliberately does not wrap the Error: a transaction function
// that returns it must stop the retry loop.
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
// and key for the message. It wraps the Error so that the retry loop still
// recognises retryable errors when a function returns it.
type opError struct {
	op  string
	key []byte
	err Error
}

func (e *opError) Error() string {
	if e.key == nil {
		return fmt.Sprintf("fdb: %s: %v", e.op, e.err)
	}
	return fmt.Sprintf("fdb: %s %s: %v", e.op, kv.DisplayKey(e.key), e.err)
}

func (e *opError) Unwrap() error { return e.err }

// opErr turns an error of a FoundationDB operation into what the caller
// sees: ctx's error when the transaction was cancelled because ctx ended, a
// sentinel of the contract when one applies (old says whether the attempt
// has outlived its age limit), else an opError that the retry loop may
// retry.
func opErr(ctx context.Context, op string, key []byte, err error, old bool) error {
	var fe Error
	if !errors.As(err, &fe) {
		return err
	}
	if ctxErr := ctx.Err(); ctxErr != nil && cancelled(fe) {
		return ctxErr
	}
	if name, sentinel := translate(fe.Code, old); sentinel != nil {
		return &contractError{op: op, key: key, code: fe.Code, name: name, sentinel: sentinel}
	}
	return &opError{op: op, key: key, err: fe}
}

func cancelled(fe Error) bool {
	return fe.Code == codeTransactionCancelled || fe.Code == codeOperationCancelled
}

// finalErr turns what the retry loop stopped on into what Update and View
// return. A bare Error comes from the commit or from OnError (a code it
// does not retry, or the retry limit); errors the function returned, ours
// included, are already in their final form and pass unchanged, as the
// contract requires.
func (s *Store) finalErr(ctx context.Context, err error, old bool) error {
	var fe Error
	if errors.As(err, &fe) && cancelled(fe) {
		// The transaction was cancelled by ctx or by Close.
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		if s.closing.Err() != nil {
			return fmt.Errorf("fdb: %w", kv.ErrClosed)
		}
	}
	if bare, ok := err.(Error); ok {
		err = opErr(ctx, "commit", nil, bare, old)
	}
	if oe, ok := errors.AsType[*opError](err); ok && oe.err.Code == codeTransactionTooOld {
		// OnError gave up on transaction_too_old (the retry limit): the
		// contract's sentinel, however young the last attempt.
		return &contractError{op: oe.op, key: oe.key, code: codeTransactionTooOld, name: "transaction_too_old", sentinel: kv.ErrTransactionTooOld}
	}
	return err
}
