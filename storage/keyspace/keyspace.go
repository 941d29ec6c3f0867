// Package keyspace owns the layout of Coditect's keys (ARCHITECTURE.md §4):
// every key is a FoundationDB tuple under ("coditect"), each tenant's data
// lives under ("coditect", "t", tenant), logs are ordered by versionstamp,
// and the builders here are where every storage layer gets its keys, so that
// the same keys serve the embedded store and an FDB cluster.
//
//	("coditect", "t", tenant, "meta")                             tenant record
//	("coditect", "t", tenant, "user", user)                       user profile
//	("coditect", "t", tenant, "session", session)                 session record
//	("coditect", "t", tenant, "audit", versionstamp)              audit event
//	("coditect", "t", tenant, "audit_by", index, value, vs)       audit secondary index entry
//	("coditect", "t", tenant, "audit_head")                       audit append counter (live tail)
//	("coditect", "t", tenant, "audit_clock", "high_water")        latest audit event time (atomic max)
//	("coditect", "t", tenant, "audit_clock", "regression")        largest backward step of audit event times (atomic max)
//	("coditect", "t", tenant, "agent", agent, field)              agent record, heartbeat, cohort
//	("coditect", "t", tenant, "lease", resource)                  lease holder, expiry, fencing token
//	("coditect", "t", tenant, "inbox", agent, versionstamp)       message to an agent
//	("coditect", "t", tenant, "inbox_head", agent)                inbox append counter (live tail)
//	("coditect", "t", tenant, "task", task)                       task
//	("coditect", "t", tenant, "counter", name)                    named counter (e.g. fencing tokens)
//	("coditect", "t", tenant, "idem", id)                         idempotency marker of an append
//	("coditect", "t", tenant, "file_evidence", path)              who wrote which content of a file (watch.go)
//	("coditect", "t", tenant, "file_editing", path, editor)       a human's unsaved edits of a file (editing.go)
//	("coditect", "idx", "tenant", tenant)                         tenant registry
//	("coditect", "idx", "session", session) -> tenant             global session index
//	("coditect", "token", sha256(token)) -> principal             hashed API tokens
//
// Tenant isolation holds by construction: a tenant id is one tuple element,
// so no id, whatever bytes it holds, addresses another tenant's keys, and
// every key a TenantSpace builds lies in its Range. Ids are validated (see
// MaxIDSize, MaxResourceSize): an invalid id yields an error, never a key.
//
// The package imports only storage/kv (for types and key display) and
// storage/tuple; it must not import a backend or any layer above it.
package keyspace

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tuple"
)

// Limits on ids. With every id at its limit and every byte a 0x00 (which the
// tuple encoding doubles), the longest key stays under kv.MaxKeySize.
const (
	// MaxIDSize is the longest tenant, user, session, agent, task, counter,
	// idempotency or audit-index id, in bytes.
	MaxIDSize = 256
	// MaxResourceSize is the longest lease resource or audit-index value
	// (a file path, typically), in bytes.
	MaxResourceSize = 4096
)

// ErrInvalidID is wrapped by every error about an id: empty, not valid
// UTF-8, or too long.
var ErrInvalidID = errors.New("invalid id")

// checkID validates an id of the given kind against limit bytes.
func checkID(kind, id string, limit int) error {
	switch {
	case id == "":
		return fmt.Errorf("keyspace: %w: empty %s id", ErrInvalidID, kind)
	case len(id) > limit:
		return fmt.Errorf("keyspace: %w: %s id of %d bytes exceeds the limit of %d bytes", ErrInvalidID, kind, len(id), limit)
	case !utf8.ValidString(id):
		return fmt.Errorf("keyspace: %w: %s id %s is not valid UTF-8", ErrInvalidID, kind, kv.DisplayKey([]byte(id)))
	}
	return nil
}

// Element names. They are part of the on-disk format: never rename one.
const (
	appName     = "coditect"
	elTenants   = "t"
	elIndex     = "idx"
	elToken     = "token"
	elMeta      = "meta"
	elUser      = "user"
	elSession   = "session"
	elTenant    = "tenant"
	elAudit     = "audit"
	elAuditBy   = "audit_by"
	elAuditHead = "audit_head"
	elAuditClk  = "audit_clock"
	elHighWater = "high_water"
	elRegress   = "regression"
	elAuditWAL  = "audit_spool"
	elAgent     = "agent"
	elLease     = "lease"
	elInbox     = "inbox"
	elInboxHead = "inbox_head"
	elTask      = "task"
	elCounter   = "counter"
	elIdem      = "idem"
	elRecord    = "record"
	elHeartbeat = "heartbeat"
	elCohort    = "cohort"
)

// Root is ("coditect"): every key Coditect writes.
func Root() Subspace { return Subspace{}.sub(appName) }

// Tenants is ("coditect", "t"): the data of every tenant.
func Tenants() Subspace { return Root().sub(elTenants) }

// Tenant returns the keys of one tenant, ("coditect", "t", id). The id must
// be non-empty valid UTF-8 of at most MaxIDSize bytes.
func Tenant(id string) (TenantSpace, error) {
	if err := checkID("tenant", id, MaxIDSize); err != nil {
		return TenantSpace{}, err
	}
	return TenantSpace{s: Tenants().sub(id), id: id}, nil
}

// TenantIndex is ("coditect", "idx", "tenant", id): the tenant registry
// entry that lists the tenant without scanning its data.
func TenantIndex(id string) ([]byte, error) {
	if err := checkID("tenant", id, MaxIDSize); err != nil {
		return nil, err
	}
	return TenantIndexes().strings(id), nil
}

// TenantIndexes is ("coditect", "idx", "tenant"): the tenant registry.
func TenantIndexes() Subspace { return Root().sub(elIndex, elTenant) }

// SessionIndex is ("coditect", "idx", "session", id), whose value names the
// tenant that owns the session.
func SessionIndex(sessionID string) ([]byte, error) {
	if err := checkID("session", sessionID, MaxIDSize); err != nil {
		return nil, err
	}
	return SessionIndexes().strings(sessionID), nil
}

// SessionIndexes is ("coditect", "idx", "session"): the global session index.
func SessionIndexes() Subspace { return Root().sub(elIndex, elSession) }

// Token is ("coditect", "token", hash), where hash is the SHA-256 of an API
// token; its value is the principal (tenant, user, role). The token itself is
// never stored.
func Token(hash [sha256.Size]byte) []byte {
	return tuple.AppendBytes(Tokens().key(len(hash)+2), hash[:])
}

// Tokens is ("coditect", "token"): every hashed API token.
func Tokens() Subspace { return Root().sub(elToken) }
