package fdb

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/coditect/coditect/storage/kv"
)

// minRequiredCommitVersionKey is the system key `fdbcli advanceversion`
// sets (fdbclient/ManagementAPI advanceVersion): the cluster recovers and
// commits from then on at versions of at least its value, an 8-byte
// little-endian int64.
var minRequiredCommitVersionKey = []byte("\xff/minRequiredCommitVersion")

// advanceRounds bounds AdvanceVersion's rounds of setting the key and
// reading the version back.
const advanceRounds = 10

var _ kv.VersionAdvancer = (*Store)(nil)

// AdvanceVersion implements kv.VersionAdvancer as fdbcli's advanceversion
// does: while the cluster's read version is not past past's commit
// version (a versionstamp's first 8 bytes, big-endian), it sets
// minRequiredCommitVersionKey to the version after it, which makes the
// cluster recover at that version. It moves the whole cluster's versions,
// which every store of the cluster tolerates: versions only ever grow.
func (s *Store) AdvanceVersion(ctx context.Context, past kv.Versionstamp) error {
	want := binary.BigEndian.Uint64(past[:8])
	if want >= math.MaxInt64 {
		return fmt.Errorf("fdb: cannot advance the cluster's version past %d", want)
	}
	next := binary.LittleEndian.AppendUint64(nil, want+1)
	for range advanceRounds {
		var rv int64
		err := s.transact(ctx, func(t *tx) error {
			rv = t.readVersion
			if uint64(rv) > want {
				return nil
			}
			if err := t.tr.SetSystemAccess(); err != nil {
				return opErr(ctx, "advance version", nil, err, false)
			}
			t.tr.Set(minRequiredCommitVersionKey, next)
			return nil
		})
		if err != nil {
			return fmt.Errorf("fdb: advance the cluster's version past %d: %w", want, err)
		}
		if uint64(rv) > want {
			return nil
		}
	}
	return fmt.Errorf("fdb: advance the cluster's version past %d: still behind after %d rounds", want, advanceRounds)
}
