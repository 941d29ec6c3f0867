package kvtest

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"github.com/coditect/coditect/storage/kv"
)

// The child roles. Each prints its acknowledgements on stdout, one line
// each, flushed only after the acknowledged commit returned.

// barrier makes the children of one test start their work together, so
// that their transactions really overlap: each child counts itself in
// "barrier/ready" and waits, with a watch, for the parent to set
// "barrier/go" (see releaseBarrier).
func barrier(ctx context.Context, s kv.Store) error {
	if _, err := s.Update(ctx, func(tx kv.Tx) error {
		tx.Add([]byte("barrier/ready"), 1)
		return nil
	}); err != nil {
		return err
	}
	for {
		var w kv.Watch
		var goSet bool
		if err := s.View(ctx, func(tx kv.ReadTx) error {
			v, err := tx.Get([]byte("barrier/go"))
			goSet = v != nil
			if err == nil && !goSet {
				w = tx.Watch([]byte("barrier/go"))
			}
			return err
		}); err != nil {
			return err
		}
		if goSet {
			return nil
		}
		if err := w.Wait(ctx); err != nil {
			return err
		}
	}
}

// childIncr: goroutines × iters read-modify-write increments (Get then Set,
// no atomic op) spread over keys shared with the other processes.
func childIncr(ctx context.Context, s kv.Store, keys, goroutines, iters int) error {
	if err := barrier(ctx, s); err != nil {
		return err
	}
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		go func() {
			for i := 0; i < iters; i++ {
				key := counterKey((g + i) % keys)
				_, err := s.Update(ctx, func(tx kv.Tx) error {
					v, err := tx.Get(key)
					if err != nil {
						return err
					}
					tx.Set(key, kv.EncodeInt64(kv.Int64(v)+1))
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < goroutines; g++ {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

func counterKey(i int) []byte { return []byte(fmt.Sprintf("counter/%03d", i)) }

// stampTemplate is "vs/" + an incomplete versionstamp with user order u.
func stampTemplate(u uint16) ([]byte, int) {
	inc := kv.IncompleteVersionstamp(u)
	return append([]byte("vs/"), inc[:]...), 3
}

// childStamp commits n transactions, each incrementing the shared "order"
// counter and writing two versionstamped keys (user orders 0 and 1) whose
// values name the process, sequence, user order and commit order, and
// prints "stamp <proc> <seq> <hex>" with the commit's returned stamp.
func childStamp(ctx context.Context, s kv.Store, out *bufio.Writer, proc, n int) error {
	if err := barrier(ctx, s); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		stamp, err := s.Update(ctx, func(tx kv.Tx) error {
			// A shared counter, read and written, numbers the commits in
			// the order the store serialised them.
			v, err := tx.Get([]byte("order"))
			if err != nil {
				return err
			}
			order := kv.Int64(v) + 1
			tx.Set([]byte("order"), kv.EncodeInt64(order))
			for u := uint16(0); u < 2; u++ {
				tmpl, off := stampTemplate(u)
				tx.SetVersionstampedKey(tmpl, off, []byte(fmt.Sprintf("%d/%d/%d/%d", proc, i, u, order)))
			}
			return nil
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "stamp %d %d %s\n", proc, i, stamp)
		if err := out.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// childWatch sets a watch on "watched" in a read transaction, says "ready",
// waits for it and says "fired".
func childWatch(ctx context.Context, s kv.Store, out *bufio.Writer) error {
	var w kv.Watch
	if err := s.View(ctx, func(tx kv.ReadTx) error {
		if _, err := tx.Get([]byte("watched")); err != nil {
			return err
		}
		w = tx.Watch([]byte("watched"))
		return nil
	}); err != nil {
		return err
	}
	fmt.Fprintln(out, "ready")
	if err := out.Flush(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := w.Wait(ctx); err != nil {
		return err
	}
	fmt.Fprintln(out, "fired")
	return out.Flush()
}

// Keys of the crash test.
var (
	crashA = []byte("crash/balance/a")
	crashB = []byte("crash/balance/b")
)

func crashSeqKey(id int) []byte { return []byte(fmt.Sprintf("crash/seq/%d", id)) }

func crashRecKey(id int, seq int64) []byte {
	k := []byte(fmt.Sprintf("crash/rec/%d/", id))
	return binary.BigEndian.AppendUint64(k, uint64(seq))
}

// childCrash commits, forever, transactions that each append the next
// numbered record of writer id and move one unit from balance a to b (so
// a+b stays 0), printing "ack <seq>" after each commit returns.
func childCrash(ctx context.Context, s kv.Store, id int) error {
	relaxed := kv.WithRelaxedDurability(ctx)
	for n := 0; ; n++ {
		var seq int64
		// Every other commit is relaxed (kv.WithRelaxedDurability): it
		// must survive the kill of its process as well as a durable one.
		uctx := ctx
		if n%2 == 1 {
			uctx = relaxed
		}
		_, err := s.Update(uctx, func(tx kv.Tx) error {
			v, err := tx.Get(crashSeqKey(id))
			if err != nil {
				return err
			}
			seq = kv.Int64(v) + 1
			a, err := tx.Get(crashA)
			if err != nil {
				return err
			}
			b, err := tx.Get(crashB)
			if err != nil {
				return err
			}
			tx.Set(crashSeqKey(id), kv.EncodeInt64(seq))
			tx.Set(crashRecKey(id, seq), []byte(fmt.Sprintf("record %d of writer %d", seq, id)))
			tx.Set(crashA, kv.EncodeInt64(kv.Int64(a)-1))
			tx.Set(crashB, kv.EncodeInt64(kv.Int64(b)+1))
			return nil
		})
		if err != nil {
			return err
		}
		// Unbuffered: the acknowledgement must leave before the next commit.
		if _, err := fmt.Fprintf(os.Stdout, "ack %d\n", seq); err != nil {
			return err
		}
	}
}

// childWrite commits n single-key transactions and prints the latency of
// each in nanoseconds ("lat <ns>"), then "done". With barrier, it first
// waits in AwaitGo, so that several writers start together. Used by
// contention tests and benchmarks.
func childWrite(ctx context.Context, s kv.Store, id, n int, barrier bool) error {
	if barrier {
		if err := AwaitGo(); err != nil {
			return err
		}
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for i := 0; i < n; i++ {
		key := []byte(fmt.Sprintf("write/%d/%08d", id, i))
		start := time.Now()
		if _, err := s.Update(ctx, func(tx kv.Tx) error {
			tx.Set(key, key)
			return nil
		}); err != nil {
			return err
		}
		fmt.Fprintf(out, "lat %d\n", time.Since(start).Nanoseconds())
	}
	fmt.Fprintln(out, "done")
	return out.Flush()
}
