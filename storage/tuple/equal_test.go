package tuple_test

import (
	"bytes"
	"math"
	"math/big"

	"github.com/coditect/coditect/storage/tuple"
)

// equalTuple compares tuples by value: integers of any Go type by their
// mathematical value (Unpack normalises them to int64, uint64 or *big.Int),
// floats by their bits (so NaNs compare and -0 differs from 0), byte strings
// by content (nil equals empty).
func equalTuple(a, b tuple.Tuple) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !equalElement(a[i], b[i]) {
			return false
		}
	}
	return true
}

func equalElement(a, b tuple.Element) bool {
	if ai, ok := asBig(a); ok {
		bi, ok := asBig(b)
		return ok && ai.Cmp(bi) == 0
	}
	switch a := a.(type) {
	case nil:
		return b == nil
	case []byte:
		bb, ok := b.([]byte)
		return ok && bytes.Equal(a, bb)
	case float32:
		bf, ok := b.(float32)
		return ok && math.Float32bits(a) == math.Float32bits(bf)
	case float64:
		bf, ok := b.(float64)
		return ok && math.Float64bits(a) == math.Float64bits(bf)
	case tuple.Tuple:
		bt, ok := b.(tuple.Tuple)
		return ok && equalTuple(a, bt)
	default: // string, bool, tuple.UUID, kv.Versionstamp: comparable
		return a == b
	}
}

func asBig(e tuple.Element) (*big.Int, bool) {
	switch e := e.(type) {
	case int:
		return big.NewInt(int64(e)), true
	case int8:
		return big.NewInt(int64(e)), true
	case int16:
		return big.NewInt(int64(e)), true
	case int32:
		return big.NewInt(int64(e)), true
	case int64:
		return big.NewInt(e), true
	case uint:
		return new(big.Int).SetUint64(uint64(e)), true
	case uint8:
		return new(big.Int).SetUint64(uint64(e)), true
	case uint16:
		return new(big.Int).SetUint64(uint64(e)), true
	case uint32:
		return new(big.Int).SetUint64(uint64(e)), true
	case uint64:
		return new(big.Int).SetUint64(e), true
	case *big.Int:
		return e, e != nil
	}
	return nil, false
}

// pow2 returns 2^n + delta.
func pow2(n uint, delta int64) *big.Int {
	v := new(big.Int).Lsh(big.NewInt(1), n)
	return v.Add(v, big.NewInt(delta))
}

// neg returns -v.
func neg(v *big.Int) *big.Int { return new(big.Int).Neg(v) }

// rep returns n copies of b.
func rep(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

// cat concatenates byte slices.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
