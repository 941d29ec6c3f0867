// Package fdb owns Coditect's FoundationDB backend of the kv contract: a
// kv.Store over a FoundationDB cluster through the official Go binding at
// API version 730. It owns the mapping of the contract onto the binding
// (retry loops, limits, versionstamps, watches, error translation), the
// store's key prefix, and the process-global FoundationDB client (API version
// and network thread) that the binding requires.
//
// The backend needs libfdb_c and fdb_c.h (the foundationdb-clients package),
// so every other file of this package is built only with the build tag fdb:
//
//	go build -tags fdb ./cmd/coditect
//
// Without the tag this package is empty and storage.Open refuses fdb:// URLs
// with an error saying how to rebuild. `make fdb-check` type-checks the
// tagged files on machines without FoundationDB (see internal/fdbcheck), and
// the conformance suite of storage/kv/kvtest runs against a real cluster
// whenever FDB_CLUSTER_FILE is set (docs/FOUNDATIONDB.md).
//
// # Key prefix and tenancy
//
// Every key lives under the store's prefix (Options.Prefix, or prefix= in
// the store URL), so one cluster can hold several deployments or test runs.
// The prefix is invisible to callers: keys go in and come out without it,
// and a range with a nil end stops at the end of the prefix. The largest key
// a caller may use is kv.MaxKeySize minus the prefix length, because
// FoundationDB's 10,000-byte limit applies to the stored key. With an empty
// prefix, keys from 0xff on are FoundationDB's system keys and are refused
// with kv.ErrKeyOutsideLegalRange, as FoundationDB would. Tenants are key
// prefixes too, built by the keyspace layer above; FoundationDB's native
// tenants (OpenTenant) are experimental and are never used.
//
// # Idempotent appends
//
// Update runs its function through the binding's Transact, which retries on
// commit_unknown_result (error 1021): the cluster could not say whether the
// commit landed, and sometimes it did. A retried transaction that appends a
// versionstamped record would then append it twice. The kv contract leaves
// exactly-once to the layer above, and the idiom is an idempotency key
// written in the same transaction as the record: the function first reads
// the key and, if present, does nothing (returning what the first commit
// recorded); otherwise it appends the record and sets the key (for instance
// to the record's versionstamp with SetVersionstampedValue). Both writes
// commit together or not at all, so a retry after an unknown result finds
// the key exactly when the first attempt landed. fdb_test.go shows the idiom
// (appendOnce). The same holds when Update returns a context error: the
// commit may or may not have happened, and retrying with the same
// idempotency key is safe.
//
// # Watches
//
// A watch set with ReadTx.Watch becomes active when its transaction
// commits, so View runs through Transact too (a read-only commit costs no
// round trip to the cluster) rather than ReadTransact, whose transactions
// never commit and whose watches would never report another client's
// change. A store holds at most kv.MaxWatches watches; FoundationDB's own
// limit of 10,000 is per database connection, which every Store of one
// cluster file in a process shares, and its too_many_watches error (1032)
// is reported as kv.ErrTooManyWatches. A change followed by a change back
// may not fire.
//
// This package imports the kv contract and the binding, nothing above them.
package fdb
