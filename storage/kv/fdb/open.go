//go:build fdb

package fdb

import (
	"context"
	"net/url"
)

// Open connects to the cluster named by clusterFile ("" for FoundationDB's
// default: $FDB_CLUSTER_FILE, ./fdb.cluster, /etc/foundationdb/fdb.cluster)
// and returns a store of the keys under opts.Prefix. It makes one round trip
// to the cluster, bounded by ctx or, when ctx has no deadline, by 15 s, and
// reports a cluster that does not answer as kv.ErrUnavailable.
func Open(ctx context.Context, clusterFile string, opts Options) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	db, release, err := openDatabase(clusterFile)
	if err != nil {
		return nil, err
	}
	return newStore(ctx, bindingDB{db}, release, clusterFile, opts)
}

// OpenURL opens the store a URL names (see ParseURL).
func OpenURL(ctx context.Context, u *url.URL) (*Store, error) {
	clusterFile, opts, err := ParseURL(u)
	if err != nil {
		return nil, err
	}
	return Open(ctx, clusterFile, opts)
}
