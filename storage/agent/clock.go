package agent

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"time"
)

type clockKey struct{}

// WithClock returns a context whose coordination layers (agent, lease,
// message, task) read the time from now instead of time.Now. Tests use it
// to move liveness and lease expiry forward without sleeping; production
// code never sets it. The clock travels with the request so that every
// layer a request touches agrees on one time source without a clock
// parameter on each function.
func WithClock(ctx context.Context, now func() time.Time) context.Context {
	return context.WithValue(ctx, clockKey{}, now)
}

// Now returns the time of ctx's clock (time.Now without one), in UTC.
func Now(ctx context.Context) time.Time {
	if f, ok := ctx.Value(clockKey{}).(func() time.Time); ok && f != nil {
		return f().UTC()
	}
	return time.Now().UTC()
}

// idEncoding is Crockford's base32 alphabet, whose characters sort in the
// order of the bits they encode, so ids sort by creation time.
var idEncoding = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

// NewID returns a collision-free id: prefix, an underscore and 26
// characters encoding 48 bits of Unix milliseconds and 80 random bits (from
// crypto/rand), so ids of one prefix sort by creation time, as ULIDs do.
// The coordination layers use it for agent and task ids.
func NewID(prefix string) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(b[6:]) // never fails (Go 1.24+): it crashes the program instead
	return prefix + "_" + idEncoding.EncodeToString(b[:])
}
