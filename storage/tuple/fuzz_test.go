package tuple_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/big"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tuple"
)

// FuzzUnpack: Unpack never panics, and whatever it accepts is canonical:
// packing the result gives back the input bytes (through PackWithVersionstamp
// when the input holds an incomplete stamp), and unpacking those gives an
// equal tuple.
func FuzzUnpack(f *testing.F) {
	for _, v := range specVectors {
		f.Add(v.want)
	}
	f.Add([]byte("\x05\x05\x00\xff\x00\x00"))
	f.Add([]byte("\x01\x00\xff\x00"))
	f.Add(cat(x(0x33), rep(0xff, 10), x(0, 1)))
	f.Add(cat(x(0x0b, 0xf6), rep(0xfe, 9)))
	f.Fuzz(func(t *testing.T, b []byte) {
		tu, err := tuple.Unpack(b)
		if err != nil {
			if !errors.Is(err, tuple.ErrMalformed) {
				t.Fatalf("Unpack error %v does not wrap ErrMalformed", err)
			}
			return
		}
		packed, err := tu.Append(nil)
		if errors.Is(err, tuple.ErrIncompleteVersionstamp) {
			has, herr := tu.HasIncompleteVersionstamp()
			if !has {
				t.Fatalf("Append reported an incomplete stamp HasIncompleteVersionstamp misses in %v", tu)
			}
			if herr != nil {
				return // several placeholders: no template can hold them, nor Pack
			}
			var offset int
			packed, offset, err = tu.PackWithVersionstamp(nil)
			if err != nil {
				t.Fatalf("PackWithVersionstamp(%v): %v", tu, err)
			}
			if !bytes.Equal(packed[offset:offset+kv.StampSize], rep(0xff, kv.StampSize)) {
				t.Fatalf("offset %d misses the placeholder in % x", offset, packed)
			}
		} else if err != nil {
			t.Fatalf("Append(Unpack(% x) = %v): %v", b, tu, err)
		}
		if !bytes.Equal(packed, b) {
			t.Fatalf("Pack(Unpack(b)) = % x, want b = % x (tuple %v)", packed, b, tu)
		}
		again, err := tuple.Unpack(packed)
		if err != nil || !equalTuple(again, tu) {
			t.Fatalf("re-Unpack = %v, %v; want %v", again, err, tu)
		}
	})
}

// roundTripSeeds are buildTuple programs: every kind, nesting, and the
// integer boundaries (MinInt64, MaxUint64, ±(2^64-1) as big.Int).
var roundTripSeeds = [][]byte{
	{0, 1, 3, 'a', 0, 'b', 2, 2, 'x', 0, 11, 1, 12, 13},
	{4, 0x80, 1, 2, 3, 4, 5, 6, 7, 8, 5, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	{6, 40, 1, 0xff, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20},
	{11, 11, 0, 12, 12, 1, 1, 0, 13, 13, 9, 10, 3, 1, 2, 3},
	{3, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0},
	{10, 17, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 10, 16, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
}

// FuzzRoundTrip builds a tuple from the fuzzer's bytes (a small program of
// element kinds, nesting included) and checks decode(encode(t)) == t, and that
// encode is deterministic and agrees with the typed appenders.
func FuzzRoundTrip(f *testing.F) {
	for _, seed := range roundTripSeeds {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, program []byte) {
		tu := buildTuple(&fuzzReader{b: program})
		packed, err := tu.Append(nil)
		if err != nil {
			t.Fatalf("Append(%v): %v", tu, err)
		}
		if p2 := tu.Pack(); !bytes.Equal(p2, packed) {
			t.Fatalf("Pack and Append disagree: % x vs % x", p2, packed)
		}
		back, err := tuple.Unpack(packed)
		if err != nil {
			t.Fatalf("Unpack(Pack(%v)) = %v", tu, err)
		}
		if !equalTuple(back, tu) {
			t.Fatalf("Unpack(Pack(t)) = %v, want %v", back, tu)
		}
		// Element by element, the typed appenders write the same bytes.
		var manual []byte
		for _, e := range tu {
			manual = appendOne(t, manual, e)
		}
		if !bytes.Equal(manual, packed) {
			t.Fatalf("typed appenders wrote % x, Pack % x", manual, packed)
		}
	})
}

// FuzzOrder: packed (integer, string) pairs compare like their values.
func FuzzOrder(f *testing.F) {
	f.Add(int64(-1), int64(0), "a", "a\x00")
	f.Add(int64(math.MinInt64), int64(math.MaxInt64), "", "\x00")
	f.Add(int64(255), int64(256), "\x00\xff", "\x01")
	f.Fuzz(func(t *testing.T, a, b int64, s1, s2 string) {
		pa, pb := tuple.Tuple{a, s1, s2}.Pack(), tuple.Tuple{b, s2, s1}.Pack()
		want := cmpInt(a, b)
		if want == 0 {
			want = strings.Compare(s1, s2)
			if want == 0 {
				want = strings.Compare(s2, s1)
			}
		}
		if got := bytes.Compare(pa, pb); got != want {
			t.Fatalf("(%d, %q, %q) vs (%d, %q, %q): bytes compare %d, values %d", a, s1, s2, b, s2, s1, got, want)
		}
	})
}

// appendOne appends e with the typed appender for its type (nested tuples
// and other types through Tuple.Append).
func appendOne(t *testing.T, dst []byte, e tuple.Element) []byte {
	switch e := e.(type) {
	case nil:
		return tuple.AppendNil(dst)
	case []byte:
		return tuple.AppendBytes(dst, e)
	case string:
		return tuple.AppendString(dst, e)
	case int64:
		return tuple.AppendInt(dst, e)
	case uint64:
		return tuple.AppendUint(dst, e)
	case float32:
		return tuple.AppendFloat32(dst, e)
	case float64:
		return tuple.AppendFloat64(dst, e)
	case bool:
		return tuple.AppendBool(dst, e)
	case tuple.UUID:
		return tuple.AppendUUID(dst, e)
	case kv.Versionstamp:
		return tuple.AppendVersionstamp(dst, e)
	}
	out, err := tuple.Tuple{e}.Append(dst)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type fuzzReader struct {
	b     []byte
	depth int
}

func (r *fuzzReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *fuzzReader) bytes(n int) []byte {
	out := make([]byte, n)
	copy(out, r.b)
	r.b = r.b[min(n, len(r.b)):]
	return out
}

// buildTuple reads elements until the program ends or, inside a nested
// tuple, closes it (kind 13).
func buildTuple(r *fuzzReader) tuple.Tuple {
	t := tuple.Tuple{}
	for len(r.b) > 0 {
		switch kind := r.byte() % 14; kind {
		case 0:
			t = append(t, nil)
		case 1:
			t = append(t, r.bytes(int(r.byte()%16)))
		case 2:
			t = append(t, string(r.bytes(int(r.byte()%16))))
		case 3:
			t = append(t, int64(binary.BigEndian.Uint64(r.bytes(8)))>>(r.byte()%64))
		case 4:
			t = append(t, binary.BigEndian.Uint64(r.bytes(8))>>(r.byte()%64))
		case 5:
			t = append(t, math.Float32frombits(binary.BigEndian.Uint32(r.bytes(4))))
		case 6:
			t = append(t, math.Float64frombits(binary.BigEndian.Uint64(r.bytes(8))))
		case 7:
			t = append(t, r.byte()%2 == 0)
		case 8:
			t = append(t, tuple.UUID(r.bytes(16)))
		case 9:
			v := kv.Versionstamp(r.bytes(12))
			if !v.IsComplete() {
				v[0] = 0 // complete stamps only: Pack refuses placeholders
			}
			t = append(t, v)
		case 10:
			n := int(r.byte())
			neg := n&1 == 1
			v := new(big.Int).SetBytes(r.bytes(n / 2))
			if neg {
				v.Neg(v)
			}
			t = append(t, v)
		case 11:
			if r.depth < 32 {
				r.depth++
				t = append(t, buildTuple(r))
				r.depth--
			}
		case 12:
			t = append(t, int32(r.byte())-128) // a narrower Go integer type
		case 13:
			if r.depth > 0 {
				return t
			}
		}
	}
	return t
}
