package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/lease"
)

// TestForceReleaseFencesTheHolder: on each surface — REST (`coditect
// serve`), the terminal and the IDE protocol (`coditect ide`) — a member
// is refused force-releasing an agent's lease (and the holder's write
// under it still goes through), an admin force-releases it, the holder
// (the official MCP SDK client over `coditect mcp`) is told in its inbox,
// and its next fs_write with the old fencing token is refused with the
// file left as it was.
func TestForceReleaseFencesTheHolder(t *testing.T) {
	c := newCLI(t)
	ws, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	builder := c.mcp("--agent", "builder", "--model", "qwen2.5-coder-7b-instruct", "--toolsets", "all")
	sid := builder.ok("session_start", map[string]any{"title": "auth work", "workspace": ws})["session_id"].(string)
	member, admin := c.token("mia", "member"), c.token("ada", "admin")
	file := filepath.Join(ws, "src", "auth.go")
	round := 0
	// take has the builder lease src/auth.go and write it under the lease.
	take := func() (resource string, token int64) {
		t.Helper()
		round++
		l := builder.ok("lease_acquire", map[string]any{"resource": "src/auth.go", "session_id": sid, "ttl_seconds": 600})
		token = int64(l["token"].(float64))
		builder.ok("fs_write", map[string]any{"path": "src/auth.go", "session_id": sid, "token": token, "content": fmt.Sprintf("package auth // %d\n", round)})
		ls := decode[[]lease.Holder](t, c.ok("lease", "list", "--json"))
		if len(ls) != 1 || ls[0].Token != token {
			t.Fatalf("lease list: %+v", ls)
		}
		return ls[0].Resource, token
	}
	// stillHeld: after a refused release, the holder writes on.
	stillHeld := func(surface string, token int64) {
		t.Helper()
		builder.ok("fs_write", map[string]any{"path": "src/auth.go", "session_id": sid, "token": token, "content": fmt.Sprintf("package auth // %d, after %s's refusal\n", round, surface)})
	}
	// fenced: the old token's write is refused and the holder was told.
	fenced := func(surface string, token int64) {
		t.Helper()
		before, _ := os.ReadFile(file)
		_, text, isErr := builder.call("fs_write", map[string]any{"path": "src/auth.go", "session_id": sid, "token": token, "content": "package auth // too late\n"})
		if !isErr || !strings.Contains(text, fmt.Sprintf("token %d is not a current lease of yours", token)) || !strings.Contains(text, "nothing was written") {
			t.Fatalf("%s: the old holder's write with token %d: error %v: %s", surface, token, isErr, text)
		}
		if after, _ := os.ReadFile(file); !bytes.Equal(after, before) {
			t.Fatalf("%s: the refused write changed the file: %q", surface, after)
		}
		msgs := builder.ok("inbox", nil)["messages"].([]any)
		var ids []string
		told := false
		for _, m := range msgs {
			m := m.(map[string]any)
			ids = append(ids, m["message_id"].(string))
			if s, _ := m["subject"].(string); strings.Contains(s, "force-released") && strings.Contains(fmt.Sprint(m["body"]), surface) {
				told = true
			}
		}
		if !told {
			t.Fatalf("%s: the holder was not told: %v", surface, msgs)
		}
		builder.ok("inbox", map[string]any{"ack": ids})
	}

	// REST.
	srv := startServe(t, c.store)
	del := func(resource, token string) (int, string) {
		t.Helper()
		return srv.do(t, "DELETE", "/api/v1/leases/"+url.PathEscape(resource)+"?reason="+url.QueryEscape("stuck, from rest"), token, "")
	}
	res, tok := take()
	if code, body := del(res, member); code != http.StatusForbidden || !strings.Contains(body, `"class":"forbidden"`) {
		t.Fatalf("rest: a member's force-release: %d %s", code, body)
	}
	stillHeld("rest", tok)
	if code, body := del(res, admin); code != http.StatusOK {
		t.Fatalf("rest: an admin's force-release: %d %s", code, body)
	}
	fenced("rest", tok)

	// The terminal.
	res, tok = take()
	c.withToken(member).fail("not allowed for this role", "lease", "release", res, "--reason", "stuck, from cli")
	stillHeld("cli", tok)
	c.withToken(admin).ok("lease", "release", res, "--reason", "stuck, from cli")
	fenced("cli", tok)

	// The IDE protocol.
	_, tok = take()
	release := func(token string) map[string]any {
		p := ideWithToken(t, c.bin, c.store, ws, token)
		p.initialize(ws)
		p.send(map[string]any{"id": 2, "method": "workspace/executeCommand", "params": map[string]any{
			"command": "coditect.lease.release", "arguments": []any{map[string]any{"uri": fileURL(file), "reason": "stuck, from ide"}}}})
		return p.response(2)
	}
	r := release(member)
	if e, _ := r["error"].(map[string]any); e == nil || fmt.Sprint(e["data"]) != "map[class:forbidden]" {
		t.Fatalf("ide: a member's force-release: %v", r)
	}
	stillHeld("ide", tok)
	r = release(admin)
	if res, _ := r["result"].(map[string]any); res == nil || len(res["released"].([]any)) != 1 {
		t.Fatalf("ide: an admin's force-release: %v", r)
	}
	fenced("ide", tok)
}
