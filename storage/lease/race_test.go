package lease_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/storage/tuple"
)

// hot is the resource the racers fight over.
const hot = "src/hot.go"

// occupancy is where racers log entering and leaving the critical
// section, in commit order: outside every tenant, for the test only.
var occupancy = keyspace.Root().Sub("test", "occupancy")

// mark is one entry of the occupancy log.
type mark struct {
	enter bool
	token int64
	agent string
}

// logMark appends a mark in its own transaction, which also checks the
// fence: a holder whose lease is no longer current cannot log.
func logMark(ctx context.Context, s kv.Store, sc *tenant.Scope, l lease.Lease, enter bool) error {
	_, err := s.Update(ctx, func(tx kv.Tx) error {
		if err := lease.CheckFence(tx, sc, l.Resource, l.Agent, l.Token); err != nil {
			return err
		}
		tmpl, off, err := occupancy.PackWithVersionstamp(tuple.Tuple{kv.IncompleteVersionstamp(0)})
		if err != nil {
			return err
		}
		tx.SetVersionstampedKey(tmpl, off, fmt.Appendf(nil, "%t %d %s", enter, l.Token, l.Agent))
		return nil
	})
	return err
}

func readMarks(t *testing.T, s kv.Store) []mark {
	t.Helper()
	var out []mark
	b, e := occupancy.Range()
	err := s.View(context.Background(), func(tx kv.ReadTx) error {
		out = out[:0]
		pairs, err := kv.Collect(tx.GetRange(b, e, kv.RangeOptions{}))
		for _, p := range pairs {
			var m mark
			if _, err := fmt.Sscanf(string(p.Value), "%t %d %s", &m.enter, &m.token, &m.agent); err != nil {
				return err
			}
			out = append(out, m)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkExclusive verifies a commit-ordered occupancy log: each holder
// enters, then the same holder leaves, before anyone else enters, and
// tokens strictly increase from one holder to the next. Two holders at
// once show up as two enters in a row.
func checkExclusive(marks []mark) error {
	var last int64
	for i := 0; i < len(marks); i += 2 {
		in := marks[i]
		if !in.enter {
			return fmt.Errorf("mark %d: %s leaves (token %d) while nobody is inside", i, in.agent, in.token)
		}
		if in.token <= last {
			return fmt.Errorf("mark %d: token %d after token %d", i, in.token, last)
		}
		if i+1 == len(marks) {
			return fmt.Errorf("mark %d: %s never leaves", i, in.agent)
		}
		out := marks[i+1]
		if out.enter {
			return fmt.Errorf("mark %d: %s (token %d) enters while %s (token %d) is inside", i+1, out.agent, out.token, in.agent, in.token)
		}
		if out.token != in.token || out.agent != in.agent {
			return fmt.Errorf("mark %d: %s (token %d) leaves while %s (token %d) is inside", i+1, out.agent, out.token, in.agent, in.token)
		}
		last = in.token
	}
	return nil
}

func TestCheckExclusiveDetectsOverlap(t *testing.T) {
	for _, tc := range []struct {
		name  string
		marks []mark
		ok    bool
	}{
		{"one at a time", []mark{{true, 1, "a"}, {false, 1, "a"}, {true, 2, "b"}, {false, 2, "b"}}, true},
		{"overlap", []mark{{true, 1, "a"}, {true, 2, "b"}, {false, 1, "a"}, {false, 2, "b"}}, false},
		{"crossed exits", []mark{{true, 1, "a"}, {false, 2, "b"}}, false},
		{"token reused", []mark{{true, 2, "a"}, {false, 2, "a"}, {true, 2, "b"}, {false, 2, "b"}}, false},
		{"never leaves", []mark{{true, 1, "a"}}, false},
	} {
		if err := checkExclusive(tc.marks); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// racer is a child process: args are the store path, the number of
// goroutines and rounds. Each goroutine is an agent that takes the hot
// lease rounds times, logging its stay, once the parent says "go".
func racer(args []string, out io.Writer, in *bufio.Reader) error {
	if len(args) != 3 {
		return fmt.Errorf("racer wants path, goroutines, rounds; got %q", args)
	}
	goroutines, _ := strconv.Atoi(args[1])
	rounds, _ := strconv.Atoi(args[2])
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := agenttest.OpenPath(ctx, args[0])
	if err != nil {
		return err
	}
	defer s.Close()
	sc, err := tenant.NewDirectory(s, "racer").Local(ctx, "acme", "alice")
	if err != nil {
		return err
	}
	scopes := make([]*tenant.Scope, goroutines)
	for i := range scopes {
		a, err := agent.Register(ctx, sc, agent.Registration{Name: fmt.Sprintf("p%d-g%d", os.Getpid(), i), Client: "racer"})
		if err != nil {
			return err
		}
		if scopes[i], err = sc.WithAgent(a.ID); err != nil {
			return err
		}
	}
	fmt.Fprintln(out, "ready")
	if _, err := in.ReadString('\n'); err != nil {
		return fmt.Errorf("waiting for go: %w", err)
	}
	errs := make(chan error, goroutines)
	var wg sync.WaitGroup
	for _, as := range scopes {
		wg.Go(func() {
			for range rounds {
				l, err := lease.AcquireWait(ctx, as, lease.Request{Resource: hot, TTL: time.Minute})
				if err == nil {
					err = logMark(ctx, s, as, l, true)
				}
				if err == nil {
					err = logMark(ctx, s, as, l, false)
				}
				if err == nil {
					err = lease.Release(ctx, as, hot, l.Token)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	fmt.Fprintln(out, "done")
	return nil
}

// TestExclusiveAcrossProcesses: 3 processes × 8 goroutines race for one
// exclusive lease; the commit-ordered occupancy log shows them inside one
// at a time, with strictly increasing fencing tokens.
func TestExclusiveAcrossProcesses(t *testing.T) {
	const procs, goroutines = 3, 8
	rounds := 6
	if testing.Short() {
		rounds = 3
	}
	s, path := agenttest.Open(t)
	admin := agenttest.Scope(t, s, "acme", "alice")
	var children []*agenttest.Child
	for range procs {
		children = append(children, agenttest.Start(t, "racer", path, strconv.Itoa(goroutines), strconv.Itoa(rounds)))
	}
	for _, c := range children {
		c.Expect(t, "ready", time.Minute)
	}
	for _, c := range children {
		c.Send(t, "go")
	}
	for _, c := range children {
		c.Expect(t, "done", 2*time.Minute)
		c.Wait(t, time.Minute)
	}
	marks := readMarks(t, s)
	if want := 2 * procs * goroutines * rounds; len(marks) != want {
		t.Fatalf("%d marks, want %d", len(marks), want)
	}
	if err := checkExclusive(marks); err != nil {
		t.Fatal(err)
	}
	agents := map[string]bool{}
	for _, m := range marks {
		agents[m.agent] = true
	}
	if len(agents) != procs*goroutines {
		t.Fatalf("%d distinct holders, want %d", len(agents), procs*goroutines)
	}
	// Every grant consumed one token, and each is in the audit log.
	fk, _ := admin.Space().LeaseFence(hot)
	var last int64
	s.View(context.Background(), func(tx kv.ReadTx) error {
		v, err := tx.Get(fk)
		last = kv.Int64(v)
		return err
	})
	grants := int64(procs * goroutines * rounds)
	if last != grants || marks[len(marks)-1].token != grants {
		t.Fatalf("last token %d (last mark %d), want %d", last, marks[len(marks)-1].token, grants)
	}
	page, err := admin.Log().Query(context.Background(), audit.Query{Filter: audit.Filter{Path: hot, Kind: "lease.acquired"}, Limit: audit.MaxLimit})
	if err != nil || int64(len(page.Events)) != grants {
		t.Fatalf("%d lease.acquired events, %v; want %d", len(page.Events), err, grants)
	}
}

// cycler is a child process for the contention benchmark: args are the
// store path and the resource. It takes and gives back the lease in a loop
// until its standard input closes, then prints how many cycles it did.
func cycler(args []string, out io.Writer, in *bufio.Reader) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := agenttest.OpenPath(ctx, args[0])
	if err != nil {
		return err
	}
	defer s.Close()
	sc, err := tenant.NewDirectory(s, "cycler").Local(ctx, "acme", "alice")
	if err != nil {
		return err
	}
	a, err := agent.Register(ctx, sc, agent.Registration{Name: fmt.Sprintf("cycler-%d", os.Getpid()), Client: "bench"})
	if err != nil {
		return err
	}
	as, err := sc.WithAgent(a.ID)
	if err != nil {
		return err
	}
	stop, stopped := context.WithCancel(ctx)
	defer stopped()
	go func() {
		_, _ = io.Copy(io.Discard, in)
		stopped()
	}()
	fmt.Fprintln(out, "ready")
	n := 0
	for stop.Err() == nil {
		l, err := lease.AcquireWait(stop, as, lease.Request{Resource: args[1]})
		if err != nil {
			if stop.Err() != nil {
				break
			}
			return err
		}
		if err := lease.Release(ctx, as, l.Resource, l.Token); err != nil {
			return err
		}
		n++
	}
	fmt.Fprintf(out, "cycles %d\n", n)
	return nil
}
