package fdb

import (
	"sync"

	"github.com/coditect/coditect/storage/kv"
)

// getManyParallel bounds the reads GetMany keeps in flight at once.
const getManyParallel = 64

// GetMany implements kv.ReadTx: the reads run concurrently, so a batch
// costs about one round trip to the storage servers instead of one per key.
// The seam's Get blocks until its future is ready, so each read waits in a
// goroutine of its own; the binding's Transaction "is safe for concurrent
// use by multiple goroutines" (its doc comment) and runs outstanding
// futures in parallel. Each read is a Get: it joins the read set, counts
// towards the size and, failing, fails the transaction.
func (t *tx) GetMany(keys [][]byte) ([][]byte, error) {
	out := make([][]byte, len(keys))
	errs := make([]error, len(keys))
	sem := make(chan struct{}, getManyParallel)
	var wg sync.WaitGroup
	for i, k := range keys {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i], errs[i] = t.Get(k)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// GetMany implements kv.ReadTx.
func (r readTx) GetMany(keys [][]byte) ([][]byte, error) { return r.t.GetMany(keys) }

// readFailed records a failed read, which fails the transaction (the kv
// contract's rule: FoundationDB's commit fails with the error of any read
// it served, and this applies the rule to the reads refused before they
// reach it), and returns err.
func (t *tx) readFailed(err error) error {
	if err == nil {
		return nil
	}
	t.mu.Lock()
	if !t.done && t.err == nil {
		t.err = err
	}
	t.mu.Unlock()
	return err
}

// countRead adds a read's conflict range to the transaction's size, as
// FoundationDB counts it. Past the limit a transaction that writes fails
// (here, or at its next write) instead of at the commit with
// transaction_too_large; one that only reads is not limited, as a
// read-only commit sends nothing.
func (t *tx) countRead(op string, key []byte, size int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done || t.err != nil {
		return
	}
	t.size += size
	if t.wrote && t.size > kv.MaxTransactionSize {
		t.err = &kv.LimitError{Err: kv.ErrTransactionTooLarge, Op: op, Key: key, Size: t.size, Limit: kv.MaxTransactionSize}
	}
}
