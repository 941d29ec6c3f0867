package tools

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/sqlite"
	"github.com/coditect/coditect/storage/tenant"
)

// withKey adds an idempotency_key to a JSON arguments object.
func withKey(t testing.TB, args, key string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(args), &m); err != nil {
		t.Fatal(err)
	}
	m[idempotencyArg] = key
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sameResult reports whether a replayed result is the first one plus
// "replayed": true.
func sameResult(t *testing.T, first, again map[string]any) {
	t.Helper()
	if again["replayed"] != true {
		t.Errorf("retry result %v: want \"replayed\": true", again)
	}
	if _, ok := first["replayed"]; ok {
		t.Errorf("first result %v says replayed", first)
	}
	rest := map[string]any{}
	for k, v := range again {
		if k != "replayed" {
			rest[k] = v
		}
	}
	if !reflect.DeepEqual(first, rest) {
		t.Errorf("retry result %v, want the first result %v", rest, first)
	}
}

// A retried writing call with the same key makes its change once and is
// answered with the first call's result.
func TestIdempotentRetry(t *testing.T) {
	e := setup(t)
	a := e.alice
	w := newWorkspace(t, a)
	asAgent(t, e.alice, "reviewer", "m2")
	file := filepath.Join(w.root, "src", "a.go")
	for _, tc := range []struct {
		tool, args, kind string
		// between runs between the call and its retry; after checks the
		// workspace after the retry.
		between, after func(t *testing.T)
	}{
		// fs_write's change is the file (its evidence has no event).
		{tool: "fs_write", args: w.args("path", "src/a.go", "content", "package a\n"),
			// A person edits the file after the write; a retry that wrote
			// again would undo that edit.
			between: func(t *testing.T) {
				if err := os.WriteFile(file, []byte("package a // edited by a person\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			after: func(t *testing.T) {
				if got := w.read(t, "src/a.go"); got != "package a // edited by a person\n" {
					t.Errorf("after the retry the file holds %q: the retry wrote again", got)
				}
			}},
		{tool: "note", args: `{"text":"chose sqlite","session_id":"` + w.sid + `"}`, kind: "note.added"},
		{tool: "task_create", args: `{"title":"port the parser"}`, kind: "task.created"},
		{tool: "message_send", args: `{"to":"reviewer","subject":"review","body":"please look at src/a.go"}`, kind: "message.sent"},
	} {
		t.Run(tc.tool, func(t *testing.T) {
			args := withKey(t, tc.args, "retry-"+tc.tool)
			before := counts(t, a)
			first, text1 := mustCall(t, a, tc.tool, args)
			if tc.between != nil {
				tc.between(t)
			}
			again, text2 := mustCall(t, a, tc.tool, args)
			sameResult(t, first, again)
			if !strings.HasPrefix(text2, text1) || !strings.Contains(text2, "Replayed") {
				t.Errorf("retry text %q: want the first text %q and that it was replayed", text2, text1)
			}
			after := counts(t, a)
			if n := after[tc.kind] - before[tc.kind]; tc.kind != "" && n != 1 {
				t.Errorf("%d %s events after a call and its retry, want 1", n, tc.kind)
			}
			if n := after["tool.called"] - before["tool.called"]; n != 2 {
				t.Errorf("%d tool.called records, want one per call (2)", n)
			}
			if tc.after != nil {
				tc.after(t)
			}
			ev := lastCall(t, a, tc.tool)
			if ev.Attrs["replayed"] != true || ev.Attrs[idempotencyArg] != "retry-"+tc.tool {
				t.Errorf("the retry's tool.called attrs %v: want replayed and the key", ev.Attrs)
			}
		})
	}
}

// Concurrent duplicates of a keyed call make one change; every caller
// gets its result.
func TestIdempotentConcurrent(t *testing.T) {
	e := setup(t)
	a := e.alice
	for _, tc := range []struct{ tool, args, kind, id string }{
		{"task_create", `{"title":"only once","idempotency_key":"k-concurrent"}`, "task.created", "task_id"},
		{"note", `{"text":"only once","idempotency_key":"k-concurrent"}`, "note.added", "event_id"},
	} {
		t.Run(tc.tool, func(t *testing.T) {
			before := counts(t, a)
			const n = 8
			start := make(chan struct{})
			var wg sync.WaitGroup
			results := make([]map[string]any, n)
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() {
					<-start
					results[i], _, errs[i] = call(t, a, tc.tool, tc.args)
				})
			}
			close(start)
			wg.Wait()
			ran := 0
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("call %d: %v", i, errs[i])
				}
				if results[i]["replayed"] != true {
					ran++
				}
				if results[i][tc.id] != results[0][tc.id] {
					t.Errorf("call %d got %s %v, call 0 got %v", i, tc.id, results[i][tc.id], results[0][tc.id])
				}
			}
			if ran != 1 {
				t.Errorf("%d of %d concurrent duplicates ran, want 1", ran, n)
			}
			if got := counts(t, a)[tc.kind] - before[tc.kind]; got != 1 {
				t.Errorf("%d %s events from %d concurrent duplicates, want 1", got, tc.kind, n)
			}
		})
	}
}

// The same key with other arguments is refused and changes nothing; so
// are malformed keys, and keys on tools that do not take one.
func TestIdempotencyKeyReuse(t *testing.T) {
	e := setup(t)
	a := e.alice
	w := newWorkspace(t, a)
	mustCall(t, a, "task_create", `{"title":"first","idempotency_key":"k1"}`)
	mustCall(t, a, "fs_write", w.args("path", "b.txt", "content", "one\n", idempotencyArg, "k2"))
	before := counts(t, a)
	mustFail(t, a, "task_create", `{"title":"second","idempotency_key":"k1"}`, OutcomeInvalid,
		`"idempotency_key" was already used`, "with other arguments", "new key")
	mustFail(t, a, "fs_write", w.args("path", "b.txt", "content", "two\n", idempotencyArg, "k2"), OutcomeInvalid, "already used")
	if got := w.read(t, "b.txt"); got != "one\n" {
		t.Errorf("b.txt holds %q after a refused reuse of its key", got)
	}
	for _, bad := range []struct{ args, want string }{
		{`{"title":"x","idempotency_key":"` + strings.Repeat("k", maxIdempotencyKey+1) + `"}`, "the limit is 128 bytes"},
		{`{"title":"x","idempotency_key":"a\u0007b"}`, "control characters"},
		{`{"title":"x","idempotency_key":"  "}`, `"idempotency_key" is required`},
		{`{"title":"x","idempotency_key":7}`, `"idempotency_key" must be a string`},
	} {
		mustFail(t, a, "task_create", bad.args, OutcomeInvalid, bad.want)
	}
	mustFail(t, a, "task_list", `{"idempotency_key":"k1"}`, OutcomeInvalid, `unknown argument "idempotency_key"`)
	after := counts(t, a)
	for kind, n := range after {
		if kind != "tool.called" && n != before[kind] {
			t.Errorf("%d more %s events after refused calls", n-before[kind], kind)
		}
	}
	// Null means no key, as for any optional argument.
	m, _ := mustCall(t, a, "task_create", `{"title":"first","idempotency_key":null}`)
	if m["replayed"] == true {
		t.Errorf("a call without a key was replayed")
	}
}

// Keys belong to one principal and one tool: another agent, another
// tenant or another tool with the same key runs as new.
func TestIdempotencyKeyIsolation(t *testing.T) {
	e := setup(t)
	other := asAgent(t, e.alice, "other", "m2")
	args := `{"title":"isolated","idempotency_key":"shared"}`
	first, _ := mustCall(t, e.alice, "task_create", args)
	for name, sc := range map[string]*tenant.Scope{"another agent": other, "another tenant": e.bob} {
		before := counts(t, sc)
		m, _ := mustCall(t, sc, "task_create", args)
		if m["replayed"] == true || m["task_id"] == first["task_id"] {
			t.Errorf("%s with the same key got the first call's result %v", name, m)
		}
		if n := counts(t, sc)["task.created"] - before["task.created"]; n != 1 {
			t.Errorf("%s: %d tasks created, want 1", name, n)
		}
	}
	m, _ := mustCall(t, e.alice, "note", `{"text":"isolated","idempotency_key":"shared"}`)
	if m["replayed"] == true {
		t.Errorf("another tool with the same key was replayed: %v", m)
	}
}

// A refused call releases its key: once the cause is gone, its retry runs.
func TestIdempotencyRefusedCallReleasesKey(t *testing.T) {
	e := setup(t)
	args := `{"to":"latecomer","subject":"hi","body":"welcome","idempotency_key":"k-late"}`
	mustFail(t, e.alice, "message_send", args, OutcomeNotFound)
	asAgent(t, e.alice, "latecomer", "m2")
	m, _ := mustCall(t, e.alice, "message_send", args)
	if m["replayed"] == true {
		t.Errorf("the retry of a refused call was replayed: %v", m)
	}
	if n := counts(t, e.alice)["message.sent"]; n != 1 {
		t.Errorf("%d messages sent, want 1", n)
	}
}

// A viewer's keyed call is refused like any of its writes and leaves no
// reservation behind.
func TestIdempotencyViewer(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	if _, err := e.dir.CreateUser(ctx, "t1", "vic", ""); err != nil {
		t.Fatal(err)
	}
	secret, _, err := e.dir.IssueToken(ctx, "t1", "vic", tenant.RoleViewer, tenant.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vic, err := e.dir.Authenticate(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	args := `{"text":"x","idempotency_key":"k-viewer"}`
	mustFail(t, vic, "note", args, OutcomeForbidden, "viewer")
	key, _ := keyOf(t, vic, "note", args)
	err = vic.Store().View(ctx, func(tx kv.ReadTx) error {
		if _, ok, err := vic.Log().GetOutcome(tx, key); ok || err != nil {
			t.Errorf("a viewer's refused call left an outcome (%v)", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// keyOf returns the key and digest a call with args is kept under.
func keyOf(t *testing.T, sc *tenant.Scope, tool, args string) (string, string) {
	t.Helper()
	c := &Call{Caller: Caller{Scope: sc, Client: mcp.Implementation{Name: "go-test"}}, Tool: findTool(t, tool), Args: json.RawMessage(args)}
	key, digest, err := c.idempotencyKey()
	if err != nil || key == "" {
		t.Fatalf("key of %s: %q, %v", args, key, err)
	}
	return key, digest
}

// A call whose key another process reserved is not run: it is told to
// retry while the other may still run, or that its outcome is unknown.
func TestIdempotencyReservations(t *testing.T) {
	e := setup(t)
	a := e.alice
	ctx := context.Background()
	put := func(key string, o audit.Outcome) {
		t.Helper()
		if _, err := a.Store().Update(ctx, func(tx kv.Tx) error { return a.Log().PutOutcome(tx, key, o) }); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, owner, want string
	}{
		{"running elsewhere", "proc_other", "still running"},
		{"died in this process", processID, "may or may not have made its change"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := `{"title":"reserved","idempotency_key":"k-` + tc.owner + `"}`
			key, digest := keyOf(t, a, "task_create", args)
			put(key, audit.Outcome{Digest: digest, Owner: tc.owner})
			before := counts(t, a)["task.created"]
			mustFail(t, a, "task_create", args, OutcomeConflict, tc.want)
			if n := counts(t, a)["task.created"] - before; n != 0 {
				t.Errorf("%d tasks created under a reserved key", n)
			}
		})
	}
}

// Keyed tools are exactly those whose retry is not harmless, and their
// input schemas say so.
func TestIdempotencyKeySchemas(t *testing.T) {
	var keyed []string
	for _, set := range Catalog(Config{}) {
		for _, tool := range set.Tools {
			has := tool.args.prop(idempotencyArg) != nil
			a := tool.Def.Annotations
			want := !*a.ReadOnlyHint && (!*a.IdempotentHint || *a.DestructiveHint)
			if has != want {
				t.Errorf("%s: takes idempotency_key %v, want %v (hints %+v)", tool.Name(), has, want, a)
			}
			if has {
				keyed = append(keyed, tool.Name())
			}
		}
	}
	t.Logf("tools taking idempotency_key: %s", strings.Join(keyed, ", "))
	for _, name := range []string{"fs_write", "note", "task_create", "message_send", "session_start"} {
		if !strings.Contains(string(findTool(t, name).Def.RawInputSchema), `"idempotency_key":{"type":"string"}`) {
			t.Errorf("%s: input schema lacks idempotency_key", name)
		}
	}
}

// BenchmarkKeyedWrite is the cost of a key on a writing call: task_create
// through the production middleware (heartbeat, audit with its queue)
// without a key, with a new key each time (the reservation, the result
// kept with the call's record), and a retry answered from the kept
// result; on a store with the production durability (sync=FULL: every
// commit but the reservation's is fsynced) and without fsyncs
// (sync=NORMAL: what the key costs besides the disk).
func BenchmarkKeyedWrite(b *testing.B) {
	tool := findToolB(b, "task_create")
	ctx := context.Background()
	for _, mode := range []sqlite.Synchronous{sqlite.SyncFull, sqlite.SyncNormal} {
		sc, _ := benchAgent(b, mode)
		q := NewAuditQueue(0, nil)
		b.Cleanup(func() { q.Close(context.Background()) })
		h := Chain(Heartbeat(time.Second, nil), Audit(nil, q))(tool.Handler)
		i := 0 // across runs, so that every new key is new
		run := func(b *testing.B, args func(i int) string) {
			for b.Loop() {
				i++
				c := &Call{Caller: Caller{Scope: sc}, Tool: tool, Args: json.RawMessage(args(i)), Started: time.Now()}
				if _, err := h(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.Run("sync="+string(mode)+"/no-key", func(b *testing.B) {
			run(b, func(int) string { return `{"title":"bench"}` })
		})
		b.Run("sync="+string(mode)+"/new-key", func(b *testing.B) {
			run(b, func(i int) string { return `{"title":"bench","idempotency_key":"k` + strconv.Itoa(i) + `"}` })
		})
		b.Run("sync="+string(mode)+"/replay", func(b *testing.B) {
			run(b, func(int) string { return `{"title":"bench","idempotency_key":"replayed"}` })
		})
	}
}

// A keyed call whose caller gives up (a host that timed out) runs to the
// end, and the caller's retry, waiting meanwhile, gets its result: the
// change is made once.
func TestIdempotencyCallerGivesUp(t *testing.T) {
	e := setup(t)
	started, release := make(chan struct{}), make(chan struct{})
	var effects int
	tool := spec{
		name: "slow_write", title: "Slow write", description: "Write slowly.", hints: additive,
		input:  `{"type":"object","additionalProperties":false,"properties":{"n":{"type":"integer"}}}`,
		output: `{"type":"object","properties":{"effects":{"type":"integer"}}}`,
		handler: func(ctx context.Context, c *Call) (Result, error) {
			close(started)
			<-release
			if err := ctx.Err(); err != nil {
				return Result{}, err // the caller's cancellation reached the handler
			}
			effects++
			return Result{Structured: map[string]any{"effects": effects}, Text: "written"}, nil
		},
	}.tool()
	h := Chain(Heartbeat(0, nil), Audit(nil, nil))(tool.Handler)
	run := func(ctx context.Context) (Result, error) {
		return h(ctx, &Call{Caller: Caller{Scope: e.alice}, Tool: tool, Args: json.RawMessage(`{"n":1,"idempotency_key":"k"}`), Started: time.Now()})
	}
	ctx, giveUp := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := run(ctx)
		first <- err
	}()
	<-started
	giveUp()
	retried := make(chan Result, 1)
	go func() {
		res, err := run(context.Background())
		if err != nil {
			t.Errorf("retry: %v", err)
		}
		retried <- res
	}()
	close(release)
	if err := <-first; err != nil {
		t.Errorf("the call whose caller gave up ended with %v, want it run to the end", err)
	}
	res := <-retried
	m, _ := res.Structured.(map[string]any)
	if m["replayed"] != true || m["effects"] != float64(1) || effects != 1 {
		t.Errorf("retry answered %v; %d effects, want 1 and the first result replayed", res.Structured, effects)
	}
}

// TestIdempotencyResent: a call whose key its transport added (a local
// core's forwarder) and that finds the key used was sent again by the
// transport, not by its caller, who sent no key: the answer says so in
// those words, for a note (one transaction) and a task_create, replayed
// or with its outcome unknown, and the calls' records name no key.
func TestIdempotencyResent(t *testing.T) {
	e := setup(t)
	a := e.alice
	const added = "core-TESTINSTANCE-"
	call := func(tool, args string) (Result, error) {
		h := Chain(Heartbeat(0, nil), Audit(nil, nil))(findTool(t, tool).Handler)
		c := &Call{Caller: Caller{Scope: a, Client: mcp.Implementation{Name: "go-test"}, AddedKeys: added},
			Tool: findTool(t, tool), Args: json.RawMessage(args), Started: time.Now()}
		return h(context.Background(), c)
	}
	for _, tc := range []struct{ tool, args string }{
		{"note", `{"idempotency_key":"` + added + `0000000000000001","text":"once"}`},
		{"task_create", `{"idempotency_key":"` + added + `0000000000000002","title":"once"}`},
	} {
		first, err := call(tc.tool, tc.args)
		if err != nil {
			t.Fatalf("%s: %v", tc.tool, err)
		}
		again, err := call(tc.tool, tc.args)
		if err != nil || !strings.HasPrefix(again.Text, first.Text) || !strings.Contains(again.Text, "sent again") || strings.Contains(again.Text, idempotencyArg) {
			t.Errorf("%s sent again: %q, %v", tc.tool, again.Text, err)
		}
	}
	for _, ev := range events(t, a, audit.Filter{Kind: "tool.called"}) {
		if k, ok := ev.Attrs[idempotencyArg]; ok {
			t.Errorf("%s recorded with the transport's key %v", ev.Attrs["tool"], k)
		}
	}
	// A call the dead core had reserved and not finished: its outcome is
	// unknown, in the caller's words, also while the reservation is fresh.
	for i, owner := range []string{"proc_other", processID} {
		args := `{"idempotency_key":"` + added + `000000000000000` + strconv.Itoa(3+i) + `","title":"reserved"}`
		key, digest := keyOf(t, a, "task_create", args)
		if _, err := a.Store().Update(context.Background(), func(tx kv.Tx) error {
			return a.Log().PutOutcome(tx, key, audit.Outcome{Digest: digest, Owner: owner})
		}); err != nil {
			t.Fatal(err)
		}
		_, err := call("task_create", args)
		text := errorText("task_create", err)
		if Classify(err) != OutcomeConflict || !strings.Contains(text, "may or may not have made its change") || !strings.Contains(text, "check whether it did") ||
			strings.Contains(text, idempotencyArg) || strings.Contains(text, "retry") {
			t.Errorf("reserved by %s, sent again: %v %q", owner, Classify(err), text)
		}
	}
}

// TestHarmlessResentRecordedOnce: a read whose transport added a key (a
// local core's forwarder, which sends it again to the next core when its
// core dies) is checked and answered as the caller sent it, and however
// often it runs, in one process or in two with spools of their own, it
// has one tool.called record, showing the caller's arguments; a read
// with another key has its own.
func TestHarmlessResentRecordedOnce(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	const added = "core-TESTINSTANCE-"
	queue := func() *AuditQueue {
		q := NewAuditQueue(0, nil)
		if _, err := q.UseSpool(ctx, filepath.Join(t.TempDir(), "spool"), e.dir.AuditLog); err != nil {
			t.Fatal(err)
		}
		return q
	}
	first, second := queue(), queue() // the dead core's and the next one's
	call := func(q *AuditQueue, args string) {
		t.Helper()
		tool := findTool(t, "whoami")
		c := &Call{Caller: Caller{Scope: e.alice, Client: mcp.Implementation{Name: "go-test"}, AddedKeys: added},
			Tool: tool, Args: json.RawMessage(args), Started: time.Now()}
		res, err := Chain(Heartbeat(0, nil), Audit(nil, q))(tool.Handler)(ctx, c)
		if err != nil || !strings.Contains(res.Text, "You are agent") {
			t.Fatalf("whoami %s: %q, %v", args, res.Text, err)
		}
	}
	sent := `{"idempotency_key":"` + added + `0000000000000001"}`
	call(first, sent)
	call(first, sent)
	call(second, sent)
	call(second, `{"idempotency_key":"`+added+`0000000000000002"}`)
	for _, q := range []*AuditQueue{first, second} {
		if err := q.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	for _, ev := range events(t, e.alice, audit.Filter{Kind: "tool.called"}) {
		if ev.Attrs["tool"] != "whoami" {
			continue
		}
		n++
		if args, _ := json.Marshal(ev.Attrs["args"]); string(args) != `{}` {
			t.Errorf("recorded with arguments %s, want the caller's {}", args)
		}
	}
	if n != 2 {
		t.Errorf("%d whoami records, want 2: one per key", n)
	}
}
