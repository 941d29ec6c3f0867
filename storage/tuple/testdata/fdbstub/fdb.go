// Package fdb stands in for the FoundationDB binding's cgo package
// (github.com/apple/foundationdb/bindings/go/src/fdb) when
// storage/tuple/bindingtest.sh builds the binding's tuple package without
// cgo: the script copies src/fdb/tuple out of the module cache and puts this
// file beside it as src/fdb. It declares only what src/fdb/tuple uses, plus
// APIVersion for the tests that select a version, with the binding's
// signatures.
package fdb

import (
	"errors"
	"fmt"
	"strings"
)

// Key is a FoundationDB key.
type Key []byte

// FDBKey makes Key a KeyConvertible.
func (k Key) FDBKey() Key { return k }

// String describes the key as a human readable string.
func (k Key) String() string { return Printable(k) }

// KeyConvertible is what can be converted to a Key.
type KeyConvertible interface {
	FDBKey() Key
}

// KeySelector describes a key relative to another.
type KeySelector struct {
	Key     KeyConvertible
	OrEqual bool
	Offset  int
}

// FDBKeySelector makes KeySelector a Selectable.
func (ks KeySelector) FDBKeySelector() KeySelector { return ks }

// Selectable is what can be converted to a KeySelector.
type Selectable interface {
	FDBKeySelector() KeySelector
}

// FirstGreaterOrEqual selects the first key greater than or equal to key.
func FirstGreaterOrEqual(key KeyConvertible) KeySelector {
	return KeySelector{key, false, 1}
}

// Range is a range described by key selectors.
type Range interface {
	FDBRangeKeySelectors() (begin, end Selectable)
}

// ExactRange is a range between two keys.
type ExactRange interface {
	FDBRangeKeys() (begin, end KeyConvertible)
	Range
}

// Printable returns d with the bytes outside printable ASCII, and the
// backslash, escaped as the binding escapes them.
func Printable(d []byte) string {
	var b strings.Builder
	for _, c := range d {
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c >= 32 && c < 127:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "\\x%02x", c)
		}
	}
	return b.String()
}

var apiVersion int

// APIVersion selects the API version; there is no network to start.
func APIVersion(version int) error {
	if apiVersion != 0 && apiVersion != version {
		return fmt.Errorf("API version already set to %d", apiVersion)
	}
	apiVersion = version
	return nil
}

// GetAPIVersion returns the selected API version.
func GetAPIVersion() (int, error) {
	if apiVersion == 0 {
		return 0, errors.New("API version is not set")
	}
	return apiVersion, nil
}
