package kv

import "encoding/binary"

// PrefixRange returns the range [begin, end) of every key that starts with
// prefix. end is nil, meaning the end of the keyspace, when no key greater
// than every key with the prefix exists (an empty prefix, or one of only
// 0xff bytes).
func PrefixRange(prefix []byte) (begin, end []byte) {
	begin = append([]byte(nil), prefix...)
	return begin, PrefixEnd(prefix)
}

// PrefixEnd returns the first key after every key that starts with prefix
// (FoundationDB's strinc), or nil when there is none.
func PrefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// KeyAfter returns the first key after k: k followed by a zero byte.
func KeyAfter(k []byte) []byte {
	out := make([]byte, len(k)+1)
	copy(out, k)
	return out
}

// AddLE applies FoundationDB's ADD with an 8-byte little-endian operand to
// an existing value (nil when absent): the value is zero-extended or
// truncated to 8 bytes and the sum wraps.
func AddLE(existing []byte, delta int64) []byte {
	var buf [8]byte
	copy(buf[:], existing)
	sum := binary.LittleEndian.Uint64(buf[:]) + uint64(delta)
	out := make([]byte, 8)
	binary.LittleEndian.PutUint64(out, sum)
	return out
}

// MaxLE applies FoundationDB's MAX to an existing value (nil when absent)
// and returns the value to store: param when the existing value is absent
// or empty, or when param is empty; otherwise the larger of the two read
// as little-endian unsigned integers of param's length (the existing value
// zero-extended or truncated to it), so the result always has param's
// length. The result never aliases its arguments.
func MaxLE(existing, param []byte) []byte {
	out := make([]byte, len(param))
	if len(existing) == 0 || len(param) == 0 {
		copy(out, param)
		return out
	}
	i := len(param) - 1
	for ; i >= len(existing); i-- {
		if param[i] != 0 {
			copy(out, param)
			return out
		}
	}
	for ; i >= 0; i-- {
		if param[i] != existing[i] {
			if param[i] > existing[i] {
				copy(out, param)
			} else {
				copy(out, existing) // truncated or zero-extended to len(param)
			}
			return out
		}
	}
	copy(out, param)
	return out
}

// Int64 decodes a little-endian counter written by Add (zero when absent).
func Int64(v []byte) int64 {
	var buf [8]byte
	copy(buf[:], v)
	return int64(binary.LittleEndian.Uint64(buf[:]))
}

// EncodeInt64 encodes n as Add stores it.
func EncodeInt64(n int64) []byte {
	out := make([]byte, 8)
	binary.LittleEndian.PutUint64(out, uint64(n))
	return out
}

// Collect drains an iterator into a slice.
func Collect(it Iterator) ([]KeyValue, error) {
	var out []KeyValue
	for it.Next() {
		out = append(out, it.KeyValue())
	}
	return out, it.Err()
}

// ErrIterator is an Iterator that yields nothing and reports err; backends
// return it for a range they refuse before reading.
type ErrIterator struct{ E error }

func (ErrIterator) Next() bool         { return false }
func (ErrIterator) KeyValue() KeyValue { return KeyValue{} }
func (e ErrIterator) Err() error       { return e.E }
