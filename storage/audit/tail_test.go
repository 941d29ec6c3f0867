package audit_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/kvtest"
	"github.com/coditect/coditect/storage/kv/sqlite"
)

func openPath(path string) (kv.Store, error) {
	return sqlite.Open(context.Background(), path, sqlite.Options{})
}

// tailRole follows tenant's log from a cursor in another process and prints
// "ev <id>" per event (or "lat <ns>", append to receipt, with "lat" as the
// third argument), exiting after n events.
var tailRole = kvtest.Role{Name: "tail", Args: 4, Run: func(path string, args []string) error {
	tenant, cursor, mode := args[0], args[1], args[3]
	var n int
	if _, err := fmt.Sscan(args[2], &n); err != nil {
		return err
	}
	s, err := openPath(path)
	if err != nil {
		return err
	}
	defer s.Close()
	sp, err := keyspace.Tenant(tenant)
	if err != nil {
		return err
	}
	if cursor == "-" {
		cursor = ""
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fmt.Println("following")
	seen := 0
	err = audit.NewLog(s, sp).Tail(ctx, cursor, audit.Filter{}, func(ev audit.Event) error {
		if mode == "lat" {
			fmt.Printf("lat %d\n", time.Since(ev.Time).Nanoseconds())
		} else {
			fmt.Printf("ev %s\n", ev.ID)
		}
		if seen++; seen == n {
			cancel()
		}
		return nil
	})
	if seen == n {
		return nil
	}
	return err
}}

func TestMain(m *testing.M) { kvtest.Main(m, openPath, tailRole) }

func recvIDs(t *testing.T, c *kvtest.Child, n int) []string {
	t.Helper()
	var out []string
	for len(out) < n {
		out = append(out, c.Expect(t, "ev ", time.Minute))
	}
	return out
}

// A follower in another process sees every event once, in order, including
// events appended after it started waiting; one that reconnects with its
// cursor, even after being killed, misses nothing and sees nothing twice.
func TestTailAcrossProcesses(t *testing.T) {
	s, path := openStore(t)
	l := newLog(t, s, "acme")
	first := appendN(t, l, 3, func(i int) audit.Event { return audit.Event{Kind: "note.added"} })
	c := kvtest.StartRole(t, "tail", path, "acme", "-", 10, "ids")
	c.Expect(t, "following", time.Minute)
	got := recvIDs(t, c, 3)
	// The follower is now waiting on its watch: append one at a time.
	var all []audit.Event
	all = append(all, first...)
	for i := 0; i < 7; i++ {
		all = append(all, appendN(t, l, 1, func(int) audit.Event { return audit.Event{Kind: "note.added"} })...)
		got = append(got, recvIDs(t, c, 1)...)
	}
	c.Wait(t, time.Minute)
	if strings.Join(got, ",") != strings.Join(ids(all), ",") {
		t.Fatalf("follower got %v\nwant %v", got, ids(all))
	}

	// Killed mid-stream and restarted from its last cursor.
	more := appendN(t, l, 20, func(int) audit.Event { return audit.Event{Kind: "note.added"} })
	all = append(all, more...)
	c = kvtest.StartRole(t, "tail", path, "acme", all[9].ID, 1000, "ids")
	c.Expect(t, "following", time.Minute)
	part := recvIDs(t, c, 5)
	c.Kill(t)
	c = kvtest.StartRole(t, "tail", path, "acme", part[len(part)-1], 15, "ids")
	part = append(part, recvIDs(t, c, 15)...)
	c.Wait(t, time.Minute)
	if strings.Join(part, ",") != strings.Join(ids(more), ",") {
		t.Fatalf("resumed follower got %v\nwant %v", part, ids(more))
	}
}
