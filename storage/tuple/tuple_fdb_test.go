//go:build fdb || fdbtuple

// These tests compare the encoder with the FoundationDB binding's tuple
// package. With -tags fdb they use the real binding (cgo and fdb_c.h); with
// -tags fdbtuple, storage/tuple/bindingtest.sh builds the binding's tuple
// package in pure Go over a stub of its cgo package, so they run anywhere.

package tuple_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/big"
	"testing"

	"github.com/apple/foundationdb/bindings/go/src/fdb"
	fdbtuple "github.com/apple/foundationdb/bindings/go/src/fdb/tuple"

	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tuple"
)

// bindingTuples cover every type and the size boundaries of integers.
var bindingTuples = []tuple.Tuple{
	{},
	{nil},
	{[]byte{}, []byte("foo\x00bar"), []byte{0x00, 0xff, 0x00}, []byte{0xff}},
	{"", "hello", "F\u00d4O\u0000bar", "\U0001f525", "nul\x00\x00", "\xff\x00"},
	{tuple.Tuple{}, tuple.Tuple{nil}, tuple.Tuple{[]byte("foo\x00bar"), nil, tuple.Tuple{}}},
	{tuple.Tuple{nil, tuple.Tuple{nil, "x", tuple.Tuple{nil}}, nil}, nil},
	{0, 1, -1, 255, -255, 256, -256, 65535, 65536, -65536, -5551212},
	{int64(math.MaxInt64), int64(math.MinInt64), int64(math.MinInt64 + 1), int64(1) << 32, -(int64(1) << 32)},
	{uint(7), uint64(math.MaxInt64 + 1), uint64(math.MaxUint64)},
	{int8(-8), int16(0x3019), int32(-32), uint8(3), uint16(65535), uint32(1) << 31},
	{big.NewInt(0), big.NewInt(-1), big.NewInt(math.MinInt64), pow2(64, -1), pow2(64, 0), neg(pow2(64, 0)),
		neg(pow2(64, -1)), neg(pow2(63, 1)), pow2(100, 3), neg(pow2(100, 3)), pow2(2040, -1), neg(pow2(2040, -1))},
	{float32(0), float32(math.Copysign(0, -1)), float32(-42), float32(3.14), float32(math.Inf(1)), float32(math.Inf(-1)),
		math.Float32frombits(0x7fffffff), math.Float32frombits(0xffffffff)},
	{0.0, math.Copysign(0, -1), 3.14, -3.14, math.Inf(1), math.Inf(-1), math.MaxFloat64, math.SmallestNonzeroFloat64,
		math.Float64frombits(math.MaxInt64)},
	{false, true},
	{tuple.UUID{}, uuidA, tuple.UUID{0xff, 0xff, 0xff, 0xff, 0xba, 0x5e, 0xba, 0x11}},
	{stampA, kv.NewVersionstamp([10]byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0, 1, 2, 3}, 0), tuple.Tuple{stampA}},
	{"coditect", "t", "acme", "audit_by", "path", "src/main.go", stampA},
}

// toBinding converts our elements to the binding's types: its UUID and
// Versionstamp types, and only the integer types it accepts.
func toBinding(t tuple.Tuple) fdbtuple.Tuple {
	out := make(fdbtuple.Tuple, len(t))
	for i, e := range t {
		switch e := e.(type) {
		case tuple.Tuple:
			out[i] = toBinding(e)
		case tuple.UUID:
			out[i] = fdbtuple.UUID(e)
		case kv.Versionstamp:
			out[i] = fdbtuple.Versionstamp{TransactionVersion: e.Commit(), UserVersion: e.UserVersion()}
		case int8:
			out[i] = int64(e)
		case int16:
			out[i] = int64(e)
		case int32:
			out[i] = int64(e)
		case uint8:
			out[i] = uint64(e)
		case uint16:
			out[i] = uint64(e)
		case uint32:
			out[i] = uint64(e)
		default:
			out[i] = e
		}
	}
	return out
}

// fromBinding converts the binding's decoded elements to ours.
func fromBinding(t fdbtuple.Tuple) tuple.Tuple {
	out := make(tuple.Tuple, len(t))
	for i, e := range t {
		switch e := e.(type) {
		case fdbtuple.Tuple:
			out[i] = fromBinding(e)
		case fdbtuple.UUID:
			out[i] = tuple.UUID(e)
		case fdbtuple.Versionstamp:
			out[i] = kv.NewVersionstamp(e.TransactionVersion, e.UserVersion)
		default:
			out[i] = e
		}
	}
	return out
}

func TestPackMatchesBinding(t *testing.T) {
	for _, tu := range bindingTuples {
		ours := tu.Pack()
		theirs := toBinding(tu).Pack()
		if !bytes.Equal(ours, theirs) {
			t.Errorf("%v:\n ours   % x\n binding % x", tu, ours, theirs)
			continue
		}
		decoded, err := fdbtuple.Unpack(ours)
		if err != nil {
			t.Errorf("binding Unpack(% x): %v", ours, err)
			continue
		}
		if !equalTuple(fromBinding(decoded), tu) {
			t.Errorf("binding decodes %v as %v", tu, decoded)
		}
	}
}

// FuzzPackMatchesBinding: for any tuple, the binding packs the same bytes,
// and decodes ours to an equal tuple.
func FuzzPackMatchesBinding(f *testing.F) {
	for _, seed := range roundTripSeeds {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, program []byte) {
		tu := buildTuple(&fuzzReader{b: program})
		ours, err := tu.Append(nil)
		if err != nil {
			t.Fatalf("Append(%v): %v", tu, err)
		}
		if theirs := toBinding(tu).Pack(); !bytes.Equal(ours, theirs) {
			t.Fatalf("%v:\n ours    % x\n binding % x", tu, ours, theirs)
		}
		decoded, err := fdbtuple.Unpack(ours)
		if err != nil {
			t.Fatalf("binding Unpack(% x): %v", ours, err)
		}
		if back := fromBinding(decoded); !equalTuple(back, tu) {
			t.Fatalf("binding decodes %v as %v", tu, back)
		}
	})
}

func TestPackWithVersionstampMatchesBinding(t *testing.T) {
	if err := fdb.APIVersion(730); err != nil {
		t.Fatalf("select FDB API version 730: %v", err)
	}
	prefix := tuple.Tuple{"coditect", "t", "acme"}.Pack()
	tuples := []tuple.Tuple{
		{kv.IncompleteVersionstamp(0)},
		{"audit", kv.IncompleteVersionstamp(7)},
		{"audit_by", "path", "a\x00b", kv.IncompleteVersionstamp(65535), "after"},
		{"nested", tuple.Tuple{nil, kv.IncompleteVersionstamp(1)}, nil},
	}
	for _, tu := range tuples {
		template, offset, err := tu.PackWithVersionstamp(prefix)
		if err != nil {
			t.Fatalf("%v: %v", tu, err)
		}
		theirs, err := toBinding(tu).PackWithVersionstamp(prefix)
		if err != nil {
			t.Fatalf("binding %v: %v", tu, err)
		}
		// The binding appends the offset as 4 little-endian bytes.
		ours := binary.LittleEndian.AppendUint32(append([]byte(nil), template...), uint32(offset))
		if !bytes.Equal(ours, theirs) {
			t.Errorf("%v:\n ours    % x\n binding % x", tu, ours, theirs)
		}
	}
}
