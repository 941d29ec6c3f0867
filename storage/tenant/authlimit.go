package tenant

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/coditect/coditect/storage/errclass"
)

// ErrRateLimited refuses an authentication from an address that failed too
// often: the caller answers 429 with the RateLimitError's RetryAfter. It is
// not a credential error: the token was not even looked at.
var ErrRateLimited = errclass.New(errclass.Unavailable, "too many failed authentications")

// RateLimitError is the error AuthenticateFrom returns while an address
// is locked out.
type RateLimitError struct {
	// RetryAfter is how long until the lockout ends (at least a second).
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("tenant: %v from this address; retry after %ds", ErrRateLimited, int(e.RetryAfter/time.Second))
}

func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// Defaults of AuthLimits. Tokens hold 256 random bits, so the limit is not
// what keeps them secret: it keeps a guesser from costing the store one
// lookup per request, and makes a scan visible (a lockout is logged by the
// transports as a 429).
const (
	DefaultAuthBurst   = 20
	DefaultAuthRefill  = time.Second
	DefaultAuthLockout = 10 * time.Second
	// maxLimited bounds the addresses and the known-good hashes remembered.
	maxLimited = 1 << 14
	// goodFor is how long a successfully authenticated token passes a
	// lockout of its address: a valid client behind the same NAT as a
	// guesser keeps working.
	goodFor = 15 * time.Minute
)

// AuthLimits bound failed authentications per remote address: a token
// bucket of Burst failures, one of which is forgiven every Refill; a
// failure with the bucket empty locks the address out for Lockout. The
// zero value means the defaults.
type AuthLimits struct {
	Burst    int
	Refill   time.Duration
	Lockout  time.Duration
	Disabled bool // no limit at all (tests that count refusals)
}

func (l AuthLimits) withDefaults() AuthLimits {
	if l.Burst <= 0 {
		l.Burst = DefaultAuthBurst
	}
	if l.Refill <= 0 {
		l.Refill = DefaultAuthRefill
	}
	if l.Lockout <= 0 {
		l.Lockout = DefaultAuthLockout
	}
	return l
}

// authLimiter is the Directory's limiter, shared by every transport that
// authenticates through the same Directory (the daemon's MCP endpoint,
// REST API and feed), so a guesser cannot spread its attempts over them.
type authLimiter struct {
	mu     sync.Mutex
	limits AuthLimits
	addrs  map[string]*failures
	good   map[[32]byte]time.Time // token hash -> last success
}

type failures struct {
	tokens float64   // failures still allowed
	at     time.Time // when tokens was last brought up to date
	until  time.Time // locked out until
}

// SetAuthLimits replaces the limits of AuthenticateFrom; it forgets every
// address's failures.
func (d *Directory) SetAuthLimits(l AuthLimits) {
	d.limiter.mu.Lock()
	defer d.limiter.mu.Unlock()
	d.limiter.limits = l.withDefaults()
	d.limiter.addrs = nil
}

// AuthenticateFrom is Authenticate for a request from a network address
// (an http.Request's RemoteAddr; the port is ignored and an IPv6 address
// counts by its /64). Failed authentications are counted per address; an
// address that exhausts its AuthLimits is refused with a *RateLimitError
// (ErrRateLimited) without its token being looked up, except for tokens
// that authenticated successfully in the last 15 minutes, which still go
// through Authenticate. A success is never delayed and never refunds
// failures. Store errors are not failures.
//
// Behind a reverse proxy every client shares the proxy's address; the
// limit then bounds the proxy, which is the conservative choice
// (X-Forwarded-For is not trusted: any client can send it).
func (d *Directory) AuthenticateFrom(ctx context.Context, remote, secret string) (*Scope, error) {
	l := &d.limiter
	h := hashToken(secret)
	key := addrKey(remote)
	now := d.now()
	l.mu.Lock()
	lim := l.limits
	if !lim.Disabled {
		if f := l.addrs[key]; f != nil && now.Before(f.until) {
			if t, ok := l.good[h]; !ok || now.Sub(t) > goodFor {
				wait := f.until.Sub(now).Round(time.Second)
				l.mu.Unlock()
				return nil, &RateLimitError{RetryAfter: max(wait, time.Second)}
			}
		}
	}
	l.mu.Unlock()

	sc, err := d.Authenticate(ctx, secret)
	if lim.Disabled {
		return sc, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err == nil:
		if l.good == nil || len(l.good) >= maxLimited {
			l.good = map[[32]byte]time.Time{}
		}
		l.good[h] = now
	case credentialError(err):
		if l.addrs == nil {
			l.addrs = map[string]*failures{}
		}
		f := l.addrs[key]
		if f == nil {
			if len(l.addrs) >= maxLimited {
				l.prune(now)
			}
			f = &failures{tokens: float64(lim.Burst), at: now}
			l.addrs[key] = f
		}
		f.tokens = min(float64(lim.Burst), f.tokens+float64(now.Sub(f.at))/float64(lim.Refill))
		f.at = now
		if f.tokens >= 1 {
			f.tokens--
		} else {
			f.until = now.Add(lim.Lockout)
		}
	}
	return sc, err
}

// prune forgets the addresses that are not locked out and whose bucket
// has refilled; if that frees nothing, it forgets every address that is
// not locked out, and as a last resort all of them (a flood of distinct
// addresses then costs the store lookups, not memory).
func (l *authLimiter) prune(now time.Time) {
	lim := l.limits
	for k, f := range l.addrs {
		full := f.tokens+float64(now.Sub(f.at))/float64(lim.Refill) >= float64(lim.Burst)
		if now.After(f.until) && full {
			delete(l.addrs, k)
		}
	}
	if len(l.addrs) < maxLimited {
		return
	}
	for k, f := range l.addrs {
		if now.After(f.until) {
			delete(l.addrs, k)
		}
	}
	if len(l.addrs) >= maxLimited {
		clear(l.addrs)
	}
}

// credentialError reports whether err refuses the credentials presented,
// which counts as a failed attempt.
func credentialError(err error) bool {
	for _, e := range []error{ErrUnauthenticated, ErrTokenRevoked, ErrTokenExpired, ErrTenantDisabled, ErrUserDisabled} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// addrKey is the limiter's key for a remote address: the IP without its
// port; an IPv6 address by its /64, which one host usually owns whole.
func addrKey(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
