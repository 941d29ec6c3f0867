//go:build !fdb

package storage

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/coditect/coditect/storage/kv"
)

// openFDB refuses fdb:// URLs in a binary built without the fdb tag, saying
// how to get one that has it.
func openFDB(_ context.Context, u *url.URL) (kv.Store, error) {
	return nil, fmt.Errorf("storage: open %s: this binary was built without FoundationDB support; "+
		"install foundationdb-clients 7.3 and rebuild with `go build -tags fdb ./cmd/coditect` (see docs/FOUNDATIONDB.md): %w",
		u.Redacted(), errors.ErrUnsupported)
}
