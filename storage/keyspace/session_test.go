package keyspace_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tuple"
)

func TestSessionIndexLayout(t *testing.T) {
	acme := mustTenant(t, "acme")
	tk := func(elems ...tuple.Element) tuple.Tuple {
		return append(tuple.Tuple{"coditect", "t", "acme"}, elems...)
	}
	for _, tc := range []struct {
		name string
		got  []byte
		want tuple.Tuple
	}{
		{"sessions by", must(acme.SessionsBy(keyspace.SessionByUser, "alice"))(t).Bytes(), tk("session_by", "user", "alice")},
		{"sessions by entry", must(acme.SessionsByEntry(keyspace.SessionByWorkspace, "/w/app", "01ARYZ6S41"))(t), tk("session_by", "workspace", "/w/app", "01ARYZ6S41")},
	} {
		if want := tc.want.Pack(); !bytes.Equal(tc.got, want) {
			t.Errorf("%s: key %s, want %v", tc.name, kv.DisplayKey(tc.got), tc.want)
		}
	}
	// Entries are in the tenant, in their value's subspace, and outside
	// the session records' range.
	entry := must(acme.SessionsByEntry(keyspace.SessionByState, "open", "s1"))(t)
	if !acme.Contains(entry) || !must(acme.SessionsBy(keyspace.SessionByState, "open"))(t).Contains(entry) || acme.Sessions().Contains(entry) {
		t.Fatalf("entry %s misplaced", kv.DisplayKey(entry))
	}
	if other := mustTenant(t, "acme\x00"); other.Contains(entry) {
		t.Fatal("entry in another tenant's range")
	}
}

func TestSessionIndexIDs(t *testing.T) {
	acme := mustTenant(t, "acme")
	long := func(n int) string { return strings.Repeat("x", n) }
	for _, tc := range []struct{ index, value, session string }{
		{"", "v", "s"}, {"user", "", "s"}, {"user", "v", ""},
		{long(keyspace.MaxIDSize + 1), "v", "s"},
		{"user", long(keyspace.MaxResourceSize + 1), "s"},
		{"user", "v", long(keyspace.MaxIDSize + 1)},
		{"\xff", "v", "s"}, {"user", "\xff", "s"}, {"user", "v", "\xff"},
	} {
		if k, err := acme.SessionsByEntry(tc.index, tc.value, tc.session); !errors.Is(err, keyspace.ErrInvalidID) || k != nil {
			t.Errorf("SessionsByEntry(%q, %q, %q) = %s, %v", tc.index, tc.value, tc.session, kv.DisplayKey(k), err)
		}
		if tc.session == "s" {
			if _, err := acme.SessionsBy(tc.index, tc.value); !errors.Is(err, keyspace.ErrInvalidID) {
				t.Errorf("SessionsBy(%q, %q): %v", tc.index, tc.value, err)
			}
		}
	}
	// The longest entry, every id at its limit of 0x00 bytes (doubled by
	// the encoding), fits in a key.
	zeros := func(n int) string { return strings.Repeat("\x00", n) }
	ts := mustTenant(t, zeros(keyspace.MaxIDSize))
	k := must(ts.SessionsByEntry(zeros(keyspace.MaxIDSize), zeros(keyspace.MaxResourceSize), zeros(keyspace.MaxIDSize)))(t)
	if err := kv.CheckKey("set", k); err != nil {
		t.Fatal(err)
	}
}
