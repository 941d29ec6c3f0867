package tools

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/sqlite"
	"github.com/coditect/coditect/storage/tenant"
)

// commitCounter is a store that counts its write transactions that
// committed.
type commitCounter struct {
	kv.Store
	commits atomic.Int64
}

func (s *commitCounter) Update(ctx context.Context, fn func(kv.Tx) error) (kv.Versionstamp, error) {
	vs, err := s.Store.Update(ctx, fn)
	if err == nil {
		s.commits.Add(1)
	}
	return vs, err
}

// countedScope returns a scope acting as an agent, on a real SQLite store
// whose commits are counted, and a second agent of the same tenant.
func countedScope(t *testing.T) (*commitCounter, *tenant.Scope) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"), sqlite.Options{Synchronous: sqlite.SyncNormal})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cs := &commitCounter{Store: st}
	sc, err := tenant.NewDirectory(cs, "test").Local(ctx, "t1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"reviewer", "tester"} {
		ag, err := agent.Register(ctx, sc, agent.Registration{Name: name, Client: "go-test", Model: "m1"})
		if err != nil {
			t.Fatal(err)
		}
		if name == "tester" {
			if sc, err = sc.WithAgent(ag.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	return cs, sc
}

// A keyed call of a one-transaction tool (note, message_send) is one
// commit: its effect, its tool.called record and its kept result; so is
// the same call without a key, and a retry answered from the kept result
// commits only its own record. Without a queue and with one (the
// production middleware), whose record of a replay shares no commit with
// the call.
func TestOneTxToolsCommitOnce(t *testing.T) {
	for _, tc := range []struct{ tool, args, kind string }{
		{"note", `{"text":"chose sqlite","kind":"decision"}`, "decision.recorded"},
		{"message_send", `{"to":"reviewer","subject":"review","body":"please look"}`, "message.sent"},
	} {
		for _, queued := range []bool{false, true} {
			name := tc.tool
			if queued {
				name += "/queue"
			}
			t.Run(name, func(t *testing.T) {
				cs, sc := countedScope(t)
				var q *AuditQueue
				if queued {
					q = NewAuditQueue(0, nil)
					t.Cleanup(func() { q.Close(context.Background()) })
				}
				tool := findTool(t, tc.tool)
				h := Chain(Heartbeat(time.Hour, nil), Audit(nil, q))(tool.Handler)
				run := func(args string) (map[string]any, int64) {
					t.Helper()
					before := cs.commits.Load()
					c := &Call{Caller: Caller{Scope: sc, Client: mcp.Implementation{Name: "go-test"}}, Tool: tool,
						Args: json.RawMessage(args), Started: time.Now()}
					res, err := h(context.Background(), c)
					if err != nil {
						t.Fatalf("%s %s: %v", tc.tool, args, err)
					}
					b, _ := json.Marshal(res.Structured)
					var m map[string]any
					if err := json.Unmarshal(b, &m); err != nil {
						t.Fatal(err)
					}
					return m, cs.commits.Load() - before
				}
				run(tc.args) // the heartbeat's first beat
				if _, n := run(tc.args); n != 1 {
					t.Errorf("a call without a key made %d commits, want 1", n)
				}
				keyed := withKey(t, tc.args, "k1")
				first, n := run(keyed)
				if n != 1 {
					t.Errorf("a keyed call made %d commits, want 1", n)
				}
				again, n := run(keyed)
				sameResult(t, first, again)
				if n != 1 {
					t.Errorf("its retry made %d commits, want 1 (its own record)", n)
				}
				got := counts(t, sc)
				if got[tc.kind] != 3 || got["tool.called"] != 4 {
					t.Errorf("%d %s events and %d tool.called records after 4 calls (one replayed), want 3 and 4",
						got[tc.kind], tc.kind, got["tool.called"])
				}
			})
		}
	}
}

// The result a keyed one-transaction call keeps names its commit's stamp
// (the event or message id) as the caller saw it, also when replayed from
// another process (which holds no flight of the call).
func TestOneTxReplayNamesCommit(t *testing.T) {
	e := setup(t)
	a := e.alice
	args := `{"text":"kept","idempotency_key":"k-stamp"}`
	first, _ := mustCall(t, a, "note", args)
	key, _ := keyOf(t, a, "note", args)
	var o audit.Outcome
	if err := a.Store().View(context.Background(), func(tx kv.ReadTx) error {
		var err error
		o, _, err = a.Log().GetOutcome(tx, key)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	id, _ := first["event_id"].(string)
	if o.Stamp.IsZero() || !strings.HasPrefix(id, o.Stamp.String()[:2*kv.StampSize]) {
		t.Fatalf("outcome stamp %s, event %s: want the event's commit", o.Stamp, id)
	}
	if !strings.Contains(string(o.Result), string(placeholderCommit)) {
		t.Errorf("kept result %s does not name its commit by the placeholder", o.Result)
	}
	again, text := mustCall(t, a, "note", args)
	sameResult(t, first, again)
	if !strings.Contains(text, id) {
		t.Errorf("replayed text %q does not name event %s", text, id)
	}
}

// A duplicate that reaches the store with no flight of this process
// before it — as one from another process does, once the first has
// committed — finds the key's outcome in its own transaction, writes
// nothing and is answered with the first result. (Two processes racing:
// server's TestOneTxDuplicatesAcrossProcesses.)
func TestOneTxDuplicateWithoutFlight(t *testing.T) {
	e := setup(t)
	a := e.alice
	tool := findTool(t, "note")
	args := `{"text":"raced","idempotency_key":"k-race"}`
	key, digest := keyOf(t, a, "note", args)
	before := counts(t, a)["note.added"]
	newCall := func() *Call {
		c := &Call{Caller: Caller{Scope: a}, Tool: tool, Args: json.RawMessage(args), Started: time.Now()}
		if _, _, err := c.idempotencyKey(); err != nil {
			t.Fatal(err)
		}
		c.keyed = &txKey{key: key, digest: digest}
		return c
	}
	c1, c2 := newCall(), newCall()
	res1, err1 := note(context.Background(), c1)
	_, err2 := note(context.Background(), c2)
	if err1 != nil || !errors.Is(err2, errKeyUsed) {
		t.Fatalf("first: %v; second: %v, want it to find the key used", err1, err2)
	}
	replayed, err := c2.replay(c2.keyed.prior, digest)
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := json.Marshal(res1.Structured)
	b2, _ := json.Marshal(replayed.Structured)
	var m1, m2 map[string]any
	_ = json.Unmarshal(b1, &m1)
	_ = json.Unmarshal(b2, &m2)
	sameResult(t, m1, m2)
	if n := counts(t, a)["note.added"] - before; n != 1 {
		t.Errorf("%d notes from two raced duplicates, want 1", n)
	}
}

// A one-transaction call whose commit landed but was reported failed is
// in the log once, with one record. When the store ran the transaction
// again (FoundationDB's commit_unknown_result), the call is answered with
// its own result, not as a replay. When the failure reached the caller (a
// commit cut off by its deadline that landed all the same), the
// middleware's record of the failure is not written beside the one that
// landed, and the host's retry with the key is answered from the kept
// result.
func TestOneTxLandedCommit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		report error
	}{
		{"store retried", nil},
		{"failure reported", context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ls, sc, _ := landedScope(t, tc.report)
			tool := findTool(t, "note")
			h := Chain(Audit(nil, nil))(tool.Handler)
			args := json.RawMessage(`{"text":"landed","idempotency_key":"k-landed"}`)
			ls.armed.Store(true)
			c := &Call{Caller: Caller{Scope: sc}, Tool: tool, Args: args, Started: time.Now()}
			res, err := h(context.Background(), c)
			if !ls.landed.Load() {
				t.Fatal("the store did not land the commit")
			}
			records := 1
			if tc.report == nil {
				if err != nil {
					t.Fatal(err)
				}
				out, ok := res.Structured.(map[string]any)
				if !ok || out["replayed"] != nil || !strings.HasPrefix(res.Text, "Note recorded as event ") || strings.Contains(res.Text, "Replayed") {
					t.Errorf("answer %#v %q: want the call's own result", res.Structured, res.Text)
				}
			} else {
				if !errors.Is(err, tc.report) {
					t.Fatalf("call: %v, want %v", err, tc.report)
				}
				c := &Call{Caller: Caller{Scope: sc}, Tool: tool, Args: args, Started: time.Now()}
				res, err := h(context.Background(), c)
				if err != nil {
					t.Fatal(err)
				}
				out, _ := res.Structured.(map[string]any)
				if id, _ := out["event_id"].(string); out["replayed"] != true || len(id) != 24 || strings.HasPrefix(id, "ffff") {
					t.Errorf("retry answered %v: want the kept result, replayed, naming the note", out)
				}
				records = 2
			}
			got := counts(t, sc)
			if got["note.added"] != 1 || got["tool.called"] != records {
				t.Errorf("%d notes and %d records, want 1 and %d", got["note.added"], got["tool.called"], records)
			}
		})
	}
}
