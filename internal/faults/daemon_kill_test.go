package faults_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/webview"
)

// TestDaemonSIGKILLMidTraffic kills `coditect serve` while MCP clients
// over HTTP append notes and a dashboard follows the feed, restarts it on
// the same store and address, and checks that every acknowledged note is
// in the log, the MCP clients carry on, and the feed client resumes from
// its cursor with no gap and no duplicate.
func TestDaemonSIGKILLMidTraffic(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "coditect.db")
	storeURL := sqliteURL(dbPath)
	d := startDaemon(t, storeURL, "127.0.0.1:0")
	if d.token == "" {
		t.Fatal("first start printed no login token")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	const clients = 3
	killAfter := 60 // acknowledged notes before the kill
	if !testing.Short() {
		killAfter = 600
	}

	// The dashboard follows only notes, from the start of the log.
	notes := webview.FeedFilter{Kind: "note.added"}
	feed, err := dialFeed(ctx, d, d.token, "", notes)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		acked    = map[string]bool{}
		received []string
	)
	feedDone := make(chan error, 1)
	go func() {
		for {
			evs, err := feed.read(ctx)
			if err != nil {
				feedDone <- err
				return
			}
			mu.Lock()
			for _, ev := range evs {
				received = append(received, ev.ID)
			}
			mu.Unlock()
		}
	}()

	sessions := make([]*mcp.ClientSession, clients)
	for i := range sessions {
		if sessions[i], err = connectHTTP(ctx, d, d.token, fmt.Sprintf("agent-%d", i)); err != nil {
			t.Fatal(err)
		}
		defer sessions[i].Close()
	}
	killed := make(chan struct{})
	var wg sync.WaitGroup
	failures := make([]int, clients)
	for i, cs := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				id, err := note(ctx, cs, fmt.Sprintf("agent-%d note %d", i, n))
				if err != nil {
					select {
					case <-killed:
						failures[i]++
						return // the daemon is gone: the call was not acknowledged
					default:
						t.Errorf("agent-%d before the kill: %v", i, err)
						return
					}
				}
				mu.Lock()
				acked[id] = true
				total := len(acked)
				mu.Unlock()
				if total == killAfter {
					close(killed) // before the kill: the others' next calls may fail
					d.kill()
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	select {
	case <-killed:
	default:
		t.Fatal("the clients stopped before the kill")
	}
	if err := <-feedDone; err == nil {
		t.Fatal("the feed survived the daemon's death")
	}

	// Every acknowledged note is in the log, exactly once.
	sc := openScope(t, storeURL, d.token)
	logged := allEvents(t, sc, audit.Filter{Kind: "note.added"})
	inLog := map[string]bool{}
	for _, ev := range logged {
		inLog[ev.ID] = true
	}
	mu.Lock()
	for id := range acked {
		if !inLog[id] {
			t.Errorf("acknowledged note %s is not in the log after SIGKILL", id)
		}
	}
	t.Logf("%d notes acknowledged before SIGKILL, %d in the log (the difference were in flight)", len(acked), len(logged))
	mu.Unlock()

	// Restart on the same store and address.
	d2 := startDaemon(t, storeURL, d.addr)
	if d2.token != "" {
		t.Fatal("a restart printed a new login token")
	}

	// The MCP clients carry on: the sessions they held survive the restart
	// (the session manager is stateless), else they reconnect.
	var last string
	for i, cs := range sessions {
		id, err := note(ctx, cs, fmt.Sprintf("agent-%d after restart", i))
		if err != nil {
			t.Logf("agent-%d: old session after restart: %v; reconnecting", i, err)
			cs2, cerr := connectHTTP(ctx, d2, d.token, fmt.Sprintf("agent-%d", i))
			if cerr != nil {
				t.Fatalf("agent-%d cannot reconnect after the restart: %v", i, cerr)
			}
			defer cs2.Close()
			if id, err = note(ctx, cs2, fmt.Sprintf("agent-%d after restart", i)); err != nil {
				t.Fatalf("agent-%d after the restart: %v", i, err)
			}
		}
		mu.Lock()
		acked[id] = true
		mu.Unlock()
		last = id
	}

	// The dashboard resumes from the last event it received.
	mu.Lock()
	cursor := ""
	if len(received) > 0 {
		cursor = received[len(received)-1]
	}
	before := len(received)
	mu.Unlock()
	feed2, err := dialFeed(ctx, d2, d.token, cursor, notes)
	if err != nil {
		t.Fatalf("feed after restart: %v", err)
	}
	defer feed2.c.CloseNow()
	for done := false; !done; {
		evs, err := feed2.read(ctx)
		if err != nil {
			t.Fatalf("resumed feed: %v", err)
		}
		for _, ev := range evs {
			received = append(received, ev.ID)
			done = done || ev.ID == last
		}
	}
	t.Logf("feed: %d events before the kill, %d after resuming from %q", before, len(received)-before, cursor)
	logged = allEvents(t, sc, audit.Filter{Kind: "note.added"})
	checkSequence(t, "feed across a SIGKILL", received, logged)
	for id := range acked {
		if !inLogOf(logged, id) {
			t.Errorf("acknowledged note %s missing after the restart", id)
		}
	}
	d2.stop(t)
	checkStore(t, sc, dbPath)
}

func inLogOf(evs []audit.Event, id string) bool {
	for _, ev := range evs {
		if ev.ID == id {
			return true
		}
	}
	return false
}
