package keyspace

import (
	"fmt"

	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tuple"
)

// TenantSpace builds the keys of one tenant, ("coditect", "t", tenant, …);
// Tenant returns one. Every key it builds is in its Range and in no other
// tenant's.
//
// Builders that take an id return an error wrapping ErrInvalidID when the id
// is empty, not valid UTF-8 or longer than its limit (MaxIDSize, or
// MaxResourceSize for lease resources and audit-index values); the others
// cannot fail. The zero TenantSpace belongs to no tenant: its builders panic
// rather than build keys outside every tenant.
type TenantSpace struct {
	s  Subspace
	id string
}

// ID returns the tenant id.
func (t TenantSpace) ID() string { return t.id }

// Subspace returns the tenant's whole subspace, ("coditect", "t", tenant),
// for keys this package has no builder for yet (add one here rather than
// pack tenant keys by hand elsewhere) and for deleting a tenant.
func (t TenantSpace) Subspace() Subspace { return t.space() }

// Range returns the bounds [begin, end) of every key of the tenant.
func (t TenantSpace) Range() (begin, end []byte) { return t.space().Range() }

// Contains reports whether key belongs to the tenant.
func (t TenantSpace) Contains(key []byte) bool { return t.space().Contains(key) }

// String renders the tenant's prefix as a tuple.
func (t TenantSpace) String() string {
	if t.id == "" {
		return "keyspace.TenantSpace{}"
	}
	return t.s.String()
}

func (t TenantSpace) space() Subspace {
	if t.id == "" {
		panic("keyspace: zero TenantSpace; get one from keyspace.Tenant")
	}
	return t.s
}

// Meta is ("meta"): the tenant's own record (name, settings, creation).
func (t TenantSpace) Meta() []byte { return t.space().strings(elMeta) }

// User is ("user", id): a user's profile.
func (t TenantSpace) User(id string) ([]byte, error) {
	if err := checkID("user", id, MaxIDSize); err != nil {
		return nil, err
	}
	return t.space().strings(elUser, id), nil
}

// Users is ("user"): every user profile.
func (t TenantSpace) Users() Subspace { return t.space().sub(elUser) }

// Session is ("session", id): a work session's record.
func (t TenantSpace) Session(id string) ([]byte, error) {
	if err := checkID("session", id, MaxIDSize); err != nil {
		return nil, err
	}
	return t.space().strings(elSession, id), nil
}

// Sessions is ("session"): every session record.
func (t TenantSpace) Sessions() Subspace { return t.space().sub(elSession) }

// Audit is ("audit"): the audit log, events in commit order.
func (t TenantSpace) Audit() Subspace { return t.space().sub(elAudit) }

// AuditEvent is ("audit", vs): the event committed with stamp vs. vs must be
// complete; a new event's key is NewAuditEvent's template.
func (t TenantSpace) AuditEvent(vs kv.Versionstamp) ([]byte, error) {
	if err := checkComplete(vs); err != nil {
		return nil, err
	}
	key, _ := t.space().stamped(vs, elAudit)
	return key, nil
}

// NewAuditEvent returns the template and offset of a new event's key,
// ("audit", incomplete stamp with user order order), for
// kv.Tx.SetVersionstampedKey. Events written by one transaction need
// distinct orders.
func (t TenantSpace) NewAuditEvent(order uint16) (template []byte, offset int) {
	return t.space().stamped(kv.IncompleteVersionstamp(order), elAudit)
}

// AuditHead is ("audit_head"): a counter every audit append bumps with
// kv.Tx.Add, which tailers watch when they have read everything.
func (t TenantSpace) AuditHead() []byte { return t.space().strings(elAuditHead) }

// AuditHighWater is ("audit_clock", "high_water"): the latest event time
// the audit log has seen, which every append raises with kv.Tx.Max (an
// 8-byte little-endian order-preserving encoding of the time; the audit
// package owns it). It is outside the ranges of Audit and AuditIndexes,
// and sorts after both, so scans of events and index entries never meet
// it.
func (t TenantSpace) AuditHighWater() []byte { return t.space().strings(elAuditClk, elHighWater) }

// AuditRegression is ("audit_clock", "regression"): the largest amount, in
// nanoseconds (8-byte little-endian), by which an appended event's time
// was before the time of an event committed earlier, raised with
// kv.Tx.Max. Time-bounded audit queries widen their search by it.
func (t TenantSpace) AuditRegression() []byte { return t.space().strings(elAuditClk, elRegress) }

// AuditSpool is ("audit_spool", id): how far the write-ahead spool file id
// of a process has been committed to this tenant's log — the last
// sequence number, 8 bytes little-endian, raised with kv.Tx.Max in the
// transaction that appends the records. Recovery of a dead process's spool
// skips what it covers; the key is cleared once the spool file is gone.
func (t TenantSpace) AuditSpool(id string) ([]byte, error) {
	if err := checkID("spool", id, MaxIDSize); err != nil {
		return nil, err
	}
	return t.space().strings(elAuditWAL, id), nil
}

// Index names of the audit log's secondary indexes. AuditIndex accepts any
// valid id; these are the ones ARCHITECTURE.md §4 names.
const (
	IndexSession = "session"
	IndexAgent   = "agent"
	IndexUser    = "user"
	IndexPath    = "path"
	IndexKind    = "kind"
	IndexProject = "project"
)

// AuditIndexes is ("audit_by"): every audit secondary index.
func (t TenantSpace) AuditIndexes() Subspace { return t.space().sub(elAuditBy) }

// AuditIndex is ("audit_by", index, value): the entries of one index value,
// in commit order, for example every event of one session.
func (t TenantSpace) AuditIndex(index, value string) (Subspace, error) {
	if err := checkIndex(index, value); err != nil {
		return Subspace{}, err
	}
	return t.space().sub(elAuditBy, index, value), nil
}

// AuditIndexEntry is ("audit_by", index, value, vs): the index entry of the
// event committed with stamp vs, which must be complete.
func (t TenantSpace) AuditIndexEntry(index, value string, vs kv.Versionstamp) ([]byte, error) {
	if err := checkIndex(index, value); err != nil {
		return nil, err
	}
	if err := checkComplete(vs); err != nil {
		return nil, err
	}
	key, _ := t.space().stamped(vs, elAuditBy, index, value)
	return key, nil
}

// NewAuditIndexEntry returns the template and offset of the index entry of
// a new event: give it the same order as the event's NewAuditEvent, so both
// carry the same stamp.
func (t TenantSpace) NewAuditIndexEntry(index, value string, order uint16) (template []byte, offset int, err error) {
	if err := checkIndex(index, value); err != nil {
		return nil, 0, err
	}
	template, offset = t.space().stamped(kv.IncompleteVersionstamp(order), elAuditBy, index, value)
	return template, offset, nil
}

// Agents is ("agent"): the keys of every agent.
func (t TenantSpace) Agents() Subspace { return t.space().sub(elAgent) }

// Agent returns the keys of one agent, ("agent", id, …).
func (t TenantSpace) Agent(id string) (AgentSpace, error) {
	if err := checkID("agent", id, MaxIDSize); err != nil {
		return AgentSpace{}, err
	}
	return AgentSpace{s: t.space().sub(elAgent, id)}, nil
}

// AgentSpace builds the keys of one agent: ("coditect", "t", tenant,
// "agent", agent, …); TenantSpace.Agent returns one. The record, heartbeat
// and cohort are separate keys so that a heartbeat rewrites a few bytes and
// conflicts with nothing else. Like TenantSpace, its zero value panics.
type AgentSpace struct {
	s Subspace
}

// Subspace returns the agent's subspace, ("agent", id), for sub-keys this
// package has no builder for yet and for deleting the agent.
func (a AgentSpace) Subspace() Subspace { return a.space() }

func (a AgentSpace) space() Subspace {
	if len(a.s.prefix) == 0 {
		panic("keyspace: zero AgentSpace; get one from TenantSpace.Agent")
	}
	return a.s
}

// Record is ("record"): who the agent is (client, model, capabilities).
func (a AgentSpace) Record() []byte { return a.space().strings(elRecord) }

// Heartbeat is ("heartbeat"): when the agent was last seen alive.
func (a AgentSpace) Heartbeat() []byte { return a.space().strings(elHeartbeat) }

// Cohort is ("cohort"): the group the agent works in.
func (a AgentSpace) Cohort() []byte { return a.space().strings(elCohort) }

// Leases is ("lease"): every lease.
func (t TenantSpace) Leases() Subspace { return t.space().sub(elLease) }

// Lease is ("lease", resource): the lease on a resource (a file path, a task),
// holding its holder, expiry and fencing token. resource may be up to
// MaxResourceSize bytes.
func (t TenantSpace) Lease(resource string) ([]byte, error) {
	if err := checkID("lease resource", resource, MaxResourceSize); err != nil {
		return nil, err
	}
	return t.space().strings(elLease, resource), nil
}

// Inbox is ("inbox", agent): an agent's messages, in commit order.
func (t TenantSpace) Inbox(agent string) (Subspace, error) {
	if err := checkID("agent", agent, MaxIDSize); err != nil {
		return Subspace{}, err
	}
	return t.space().sub(elInbox, agent), nil
}

// InboxMessage is ("inbox", agent, vs): the message committed with stamp vs,
// which must be complete.
func (t TenantSpace) InboxMessage(agent string, vs kv.Versionstamp) ([]byte, error) {
	if err := checkID("agent", agent, MaxIDSize); err != nil {
		return nil, err
	}
	if err := checkComplete(vs); err != nil {
		return nil, err
	}
	key, _ := t.space().stamped(vs, elInbox, agent)
	return key, nil
}

// NewInboxMessage returns the template and offset of a new message's key
// for kv.Tx.SetVersionstampedKey.
func (t TenantSpace) NewInboxMessage(agent string, order uint16) (template []byte, offset int, err error) {
	if err := checkID("agent", agent, MaxIDSize); err != nil {
		return nil, 0, err
	}
	template, offset = t.space().stamped(kv.IncompleteVersionstamp(order), elInbox, agent)
	return template, offset, nil
}

// InboxHead is ("inbox_head", agent): a counter every message to the agent
// bumps with kv.Tx.Add, which the agent's tailer watches. It is outside the
// inbox's range, which holds messages only.
func (t TenantSpace) InboxHead(agent string) ([]byte, error) {
	if err := checkID("agent", agent, MaxIDSize); err != nil {
		return nil, err
	}
	return t.space().strings(elInboxHead, agent), nil
}

// Tasks is ("task"): every task.
func (t TenantSpace) Tasks() Subspace { return t.space().sub(elTask) }

// Task is ("task", id): one task.
func (t TenantSpace) Task(id string) ([]byte, error) {
	if err := checkID("task", id, MaxIDSize); err != nil {
		return nil, err
	}
	return t.space().strings(elTask, id), nil
}

// Counter is ("counter", name): a named little-endian counter for kv.Tx.Add,
// such as the source of lease fencing tokens.
func (t TenantSpace) Counter(name string) ([]byte, error) {
	if err := checkID("counter", name, MaxIDSize); err != nil {
		return nil, err
	}
	return t.space().strings(elCounter, name), nil
}

// Idempotency is ("idem", id): the marker a versionstamped append writes in
// its own transaction and checks first, so that an append FDB retries after
// commit_unknown_result lands once (ARCHITECTURE.md §4).
func (t TenantSpace) Idempotency(id string) ([]byte, error) {
	if err := checkID("idempotency", id, MaxIDSize); err != nil {
		return nil, err
	}
	return t.space().strings(elIdem, id), nil
}

func checkIndex(index, value string) error {
	if err := checkID("audit index", index, MaxIDSize); err != nil {
		return err
	}
	return checkID("audit index value", value, MaxResourceSize)
}

// checkComplete refuses a placeholder where a committed stamp is expected:
// a key with ten 0xff bytes in it would be read back as nobody's event.
func checkComplete(vs kv.Versionstamp) error {
	if !vs.IsComplete() {
		return fmt.Errorf("keyspace: %w: a committed event's key needs a complete stamp, got %s", tuple.ErrIncompleteVersionstamp, vs)
	}
	return nil
}

// Idempotencies is ("idem"): every idempotency marker, for the sweeper that
// expires them.
func (t TenantSpace) Idempotencies() Subspace { return t.space().sub(elIdem) }

// TokenRef is ("token", id): the tenant's reference to one of its API
// tokens, holding the token's hash, so tokens can be listed per tenant.
func (t TenantSpace) TokenRef(id string) ([]byte, error) {
	if err := checkID("token", id, MaxIDSize); err != nil {
		return nil, err
	}
	return t.space().strings(elToken, id), nil
}

// TokenRefs is ("token"): every token reference of the tenant.
func (t TenantSpace) TokenRefs() Subspace { return t.space().sub(elToken) }
