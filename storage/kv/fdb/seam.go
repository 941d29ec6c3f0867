package fdb

import "fmt"

// The seam between this package and FoundationDB: the few operations of the
// official Go binding the backend uses, as interfaces. binding.go (built
// with the tag fdb) implements them with the binding; the tests implement
// them in memory with injected faults (fault_test.go), so the retry loop,
// the age rule and the error translation below run without a cluster. Every
// method blocks until its future is ready, as calling Get on the binding's
// future does.

// database is a FoundationDB database handle (fdb.Database).
type database interface {
	// CreateTransaction returns a new transaction.
	CreateTransaction() (transaction, error)
	// SetTransactionTimeout and SetTransactionRetryLimit are the database
	// options transaction_timeout and transaction_retry_limit: defaults for
	// every transaction created afterwards, kept across OnError.
	SetTransactionTimeout(ms int64) error
	SetTransactionRetryLimit(n int64) error
}

// transaction is one FoundationDB transaction (fdb.Transaction), reused
// across the attempts of a retry loop: OnError resets it.
type transaction interface {
	GetReadVersion() (int64, error)
	Get(key []byte, snapshot bool) ([]byte, error)
	GetRange(begin, end []byte, limit int, reverse, wantAll bool) rangeIterator
	Set(key, value []byte)
	Clear(key []byte)
	ClearRange(begin, end []byte)
	Add(key, param []byte)
	Max(key, param []byte)
	SetVersionstampedKey(key, value []byte)
	SetVersionstampedValue(key, value []byte)
	// Watch returns the watch's future; it is ready when the key's value
	// changes after the transaction commits.
	Watch(key []byte) watchFuture
	// GetVersionstamp must be called before Commit; its future is ready
	// after a successful commit that wrote.
	GetVersionstamp() stampFuture
	Commit() error
	GetCommittedVersion() (int64, error)
	// OnError waits out a retryable error and resets the transaction for
	// the next attempt, or returns the error when it is not retryable or
	// the retry limit is reached.
	OnError(e Error) error
	Cancel()
	// SetSystemAccess sets the options access_system_keys and lock_aware
	// for this attempt (OnError resets them).
	SetSystemAccess() error
}

type rangeIterator interface {
	Advance() bool
	Get() (key, value []byte, err error)
}

type watchFuture interface {
	Get() error
	Cancel()
}

type stampFuture interface {
	Get() ([]byte, error)
}

// Error is a FoundationDB error code as the seam reports it: binding.go
// turns the binding's fdb.Error into one.
type Error struct {
	Code    int
	Message string
}

func (e Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("FoundationDB error %d", e.Code)
	}
	return fmt.Sprintf("%s (%d)", e.Message, e.Code)
}
