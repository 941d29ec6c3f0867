package tuple_test

import (
	"bytes"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tuple"
)

// TestPackedOrder checks that packed tuples compare, as bytes, like the
// values they hold: each list is in ascending value order, and every pair
// must pack in that order.
func TestPackedOrder(t *testing.T) {
	stamp := func(first byte, user uint16) kv.Versionstamp {
		return kv.NewVersionstamp([10]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, first}, user)
	}
	lists := []struct {
		name   string
		tuples []tuple.Tuple
	}{
		{"integers across size boundaries", singles(
			neg(pow2(2040, -1)), neg(pow2(72, 0)), neg(pow2(64, 1)), neg(pow2(64, 0)), neg(pow2(64, -1)),
			neg(pow2(63, 1)), int64(math.MinInt64), int64(math.MinInt64+1), -(int64(1) << 56), -(int64(1)<<56 - 1),
			-(int64(1) << 32), -(int64(1)<<32 - 1), -65537, -65536, -65535, -257, -256, -255, -2, -1,
			0, 1, 2, 254, 255, 256, 257, 65535, 65536, int64(1)<<32-1, int64(1)<<32, int64(math.MaxInt64),
			uint64(math.MaxInt64+1), uint64(math.MaxUint64), pow2(64, 0), pow2(64, 1), pow2(72, 0), pow2(2040, -1),
		)},
		{"strings with nulls", singles(
			"", "\x00", "\x00\x00", "\x00\x01", "\x00\xff", "\x01", "a", "a\x00", "a\x00\x00", "a\x00\x01",
			"a\x01", "ab", "b", "\u00d4", "\U0010ffff",
		)},
		{"byte strings with nulls", singles(
			[]byte{}, []byte{0}, []byte{0, 0}, []byte{0, 0xff}, []byte{1}, []byte{0xfe}, []byte{0xff},
			[]byte{0xff, 0}, []byte{0xff, 0xff},
		)},
		{"nested tuples with nulls", singles(
			tuple.Tuple{}, tuple.Tuple{nil}, tuple.Tuple{nil, nil}, tuple.Tuple{nil, []byte{}},
			tuple.Tuple{nil, 0}, tuple.Tuple{[]byte{}}, tuple.Tuple{[]byte{0}}, tuple.Tuple{"a"},
			tuple.Tuple{"a", nil}, tuple.Tuple{"a", nil, nil}, tuple.Tuple{"a", tuple.Tuple{}},
			tuple.Tuple{"a", tuple.Tuple{nil}}, tuple.Tuple{"a", 0}, tuple.Tuple{"a\x00"}, tuple.Tuple{"b"},
			tuple.Tuple{tuple.Tuple{}}, tuple.Tuple{0},
		)},
		{"tuple prefixes and lengths", []tuple.Tuple{
			{}, {nil}, {nil, nil}, {nil, "a"}, {"a"}, {"a", nil}, {"a", "b"}, {"a", "b", 1},
			{"a", "b\x00"}, {"a", "c"}, {"a\x00"}, {"a\x00", "b"}, {"b"},
		}},
		{"doubles", singles(
			math.Float64frombits(math.MaxUint64), math.Inf(-1), -math.MaxFloat64, -1.5, -1.0,
			-math.SmallestNonzeroFloat64, math.Copysign(0, -1), 0.0, math.SmallestNonzeroFloat64, 1.0, 1.5,
			math.MaxFloat64, math.Inf(1), math.NaN(),
		)},
		{"floats", singles(
			float32(math.Inf(-1)), float32(-math.MaxFloat32), float32(-1), float32(math.Copysign(0, -1)),
			float32(0), float32(math.SmallestNonzeroFloat32), float32(1), float32(math.Inf(1)),
		)},
		{"type codes", singles(
			nil, []byte{0xff}, "\xff", tuple.Tuple{"z"}, neg(pow2(2040, -1)), pow2(2040, -1), float32(math.Inf(1)),
			math.Inf(1), false, true, tuple.UUID{0xff}, stamp(0, 0),
		)},
		{"uuids and versionstamps", singles(
			tuple.UUID{}, tuple.UUID{15: 1}, tuple.UUID{0: 1}, tuple.UUID{0: 0xff, 15: 0xff},
			stamp(0, 0), stamp(0, 1), stamp(0, 0xffff), stamp(1, 0), kv.NewVersionstamp([10]byte{0: 1}, 0),
		)},
	}
	for _, l := range lists {
		t.Run(l.name, func(t *testing.T) {
			packed := make([][]byte, len(l.tuples))
			for i, tu := range l.tuples {
				packed[i] = tu.Pack()
			}
			for i := range packed {
				for j := i + 1; j < len(packed); j++ {
					if bytes.Compare(packed[i], packed[j]) >= 0 {
						t.Errorf("%v packs to % x, not below %v at % x", l.tuples[i], packed[i], l.tuples[j], packed[j])
					}
				}
			}
		})
	}
}

// singles wraps each value in a one-element tuple.
func singles(es ...tuple.Element) []tuple.Tuple {
	out := make([]tuple.Tuple, len(es))
	for i, e := range es {
		out[i] = tuple.Tuple{e}
	}
	return out
}

// TestIntegerOrderRandom compares random integers of every magnitude, as
// int64 and as big.Int, with their packed order.
func TestIntegerOrderRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randInt := func() *big.Int {
		mag := make([]byte, rng.IntN(26)) // 0 to 25 bytes: both sides of the 8-byte boundary
		for i := range mag {
			mag[i] = byte(rng.Uint32())
		}
		if len(mag) > 0 {
			mag[0] >>= rng.IntN(9) // vary the top bits too
		}
		v := new(big.Int).SetBytes(mag)
		if rng.IntN(2) == 0 {
			v.Neg(v)
		}
		return v
	}
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for range n {
		a, b := randInt(), randInt()
		pa, pb := tuple.Tuple{a}.Pack(), tuple.Tuple{b}.Pack()
		if got, want := bytes.Compare(pa, pb), a.Cmp(b); got != want {
			t.Fatalf("%v vs %v: bytes compare %d, values %d (% x, % x)", a, b, got, want, pa, pb)
		}
		i, j := rng.Int64()>>rng.IntN(64), rng.Int64()>>rng.IntN(64)
		pi, pj := tuple.Tuple{i}.Pack(), tuple.Tuple{j}.Pack()
		if got, want := bytes.Compare(pi, pj), cmpInt(i, j); got != want {
			t.Fatalf("%d vs %d: bytes compare %d, values %d", i, j, got, want)
		}
	}
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestStringOrderRandom compares random strings over a small alphabet rich
// in 0x00 and 0xff with their packed order.
func TestStringOrderRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte{0x00, 0x01, 0xfe, 0xff, 'a'}
	randString := func() string {
		var sb strings.Builder
		for range rng.IntN(6) {
			sb.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		return sb.String()
	}
	for range 5000 {
		a, b := randString(), randString()
		ta, tb := tuple.Tuple{a, "tail"}, tuple.Tuple{b, "tail"}
		if got, want := bytes.Compare(ta.Pack(), tb.Pack()), strings.Compare(a, b); got != want {
			t.Fatalf("%q vs %q: bytes compare %d, values %d", a, b, got, want)
		}
	}
}
