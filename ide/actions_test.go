package ide_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/coditect/coditect/ide"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/task"
	"github.com/coditect/coditect/storage/tenant"
)

func command(name string, arg any) map[string]any {
	return map[string]any{"command": name, "arguments": []any{arg}}
}

// class is the errclass name a failed request carries in its data.
func class(t *testing.T, err error) string {
	t.Helper()
	var e *jsonrpc2.Error
	if !errors.As(err, &e) {
		t.Fatalf("%v: want a JSON-RPC error", err)
	}
	if e.Code == -32602 {
		return "invalid"
	}
	if e.Data == nil {
		t.Fatalf("%v: no class", err)
	}
	var d struct{ Class string }
	if err := json.Unmarshal(*e.Data, &d); err != nil {
		t.Fatal(err)
	}
	return d.Class
}

// lastEvent is the newest event of kind.
func lastEvent(t *testing.T, sc *tenant.Scope, kind string) audit.Event {
	t.Helper()
	page, err := sc.Log().Query(context.Background(), audit.Query{Filter: audit.Filter{Kind: kind}, Order: audit.NewestFirst, Limit: 1})
	if err != nil || len(page.Events) != 1 {
		t.Fatalf("%s events: %+v, %v", kind, page.Events, err)
	}
	return page.Events[0]
}

// TestWriteCommands: the editor's write commands act as the human: a
// message with the selection reaches the agent's inbox, a task from the
// selection is created in the file's project, and the leases on a file
// are force-released with the holder told; each audit event names the
// human and no agent.
func TestWriteCommands(t *testing.T) {
	sc := scope(t)
	ctx := context.Background()
	ag, agentSc := agenttest.Agent(t, ctx, sc, "builder", agent.Registration{Name: "builder", Client: "lmstudio", Model: "qwen2.5-coder-7b"})
	c := start(t, sc, ide.Options{})
	c.initialize(nil)
	f := filepath.Join(c.root, "auth.go")
	writeFile(t, f, "package auth\n\nfunc Check() bool { return true }\n")
	c.open(f, "package auth\n\nfunc Check() bool { return false }\n") // unsaved: the buffer is quoted
	sel := map[string]any{"start": map[string]int{"line": 2, "character": 0}, "end": map[string]int{"line": 3, "character": 0}}
	human := sc.Principal().User

	var rc message.Receipt
	c.mustCall("workspace/executeCommand", command("coditect.message.send", map[string]any{"to": "builder", "subject": "hands off", "body": "leave this alone", "uri": fileURI(f), "range": sel}), &rc)
	msgs, err := message.Fetch(ctx, agentSc, message.FetchOptions{})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("the agent's inbox: %+v, %v", msgs, err)
	}
	if m := msgs[0]; m.ID != rc.ID || m.FromUser != human || m.From != "" || m.Subject != "hands off" ||
		!strings.HasPrefix(m.Body, "leave this alone\n\nauth.go:3\n") || !strings.Contains(m.Body, "return false") {
		t.Errorf("message: %+v", m)
	}
	if ev := lastEvent(t, sc, "message.sent"); ev.User != human || ev.Agent != "" {
		t.Errorf("message.sent by user %q agent %q", ev.User, ev.Agent)
	}

	var tk task.Task
	c.mustCall("workspace/executeCommand", command("coditect.task.create", map[string]any{"title": "Fix Check", "uri": fileURI(f), "range": sel}), &tk)
	if got, err := task.Get(ctx, sc, tk.ID); err != nil || got.Title != "Fix Check" || got.Project != place(t, sc, f).Project.ID || !strings.Contains(got.Description, "auth.go:3") {
		t.Errorf("task: %+v, %v", got, err)
	}
	if ev := lastEvent(t, sc, "task.created"); ev.User != human || ev.Agent != "" {
		t.Errorf("task.created by user %q agent %q", ev.User, ev.Agent)
	}

	if _, err := lease.Acquire(ctx, agentSc, lease.Request{Resource: fileKey(t, sc, f)}); err != nil {
		t.Fatal(err)
	}
	var rel struct {
		Released []lease.Lease `json:"released"`
	}
	c.mustCall("workspace/executeCommand", command("coditect.lease.release", map[string]any{"uri": fileURI(f)}), &rel)
	if len(rel.Released) != 1 || rel.Released[0].Agent != ag.ID {
		t.Fatalf("released: %+v", rel.Released)
	}
	if ev := lastEvent(t, sc, "lease.forced"); ev.User != human || ev.Agent != "" {
		t.Errorf("lease.forced by user %q agent %q", ev.User, ev.Agent)
	}
	if msgs, err := message.Fetch(ctx, agentSc, message.FetchOptions{After: rc.ID}); err != nil || len(msgs) != 1 || !strings.Contains(msgs[0].Subject, "force-released") {
		t.Errorf("the holder was not told: %+v, %v", msgs, err)
	}
	err = c.call("workspace/executeCommand", command("coditect.lease.release", map[string]any{"uri": fileURI(f)}), nil)
	if got := class(t, err); got != "not_found" {
		t.Errorf("releasing a free file: class %q (%v)", got, err)
	}
}

// TestWriteCommandsRefused: a viewer may do none of them and a member
// may not force a lease (the layer's rules, as on REST); another tenant's
// agent or project is not found, and nothing is sent.
func TestWriteCommandsRefused(t *testing.T) {
	ctx := context.Background()
	s, _ := agenttest.Open(t)
	admin := agenttest.Scope(t, s, "acme", "admin")
	_, agentSc := agenttest.Agent(t, ctx, admin, "builder", agent.Registration{Name: "builder"})
	other := agenttest.Scope(t, s, "globex", "gina")
	foreign, foreignSc := agenttest.Agent(t, ctx, other, "spy", agent.Registration{Name: "spy"})

	for _, role := range []tenant.Role{tenant.RoleViewer, tenant.RoleMember} {
		sc := agenttest.RoleScope(t, s, "acme", "u"+string(role), role)
		c := start(t, sc, ide.Options{})
		if _, err := project.Register(ctx, admin, "", c.root, project.RootOptions{}); err != nil {
			t.Fatal(err)
		}
		c.initialize(nil)
		f := filepath.Join(c.root, "a.go")
		writeFile(t, f, "package a\n")
		if _, err := lease.Acquire(ctx, agentSc, lease.Request{Resource: fileKey(t, admin, f)}); err != nil {
			t.Fatal(err)
		}
		err := c.call("workspace/executeCommand", command("coditect.lease.release", map[string]any{"uri": fileURI(f)}), nil)
		if got := class(t, err); got != "forbidden" {
			t.Errorf("%s: lease.release: class %q (%v)", role, got, err)
		}
		send := c.call("workspace/executeCommand", command("coditect.message.send", map[string]any{"to": "builder", "body": "hi"}), nil)
		create := c.call("workspace/executeCommand", command("coditect.task.create", map[string]any{"title": "t"}), nil)
		if role == tenant.RoleViewer {
			if class(t, send) != "forbidden" || class(t, create) != "forbidden" {
				t.Errorf("viewer: send %v, create %v", send, create)
			}
		} else if send != nil || create != nil {
			t.Errorf("member: send %v, create %v", send, create)
		}
		if role == tenant.RoleMember {
			err := c.call("workspace/executeCommand", command("coditect.message.send", map[string]any{"to": foreign.ID, "body": "hi"}), nil)
			if got := class(t, err); got != "not_found" {
				t.Errorf("another tenant's agent: class %q (%v)", got, err)
			}
			pl, err := project.Register(ctx, other, "", t.TempDir(), project.RootOptions{})
			if err != nil {
				t.Fatal(err)
			}
			err = c.call("workspace/executeCommand", command("coditect.task.create", map[string]any{"title": "t", "project": pl.Project.ID}), nil)
			if got := class(t, err); got != "not_found" {
				t.Errorf("another tenant's project: class %q (%v)", got, err)
			}
		}
		if _, err := lease.ForceRelease(ctx, admin, fileKey(t, admin, f), "test"); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := message.Unread(ctx, foreignSc); err != nil || n != 0 {
		t.Errorf("the foreign agent got %d messages (%v)", n, err)
	}
}

// TestAgentBroadcastNotifies: an agent's message to all shows in the
// editor as an info message naming the agent and the subject; a message
// to one agent does not.
func TestAgentBroadcastNotifies(t *testing.T) {
	sc := scope(t)
	ctx := context.Background()
	_, agentSc := agenttest.Agent(t, ctx, sc, "builder", agent.Registration{Name: "builder", Model: "qwen2.5-coder-7b"})
	peer, _ := agenttest.Agent(t, ctx, sc, "peer", agent.Registration{Name: "peer"})
	c := start(t, sc, ide.Options{})
	c.initialize(nil)
	c.sync()
	if _, err := message.Send(ctx, agentSc, message.Outgoing{To: message.To{Agent: peer.ID}, Subject: "private", Body: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := message.Send(ctx, agentSc, message.Outgoing{To: message.To{All: true}, Subject: "need a review of auth.go", Body: "please"}); err != nil {
		t.Fatal(err)
	}
	p := c.note("window/showMessage", func(p json.RawMessage) bool {
		var m struct {
			Type    int
			Message string
		}
		if json.Unmarshal(p, &m) != nil || m.Type != 3 {
			return false
		}
		if strings.Contains(m.Message, "private") { // sent first: its notice would come first
			t.Errorf("a message to one agent was notified: %q", m.Message)
		}
		return strings.Contains(m.Message, "messaged everyone")
	})
	var m struct{ Message string }
	_ = json.Unmarshal(p, &m)
	if !strings.Contains(m.Message, "builder") || !strings.Contains(m.Message, "need a review of auth.go") || strings.Contains(m.Message, "private") {
		t.Errorf("notification %q", m.Message)
	}
}
