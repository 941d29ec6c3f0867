package transfer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
)

// The portable backup format: a magic line, then one record per key-value
// pair, then a trailer with the count and the SHA-256 of every record:
//
//	"CODITECT-BACKUP 1\n"
//	0x01 uvarint(len key) key uvarint(len value) value   (repeated)
//	0x00 uvarint(count) sha256[32]
//
// Keys are in key order and keep their versionstamps, so a backup restores
// into either backend.
const magic = "CODITECT-BACKUP 1\n"

// Errors.
var (
	ErrNotEmpty  = errors.New("destination store is not empty")
	ErrBadBackup = errors.New("not a valid backup")
)

// BackupReport says what Backup or Restore did.
type BackupReport struct {
	Keys     int64  `json:"keys"`
	Bytes    int64  `json:"bytes"`
	Checksum string `json:"sha256"`
	Advanced bool   `json:"advanced,omitempty"`
}

// Backup writes the scope's keys to w. It reads in bounded transactions: on
// a store being written, each range is consistent but the whole is not a
// single snapshot, so back up a quiet store (or stop the writers) for a
// point-in-time copy.
func Backup(ctx context.Context, src kv.Store, sc Scope, w io.Writer) (BackupReport, error) {
	var r BackupReport
	bw := bufio.NewWriter(w)
	if _, err := bw.WriteString(magic); err != nil {
		return r, err
	}
	sp, err := spans(ctx, src, sc)
	if err != nil {
		return r, err
	}
	h := sha256.New()
	var buf []byte
	for _, s := range sp {
		begin := s.Begin
		for {
			var batch []kv.KeyValue
			if err := src.View(ctx, func(tx kv.ReadTx) error {
				batch = batch[:0]
				it := tx.GetRange(begin, s.End, kv.RangeOptions{Limit: batchKeys})
				for it.Next() {
					batch = append(batch, it.KeyValue())
				}
				return it.Err()
			}); err != nil {
				return r, err
			}
			for _, p := range batch {
				buf = append(buf[:0], 1)
				buf = binary.AppendUvarint(buf, uint64(len(p.Key)))
				buf = append(buf, p.Key...)
				buf = binary.AppendUvarint(buf, uint64(len(p.Value)))
				buf = append(buf, p.Value...)
				h.Write(buf)
				if _, err := bw.Write(buf); err != nil {
					return r, err
				}
				r.Keys++
				r.Bytes += int64(len(p.Key) + len(p.Value))
			}
			if len(batch) < batchKeys {
				break
			}
			begin = kv.KeyAfter(batch[len(batch)-1].Key)
		}
	}
	sum := h.Sum(nil)
	buf = append(buf[:0], 0)
	buf = binary.AppendUvarint(buf, uint64(r.Keys))
	buf = append(buf, sum...)
	if _, err := bw.Write(buf); err != nil {
		return r, err
	}
	r.Checksum = fmt.Sprintf("%x", sum)
	return r, bw.Flush()
}

// Restore writes a backup into dst, which must hold no Coditect keys. The
// checksum is checked at the end; if it does not match (a damaged or
// truncated file) everything restored is removed again and ErrBadBackup
// returned. dst is then advanced past the largest versionstamp restored.
func Restore(ctx context.Context, dst kv.Store, r io.Reader) (BackupReport, error) {
	var rep BackupReport
	ok, err := empty(ctx, dst)
	if err != nil {
		return rep, err
	}
	if !ok {
		return rep, fmt.Errorf("transfer: restore: %w: restore into a new store", ErrNotEmpty)
	}
	br := bufio.NewReader(r)
	head := make([]byte, len(magic))
	if _, err := io.ReadFull(br, head); err != nil || string(head) != magic {
		return rep, fmt.Errorf("transfer: restore: %w: missing the %q header", ErrBadBackup, magic[:len(magic)-1])
	}
	h := sha256.New()
	var cr CopyReport
	fail := func(err error) (BackupReport, error) {
		// Leave the destination as it was: empty.
		_, cerr := dst.Update(context.WithoutCancel(ctx), func(tx kv.Tx) error {
			b, e := keyspace.Root().Range()
			tx.ClearRange(b, e)
			return nil
		})
		return rep, errors.Join(err, cerr)
	}
	var batch []kv.KeyValue
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := dst.Update(ctx, func(tx kv.Tx) error {
			for _, p := range batch {
				tx.Set(p.Key, p.Value)
			}
			return nil
		})
		batch, size = batch[:0], 0
		return err
	}
	for {
		tag, err := br.ReadByte()
		if err != nil {
			return fail(fmt.Errorf("transfer: restore: %w: truncated (%v)", ErrBadBackup, err))
		}
		if tag == 0 {
			count, err := binary.ReadUvarint(br)
			sum := make([]byte, sha256.Size)
			if err == nil {
				_, err = io.ReadFull(br, sum)
			}
			if err != nil {
				return fail(fmt.Errorf("transfer: restore: %w: truncated trailer", ErrBadBackup))
			}
			if int64(count) != rep.Keys || string(sum) != string(h.Sum(nil)) {
				return fail(fmt.Errorf("transfer: restore: %w: checksum or count does not match (%d records read, %d recorded)", ErrBadBackup, rep.Keys, count))
			}
			if err := flush(); err != nil {
				return fail(err)
			}
			rep.Checksum = fmt.Sprintf("%x", sum)
			break
		}
		if tag != 1 {
			return fail(fmt.Errorf("transfer: restore: %w: unknown record tag %d", ErrBadBackup, tag))
		}
		k, err := readField(br, h, tag, kv.MaxKeySize)
		if err != nil {
			return fail(err)
		}
		v, err := readField(br, nil, 0, kv.MaxValueSize)
		if err != nil {
			return fail(err)
		}
		hashRecordTail(h, v)
		batch = append(batch, kv.KeyValue{Key: k, Value: v})
		size += len(k) + len(v)
		rep.Keys++
		rep.Bytes += int64(len(k) + len(v))
		noteStamp(k, &cr)
		if len(batch) >= batchKeys || size >= batchBytes {
			if err := flush(); err != nil {
				return fail(err)
			}
		}
	}
	if err := advance(ctx, dst, &cr); err != nil {
		return rep, err
	}
	rep.Advanced = cr.Advanced
	return rep, nil
}

// readField reads uvarint(len) and the bytes, refusing lengths over max.
// With h set, it hashes the tag, the length and the bytes (a record's
// first field); the value's length and bytes are hashed by the caller.
func readField(br *bufio.Reader, h hash.Hash, tag byte, max int) ([]byte, error) {
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, fmt.Errorf("transfer: restore: %w: truncated record", ErrBadBackup)
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("transfer: restore: %w: a field of %d bytes exceeds %d", ErrBadBackup, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		return nil, fmt.Errorf("transfer: restore: %w: truncated record", ErrBadBackup)
	}
	if h != nil {
		h.Write([]byte{tag})
		h.Write(binary.AppendUvarint(nil, n))
		h.Write(b)
	}
	return b, nil
}

func hashRecordTail(h hash.Hash, v []byte) {
	h.Write(binary.AppendUvarint(nil, uint64(len(v))))
	h.Write(v)
}
