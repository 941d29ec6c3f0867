package kv

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
)

// StampSize is the number of bytes a commit writes into a versionstamped key
// or value: FoundationDB's 8-byte commit version and 2-byte batch order.
const StampSize = 10

// Versionstamp is FoundationDB's 12-byte versionstamp: 10 bytes that order
// commits (strictly increasing across every process using the store) and 2
// bytes of order inside one transaction, chosen by the writer. Versionstamps
// compare as bytes.
type Versionstamp [12]byte

// IncompleteVersionstamp is the placeholder a template carries before
// commit: ten 0xff bytes (as FDB's tuple layer writes them) followed by the
// caller's user order, big-endian.
func IncompleteVersionstamp(userVersion uint16) Versionstamp {
	var v Versionstamp
	for i := 0; i < StampSize; i++ {
		v[i] = 0xff
	}
	binary.BigEndian.PutUint16(v[StampSize:], userVersion)
	return v
}

// NewVersionstamp builds a stamp from a commit's 10 bytes and a user order.
func NewVersionstamp(commit [StampSize]byte, userVersion uint16) Versionstamp {
	var v Versionstamp
	copy(v[:], commit[:])
	binary.BigEndian.PutUint16(v[StampSize:], userVersion)
	return v
}

// VersionstampFromBytes reads a stamp from 12 bytes; ok is false when b is
// not 12 bytes long.
func VersionstampFromBytes(b []byte) (v Versionstamp, ok bool) {
	if len(b) != len(v) {
		return v, false
	}
	copy(v[:], b)
	return v, true
}

// IsZero reports whether v is the zero stamp (no commit).
func (v Versionstamp) IsZero() bool { return v == Versionstamp{} }

// IsComplete reports whether v carries a commit's bytes rather than the
// placeholder.
func (v Versionstamp) IsComplete() bool {
	for i := 0; i < StampSize; i++ {
		if v[i] != 0xff {
			return true
		}
	}
	return false
}

// Commit returns the 10 bytes shared by every stamp of one commit.
func (v Versionstamp) Commit() [StampSize]byte {
	var c [StampSize]byte
	copy(c[:], v[:StampSize])
	return c
}

// UserVersion returns the 2 bytes of order inside the transaction.
func (v Versionstamp) UserVersion() uint16 { return binary.BigEndian.Uint16(v[StampSize:]) }

// WithUserVersion returns the stamp of the same commit with another order.
func (v Versionstamp) WithUserVersion(u uint16) Versionstamp {
	binary.BigEndian.PutUint16(v[StampSize:], u)
	return v
}

// Compare orders stamps: -1, 0 or +1.
func (v Versionstamp) Compare(o Versionstamp) int { return bytes.Compare(v[:], o[:]) }

// String renders the stamp as 24 hex digits.
func (v Versionstamp) String() string { return hex.EncodeToString(v[:]) }

// ParseVersionstamp parses the 24 hex digits String writes.
func ParseVersionstamp(s string) (Versionstamp, bool) {
	var v Versionstamp
	if len(s) != 2*len(v) {
		return v, false
	}
	if _, err := hex.Decode(v[:], []byte(s)); err != nil {
		return v, false
	}
	return v, true
}
