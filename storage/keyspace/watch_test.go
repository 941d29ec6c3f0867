package keyspace_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/tuple"
)

// TestFileEvidenceLayout pins the file-evidence keys to their tuples and
// checks they stay inside the tenant and validate the path.
func TestFileEvidenceLayout(t *testing.T) {
	acme := mustTenant(t, "acme")
	key := must(acme.FileEvidence("/home/ada/p/a.go"))(t)
	want := tuple.Tuple{"coditect", "t", "acme", "file_evidence", "/home/ada/p/a.go"}
	if got := want.Pack(); !bytes.Equal(key, got) {
		t.Fatalf("FileEvidence = %x, want %x", key, got)
	}
	if !acme.Contains(key) || !acme.FileEvidences().Contains(key) {
		t.Fatal("file evidence key outside the tenant or its subspace")
	}
	if got := want[:4].Pack(); !bytes.Equal(acme.FileEvidences().Bytes(), got) {
		t.Fatalf("FileEvidences = %x, want %x", acme.FileEvidences().Bytes(), got)
	}
	other := mustTenant(t, "acme2")
	if other.Contains(key) {
		t.Fatal("another tenant contains the key")
	}
	for _, bad := range []string{"", strings.Repeat("x", keyspace.MaxResourceSize+1), "\xff"} {
		if _, err := acme.FileEvidence(bad); !errors.Is(err, keyspace.ErrInvalidID) {
			t.Errorf("FileEvidence(%.20q) = %v, want ErrInvalidID", bad, err)
		}
	}
}
