//go:build fdb

package storage

import (
	"context"
	"net/url"

	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/fdb"
)

// openFDB opens the FoundationDB store an fdb:// URL names:
// fdb:///path/to/fdb.cluster, or fdb:/// for the default cluster file, with
// an optional prefix= holding the percent-encoded key prefix.
func openFDB(ctx context.Context, u *url.URL) (kv.Store, error) {
	s, err := fdb.OpenURL(ctx, u)
	if err != nil {
		return nil, err // not s: a nil *fdb.Store in a kv.Store is not nil
	}
	return s, nil
}
