package tenant

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/kv/sqlite"
)

// fakeClock is a settable clock for the limiter's refill and lockout.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func limiterSetup(t *testing.T) (*Directory, *fakeClock, string, string) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	d := NewDirectory(s, "test")
	clock := &fakeClock{t: time.Now()}
	d.now = clock.now
	d.SetAuthLimits(AuthLimits{Burst: 3, Refill: time.Second, Lockout: 10 * time.Second})
	if _, err := d.CreateTenant(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateUser(ctx, "acme", "alice", ""); err != nil {
		t.Fatal(err)
	}
	used, _, err := d.IssueToken(ctx, "acme", "alice", RoleMember, TokenOptions{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	fresh, _, err := d.IssueToken(ctx, "acme", "alice", RoleMember, TokenOptions{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return d, clock, used, fresh
}

func TestAuthenticateFromLocksOutGuessers(t *testing.T) {
	ctx := context.Background()
	d, clock, used, fresh := limiterSetup(t)
	const guesser = "192.0.2.7:4711"
	// A token that succeeded from the guesser's address before the lockout
	// keeps working through it.
	if _, err := d.AuthenticateFrom(ctx, guesser, used); err != nil {
		t.Fatal(err)
	}
	wrong := "cdt_" + string(make([]byte, 43))
	for i := range 3 {
		if _, err := d.AuthenticateFrom(ctx, "192.0.2.7:"+string(rune('0'+i)), wrong); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	// The fourth failure in a row (another port: same address) locks it out.
	if _, err := d.AuthenticateFrom(ctx, guesser, "cdt_nope"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("fourth guess: %v", err)
	}
	var limited *RateLimitError
	if _, err := d.AuthenticateFrom(ctx, guesser, wrong); !errors.As(err, &limited) || !errors.Is(err, ErrRateLimited) {
		t.Fatalf("locked out: %v", err)
	}
	if limited.RetryAfter != 10*time.Second {
		t.Errorf("RetryAfter %v, want 10s", limited.RetryAfter)
	}
	// Even a valid token is not looked up from a locked-out address unless
	// it already succeeded recently: otherwise the lockout would leak
	// which guess was right.
	if _, err := d.AuthenticateFrom(ctx, guesser, fresh); !errors.Is(err, ErrRateLimited) {
		t.Errorf("fresh valid token from a locked address: %v", err)
	}
	if _, err := d.AuthenticateFrom(ctx, guesser, used); err != nil {
		t.Errorf("known-good token from a locked address: %v", err)
	}
	// Other addresses are not affected.
	if _, err := d.AuthenticateFrom(ctx, "198.51.100.1:1", fresh); err != nil {
		t.Errorf("other address: %v", err)
	}
	clock.add(9 * time.Second)
	if _, err := d.AuthenticateFrom(ctx, guesser, wrong); !errors.As(err, &limited) || limited.RetryAfter != time.Second {
		t.Errorf("near the end of the lockout: %v", err)
	}
	clock.add(2 * time.Second)
	if _, err := d.AuthenticateFrom(ctx, guesser, fresh); err != nil {
		t.Errorf("after the lockout: %v", err)
	}
	// The bucket refilled during the lockout (11 s at 1/s, capped at 3):
	// three more failures pass before the next lockout.
	for i := range 3 {
		if _, err := d.AuthenticateFrom(ctx, guesser, wrong); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("refilled guess %d: %v", i, err)
		}
	}
	if _, err := d.AuthenticateFrom(ctx, guesser, wrong); !errors.Is(err, ErrUnauthenticated) {
		t.Fatal("the failure that locks")
	}
	if _, err := d.AuthenticateFrom(ctx, guesser, wrong); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("locked again: %v", err)
	}
}

func TestAuthenticateFromRevocationAndDisabled(t *testing.T) {
	ctx := context.Background()
	d, _, used, _ := limiterSetup(t)
	toks, err := d.ListTokens(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.AuthenticateFrom(ctx, "192.0.2.9:1", used); err != nil {
		t.Fatal(err)
	}
	for _, tok := range toks {
		if err := d.RevokeToken(ctx, "acme", tok.ID); err != nil {
			t.Fatal(err)
		}
	}
	// A known-good token is still checked: revocation wins at once.
	if _, err := d.AuthenticateFrom(ctx, "192.0.2.9:1", used); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("revoked: %v", err)
	}
	d.SetAuthLimits(AuthLimits{Disabled: true})
	for range 50 {
		if _, err := d.AuthenticateFrom(ctx, "192.0.2.9:1", "cdt_x"); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("disabled limits: %v", err)
		}
	}
}

func TestAddrKey(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"192.0.2.1:80", "192.0.2.1"},
		{"[::ffff:192.0.2.1]:80", "192.0.2.1"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1%eth0]:443", "2001:db8:1:2::/64"},
		{"[::1]:1", "::/64"},
		{"pipe", "pipe"},
		{"", ""},
	} {
		if got := addrKey(c.in); got != c.want {
			t.Errorf("addrKey(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
