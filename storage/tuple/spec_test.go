package tuple_test

import (
	"bytes"
	"math"
	"math/big"
	"testing"

	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tuple"
)

// x is shorthand for the bytes of a test vector.
func x(b ...byte) []byte { return b }

// specVectors are the test cases of FDB's design/tuple.md followed by the
// serialised forms of FDB's Java binding tests (TupleSerializationTest), and
// the large-integer encodings the spec describes for codes 0x0b and 0x1d.
var specVectors = []struct {
	name string
	t    tuple.Tuple
	want []byte
}{
	// design/tuple.md
	{"spec byte string", tuple.Tuple{[]byte("foo\x00bar")}, []byte("\x01foo\x00\xffbar\x00")},
	{"spec unicode string", tuple.Tuple{"F\u00d4O\u0000bar"}, []byte("\x02F\xc3\x94O\x00\xffbar\x00")},
	{"spec nested tuple", tuple.Tuple{tuple.Tuple{[]byte("foo\x00bar"), nil, tuple.Tuple{}}},
		[]byte("\x05\x01foo\x00\xffbar\x00\x00\xff\x05\x00\x00")},
	{"spec integer", tuple.Tuple{-5551212}, []byte("\x11\xabK\x93")},
	{"spec -1", tuple.Tuple{-1}, x(0x13, 0xfe)},
	{"spec float", tuple.Tuple{float32(-42)}, x(0x20, 0x3d, 0xd7, 0xff, 0xff)},
	{"spec empty nested tuple", tuple.Tuple{tuple.Tuple{}}, x(0x05, 0x00)},
	{"spec nested tuple of null", tuple.Tuple{tuple.Tuple{nil}}, x(0x05, 0x00, 0xff, 0x00)},

	// Java binding, TupleSerializationTest.serializedForms
	{"empty tuple", tuple.Tuple{}, x()},
	{"0", tuple.Tuple{0}, x(0x14)},
	{"big 0", tuple.Tuple{big.NewInt(0)}, x(0x14)},
	{"1", tuple.Tuple{1}, x(0x15, 0x01)},
	{"big 1", tuple.Tuple{big.NewInt(1)}, x(0x15, 0x01)},
	{"big -1", tuple.Tuple{big.NewInt(-1)}, x(0x13, 0xfe)},
	{"255", tuple.Tuple{255}, x(0x15, 0xff)},
	{"-255", tuple.Tuple{-255}, x(0x13, 0x00)},
	{"256", tuple.Tuple{256}, x(0x16, 0x01, 0x00)},
	{"-256", tuple.Tuple{-256}, x(0x12, 0xfe, 0xff)},
	{"65536", tuple.Tuple{65536}, x(0x17, 0x01, 0x00, 0x00)},
	{"-65536", tuple.Tuple{-65536}, x(0x11, 0xfe, 0xff, 0xff)},
	{"max int64", tuple.Tuple{int64(math.MaxInt64)}, x(0x1c, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
	{"big max int64", tuple.Tuple{big.NewInt(math.MaxInt64)}, x(0x1c, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
	{"max int64 + 1", tuple.Tuple{uint64(math.MaxInt64 + 1)}, x(0x1c, 0x80, 0, 0, 0, 0, 0, 0, 0)},
	{"big max int64 + 1", tuple.Tuple{pow2(63, 0)}, x(0x1c, 0x80, 0, 0, 0, 0, 0, 0, 0)},
	{"max uint64", tuple.Tuple{uint64(math.MaxUint64)}, x(0x1c, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
	{"big 2^64-1", tuple.Tuple{pow2(64, -1)}, x(0x1c, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
	{"2^64", tuple.Tuple{pow2(64, 0)}, x(0x1d, 0x09, 0x01, 0, 0, 0, 0, 0, 0, 0, 0)},
	{"-(2^32-1)", tuple.Tuple{-(int64(1)<<32 - 1)}, x(0x10, 0, 0, 0, 0)},
	{"big -(2^32-1)", tuple.Tuple{neg(pow2(32, -1))}, x(0x10, 0, 0, 0, 0)},
	{"min int64 + 2", tuple.Tuple{int64(math.MinInt64 + 2)}, x(0x0c, 0x80, 0, 0, 0, 0, 0, 0, 0x01)},
	{"min int64 + 1", tuple.Tuple{int64(math.MinInt64 + 1)}, x(0x0c, 0x80, 0, 0, 0, 0, 0, 0, 0)},
	{"big min int64 + 1", tuple.Tuple{big.NewInt(math.MinInt64 + 1)}, x(0x0c, 0x80, 0, 0, 0, 0, 0, 0, 0)},
	{"min int64", tuple.Tuple{int64(math.MinInt64)}, x(0x0c, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
	{"big min int64", tuple.Tuple{big.NewInt(math.MinInt64)}, x(0x0c, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
	{"min int64 - 1", tuple.Tuple{neg(pow2(63, 1))}, x(0x0c, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe)},
	{"-(2^64-1)", tuple.Tuple{neg(pow2(64, -1))}, x(0x0c, 0, 0, 0, 0, 0, 0, 0, 0)},
	{"3.14f", tuple.Tuple{float32(3.14)}, x(0x20, 0xc0, 0x48, 0xf5, 0xc3)},
	{"-3.14f", tuple.Tuple{float32(-3.14)}, x(0x20, 0x3f, 0xb7, 0x0a, 0x3c)},
	{"3.14", tuple.Tuple{3.14}, x(0x21, 0xc0, 0x09, 0x1e, 0xb8, 0x51, 0xeb, 0x85, 0x1f)},
	{"-3.14", tuple.Tuple{-3.14}, x(0x21, 0x3f, 0xf6, 0xe1, 0x47, 0xae, 0x14, 0x7a, 0xe0)},
	{"0.0f", tuple.Tuple{float32(0)}, x(0x20, 0x80, 0, 0, 0)},
	{"-0.0f", tuple.Tuple{float32(math.Copysign(0, -1))}, x(0x20, 0x7f, 0xff, 0xff, 0xff)},
	{"0.0", tuple.Tuple{0.0}, x(0x21, 0x80, 0, 0, 0, 0, 0, 0, 0)},
	{"-0.0", tuple.Tuple{math.Copysign(0, -1)}, x(0x21, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
	{"+inf f", tuple.Tuple{float32(math.Inf(1))}, x(0x20, 0xff, 0x80, 0, 0)},
	{"-inf f", tuple.Tuple{float32(math.Inf(-1))}, x(0x20, 0x00, 0x7f, 0xff, 0xff)},
	{"+inf", tuple.Tuple{math.Inf(1)}, x(0x21, 0xff, 0xf0, 0, 0, 0, 0, 0, 0)},
	{"-inf", tuple.Tuple{math.Inf(-1)}, x(0x21, 0x00, 0x0f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
	{"NaN f 0x7fffffff", tuple.Tuple{math.Float32frombits(0x7fffffff)}, x(0x20, 0xff, 0xff, 0xff, 0xff)},
	{"NaN 0x7fff…", tuple.Tuple{math.Float64frombits(math.MaxInt64)}, x(0x21, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
	{"NaN f 0xffffffff", tuple.Tuple{math.Float32frombits(0xffffffff)}, x(0x20, 0, 0, 0, 0)},
	{"NaN 0xffff…", tuple.Tuple{math.Float64frombits(math.MaxUint64)}, x(0x21, 0, 0, 0, 0, 0, 0, 0, 0)},
	{"empty bytes", tuple.Tuple{[]byte{}}, x(0x01, 0x00)},
	{"nil bytes", tuple.Tuple{[]byte(nil)}, x(0x01, 0x00)},
	{"bytes", tuple.Tuple{[]byte{1, 2, 3}}, x(0x01, 0x01, 0x02, 0x03, 0x00)},
	{"bytes with nulls", tuple.Tuple{[]byte{0, 0, 0, 4}}, x(0x01, 0x00, 0xff, 0x00, 0xff, 0x00, 0xff, 0x04, 0x00)},
	{"empty string", tuple.Tuple{""}, x(0x02, 0x00)},
	{"hello", tuple.Tuple{"hello"}, []byte("\x02hello\x00")},
	{"chinese", tuple.Tuple{"\u4e2d\u6587"}, x(0x02, 0xe4, 0xb8, 0xad, 0xe6, 0x96, 0x87, 0x00)},
	{"greek", tuple.Tuple{"\u03bc\u03ac\u03b8\u03b7\u03bc\u03b1"},
		x(0x02, 0xce, 0xbc, 0xce, 0xac, 0xce, 0xb8, 0xce, 0xb7, 0xce, 0xbc, 0xce, 0xb1, 0x00)},
	{"fire emoji", tuple.Tuple{"\U0001f525"}, x(0x02, 0xf0, 0x9f, 0x94, 0xa5, 0x00)},
	{"bagel emoji", tuple.Tuple{"\U0001f96f"}, x(0x02, 0xf0, 0x9f, 0xa5, 0xaf, 0x00)},
	{"max code point", tuple.Tuple{"\U0010ffff"}, x(0x02, 0xf4, 0x8f, 0xbf, 0xbf, 0x00)},
	{"nested (null, hello)", tuple.Tuple{tuple.Tuple{nil, "hello"}}, []byte("\x05\x00\xff\x02hello\x00\x00")},
	{"nested (null, hell\\0)", tuple.Tuple{tuple.Tuple{nil, "hell\x00"}}, []byte("\x05\x00\xff\x02hell\x00\xff\x00\x00")},
	{"(null) then hello", tuple.Tuple{tuple.Tuple{nil}, "hello"}, []byte("\x05\x00\xff\x00\x02hello\x00")},
	{"(null) hello bytes bytes", tuple.Tuple{tuple.Tuple{nil}, "hello", []byte{1, 0}, []byte{}},
		[]byte("\x05\x00\xff\x00\x02hello\x00\x01\x01\x00\xff\x00\x01\x00")},
	{"uuid", tuple.Tuple{tuple.UUID{0xff, 0xff, 0xff, 0xff, 0xba, 0x5e, 0xba, 0x11, 0, 0, 0, 0, 0x5c, 0xa1, 0xab, 0x1e}},
		x(0x30, 0xff, 0xff, 0xff, 0xff, 0xba, 0x5e, 0xba, 0x11, 0, 0, 0, 0, 0x5c, 0xa1, 0xab, 0x1e)},
	{"false", tuple.Tuple{false}, x(0x26)},
	{"true", tuple.Tuple{true}, x(0x27)},
	{"int16 0x3019", tuple.Tuple{int16(0x3019)}, x(0x16, 0x30, 0x19)},
	{"byte 3", tuple.Tuple{byte(3)}, x(0x15, 0x03)},
	{"versionstamp", tuple.Tuple{kv.NewVersionstamp([10]byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x01, 0x02, 0x03}, 0)},
		x(0x33, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x01, 0x02, 0x03, 0x00, 0x00)},
	{"versionstamp user 657", tuple.Tuple{kv.NewVersionstamp([10]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 657)},
		x(0x33, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0x02, 0x91)},

	// Integers of 9 to 255 bytes (design/tuple.md, codes 0x0b and 0x1d).
	{"-2^64", tuple.Tuple{neg(pow2(64, 0))}, cat(x(0x0b, 0x09^0xff, 0xfe), rep(0xff, 8))},
	{"-(2^64+1)", tuple.Tuple{neg(pow2(64, 1))}, cat(x(0x0b, 0x09^0xff, 0xfe), rep(0xff, 7), x(0xfe))},
	{"2^2040-1", tuple.Tuple{pow2(2040, -1)}, cat(x(0x1d, 0xff), rep(0xff, 255))},
	{"-(2^2040-1)", tuple.Tuple{neg(pow2(2040, -1))}, cat(x(0x0b, 0x00), rep(0x00, 255))},
	{"2^72", tuple.Tuple{pow2(72, 0)}, cat(x(0x1d, 0x0a, 0x01), rep(0, 9))},
}

func TestPackSpecVectors(t *testing.T) {
	for _, tc := range specVectors {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.t.Pack()
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("Pack(%v)\n got % x\nwant % x", tc.t, got, tc.want)
			}
			back, err := tuple.Unpack(tc.want)
			if err != nil {
				t.Fatalf("Unpack(% x): %v", tc.want, err)
			}
			if !equalTuple(back, tc.t) {
				t.Fatalf("Unpack(% x) = %v, want %v", tc.want, back, tc.t)
			}
		})
	}
}

// TestAppendersMatchPack checks every typed appender against Pack of the
// one-element tuple, over every spec vector it can express.
func TestAppendersMatchPack(t *testing.T) {
	prefix := []byte("prefix")
	for _, tc := range specVectors {
		if len(tc.t) != 1 {
			continue
		}
		var got []byte
		pre := append([]byte{}, prefix...)
		switch e := tc.t[0].(type) {
		case []byte:
			got = tuple.AppendBytes(pre, e)
		case string:
			got = tuple.AppendString(pre, e)
		case int:
			got = tuple.AppendInt(pre, int64(e))
		case int64:
			got = tuple.AppendInt(pre, e)
		case uint64:
			got = tuple.AppendUint(pre, e)
		case float32:
			got = tuple.AppendFloat32(pre, e)
		case float64:
			got = tuple.AppendFloat64(pre, e)
		case bool:
			got = tuple.AppendBool(pre, e)
		case tuple.UUID:
			got = tuple.AppendUUID(pre, e)
		case kv.Versionstamp:
			got = tuple.AppendVersionstamp(pre, e)
		default:
			continue
		}
		if want := append(append([]byte{}, prefix...), tc.want...); !bytes.Equal(got, want) {
			t.Errorf("%s: appender wrote % x, want % x", tc.name, got, want)
		}
	}
	if got := tuple.AppendNil(nil); !bytes.Equal(got, (tuple.Tuple{nil}).Pack()) {
		t.Errorf("AppendNil wrote % x", got)
	}
}
