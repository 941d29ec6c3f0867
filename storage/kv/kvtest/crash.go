package kvtest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/kv"
)

// CrashKills is how many SIGKILLs RunCrash delivers: 10 with -short, 200
// otherwise, or the number in CODITECT_CRASH_KILLS.
func CrashKills() int {
	if v, err := strconv.Atoi(os.Getenv("CODITECT_CRASH_KILLS")); err == nil && v > 0 {
		return v
	}
	if testing.Short() {
		return 10
	}
	return 200
}

// RunCrash starts writer processes that commit, forever, transactions that
// append a numbered record and move a unit between two balances, printing an
// acknowledgement only after each commit (every other commit with relaxed
// durability, kv.WithRelaxedDurability). It kills one of them with SIGKILL
// after a random number of acknowledgements (sometimes none, so kills also
// land during start-up and the first commit), kills times in all, and after
// every kill checks, in a freshly opened store, that every acknowledged
// record is present, the records of each writer are exactly 1..seq with no
// gap (nothing half-applied), and the balances still sum to zero.
func RunCrash(t *testing.T, h Harness, kills int) {
	_, loc := h.New(t)
	const writers = 2
	acked := make([]int64, writers)
	procs := make([]*child, writers)
	start := func(i int) { procs[i] = startChild(t, "crash", loc, i) }
	for i := range procs {
		start(i)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for k := 0; k < kills; k++ {
		victim := rng.IntN(writers)
		// Let the victim acknowledge 0..40 commits, then kill it. The
		// other writer runs on meanwhile, so kills land under contention.
		n := rng.IntN(41)
		c := procs[victim]
		for j := 0; j < n; j++ {
			seq := c.expect(t, "ack ", time.Minute)
			v, err := strconv.ParseInt(seq, 10, 64)
			if err != nil {
				t.Fatalf("bad ack %q", seq)
			}
			acked[victim] = v
		}
		if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill: %v", err)
		}
		// Collect acknowledgements already printed before the kill.
		for line := range c.lines {
			if rest, ok := bytes.CutPrefix([]byte(line), []byte("ack ")); ok {
				if v, err := strconv.ParseInt(string(rest), 10, 64); err == nil {
					acked[victim] = v
				}
			}
		}
		<-c.errc
		verifyCrash(t, h, loc, writers, acked, k)
		start(victim)
	}
	for _, c := range procs {
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		for range c.lines {
		}
		<-c.errc
	}
	verifyCrash(t, h, loc, writers, acked, kills)
	t.Logf("%d kills; acknowledged commits per writer: %v", kills, acked)
}

func verifyCrash(t *testing.T, h Harness, loc string, writers int, acked []int64, kill int) {
	t.Helper()
	s, err := h.Open(loc)
	if err != nil {
		t.Fatalf("after kill %d: store does not open: %v", kill, err)
	}
	defer s.Close()
	var total int64
	err = s.View(ctxT(t), func(tx kv.ReadTx) error {
		a, err := tx.Get(crashA)
		if err != nil {
			return err
		}
		b, err := tx.Get(crashB)
		if err != nil {
			return err
		}
		if kv.Int64(a)+kv.Int64(b) != 0 {
			return fmt.Errorf("balances a=%d b=%d do not sum to 0", kv.Int64(a), kv.Int64(b))
		}
		for id := 0; id < writers; id++ {
			v, err := tx.Get(crashSeqKey(id))
			if err != nil {
				return err
			}
			seq := kv.Int64(v)
			if seq < acked[id] {
				return fmt.Errorf("writer %d: store has %d records but %d were acknowledged", id, seq, acked[id])
			}
			begin, end := kv.PrefixRange([]byte(fmt.Sprintf("crash/rec/%d/", id)))
			recs, err := kv.Collect(tx.GetRange(begin, end, kv.RangeOptions{}))
			if err != nil {
				return err
			}
			if int64(len(recs)) != seq {
				return fmt.Errorf("writer %d: counter says %d records, %d present", id, seq, len(recs))
			}
			for i, r := range recs {
				if !bytes.Equal(r.Key, crashRecKey(id, int64(i+1))) {
					return fmt.Errorf("writer %d: record %d has key %q", id, i+1, r.Key)
				}
			}
			total += seq
		}
		if -kv.Int64(a) != total {
			return fmt.Errorf("balance moved %d times but %d records exist", -kv.Int64(a), total)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after kill %d: %v", kill, err)
	}
}
