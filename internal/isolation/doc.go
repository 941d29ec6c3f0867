// Package isolation is the tenant-isolation suite (issue 8, Attack): on
// every surface — every MCP tool of tools.Catalog, every REST route of the
// webview mux, every feed subscription filter and every IDE command — it
// acts with tenant A's token on tenant B's ids, forged cursors and ids with
// separators, and proves that nothing of B is read (no response carries
// B's marker or an id of B's the caller did not send), counted or changed
// (B's key range, read through a kv View, is byte-for-byte the same after
// as before).
//
// Each tenant has a project whose root is a directory beside the other's;
// B's files carry the marker. The files tools are a surface too: A, in a
// session of its own project, aims every files tool at B's root by
// absolute path, file URI, project path, ".." and a symbolic link in A's
// checkout, and tries to start sessions and take leases in B's project
// (files_test.go). B's files must be as written afterwards, B's entries
// in the global registry of roots unchanged, and no root of A's may reach
// B's directory.
//
// It runs on the embedded store. On FoundationDB it is the same suite over
// the store under the prefix coditect-isolation/ of the cluster
// $FDB_CLUSTER_FILE names, in a binary built with -tags fdb: openStore
// picks that when FDB_CLUSTER_FILE is set, and clears the
// tenants it created afterwards (the keys are the same on both backends).
//
// TestSuiteCatchesPlantedLeaks shows that these checks fail when a leak
// exists: on each surface it wires the real components wrongly (an MCP
// resolver that binds the caller's user name in tenant B, a usage meter
// counting A's calls in B's log, a gateway that forwards B's token, writes
// sent with B's token, a cache keyed by URL alone, feed subscriptions
// pinned to B's credential, an IDE session opened as B, a registry of
// roots that let A's project take B's checkout) and requires the checks,
// run through a recorder instead of the test, to report it.
//
// The read check cannot see a pure count leak: a number of A's derived
// from B's data (B's event count in A's tenant record, B's agents counted
// in A's whoami) carries no marker and no id. TestIsolationCounts is
// differential: it builds the world twice, identically except that in the
// second B has more of every kind of record (and appends more while A's
// feeds are open), runs the same reads of A's on every surface in both
// (every read-only MCP tool, every GET route, feed subscriptions up to a
// sentinel event of A's, the IDE's read commands), replaces what
// legitimately differs between two runs (generated ids, numbered in order
// of first appearance; token secrets; times; call and session durations;
// "last seen … ago") and requires A's responses to be identical.
// TestCountCheckCatchesPlantedLeaks plants count leaks (a gateway that
// answers A's tenant record with the deployment's event count, a
// middleware that tells A's whoami every tenant's agents) and requires
// that check to report them.
//
// The package holds tests only; it may import every layer and transport.
package isolation
