package audit

import (
	"context"
	"encoding/binary"

	"github.com/coditect/coditect/storage/kv"
)

// A write-ahead spool is a file in which a process writes the events it
// will append (the tool.called records of reads, tools.AuditQueue) before
// it answers, so that they survive its crash without a commit in the
// answer's path; it commits them later, in batches. The log keeps, per
// spool, the last sequence number committed, raised in the transaction that
// appends the records, so that a recovery of a dead process's spool
// appends exactly what is missing.

// AppendSpooled appends evs, records of spool up to sequence number seq, and
// raises the spool's mark to seq in the same transaction. Records of one
// spool must be appended in sequence order.
func (l *Log) AppendSpooled(ctx context.Context, spool string, seq uint64, evs ...Event) ([]Event, error) {
	key, err := l.space.AuditSpool(spool)
	if err != nil {
		return nil, invalid("spool: %v", err)
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seq)
	return l.appendWith(ctx, func(tx kv.Tx) { tx.Max(key, b[:]) }, evs)
}

// SpoolMark returns the last sequence number of spool appended to the log
// (0 when none).
func (l *Log) SpoolMark(ctx context.Context, spool string) (uint64, error) {
	key, err := l.space.AuditSpool(spool)
	if err != nil {
		return 0, invalid("spool: %v", err)
	}
	var seq uint64
	err = l.store.View(ctx, func(tx kv.ReadTx) error {
		v, err := tx.Get(key)
		if len(v) >= 8 {
			seq = binary.LittleEndian.Uint64(v)
		}
		return err
	})
	return seq, err
}

// ClearSpoolMark forgets spool's mark, once its file is gone.
func (l *Log) ClearSpoolMark(ctx context.Context, spool string) error {
	key, err := l.space.AuditSpool(spool)
	if err != nil {
		return invalid("spool: %v", err)
	}
	_, err = l.store.Update(ctx, func(tx kv.Tx) error {
		tx.Clear(key)
		return nil
	})
	return err
}
