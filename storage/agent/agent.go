// Package agent owns the registry of the agents working in a tenant: who
// each one is (name, client, model, capabilities, cohort), when it was last
// seen, and its liveness (alive, stale, gone, offline) derived from
// heartbeats, a per-agent TTL and the offline mark its host process leaves
// when it disconnects (MarkOffline). Silent agents are retired by Sweep and
// revived by their next heartbeat or registration; a retired agent keeps
// its id, its inbox and its cohort membership.
//
// An agent's identity is (tenant, user, client, name): registering the same
// identity again returns the same id. Every mutation is one transaction
// that also appends its audit event (agent.registered, agent.updated,
// agent.retired, agent.revived, agent.offline). Heartbeats are not
// audited, so that the
// log records changes rather than a pulse.
//
// This package also holds the pieces the other coordination layers share:
// the injectable clock (WithClock, Now) and the id generator (NewID).
//
// It imports storage/kv, storage/keyspace, storage/audit and
// storage/tenant. It must not import the layers built on it (storage/lease,
// storage/message, storage/task) nor any transport.
package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/coditect/coditect/storage/errclass"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
)

// Liveness is what an agent's heartbeats say about it.
type Liveness string

// Liveness values.
const (
	// Alive: seen within its TTL.
	Alive Liveness = "alive"
	// Stale: silent for more than its TTL but not yet gone; its leases
	// still hold.
	Stale Liveness = "stale"
	// Gone: silent for more than GoneAfter TTLs. Its leases are
	// reclaimable and Sweep retires it.
	Gone Liveness = "gone"
	// Offline: its host process told us it ended (stdin closed, the HTTP
	// client went away) and it has not been seen since. Its leases are
	// reclaimable at once, as a gone agent's; they are not released, so
	// the holder's name stays on them until someone needs the resource.
	// Its next heartbeat or registration makes it alive again; Sweep
	// retires it once it is also gone.
	Offline Liveness = "offline"
)

// Absent reports whether an agent in state l is known not to work now
// (gone or offline): what it holds may be taken over.
func (l Liveness) Absent() bool { return l == Gone || l == Offline }

// Limits.
const (
	DefaultTTL = 60 * time.Second
	MinTTL     = time.Second
	MaxTTL     = 24 * time.Hour
	// GoneAfter is how many TTLs of silence make an agent gone.
	GoneAfter = 3

	MaxName         = 128
	MaxClient       = 128
	MaxModel        = 256
	MaxCapabilities = 64
	MaxCapability   = 128
	MaxCohort       = keyspace.MaxIDSize
)

// Errors, wrapped with detail; match them with errors.Is. Permission
// errors wrap tenant.ErrForbidden.
var (
	// ErrInvalid: an argument is missing, malformed or too large.
	ErrInvalid = errclass.New(errclass.Invalid, "invalid argument")
	// ErrNotFound: no agent with that id in the scope's tenant.
	ErrNotFound = errclass.New(errclass.NotFound, "agent not found")
)

// Registration describes an agent.
type Registration struct {
	// Name identifies the agent within its client, e.g. "claude-code" or
	// "reviewer-2". Required.
	Name string
	// Client is the MCP host or program, e.g. "lmstudio" (MCP
	// clientInfo.name). Required.
	Client string
	// Model is the model behind the agent, e.g. "qwen2.5-coder-7b".
	Model string
	// Capabilities are free-form labels, e.g. "go", "review".
	Capabilities []string
	// Cohort is the group the agent works in; empty for none.
	Cohort string
	// TTL is how often the agent promises to heartbeat; DefaultTTL when
	// zero, within [MinTTL, MaxTTL].
	TTL time.Duration
}

// Agent is a registered agent and its liveness at the time it was read.
type Agent struct {
	ID           string        `json:"id"`
	User         string        `json:"user"`
	Name         string        `json:"name"`
	Client       string        `json:"client"`
	Model        string        `json:"model,omitempty"`
	Capabilities []string      `json:"capabilities,omitempty"`
	Cohort       string        `json:"cohort,omitempty"`
	TTL          time.Duration `json:"ttl"`
	Registered   time.Time     `json:"registered"`
	Updated      time.Time     `json:"updated"`
	// Retired is when Sweep retired the agent; zero while it is active.
	Retired time.Time `json:"retired,omitzero"`
	// Offline is when its host process last said it ended (MarkOffline);
	// it counts only while the agent has not been seen since.
	Offline  time.Time `json:"offline,omitzero"`
	LastSeen time.Time `json:"last_seen"`
	Liveness Liveness  `json:"liveness"`
}

// IsRetired reports whether the agent is retired.
func (a Agent) IsRetired() bool { return !a.Retired.IsZero() }

// LivenessAt classifies an agent last seen at lastSeen with the given TTL,
// at time now.
func LivenessAt(now, lastSeen time.Time, ttl time.Duration) Liveness {
	switch age := now.Sub(lastSeen); {
	case age <= ttl:
		return Alive
	case age <= GoneAfter*ttl:
		return Stale
	default:
		return Gone
	}
}

// record is the stored part of an Agent (the heartbeat is its own key).
type record struct {
	ID           string        `json:"id"`
	User         string        `json:"user"`
	Name         string        `json:"name"`
	Client       string        `json:"client"`
	Model        string        `json:"model,omitempty"`
	Capabilities []string      `json:"caps,omitempty"`
	Cohort       string        `json:"cohort,omitempty"`
	TTL          time.Duration `json:"ttl"`
	Registered   time.Time     `json:"registered"`
	Updated      time.Time     `json:"updated"`
	Retired      time.Time     `json:"retired,omitzero"`
	Offline      time.Time     `json:"offline,omitzero"`
}

func (r record) agent(lastSeen, now time.Time) Agent {
	a := Agent{ID: r.ID, User: r.User, Name: r.Name, Client: r.Client, Model: r.Model,
		Capabilities: r.Capabilities, Cohort: r.Cohort, TTL: r.TTL, Registered: r.Registered,
		Updated: r.Updated, Retired: r.Retired, LastSeen: lastSeen, Liveness: LivenessAt(now, lastSeen, r.TTL)}
	if r.offline(lastSeen) {
		a.Offline = r.Offline
		if a.Liveness != Gone {
			a.Liveness = Offline
		}
	}
	return a
}

// offline reports whether the offline mark holds: no heartbeat came after
// it. A heartbeat writes only the heartbeat key, so coming back needs no
// write of the record.
func (r record) offline(lastSeen time.Time) bool {
	return !r.Offline.IsZero() && !lastSeen.After(r.Offline)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("agent: %w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// CheckText validates a free-text field: valid UTF-8 without control
// characters, at most max bytes, and present when required. The
// coordination layers share it so that their errors read alike.
func CheckText(field, s string, max int, required bool) error {
	switch {
	case s == "" && required:
		return fmt.Errorf("%s is empty", field)
	case len(s) > max:
		return fmt.Errorf("%s of %d bytes exceeds the limit of %d bytes", field, len(s), max)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not valid UTF-8", field)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return fmt.Errorf("%s contains a control character", field)
	}
	return nil
}

func (r Registration) normalize() (Registration, error) {
	for _, f := range []struct {
		name, v, example string
		max              int
		required         bool
	}{
		{"name", r.Name, `"claude-code"`, MaxName, true},
		{"client", r.Client, `"lmstudio" (the MCP clientInfo.name)`, MaxClient, true},
		{"model", r.Model, `"qwen2.5-coder-7b"`, MaxModel, false},
		{"cohort", r.Cohort, `"backend"`, MaxCohort, false},
	} {
		if err := CheckText(f.name, f.v, f.max, f.required); err != nil {
			return r, invalid("%v; send a %s such as %s", err, f.name, f.example)
		}
	}
	if r.TTL == 0 {
		r.TTL = DefaultTTL
	}
	if r.TTL < MinTTL || r.TTL > MaxTTL {
		return r, invalid("ttl %v is outside [%v, %v]; send 0 for the default of %v", r.TTL, MinTTL, MaxTTL, DefaultTTL)
	}
	if len(r.Capabilities) > MaxCapabilities {
		return r, invalid("%d capabilities exceed the limit of %d", len(r.Capabilities), MaxCapabilities)
	}
	var caps []string
	for i, c := range r.Capabilities {
		if err := CheckText(fmt.Sprintf("capability %d", i), c, MaxCapability, true); err != nil {
			return r, invalid("%v; send short labels such as \"go\" or \"review\"", err)
		}
		if !slices.Contains(caps, c) {
			caps = append(caps, c)
		}
	}
	r.Capabilities = caps
	return r, nil
}

// agentSpace returns the keys of agent id, with an error that says what to
// send instead of a malformed id.
func agentSpace(sc *tenant.Scope, id string) (keyspace.AgentSpace, error) {
	a, err := sc.Space().Agent(id)
	if err != nil {
		return a, invalid("%v; send the id agent.Register returned", err)
	}
	return a, nil
}

// CheckActing refuses a principal whose token is bound to one agent acting
// as another, the rule tenant.Scope.WithAgent applies.
func CheckActing(sc *tenant.Scope, id string) error {
	p := sc.Principal()
	if p.TokenID != "" && p.Agent != "" && p.Agent != id {
		return fmt.Errorf("agent: %w: the token is bound to agent %q and cannot act as %q", tenant.ErrForbidden, p.Agent, id)
	}
	return nil
}

func load(tx kv.ReadTx, a keyspace.AgentSpace) (record, bool, error) {
	var r record
	v, err := tx.Get(a.Record())
	if err != nil || v == nil {
		return r, false, err
	}
	if err := json.Unmarshal(v, &r); err != nil {
		return r, false, fmt.Errorf("agent: corrupt record %s: %w", kv.DisplayKey(a.Record()), err)
	}
	return r, true, nil
}

func save(tx kv.Tx, a keyspace.AgentSpace, r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tx.Set(a.Record(), b)
	return nil
}

// lastSeen reads the agent's heartbeat key with a read conflict: a
// heartbeat committed before the transaction does makes it retry.
func lastSeen(tx kv.ReadTx, a keyspace.AgentSpace) (time.Time, error) {
	return seenWith(tx.Get, a)
}

// glimpseSeen reads the agent's heartbeat key with a snapshot read, which
// adds no read conflict. Agents set their heartbeat keys on every tool
// call, so a transaction that read them serialisably would conflict with
// every heartbeat committed while it ran — on FoundationDB, a sweep of a
// busy tenant could retry until its context ended. A snapshot read suits
// a decision a later heartbeat cannot make wrong: that an agent is alive
// (a heartbeat only makes it more so; going offline or retired writes the
// record, which is read with a conflict). A decision that it is not —
// retiring it, reclaiming its leases — confirms with lastSeen, whose read
// conflict makes the transaction retry if a heartbeat lands first.
func glimpseSeen(tx kv.Tx, a keyspace.AgentSpace) (time.Time, error) {
	return seenWith(tx.SnapshotGet, a)
}

func seenWith(get func([]byte) ([]byte, error), a keyspace.AgentSpace) (time.Time, error) {
	v, err := get(a.Heartbeat())
	if err != nil || v == nil {
		return time.Time{}, err
	}
	return time.Unix(0, kv.Int64(v)).UTC(), nil
}

func beat(tx kv.Tx, a keyspace.AgentSpace, now time.Time) {
	tx.Set(a.Heartbeat(), kv.EncodeInt64(now.UnixNano()))
}

func notFound(id string) error {
	return fmt.Errorf("agent: %w: %q in this tenant; register it first (agent.Register)", ErrNotFound, id)
}

// Register registers an agent, or returns the agent already registered
// under the same identity (the scope's user, reg.Client, reg.Name) with its
// id, updated to reg. Registering counts as a heartbeat and revives a
// retired agent. A principal whose token is bound to an agent registers
// that agent: a new identity renames it.
func Register(ctx context.Context, sc *tenant.Scope, reg Registration) (Agent, error) {
	if err := sc.CanWrite(); err != nil {
		return Agent{}, err
	}
	reg, err := reg.normalize()
	if err != nil {
		return Agent{}, err
	}
	p := sc.Principal()
	sp := sc.Space()
	idKey, err := sp.AgentIdentity(p.User, reg.Client, reg.Name)
	if err != nil {
		return Agent{}, invalid("%v", err)
	}
	bound := ""
	if p.TokenID != "" {
		bound = p.Agent
	}
	fresh := bound
	if fresh == "" {
		fresh = NewID("ag")
	}
	if _, err := agentSpace(sc, fresh); err != nil {
		return Agent{}, err
	}
	now := Now(ctx)
	var out Agent
	_, err = sc.Store().Update(ctx, func(tx kv.Tx) error {
		w := sc.Log().Writer(tx)
		id := fresh
		v, err := tx.Get(idKey)
		if err != nil {
			return err
		}
		if v != nil {
			id = string(v)
			if bound != "" && id != bound {
				return fmt.Errorf("agent: %w: %s/%s is registered as agent %q; the token is bound to agent %q",
					tenant.ErrForbidden, reg.Client, reg.Name, id, bound)
			}
		}
		a, err := agentSpace(sc, id)
		if err != nil {
			return err
		}
		old, found, err := load(tx, a)
		if err != nil {
			return err
		}
		rec := record{ID: id, User: p.User, Name: reg.Name, Client: reg.Client, Model: reg.Model,
			Capabilities: reg.Capabilities, Cohort: reg.Cohort, TTL: reg.TTL, Registered: now, Updated: now}
		kind, summary := "agent.registered", fmt.Sprintf("agent %s (%s/%s) registered", id, reg.Client, reg.Name)
		attrs := map[string]any{"name": reg.Name, "client": reg.Client, "model": reg.Model,
			"capabilities": reg.Capabilities, "cohort": reg.Cohort, "ttl_ms": reg.TTL.Milliseconds()}
		if found {
			rec.Registered = old.Registered
			if old.User != p.User || old.Client != reg.Client || old.Name != reg.Name {
				// A bound agent under a new identity: move its index entry.
				oldKey, err := sp.AgentIdentity(old.User, old.Client, old.Name)
				if err != nil {
					return err
				}
				tx.Clear(oldKey)
			}
			switch {
			case !old.Retired.IsZero():
				kind, summary = "agent.revived", fmt.Sprintf("agent %s (%s/%s) revived by registering again", id, reg.Client, reg.Name)
			case sameRecord(old, rec):
				rec.Updated = old.Updated
				summary = fmt.Sprintf("agent %s (%s/%s) registered again", id, reg.Client, reg.Name)
				attrs["again"] = true
			default:
				kind, summary = "agent.updated", fmt.Sprintf("agent %s (%s/%s) updated by registering again", id, reg.Client, reg.Name)
			}
			if old.Cohort != "" && old.Cohort != rec.Cohort {
				k, err := sp.CohortMember(old.Cohort, id)
				if err != nil {
					return err
				}
				tx.Clear(k)
			}
		}
		if rec.Cohort != "" {
			k, err := sp.CohortMember(rec.Cohort, id)
			if err != nil {
				return invalid("%v", err)
			}
			tx.Set(k, nil)
		}
		tx.Set(idKey, []byte(id))
		if err := save(tx, a, rec); err != nil {
			return err
		}
		beat(tx, a, now)
		ev := sc.Event(kind, summary)
		ev.Agent = id
		ev.Attrs = attrs
		if _, err := w.Append(ev); err != nil {
			return err
		}
		out = rec.agent(now, now)
		return nil
	})
	if err != nil {
		return Agent{}, err
	}
	return out, nil
}

// sameRecord reports whether registering again changed nothing but times.
func sameRecord(a, b record) bool {
	return a.User == b.User && a.Name == b.Name && a.Client == b.Client && a.Model == b.Model &&
		slices.Equal(a.Capabilities, b.Capabilities) && a.Cohort == b.Cohort && a.TTL == b.TTL
}

// Heartbeat records that agent id is alive now. It reads only the agent's
// record (which heartbeats never write) and writes only the heartbeat key
// (which it never reads), so concurrent heartbeats never conflict on
// FoundationDB. A heartbeat revives a retired agent (agent.revived);
// otherwise it is not audited.
func Heartbeat(ctx context.Context, sc *tenant.Scope, id string) error {
	return update(ctx, sc, id, func(tx kv.Tx, a keyspace.AgentSpace, rec *record, now time.Time) error {
		beat(tx, a, now)
		if rec.Retired.IsZero() {
			return nil
		}
		rec.Retired = time.Time{}
		rec.Updated = now
		if err := save(tx, a, *rec); err != nil {
			return err
		}
		ev := sc.Event("agent.revived", fmt.Sprintf("agent %s (%s/%s) revived by a heartbeat", id, rec.Client, rec.Name))
		ev.Agent = id
		_, err := sc.Log().Writer(tx).Append(ev)
		return err
	})
}

// update runs fn on agent id's record in a transaction, for the scope
// acting as that agent (or as no agent), at now; an unknown agent is
// ErrNotFound and a viewer is refused.
func update(ctx context.Context, sc *tenant.Scope, id string, fn func(tx kv.Tx, a keyspace.AgentSpace, rec *record, now time.Time) error) error {
	if err := sc.CanWrite(); err != nil {
		return err
	}
	a, err := agentSpace(sc, id)
	if err != nil {
		return err
	}
	if err := CheckActing(sc, id); err != nil {
		return err
	}
	now := Now(ctx)
	_, err = sc.Store().Update(ctx, func(tx kv.Tx) error {
		rec, found, err := load(tx, a)
		if err != nil {
			return err
		}
		if !found {
			return notFound(id)
		}
		return fn(tx, a, &rec, now)
	})
	return err
}

// MarkOffline records that agent id's host process ended (reason says
// how, e.g. "stdin closed"), with an agent.offline event: the agent is
// Offline from now until its next heartbeat or registration, and the
// leases it holds are reclaimable at once. An agent that is retired, or
// already offline and not seen since, is left as it is (no event).
func MarkOffline(ctx context.Context, sc *tenant.Scope, id, reason string) error {
	return update(ctx, sc, id, func(tx kv.Tx, a keyspace.AgentSpace, rec *record, now time.Time) error {
		seen, err := lastSeen(tx, a)
		if err != nil || !rec.Retired.IsZero() || rec.offline(seen) {
			return err
		}
		if now.Before(seen) {
			now = seen // a clock behind the last beat still marks it
		}
		rec.Offline = now
		if err := save(tx, a, *rec); err != nil {
			return err
		}
		ev := sc.Event("agent.offline", fmt.Sprintf("agent %s (%s/%s) offline: %s", id, rec.Client, rec.Name, reason))
		ev.Agent = id
		ev.Attrs = map[string]any{"reason": reason, "last_seen": seen}
		_, err = sc.Log().Writer(tx).Append(ev)
		return err
	})
}

// Read returns agent id with its liveness at now, inside a transaction of
// the caller (the lease and message layers use it).
func Read(tx kv.ReadTx, sc *tenant.Scope, id string, now time.Time) (Agent, error) {
	return readWith(tx, sc, id, now, lastSeen)
}

// Check returns an error wrapping ErrNotFound unless agent id is
// registered in the scope's tenant, reading only its record's key (no
// decoding, no heartbeat): for callers that need the agent to exist and
// nothing of it.
func Check(tx kv.ReadTx, sc *tenant.Scope, id string) error {
	a, err := agentSpace(sc, id)
	if err != nil {
		return err
	}
	v, err := tx.Get(a.Record())
	if err != nil {
		return err
	}
	if v == nil {
		return notFound(id)
	}
	return nil
}

// Glimpse is Read inside a read-write transaction with the heartbeat read
// as a snapshot (see glimpseSeen): the transaction does not conflict with
// the agent's heartbeats. Use it where only "alive" is acted on; confirm
// "not alive" with Read before acting on it.
func Glimpse(tx kv.Tx, sc *tenant.Scope, id string, now time.Time) (Agent, error) {
	return readWith(tx, sc, id, now, func(_ kv.ReadTx, a keyspace.AgentSpace) (time.Time, error) { return glimpseSeen(tx, a) })
}

func readWith(tx kv.ReadTx, sc *tenant.Scope, id string, now time.Time, seenBy func(kv.ReadTx, keyspace.AgentSpace) (time.Time, error)) (Agent, error) {
	a, err := agentSpace(sc, id)
	if err != nil {
		return Agent{}, err
	}
	rec, found, err := load(tx, a)
	if err != nil {
		return Agent{}, err
	}
	if !found {
		return Agent{}, notFound(id)
	}
	seen, err := seenBy(tx, a)
	if err != nil {
		return Agent{}, err
	}
	return rec.agent(seen, now), nil
}

// Get returns agent id with its liveness now.
func Get(ctx context.Context, sc *tenant.Scope, id string) (Agent, error) {
	if _, err := agentSpace(sc, id); err != nil {
		return Agent{}, err
	}
	now := Now(ctx)
	var out Agent
	err := sc.Store().View(ctx, func(tx kv.ReadTx) error {
		var err error
		out, err = Read(tx, sc, id, now)
		return err
	})
	return out, err
}

// Filter selects agents in List. Empty fields match every agent.
type Filter struct {
	Cohort   string
	Liveness Liveness
	// Active leaves retired agents out.
	Active bool
}

// List returns the tenant's agents matching f, by id (that is, by
// registration time).
func List(ctx context.Context, sc *tenant.Scope, f Filter) ([]Agent, error) {
	if err := CheckText("cohort", f.Cohort, MaxCohort, false); err != nil {
		return nil, invalid("%v", err)
	}
	switch f.Liveness {
	case "", Alive, Stale, Gone, Offline:
	default:
		return nil, invalid("liveness %q: send alive, stale, gone, offline or nothing", f.Liveness)
	}
	now := Now(ctx)
	var out []Agent
	err := sc.Store().View(ctx, func(tx kv.ReadTx) error {
		out = out[:0]
		var ids []string
		var err error
		if f.Cohort != "" {
			ids, err = MemberIDs(tx, sc, f.Cohort)
		} else {
			ids, err = IDs(tx, sc)
		}
		if err != nil {
			return err
		}
		for _, id := range ids {
			a, err := Read(tx, sc, id, now)
			if err != nil {
				return err
			}
			if (f.Liveness == "" || a.Liveness == f.Liveness) && (!f.Active || !a.IsRetired()) {
				out = append(out, a)
			}
		}
		return nil
	})
	return out, err
}

// Members returns the agents of a cohort, retired ones included, by id.
func Members(ctx context.Context, sc *tenant.Scope, cohort string) ([]Agent, error) {
	if err := CheckText("cohort", cohort, MaxCohort, true); err != nil {
		return nil, invalid("%v; send a cohort name", err)
	}
	return List(ctx, sc, Filter{Cohort: cohort})
}

// IDs returns the ids of every agent of the tenant, retired ones included,
// sorted. It reads the identity index, not the heartbeats, so a broadcast
// does not conflict with agents heartbeating.
func IDs(tx kv.ReadTx, sc *tenant.Scope) ([]string, error) {
	b, e := sc.Space().AgentIdentities().Range()
	pairs, err := kv.Collect(tx.GetRange(b, e, kv.RangeOptions{}))
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(pairs))
	for _, p := range pairs {
		ids = append(ids, string(p.Value))
	}
	slices.Sort(ids)
	return ids, nil
}

// MemberIDs returns the ids of a cohort's members, retired ones included,
// sorted.
func MemberIDs(tx kv.ReadTx, sc *tenant.Scope, cohort string) ([]string, error) {
	sub, err := sc.Space().CohortMembers(cohort)
	if err != nil {
		return nil, invalid("%v", err)
	}
	b, e := sub.Range()
	it := tx.GetRange(b, e, kv.RangeOptions{})
	var ids []string
	for it.Next() {
		t, err := sub.Unpack(it.KeyValue().Key)
		if err != nil || len(t) != 1 {
			return nil, fmt.Errorf("agent: corrupt cohort key %s: %v", kv.DisplayKey(it.KeyValue().Key), err)
		}
		id, ok := t[0].(string)
		if !ok {
			return nil, fmt.Errorf("agent: corrupt cohort key %s", kv.DisplayKey(it.KeyValue().Key))
		}
		ids = append(ids, id)
	}
	return ids, it.Err()
}

// sweepBatch bounds the agents one sweeping transaction examines.
const sweepBatch = 256

// Sweep retires every agent that is gone at now (agent.retired, one event
// each), in transactions of at most sweepBatch agents, and returns them.
// Retired agents keep their id, inbox and cohort; a heartbeat or a new
// registration revives them.
func Sweep(ctx context.Context, sc *tenant.Scope, now time.Time) ([]Agent, error) {
	if err := sc.CanWrite(); err != nil {
		return nil, err
	}
	now = now.UTC()
	var retired []Agent
	after := ""
	for {
		var batch []Agent
		var last string
		var more bool
		_, err := sc.Store().Update(ctx, func(tx kv.Tx) error {
			batch, last, more = batch[:0], "", false
			ids, err := IDs(tx, sc)
			if err != nil {
				return err
			}
			i, _ := slices.BinarySearch(ids, after)
			if after != "" && i < len(ids) && ids[i] == after {
				i++
			}
			ids = ids[i:]
			if len(ids) > sweepBatch {
				ids, more = ids[:sweepBatch], true
			}
			w := sc.Log().Writer(tx)
			for _, id := range ids {
				last = id
				a, err := agentSpace(sc, id)
				if err != nil {
					return err
				}
				rec, found, err := load(tx, a)
				if err != nil || !found || !rec.Retired.IsZero() {
					if err != nil {
						return err
					}
					continue
				}
				seen, err := glimpseSeen(tx, a)
				if err != nil {
					return err
				}
				if LivenessAt(now, seen, rec.TTL) != Gone {
					continue
				}
				// Retiring it: read the heartbeat again with a conflict,
				// so that a heartbeat landing before the commit makes
				// the sweep retry (see glimpseSeen).
				if seen, err = lastSeen(tx, a); err != nil {
					return err
				}
				rec.Retired, rec.Updated = now, now
				if err := save(tx, a, rec); err != nil {
					return err
				}
				ev := sc.Event("agent.retired", fmt.Sprintf("agent %s (%s/%s) retired: silent since %s",
					id, rec.Client, rec.Name, seen.Format(time.RFC3339)))
				ev.Agent = id
				ev.Attrs = map[string]any{"last_seen": seen, "ttl_ms": rec.TTL.Milliseconds()}
				if _, err := w.Append(ev); err != nil {
					return err
				}
				batch = append(batch, rec.agent(seen, now))
			}
			return nil
		})
		if err != nil {
			return retired, err
		}
		retired = append(retired, batch...)
		if !more {
			return retired, nil
		}
		after = last
	}
}
