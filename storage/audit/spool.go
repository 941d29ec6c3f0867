package audit

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/coditect/coditect/storage/kv"
)

// A write-ahead spool is a file in which a process writes the events it
// will append (the tool.called records of reads, tools.AuditQueue) before
// it answers, so that they survive its crash without a commit in the
// answer's path; it commits them later, in batches. The log keeps, per
// spool, the last sequence number committed, raised in the transaction that
// appends the records, so that a recovery of a dead process's spool
// appends exactly what is missing.

// SpoolRecord is one record of a spool: its sequence number in the spool
// and its event. A record with sequence number 0 is not spooled.
type SpoolRecord struct {
	Seq   uint64
	Event Event
}

// AppendSpool appends, in one transaction, the records of spool the log
// does not hold yet — those numbered above the spool's mark, which the
// transaction reads — and raises the mark to the highest number among
// recs; it returns how many it appended. Records of one spool must be
// appended in sequence order. The mark alone makes a spooled record's
// append exactly-once, so it needs no idempotency key of its own (one that
// has a key keeps it): a transaction run again after a commit whose
// outcome was unknown, a chunk retried after a commit that ran past its
// deadline, and a recovery of a dead process's spool all find the mark
// past what landed. Records numbered 0 are appended as they are. The count
// includes records an earlier run of the transaction appended in a commit
// that landed unseen.
func (l *Log) AppendSpool(ctx context.Context, spool string, recs []SpoolRecord) (int, error) {
	key, err := l.space.AuditSpool(spool)
	if err != nil {
		return 0, invalid("spool: %v", err)
	}
	n := 0
	var base uint64 // the mark the first run read
	runs := 0
	_, err = l.store.Update(ctx, func(tx kv.Tx) error {
		v, err := tx.Get(key)
		if err != nil {
			return err
		}
		var mark uint64
		if len(v) >= 8 {
			mark = binary.LittleEndian.Uint64(v)
		}
		if runs++; runs == 1 {
			base = mark
		}
		w := l.Writer(tx)
		w.batched = true
		n = 0
		top := mark
		for i, r := range recs {
			if r.Seq > 0 && r.Seq <= mark {
				if r.Seq > base {
					n++ // appended by an earlier run that landed
				}
				continue
			}
			if _, err := w.Append(r.Event); err != nil {
				if len(recs) > 1 {
					return fmt.Errorf("record %d: %w", i, err)
				}
				return err
			}
			n++
			top = max(top, r.Seq)
		}
		w.finish()
		if top > mark {
			var b [8]byte
			binary.LittleEndian.PutUint64(b[:], top)
			tx.Max(key, b[:])
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
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
