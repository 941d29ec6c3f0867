package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/review"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/tenant"
)

// TestWriteWithoutPolicyIsImmediate: with no review policy (and with a
// policy that covers other files), every files tool changes the disk at
// once and no review event is appended.
func TestWriteWithoutPolicyIsImmediate(t *testing.T) {
	e := setup(t)
	a := e.alice
	w := newWorkspace(t, a)
	m, text := mustCall(t, a, "fs_write", w.args("path", "src/auth/login.go", "content", "v1\n"))
	if w.read(t, "src/auth/login.go") != "v1\n" || m["review"] != nil || strings.Contains(text, "review") {
		t.Fatalf("write without a policy: %v %q", m, text)
	}
	op, err := e.dir.Local(context.Background(), "t1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := review.SetPolicy(context.Background(), op, w.pid, []review.Rule{{Glob: "docs/**"}, {Glob: "src/auth/**", Agents: []string{"someone-else"}}}); err != nil {
		t.Fatal(err)
	}
	mustCall(t, a, "fs_edit", w.args("path", "src/auth/login.go", "search", "v1", "replace", "v2"))
	mustCall(t, a, "fs_move", w.args("path", "src/auth/login.go", "to", "src/auth/session.go"))
	mustCall(t, a, "fs_delete", w.args("path", "src/auth/session.go"))
	if _, err := os.Stat(filepath.Join(w.root, "src/auth/session.go")); !os.IsNotExist(err) {
		t.Errorf("the delete did not reach the disk: %v", err)
	}
	if n := counts(t, a)["review.proposed"]; n != 0 {
		t.Errorf("%d proposals without a covering rule", n)
	}
}

// TestPolicyMakesProposals: a change of a covered file becomes a
// proposal that holds the lease (renewed for the wait), answers the model
// with the id, writes nothing, refuses other agents the file and a second
// proposal of it; accepting applies it and tells the agent, rejecting
// tells it why; a file changed underneath is a conflict on accept.
func TestPolicyMakesProposals(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	a := e.alice
	me := a.Principal().Agent
	w := newWorkspace(t, a)
	mustCall(t, a, "fs_write", w.args("path", "src/auth/login.go", "content", "package auth\n\nconst ok = false\n"))
	mustCall(t, a, "lease_release", `{"resource":"src/auth/login.go"}`)
	human, err := e.dir.Local(ctx, "t1", "carol")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := review.SetPolicy(ctx, human, w.pid, []review.Rule{{Glob: "src/auth/**"}}); err != nil {
		t.Fatal(err)
	}

	m, text := mustCall(t, a, "fs_edit", w.args("path", "src/auth/login.go", "search", "false", "replace", "true"))
	id, _ := m["review"].(string)
	if !strings.HasPrefix(id, "rv_") || m["state"] != "proposed" || !strings.Contains(text, "Proposed for review (id "+id+"): a person must accept it; you will get a message with the outcome") {
		t.Fatalf("fs_edit under the policy: %v %q", m, text)
	}
	if got := w.read(t, "src/auth/login.go"); got != "package auth\n\nconst ok = false\n" {
		t.Fatalf("a proposal wrote the file: %q", got)
	}
	hs, err := lease.Holders(ctx, a, w.key("src/auth/login.go"))
	if err != nil || len(hs) != 1 || hs[0].Agent != me || time.Until(hs[0].Expires) < 23*time.Hour {
		t.Fatalf("the proposal's lease: %+v, %v", hs, err)
	}
	// Another agent is refused the file; the proposer may not propose it again.
	b := asAgent(t, a, "peer", "")
	mustFail(t, b, "fs_write", w.args("path", "src/auth/login.go", "content", "peer\n"), OutcomeConflict, "(tester)")
	mustFail(t, a, "fs_write", w.args("path", "src/auth/login.go", "content", "again\n"), OutcomeConflict, id, "waits for a person's decision")
	// A file no rule covers is written at once.
	mustCall(t, a, "fs_write", w.args("path", "src/main.go", "content", "package main\n"))
	if w.read(t, "src/main.go") != "package main\n" {
		t.Fatal("an uncovered write did not reach the disk")
	}

	p, err := review.Accept(ctx, human, id)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.read(t, "src/auth/login.go"); got != "package auth\n\nconst ok = true\n" || p.State != review.Accepted || p.DecidedBy != "carol" {
		t.Fatalf("after accept: %q %+v", got, p)
	}
	ev := lastKind(t, a, review.KindAccepted)
	if ev.Agent != me || ev.User != "carol" || ev.Attribution == nil || ev.Attribution.AgentID != me || ev.Attrs["approved_by"] != "carol" || !strings.Contains(ev.Attrs["diff"].(string), "+const ok = true") {
		t.Errorf("review.accepted: %+v %+v", ev, ev.Attribution)
	}
	if hs, _ := lease.Holders(ctx, a, w.key("src/auth/login.go")); len(hs) != 0 {
		t.Errorf("lease still held after accept: %+v", hs)
	}
	msgs, err := message.Fetch(ctx, a, message.FetchOptions{})
	if err != nil || len(msgs) == 0 || !strings.Contains(msgs[len(msgs)-1].Subject, "accepted") {
		t.Fatalf("the agent's inbox: %+v %v", msgs, err)
	}
	if _, err := review.Accept(ctx, human, id); err == nil || !strings.Contains(err.Error(), "was accepted by carol") {
		t.Errorf("accepting twice: %v", err)
	}

	// A delete, rejected with a reason: nothing happens on disk.
	m, _ = mustCall(t, a, "fs_delete", w.args("path", "src/auth/login.go"))
	id = m["review"].(string)
	if _, err := review.Reject(ctx, human, id, ""); err == nil {
		t.Error("a rejection without a reason was accepted")
	}
	if _, err := review.Reject(ctx, human, id, "keep the login"); err != nil {
		t.Fatal(err)
	}
	if w.read(t, "src/auth/login.go") != "package auth\n\nconst ok = true\n" {
		t.Fatal("a rejected delete changed the file")
	}
	msgs, _ = message.Fetch(ctx, a, message.FetchOptions{})
	if last := msgs[len(msgs)-1]; !strings.Contains(last.Body, "Reason: keep the login") || last.FromUser != "carol" {
		t.Errorf("rejection message: %+v", last)
	}
	if ev := lastKind(t, a, review.KindRejected); ev.Attrs["reason"] != "keep the login" || ev.User != "carol" {
		t.Errorf("review.rejected: %+v", ev)
	}

	// A write proposed, then the file changes underneath: accept is a
	// conflict and writes nothing.
	m, _ = mustCall(t, a, "fs_write", w.args("path", "src/auth/login.go", "content", "agent's\n"))
	id = m["review"].(string)
	if err := os.WriteFile(filepath.Join(w.root, "src/auth/login.go"), []byte("human's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = review.Accept(ctx, human, id)
	if err == nil || !strings.Contains(err.Error(), "changed since") {
		t.Fatalf("accept over a changed file: %v", err)
	}
	if got := w.read(t, "src/auth/login.go"); got != "human's\n" {
		t.Fatalf("a stale accept wrote: %q", got)
	}

	// A move of a covered file is proposed too, holding both leases.
	if _, err := review.Reject(ctx, human, id, "stale"); err != nil {
		t.Fatal(err)
	}
	m, _ = mustCall(t, a, "fs_move", w.args("path", "src/auth/login.go", "to", "src/auth/signin.go"))
	if _, err := review.Accept(ctx, human, m["review"].(string)); err != nil {
		t.Fatal(err)
	}
	if got := w.read(t, "src/auth/signin.go"); got != "human's\n" {
		t.Fatalf("after the accepted move: %q", got)
	}
}

// lastKind is the newest event of kind in sc's tenant.
func lastKind(t *testing.T, sc *tenant.Scope, kind string) audit.Event {
	t.Helper()
	page, err := sc.Log().Query(context.Background(), audit.Query{Filter: audit.Filter{Kind: kind}, Order: audit.NewestFirst, Limit: 1})
	if err != nil || len(page.Events) != 1 {
		t.Fatalf("%s events: %+v, %v", kind, page.Events, err)
	}
	return page.Events[0]
}

// BenchmarkFsWritePolicy is fs_write of a 1 KB file through the
// production middleware: without a review policy (the baseline), under a
// policy of 8 rules none of which covers the file (the cost every write
// pays once a project has a policy), and under a rule that covers it (the
// write becomes a proposal; a new file each time).
func BenchmarkFsWritePolicy(b *testing.B) {
	content := strings.Repeat("x", 1023) + "\n"
	for _, c := range []struct {
		name  string
		rules []review.Rule
	}{
		{"none", nil},
		{"uncovered", []review.Rule{{Glob: "a/**"}, {Glob: "b/**"}, {Glob: "c/**"}, {Glob: "d/*.go"}, {Glob: "e/**"}, {Glob: "f/**"}, {Glob: "g/**", Agents: []string{"x"}}, {Glob: "src/auth/**", Agents: []string{"someone"}}}},
		{"proposed", []review.Rule{{Glob: "src/auth/**"}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			bf := newBenchFiles(b)
			ctx := context.Background()
			if c.rules != nil {
				s, err := session.Get(ctx, bf.sc, bf.sid)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := review.SetPolicy(ctx, bf.sc, s.Project, c.rules); err != nil {
					b.Fatal(err)
				}
			}
			tool := findToolB(b, "fs_write")
			h := Chain(Heartbeat(time.Second, nil), Audit(nil, nil))(tool.Handler)
			i := 0
			for b.Loop() {
				path := "src/auth/a.go"
				if c.name == "proposed" {
					i++
					path = fmt.Sprintf("src/auth/f%d.go", i)
				}
				args, _ := json.Marshal(map[string]string{"session_id": bf.sid, "path": path, "content": content})
				if _, err := h(ctx, bf.call(tool, string(args))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
