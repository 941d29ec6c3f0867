// Package fdb owns Coditect's FoundationDB backend of the kv contract: a
// kv.Store over a FoundationDB cluster through the official Go binding at
// API version 730. It owns the mapping of the contract onto the binding
// (retry loops, limits, versionstamps, watches, error translation), the
// store's key prefix, and the process-global FoundationDB client (API version
// and network thread) that the binding requires.
//
// The backend talks to the binding through a seam (seam.go): the few
// operations it uses, as interfaces that block on the binding's futures.
// The retry loop, the age rule, the error translation, the prefix registry
// and everything else here are ordinary Go built without tags; only the
// seam's implementation over the binding (binding.go), the process-global
// client (client.go) and Open (open.go) need libfdb_c and fdb_c.h (the
// foundationdb-clients package) and are built with the build tag fdb:
//
//	go build -tags fdb ./cmd/coditect
//
// Without the tag storage.Open refuses fdb:// URLs with an error saying how
// to rebuild. The package's untagged tests run the backend's own code over
// an in-memory model of the binding that injects FoundationDB's errors
// where a cluster raises them (fault_test.go), the conformance suite of
// storage/kv/kvtest included; `make fdb-check` type-checks the tagged files
// on machines without FoundationDB (see internal/fdbcheck), and the suite
// runs against a real cluster whenever FDB_CLUSTER_FILE is set
// (docs/FOUNDATIONDB.md).
//
// # Retries, age and timeouts
//
// Update and View run the loop of the binding's Database.Transact over the
// seam: each attempt obtains its read version, runs the function and
// commits; a FoundationDB error goes to OnError, which waits and resets
// the transaction or gives the error back. transaction_too_old (1007) means
// kv.ErrTransactionTooOld only when the attempt is older than the age limit
// measured from its read version: FoundationDB also raises it after a
// recovery moves versions forward, and a retry then succeeds. The database's
// transaction timeout and retry limit (Options) bound every loop, and
// transaction_timed_out (1031) is kv.ErrUnavailable, so callers fail fast
// during an outage instead of blocking until their context ends.
//
// # Key prefix and tenancy
//
// Every key lives under the store's prefix (Options.Prefix, or prefix= in
// the store URL), so one cluster can hold several deployments or test runs.
// Open records the prefix in a registry at the cluster's root and refuses a
// prefix that overlaps another store's (acme contains acme-staging); an
// empty prefix= in a URL is refused rather than read as the whole keyspace.
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
// Update runs its function in the retry loop, which retries on
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
// commits, so View commits too (a read-only commit costs no
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
