package sqlite

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/coditect/coditect/storage/kv"
)

// blockSize is how many commit numbers a process reserves at once.
const blockSize = 4096

// stampBlock hands out commit numbers: strictly increasing across every
// process that writes the file, without writing the counter at every
// commit (a second page per commit cost a third of single-record commit
// throughput).
//
// A writer reserves a block of numbers by raising the counter in the meta
// table inside its transaction, and uses the block for its following
// commits for as long as no other connection commits in between. It knows
// that from PRAGMA data_version, read under the write lock: the value
// changes exactly when another connection has committed since the last
// read. When it has changed, the rest of the block is dropped and a new one
// reserved above whatever the other writer reserved, so numbers follow
// commit order across processes. Unused numbers are gaps, as in FDB.
//
// A reservation commits or rolls back with the transaction that made it;
// the block is only advanced once that transaction has committed.
type stampBlock struct {
	next, end uint64 // next unused number and the block's last one
	dv        int64  // data_version after this connection's last commit
	valid     bool

	// pending state of the transaction in flight
	pendingDV  int64
	pendingEnd uint64
}

// reserve returns the commit number for transaction t, which holds the write
// lock, reserving a new block when needed.
func (b *stampBlock) reserve(t *txn) (uint64, error) {
	var dv int64
	if err := t.s.stmts.dataVersion.QueryRowContext(t.sctx).Scan(&dv); err != nil {
		return 0, err
	}
	b.pendingDV = dv
	if b.valid && dv == b.dv && b.next <= b.end {
		b.pendingEnd = b.end
		return b.next, nil
	}
	var cur int64
	if err := t.st.getCommit.QueryRowContext(t.sctx).Scan(&cur); err != nil {
		return 0, err
	}
	if uint64(cur) > 1<<63-blockSize {
		return 0, fmt.Errorf("%w: commit counter exhausted", kv.ErrUnavailable)
	}
	end := uint64(cur) + blockSize
	if _, err := t.s.stmts.setCommit.ExecContext(t.sctx, int64(end)); err != nil {
		return 0, err
	}
	b.pendingEnd = end
	return uint64(cur) + 1, nil
}

// committed records that the transaction with commit number c committed.
func (b *stampBlock) committed(c uint64) {
	b.next, b.end, b.dv, b.valid = c+1, b.pendingEnd, b.pendingDV, true
}

// AdvanceVersion implements kv.VersionAdvancer: it raises the commit
// counter to past's commit number, so every later stamp is greater.
func (s *Store) AdvanceVersion(ctx context.Context, past kv.Versionstamp) error {
	want := binary.BigEndian.Uint64(past[:8])
	if want >= 1<<63-blockSize {
		return fmt.Errorf("kv/sqlite: cannot advance the commit counter to %d", want)
	}
	// Outside any commit batch: the Updates batched before it would share
	// a commit number below want with those after it.
	_, err := s.update(ctx, func(tx kv.Tx) error {
		t := tx.(*txn)
		var cur int64
		if err := t.st.getCommit.QueryRowContext(t.sctx).Scan(&cur); err != nil {
			return err
		}
		// The block this process holds, if any, is below want now (or
		// would be reused past another writer's): drop it. writeMu is
		// held while this function runs.
		s.stamps.valid = false
		if uint64(cur) >= want {
			return nil
		}
		_, err := s.stmts.setCommit.ExecContext(t.sctx, int64(want))
		return err
	}, s.updateOnce)
	return err
}
