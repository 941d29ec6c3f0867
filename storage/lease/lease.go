// Package lease owns leases on resources (a file path, a path glob, a key
// such as a task's): who holds what, exclusively or shared, until when, and
// under which fencing token. It is the primitive the coordination layers
// build on, in the spirit of etcd's client/v3/concurrency.
//
// A resource is one of:
//
//   - a key: "scheme:name", where scheme is two or more of a-z, 0-9, '+',
//     '-', '.' starting with a letter and comes before any '/', e.g.
//     "task:tk_01…" (task.Path). Keys conflict only with the same key.
//   - a path: a clean, relative, '/'-separated path such as "src/a.go": no
//     leading or trailing '/', no empty, "." or ".." segment, no '\'. The
//     files of a project are leased as "@<project>/<path>"
//     (keyspace.ProjectPath), so the same relative path in two projects
//     is two resources, and a glob there ("@<project>/src/**") stays
//     inside its project: a first segment that starts with '@' is never a
//     pattern.
//   - a glob: a path with '*', '?' or '[' in it. Each segment follows
//     path.Match ('*' any run of characters, '?' one character, "[a-z]" and
//     "[^a-z]" classes; no '\' escapes), and a segment that is exactly "**"
//     matches zero or more whole segments: "src/**/*.go" matches "src/a.go"
//     and "src/x/y/b.go", and "src/**" matches "src" and everything below
//     it. '**' inside a longer segment is refused.
//
// Two resources conflict when they are the same key or some path matches
// both: a path conflicts with the globs that match it, and two globs
// conflict when they match a common path (Overlap decides it exactly, by
// searching the product of the two patterns' automata).
//
// Invariants a caller may rely on:
//   - at every commit, the grants recorded on conflicting resources are
//     all shared or all held by one agent (an Acquire removes reclaimable
//     conflicting grants before it adds its own);
//   - every grant carries a fencing token that strictly increases per
//     resource, across releases, expiries and reclaims;
//   - CheckFence, called inside the transaction of a write, accepts only
//     the token of a grant that is still recorded, so a holder whose lease
//     was reclaimed, force-released or replaced cannot write through us;
//   - a grant whose TTL has passed, or whose agent is gone or offline
//     (agent.Liveness.Absent), stays recorded until someone needs it: a conflicting
//     Acquire reclaims it (lease.reclaimed) in the transaction that grants
//     the new token, and Sweep removes it (lease.expired, lease.reclaimed).
//
// Every mutation is one transaction that also appends its audit event
// (lease.acquired, lease.renewed, lease.released, lease.forced,
// lease.expired, lease.reclaimed), whose path is the resource. Acquire,
// Renew and Release take a caller's reads and writes into that
// transaction through a txhook.Hook (AcquireWith, RenewWith, ReleaseWith);
// they keep no retry marker of their own, so they ignore Hook.Guarded.
//
// It imports storage/kv, storage/keyspace, storage/audit, storage/tenant,
// storage/agent (liveness), storage/message (to notify the holder of a
// forced release), storage/project (the form of a project's paths) and
// storage/txhook (the Hook of AcquireWith, RenewWith and ReleaseWith). It
// must not import storage/task nor any transport.
package lease

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/errclass"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/storage/txhook"
)

// Mode is how a lease is held.
type Mode string

// Modes.
const (
	// Exclusive conflicts with every other agent's lease on an overlapping
	// resource.
	Exclusive Mode = "exclusive"
	// Shared coexists with other shared leases and conflicts with
	// exclusive ones.
	Shared Mode = "shared"
)

// Limits.
const (
	DefaultTTL = 2 * time.Minute
	MinTTL     = time.Second
	MaxTTL     = 24 * time.Hour
	// MaxHolders is the most grants one resource records (shared leases).
	MaxHolders = 64
	// MaxReason is the longest force-release reason, in bytes.
	MaxReason = 500
	// sweepBatch bounds the resources one sweeping transaction examines.
	sweepBatch = 256
)

// Errors, wrapped with detail; match them with errors.Is. A conflict is a
// *ConflictError and a refused fence a *FenceError; permission errors wrap
// tenant.ErrForbidden and an unknown agent agent.ErrNotFound.
var (
	// ErrInvalid: an argument is missing, malformed or too large.
	ErrInvalid = errclass.New(errclass.Invalid, "invalid argument")
	// ErrConflict: another agent holds a conflicting lease.
	ErrConflict = errclass.New(errclass.Conflict, "lease conflict")
	// ErrNotHeld: the caller holds no lease on the resource with that
	// token (it was released, reclaimed or force-released).
	ErrNotHeld = errclass.New(errclass.NotFound, "lease not held")
	// ErrFenced: a write presented a fencing token that is not the one of
	// a current grant.
	ErrFenced = errclass.New(errclass.Conflict, "stale fencing token")
	// ErrGone: the acting agent is gone or retired; its lease would be
	// reclaimable at once.
	ErrGone = errclass.New(errclass.Conflict, "agent is gone")
	// ErrTooManyHolders: the resource already records MaxHolders grants.
	ErrTooManyHolders = errclass.New(errclass.Conflict, "too many holders")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("lease: %w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Request asks for a lease.
type Request struct {
	// Resource is a path, a glob or a key (see the package documentation).
	Resource string
	// Mode is Exclusive when empty.
	Mode Mode
	// TTL is how long the lease lasts without renewal; DefaultTTL when
	// zero, within [MinTTL, MaxTTL].
	TTL time.Duration
}

// Lease is one grant.
type Lease struct {
	Resource string        `json:"resource"`
	Agent    string        `json:"agent"`
	User     string        `json:"user"`
	Mode     Mode          `json:"mode"`
	Token    int64         `json:"token"`
	Acquired time.Time     `json:"acquired"`
	Expires  time.Time     `json:"expires"`
	TTL      time.Duration `json:"ttl"`
}

// Holder is a grant as others see it: with its agent's liveness.
type Holder struct {
	Lease
	AgentName string         `json:"agent_name,omitempty"`
	Liveness  agent.Liveness `json:"liveness"`
	LastSeen  time.Time      `json:"last_seen,omitzero"`
	// Expired is set when the grant's TTL has passed (it is reclaimable).
	Expired bool `json:"expired,omitempty"`
	// goneAt is when the holder turns gone without another heartbeat.
	goneAt time.Time
}

// ConflictError reports the holders that keep a lease from being granted.
type ConflictError struct {
	Resource string
	Mode     Mode
	Holders  []Holder
	now      time.Time
	// seen are the lease keys and values the refusal was based on, for
	// AcquireWait's race-free watch.
	seen []kv.KeyValue
}

func (e *ConflictError) Error() string {
	var b strings.Builder
	how := "exclusively"
	if e.Mode == Shared {
		how = "shared"
	}
	fmt.Fprintf(&b, "lease: %v: cannot take %q %s: ", ErrConflict, e.Resource, how)
	allShared := true
	for i, h := range e.Holders {
		if i > 0 {
			b.WriteString("; ")
		}
		name := h.Agent
		if h.AgentName != "" {
			name += " (" + h.AgentName + ")"
		}
		what := "it"
		if h.Resource != e.Resource {
			what = fmt.Sprintf("%q", h.Resource)
		}
		held := "exclusively"
		if h.Mode == Shared {
			held = "shared"
		} else {
			allShared = false
		}
		seen := "never seen"
		if !h.LastSeen.IsZero() {
			seen = "last seen " + e.now.Sub(h.LastSeen).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(&b, "agent %s holds %s %s (%s, %s) until %s", name, what, held, h.Liveness, seen, h.Expires.Format(time.RFC3339))
	}
	b.WriteString(". Wait for the release or expiry (AcquireWait)")
	if allShared && e.Mode == Exclusive {
		b.WriteString(", take a shared lease")
	}
	b.WriteString(" or ask the holder to release it")
	return b.String()
}

// Is makes a *ConflictError match ErrConflict.
func (e *ConflictError) Is(target error) bool { return errors.Is(ErrConflict, target) }

// FenceError reports a refused fencing token.
type FenceError struct {
	Resource string
	Agent    string
	Token    int64
	// Latest is the last token granted on the resource (0 if none ever).
	Latest int64
	// Holders are the agents holding the resource now.
	Holders []string
}

func (e *FenceError) Error() string {
	held, advice := "nobody holds it now", "acquire the lease again and retry with its token"
	if len(e.Holders) > 0 {
		var hs []string
		advice = "wait for its release or ask the holder to release it"
		for _, h := range e.Holders {
			if h == e.Agent {
				h += " itself, with another token"
				advice = "retry with the token of the agent's own grant"
			}
			hs = append(hs, h)
		}
		held = "it is held by " + strings.Join(hs, ", ")
	}
	return fmt.Sprintf("lease: %v: agent %s presented token %d for %q, which is not a current grant (latest token %d; %s); %s",
		ErrFenced, e.Agent, e.Token, e.Resource, e.Latest, held, advice)
}

// Is makes a *FenceError match ErrFenced.
func (e *FenceError) Is(target error) bool { return errors.Is(ErrFenced, target) }

// grant is a stored grant; the resource is the key.
type grant struct {
	Agent    string        `json:"a"`
	User     string        `json:"u"`
	Mode     Mode          `json:"m"`
	Token    int64         `json:"t"`
	Acquired time.Time     `json:"at"`
	Expires  time.Time     `json:"exp"`
	TTL      time.Duration `json:"ttl"`
}

func (g grant) lease(resource string) Lease {
	return Lease{Resource: resource, Agent: g.Agent, User: g.User, Mode: g.Mode, Token: g.Token,
		Acquired: g.Acquired, Expires: g.Expires, TTL: g.TTL}
}

func (g grant) expired(now time.Time) bool { return !now.Before(g.Expires) }

// entry is one resource's stored grants, loaded in a transaction.
type entry struct {
	res    resource
	key    []byte
	raw    []byte // the stored value as read
	grants []grant
	dirty  bool
}

func loadEntry(tx kv.ReadTx, sp keyspace.TenantSpace, res resource) (*entry, error) {
	key, err := sp.Lease(res.raw)
	if err != nil {
		return nil, invalid("%v", err)
	}
	v, err := tx.Get(key)
	if err != nil {
		return nil, err
	}
	e := &entry{res: res, key: key, raw: v}
	if v != nil {
		if err := json.Unmarshal(v, &e.grants); err != nil {
			return nil, fmt.Errorf("lease: corrupt lease %s: %w", kv.DisplayKey(key), err)
		}
	}
	return e, nil
}

// store writes the entry back: the grants, and the glob marker while a glob
// has any.
func (e *entry) store(tx kv.Tx, sp keyspace.TenantSpace) error {
	if !e.dirty {
		return nil
	}
	var marker []byte
	if e.res.kind == kindGlob {
		var err error
		if marker, err = sp.LeaseGlob(e.res.raw); err != nil {
			return err
		}
	}
	if len(e.grants) == 0 {
		tx.Clear(e.key)
		if marker != nil {
			tx.Clear(marker)
		}
		return nil
	}
	b, err := json.Marshal(e.grants)
	if err != nil {
		return err
	}
	tx.Set(e.key, b)
	if marker != nil {
		tx.Set(marker, nil)
	}
	return nil
}

// remove drops the grant with token t and reports whether it was there.
func (e *entry) remove(t int64) (grant, bool) {
	for i, g := range e.grants {
		if g.Token == t {
			e.grants = slices.Delete(e.grants, i, i+1)
			e.dirty = true
			return g, true
		}
	}
	return grant{}, false
}

// candidates loads every resource that may conflict with res: its own
// entry first, then every glob lease, then (for a glob) every lease under
// its literal prefix. Only resources that overlap res are returned.
func candidates(tx kv.ReadTx, sp keyspace.TenantSpace, res resource) ([]*entry, error) {
	own, err := loadEntry(tx, sp, res)
	if err != nil {
		return nil, err
	}
	out := []*entry{own}
	if res.kind == kindKey {
		return out, nil
	}
	seen := map[string]bool{res.raw: true}
	add := func(key, value []byte, sub keyspace.Subspace, load bool) error {
		t, err := sub.Unpack(key)
		if err != nil || len(t) != 1 {
			return fmt.Errorf("lease: corrupt key %s: %v", kv.DisplayKey(key), err)
		}
		name, ok := t[0].(string)
		if !ok {
			return fmt.Errorf("lease: corrupt key %s", kv.DisplayKey(key))
		}
		if seen[name] {
			return nil
		}
		seen[name] = true
		r, err := parseResource(name)
		if err != nil {
			return fmt.Errorf("lease: stored resource %q no longer parses: %v", name, err)
		}
		if !overlap(res, r) {
			return nil
		}
		var e *entry
		if load {
			if e, err = loadEntry(tx, sp, r); err != nil {
				return err
			}
		} else {
			e = &entry{res: r, key: key, raw: value}
			if err := json.Unmarshal(value, &e.grants); err != nil {
				return fmt.Errorf("lease: corrupt lease %s: %w", kv.DisplayKey(key), err)
			}
		}
		out = append(out, e)
		return nil
	}
	globs := sp.LeaseGlobs()
	b, e := globs.Range()
	it := tx.GetRange(b, e, kv.RangeOptions{})
	for it.Next() {
		if err := add(it.KeyValue().Key, nil, globs, true); err != nil {
			return nil, err
		}
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	if res.kind == kindGlob {
		b, e, err := sp.LeasesWithPrefix(res.literalPrefix())
		if err != nil {
			return nil, invalid("%v", err)
		}
		it := tx.GetRange(b, e, kv.RangeOptions{})
		for it.Next() {
			p := it.KeyValue()
			if err := add(p.Key, p.Value, sp.Leases(), false); err != nil {
				return nil, err
			}
		}
		if err := it.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// holderOf describes a grant with its agent's liveness; an agent that no
// longer exists counts as gone.
func holderOf(tx kv.ReadTx, sc *tenant.Scope, resource string, g grant, now time.Time) (Holder, error) {
	a, err := agent.Read(tx, sc, g.Agent, now)
	return holderFrom(a, err, resource, g, now)
}

// holderIn is holderOf inside a read-write transaction that acts only on
// holders it may reclaim: the holder's heartbeat is read as a snapshot
// (agent.Glimpse), so the transaction does not conflict with the
// heartbeats of live holders, which it leaves alone; a holder it would
// reclaim for looking absent is read again with a conflict (holderOf), so
// that a heartbeat landing before the commit makes it retry.
func holderIn(tx kv.Tx, sc *tenant.Scope, resource string, g grant, now time.Time) (Holder, error) {
	a, err := agent.Glimpse(tx, sc, g.Agent, now)
	h, err := holderFrom(a, err, resource, g, now)
	if err != nil || h.Expired || !h.Liveness.Absent() {
		return h, err
	}
	return holderOf(tx, sc, resource, g, now)
}

func holderFrom(a agent.Agent, err error, resource string, g grant, now time.Time) (Holder, error) {
	h := Holder{Lease: g.lease(resource), Liveness: agent.Gone, Expired: g.expired(now)}
	switch {
	case errors.Is(err, agent.ErrNotFound):
	case err != nil:
		return h, err
	default:
		h.AgentName, h.Liveness, h.LastSeen = a.Name, a.Liveness, a.LastSeen
		h.goneAt = a.LastSeen.Add(agent.GoneAfter * a.TTL)
		if a.IsRetired() {
			h.Liveness = agent.Gone
		}
	}
	return h, nil
}

// reclaimable reports why a conflicting grant may be taken over, or "".
func (h Holder) reclaimable() string {
	switch {
	case h.Expired:
		return "expired"
	case h.Liveness.Absent():
		return "holder " + string(h.Liveness)
	}
	return ""
}

// actor returns the agent the scope acts as: leases are held by agents.
func actor(sc *tenant.Scope) (string, error) {
	id := sc.Principal().Agent
	if id == "" {
		return "", invalid("the scope acts as no agent; register one (agent.Register) and act as it (Scope.WithAgent)")
	}
	if _, err := sc.Space().Agent(id); err != nil {
		return "", invalid("%v", err)
	}
	return id, nil
}

func (r Request) normalize() (resource, Request, error) {
	res, err := parseResource(r.Resource)
	if err != nil {
		return res, r, err
	}
	switch r.Mode {
	case "":
		r.Mode = Exclusive
	case Exclusive, Shared:
	default:
		return res, r, invalid("mode %q: send %q or %q", r.Mode, Exclusive, Shared)
	}
	if r.TTL == 0 {
		r.TTL = DefaultTTL
	}
	if r.TTL < MinTTL || r.TTL > MaxTTL {
		return res, r, invalid("ttl %v is outside [%v, %v]; send 0 for the default of %v", r.TTL, MinTTL, MaxTTL, DefaultTTL)
	}
	return res, r, nil
}

// event returns a lease event about resource. The event of a project's
// file (or glob) names the project and the path relative to its root, as
// the watcher's events of the file do, so that both share the log's path
// index entry; its summary names the file by that path.
func event(sc *tenant.Scope, kind, resource, summary string, attrs map[string]any) audit.Event {
	ev := sc.Event(kind, summary)
	ev.Path = resource
	if f, ok := project.ParseFile(resource); ok {
		ev.Project, ev.Path = f.Project, f.Rel
		ev.Summary = strings.ReplaceAll(summary, resource, f.Rel)
	}
	ev.Attrs = attrs
	return ev
}

// Acquire grants the scope's agent a lease on req.Resource, or returns a
// *ConflictError naming the live holders of conflicting leases. Expired
// conflicting grants and those of gone agents are reclaimed in the same
// transaction. Acquiring what the agent already holds in the same mode
// renews it and keeps its token; in the other mode it replaces the grant
// with a new token.
func Acquire(ctx context.Context, sc *tenant.Scope, req Request) (Lease, error) {
	return AcquireWith(ctx, sc, req, txhook.Hook[Lease]{})
}

// AcquireWith is Acquire with h's reads and writes in its transaction:
// h.After gets the lease granted (or renewed). A refusal (a conflict, a
// gone agent, too many holders) ends the transaction before h.After.
func AcquireWith(ctx context.Context, sc *tenant.Scope, req Request, h txhook.Hook[Lease]) (Lease, error) {
	if err := sc.CanWrite(); err != nil {
		return Lease{}, err
	}
	me, err := actor(sc)
	if err != nil {
		return Lease{}, err
	}
	res, req, err := req.normalize()
	if err != nil {
		return Lease{}, err
	}
	sp := sc.Space()
	fenceKey, err := sp.LeaseFence(res.raw)
	if err != nil {
		return Lease{}, invalid("%v", err)
	}
	now := agent.Now(ctx)
	var out Lease
	_, err = sc.Store().Update(ctx, func(tx kv.Tx) error {
		if err := h.RunBefore(tx); err != nil {
			return err
		}
		// A snapshot read of the caller's heartbeat (agent.Glimpse): it
		// heartbeats on every call, and a heartbeat landing meanwhile can
		// only make it more alive. Refusing commits nothing.
		self, err := agent.Glimpse(tx, sc, me, now)
		if err != nil {
			return err
		}
		if self.IsRetired() || self.Liveness == agent.Gone {
			return fmt.Errorf("lease: %w: agent %s is %s (last seen %s); heartbeat first (agent.Heartbeat)",
				ErrGone, me, self.Liveness, self.LastSeen.Format(time.RFC3339))
		}
		entries, err := candidates(tx, sp, res)
		if err != nil {
			return err
		}
		own := entries[0]
		conflict := &ConflictError{Resource: res.raw, Mode: req.Mode, now: now}
		type reclaim struct {
			e      *entry
			h      Holder
			reason string
		}
		var reclaims []reclaim
		var mineToken int64
		for _, e := range entries {
			for i := range e.grants {
				g := &e.grants[i]
				if g.Agent == me {
					if e == own {
						mineToken = g.Token
					}
					continue
				}
				if req.Mode == Shared && g.Mode == Shared {
					continue
				}
				h, err := holderIn(tx, sc, e.res.raw, *g, now)
				if err != nil {
					return err
				}
				if why := h.reclaimable(); why != "" {
					reclaims = append(reclaims, reclaim{e, h, why})
					continue
				}
				conflict.Holders = append(conflict.Holders, h)
				conflict.seen = append(conflict.seen, kv.KeyValue{Key: e.key, Value: e.raw})
			}
		}
		if len(conflict.Holders) > 0 {
			return conflict
		}
		w := sc.Log().BatchWriter(tx)
		for _, r := range reclaims {
			r.e.remove(r.h.Token)
			if _, err := w.Append(event(sc, "lease.reclaimed", r.e.res.raw,
				fmt.Sprintf("lease on %s (token %d) of agent %s reclaimed for agent %s: %s", r.e.res.raw, r.h.Token, r.h.Agent, me, r.reason),
				map[string]any{"holder": r.h.Agent, "token": r.h.Token, "reason": r.reason, "for": me, "expires": r.h.Expires})); err != nil {
				return err
			}
		}
		var mine *grant
		for i := range own.grants {
			if mineToken != 0 && own.grants[i].Token == mineToken {
				mine = &own.grants[i]
			}
		}
		if mine != nil && mine.Mode == req.Mode {
			mine.Expires, mine.TTL = now.Add(req.TTL), req.TTL
			own.dirty = true
			out = mine.lease(res.raw)
			if _, err := w.Append(event(sc, "lease.renewed", res.raw,
				fmt.Sprintf("lease on %s (token %d) renewed by acquiring it again", res.raw, mine.Token),
				map[string]any{"mode": string(req.Mode), "token": mine.Token, "ttl_ms": req.TTL.Milliseconds(), "expires": mine.Expires})); err != nil {
				return err
			}
		} else {
			var previous int64
			if mine != nil {
				previous = mine.Token
				own.remove(mine.Token)
			}
			if len(own.grants) >= MaxHolders {
				return fmt.Errorf("lease: %w: %q already has %d holders; try again after some release it", ErrTooManyHolders, res.raw, len(own.grants))
			}
			fv, err := tx.Get(fenceKey)
			if err != nil {
				return err
			}
			token := kv.Int64(fv) + 1
			tx.Set(fenceKey, kv.EncodeInt64(token))
			g := grant{Agent: me, User: sc.Principal().User, Mode: req.Mode, Token: token, Acquired: now, Expires: now.Add(req.TTL), TTL: req.TTL}
			own.grants = append(own.grants, g)
			own.dirty = true
			out = g.lease(res.raw)
			attrs := map[string]any{"mode": string(req.Mode), "token": token, "ttl_ms": req.TTL.Milliseconds(), "expires": g.Expires}
			if previous != 0 {
				attrs["replaces_token"] = previous
			}
			if _, err := w.Append(event(sc, "lease.acquired", res.raw,
				fmt.Sprintf("%s lease on %s acquired (token %d)", req.Mode, res.raw, token), attrs)); err != nil {
				return err
			}
		}
		for _, e := range entries {
			if err := e.store(tx, sp); err != nil {
				return err
			}
		}
		if err := h.RunAfter(tx, w, out); err != nil {
			return err
		}
		w.Finish()
		return nil
	})
	if err != nil {
		return Lease{}, err
	}
	return out, nil
}

// AcquireWait is Acquire that, on a conflict, waits until a conflicting
// lease changes (a watch on its key) or may have become reclaimable, and
// tries again, until it is granted or ctx ends.
func AcquireWait(ctx context.Context, sc *tenant.Scope, req Request) (Lease, error) {
	for {
		l, err := Acquire(ctx, sc, req)
		var ce *ConflictError
		if !errors.As(err, &ce) {
			return l, err
		}
		if err := waitChange(ctx, sc, ce); err != nil {
			return Lease{}, err
		}
	}
}

// waitChange waits until one of the keys a conflict was based on differs
// from what the refusal saw, or until the earliest moment a holder may
// become reclaimable (its expiry, or when it would turn gone without a
// heartbeat), or ctx ends.
func waitChange(ctx context.Context, sc *tenant.Scope, ce *ConflictError) error {
	const maxKeys = 8
	wait := time.Duration(1<<63 - 1)
	for _, h := range ce.Holders {
		wait = min(wait, h.Expires.Sub(ce.now))
		if !h.goneAt.IsZero() {
			wait = min(wait, h.goneAt.Sub(ce.now))
		}
	}
	// Past the holder's expiry the next Acquire reclaims; poll at least
	// that often, and now and then in case of a clock change.
	wait = min(max(wait, 5*time.Millisecond), 30*time.Second)
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var watches []kv.Watch
	changed := false
	err := sc.Store().View(wctx, func(tx kv.ReadTx) error {
		for _, w := range watches {
			w.Cancel()
		}
		watches, changed = watches[:0], false
		for i, s := range ce.seen {
			if i == maxKeys {
				break
			}
			v, err := tx.Get(s.Key)
			if err != nil {
				return err
			}
			if string(v) != string(s.Value) {
				changed = true
				return nil
			}
			watches = append(watches, tx.Watch(s.Key))
		}
		return nil
	})
	defer func() {
		for _, w := range watches {
			w.Cancel()
		}
	}()
	if err != nil || changed {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return nil
	}
	fired := make(chan struct{}, len(watches))
	for _, w := range watches {
		go func() {
			if w.Wait(wctx) == nil {
				fired <- struct{}{}
			}
		}()
	}
	select {
	case <-fired:
	case <-wctx.Done():
	}
	return ctx.Err()
}

// Renew extends the scope's agent's grant on resource with token by ttl
// (the grant's TTL when zero). A grant still recorded may be renewed after
// its TTL passed; one reclaimed or released returns ErrNotHeld.
func Renew(ctx context.Context, sc *tenant.Scope, resource string, token int64, ttl time.Duration) (Lease, error) {
	return RenewWith(ctx, sc, resource, token, ttl, txhook.Hook[Lease]{})
}

// RenewWith is Renew with h's reads and writes in its transaction: h.After
// gets the renewed lease.
func RenewWith(ctx context.Context, sc *tenant.Scope, resource string, token int64, ttl time.Duration, h txhook.Hook[Lease]) (Lease, error) {
	if err := sc.CanWrite(); err != nil {
		return Lease{}, err
	}
	me, err := actor(sc)
	if err != nil {
		return Lease{}, err
	}
	res, err := parseResource(resource)
	if err != nil {
		return Lease{}, err
	}
	if token <= 0 {
		return Lease{}, invalid("token %d: send the token Acquire returned", token)
	}
	if ttl != 0 && (ttl < MinTTL || ttl > MaxTTL) {
		return Lease{}, invalid("ttl %v is outside [%v, %v]; send 0 to keep the lease's TTL", ttl, MinTTL, MaxTTL)
	}
	sp := sc.Space()
	now := agent.Now(ctx)
	var out Lease
	_, err = sc.Store().Update(ctx, func(tx kv.Tx) error {
		if err := h.RunBefore(tx); err != nil {
			return err
		}
		e, err := loadEntry(tx, sp, res)
		if err != nil {
			return err
		}
		var g *grant
		for i := range e.grants {
			if e.grants[i].Agent == me && e.grants[i].Token == token {
				g = &e.grants[i]
			}
		}
		if g == nil {
			return notHeld(e, me, token)
		}
		if ttl != 0 {
			g.TTL = ttl
		}
		g.Expires = now.Add(g.TTL)
		e.dirty = true
		out = g.lease(res.raw)
		if err := e.store(tx, sp); err != nil {
			return err
		}
		w := sc.Log().BatchWriter(tx)
		if _, err := w.Append(event(sc, "lease.renewed", res.raw,
			fmt.Sprintf("lease on %s (token %d) renewed until %s", res.raw, token, g.Expires.Format(time.RFC3339)),
			map[string]any{"token": token, "ttl_ms": g.TTL.Milliseconds(), "expires": g.Expires})); err != nil {
			return err
		}
		if err := h.RunAfter(tx, w, out); err != nil {
			return err
		}
		w.Finish()
		return nil
	})
	if err != nil {
		return Lease{}, err
	}
	return out, nil
}

func notHeld(e *entry, me string, token int64) error {
	var hs []string
	advice := "it was released, reclaimed or force-released: acquire it again"
	own := false
	for _, g := range e.grants {
		if g.Agent == me {
			hs = append(hs, fmt.Sprintf("agent %s itself (token %d)", g.Agent, g.Token))
			advice, own = fmt.Sprintf("send its token %d", g.Token), true
			continue
		}
		hs = append(hs, fmt.Sprintf("agent %s (token %d)", g.Agent, g.Token))
		if !own {
			advice = "it is another's: wait for its release or ask the holder to release it"
		}
	}
	held := "nobody holds it now"
	if len(hs) > 0 {
		held = "held by " + strings.Join(hs, ", ")
	}
	return fmt.Errorf("lease: %w: agent %s holds no lease on %q with token %d (%s); %s",
		ErrNotHeld, me, e.res.raw, token, held, advice)
}

// Release ends the scope's agent's grant on resource with token.
func Release(ctx context.Context, sc *tenant.Scope, resource string, token int64) error {
	return ReleaseWith(ctx, sc, resource, token, txhook.Hook[Lease]{})
}

// ReleaseWith is Release with h's reads and writes in its transaction:
// h.After gets the grant released.
func ReleaseWith(ctx context.Context, sc *tenant.Scope, resource string, token int64, h txhook.Hook[Lease]) error {
	if err := sc.CanWrite(); err != nil {
		return err
	}
	me, err := actor(sc)
	if err != nil {
		return err
	}
	res, err := parseResource(resource)
	if err != nil {
		return err
	}
	if token <= 0 {
		return invalid("token %d: send the token Acquire returned", token)
	}
	sp := sc.Space()
	_, err = sc.Store().Update(ctx, func(tx kv.Tx) error {
		if err := h.RunBefore(tx); err != nil {
			return err
		}
		e, err := loadEntry(tx, sp, res)
		if err != nil {
			return err
		}
		var found bool
		for _, g := range e.grants {
			found = found || g.Agent == me && g.Token == token
		}
		if !found {
			return notHeld(e, me, token)
		}
		g, _ := e.remove(token)
		if err := e.store(tx, sp); err != nil {
			return err
		}
		w := sc.Log().BatchWriter(tx)
		if _, err := w.Append(event(sc, "lease.released", res.raw,
			fmt.Sprintf("%s lease on %s released (token %d)", g.Mode, res.raw, token),
			map[string]any{"token": token, "mode": string(g.Mode)})); err != nil {
			return err
		}
		if err := h.RunAfter(tx, w, g.lease(res.raw)); err != nil {
			return err
		}
		w.Finish()
		return nil
	})
	return err
}

// ForceRelease removes every grant on exactly resource (admins only),
// appends one lease.forced event per grant and sends each holder a message
// saying so, all in one transaction. It returns the removed grants, or
// ErrNotHeld when there were none.
func ForceRelease(ctx context.Context, sc *tenant.Scope, resource, reason string) ([]Lease, error) {
	if err := sc.RequireAdmin(); err != nil {
		return nil, err
	}
	res, err := parseResource(resource)
	if err != nil {
		return nil, err
	}
	if err := agent.CheckText("reason", reason, MaxReason, true); err != nil {
		return nil, invalid("%v; say why the lease is forced, for its holder and the audit log", err)
	}
	sp := sc.Space()
	now := agent.Now(ctx)
	var out []Lease
	_, err = sc.Store().Update(ctx, func(tx kv.Tx) error {
		out = out[:0]
		e, err := loadEntry(tx, sp, res)
		if err != nil {
			return err
		}
		if len(e.grants) == 0 {
			return fmt.Errorf("lease: %w: nobody holds %q", ErrNotHeld, res.raw)
		}
		w := sc.Log().Writer(tx)
		mw := message.NewWriter(tx, w, sc, now)
		p := sc.Principal()
		for _, g := range e.grants {
			out = append(out, g.lease(res.raw))
			if _, err := w.Append(event(sc, "lease.forced", res.raw,
				fmt.Sprintf("lease on %s (token %d) of agent %s force-released by %s: %s", res.raw, g.Token, g.Agent, p.User, reason),
				map[string]any{"holder": g.Agent, "token": g.Token, "reason": reason})); err != nil {
				return err
			}
			if _, err := agent.Read(tx, sc, g.Agent, now); errors.Is(err, agent.ErrNotFound) {
				continue // nobody to tell
			} else if err != nil {
				return err
			}
			if _, err := mw.Send(message.Outgoing{
				To:      message.To{Agent: g.Agent},
				Subject: "lease force-released: " + textclip.Clip(res.raw, 120),
				Body: fmt.Sprintf("Your %s lease on %q (fencing token %d) was force-released by %s: %s\n"+
					"Writes with that token are refused from now on; acquire the lease again before writing.",
					g.Mode, res.raw, g.Token, p.User, reason),
			}); err != nil {
				return err
			}
		}
		e.grants, e.dirty = nil, true
		return e.store(tx, sp)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CheckFence verifies, inside the caller's transaction, that agentID holds
// a grant on resource (exactly the resource it acquired, which may be a
// glob covering the path written) with fencing token token. It returns a
// *FenceError (ErrFenced) otherwise, so that a write of a holder whose
// lease was reclaimed, force-released or replaced aborts with its
// transaction. It does not read the clock: a grant past its TTL still
// fences until someone reclaims it, which happens in the transaction that
// grants the newer token. The read adds the lease to the transaction's
// conflict set, so a concurrent reclaim makes one of the two retry.
func CheckFence(tx kv.ReadTx, sc *tenant.Scope, resource, agentID string, token int64) error {
	res, err := parseResource(resource)
	if err != nil {
		return err
	}
	if _, err := sc.Space().Agent(agentID); err != nil {
		return invalid("%v; send the id of the agent that holds the lease", err)
	}
	if err := agent.CheckActing(sc, agentID); err != nil {
		return err
	}
	if token <= 0 {
		return invalid("token %d: send the token Acquire returned", token)
	}
	sp := sc.Space()
	e, err := loadEntry(tx, sp, res)
	if err != nil {
		return err
	}
	fe := &FenceError{Resource: res.raw, Agent: agentID, Token: token}
	for _, g := range e.grants {
		if g.Agent == agentID && g.Token == token {
			return nil
		}
		fe.Holders = append(fe.Holders, g.Agent)
	}
	fk, _ := sp.LeaseFence(res.raw)
	v, err := tx.Get(fk)
	if err != nil {
		return err
	}
	fe.Latest = kv.Int64(v)
	return fe
}

// Holders returns every grant on a resource that overlaps resource (the
// resource itself, globs covering it, paths it covers), with liveness and
// expiry, by resource then token.
func Holders(ctx context.Context, sc *tenant.Scope, resource string) ([]Holder, error) {
	res, err := parseResource(resource)
	if err != nil {
		return nil, err
	}
	now := agent.Now(ctx)
	var out []Holder
	err = sc.Store().View(ctx, func(tx kv.ReadTx) error {
		out = out[:0]
		entries, err := candidates(tx, sc.Space(), res)
		if err != nil {
			return err
		}
		for _, e := range entries {
			for _, g := range e.grants {
				h, err := holderOf(tx, sc, e.res.raw, g, now)
				if err != nil {
					return err
				}
				out = append(out, h)
			}
		}
		sortHolders(out)
		return nil
	})
	return out, err
}

func sortHolders(hs []Holder) {
	slices.SortFunc(hs, func(a, b Holder) int {
		if c := strings.Compare(a.Resource, b.Resource); c != 0 {
			return c
		}
		return cmp.Compare(a.Token, b.Token)
	})
}

// List returns every grant of the tenant (only agent's when agent is not
// empty), with liveness and expiry, by resource then token.
func List(ctx context.Context, sc *tenant.Scope, agentID string) ([]Holder, error) {
	if agentID != "" {
		if _, err := sc.Space().Agent(agentID); err != nil {
			return nil, invalid("%v", err)
		}
	}
	now := agent.Now(ctx)
	sp := sc.Space()
	var out []Holder
	err := sc.Store().View(ctx, func(tx kv.ReadTx) error {
		out = out[:0]
		b, e := sp.Leases().Range()
		it := tx.GetRange(b, e, kv.RangeOptions{})
		for it.Next() {
			en, err := decodeEntry(sp, it.KeyValue())
			if err != nil {
				return err
			}
			for _, g := range en.grants {
				if agentID != "" && g.Agent != agentID {
					continue
				}
				h, err := holderOf(tx, sc, en.res.raw, g, now)
				if err != nil {
					return err
				}
				out = append(out, h)
			}
		}
		return it.Err()
	})
	return out, err
}

// decodeEntry decodes a stored lease.
func decodeEntry(sp keyspace.TenantSpace, p kv.KeyValue) (*entry, error) {
	t, err := sp.Leases().Unpack(p.Key)
	if err != nil || len(t) != 1 {
		return nil, fmt.Errorf("lease: corrupt key %s: %v", kv.DisplayKey(p.Key), err)
	}
	name, ok := t[0].(string)
	if !ok {
		return nil, fmt.Errorf("lease: corrupt key %s", kv.DisplayKey(p.Key))
	}
	res, err := parseResource(name)
	if err != nil {
		return nil, fmt.Errorf("lease: stored resource %q no longer parses: %v", name, err)
	}
	e := &entry{res: res, key: p.Key, raw: p.Value}
	if err := json.Unmarshal(p.Value, &e.grants); err != nil {
		return nil, fmt.Errorf("lease: corrupt lease %s: %w", kv.DisplayKey(p.Key), err)
	}
	return e, nil
}

// Sweep removes, at time now, every grant past its TTL (lease.expired) and
// every grant of a gone, offline, retired or unknown agent (lease.reclaimed), in
// transactions of at most sweepBatch resources. It returns the removed
// grants.
func Sweep(ctx context.Context, sc *tenant.Scope, now time.Time) ([]Lease, error) {
	if err := sc.CanWrite(); err != nil {
		return nil, err
	}
	now = now.UTC()
	sp := sc.Space()
	_, end := sp.Leases().Range()
	begin, _ := sp.Leases().Range()
	var removed []Lease
	for {
		var batch []Lease
		var next []byte
		_, err := sc.Store().Update(ctx, func(tx kv.Tx) error {
			batch, next = batch[:0], nil
			it := tx.GetRange(begin, end, kv.RangeOptions{Limit: sweepBatch})
			var entries []*entry
			n := 0
			for it.Next() {
				n++
				e, err := decodeEntry(sp, it.KeyValue())
				if err != nil {
					return err
				}
				entries = append(entries, e)
				if n == sweepBatch {
					next = kv.KeyAfter(e.key)
				}
			}
			if err := it.Err(); err != nil {
				return err
			}
			w := sc.Log().Writer(tx)
			for _, e := range entries {
				for _, g := range slices.Clone(e.grants) {
					h, err := holderIn(tx, sc, e.res.raw, g, now)
					if err != nil {
						return err
					}
					kind, why := "", h.reclaimable()
					switch why {
					case "":
						continue
					case "expired":
						kind = "lease.expired"
					default:
						kind = "lease.reclaimed"
					}
					e.remove(g.Token)
					batch = append(batch, g.lease(e.res.raw))
					if _, err := w.Append(event(sc, kind, e.res.raw,
						fmt.Sprintf("lease on %s (token %d) of agent %s removed by the sweeper: %s", e.res.raw, g.Token, g.Agent, why),
						map[string]any{"holder": g.Agent, "token": g.Token, "reason": why, "expires": g.Expires})); err != nil {
						return err
					}
				}
				if err := e.store(tx, sp); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return removed, err
		}
		removed = append(removed, batch...)
		if next == nil {
			return removed, nil
		}
		begin = next
	}
}
