package ide_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/coditect/coditect/ide"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/tenant"
)

// A layer error reaches the editor as RequestFailed with its class in the
// error's data: ending a session that another surface ended meanwhile is
// a conflict.
func TestLayerErrorCarriesItsClass(t *testing.T) {
	sc := scope(t)
	c := start(t, sc, ide.Options{})
	c.initialize(nil)
	var se struct{ ID string }
	c.mustCall("workspace/executeCommand", map[string]any{"command": "coditect.session.start"}, &se)
	if _, err := session.End(context.Background(), sc, se.ID, session.Outcome{Status: session.Completed}); err != nil {
		t.Fatal(err)
	}
	err := c.call("workspace/executeCommand", map[string]any{"command": "coditect.session.end"}, nil)
	var e *jsonrpc2.Error
	if !errors.As(err, &e) || e.Code != -32803 || e.Data == nil {
		t.Fatalf("ending an ended session: %v, want RequestFailed with data", err)
	}
	var data struct{ Class string }
	if err := json.Unmarshal(*e.Data, &data); err != nil || data.Class != "conflict" {
		t.Fatalf("data %s, want class conflict", *e.Data)
	}
}

// The commands translate no layer error themselves: each class reaches the
// editor as dispatch.go's one translation maps it (invalid: InvalidParams;
// the others RequestFailed with the class in data).
func TestCommandErrorsByClass(t *testing.T) {
	sc := scope(t)
	ctx := context.Background()
	_, agentSc := agenttest.Agent(t, ctx, sc, "builder", agent.Registration{Name: "builder"})
	c := start(t, sc, ide.Options{})
	c.initialize(nil)
	member := agenttest.RoleScope(t, sc.Store(), "acme", "mo", tenant.RoleMember)
	m := start(t, member, ide.Options{})
	m.initialize(nil)
	f := c.root + "/held.go"
	writeFile(t, f, "package held\n")
	c.sync() // the workspace folder is registered as a project
	if _, err := lease.Acquire(ctx, agentSc, lease.Request{Resource: fileKey(t, sc, f)}); err != nil {
		t.Fatal(err)
	}
	zero := strings.Repeat("0", 23) + "1"
	for _, tc := range []struct {
		name string
		c    *client
		cmd  string
		arg  any
		want string
	}{
		{"join an unknown session", c, "coditect.session.join", map[string]string{"id": "01JZ3K5V8Q2W7X9Y4N6M1P0R3T"}, "not_found"},
		{"join a malformed id", c, "coditect.session.join", map[string]string{"id": "x/y"}, "invalid"},
		{"start in an unknown project", c, "coditect.session.start", map[string]string{"project": "nope"}, "not_found"},
		{"start outside every project", m, "coditect.session.start", map[string]string{"workspace": t.TempDir()}, "forbidden"},
		{"end with a bad status", c, "coditect.session.end", map[string]string{"status": "exploded"}, "invalid"},
		{"history with a bad cursor", c, "coditect.file.history", map[string]string{"uri": fileURI(f), "cursor": "zz"}, "invalid"},
		{"message an unknown person", c, "coditect.message.send", map[string]string{"to": "user:nobody", "body": "x"}, "not_found"},
		{"message an unknown agent", c, "coditect.message.send", map[string]string{"to": "nobody", "body": "x"}, "not_found"},
		{"reply to an unknown message", c, "coditect.message.send", map[string]string{"reply_to": zero, "body": "x"}, "not_found"},
		{"reply to a malformed id", c, "coditect.message.send", map[string]string{"reply_to": "x", "body": "x"}, "invalid"},
		{"message with no body", c, "coditect.message.send", map[string]string{"to": "builder"}, "invalid"},
		{"a member forces a lease", m, "coditect.lease.release", map[string]string{"uri": fileURI(f)}, "forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.call("workspace/executeCommand", command(tc.cmd, tc.arg), nil)
			if got := class(t, err); got != tc.want {
				t.Errorf("%s: class %q (%v), want %q", tc.cmd, got, err, tc.want)
			}
		})
	}
}
