// Package tuple owns Coditect's FoundationDB tuple encoding: a pure-Go (no
// cgo) encoder and decoder whose bytes are identical to FoundationDB's tuple
// layer (FDB's design/tuple.md), so that keys built on the embedded store are
// the keys an FDB cluster holds, and packed tuples sort like the values they
// encode.
//
// It must not import any backend, any storage layer or the FDB binding (whose
// tuple package needs cgo); its only project import is storage/kv, for the
// versionstamp type.
//
// # Types
//
// A Tuple is a slice of elements of these Go types:
//
//	nil                      null (0x00)
//	[]byte                   byte string (0x01)
//	string                   unicode string (0x02); its bytes are written as is
//	Tuple                    nested tuple (0x05)
//	int, int8 … int64,       integer (0x0c–0x1c, 0 to 8 bytes)
//	uint, uint8 … uint64
//	*big.Int                 integer of up to 255 bytes (0x0b, 0x0c–0x1c, 0x1d)
//	float32                  float (0x20)
//	float64                  double (0x21)
//	bool                     false (0x26), true (0x27)
//	UUID                     RFC 4122 UUID (0x30)
//	kv.Versionstamp          96-bit versionstamp (0x33)
//
// Unpack returns the normalised forms: int64 for every integer that fits,
// uint64 for larger ones below 2^64, *big.Int beyond; []byte, string, Tuple,
// float32, float64, bool, UUID, kv.Versionstamp and nil. Strings are not
// checked for valid UTF-8 in either direction, as in FDB's Go binding: a Go
// string is bytes, and it round-trips whatever they are.
//
// # Errors and panics
//
// The failure-free path is the typed appenders (AppendString, AppendInt,
// AppendVersionstamp, …): they take a value of one supported type and cannot
// fail, which is how storage/keyspace builds every key. Tuple.Append is the
// checked path for a tuple of arbitrary elements and returns an error for an
// element of an unsupported type, an integer wider than 255 bytes or an
// incomplete versionstamp. Tuple.Pack is Append for callers whose tuple is
// fixed by their code, and panics on exactly those errors, as the binding's
// Pack does: they are programming errors, not data errors.
//
// Unpack never panics. It accepts exactly the canonical encodings Pack
// writes (for example, it refuses an integer with a redundant leading byte),
// so packing what it returns gives b back (through PackWithVersionstamp when
// b holds an incomplete versionstamp), and returns an error wrapping
// ErrMalformed, with the byte offset, for anything else.
package tuple

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/coditect/coditect/storage/kv"
)

// Element is one element of a Tuple; see the package documentation for the
// Go types it may hold.
type Element = any

// Tuple is an ordered list of elements. Packed tuples compare, as bytes, in
// the order of their elements: first by the first element, then the second,
// and a tuple sorts before every longer tuple it is a prefix of.
type Tuple []Element

// UUID is an RFC 4122 UUID in network byte order. Convert another package's
// 16-byte UUID type with UUID(u).
type UUID [16]byte

// String renders the UUID in its canonical 8-4-4-4-12 hex form.
func (u UUID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// Errors returned by the package; match them with errors.Is.
var (
	// ErrUnsupportedType: an element of a Go type the tuple layer cannot
	// encode (or a nil *big.Int).
	ErrUnsupportedType = errors.New("unsupported tuple element type")
	// ErrIntegerTooLarge: an integer whose magnitude needs more than 255
	// bytes, FDB's limit.
	ErrIntegerTooLarge = errors.New("integer magnitude larger than 255 bytes")
	// ErrIncompleteVersionstamp: Pack or Append met an incomplete
	// versionstamp; a template for a versionstamped key is built with
	// PackWithVersionstamp.
	ErrIncompleteVersionstamp = errors.New("incomplete versionstamp outside PackWithVersionstamp")
	// ErrVersionstampCount: PackWithVersionstamp needs exactly one
	// incomplete versionstamp (HasIncompleteVersionstamp reports more than
	// one with it too).
	ErrVersionstampCount = errors.New("a versionstamp template needs exactly one incomplete versionstamp")
	// ErrMalformed: Unpack met bytes that are not a canonical packed tuple.
	ErrMalformed = errors.New("malformed tuple")
)

// Pack returns the packed tuple. It panics where Append returns an error: an
// element of an unsupported type, an integer wider than 255 bytes or an
// incomplete versionstamp. Use it for tuples whose element types are fixed by
// the code; use Append for anything else.
func (t Tuple) Pack() []byte {
	b, err := t.Append(make([]byte, 0, t.sizeHint()))
	if err != nil {
		panic(err)
	}
	return b
}

// Append appends the packed tuple to dst and returns the extended slice, so
// that a key is built on a prefix with one allocation at most. On error it
// returns dst unchanged (its spare capacity may have been written).
func (t Tuple) Append(dst []byte) ([]byte, error) {
	out, err := appendTuple(dst, t, false, nil)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// PackWithVersionstamp returns prefix followed by the packed tuple, which
// must hold exactly one incomplete versionstamp (anywhere, nested tuples
// included), and the offset in template of that stamp's 10 placeholder
// bytes: the arguments kv.Tx.SetVersionstampedKey takes. FDB's 4-byte offset
// suffix is not appended; the FDB backend adds it. prefix is copied, never
// written to.
func (t Tuple) PackWithVersionstamp(prefix []byte) (template []byte, offset int, err error) {
	n := t.countIncomplete()
	if n != 1 {
		return nil, 0, fmt.Errorf("tuple: %w, found %d", ErrVersionstampCount, n)
	}
	buf := make([]byte, len(prefix), len(prefix)+t.sizeHint())
	copy(buf, prefix)
	offset = -1
	out, err := appendTuple(buf, t, false, &offset)
	if err != nil {
		return nil, 0, err
	}
	return out, offset, nil
}

// HasIncompleteVersionstamp reports whether the tuple, nested tuples
// included, holds an incomplete versionstamp. It returns an error wrapping
// ErrVersionstampCount when it holds more than one, which no template can
// carry.
func (t Tuple) HasIncompleteVersionstamp() (bool, error) {
	n := t.countIncomplete()
	if n > 1 {
		return true, fmt.Errorf("tuple: %w, found %d", ErrVersionstampCount, n)
	}
	return n == 1, nil
}

func (t Tuple) countIncomplete() int {
	n := 0
	for _, e := range t {
		switch e := e.(type) {
		case kv.Versionstamp:
			if !e.IsComplete() {
				n++
			}
		case Tuple:
			n += e.countIncomplete()
		}
	}
	return n
}

// sizeHint estimates the packed size so that Pack usually allocates once.
func (t Tuple) sizeHint() int {
	n := 0
	for _, e := range t {
		switch e := e.(type) {
		case string:
			n += len(e) + 2
		case []byte:
			n += len(e) + 2
		case Tuple:
			n += e.sizeHint() + 2
		case UUID:
			n += 17
		case kv.Versionstamp:
			n += 13
		default:
			n += 9
		}
	}
	return n
}

// String renders the tuple for people: ("coditect", "t", b"\x01", 5, nil).
func (t Tuple) String() string {
	var sb strings.Builder
	t.format(&sb)
	return sb.String()
}

func (t Tuple) format(sb *strings.Builder) {
	sb.WriteByte('(')
	for i, e := range t {
		if i > 0 {
			sb.WriteString(", ")
		}
		switch e := e.(type) {
		case nil:
			sb.WriteString("nil")
		case Tuple:
			e.format(sb)
		case string:
			sb.WriteString(strconv.Quote(e))
		case []byte:
			sb.WriteByte('b')
			sb.WriteString(strconv.QuoteToASCII(string(e)))
		case UUID:
			sb.WriteString("UUID(" + e.String() + ")")
		case kv.Versionstamp:
			sb.WriteString("Versionstamp(" + e.String() + ")")
		case *big.Int:
			sb.WriteString(e.String())
		default:
			fmt.Fprintf(sb, "%v", e)
		}
	}
	sb.WriteByte(')')
}
