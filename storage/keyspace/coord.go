package keyspace

import (
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tuple"
)

// Keys of the agent coordination layers (storage/agent, storage/lease,
// storage/message, storage/task) beyond the ones ARCHITECTURE.md §4 lists:
//
//	("coditect", "t", tenant, "agent_by_identity", user, client, name) -> agent id
//	("coditect", "t", tenant, "cohort_member", cohort, agent)          membership
//	("coditect", "t", tenant, "lease_glob", resource)                  marker of a glob lease
//	("coditect", "t", tenant, "lease_fence", resource)                 last fencing token issued
//	("coditect", "t", tenant, "inbox_acked", agent, versionstamp)      acknowledged message
//	("coditect", "t", tenant, "inbox_unread", agent)                   unacknowledged count
//	("coditect", "t", tenant, "task_by", field, value, task)           task secondary index
//
// Element names are part of the on-disk format: never rename one.
const (
	elAgentIdentity = "agent_by_identity"
	elCohortMember  = "cohort_member"
	elLeaseGlob     = "lease_glob"
	elLeaseFence    = "lease_fence"
	elInboxAcked    = "inbox_acked"
	elInboxUnread   = "inbox_unread"
	elTaskBy        = "task_by"
)

// AgentIdentities is ("agent_by_identity"): the index from an agent's
// identity to its id.
func (t TenantSpace) AgentIdentities() Subspace { return t.space().sub(elAgentIdentity) }

// AgentIdentity is ("agent_by_identity", user, client, name), whose value
// is the id of the agent registered under that identity, so that
// re-registering finds the same id. Each part is an id of at most
// MaxIDSize bytes.
func (t TenantSpace) AgentIdentity(user, client, name string) ([]byte, error) {
	if err := checkID("user", user, MaxIDSize); err != nil {
		return nil, err
	}
	if err := checkID("agent client", client, MaxIDSize); err != nil {
		return nil, err
	}
	if err := checkID("agent name", name, MaxIDSize); err != nil {
		return nil, err
	}
	return t.space().strings(elAgentIdentity, user, client, name), nil
}

// Cohorts is ("cohort_member"): the members of every cohort.
func (t TenantSpace) Cohorts() Subspace { return t.space().sub(elCohortMember) }

// CohortMembers is ("cohort_member", cohort): one key per member agent.
func (t TenantSpace) CohortMembers(cohort string) (Subspace, error) {
	if err := checkID("cohort", cohort, MaxIDSize); err != nil {
		return Subspace{}, err
	}
	return t.space().sub(elCohortMember, cohort), nil
}

// CohortMember is ("cohort_member", cohort, agent): present while the agent
// is in the cohort.
func (t TenantSpace) CohortMember(cohort, agent string) ([]byte, error) {
	if err := checkID("cohort", cohort, MaxIDSize); err != nil {
		return nil, err
	}
	if err := checkID("agent", agent, MaxIDSize); err != nil {
		return nil, err
	}
	return t.space().strings(elCohortMember, cohort, agent), nil
}

// LeasesWithPrefix returns the bounds [begin, end) of the Lease keys whose
// resource starts with prefix (every lease when prefix is empty): the
// resources a glob with that literal prefix can match. The tuple encoding
// of a string is prefix-preserving, so the range is exact.
func (t TenantSpace) LeasesWithPrefix(prefix string) (begin, end []byte, err error) {
	if prefix == "" {
		begin, end = t.Leases().Range()
		return begin, end, nil
	}
	if err := checkID("lease resource prefix", prefix, MaxResourceSize); err != nil {
		return nil, nil, err
	}
	k := t.space().strings(elLease, prefix)
	begin, end = kv.PrefixRange(k[:len(k)-1]) // without the string's terminating 0x00
	return begin, end, nil
}

// LeaseGlobs is ("lease_glob"): one marker per leased glob, so that a lease
// on a plain path finds every glob that may cover it without scanning the
// leases of other paths.
func (t TenantSpace) LeaseGlobs() Subspace { return t.space().sub(elLeaseGlob) }

// LeaseGlob is ("lease_glob", resource): present while a glob resource has
// a Lease record.
func (t TenantSpace) LeaseGlob(resource string) ([]byte, error) {
	if err := checkID("lease resource", resource, MaxResourceSize); err != nil {
		return nil, err
	}
	return t.space().strings(elLeaseGlob, resource), nil
}

// LeaseFence is ("lease_fence", resource): the last fencing token granted
// on the resource. It outlives the lease, so tokens strictly increase
// across releases.
func (t TenantSpace) LeaseFence(resource string) ([]byte, error) {
	if err := checkID("lease resource", resource, MaxResourceSize); err != nil {
		return nil, err
	}
	return t.space().strings(elLeaseFence, resource), nil
}

// AckedInbox is ("inbox_acked", agent): the agent's acknowledged messages,
// in commit order. Inbox holds the unacknowledged ones; an ack moves a
// message from one to the other under the same versionstamp.
func (t TenantSpace) AckedInbox(agent string) (Subspace, error) {
	if err := checkID("agent", agent, MaxIDSize); err != nil {
		return Subspace{}, err
	}
	return t.space().sub(elInboxAcked, agent), nil
}

// AckedInboxMessage is ("inbox_acked", agent, vs): the acknowledged message
// committed with stamp vs, which must be complete.
func (t TenantSpace) AckedInboxMessage(agent string, vs kv.Versionstamp) ([]byte, error) {
	if err := checkID("agent", agent, MaxIDSize); err != nil {
		return nil, err
	}
	if err := checkComplete(vs); err != nil {
		return nil, err
	}
	key, _ := t.space().stamped(vs, elInboxAcked, agent)
	return key, nil
}

// InboxUnread is ("inbox_unread", agent): the number of unacknowledged
// messages, kept with kv.Tx.Add so that senders never conflict on it.
func (t TenantSpace) InboxUnread(agent string) ([]byte, error) {
	if err := checkID("agent", agent, MaxIDSize); err != nil {
		return nil, err
	}
	return t.space().strings(elInboxUnread, agent), nil
}

// TaskIndexes is ("task_by"): every task secondary index.
func (t TenantSpace) TaskIndexes() Subspace { return t.space().sub(elTaskBy) }

// TaskIndex is ("task_by", field, value): the tasks whose field (for
// example "state" or "assignee") has value, by task id.
func (t TenantSpace) TaskIndex(field, value string) (Subspace, error) {
	if err := checkID("task index", field, MaxIDSize); err != nil {
		return Subspace{}, err
	}
	if err := checkID("task index value", value, MaxIDSize); err != nil {
		return Subspace{}, err
	}
	return t.space().sub(elTaskBy, field, value), nil
}

// TaskIndexEntry is ("task_by", field, value, task).
func (t TenantSpace) TaskIndexEntry(field, value, task string) ([]byte, error) {
	sub, err := t.TaskIndex(field, value)
	if err != nil {
		return nil, err
	}
	if err := checkID("task", task, MaxIDSize); err != nil {
		return nil, err
	}
	return tuple.AppendString(sub.key(len(task)+2), task), nil
}
