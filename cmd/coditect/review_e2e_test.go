package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/internal/testbin"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/review"
)

// TestReviewFlowEndToEnd: a policy on src/auth/** set with the CLI; an
// agent (the official MCP Go SDK client over `coditect mcp`) edits
// src/auth/login.go with fs_edit, which becomes a proposal that holds the
// file's lease (another agent is refused it); the human, in `coditect ide`
// driven by Node's vscode-jsonrpc (testdata/review_e2e.mjs), is notified,
// lists, shows and accepts it — or, in the other run, rejects it with a
// reason. The file, the audit log (review.accepted attributed to the agent,
// approved_by the human) and the agent's inbox show the outcome; a viewer's
// token may not decide or set the policy from the CLI.
func TestReviewFlowEndToEnd(t *testing.T) {
	node := needNode(t, "vscode-jsonrpc")
	const before = "package auth\n\nfunc Check() bool { return false }\n"
	const after = "package auth\n\nfunc Check() bool { return true }\n"
	for _, mode := range []string{"accept", "reject"} {
		t.Run(mode, func(t *testing.T) {
			c := newCLI(t)
			ws, err := filepath.EvalSymlinks(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(ws, "src", "auth", "login.go")
			if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, []byte(before), 0o644); err != nil {
				t.Fatal(err)
			}
			builder := c.mcp("--agent", "builder", "--model", "qwen2.5-coder-7b-instruct", "--toolsets", "core,coord,files")
			started := builder.ok("session_start", map[string]any{"title": "auth", "workspace": ws})
			sid, proj := started["session_id"].(string), started["project"].(string)
			if out := c.ok("project", "policy", "set", proj, "--glob", "src/auth/**"); !strings.Contains(out, "src/auth/**  (every agent)") {
				t.Fatalf("policy set: %q", out)
			}

			// The human's editor.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			editor := startNode(t, ctx, node, "", append(os.Environ(), append(c.env, "XDG_DATA_HOME="+t.TempDir())...),
				filepath.Join(testbin.Root(), "cmd", "coditect", "testdata", "review_e2e.mjs"), extensionDir(), c.bin, ws, mode)
			if l := editor.line(); l != "ready" {
				t.Fatalf("the editor did not get ready: %q\n%s", l, editor.stderr)
			}

			// The agent's edit becomes a proposal; nothing is written.
			out, text, isErr := builder.call("fs_edit", map[string]any{"session_id": sid, "path": "src/auth/login.go", "search": "return false", "replace": "return true"})
			id, _ := out["review"].(string)
			if isErr || !strings.HasPrefix(id, "rv_") || !strings.Contains(text, "Proposed for review (id "+id+"): a person must accept it; you will get a message with the outcome") {
				t.Fatalf("fs_edit under the policy: error=%v %v %s", isErr, out, text)
			}
			if b, _ := os.ReadFile(file); string(b) != before {
				t.Fatalf("the proposal wrote the file: %q", b)
			}
			// Another agent is refused the file while the proposal holds its lease.
			peer := c.mcp("--agent", "peer", "--toolsets", "core,coord,files")
			psid := peer.ok("session_start", map[string]any{"title": "peer", "workspace": ws})["session_id"].(string)
			if _, text, isErr := peer.call("fs_write", map[string]any{"session_id": psid, "path": "src/auth/login.go", "content": "peer\n"}); !isErr || !strings.Contains(text, "builder") {
				t.Fatalf("the peer's write under the proposal: error=%v %s", isErr, text)
			}

			// The editor has shown the proposal; now it decides.
			if l := editor.line(); l != "shown" {
				t.Fatalf("the editor did not show the proposal: %q\n%s", l, editor.stderr)
			}
			editor.send("decide")
			var got struct{ ID, State, Agent, Kind string }
			if last := editor.finish(&got); got.ID != id {
				t.Fatalf("node's result %q, want proposal %s", last, id)
			}
			agentID, _ := builder.ok("whoami", nil)["agent_id"].(string)
			inbox := builder.ok("inbox", nil)["messages"].([]any)
			msg := inbox[len(inbox)-1].(map[string]any)
			content, _ := os.ReadFile(file)
			events := decode[audit.Page](t, c.ok("log", "query", "--kind", "review."+map[string]string{"accept": "accepted", "reject": "rejected"}[mode], "--json"))
			if len(events.Events) != 1 {
				t.Fatalf("decision events: %+v", events)
			}
			ev := events.Events[0]
			switch mode {
			case "accept":
				if string(content) != after {
					t.Fatalf("after accept: %q", content)
				}
				if ev.User != "bea" || ev.Agent != agentID || ev.Attribution == nil || ev.Attribution.AgentID != agentID || ev.Attrs["approved_by"] != "bea" || ev.Attrs["review"] != id {
					t.Fatalf("review.accepted: %+v %+v", ev, ev.Attribution)
				}
				if !strings.Contains(msg["subject"].(string), "accepted") || msg["from_user"] != "bea" {
					t.Fatalf("the agent's message: %v", msg)
				}
			case "reject":
				if string(content) != before {
					t.Fatalf("after reject: %q", content)
				}
				if ev.User != "bea" || ev.Attrs["reason"] != "use the session helper instead" || ev.Attrs["agent"] != agentID {
					t.Fatalf("review.rejected: %+v", ev)
				}
				if !strings.Contains(msg["body"].(string), "Reason: use the session helper instead") {
					t.Fatalf("the agent's message: %v", msg)
				}
			}
			// The lease is released: the peer may write now.
			if _, text, isErr := peer.call("lease_acquire", map[string]any{"resource": "src/auth/login.go", "session_id": psid}); isErr {
				t.Fatalf("the file's lease after the decision: %s", text)
			}

			// A viewer's token may not decide nor change the policy.
			viewer := c.withToken(c.token("vic", "viewer"))
			for _, args := range [][]string{
				{"review", "accept", id},
				{"review", "reject", id, "--reason", "x"},
				{"project", "policy", "set", proj, "--glob", "**"},
				{"project", "policy", "clear", proj},
			} {
				viewer.fail("not allowed for this role", args...)
			}
			if ps := decode[[]review.Proposal](t, viewer.ok("review", "list", "--all", "--json")); len(ps) != 1 || ps[0].ID != id {
				t.Fatalf("the viewer's review list: %+v", ps)
			}
		})
	}
}

// TestReviewCLI: the terminal's review commands, in text and --json:
// policy set and show, an agent's two proposals listed, shown with their
// diff, one accepted (the file changes) and one rejected with a reason
// (the file stays); a second decision is refused.
func TestReviewCLI(t *testing.T) {
	c := newCLI(t)
	ws, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a.go", "b.go"} {
		p := filepath.Join(ws, "src", "auth", f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("package auth // "+f+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	builder := c.mcp("--agent", "builder", "--toolsets", "core,coord,files")
	started := builder.ok("session_start", map[string]any{"title": "auth", "workspace": ws})
	sid, proj := started["session_id"].(string), started["project"].(string)
	c.fail("--glob is required", "project", "policy", "set", proj)
	c.fail("not a clean relative path", "project", "policy", "set", proj, "--glob", "src/../x")
	pol := decode[review.Policy](t, c.ok("project", "policy", "set", proj, "--glob", "src/auth/**", "--agent", "builder", "--json"))
	if len(pol.Rules) != 1 || pol.Rules[0].Agents[0] != "builder" {
		t.Fatalf("policy set --json: %+v", pol)
	}
	if out := c.ok("project", "policy", "show", proj); !strings.Contains(out, "src/auth/**  (builder)") {
		t.Fatalf("policy show: %q", out)
	}
	a := builder.ok("fs_write", map[string]any{"session_id": sid, "path": "src/auth/a.go", "content": "package auth // new a\n"})["review"].(string)
	b := builder.ok("fs_delete", map[string]any{"session_id": sid, "path": "src/auth/b.go"})["review"].(string)
	if out := c.ok("review", "list"); !strings.Contains(out, a) || !strings.Contains(out, b) || !strings.Contains(out, "builder") || !strings.Contains(out, "delete") {
		t.Fatalf("review list: %q", out)
	}
	if out := c.ok("review", "show", a); !strings.Contains(out, "+package auth // new a") || !strings.Contains(out, "pending: accept with") {
		t.Fatalf("review show: %q", out)
	}
	if p := decode[review.Proposal](t, c.ok("review", "show", b, "--json")); p.Kind != review.Delete || p.State != review.Pending {
		t.Fatalf("review show --json: %+v", p)
	}
	if p := decode[review.Proposal](t, c.ok("review", "accept", a, "--json")); p.State != review.Accepted {
		t.Fatalf("review accept --json: %+v", p)
	}
	if got, _ := os.ReadFile(filepath.Join(ws, "src", "auth", "a.go")); string(got) != "package auth // new a\n" {
		t.Fatalf("after accept: %q", got)
	}
	c.fail("say why", "review", "reject", b)
	if p := decode[review.Proposal](t, c.ok("review", "reject", b, "--reason", "keep b.go", "--json")); p.State != review.Rejected || p.Reason != "keep b.go" {
		t.Fatalf("review reject --json: %+v", p)
	}
	if _, err := os.Stat(filepath.Join(ws, "src", "auth", "b.go")); err != nil {
		t.Fatalf("a rejected delete removed the file: %v", err)
	}
	c.fail("was accepted by", "review", "accept", a)
	c.fail("no proposal", "review", "show", "rv_00000000000000000000000000")
	if ps := decode[[]review.Proposal](t, c.ok("review", "list", "--json")); len(ps) != 0 {
		t.Fatalf("pending after the decisions: %+v", ps)
	}
}
