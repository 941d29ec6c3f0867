package ide_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/coditect/coditect/ide"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/tenant"
)

// TestPersonMessageNotifies: an agent's message to the editor's user
// (user:NAME) shows as an info message naming the agent and the subject;
// a message to another person of the tenant does not.
func TestPersonMessageNotifies(t *testing.T) {
	sc := scope(t)
	ctx := context.Background()
	if _, err := tenant.NewDirectory(sc.Store(), "test").CreateUser(ctx, "acme", "bo", "Bo"); err != nil {
		t.Fatal(err)
	}
	_, agentSc := agenttest.Agent(t, ctx, sc, "builder", agent.Registration{Name: "builder", Model: "qwen2.5-coder-7b"})
	c := start(t, sc, ide.Options{})
	c.initialize(nil)
	c.sync()
	if _, err := message.Send(ctx, agentSc, message.Outgoing{To: message.To{User: "bo"}, Subject: "for bo only", Body: "x"}); err != nil {
		t.Fatal(err)
	}
	to, err := message.Address(ctx, agentSc, "user:"+sc.Principal().User)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := message.Send(ctx, agentSc, message.Outgoing{To: to, Subject: "may I edit auth.go?", Body: "please"}); err != nil {
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
		if strings.Contains(m.Message, "for bo only") { // sent first: its notice would come first
			t.Errorf("a message to another person was notified: %q", m.Message)
		}
		return strings.Contains(m.Message, "messaged you")
	})
	var m struct{ Message string }
	_ = json.Unmarshal(p, &m)
	if !strings.Contains(m.Message, "builder") || !strings.Contains(m.Message, "may I edit auth.go?") {
		t.Errorf("notification %q", m.Message)
	}
}

// TestMessageReplyCommand: the human answers an agent's message from the
// editor (coditect.message.send with reply_to): the reply reaches the
// agent in that thread; a reply to a message of another's inbox is not
// found, and a viewer may not reply.
func TestMessageReplyCommand(t *testing.T) {
	sc := scope(t)
	ctx := context.Background()
	_, agentSc := agenttest.Agent(t, ctx, sc, "builder", agent.Registration{Name: "builder"})
	q, err := message.Send(ctx, agentSc, message.Outgoing{To: message.To{User: sc.Principal().User}, Subject: "auth.go", Body: "may I edit auth.go?"})
	if err != nil {
		t.Fatal(err)
	}
	c := start(t, sc, ide.Options{})
	c.initialize(nil)
	var rc message.Receipt
	c.mustCall("workspace/executeCommand", command("coditect.message.send", map[string]any{"reply_to": q.ID, "body": "no, I am in it"}), &rc)
	if rc.Thread != q.ID || len(rc.Recipients) != 1 || rc.Recipients[0] != agentSc.Principal().Agent {
		t.Fatalf("reply receipt %+v", rc)
	}
	th, err := message.Fetch(ctx, agentSc, message.FetchOptions{Thread: q.ID})
	if err != nil || len(th) != 1 || th[0].Body != "no, I am in it" || th[0].ReplyTo != q.ID || th[0].FromUser != sc.Principal().User {
		t.Fatalf("the agent's thread %+v, %v", th, err)
	}
	err = c.call("workspace/executeCommand", command("coditect.message.send", map[string]any{"reply_to": strings.Repeat("0", 23) + "1", "body": "x"}), nil)
	if got := class(t, err); got != "not_found" {
		t.Errorf("reply to an unknown message: class %q (%v)", got, err)
	}
	viewer := agenttest.RoleScope(t, sc.Store(), "acme", "vi", tenant.RoleViewer)
	if _, err := message.Send(ctx, agentSc, message.Outgoing{To: message.To{User: "vi"}, Body: "fyi"}); err != nil {
		t.Fatal(err)
	}
	vms, err := message.Fetch(ctx, viewer, message.FetchOptions{})
	if err != nil || len(vms) != 1 {
		t.Fatalf("the viewer's inbox %+v, %v", vms, err)
	}
	v := start(t, viewer, ide.Options{})
	v.initialize(nil)
	err = v.call("workspace/executeCommand", command("coditect.message.send", map[string]any{"reply_to": vms[0].ID, "body": "x"}), nil)
	if got := class(t, err); got != "forbidden" {
		t.Errorf("a viewer's reply: class %q (%v)", got, err)
	}
	if th, _ := message.Fetch(ctx, agentSc, message.FetchOptions{Thread: vms[0].ID}); len(th) != 0 {
		t.Errorf("the viewer's reply arrived: %+v", th)
	}
}
