//go:build !fdb

package storage

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestOpenFDBWithoutTag(t *testing.T) {
	_, err := Open(context.Background(), "fdb:///etc/foundationdb/fdb.cluster")
	if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "-tags fdb") {
		t.Fatalf("fdb URL in a build without the tag: %v", err)
	}
}
