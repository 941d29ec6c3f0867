package tuple_test

import (
	"bytes"
	"encoding/gob"
	"math/rand"
	"os"
	"testing"

	"github.com/coditect/coditect/storage/tuple"
)

// TestPackMatchesBindingGolden packs the tuples of the FDB Go binding's own
// tuple tests and compares them with the bytes the binding wrote for them.
// testdata/binding_tuples.golden is the binding's testdata/tuples.golden
// (bindings/go/src/fdb/tuple, Apache-2.0), copied unchanged: a gob-encoded
// map from case name to packed bytes. The cases are rebuilt exactly as the
// binding's tuple_test.go builds them, random values included (math/rand
// seeded with 1, drawn in the same order).
func TestPackMatchesBindingGolden(t *testing.T) {
	f, err := os.Open("testdata/binding_tuples.golden")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var golden map[string][]byte
	if err := gob.NewDecoder(f).Decode(&golden); err != nil {
		t.Fatalf("decode golden file: %v", err)
	}

	rng := rand.New(rand.NewSource(1))
	genInt := func() tuple.Element { return rng.Int63() }
	genFloat := func() tuple.Element { return float32(rng.NormFloat64()) }
	genDouble := func() tuple.Element { return rng.NormFloat64() }
	constant := func(e tuple.Element) func() tuple.Element { return func() tuple.Element { return e } }
	mk := func(gen func() tuple.Element, n int) tuple.Tuple {
		t := make(tuple.Tuple, n)
		for i := range t {
			t[i] = gen()
		}
		return t
	}
	u := tuple.UUID{0x11, 0x00, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF, 0x11, 0x00, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF}

	// The order matters: it is the order the binding draws random numbers.
	cases := []struct {
		name  string
		tuple tuple.Tuple
	}{
		{"Simple", tuple.Tuple{u, "foobarbaz", 1234, nil}},
		{"Namespaces", tuple.Tuple{u, "github", "com", "apple", "foundationdb", "tree"}},
		{"ManyStrings", mk(constant("namespace"), 8)},
		{"ManyStringsNil", mk(constant("nam\x00es\xFFpace"), 8)},
		{"ManyBytes", mk(constant([]byte("namespace")), 20)},
		{"ManyBytesNil", mk(constant([]byte{0xFF, 0x00, 0xFF}), 20)},
		{"LargeBytes", tuple.Tuple{u, bytes.Repeat([]byte("abcd"), 20)}},
		{"LargeBytesNil", tuple.Tuple{u, bytes.Repeat([]byte{0xFF, 0x0, 0xFF}, 20)}},
		{"Integers", mk(genInt, 20)},
		{"Floats", mk(genFloat, 20)},
		{"Doubles", mk(genDouble, 20)},
		{"UUIDs", tuple.Tuple{u, true, u, false, u, true, u, false, u, true}},
		{"NilCases", tuple.Tuple{"\x00", "\x00\xFF", "\x00\x00\x00", "\xFF\x00", ""}},
		{"Nested", tuple.Tuple{u, mk(genInt, 4), nil, mk(constant([]byte("namespace")), 4), nil, mk(genDouble, 4), nil}},
	}
	if len(golden) != len(cases) {
		t.Errorf("golden file has %d cases, the test rebuilds %d", len(golden), len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want, ok := golden[tc.name]
			if !ok {
				t.Fatalf("no golden bytes for %s", tc.name)
			}
			if got := tc.tuple.Pack(); !bytes.Equal(got, want) {
				t.Fatalf("Pack\n got % x\nwant % x", got, want)
			}
			back, err := tuple.Unpack(want)
			if err != nil {
				t.Fatalf("Unpack: %v", err)
			}
			if !equalTuple(back, tc.tuple) {
				t.Fatalf("Unpack = %v, want %v", back, tc.tuple)
			}
		})
	}
}
