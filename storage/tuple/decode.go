package tuple

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"

	"github.com/coditect/coditect/storage/kv"
)

// Unpack decodes a packed tuple. It never panics: bytes that are not the
// canonical encoding of a tuple yield an error wrapping ErrMalformed that
// names the offending byte offset. The returned elements do not share memory
// with b.
//
// Nested tuples are decoded without recursion, so hostile input cannot grow
// the stack.
func Unpack(b []byte) (Tuple, error) {
	type frame struct {
		t     Tuple
		start int // offset of the 0x05 that opened it
	}
	var frames [4]frame
	stack := frames[:1] // stack[0] is the top level
	if len(b) > 0 {
		stack[0].t = make(Tuple, 0, min(len(b), 8)) // keys rarely hold more than 8 elements
	}
	for i := 0; i < len(b); {
		top := len(stack) - 1
		switch c := b[i]; {
		case c == codeNested:
			stack = append(stack, frame{t: Tuple{}, start: i})
			i++
			continue
		case c == codeNil && top > 0:
			if i+1 < len(b) && b[i+1] == escape { // a null inside a nested tuple
				stack[top].t = append(stack[top].t, nil)
				i += 2
				continue
			}
			done := stack[top].t // the 0x00 that ends a nested tuple
			stack = stack[:top]
			stack[top-1].t = append(stack[top-1].t, done)
			i++
			continue
		}
		e, n, err := decodeElement(b, i)
		if err != nil {
			return nil, err
		}
		stack[top].t = append(stack[top].t, e)
		i += n
	}
	if len(stack) > 1 {
		return nil, malformed(stack[len(stack)-1].start, "nested tuple without its terminating 0x00")
	}
	return stack[0].t, nil
}

func malformed(at int, format string, args ...any) error {
	return fmt.Errorf("tuple: %w at byte %d: %s", ErrMalformed, at, fmt.Sprintf(format, args...))
}

// decodeElement decodes the scalar element starting at b[i] and returns it
// with the number of bytes it took.
func decodeElement(b []byte, i int) (Element, int, error) {
	need := func(n int, what string) error {
		if len(b)-i < n {
			return malformed(i, "%s needs %d bytes, %d left", what, n, len(b)-i)
		}
		return nil
	}
	switch c := b[i]; {
	case c == codeNil:
		return nil, 1, nil
	case c == codeBytes:
		v, fresh, n, err := decodeEscaped(b, i, "byte string")
		if err != nil {
			return nil, 0, err
		}
		if !fresh {
			v = append([]byte{}, v...)
		}
		return v, n, nil
	case c == codeString:
		v, _, n, err := decodeEscaped(b, i, "string")
		if err != nil {
			return nil, 0, err
		}
		return string(v), n, nil
	case c >= codeIntZero-8 && c <= codeIntZero+8:
		return decodeInt(b, i)
	case c == codeNegBig || c == codePosBig:
		return decodeBigInt(b, i)
	case c == codeFloat:
		if err := need(5, "float"); err != nil {
			return nil, 0, err
		}
		u := binary.BigEndian.Uint32(b[i+1:])
		if u&(1<<31) != 0 {
			u ^= 1 << 31
		} else {
			u = ^u
		}
		return math.Float32frombits(u), 5, nil
	case c == codeDouble:
		if err := need(9, "double"); err != nil {
			return nil, 0, err
		}
		u := binary.BigEndian.Uint64(b[i+1:])
		if u&(1<<63) != 0 {
			u ^= 1 << 63
		} else {
			u = ^u
		}
		return math.Float64frombits(u), 9, nil
	case c == codeFalse:
		return false, 1, nil
	case c == codeTrue:
		return true, 1, nil
	case c == codeUUID:
		if err := need(17, "UUID"); err != nil {
			return nil, 0, err
		}
		return UUID(b[i+1 : i+17]), 17, nil
	case c == codeVersionstamp:
		if err := need(13, "versionstamp"); err != nil {
			return nil, 0, err
		}
		return kv.Versionstamp(b[i+1 : i+13]), 13, nil
	default:
		return nil, 0, malformed(i, "unknown type code 0x%02x", c)
	}
}

// decodeEscaped decodes the 0x00-terminated, 0x00 0xff-escaped body of the
// string or byte string whose type code is at b[i]. v aliases b unless fresh
// is true.
func decodeEscaped(b []byte, i int, what string) (v []byte, fresh bool, n int, err error) {
	seg := i + 1 // start of the bytes not yet copied
	for j := seg; ; {
		k := bytes.IndexByte(b[j:], 0x00)
		if k < 0 {
			return nil, false, 0, malformed(i, "%s without its terminating 0x00", what)
		}
		j += k
		if j+1 < len(b) && b[j+1] == escape {
			v = append(v, b[seg:j+1]...)
			fresh = true
			j += 2
			seg = j
			continue
		}
		if !fresh {
			return b[seg:j], false, j + 1 - i, nil
		}
		return append(v, b[seg:j]...), true, j + 1 - i, nil
	}
}

// decodeInt decodes an integer of 0 to 8 bytes (codes 0x0c to 0x1c).
func decodeInt(b []byte, i int) (Element, int, error) {
	n := int(b[i]) - codeIntZero
	neg := n < 0
	if neg {
		n = -n
	}
	if len(b)-i-1 < n {
		return nil, 0, malformed(i, "integer of %d bytes, %d left", n, len(b)-i-1)
	}
	if n == 0 {
		return int64(0), 1, nil
	}
	p := b[i+1 : i+1+n]
	if err := checkLeadingByte(p, neg, i); err != nil {
		return nil, 0, err
	}
	var u uint64
	for _, x := range p {
		u = u<<8 | uint64(x)
	}
	if !neg {
		if u <= math.MaxInt64 {
			return int64(u), n + 1, nil
		}
		return u, n + 1, nil
	}
	var mag uint64
	if n < 8 {
		mag = (1<<(8*n) - 1) - u
	} else {
		mag = ^u
	}
	if mag <= 1<<63 {
		return -int64(mag), n + 1, nil // for 1<<63, int64(mag) is math.MinInt64 and so is its negation
	}
	return new(big.Int).Neg(new(big.Int).SetUint64(mag)), n + 1, nil
}

// decodeBigInt decodes an integer of 9 to 255 bytes (codes 0x0b and 0x1d).
func decodeBigInt(b []byte, i int) (Element, int, error) {
	if len(b)-i < 2 {
		return nil, 0, malformed(i, "large integer without its length byte")
	}
	neg := b[i] == codeNegBig
	n := int(b[i+1])
	if neg {
		n ^= 0xff
	}
	if n <= 8 {
		return nil, 0, malformed(i, "large-integer code 0x%02x for %d bytes; up to 8 bytes use codes 0x0c to 0x1c", b[i], n)
	}
	if len(b)-i-2 < n {
		return nil, 0, malformed(i, "integer of %d bytes, %d left", n, len(b)-i-2)
	}
	p := b[i+2 : i+2+n]
	if err := checkLeadingByte(p, neg, i); err != nil {
		return nil, 0, err
	}
	v := new(big.Int)
	if !neg {
		return v.SetBytes(p), n + 2, nil
	}
	mag := make([]byte, n)
	for j, x := range p {
		mag[j] = x ^ 0xff
	}
	return v.SetBytes(mag).Neg(v), n + 2, nil
}

// checkLeadingByte refuses a redundant leading byte (0x00 for a positive
// integer, 0xff for a negative one): Pack never writes one, so accepting it
// would give one integer two keys.
func checkLeadingByte(p []byte, neg bool, i int) error {
	if !neg && p[0] == 0x00 {
		return malformed(i, "positive integer with a leading zero byte")
	}
	if neg && p[0] == 0xff {
		return malformed(i, "negative integer with a redundant leading 0xff byte")
	}
	return nil
}
