package tuple

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"strings"

	"github.com/coditect/coditect/storage/kv"
)

// Type codes of FDB's tuple layer (design/tuple.md).
const (
	codeNil          = 0x00
	codeBytes        = 0x01
	codeString       = 0x02
	codeNested       = 0x05
	codeNegBig       = 0x0b // negative integer of 9 to 255 bytes
	codeIntZero      = 0x14 // 0x0c..0x13 negative, 0x15..0x1c positive, by byte count
	codePosBig       = 0x1d // positive integer of 9 to 255 bytes
	codeFloat        = 0x20
	codeDouble       = 0x21
	codeFalse        = 0x26
	codeTrue         = 0x27
	codeUUID         = 0x30
	codeVersionstamp = 0x33

	escape        = 0xff // follows a 0x00 inside a string, or a nil inside a nested tuple
	maxBigIntSize = 255
)

// AppendNil appends a null element at the top level of a tuple (inside a
// nested tuple a null is 0x00 0xff; Tuple.Append writes that).
func AppendNil(dst []byte) []byte { return append(dst, codeNil) }

// AppendBytes appends a byte-string element.
func AppendBytes(dst, b []byte) []byte {
	dst = append(dst, codeBytes)
	for {
		i := bytes.IndexByte(b, 0x00)
		if i < 0 {
			break
		}
		dst = append(dst, b[:i+1]...)
		dst = append(dst, escape)
		b = b[i+1:]
	}
	dst = append(dst, b...)
	return append(dst, 0x00)
}

// AppendString appends a unicode-string element. Its bytes are written as
// they are (a Go string is already UTF-8 when it is valid text).
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, codeString)
	for {
		i := strings.IndexByte(s, 0x00)
		if i < 0 {
			break
		}
		dst = append(dst, s[:i+1]...)
		dst = append(dst, escape)
		s = s[i+1:]
	}
	dst = append(dst, s...)
	return append(dst, 0x00)
}

// AppendInt appends an integer element.
func AppendInt(dst []byte, i int64) []byte {
	if i >= 0 {
		return AppendUint(dst, uint64(i))
	}
	mag := uint64(-i) // math.MinInt64 negates to itself, whose uint64 is 1<<63: right
	n := byteLen(mag)
	dst = append(dst, byte(codeIntZero-n))
	return appendBigEndian(dst, ^mag, n) // one's complement of the magnitude in n bytes
}

// AppendUint appends an integer element.
func AppendUint(dst []byte, u uint64) []byte {
	n := byteLen(u)
	dst = append(dst, byte(codeIntZero+n))
	return appendBigEndian(dst, u, n)
}

// AppendFloat32 appends a float element (FDB's "float", 32 bits).
func AppendFloat32(dst []byte, f float32) []byte {
	b := math.Float32bits(f)
	if b&(1<<31) != 0 {
		b = ^b
	} else {
		b ^= 1 << 31
	}
	return binary.BigEndian.AppendUint32(append(dst, codeFloat), b)
}

// AppendFloat64 appends a double element (FDB's "double", 64 bits).
func AppendFloat64(dst []byte, f float64) []byte {
	b := math.Float64bits(f)
	if b&(1<<63) != 0 {
		b = ^b
	} else {
		b ^= 1 << 63
	}
	return binary.BigEndian.AppendUint64(append(dst, codeDouble), b)
}

// AppendBool appends a boolean element.
func AppendBool(dst []byte, b bool) []byte {
	if b {
		return append(dst, codeTrue)
	}
	return append(dst, codeFalse)
}

// AppendUUID appends a UUID element.
func AppendUUID(dst []byte, u UUID) []byte {
	return append(append(dst, codeUUID), u[:]...)
}

// AppendVersionstamp appends a versionstamp element. Unlike Pack it accepts
// an incomplete stamp, because its caller knows where the placeholder is: the
// 10 bytes kv.Tx.SetVersionstampedKey overwrites start at len(dst)+1.
func AppendVersionstamp(dst []byte, v kv.Versionstamp) []byte {
	return append(append(dst, codeVersionstamp), v[:]...)
}

// byteLen is the number of bytes of u without leading zero bytes.
func byteLen(u uint64) int { return (bits.Len64(u) + 7) / 8 }

// appendBigEndian appends the low n bytes of u, most significant first.
func appendBigEndian(dst []byte, u uint64, n int) []byte {
	for s := 8 * (n - 1); s >= 0; s -= 8 {
		dst = append(dst, byte(u>>s))
	}
	return dst
}

// appendBigInt appends an arbitrary-precision integer element as FDB's Java
// and Python bindings do: integers of up to 8 bytes use the ordinary codes,
// larger ones 0x1d (positive) or 0x0b (negative) followed by their length.
func appendBigInt(dst []byte, i *big.Int) ([]byte, error) {
	if i.IsInt64() {
		return AppendInt(dst, i.Int64()), nil
	}
	if i.IsUint64() {
		return AppendUint(dst, i.Uint64()), nil
	}
	n := (i.BitLen() + 7) / 8
	if n > maxBigIntSize {
		return dst, fmt.Errorf("tuple: integer of %d bytes: %w", n, ErrIntegerTooLarge)
	}
	switch {
	case i.Sign() > 0: // and above 2^64-1, so n > 8
		dst = append(dst, codePosBig, byte(n))
		i.FillBytes(grow(&dst, n))
		return dst, nil
	case n <= 8: // negative, below math.MinInt64
		dst = append(dst, byte(codeIntZero-n))
	default:
		dst = append(dst, codeNegBig, byte(n)^0xff)
	}
	mag := grow(&dst, n)
	new(big.Int).Abs(i).FillBytes(mag)
	for j := range mag {
		mag[j] ^= 0xff // one's complement
	}
	return dst, nil
}

// grow extends *dst by n bytes and returns them.
func grow(dst *[]byte, n int) []byte {
	l := len(*dst)
	*dst = append(*dst, make([]byte, n)...)
	return (*dst)[l:]
}

// appendTuple appends t's elements; nested tuples are framed by 0x05 … 0x00
// and their nulls escaped. With stampAt nil an incomplete versionstamp is an
// error; otherwise its offset is stored there (the caller checked there is
// exactly one).
func appendTuple(dst []byte, t Tuple, nested bool, stampAt *int) ([]byte, error) {
	var err error
	for idx, e := range t {
		switch e := e.(type) {
		case nil:
			dst = append(dst, codeNil)
			if nested {
				dst = append(dst, escape)
			}
		case []byte:
			dst = AppendBytes(dst, e)
		case string:
			dst = AppendString(dst, e)
		case Tuple:
			dst = append(dst, codeNested)
			if dst, err = appendTuple(dst, e, true, stampAt); err != nil {
				return dst, err
			}
			dst = append(dst, 0x00)
		case int:
			dst = AppendInt(dst, int64(e))
		case int8:
			dst = AppendInt(dst, int64(e))
		case int16:
			dst = AppendInt(dst, int64(e))
		case int32:
			dst = AppendInt(dst, int64(e))
		case int64:
			dst = AppendInt(dst, e)
		case uint:
			dst = AppendUint(dst, uint64(e))
		case uint8:
			dst = AppendUint(dst, uint64(e))
		case uint16:
			dst = AppendUint(dst, uint64(e))
		case uint32:
			dst = AppendUint(dst, uint64(e))
		case uint64:
			dst = AppendUint(dst, e)
		case *big.Int:
			if e == nil {
				return dst, fmt.Errorf("tuple: element %d is a nil *big.Int: %w", idx, ErrUnsupportedType)
			}
			if dst, err = appendBigInt(dst, e); err != nil {
				return dst, fmt.Errorf("tuple: element %d: %w", idx, err)
			}
		case float32:
			dst = AppendFloat32(dst, e)
		case float64:
			dst = AppendFloat64(dst, e)
		case bool:
			dst = AppendBool(dst, e)
		case UUID:
			dst = AppendUUID(dst, e)
		case kv.Versionstamp:
			if !e.IsComplete() {
				if stampAt == nil {
					return dst, fmt.Errorf("tuple: element %d: %w", idx, ErrIncompleteVersionstamp)
				}
				*stampAt = len(dst) + 1
			}
			dst = AppendVersionstamp(dst, e)
		default:
			return dst, fmt.Errorf("tuple: element %d of type %T: %w", idx, e, ErrUnsupportedType)
		}
	}
	return dst, nil
}
