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

var (
	stampA = kv.NewVersionstamp([10]byte{0, 0, 0, 1, 2, 3, 4, 5, 6, 7}, 9)
	uuidA  = tuple.UUID{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
)

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		t    tuple.Tuple
	}{
		{"empty", tuple.Tuple{}},
		{"every type", tuple.Tuple{nil, []byte("b\x00"), "s\x00", tuple.Tuple{nil, "n"}, -7, uint64(math.MaxUint64),
			pow2(100, 0), float32(1.5), -2.5, true, false, uuidA, stampA}},
		{"every Go integer type", tuple.Tuple{int(-1), int8(-8), int16(-16), int32(-32), int64(-64), uint(1), uint8(8),
			uint16(16), uint32(32), uint64(64)}},
		{"deep nesting", tuple.Tuple{tuple.Tuple{tuple.Tuple{tuple.Tuple{nil, tuple.Tuple{}}}, nil}, nil}},
		{"nulls everywhere", tuple.Tuple{nil, tuple.Tuple{nil, nil}, nil, tuple.Tuple{tuple.Tuple{nil}}}},
		{"audit key", tuple.Tuple{"coditect", "t", "acme", "audit", stampA}},
		{"invalid UTF-8 string kept as bytes", tuple.Tuple{"\xff\xfe\x00"}},
		{"NaN payloads", tuple.Tuple{math.Float32frombits(0x7fc00001), math.Float64frombits(0xfff8000000000001)}},
		{"big integers", tuple.Tuple{neg(pow2(63, 1)), neg(pow2(64, -1)), neg(pow2(64, 0)), pow2(64, -1), pow2(64, 0),
			neg(pow2(2040, -1)), pow2(2040, -1)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			packed := tc.t.Pack()
			back, err := tuple.Unpack(packed)
			if err != nil {
				t.Fatalf("Unpack(% x): %v", packed, err)
			}
			if !equalTuple(back, tc.t) {
				t.Fatalf("Unpack(Pack(%v)) = %v", tc.t, back)
			}
			if again := back.Pack(); !bytes.Equal(again, packed) {
				t.Fatalf("Pack(Unpack(b)) = % x, want % x", again, packed)
			}
		})
	}
}

func TestUnpackNormalisesIntegers(t *testing.T) {
	tests := []struct {
		in   tuple.Element
		want tuple.Element // with its Go type
	}{
		{int8(-3), int64(-3)},
		{uint16(7), int64(7)},
		{big.NewInt(5), int64(5)},
		{uint64(math.MaxInt64), int64(math.MaxInt64)},
		{uint64(math.MaxInt64 + 1), uint64(math.MaxInt64 + 1)},
		{pow2(64, -1), uint64(math.MaxUint64)},
		{int64(math.MinInt64), int64(math.MinInt64)},
	}
	for _, tc := range tests {
		back, err := tuple.Unpack(tuple.Tuple{tc.in}.Pack())
		if err != nil {
			t.Fatal(err)
		}
		if len(back) != 1 || back[0] != tc.want {
			t.Errorf("Unpack(Pack(%T %v)) = %T %v, want %T %v", tc.in, tc.in, back[0], back[0], tc.want, tc.want)
		}
	}
	for _, v := range []*big.Int{neg(pow2(63, 1)), pow2(64, 0), neg(pow2(64, 0))} {
		back, err := tuple.Unpack(tuple.Tuple{v}.Pack())
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := back[0].(*big.Int); !ok || got.Cmp(v) != 0 {
			t.Errorf("Unpack(Pack(%v)) = %T %v, want *big.Int", v, back[0], back[0])
		}
	}
}

func TestAppendErrors(t *testing.T) {
	tests := []struct {
		name string
		t    tuple.Tuple
		want error
	}{
		{"unsupported type", tuple.Tuple{"ok", struct{}{}}, tuple.ErrUnsupportedType},
		{"unsupported nested", tuple.Tuple{tuple.Tuple{[]string{"x"}}}, tuple.ErrUnsupportedType},
		{"slice of elements is not a Tuple", tuple.Tuple{[]tuple.Element{1}}, tuple.ErrUnsupportedType},
		{"big.Int by value", tuple.Tuple{*big.NewInt(1)}, tuple.ErrUnsupportedType},
		{"nil *big.Int", tuple.Tuple{(*big.Int)(nil)}, tuple.ErrUnsupportedType},
		{"integer of 256 bytes", tuple.Tuple{pow2(2040, 0)}, tuple.ErrIntegerTooLarge},
		{"negative integer of 256 bytes", tuple.Tuple{neg(pow2(2040, 0))}, tuple.ErrIntegerTooLarge},
		{"incomplete versionstamp", tuple.Tuple{"a", kv.IncompleteVersionstamp(1)}, tuple.ErrIncompleteVersionstamp},
		{"nested incomplete versionstamp", tuple.Tuple{tuple.Tuple{kv.IncompleteVersionstamp(0)}}, tuple.ErrIncompleteVersionstamp},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("prefix")
			got, err := tc.t.Append(dst)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Append error = %v, want %v", err, tc.want)
			}
			if !bytes.Equal(got, []byte("prefix")) {
				t.Errorf("Append returned % x on error, want dst unchanged", got)
			}
			func() {
				defer func() {
					r := recover()
					if e, ok := r.(error); !ok || !errors.Is(e, tc.want) {
						t.Errorf("Pack panicked with %v, want %v", r, tc.want)
					}
				}()
				tc.t.Pack()
			}()
		})
	}
}

func TestAppendOntoPrefix(t *testing.T) {
	prefix := tuple.Tuple{"coditect", "t"}.Pack()
	el := tuple.Tuple{"acme", "audit", stampA}
	want := tuple.Tuple{"coditect", "t", "acme", "audit", stampA}.Pack()
	got, err := el.Append(prefix)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Append = % x, %v; want % x", got, err, want)
	}
	buf := make([]byte, 0, 128)
	allocs := testing.AllocsPerRun(100, func() {
		buf = tuple.AppendVersionstamp(tuple.AppendString(tuple.AppendString(buf[:0], "acme"), "audit"), stampA)
		if _, err := el.Append(buf[:0]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("appending onto a buffer with room allocated %.1f times, want 0", allocs)
	}
}

func TestPackWithVersionstamp(t *testing.T) {
	incomplete := kv.IncompleteVersionstamp(0x0102)
	tests := []struct {
		name   string
		prefix []byte
		t      tuple.Tuple
	}{
		{"alone", nil, tuple.Tuple{incomplete}},
		{"after a prefix", []byte("\x02coditect\x00"), tuple.Tuple{"audit", incomplete}},
		{"before more elements", []byte{0xfe}, tuple.Tuple{"x", incomplete, "after", 7}},
		{"nested", []byte("p"), tuple.Tuple{"x", tuple.Tuple{nil, incomplete}, nil}},
		{"beside a complete stamp", nil, tuple.Tuple{stampA, incomplete}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prefixCopy := append([]byte(nil), tc.prefix...)
			template, offset, err := tc.t.PackWithVersionstamp(tc.prefix)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(tc.prefix, prefixCopy) {
				t.Errorf("prefix modified")
			}
			if !bytes.HasPrefix(template, tc.prefix) {
				t.Fatalf("template % x lacks prefix % x", template, tc.prefix)
			}
			if err := kv.CheckStampOffset(template, offset); err != nil {
				t.Fatal(err)
			}
			if template[offset-1] != 0x33 || !bytes.Equal(template[offset:offset+12], incomplete[:]) {
				t.Fatalf("offset %d does not point at the placeholder in % x", offset, template)
			}
			// Filling in the stamp as a commit does gives the packed tuple
			// with the stamp completed.
			commit := [10]byte{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}
			filled := append([]byte(nil), template...)
			copy(filled[offset:], commit[:])
			want := append(append([]byte(nil), tc.prefix...), replaceStamp(tc.t, kv.NewVersionstamp(commit, 0x0102)).Pack()...)
			if !bytes.Equal(filled, want) {
				t.Fatalf("filled template % x, want % x", filled, want)
			}
			has, err := tc.t.HasIncompleteVersionstamp()
			if !has || err != nil {
				t.Errorf("HasIncompleteVersionstamp = %v, %v", has, err)
			}
		})
	}
}

// replaceStamp returns t with every incomplete versionstamp replaced by v.
func replaceStamp(t tuple.Tuple, v kv.Versionstamp) tuple.Tuple {
	out := make(tuple.Tuple, len(t))
	for i, e := range t {
		switch e := e.(type) {
		case kv.Versionstamp:
			if !e.IsComplete() {
				out[i] = v
				continue
			}
		case tuple.Tuple:
			out[i] = replaceStamp(e, v)
			continue
		}
		out[i] = e
	}
	return out
}

func TestPackWithVersionstampErrors(t *testing.T) {
	inc := kv.IncompleteVersionstamp
	tests := []struct {
		name    string
		t       tuple.Tuple
		want    error
		has     bool
		hasErrs bool
	}{
		{"none", tuple.Tuple{"a", stampA}, tuple.ErrVersionstampCount, false, false},
		{"two", tuple.Tuple{inc(1), inc(2)}, tuple.ErrVersionstampCount, true, true},
		{"two, one nested", tuple.Tuple{tuple.Tuple{inc(1)}, "x", inc(2)}, tuple.ErrVersionstampCount, true, true},
		{"two nested", tuple.Tuple{tuple.Tuple{inc(1)}, tuple.Tuple{tuple.Tuple{inc(2)}}}, tuple.ErrVersionstampCount, true, true},
		{"unsupported type", tuple.Tuple{inc(1), 1i}, tuple.ErrUnsupportedType, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			template, _, err := tc.t.PackWithVersionstamp([]byte("p"))
			if !errors.Is(err, tc.want) || template != nil {
				t.Errorf("PackWithVersionstamp = % x, %v; want error %v", template, err, tc.want)
			}
			has, err := tc.t.HasIncompleteVersionstamp()
			if has != tc.has || (err != nil) != tc.hasErrs {
				t.Errorf("HasIncompleteVersionstamp = %v, %v; want %v, error %v", has, err, tc.has, tc.hasErrs)
			}
		})
	}
}

// TestPackWithVersionstampMatchesBindingLayout checks the template against
// what FDB's bindings write, minus the 4-byte little-endian offset suffix they
// append at API version 520 and later (FDB's Java test
// testPositionInformationAdjustmentForIncompleteVersionstamp).
func TestPackWithVersionstampMatchesBindingLayout(t *testing.T) {
	prefix := tuple.Tuple{"prefix"}.Pack()
	template, offset, err := tuple.Tuple{kv.IncompleteVersionstamp(1)}.PackWithVersionstamp(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if offset != 1+len(prefix) {
		t.Errorf("offset = %d, want %d", offset, 1+len(prefix))
	}
	bindingKey := binary.LittleEndian.AppendUint32(append([]byte(nil), template...), uint32(offset))
	want := cat(prefix, x(0x33), rep(0xff, 10), x(0x00, 0x01), x(byte(1+len(prefix)), 0, 0, 0))
	if !bytes.Equal(bindingKey, want) {
		t.Errorf("template+offset = % x, want % x", bindingKey, want)
	}
}

func TestUnpackMalformed(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		at   string // the error must name this offset
	}{
		// FDB's Java binding, TuplePackingTest.malformedSequences (those
		// that are malformed as bytes; its UTF-8 cases are not, in Go).
		{"unterminated bytes", x(0x01, 0xde, 0xad, 0xc0, 0xde), "byte 0"},
		{"unterminated bytes with escaped null", x(0x01, 0xde, 0xad, 0x00, 0xff, 0xc0, 0xde), "byte 0"},
		{"unterminated string", []byte("\x02hello"), "byte 0"},
		{"unterminated string with escaped null", []byte("\x02hel\x00\xfflo"), "byte 0"},
		{"unterminated nested tuple", []byte("\x05\x02hello\x00"), "byte 0"},
		{"unterminated nested tuple with null", []byte("\x05\x02hello\x00\x00\xff\x02there\x00"), "byte 0"},
		{"integer truncated", x(0x16, 0x01), "byte 0"},
		{"negative integer truncated", x(0x12, 0x01), "byte 0"},
		{"large integer truncated", x(0x1d, 0x09, 1, 2, 3, 4, 5, 6, 7, 8), "byte 0"},
		{"large negative integer truncated", x(0x0b, 0x09^0xff, 1, 2, 3, 4, 5, 6, 7, 8), "byte 0"},
		{"float truncated", x(0x20, 1, 2, 3), "byte 0"},
		{"double truncated", x(0x21, 1, 2, 3, 4, 5, 6, 7), "byte 0"},
		{"uuid truncated", x(0x30, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14), "byte 0"},
		{"versionstamp truncated", x(0x33, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11), "byte 0"},
		{"unknown code 0xff", x(0xff), "byte 0"},

		// Codes FDB reserves or deprecated, which no binding writes.
		{"deprecated nested 0x03", x(0x03, 0x04), "byte 0"},
		{"reserved 0x0a", x(0x0a), "byte 0"},
		{"reserved 0x1e", x(0x1e), "byte 0"},
		{"long double 0x22", x(0x22), "byte 0"},
		{"deprecated true 0x25", x(0x25), "byte 0"},
		{"64-bit id 0x31", x(0x31, 0, 0, 0, 0, 0, 0, 0, 0), "byte 0"},
		{"80-bit versionstamp 0x32", x(0x32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), "byte 0"},
		{"user type 0x40", x(0x40), "byte 0"},

		// Non-canonical integers: one value, one encoding.
		{"positive with leading zero", x(0x16, 0x00, 0x05), "byte 0"},
		{"negative with leading 0xff", x(0x12, 0xff, 0xfa), "byte 0"},
		{"large code for a small integer", x(0x1d, 0x08, 1, 2, 3, 4, 5, 6, 7, 8), "byte 0"},
		{"large negative code for a small integer", x(0x0b, 0x01^0xff, 0xfe), "byte 0"},
		{"large code of length zero", x(0x1d, 0x00), "byte 0"},
		{"large code without length", x(0x1d), "byte 0"},
		{"large positive with leading zero", cat(x(0x1d, 0x09, 0x00), rep(1, 8)), "byte 0"},
		{"large negative with leading 0xff", cat(x(0x0b, 0x09^0xff, 0xff), rep(1, 8)), "byte 0"},

		// The error names where the bad element starts.
		{"bad element after good ones", cat(tuple.Tuple{"ok", 1}.Pack(), x(0x16, 0x01)), "byte 6"},
		{"escape byte at top level", x(0x00, 0xff), "byte 1"},
		{"nested tuple opened inside another", cat(x(0x02, 'a', 0x00, 0x05, 0x05), x(0x00)), "byte 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tuple.Unpack(tc.in)
			if !errors.Is(err, tuple.ErrMalformed) {
				t.Fatalf("Unpack(% x) = %v, %v; want ErrMalformed", tc.in, got, err)
			}
			if !strings.Contains(err.Error(), tc.at) {
				t.Errorf("error %q does not name %s", err, tc.at)
			}
		})
	}
}

// TestUnpackTruncated cuts the last byte off well-formed tuples (FDB's Java
// cantUnpackSequencesWithLastCharacter): every one must fail to decode.
func TestUnpackTruncated(t *testing.T) {
	wellFormed := []tuple.Tuple{
		{[]byte{1, 2}}, {"hello"}, {"hell\x00"}, {1066}, {-1066}, {pow2(65, 0)}, {neg(pow2(65, 0))},
		{float32(-3.14)}, {2.71828}, {uuidA}, {stampA}, {tuple.Tuple{nil}}, {tuple.Tuple{"a", tuple.Tuple{}}},
	}
	for _, tu := range wellFormed {
		b := tu.Pack()
		if got, err := tuple.Unpack(b[:len(b)-1]); !errors.Is(err, tuple.ErrMalformed) {
			t.Errorf("Unpack(% x) without its last byte = %v, %v; want ErrMalformed", b, got, err)
		}
	}
}

func TestUnpackDoesNotAlias(t *testing.T) {
	b := tuple.Tuple{[]byte("abc"), "def"}.Pack()
	got, err := tuple.Unpack(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'X'
	}
	if !equalTuple(got, tuple.Tuple{[]byte("abc"), "def"}) {
		t.Errorf("decoded elements changed with the input: %v", got)
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		t    tuple.Tuple
		want string
	}{
		{tuple.Tuple{}, "()"},
		{tuple.Tuple{"coditect", "t\x00", []byte("\x01a"), -5, nil, true, 1.5},
			`("coditect", "t\x00", b"\x01a", -5, nil, true, 1.5)`},
		{tuple.Tuple{tuple.Tuple{nil}, uuidA, stampA, pow2(64, 0)},
			"((nil), UUID(12345678-9abc-def0-0123-456789abcdef), Versionstamp(000000010203040506070009), 18446744073709551616)"},
	}
	for _, tc := range tests {
		if got := tc.t.String(); got != tc.want {
			t.Errorf("String() = %s, want %s", got, tc.want)
		}
	}
}
