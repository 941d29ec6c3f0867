package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestPersonInboxCLI: an agent (the official MCP SDK client over `coditect
// mcp`) messages a person with user:NAME; the person reads it with
// `coditect message list`, replies in the thread with --reply-to (the
// agent reads the reply in that thread) and marks it read; another person
// of the tenant sees none of it.
func TestPersonInboxCLI(t *testing.T) {
	c := newCLI(t)
	c.ok("user", "create", "pat", "--name", "Pat Doe")
	c.ok("user", "create", "quinn")
	builder := c.mcp("--agent", "builder", "--model", "qwen2.5-coder-7b-instruct", "--toolsets", "core,coord")
	id := builder.ok("whoami", nil)["agent_id"].(string)

	q := builder.ok("message_send", map[string]any{"to": "user:Pat Doe", "subject": "auth.go", "body": "may I edit auth.go?"})
	qid := q["message_id"].(string)
	if r := q["recipients"].([]any); len(r) != 1 || r[0] != "user:pat" {
		t.Fatalf("message_send to a person: %v", q)
	}
	_, text, isErr := builder.call("message_send", map[string]any{"to": "user:nobody", "body": "x"})
	if !isErr || !strings.Contains(text, "user:") {
		t.Fatalf("message_send to an unknown person: %s", text)
	}
	_, text, isErr = builder.call("message_send", map[string]any{"to": "pat", "body": "x"})
	if !isErr || !strings.Contains(text, `"user:"`) {
		t.Fatalf("message_send to a person's bare name: %s", text)
	}

	out := c.ok("message", "list", "--as", "pat")
	if !strings.Contains(out, qid) || !strings.Contains(out, "builder (qwen2.5-coder-7b-instruct)") || !strings.Contains(out, "may I edit auth.go?") || !strings.Contains(out, "1 unread") {
		t.Fatalf("pat's message list: %q", out)
	}
	in := decode[inboxList](t, c.ok("message", "list", "--as", "pat", "--json"))
	if in.Unread != 1 || len(in.Messages) != 1 || in.Messages[0].From != id || in.Messages[0].To != "user:pat" {
		t.Fatalf("pat's message list --json: %+v", in)
	}
	// Another person reads only their own inbox.
	if other := decode[inboxList](t, c.ok("message", "list", "--as", "quinn", "--json")); len(other.Messages) != 0 || other.Unread != 0 {
		t.Fatalf("quinn sees pat's inbox: %+v", other)
	}
	if other := decode[inboxList](t, c.ok("message", "list", "--as", "quinn", "--thread", qid, "--json")); len(other.Messages) != 0 {
		t.Fatalf("quinn reads pat's thread: %+v", other)
	}
	c.fail("not in the inbox", "message", "ack", "--as", "quinn", qid)
	c.fail("not in the inbox", "message", "send", "--as", "quinn", "--reply-to", qid, "me too")

	// pat replies in the thread; the agent reads it there.
	if out := c.ok("message", "send", "--as", "pat", "--reply-to", qid, "no, I am in it"); !strings.Contains(out, "1 recipient: builder (qwen2.5-coder-7b-instruct)") {
		t.Fatalf("reply: %q", out)
	}
	c.fail("--reply-to", "message", "send", "--as", "pat", "just a body")
	msgs := builder.ok("inbox", nil)["messages"].([]any)
	if len(msgs) != 1 {
		t.Fatalf("the agent's inbox: %v", msgs)
	}
	re := msgs[0].(map[string]any)
	if re["thread"] != qid || re["reply_to"] != qid || re["from_user"] != "pat" || re["body"] != "no, I am in it" {
		t.Fatalf("the agent reads %v", re)
	}
	// The agent answers; pat's thread holds both; pat marks them read.
	builder.ok("message_send", map[string]any{"reply_to": re["message_id"], "body": "ok, I will wait"})
	th := decode[inboxList](t, c.ok("message", "list", "--as", "pat", "--thread", qid, "--json"))
	if len(th.Messages) != 2 || th.Messages[1].Body != "ok, I will wait" || th.Messages[1].Thread != qid {
		t.Fatalf("pat's thread: %+v", th)
	}
	if out := c.ok("message", "ack", "--as", "pat", qid, th.Messages[1].ID); !strings.Contains(out, "2 messages marked read; 0 unread") {
		t.Fatalf("ack: %q", out)
	}
	if out := c.ok("message", "list", "--as", "pat"); !strings.Contains(out, "no unread messages") {
		t.Fatalf("after ack: %q", out)
	}
	c.fail("add --sent", "message", "list", "--user", "pat")
	if out := c.ok("message", "list", "--sent"); !strings.Contains(out, "user:pat") {
		t.Fatalf("message list --sent: %q", out)
	}
}

// TestPersonRepliesReachTheAgent: an agent (the official MCP SDK client
// over `coditect mcp`) asks a person (user:ada) two questions; ada's
// editor (`coditect ide` with her token) is notified of the second, ada
// reads both over REST (`coditect serve`; another member reads none),
// answers one over REST and the other from the editor, each with
// reply_to; the agent reads both answers in their threads.
func TestPersonRepliesReachTheAgent(t *testing.T) {
	c := newCLI(t)
	ws, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ada, mia := c.token("ada", "member"), c.token("mia", "member")
	builder := c.mcp("--agent", "builder", "--model", "qwen2.5-coder-7b-instruct", "--toolsets", "core,coord")
	builder.ok("session_start", map[string]any{"title": "auth work", "workspace": ws})

	editor := ideWithToken(t, c.bin, c.store, ws, ada)
	editor.initialize(ws)
	// The editor follows the log from initialized on: a status call
	// answered means it is following.
	editor.send(map[string]any{"id": 2, "method": "workspace/executeCommand", "params": map[string]any{"command": "coditect.status"}})
	editor.response(2)

	q1 := builder.ok("message_send", map[string]any{"to": "user:ada", "subject": "rest", "body": "may I edit auth.go?"})["message_id"].(string)
	q2 := builder.ok("message_send", map[string]any{"to": "user:ada", "subject": "editor question", "body": "may I edit login.go?"})["message_id"].(string)
	note := editor.next(func(m map[string]any) bool {
		p, _ := m["params"].(map[string]any)
		return m["method"] == "window/showMessage" && strings.Contains(fmt.Sprint(p["message"]), "editor question")
	})
	if msg := fmt.Sprint(note["params"].(map[string]any)["message"]); !strings.Contains(msg, "builder") || !strings.Contains(msg, "messaged you") {
		t.Fatalf("the editor's notification: %q", msg)
	}

	srv := startServe(t, c.store)
	call := func(method, path, token, body string) (int, string) {
		t.Helper()
		return srv.do(t, method, path, token, body)
	}
	if code, body := call("GET", "/api/v1/inbox", ada, ""); code != 200 || !strings.Contains(body, q1) || !strings.Contains(body, q2) || !strings.Contains(body, `"unread":2`) {
		t.Fatalf("ada's inbox over REST: %d %s", code, body)
	}
	if code, body := call("GET", "/api/v1/inbox", mia, ""); code != 200 || strings.Contains(body, q1) || !strings.Contains(body, `"unread":0`) {
		t.Fatalf("mia reads ada's inbox: %d %s", code, body)
	}
	if code, body := call("POST", "/api/v1/messages", mia, `{"reply_to":"`+q1+`","body":"not mine to answer"}`); code != http.StatusNotFound {
		t.Fatalf("mia replies to ada's message: %d %s", code, body)
	}
	if code, body := call("POST", "/api/v1/messages", ada, `{"reply_to":"`+q1+`","body":"yes, go ahead"}`); code != http.StatusCreated {
		t.Fatalf("ada's reply over REST: %d %s", code, body)
	}
	editor.send(map[string]any{"id": 3, "method": "workspace/executeCommand", "params": map[string]any{
		"command": "coditect.message.send", "arguments": []any{map[string]any{"reply_to": q2, "body": "no, I am in login.go"}}}})
	if r := editor.response(3); r["result"] == nil {
		t.Fatalf("ada's reply from the editor: %v", r)
	}

	msgs := builder.ok("inbox", nil)["messages"].([]any)
	got := map[string]string{}
	for _, m := range msgs {
		m := m.(map[string]any)
		if m["from_user"] != "ada" || m["reply_to"] != m["thread"] {
			t.Fatalf("the agent reads %v", m)
		}
		got[m["thread"].(string)] = m["body"].(string)
	}
	if len(got) != 2 || got[q1] != "yes, go ahead" || got[q2] != "no, I am in login.go" {
		t.Fatalf("the agent's threads: %v", got)
	}
	if code, body := call("POST", "/api/v1/inbox/ack", ada, `{"ids":["`+q1+`","`+q2+`"]}`); code != 200 || !strings.Contains(body, `"unread":0`) {
		t.Fatalf("ada acks over REST: %d %s", code, body)
	}
}
