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
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/task"
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

// productionChain is the middleware a server puts around every tool (a
// heartbeat, the audit record), with an audit queue when queued.
func productionChain(t *testing.T, queued bool) Middleware {
	var q *AuditQueue
	if queued {
		q = NewAuditQueue(0, nil)
		t.Cleanup(func() { q.Close(context.Background()) })
	}
	return Chain(Heartbeat(time.Hour, nil), Audit(nil, q))
}

// countedRun returns a coordRun that calls a tool through chain as sc's
// caller and reports the commits the call made on cs.
func countedRun(t *testing.T, cs *commitCounter, sc *tenant.Scope, chain Middleware) coordRun {
	return func(name, args string) (map[string]any, string, int64, error) {
		t.Helper()
		tool := findTool(t, name)
		before := cs.commits.Load()
		c := &Call{Caller: Caller{Scope: sc, Client: mcp.Implementation{Name: "go-test"}}, Tool: tool,
			Args: json.RawMessage(args), Started: time.Now()}
		res, err := chain(tool.Handler)(context.Background(), c)
		n := cs.commits.Load() - before
		if err != nil {
			return nil, errorText(name, err), n, err
		}
		b, _ := json.Marshal(res.Structured)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m, res.Text, n, nil
	}
}

// eachQueueMode runs f as subtest name, then name+"/queue", each on a
// fresh counted scope with the production chain, without an audit queue
// and with one.
func eachQueueMode(t *testing.T, name string, f func(t *testing.T, sc *tenant.Scope, run coordRun)) {
	for _, queued := range []bool{false, true} {
		sub := name
		if queued {
			sub += "/queue"
		}
		t.Run(sub, func(t *testing.T) {
			cs, sc := countedScope(t)
			f(t, sc, countedRun(t, cs, sc, productionChain(t, queued)))
		})
	}
}

// mustRunTool is run for one tool, failing the test on an error.
func mustRunTool(t *testing.T, run coordRun, tool string) func(args string) (map[string]any, int64) {
	return func(args string) (map[string]any, int64) {
		t.Helper()
		m, _, n, err := run(tool, args)
		if err != nil {
			t.Fatalf("%s %s: %v", tool, args, err)
		}
		return m, n
	}
}

// keyedCommitsOnce checks that a call with args under key "k1" makes one
// commit and its retry one (its own record), answered with the same
// result; it returns the first result.
func keyedCommitsOnce(t *testing.T, run func(args string) (map[string]any, int64), args string) map[string]any {
	t.Helper()
	keyed := withKey(t, args, "k1")
	first, n := run(keyed)
	if n != 1 {
		t.Errorf("a keyed call made %d commits, want 1", n)
	}
	again, n := run(keyed)
	sameResult(t, first, again)
	if n != 1 {
		t.Errorf("its retry made %d commits, want 1 (its own record)", n)
	}
	return first
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
		eachQueueMode(t, tc.tool, func(t *testing.T, sc *tenant.Scope, counted coordRun) {
			run := mustRunTool(t, counted, tc.tool)
			run(tc.args) // the heartbeat's first beat
			if _, n := run(tc.args); n != 1 {
				t.Errorf("a call without a key made %d commits, want 1", n)
			}
			keyedCommitsOnce(t, run, tc.args)
			got := counts(t, sc)
			if got[tc.kind] != 3 || got["tool.called"] != 4 {
				t.Errorf("%d %s events and %d tool.called records after 4 calls (one replayed), want 3 and 4",
					got[tc.kind], tc.kind, got["tool.called"])
			}
		})
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

// coordCase is a lease or task tool whose effect is one transaction, with
// what its calls act on.
type coordCase struct {
	tool string
	// kind is the event each call that changes something appends once.
	kind string
	// prep makes what the calls act on and returns the arguments of a call
	// without a key, of a keyed call, and other arguments sent with the
	// keyed call's key.
	prep func(t *testing.T, sc *tenant.Scope) (plain, keyed, other string)
	// check looks at the tenant after the calls: what the plain call and
	// the keyed one answered, and that the refused one changed nothing.
	// run calls a tool through the counted chain.
	check func(t *testing.T, sc *tenant.Scope, run coordRun, plain, keyed map[string]any)
}

// coordRun calls a tool and returns its structured result, its text, the
// commits it made and its error.
type coordRun func(tool, args string) (map[string]any, string, int64, error)

// newTask creates an open task in sc's tenant and returns its id.
func newTask(t *testing.T, sc *tenant.Scope, title string) string {
	t.Helper()
	tk, err := task.Create(context.Background(), sc, task.New{Title: title})
	if err != nil {
		t.Fatal(err)
	}
	return tk.ID
}

// held returns the caller's grants by resource.
func held(t *testing.T, sc *tenant.Scope) map[string]lease.Holder {
	t.Helper()
	hs, err := lease.List(context.Background(), sc, sc.Principal().Agent)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]lease.Holder{}
	for _, h := range hs {
		out[h.Resource] = h
	}
	return out
}

var coordCases = []coordCase{
	{
		tool: "lease_acquire", kind: "lease.acquired",
		prep: func(t *testing.T, sc *tenant.Scope) (string, string, string) {
			return `{"resource":"key:a"}`, `{"resource":"key:b","mode":"shared"}`, `{"resource":"key:c"}`
		},
		check: func(t *testing.T, sc *tenant.Scope, run coordRun, plain, keyed map[string]any) {
			hs := held(t, sc)
			if len(hs) != 2 || hs["key:a"].Token != 1 || hs["key:b"].Token != 1 || hs["key:b"].Mode != lease.Shared {
				t.Fatalf("grants %+v: want key:a and key:b (shared), token 1 each, and no key:c", hs)
			}
			if plain["token"] != 1.0 || keyed["token"] != 1.0 {
				t.Errorf("fencing tokens %v and %v, want 1 and 1", plain["token"], keyed["token"])
			}
			// Released and taken again, the resource's token grows; the
			// release (no key: a repeat is harmless) is one commit too.
			if _, _, n, err := run("lease_release", `{"resource":"key:a","token":1}`); err != nil || n != 1 {
				t.Fatalf("lease_release: %v, %d commits, want 1", err, n)
			}
			m, _, n, err := run("lease_acquire", withKey(t, `{"resource":"key:a"}`, "k-again"))
			if err != nil || n != 1 || m["token"] != 2.0 || held(t, sc)["key:a"].Token != 2 {
				t.Errorf("acquired again: %v %v, %d commits: want token 2 in 1 commit", m, err, n)
			}
		},
	},
	{
		tool: "lease_renew", kind: "lease.renewed",
		prep: func(t *testing.T, sc *tenant.Scope) (string, string, string) {
			for _, res := range []string{"key:a", "key:b"} {
				if _, err := lease.Acquire(context.Background(), sc, lease.Request{Resource: res}); err != nil {
					t.Fatal(err)
				}
			}
			return `{"resource":"key:a","ttl_seconds":300}`, `{"resource":"key:b","token":1,"ttl_seconds":300}`,
				`{"resource":"key:b","token":1,"ttl_seconds":900}`
		},
		check: func(t *testing.T, sc *tenant.Scope, run coordRun, plain, keyed map[string]any) {
			hs := held(t, sc)
			for _, res := range []string{"key:a", "key:b"} {
				if h := hs[res]; h.Token != 1 || h.TTL != 300*time.Second {
					t.Errorf("%s: token %d, ttl %v: want token 1 kept, renewed for 300 s once", res, h.Token, h.TTL)
				}
			}
			if keyed["ttl_seconds"] != 300.0 || keyed["token"] != 1.0 {
				t.Errorf("keyed renewal answered %v", keyed)
			}
		},
	},
	{
		tool: "task_create", kind: "task.created",
		prep: func(t *testing.T, sc *tenant.Scope) (string, string, string) {
			return `{"title":"plain"}`, `{"title":"keyed","priority":2}`, `{"title":"other"}`
		},
		check: func(t *testing.T, sc *tenant.Scope, run coordRun, plain, keyed map[string]any) {
			p, err := task.List(context.Background(), sc, task.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			titles := map[string]string{}
			for _, tk := range p.Tasks {
				titles[tk.Title] = tk.ID
			}
			if len(p.Tasks) != 2 || titles["plain"] != plain["task_id"] || titles["keyed"] != keyed["task_id"] {
				t.Errorf("tasks %+v: want plain (%v) and keyed (%v), once each", p.Tasks, plain["task_id"], keyed["task_id"])
			}
		},
	},
	{
		tool: "task_claim", kind: "task.claimed",
		prep: func(t *testing.T, sc *tenant.Scope) (string, string, string) {
			a, b := newTask(t, sc, "a"), newTask(t, sc, "b")
			return `{"task_id":"` + a + `","version":1}`, `{"task_id":"` + b + `","version":1}`, `{"task_id":"` + b + `","version":2}`
		},
		check: func(t *testing.T, sc *tenant.Scope, run coordRun, plain, keyed map[string]any) {
			id, _ := keyed["task_id"].(string)
			tk, err := task.Get(context.Background(), sc, id)
			if err != nil {
				t.Fatal(err)
			}
			if tk.Version != 2 || tk.State != task.Claimed || tk.Assignee != sc.Principal().Agent {
				t.Errorf("task %+v: want claimed once by the caller, at version 2", tk)
			}
			// The state machine's refusals read as before, with a key or
			// without, and a refused call leaves its key free: its next
			// call with other arguments runs.
			for _, args := range []string{`{"task_id":"` + id + `","version":1}`, `{"task_id":"` + id + `","version":2}`} {
				_, text, _, err := run("task_claim", args)
				_, ktext, n, kerr := run("task_claim", withKey(t, args, "k-refused"))
				if err == nil || kerr == nil || Classify(kerr) != Classify(err) || ktext != text || n != 1 {
					t.Errorf("claim %s: %v %q; keyed %v %q in %d commits: want the same refusal, its record the one commit", args, err, text, kerr, ktext, n)
				}
			}
		},
	},
	{
		tool: "task_next", kind: "task.claimed",
		prep: func(t *testing.T, sc *tenant.Scope) (string, string, string) {
			// Their priorities order them (ids made in the same
			// millisecond do not).
			for i, title := range []string{"first", "second"} {
				p := 2 - i
				if _, err := task.Create(context.Background(), sc, task.New{Title: title, Plan: task.Plan{Priority: &p}}); err != nil {
					t.Fatal(err)
				}
			}
			newProject(t, sc, "app")
			return `{}`, `{}`, `{"project":"app"}`
		},
		check: func(t *testing.T, sc *tenant.Scope, run coordRun, plain, keyed map[string]any) {
			p, _ := plain["task"].(map[string]any)
			k, _ := keyed["task"].(map[string]any)
			if p["title"] != "first" || k["title"] != "second" {
				t.Errorf("claimed %v then %v: want first then second", p["title"], k["title"])
			}
			m, text, n, err := run("task_next", withKey(t, `{}`, "k-none"))
			if err != nil || n != 1 || m["task"] != nil || !strings.Contains(text, "Nothing ready") {
				t.Errorf("with nothing ready: %v %q %v in %d commits, want no task in 1 commit", m, text, err, n)
			}
		},
	},
}

// The lease and task tools whose effect is one store transaction
// (Tool.oneTx) hold a keyed call's key in that transaction: the keyed
// call is one commit (its change, its tool.called record and its kept
// result), its retry is answered with the same result in one commit (its
// own record), the same key with other arguments is refused in one commit
// (the refusal's record) and changes nothing, and a call without a key is
// one commit too. Without a queue and with one.
func TestOneTxCoordToolsCommitOnce(t *testing.T) {
	for _, tc := range coordCases {
		eachQueueMode(t, tc.tool, func(t *testing.T, sc *tenant.Scope, run coordRun) {
			mustRun := mustRunTool(t, run, tc.tool)
			if _, _, _, err := run("note", `{"text":"warm up"}`); err != nil { // the heartbeat's first beat
				t.Fatal(err)
			}
			plainArgs, keyedArgs, otherArgs := tc.prep(t, sc)
			base := counts(t, sc)

			plain, n := mustRun(plainArgs)
			if n != 1 {
				t.Errorf("a call without a key made %d commits, want 1", n)
			}
			first := keyedCommitsOnce(t, mustRun, keyedArgs)
			_, text, n, err := run(tc.tool, withKey(t, otherArgs, "k1"))
			if Classify(err) != OutcomeInvalid || !strings.Contains(text, "other arguments") {
				t.Errorf("the key with other arguments: %v, want it refused as invalid", err)
			}
			if n != 1 {
				t.Errorf("the refusal made %d commits, want 1 (its record)", n)
			}
			got := counts(t, sc)
			if d, r := got[tc.kind]-base[tc.kind], got["tool.called"]-base["tool.called"]; d != 2 || r != 4 {
				t.Errorf("%d %s events and %d tool.called records after 4 calls (one replayed, one refused), want 2 and 4", d, tc.kind, r)
			}
			tc.check(t, sc, run, plain, first)
		})
	}
}

// A keyed lease or task call whose commit landed but was reported failed
// is in the log once, with one record, as note's is (TestOneTxLandedCommit):
// run again by the store, it is answered with its own result; when the
// failure reached the caller, the host's retry is answered from the kept
// result.
func TestOneTxCoordLandedCommit(t *testing.T) {
	for _, tool := range []struct{ name, args, kind, text string }{
		{"lease_acquire", `{"resource":"key:landed","idempotency_key":"k-landed"}`, "lease.acquired", "You hold "},
		{"task_create", `{"title":"landed","idempotency_key":"k-landed"}`, "task.created", "Created task "},
	} {
		for _, tc := range []struct {
			name   string
			report error
		}{
			{"store retried", nil},
			{"failure reported", context.DeadlineExceeded},
		} {
			t.Run(tool.name+"/"+tc.name, func(t *testing.T) {
				ls, sc, _ := landedScope(t, tc.report)
				ag, err := agent.Register(context.Background(), sc, agent.Registration{Name: "tester", Client: "go-test", Model: "m1"})
				if err != nil {
					t.Fatal(err)
				}
				if sc, err = sc.WithAgent(ag.ID); err != nil {
					t.Fatal(err)
				}
				base := counts(t, sc)
				h := Chain(Audit(nil, nil))(findTool(t, tool.name).Handler)
				newCall := func() *Call {
					return &Call{Caller: Caller{Scope: sc}, Tool: findTool(t, tool.name), Args: json.RawMessage(tool.args), Started: time.Now()}
				}
				ls.armed.Store(true)
				res, err := h(context.Background(), newCall())
				if !ls.landed.Load() {
					t.Fatal("the store did not land the commit")
				}
				records := 1
				if tc.report == nil {
					if err != nil {
						t.Fatal(err)
					}
					if strings.Contains(res.Text, "Replayed") || !strings.HasPrefix(res.Text, tool.text) {
						t.Errorf("answer %q: want the call's own result", res.Text)
					}
				} else {
					if !errors.Is(err, tc.report) {
						t.Fatalf("call: %v, want %v", err, tc.report)
					}
					res, err := h(context.Background(), newCall())
					if err != nil {
						t.Fatal(err)
					}
					if !strings.HasPrefix(res.Text, tool.text) || !strings.Contains(res.Text, "Replayed") {
						t.Errorf("retry answered %q: want the kept result, replayed", res.Text)
					}
					records = 2
				}
				got := counts(t, sc)
				if d, r := got[tool.kind]-base[tool.kind], got["tool.called"]-base["tool.called"]; d != 1 || r != records {
					t.Errorf("%d %s events and %d records, want 1 and %d", d, tool.kind, r, records)
				}
			})
		}
	}
}
