// Package audit owns the tenant's audit log: the single, complete history
// of what every human and agent did. Events are stored under versionstamps
// (so the log is totally ordered by commit, never by wall clock), indexed by
// session, agent, user, path and kind in the same transaction, queried with
// any combination of those filters, followed live through a watch on a head
// key, swept by a retention policy and exported as JSON Lines.
//
// Other layers append their events in their own transactions through a
// Writer, so that every mutation and its audit event commit together.
//
// A Log is bound to one tenant. Only storage/tenant constructs one (from an
// authenticated principal); transports never call NewLog. This package
// imports only storage/kv and storage/keyspace.
package audit

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/errclass"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
)

// Actor says who made a change.
type Actor string

// Actors.
const (
	ActorHuman   Actor = "human"
	ActorAgent   Actor = "agent"
	ActorUnknown Actor = "unknown"
)

// Attribution is who most likely caused an event and why we think so.
type Attribution struct {
	Actor      Actor   `json:"actor"`
	AgentID    string  `json:"agent_id,omitempty"`
	Model      string  `json:"model,omitempty"`
	Evidence   string  `json:"evidence,omitempty"`
	Confidence float64 `json:"confidence,omitempty"` // 0..1
}

// Event is one entry of the audit log.
type Event struct {
	// ID is the event's versionstamp as 24 hex digits; it orders the
	// tenant's log. Set by the log.
	ID string `json:"id"`
	// Time is the wall time of the append (set by the log when zero). It is
	// informative: the log is ordered by ID.
	Time    time.Time `json:"time"`
	Tenant  string    `json:"tenant"` // set by the log
	User    string    `json:"user,omitempty"`
	Session string    `json:"session,omitempty"`
	// Project is the id of the project the event is about (a file's,
	// a lease's, a session's); Path is then relative to the project root.
	Project     string         `json:"project,omitempty"`
	Agent       string         `json:"agent,omitempty"`
	Kind        string         `json:"kind"`
	Path        string         `json:"path,omitempty"`
	Summary     string         `json:"summary,omitempty"`
	Attrs       map[string]any `json:"attrs,omitempty"`
	Attribution *Attribution   `json:"attribution,omitempty"`
	// IdempotencyKey, when set, makes the append exactly-once: a second
	// append with the same key (a retry) writes nothing and returns the
	// first event's ID. Keys are kept for IdempotencyWindow.
	IdempotencyKey string `json:"-"`
}

// Limits on events, so a bad caller gets a clear error instead of a huge
// value. All well under kv.MaxValueSize.
const (
	MaxSummary   = 2_000
	MaxPath      = keyspace.MaxResourceSize
	MaxIDField   = keyspace.MaxIDSize
	MaxAttrs     = 32 << 10 // encoded JSON
	MaxEventSize = 64 << 10 // encoded JSON
	// IdempotencyWindow is how long idempotency keys are remembered.
	IdempotencyWindow = 24 * time.Hour
)

// Errors.
var (
	// ErrInvalidEvent: an event field is missing, malformed or too large.
	ErrInvalidEvent = errclass.New(errclass.Invalid, "invalid audit event")
	// ErrUnknownKind: the kind is not one of Kinds.
	ErrUnknownKind = errclass.New(errclass.Invalid, "unknown event kind")
	// ErrBadCursor: a cursor that is not one this log handed out.
	ErrBadCursor = errclass.New(errclass.Invalid, "malformed cursor")
	// ErrNotFound: no event with that ID.
	ErrNotFound = errclass.New(errclass.NotFound, "event not found")
)

// Kinds are the event kinds the log accepts.
var kinds = []string{
	"tenant.created", "tenant.updated", "tenant.disabled", "tenant.enabled",
	"user.created", "user.disabled", "user.enabled",
	"token.issued", "token.revoked",
	"session.started", "session.joined", "session.ended", "session.abandoned",
	"project.created", "project.root_added", "project.root_removed", "project.removed",
	"agent.registered", "agent.updated", "agent.retired", "agent.revived", "agent.offline",
	"lease.acquired", "lease.renewed", "lease.released", "lease.expired", "lease.forced", "lease.reclaimed",
	"message.sent", "message.acked",
	"task.created", "task.claimed", "task.updated", "task.assigned",
	"tool.called", "note.added", "decision.recorded",
	"file.created", "file.modified", "file.deleted", "file.renamed",
	"ide.opened", "ide.edited", "ide.saved", "ide.closed", "command.run",
	"ide.request",
	"review.proposed", "review.accepted", "review.rejected", "review.policy_set",
}

// Kinds returns the accepted event kinds, sorted.
func Kinds() []string {
	out := slices.Clone(kinds)
	slices.Sort(out)
	return out
}

// KnownKind reports whether kind is accepted.
func KnownKind(kind string) bool { return slices.Contains(kinds, kind) }

func invalid(format string, args ...any) error {
	return fmt.Errorf("audit: %w: %s", ErrInvalidEvent, fmt.Sprintf(format, args...))
}

// validate checks an event before it is written and returns its encoding.
func validate(ev *Event) ([]byte, error) {
	if ev.Kind == "" {
		return nil, invalid("kind is required (one of %s)", strings.Join(Kinds(), ", "))
	}
	if !KnownKind(ev.Kind) {
		return nil, fmt.Errorf("audit: %w %q: use one of %s", ErrUnknownKind, ev.Kind, strings.Join(Kinds(), ", "))
	}
	for _, f := range []struct{ name, v string }{{"user", ev.User}, {"session", ev.Session}, {"project", ev.Project}, {"agent", ev.Agent}} {
		if len(f.v) > MaxIDField {
			return nil, invalid("%s id of %d bytes exceeds %d", f.name, len(f.v), MaxIDField)
		}
		if !utf8.ValidString(f.v) {
			return nil, invalid("%s id is not valid UTF-8", f.name)
		}
	}
	if len(ev.Path) > MaxPath || !utf8.ValidString(ev.Path) {
		return nil, invalid("path must be valid UTF-8 of at most %d bytes (got %d)", MaxPath, len(ev.Path))
	}
	if len(ev.Summary) > MaxSummary || !utf8.ValidString(ev.Summary) {
		return nil, invalid("summary must be valid UTF-8 of at most %d bytes (got %d)", MaxSummary, len(ev.Summary))
	}
	if len(ev.IdempotencyKey) > MaxIDField {
		return nil, invalid("idempotency key of %d bytes exceeds %d", len(ev.IdempotencyKey), MaxIDField)
	}
	if a := ev.Attribution; a != nil {
		switch a.Actor {
		case ActorHuman, ActorAgent, ActorUnknown:
		default:
			return nil, invalid("attribution actor %q: want human, agent or unknown", a.Actor)
		}
		if a.Confidence < 0 || a.Confidence > 1 {
			return nil, invalid("attribution confidence %v: want 0..1", a.Confidence)
		}
		if len(a.AgentID) > MaxIDField || len(a.Model) > MaxIDField || len(a.Evidence) > MaxSummary {
			return nil, invalid("attribution fields too long")
		}
	}
	var attrs json.RawMessage
	if len(ev.Attrs) > 0 {
		b, err := json.Marshal(ev.Attrs)
		if err != nil {
			return nil, invalid("attrs are not JSON: %v", err)
		}
		if len(b) > MaxAttrs {
			return nil, invalid("attrs of %d bytes exceed %d", len(b), MaxAttrs)
		}
		attrs = b
	}
	b, err := encode(ev, attrs)
	if err != nil {
		return nil, invalid("%v", err)
	}
	if len(b) > MaxEventSize {
		return nil, invalid("event of %d bytes exceeds %d", len(b), MaxEventSize)
	}
	return b, nil
}

// storedForm is the value of an event key: the event without what the
// key already says (ID, tenant), with its attributes as A.
type storedForm[A any] struct {
	Time        time.Time    `json:"t"`
	User        string       `json:"u,omitempty"`
	Session     string       `json:"s,omitempty"`
	Project     string       `json:"j,omitempty"`
	Agent       string       `json:"a,omitempty"`
	Kind        string       `json:"k"`
	Path        string       `json:"p,omitempty"`
	Summary     string       `json:"m,omitempty"`
	Attrs       A            `json:"x,omitempty"`
	Attribution *Attribution `json:"w,omitempty"`
}

// stored is an event's value as decoded.
type stored = storedForm[map[string]any]

// encode encodes ev as stored, with attrs, ev.Attrs encoded (nil when
// there are none), so that the attributes are encoded once per event
// (validate measures them): json.Marshal writes a map's keys sorted, the
// bytes stored would have.
func encode(ev *Event, attrs json.RawMessage) ([]byte, error) {
	return json.Marshal(storedForm[json.RawMessage]{ev.Time.UTC(), ev.User, ev.Session, ev.Project, ev.Agent, ev.Kind, ev.Path, ev.Summary, attrs, ev.Attribution})
}

func decode(tenant string, vs kv.Versionstamp, b []byte) (Event, error) {
	var s stored
	if err := json.Unmarshal(b, &s); err != nil {
		return Event{}, fmt.Errorf("audit: event %s is corrupt: %w", vs, err)
	}
	return Event{ID: vs.String(), Time: s.Time, Tenant: tenant, User: s.User, Session: s.Session, Project: s.Project, Agent: s.Agent,
		Kind: s.Kind, Path: s.Path, Summary: s.Summary, Attrs: s.Attrs, Attribution: s.Attribution}, nil
}

// indexed lists the (index, value) pairs an event is indexed under.
func indexed(ev *Event) [][2]string {
	var out [][2]string
	for _, p := range [][2]string{
		{keyspace.IndexSession, ev.Session}, {keyspace.IndexAgent, ev.Agent}, {keyspace.IndexUser, ev.User},
		{keyspace.IndexPath, pathValue(ev.Project, ev.Path)}, {keyspace.IndexKind, ev.Kind}, {keyspace.IndexProject, ev.Project},
	} {
		if p[1] != "" {
			out = append(out, p)
		}
	}
	return out
}

// pathValue is the path index's value of an event's path: the project's
// path (keyspace.ProjectPath) when the event names a project, so that the
// same relative path in two projects is two values.
func pathValue(project, p string) string {
	if project == "" || p == "" {
		return p
	}
	return keyspace.ProjectPath(project, p)
}

// ParseID parses an event ID (24 hex digits).
func ParseID(id string) (kv.Versionstamp, error) {
	vs, ok := kv.ParseVersionstamp(id)
	if !ok || !vs.IsComplete() || vs.IsZero() {
		return vs, fmt.Errorf("audit: %w: %q is not an event id (24 hex digits)", ErrBadCursor, textclip.Clip(id, 64))
	}
	return vs, nil
}
