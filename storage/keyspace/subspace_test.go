package keyspace_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tuple"
)

func TestSubspaceRangeAndContains(t *testing.T) {
	s := keyspace.Root().Sub("t", "a")
	p := s.Bytes()
	begin, end := s.Range()
	if want := append(bytes.Clone(p), 0x00); !bytes.Equal(begin, want) {
		t.Errorf("begin = % x, want % x", begin, want)
	}
	if want := append(bytes.Clone(p), 0xff); !bytes.Equal(end, want) {
		t.Errorf("end = % x, want % x", end, want)
	}
	tests := []struct {
		name string
		key  []byte
		want bool
	}{
		{"the prefix itself", p, false},
		{"prefix + 0x00 (begin)", append(bytes.Clone(p), 0x00), true},
		{"a packed element", s.Pack(tuple.Tuple{"user", "bob"}), true},
		{"prefix + 0xfe…", append(bytes.Clone(p), 0xfe, 0xff, 0xff), true},
		{"prefix + 0xff (end)", append(bytes.Clone(p), 0xff), false},
		{"prefix + 0xff…: another tenant's key", keyspace.Root().Pack(tuple.Tuple{"t", "a\x00b", "user"}), false},
		{"a shorter key", p[:len(p)-1], false},
		{"a sibling", keyspace.Root().Pack(tuple.Tuple{"t", "b"}), false},
		{"empty key", nil, false},
	}
	for _, tc := range tests {
		inRange := bytes.Compare(tc.key, begin) >= 0 && bytes.Compare(tc.key, end) < 0
		if got := s.Contains(tc.key); got != tc.want || inRange != tc.want {
			t.Errorf("%s: Contains = %v, in Range = %v, want %v", tc.name, got, inRange, tc.want)
		}
	}
}

// TestPrefixRangeWouldLeak pins the reason Range is not kv.PrefixRange: the
// key of tenant "a\x00b" is inside PrefixRange of tenant "a"'s prefix.
func TestPrefixRangeWouldLeak(t *testing.T) {
	a := mustTenant(t, "a")
	other := must(mustTenant(t, "a\x00b").User("u"))(t)
	pBegin, pEnd := kv.PrefixRange(a.Subspace().Bytes())
	if !(bytes.Compare(other, pBegin) >= 0 && bytes.Compare(other, pEnd) < 0) {
		t.Fatalf("expected %s inside kv.PrefixRange of tenant a; the encoding changed?", kv.DisplayKey(other))
	}
	if a.Contains(other) {
		t.Errorf("tenant a contains %s, a key of tenant a\\x00b", kv.DisplayKey(other))
	}
}

func TestSubspacePackUnpack(t *testing.T) {
	s := keyspace.Root().Sub("x", 7)
	if want := (tuple.Tuple{"coditect", "x", 7}).Pack(); !bytes.Equal(s.Bytes(), want) {
		t.Fatalf("Sub = % x, want % x", s.Bytes(), want)
	}
	k := s.Pack(tuple.Tuple{"y", nil, []byte{0}})
	if want := (tuple.Tuple{"coditect", "x", 7, "y", nil, []byte{0}}).Pack(); !bytes.Equal(k, want) {
		t.Fatalf("Pack = % x, want % x", k, want)
	}
	got, err := s.Unpack(k)
	if err != nil || len(got) != 3 || got[0] != "y" || got[1] != nil || !bytes.Equal(got[2].([]byte), []byte{0}) {
		t.Fatalf("Unpack = %v, %v", got, err)
	}
	for name, bad := range map[string][]byte{
		"outside":     keyspace.Root().Pack(tuple.Tuple{"y"}),
		"prefix only": s.Bytes(),
		"malformed":   append(s.Bytes(), 0x16, 0x01),
	} {
		if got, err := s.Unpack(bad); err == nil {
			t.Errorf("Unpack(%s) = %v, want an error", name, got)
		}
	}
	if _, err := s.Unpack(keyspace.Root().Pack(tuple.Tuple{"y"})); !errors.Is(err, keyspace.ErrOutsideSubspace) {
		t.Errorf("Unpack of a key outside: %v, want ErrOutsideSubspace", err)
	}
	if _, err := s.Unpack(append(s.Bytes(), 0x16, 0x01)); !errors.Is(err, tuple.ErrMalformed) {
		t.Errorf("Unpack of a truncated element: %v, want tuple.ErrMalformed", err)
	}
}

func TestSubspacePackWithVersionstamp(t *testing.T) {
	s := keyspace.Root().Sub("log")
	template, offset, err := s.PackWithVersionstamp(tuple.Tuple{kv.IncompleteVersionstamp(3)})
	if err != nil {
		t.Fatal(err)
	}
	want, wantOffset, _ := tuple.Tuple{"coditect", "log", kv.IncompleteVersionstamp(3)}.PackWithVersionstamp(nil)
	if !bytes.Equal(template, want) || offset != wantOffset {
		t.Errorf("template % x at %d, want % x at %d", template, offset, want, wantOffset)
	}
	if _, _, err := s.PackWithVersionstamp(tuple.Tuple{"no stamp"}); !errors.Is(err, tuple.ErrVersionstampCount) {
		t.Errorf("without a stamp: %v, want ErrVersionstampCount", err)
	}
}

func TestSubspacePanicsOnProgrammingErrors(t *testing.T) {
	for name, use := range map[string]func(){
		"Sub unsupported type":  func() { keyspace.Root().Sub(struct{}{}) },
		"Pack incomplete stamp": func() { keyspace.Root().Pack(tuple.Tuple{kv.IncompleteVersionstamp(0)}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			use()
		}()
	}
}

func TestSubspaceIsImmutable(t *testing.T) {
	raw := []byte("\x02raw\x00")
	s := keyspace.NewSubspace(raw)
	raw[1] = 'X'
	b := s.Bytes()
	b[2] = 'Y'
	begin, _ := s.Range()
	begin[0] = 0
	if got := s.Bytes(); !bytes.Equal(got, []byte("\x02raw\x00")) {
		t.Errorf("prefix changed through a copy: % x", got)
	}
	// Extending one subspace leaves it, and its siblings, alone.
	root := keyspace.Root()
	a, b2 := root.Sub("a"), root.Sub("b")
	if !bytes.Equal(root.Bytes(), tuple.Tuple{"coditect"}.Pack()) || bytes.Equal(a.Bytes(), b2.Bytes()) {
		t.Errorf("Sub changed its parent or a sibling: %s %s %s", root, a, b2)
	}
}

func TestSubspaceString(t *testing.T) {
	tests := []struct {
		s    keyspace.Subspace
		want string
	}{
		{keyspace.Root(), `("coditect")`},
		{keyspace.Subspace{}, `()`},
		{keyspace.NewSubspace([]byte{0xff, 0x01}), `"\xff\x01"`},
	}
	for _, tc := range tests {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("String() = %s, want %s", got, tc.want)
		}
	}
}
