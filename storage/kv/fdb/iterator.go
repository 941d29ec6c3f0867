package fdb

import (
	"bytes"
	"fmt"

	"github.com/coditect/coditect/storage/kv"
)

// iterator streams a range read: the binding's RangeIterator fetches the
// next batch when the current one is used up, and the prefix is taken off
// each key.
type iterator struct {
	t     *tx
	it    rangeIterator // nil once exhausted or failed
	begin []byte        // the caller's begin, for errors
	cur   kv.KeyValue
	err   error
}

// Next implements kv.Iterator.
func (i *iterator) Next() bool {
	if i.it == nil {
		return false
	}
	if err := i.t.usable(); err != nil {
		i.stop(err)
		return false
	}
	if !i.it.Advance() {
		i.it = nil
		return false
	}
	key, value, err := i.it.Get()
	if err != nil {
		i.stop(i.t.opErr("range", i.begin, err))
		return false
	}
	if !bytes.HasPrefix(key, i.t.s.prefix) {
		i.stop(fmt.Errorf("fdb: range %s: FoundationDB returned key %s outside the store's prefix",
			kv.DisplayKey(i.begin), kv.DisplayKey(key)))
		return false
	}
	// The binding copies keys and values out of FoundationDB's memory, so
	// the slices are the caller's.
	i.cur = kv.KeyValue{Key: key[len(i.t.s.prefix):], Value: value}
	if i.cur.Value == nil {
		i.cur.Value = []byte{}
	}
	return true
}

func (i *iterator) stop(err error) {
	i.err = i.t.readFailed(err)
	i.it = nil
	i.cur = kv.KeyValue{}
}

// KeyValue implements kv.Iterator.
func (i *iterator) KeyValue() kv.KeyValue { return i.cur }

// Err implements kv.Iterator.
func (i *iterator) Err() error { return i.err }
