//go:build fdb

package fdb

import (
	"errors"

	fdbapi "github.com/apple/foundationdb/bindings/go/src/fdb"
)

// The seam (seam.go) implemented with the official binding. Each method
// waits on the binding's future, and every fdb.Error becomes an Error.

type bindingDB struct{ db fdbapi.Database }

func (d bindingDB) CreateTransaction() (transaction, error) {
	tr, err := d.db.CreateTransaction()
	if err != nil {
		return nil, fromBinding(err)
	}
	return bindingTx{tr}, nil
}

func (d bindingDB) SetTransactionTimeout(ms int64) error {
	return fromBinding(d.db.Options().SetTransactionTimeout(ms))
}

func (d bindingDB) SetTransactionRetryLimit(n int64) error {
	return fromBinding(d.db.Options().SetTransactionRetryLimit(n))
}

type bindingTx struct{ tr fdbapi.Transaction }

func (b bindingTx) GetReadVersion() (int64, error) {
	v, err := b.tr.GetReadVersion().Get()
	return v, fromBinding(err)
}

func (b bindingTx) Get(key []byte, snapshot bool) ([]byte, error) {
	var f fdbapi.FutureByteSlice
	if snapshot {
		f = b.tr.Snapshot().Get(fdbapi.Key(key))
	} else {
		f = b.tr.Get(fdbapi.Key(key))
	}
	v, err := f.Get()
	return v, fromBinding(err)
}

func (b bindingTx) GetRange(begin, end []byte, limit int, reverse, wantAll bool) rangeIterator {
	// A caller that set a limit will usually read all of it: ask for it in
	// as few batches as possible. Without one the caller may stop at any
	// point: start small and grow, as FoundationDB's iterator mode does.
	mode := fdbapi.StreamingModeIterator
	if wantAll {
		mode = fdbapi.StreamingModeWantAll
	}
	rr := b.tr.GetRange(fdbapi.KeyRange{Begin: fdbapi.Key(begin), End: fdbapi.Key(end)},
		fdbapi.RangeOptions{Limit: limit, Mode: mode, Reverse: reverse})
	return bindingRange{rr.Iterator()}
}

func (b bindingTx) Set(key, value []byte) { b.tr.Set(fdbapi.Key(key), value) }
func (b bindingTx) Clear(key []byte)      { b.tr.Clear(fdbapi.Key(key)) }
func (b bindingTx) ClearRange(begin, end []byte) {
	b.tr.ClearRange(fdbapi.KeyRange{Begin: fdbapi.Key(begin), End: fdbapi.Key(end)})
}
func (b bindingTx) Add(key, param []byte) { b.tr.Add(fdbapi.Key(key), param) }
func (b bindingTx) Max(key, param []byte) { b.tr.Max(fdbapi.Key(key), param) }
func (b bindingTx) SetVersionstampedKey(key, value []byte) {
	b.tr.SetVersionstampedKey(fdbapi.Key(key), value)
}
func (b bindingTx) SetVersionstampedValue(key, value []byte) {
	b.tr.SetVersionstampedValue(fdbapi.Key(key), value)
}
func (b bindingTx) Watch(key []byte) watchFuture { return bindingWatch{b.tr.Watch(fdbapi.Key(key))} }
func (b bindingTx) GetVersionstamp() stampFuture { return bindingStamp{b.tr.GetVersionstamp()} }
func (b bindingTx) Commit() error                { return fromBinding(b.tr.Commit().Get()) }
func (b bindingTx) GetCommittedVersion() (int64, error) {
	v, err := b.tr.GetCommittedVersion()
	return v, fromBinding(err)
}
func (b bindingTx) OnError(e Error) error {
	return fromBinding(b.tr.OnError(fdbapi.Error{Code: e.Code}).Get())
}
func (b bindingTx) Cancel() { b.tr.Cancel() }
func (b bindingTx) SetSystemAccess() error {
	if err := b.tr.Options().SetAccessSystemKeys(); err != nil {
		return fromBinding(err)
	}
	return fromBinding(b.tr.Options().SetLockAware())
}

type bindingRange struct{ it *fdbapi.RangeIterator }

func (r bindingRange) Advance() bool { return r.it.Advance() }

// Get returns the pair; the binding copies keys and values out of
// FoundationDB's memory, so the slices are the caller's.
func (r bindingRange) Get() (key, value []byte, err error) {
	kv, err := r.it.Get()
	if err != nil {
		return nil, nil, fromBinding(err)
	}
	return []byte(kv.Key), kv.Value, nil
}

type bindingWatch struct{ f fdbapi.FutureNil }

func (w bindingWatch) Get() error { return fromBinding(w.f.Get()) }
func (w bindingWatch) Cancel()    { w.f.Cancel() }

type bindingStamp struct{ f fdbapi.FutureKey }

func (s bindingStamp) Get() ([]byte, error) {
	k, err := s.f.Get()
	return []byte(k), fromBinding(err)
}

// fromBinding turns the binding's fdb.Error into the seam's Error and
// passes other errors (and nil) unchanged.
func fromBinding(err error) error {
	var fe fdbapi.Error
	if errors.As(err, &fe) {
		return Error{Code: fe.Code, Message: fe.Error()}
	}
	return err
}
