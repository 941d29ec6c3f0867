package keyspace

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tuple"
)

// Subspace is the set of keys that start with one packed-tuple prefix and
// continue with at least one more tuple element, as FDB's subspace layer
// defines it. Its zero value has the empty prefix: every key but the empty
// key and those from 0xff (FDB's system keys). A Subspace is immutable:
// methods never write to its prefix.
//
// Its range is [prefix+0x00, prefix+0xff), as in FDB's subspace layer, not
// kv.PrefixRange(prefix). No tuple element starts with 0xff, but a packed
// string continues with 0x00 0xff where it holds a 0x00: tenant "a\x00b"'s
// keys start with tenant "a"'s prefix followed by 0xff, inside
// kv.PrefixRange of "a"'s prefix and outside "a"'s subspace. Contains agrees
// with Range.
type Subspace struct {
	prefix []byte
}

// NewSubspace returns the subspace of a raw prefix (copied). Prefixes
// built from tuples come from Root, Sub and the keyspace's builders.
func NewSubspace(prefix []byte) Subspace {
	return Subspace{prefix: bytes.Clone(prefix)}
}

// Bytes returns a copy of the prefix.
func (s Subspace) Bytes() []byte { return bytes.Clone(s.prefix) }

// Sub returns the subspace of s extended by elems. Like tuple.Tuple.Pack it
// panics only on a programming error: an element of an unsupported type, an
// incomplete versionstamp or an integer wider than 255 bytes.
func (s Subspace) Sub(elems ...tuple.Element) Subspace {
	return Subspace{prefix: s.Pack(elems)}
}

// Pack returns the key of t inside s: the prefix followed by the packed
// tuple. It panics where tuple.Tuple.Pack does; for a tuple built from
// data, t.Append(s.Bytes()) returns the error instead.
func (s Subspace) Pack(t tuple.Tuple) []byte {
	key, err := t.Append(s.Bytes())
	if err != nil {
		panic(err)
	}
	return key
}

// PackWithVersionstamp returns the template and offset of a versionstamped
// key inside s for kv.Tx.SetVersionstampedKey; t must hold exactly one
// incomplete versionstamp.
func (s Subspace) PackWithVersionstamp(t tuple.Tuple) (template []byte, offset int, err error) {
	return t.PackWithVersionstamp(s.prefix)
}

// ErrOutsideSubspace: Subspace.Unpack was given a key of another subspace.
var ErrOutsideSubspace = errors.New("key outside the subspace")

// Unpack returns the tuple that follows the prefix in key. It returns an
// error wrapping ErrOutsideSubspace when key is not in s, and one wrapping
// tuple.ErrMalformed when what follows is not a packed tuple.
func (s Subspace) Unpack(key []byte) (tuple.Tuple, error) {
	if !s.Contains(key) {
		return nil, fmt.Errorf("keyspace: %w: key %s, subspace %s", ErrOutsideSubspace, kv.DisplayKey(key), s)
	}
	return tuple.Unpack(key[len(s.prefix):])
}

// Range returns the bounds [begin, end) of every key in s, for
// kv.ReadTx.GetRange and kv.Tx.ClearRange.
func (s Subspace) Range() (begin, end []byte) {
	begin = make([]byte, len(s.prefix)+1)
	copy(begin, s.prefix)
	end = bytes.Clone(begin)
	end[len(s.prefix)] = 0xff
	return begin, end
}

// Contains reports whether key is in s, that is within Range.
func (s Subspace) Contains(key []byte) bool {
	return len(key) > len(s.prefix) && bytes.HasPrefix(key, s.prefix) && key[len(s.prefix)] != 0xff
}

// String renders the prefix as a tuple when it is one, else as bytes.
func (s Subspace) String() string {
	if t, err := tuple.Unpack(s.prefix); err == nil {
		return t.String()
	}
	return kv.DisplayKey(s.prefix)
}

// key returns a copy of the prefix with room for extra more bytes, the
// start of every key the builders append to.
func (s Subspace) key(extra int) []byte {
	k := make([]byte, len(s.prefix), len(s.prefix)+extra)
	copy(k, s.prefix)
	return k
}

// appendStrings returns a new key: the prefix followed by string elements,
// with room for extra more bytes. It cannot fail.
func (s Subspace) appendStrings(extra int, elems ...string) []byte {
	n := extra
	for _, e := range elems {
		n += len(e) + 2
	}
	k := s.key(n)
	for _, e := range elems {
		k = tuple.AppendString(k, e)
	}
	return k
}

// sub returns the subspace of s extended by string elements.
func (s Subspace) sub(elems ...string) Subspace {
	return Subspace{prefix: s.appendStrings(0, elems...)}
}

// strings returns the key of string elements inside s.
func (s Subspace) strings(elems ...string) []byte { return s.appendStrings(0, elems...) }

// stamped returns the key of string elements followed by a versionstamp
// inside s, and the offset of the stamp's 10 commit bytes.
func (s Subspace) stamped(v kv.Versionstamp, elems ...string) (key []byte, offset int) {
	k := s.appendStrings(1+len(v), elems...)
	return tuple.AppendVersionstamp(k, v), len(k) + 1
}
