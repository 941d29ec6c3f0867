package session

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/coditect/coditect/internal/textclip"
)

// A session id is 128 bits: the start time in milliseconds since the Unix
// epoch (48 bits) followed by 80 random bits, written as 26 characters of
// Crockford's base32 (the ULID layout). Ids sort by start time as strings
// and as keys, so "newest first" is a reverse range read; the random part
// makes two sessions started in the same millisecond, on any host, collide
// with negligible probability (and Start checks the global index anyway).
const (
	idLen    = 26
	alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	maxMilli = 1<<48 - 1
)

// decodeTable maps an upper-case character to its 5-bit value, 0xff when
// the character is not in the alphabet.
var decodeTable = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// newID returns a fresh id for a session started at t.
func newID(t time.Time) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[6:]); err != nil {
		return "", fmt.Errorf("session: no randomness for an id: %w", err)
	}
	putMilli(&b, milli(t))
	return encodeID(b), nil
}

// boundID returns the smallest id of millisecond ms: every session started
// in ms or later sorts at or after it.
func boundID(ms uint64) string {
	var b [16]byte
	putMilli(&b, ms)
	return encodeID(b)
}

// milli returns t in milliseconds since the epoch, clamped to what an id
// holds.
func milli(t time.Time) uint64 {
	ms := t.UnixMilli()
	switch {
	case ms < 0:
		return 0
	case ms > maxMilli:
		return maxMilli
	}
	return uint64(ms)
}

func putMilli(b *[16]byte, ms uint64) {
	var t [8]byte
	binary.BigEndian.PutUint64(t[:], ms)
	copy(b[:6], t[2:])
}

// encodeID writes 128 bits as 26 base32 digits, most significant first (the
// first digit holds only 3 bits).
func encodeID(b [16]byte) string {
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	var out [idLen]byte
	for i := idLen - 1; i >= 0; i-- {
		out[i] = alphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// ParseID checks a session id and returns it in canonical (upper-case)
// form. Ids are case-insensitive so that a model that lower-cases one still
// names the same session.
func ParseID(id string) (string, error) {
	if len(id) != idLen {
		return "", fmt.Errorf("session: %w: %q is not a session id: want the %d-character id that starting a session returned (e.g. 01JZ3K5V8Q2W7X9Y4N6M1P0R3T)",
			ErrInvalid, textclip.Clip(id, 64), idLen)
	}
	up := strings.ToUpper(id)
	for i := 0; i < len(up); i++ {
		if decodeTable[up[i]] == 0xff {
			return "", fmt.Errorf("session: %w: session id %q has %q at position %d: ids use the digits and the letters A-Z without I, L, O and U",
				ErrInvalid, id, up[i], i+1)
		}
	}
	if up[0] > '7' {
		return "", fmt.Errorf("session: %w: session id %q is out of range: its first character is at most 7", ErrInvalid, id)
	}
	return up, nil
}
