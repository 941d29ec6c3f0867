package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/server"
	"github.com/coditect/coditect/server/servertest"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/tools"
)

// allTools are the tools of --toolsets all, sorted.
var allTools = func() []string {
	sets, err := tools.Select([]string{"all"}, tools.Config{})
	if err != nil {
		panic(err)
	}
	var names []string
	for _, s := range sets {
		for _, t := range s.Tools {
			names = append(names, t.Name())
		}
	}
	slices.Sort(names)
	return names
}()

// ok calls a tool that must succeed.
func (c *client) ok(name string, args map[string]any) (map[string]any, string) {
	c.t.Helper()
	m, text, isErr := c.call(name, args)
	if isErr {
		c.t.Fatalf("%s %v: %s", name, args, text)
	}
	return m, text
}

// fail calls a tool that must return a tool error containing every want.
func (c *client) fail(name string, args map[string]any, wants ...string) string {
	c.t.Helper()
	_, text, isErr := c.call(name, args)
	if !isErr {
		c.t.Fatalf("%s %v: succeeded (%s), want a tool error", name, args, text)
	}
	for _, w := range wants {
		if !strings.Contains(text, w) {
			c.t.Errorf("%s %v: error %q, want it to contain %q", name, args, text, w)
		}
	}
	return text
}

// teamWorkspace is a workspace directory with links that lead out of it,
// and the directory they lead to.
func teamWorkspace(t *testing.T) (ws, outside string) {
	t.Helper()
	ws, outside = t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("outside\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"out": outside, "secret.txt": filepath.Join(outside, "secret.txt")} {
		if err := os.Symlink(target, filepath.Join(ws, link)); err != nil {
			t.Fatal(err)
		}
	}
	return ws, outside
}

// exerciseTeam calls every tool of --toolsets all as two agents of one
// tenant, a and b (whose agent name is bName), working in workspace ws,
// and returns the session they worked in. It checks each result; call
// checks each structuredContent against the tool's output schema.
func exerciseTeam(t *testing.T, a, b *client, bName, ws, outside string) string {
	t.Helper()
	a.checkListing(allTools)
	b.checkListing(allTools)
	aID, bID := a.agentID(), b.agentID()
	if aID == "" || bID == "" || aID == bID {
		t.Fatalf("agents %q and %q", aID, bID)
	}
	m, text := a.ok("agents_list", map[string]any{"liveness": "alive"})
	if !strings.Contains(text, aID) || !strings.Contains(text, bID) {
		t.Fatalf("agents_list does not show both agents: %v", m)
	}
	if m, _ := a.ok("agent_update", map[string]any{"model": "qwen2.5-coder-7b", "capabilities": []string{"go"}}); m["agent_id"] != aID {
		t.Errorf("agent_update = %v", m)
	}
	if m, _ := a.ok("whoami", map[string]any{}); m["model"] != "qwen2.5-coder-7b" {
		t.Errorf("whoami after agent_update = %v", m)
	}

	m, _ = a.ok("session_start", map[string]any{"title": "team work", "workspace": ws})
	sid := m["session_id"].(string)
	b.ok("session_join", map[string]any{"session_id": sid})
	a.ok("session_list", map[string]any{"mine": true})
	a.ok("note", map[string]any{"text": "main.go is mine for now", "session_id": sid, "path": "src/main.go"})

	// a writes (taking the lease); b reads and lists, and may not write.
	file := func(kv ...any) map[string]any {
		args := map[string]any{"session_id": sid, "path": "src/main.go"}
		for i := 0; i+1 < len(kv); i += 2 {
			args[kv[i].(string)] = kv[i+1]
		}
		return args
	}
	m, _ = a.ok("fs_write", file("content", "package main\n"))
	tok1 := m["token"].(float64)
	if m["created"] != true || m["lease_taken"] != true {
		t.Errorf("fs_write = %v", m)
	}
	if m, _ := b.ok("fs_read", file()); m["content"] != "package main\n" {
		t.Errorf("fs_read = %v", m)
	}
	if m, _ := b.ok("fs_list", map[string]any{"session_id": sid, "path": "src"}); len(m["entries"].([]any)) != 1 {
		t.Errorf("fs_list = %v", m)
	}
	if m, _ := b.ok("fs_search", map[string]any{"session_id": sid, "pattern": "package main"}); m["total_files"] != float64(1) {
		t.Errorf("fs_search = %v", m)
	}
	if m, _ := b.ok("fs_find", map[string]any{"session_id": sid, "glob": "*.go"}); m["total"] != float64(1) {
		t.Errorf("fs_find = %v", m)
	}
	b.fail("fs_write", file("content", "b was here\n"), "is taken", aID)
	a.ok("lease_release", map[string]any{"resource": "src/main.go"})

	// b takes the lease and edits under its token; a's old token is stale.
	m, _ = b.ok("lease_acquire", map[string]any{"resource": "src/main.go", "ttl_seconds": 60})
	tok2 := m["token"].(float64)
	if tok2 <= tok1 {
		t.Errorf("token %v after %v", tok2, tok1)
	}
	b.ok("fs_edit", file("search", "package main", "replace", "package app", "token", tok2))
	b.ok("lease_renew", map[string]any{"resource": "src/main.go", "token": tok2, "ttl_seconds": 120})
	a.fail("fs_write", file("content", "stale\n", "token", tok1), fmt.Sprintf("token %d is not a current lease", int(tok1)), bID)
	b.ok("lease_release", map[string]any{"resource": "src/main.go", "token": tok2})
	if got, _ := os.ReadFile(filepath.Join(ws, "src", "main.go")); string(got) != "package app\n" {
		t.Errorf("src/main.go = %q", got)
	}
	// a moves a scratch file and deletes it, under the leases it takes.
	if err := os.WriteFile(filepath.Join(ws, "src", "scratch.go"), []byte("package app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a.ok("fs_move", file("path", "src/scratch.go", "to", "src/old/scratch.go"))
	b.fail("fs_delete", file("path", "src/old/scratch.go"), aID)
	a.ok("fs_delete", file("path", "src/old/scratch.go"))
	if _, err := os.Stat(filepath.Join(ws, "src", "old", "scratch.go")); !os.IsNotExist(err) {
		t.Errorf("src/old/scratch.go after fs_delete: %v", err)
	}

	// Messages.
	m, _ = a.ok("message_send", map[string]any{"to": bName, "subject": "review", "body": "please review src/main.go"})
	msgID := m["message_id"].(string)
	m, _ = b.ok("inbox", map[string]any{})
	if msgs := m["messages"].([]any); len(msgs) != 1 || msgs[0].(map[string]any)["from"] != aID {
		t.Fatalf("b's inbox = %v", m)
	}
	b.ok("message_send", map[string]any{"reply_to": msgID, "body": "looks good"})
	if m, _ := b.ok("inbox", map[string]any{"ack": []string{msgID}}); m["acked"].(float64) != 1 || m["unread"].(float64) != 0 {
		t.Errorf("inbox ack = %v", m)
	}
	if m, _ := a.ok("inbox", map[string]any{}); len(m["messages"].([]any)) != 1 {
		t.Errorf("a's inbox = %v", m)
	}

	// The task board.
	m, _ = a.ok("task_create", map[string]any{"title": "write the tests", "description": "for src/main.go"})
	tid := m["task_id"].(string)
	if m, _ := b.ok("task_list", map[string]any{"state": "open"}); len(m["tasks"].([]any)) != 1 {
		t.Errorf("task_list = %v", m)
	}
	b.ok("task_claim", map[string]any{"task_id": tid, "version": 1})
	a.fail("task_claim", map[string]any{"task_id": tid, "version": 1}, bID)
	b.ok("task_update", map[string]any{"task_id": tid, "version": 2, "state": "in_progress"})
	if m, text := a.ok("task_next", map[string]any{}); m["task"] != nil || m["held"] != float64(1) {
		t.Errorf("task_next with the only task held by b: %v %s", m, text)
	}

	// Paths that leave the workspace are refused.
	for _, p := range []string{"../escape.txt", filepath.Join(outside, "escape.txt"), "out/escape.txt", "secret.txt"} {
		a.fail("fs_write", file("path", p, "content", "escaped"), "workspace")
	}
	a.fail("fs_read", file("path", "secret.txt"), "outside the workspace")
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Errorf("outside holds %v", ents)
	}
	a.ok("audit_query", map[string]any{"session_id": sid})
	a.ok("session_end", map[string]any{"session_id": sid, "status": "completed"})
	return sid
}

// checkTeamAudit checks the log after exerciseTeam: every tool recorded
// with outcome ok at least once, the writes with their file (project and
// path relative to its root), hash and token, the refused traversals as
// forbidden with their reason, and the writes' evidence under the file's
// project key with the session.
func checkTeamAudit(t *testing.T, sc *tenant.Scope, sid string) {
	t.Helper()
	okCalls := map[string]int{}
	forbidden := 0
	s, err := session.Get(context.Background(), sc, sid)
	if err != nil || s.Project == "" {
		t.Fatalf("session %+v, %v", s, err)
	}
	for _, ev := range events(t, sc, audit.Filter{Kind: "tool.called"}) {
		tool := ev.Attrs["tool"].(string)
		switch ev.Attrs["outcome"] {
		case "ok":
			okCalls[tool]++
			if tool == "fs_write" || tool == "fs_edit" {
				if ev.Project != s.Project || ev.Path != "src/main.go" || ev.Attrs["hash"] == nil || ev.Attrs["fencing_token"] == nil {
					t.Errorf("%s recorded as %+v", tool, ev)
				}
			}
		case "forbidden":
			forbidden++
			if ev.Attrs["refused"] == nil || ev.Attrs["error"] == nil {
				t.Errorf("a refused call recorded as %+v", ev.Attrs)
			}
		}
	}
	for _, name := range allTools {
		// The ide tools need an editor: cmd/coditect/bridge_test.go calls each.
		if okCalls[name] == 0 && !strings.HasPrefix(name, "ide_") {
			t.Errorf("no successful tool.called event for %s", name)
		}
	}
	if forbidden != 5 {
		t.Errorf("%d forbidden calls recorded, want 5", forbidden)
	}
	recs, err := attrib.Get(context.Background(), sc, project.File{Project: s.Project, Rel: "src/main.go"}.String())
	if err != nil || len(recs) != 2 || recs[0].Session != sid || recs[1].Session != sid {
		t.Errorf("write evidence %+v, %v", recs, err)
	}
}

func TestStdioTeamBothEras(t *testing.T) {
	for _, era := range []string{eraLegacy, eraModern} {
		t.Run(era, func(t *testing.T) {
			e := newStdioEnv(t)
			ws, outside := teamWorkspace(t)
			start := func(name string) *client {
				cmd, _ := e.command(t, nil, "--tenant", "acme", "--user", "alice", "--agent", name, "--toolsets", "all")
				return connect(t, &mcp.CommandTransport{Command: cmd}, "lmstudio", era)
			}
			a, b := start("alpha"), start("beta")
			sid := exerciseTeam(t, a, b, "beta", ws, outside)
			a.cs.Close()
			b.cs.Close()
			checkTeamAudit(t, e.local(t, "acme", "alice"), sid)
		})
	}
}

func TestHTTPTeamBothEras(t *testing.T) {
	for _, era := range []string{eraLegacy, eraModern} {
		t.Run(era, func(t *testing.T) {
			ts := servertest.New(t, server.Options{Toolsets: []string{"all"}}, server.HTTPOptions{})
			secret := ts.Token(t, "acme", "alice", tenant.RoleMember)
			ws, outside := teamWorkspace(t)
			ts.Project(t, "acme", "team", ws)
			a := connect(t, httpTransport(ts, secret), "alpha-"+era, era)
			b := connect(t, httpTransport(ts, secret), "beta-"+era, era)
			sid := exerciseTeam(t, a, b, "beta-"+era, ws, outside)
			if err := ts.MCP.Flush(testContext(t)); err != nil {
				t.Fatal(err)
			}
			checkTeamAudit(t, ts.Scope(t, secret), sid)
		})
	}
}

// TestThreeAgents: three `coditect mcp` processes, three agents, one
// store. They see each other, exchange messages (one waiting for its
// message while another sends it), and contend for one file through
// fs_write at once: exactly one write wins per fencing token, the others
// are told who holds the file, and the file holds the winner's content.
func TestThreeAgents(t *testing.T) {
	e := newStdioEnv(t)
	ws := t.TempDir()
	names := []string{"agent-0", "agent-1", "agent-2"}
	cs := make([]*client, len(names))
	ids := make([]string, len(names))
	for i, name := range names {
		cmd, _ := e.command(t, nil, "--tenant", "acme", "--user", "alice", "--agent", name, "--toolsets", "coord,files,core")
		era := eraModern
		if i == 0 {
			era = eraLegacy
		}
		cs[i] = connect(t, &mcp.CommandTransport{Command: cmd}, "lmstudio", era)
		ids[i] = cs[i].agentID()
	}
	byID := map[string]int{}
	for i, id := range ids {
		byID[id] = i
	}
	if len(byID) != 3 {
		t.Fatalf("agent ids %v", ids)
	}

	// They see each other, alive.
	for i, c := range cs {
		_, text := c.ok("agents_list", map[string]any{"liveness": "alive"})
		for j, id := range ids {
			if !strings.Contains(text, id) || !strings.Contains(text, names[j]) {
				t.Errorf("%s does not see %s (%s): %s", names[i], names[j], id, text)
			}
		}
	}

	// Messages in a ring; agent-0 is already waiting when its arrives.
	type raw struct {
		res *mcp.CallToolResult
		err error
	}
	waited := make(chan raw, 1)
	go func() {
		res, err := cs[0].cs.CallTool(testContext(t), &mcp.CallToolParams{Name: "inbox", Arguments: map[string]any{"wait_seconds": 30}})
		waited <- raw{res, err}
	}()
	cs[1].ok("message_send", map[string]any{"to": "agent-2", "body": "from 1 to 2"})
	cs[2].ok("message_send", map[string]any{"to": "agent-0", "body": "from 2 to 0"})
	w := <-waited
	m, _, isErr := cs[0].result("inbox", w.res, w.err)
	if isErr || len(m["messages"].([]any)) != 1 || m["messages"].([]any)[0].(map[string]any)["from"] != ids[2] {
		t.Fatalf("agent-0's waiting inbox = %v", m)
	}
	cs[0].ok("message_send", map[string]any{"to": "agent-1", "body": "from 0 to 1"})
	for i, c := range cs {
		from := (i + 2) % 3
		m, _ := c.ok("inbox", map[string]any{})
		msgs := m["messages"].([]any)
		if len(msgs) != 1 || msgs[0].(map[string]any)["from"] != ids[from] || msgs[0].(map[string]any)["body"] != fmt.Sprintf("from %d to %d", from, i) {
			t.Errorf("%s's inbox = %v", names[i], m)
		}
	}

	// One session for the three.
	m, _ = cs[0].ok("session_start", map[string]any{"title": "contention", "workspace": ws})
	sid := m["session_id"].(string)
	cs[1].ok("session_join", map[string]any{"session_id": sid})
	cs[2].ok("session_join", map[string]any{"session_id": sid})

	// Round 1: all three write shared.txt at once, without a lease.
	race := func(who []int, tool string, args func(i int) map[string]any) (winner int, losers map[int]string, winning map[string]any) {
		t.Helper()
		type res struct {
			i int
			raw
		}
		start := make(chan struct{})
		results := make(chan res, len(who))
		for _, i := range who {
			go func() {
				<-start
				r, err := cs[i].cs.CallTool(testContext(t), &mcp.CallToolParams{Name: tool, Arguments: args(i)})
				results <- res{i, raw{r, err}}
			}()
		}
		close(start)
		winner, losers = -1, map[int]string{}
		for range who {
			r := <-results
			m, text, isErr := cs[r.i].result(tool, r.res, r.err)
			if !isErr {
				if winner >= 0 {
					t.Fatalf("%s: both %s and %s won", tool, names[winner], names[r.i])
				}
				winner, winning = r.i, m
				continue
			}
			losers[r.i] = text
		}
		if winner < 0 {
			t.Fatalf("%s: nobody won: %v", tool, losers)
		}
		for i, text := range losers {
			if !strings.Contains(text, ids[winner]) || !strings.Contains(text, "("+names[winner]+")") {
				t.Errorf("%s lost %s with %q, which does not name the holder %s (%s)", names[i], tool, text, ids[winner], names[winner])
			}
		}
		return winner, losers, winning
	}
	write := func(i int) map[string]any {
		return map[string]any{"session_id": sid, "path": "shared.txt", "content": "written by " + names[i] + "\n"}
	}
	w1, _, m1 := race([]int{0, 1, 2}, "fs_write", write)
	tok1 := m1["token"].(float64)
	if got, _ := os.ReadFile(filepath.Join(ws, "shared.txt")); string(got) != "written by "+names[w1]+"\n" {
		t.Fatalf("shared.txt = %q after round 1, won by %s", got, names[w1])
	}

	// Round 2: the winner releases; the other two race for the lease; the
	// first winner's token is then stale, and the refusal names the holder.
	cs[w1].ok("lease_release", map[string]any{"resource": "shared.txt"})
	var others []int
	for i := range cs {
		if i != w1 {
			others = append(others, i)
		}
	}
	w2, _, m2 := race(others, "lease_acquire", func(int) map[string]any { return map[string]any{"resource": "shared.txt"} })
	tok2 := m2["token"].(float64)
	if tok2 <= tok1 {
		t.Errorf("round 2 token %v after %v", tok2, tok1)
	}
	stale := write(w1)
	stale["token"] = tok1
	cs[w1].fail("fs_write", stale, fmt.Sprintf("token %d is not a current lease", int(tok1)), ids[w2], "("+names[w2]+")")
	fresh := write(w2)
	fresh["token"] = tok2
	cs[w2].ok("fs_write", fresh)
	if got, _ := os.ReadFile(filepath.Join(ws, "shared.txt")); string(got) != "written by "+names[w2]+"\n" {
		t.Fatalf("shared.txt = %q, want %s's", got, names[w2])
	}
	for _, c := range cs {
		c.cs.Close() // the processes commit their queued records and exit
	}

	// The audit trail: one successful write per token, by its holder.
	sc := e.local(t, "acme", "alice")
	wins := map[float64][]string{}
	refused := 0
	for _, ev := range events(t, sc, audit.Filter{Kind: "tool.called"}) {
		if ev.Attrs["tool"] != "fs_write" {
			continue
		}
		switch ev.Attrs["outcome"] {
		case "ok":
			tok := ev.Attrs["fencing_token"].(float64)
			wins[tok] = append(wins[tok], ev.Agent)
		case "conflict":
			refused++
		default:
			t.Errorf("fs_write recorded as %+v", ev.Attrs)
		}
	}
	if len(wins) != 2 || !slices.Equal(wins[tok1], []string{ids[w1]}) || !slices.Equal(wins[tok2], []string{ids[w2]}) || refused != 3 {
		t.Errorf("successful writes by token %v (want %v: %s, %v: %s), %d refused (want 3)", wins, tok1, ids[w1], tok2, ids[w2], refused)
	}
	s, err := session.Get(context.Background(), sc, sid)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := attrib.Get(context.Background(), sc, project.File{Project: s.Project, Rel: "shared.txt"}.String())
	if err != nil || len(recs) != 2 || recs[0].Agent != ids[w2] || recs[1].Agent != ids[w1] {
		t.Errorf("write evidence %+v, %v", recs, err)
	}
}

// TestHTTPCoordTenantIsolation: a token of tenant A can neither see nor
// touch tenant B's agents, leases, messages, tasks or files through any
// coord or files tool.
func TestHTTPCoordTenantIsolation(t *testing.T) {
	ts := servertest.New(t, server.Options{Toolsets: []string{"all"}}, server.HTTPOptions{})
	secretA := ts.Token(t, "tenant-a", "alice", tenant.RoleAdmin)
	secretB := ts.Token(t, "tenant-b", "bob", tenant.RoleAdmin)
	ws := t.TempDir()
	ts.Project(t, "tenant-b", "b-app", ws)
	ts.Project(t, "tenant-a", "a-app", t.TempDir())
	if err := os.WriteFile(filepath.Join(ws, "b.txt"), []byte("B's file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, era := range []string{eraLegacy, eraModern} {
		b1 := connect(t, httpTransport(ts, secretB), "b-one-"+era, era)
		b2 := connect(t, httpTransport(ts, secretB), "b-two-"+era, era)
		a := connect(t, httpTransport(ts, secretA), "a-"+era, era)
		b1ID := b1.agentID()
		b2.agentID() // registered, so that b1 can address it by name
		m, _ := b1.ok("session_start", map[string]any{"title": "B's work", "workspace": ws})
		sid := m["session_id"].(string)
		m, _ = b1.ok("lease_acquire", map[string]any{"resource": "b.txt"})
		bTok := m["token"].(float64)
		m, _ = b1.ok("task_create", map[string]any{"title": "B's task"})
		tid := m["task_id"].(string)
		b1.ok("message_send", map[string]any{"to": "b-two-" + era, "body": "B-only message"})

		_, text := a.ok("agents_list", map[string]any{"retired": true})
		if strings.Contains(text, b1ID) || strings.Contains(text, "b-one") {
			t.Errorf("%s: A lists B's agents: %s", era, text)
		}
		if m, _ := a.ok("task_list", map[string]any{}); len(m["tasks"].([]any)) != 0 {
			t.Errorf("%s: A lists B's tasks: %v", era, m)
		}
		if m, text := a.ok("inbox", map[string]any{}); len(m["messages"].([]any)) != 0 || strings.Contains(text, "B-only") {
			t.Errorf("%s: A reads B's messages: %s", era, text)
		}
		for _, c := range []struct {
			tool string
			args map[string]any
			want string
		}{
			{"fs_read", map[string]any{"session_id": sid, "path": "b.txt"}, "no session"},
			{"fs_list", map[string]any{"session_id": sid}, "no session"},
			{"fs_write", map[string]any{"session_id": sid, "path": "b.txt", "content": "A was here"}, "no session"},
			{"fs_edit", map[string]any{"session_id": sid, "path": "b.txt", "search": "B", "replace": "A"}, "no session"},
			{"session_join", map[string]any{"session_id": sid}, "no session"},
			{"task_claim", map[string]any{"task_id": tid, "version": 1}, "no task"},
			{"task_update", map[string]any{"task_id": tid, "version": 1, "state": "cancelled"}, "no task"},
			{"task_create", map[string]any{"title": "after B's", "blocked_by": []string{tid}}, "no task"},
			{"message_send", map[string]any{"to": b1ID, "body": "A to B"}, "no agent"},
			{"message_send", map[string]any{"to": "b-one-" + era, "body": "A to B"}, "no active agent"},
			{"lease_release", map[string]any{"resource": "b.txt", "token": bTok}, "no lease of yours"},
			{"lease_renew", map[string]any{"resource": "b.txt", "token": bTok}, "no lease of yours"},
		} {
			a.fail(c.tool, c.args, c.want)
		}
		// The same resource name is A's own lease, in A's tenant.
		if m, _ := a.ok("lease_acquire", map[string]any{"resource": "b.txt"}); m["token"].(float64) != float64(1+slices.Index([]string{eraLegacy, eraModern}, era)) {
			t.Errorf("%s: A's lease = %v", era, m)
		}
		a.ok("lease_release", map[string]any{"resource": "b.txt"})
		// B's things are as B left them.
		b1.ok("lease_renew", map[string]any{"resource": "b.txt", "token": bTok})
		b1.ok("lease_release", map[string]any{"resource": "b.txt", "token": bTok})
		if m, _ := b1.ok("task_claim", map[string]any{"task_id": tid, "version": 1}); m["assignee"] != b1ID {
			t.Errorf("%s: B's task = %v", era, m)
		}
		if m, _ := b2.ok("inbox", map[string]any{}); len(m["messages"].([]any)) != 1 {
			t.Errorf("%s: B's inbox = %v", era, m)
		}
		b1.ok("session_end", map[string]any{"session_id": sid, "status": "completed"})
	}
	if got, _ := os.ReadFile(filepath.Join(ws, "b.txt")); string(got) != "B's file\n" {
		t.Errorf("b.txt = %q", got)
	}
	if err := ts.MCP.Flush(testContext(t)); err != nil {
		t.Fatal(err)
	}
	for _, ev := range events(t, ts.Scope(t, secretB), audit.Filter{}) {
		if ev.User == "alice" || strings.Contains(ev.Summary, "A to B") || strings.Contains(ev.Summary, "A was here") {
			t.Errorf("B's log holds %+v", ev)
		}
	}
}

// TestHTTPCoordBadArguments: wrong arguments to the coord and files tools
// are tool errors that say what to send, and write nothing but the call's
// record (no file either).
func TestHTTPCoordBadArguments(t *testing.T) {
	ts := servertest.New(t, server.Options{Toolsets: []string{"all"}}, server.HTTPOptions{})
	secret := ts.Token(t, "acme", "alice", tenant.RoleMember)
	c := connect(t, httpTransport(ts, secret), "bad-args", eraModern)
	sc := ts.Scope(t, secret)
	ws := t.TempDir()
	ts.Project(t, "acme", "app", ws)
	m, _ := c.ok("session_start", map[string]any{"title": "t", "workspace": ws})
	sid := m["session_id"].(string)
	for _, tc := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{"lease_acquire", map[string]any{}, `"resource" is required`},
		{"lease_acquire", map[string]any{"resource": "a.go", "ttl_seconds": -5}, "between 1 and 86400"},
		{"message_send", map[string]any{"to": "all"}, `"body" is required`},
		{"inbox", map[string]any{"limit": 500}, "between 1 and 50"},
		{"task_claim", map[string]any{"task_id": "tk_x"}, `"version" is required`},
		{"task_update", map[string]any{"task_id": "tk_x", "version": 1, "state": "finished"}, "must be one of"},
		{"agent_update", map[string]any{"nickname": "x"}, `unknown argument "nickname"`},
		{"fs_write", map[string]any{"session_id": sid, "path": "a.go"}, `"content" is required`},
		{"fs_write", map[string]any{"session_id": sid, "content": "x"}, `"path" is required`},
		{"fs_write", map[string]any{"session_id": "nope", "path": "a.go", "content": "x"}, "not a session id"},
		{"fs_edit", map[string]any{"session_id": sid, "path": "a.go", "search": "", "replace": "x"}, `"search" is required`},
		{"fs_read", map[string]any{"session_id": sid, "path": 42}, `"path" must be a string`},
	} {
		if err := ts.MCP.Flush(testContext(t)); err != nil {
			t.Fatal(err)
		}
		before := events(t, sc, audit.Filter{})
		_, text, isErr := c.call(tc.tool, tc.args)
		if err := ts.MCP.Flush(testContext(t)); err != nil {
			t.Fatal(err)
		}
		if !isErr || !strings.Contains(text, tc.want) || !strings.Contains(text, "takes") {
			t.Errorf("%s %v: isError=%v %q; want a tool error saying %q and what the tool takes", tc.tool, tc.args, isErr, text, tc.want)
		}
		after := events(t, sc, audit.Filter{})
		if len(after) != len(before)+1 || after[len(after)-1].Kind != "tool.called" || after[len(after)-1].Attrs["outcome"] != "invalid_arguments" {
			t.Errorf("%s: wrote more than its tool.called record: %d -> %d events", tc.tool, len(before), len(after))
		}
	}
	if ents, _ := os.ReadDir(ws); len(ents) != 0 {
		t.Errorf("the workspace holds %v", ents)
	}
}

// TestHTTPLargeWrite: a write near the file limit fits in a request (the
// body limit grows with the tools' argument limits).
func TestHTTPLargeWrite(t *testing.T) {
	ts := servertest.New(t, server.Options{Toolsets: []string{"core", "files"}}, server.HTTPOptions{})
	secret := ts.Token(t, "acme", "alice", tenant.RoleMember)
	c := connect(t, httpTransport(ts, secret), "big", eraModern)
	ws := t.TempDir()
	ts.Project(t, "acme", "app", ws)
	m, _ := c.ok("session_start", map[string]any{"title": "big", "workspace": ws})
	sid := m["session_id"].(string)
	content := strings.Repeat("0123456789abcde\n", tools.DefaultMaxFile/16)
	if m, _ := c.ok("fs_write", map[string]any{"session_id": sid, "path": "big.txt", "content": content}); m["bytes"].(float64) != float64(len(content)) {
		t.Errorf("fs_write = %v", m)
	}
	c.fail("fs_write", map[string]any{"session_id": sid, "path": "bigger.txt", "content": content + "x"}, "limit is 1048576 bytes")
	// fs_read returns the first lines within its budget, with the size and
	// hash of the whole file.
	m, _ = c.ok("fs_read", map[string]any{"session_id": sid, "path": "big.txt"})
	if m["content"] != content[:16*tools.DefaultReadLines] || m["size"] != float64(len(content)) || m["hash"] != attrib.Hash([]byte(content)) || m["truncated"] != true {
		t.Errorf("fs_read returned %d bytes: %v, %v, %v", len(m["content"].(string)), m["size"], m["hash"], m["truncated"])
	}
}
