package isolation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/task"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/webview"
)

// ideReads are the IDE commands that only read; every other command the
// server advertises writes and a viewer is refused it.
var ideReads = []string{"coditect.dashboard", "coditect.file.history", "coditect.agents", "coditect.status",
	"coditect.review.list", "coditect.review.show"}

// TestViewerWritesNothing: a viewer's token is refused (403, class
// forbidden) every REST route that writes (every route but GET) and every
// IDE command that writes, with real ids of its own tenant in every
// argument, and the tenant's keys are byte for byte as they were.
func TestViewerWritesNothing(t *testing.T) {
	st := openStore(t)
	dir := tenant.NewDirectory(st, "isolation")
	ctx := context.Background()
	admin, err := dir.Local(ctx, tenantA, "root")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dir.CreateUser(ctx, tenantA, "vic", ""); err != nil {
		t.Fatal(err)
	}
	viewer, _, err := dir.IssueToken(ctx, tenantA, "vic", tenant.RoleViewer, tenant.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vsc, err := dir.Authenticate(ctx, viewer)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	pl, err := project.Register(ctx, admin, "", root, project.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ag, err := agent.Register(ctx, admin, agent.Registration{Name: "coder", Client: "test"})
	if err != nil {
		t.Fatal(err)
	}
	asc, _ := admin.WithAgent(ag.ID)
	se, err := session.Start(ctx, asc, session.Spec{Title: "work", Workspace: root})
	if err != nil {
		t.Fatal(err)
	}
	res := project.File{Project: pl.Project.ID, Rel: "a.go"}.String()
	if _, err := lease.Acquire(ctx, asc, lease.Request{Resource: res}); err != nil {
		t.Fatal(err)
	}
	tk, err := task.Create(ctx, admin, task.New{Title: "t"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := message.Send(ctx, asc, message.Outgoing{To: message.To{User: "vic"}, Body: "for the viewer"})
	if err != nil {
		t.Fatal(err)
	}
	_, tok, err := dir.IssueToken(ctx, tenantA, "root", tenant.RoleMember, tenant.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snapshot := func() []kv.KeyValue {
		t.Helper()
		sp, _ := keyspace.Tenant(tenantA)
		b, e := sp.Range()
		var out []kv.KeyValue
		if err := st.View(ctx, func(tx kv.ReadTx) error {
			var err error
			out, err = kv.Collect(tx.GetRange(b, e, kv.RangeOptions{}))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	same := func(a, b []kv.KeyValue) bool {
		return slices.EqualFunc(a, b, func(x, y kv.KeyValue) bool { return bytes.Equal(x.Key, y.Key) && bytes.Equal(x.Value, y.Value) })
	}
	before := snapshot()

	// REST: every route but GET, with the tenant's own ids.
	h := webview.New(dir, suiteWebOptions())
	hs := httptest.NewServer(h)
	defer hs.Close()
	bodies := `{"to":"coder","body":"x","reply_to":"` + m.ID + `","title":"t","project":"` + pl.Project.ID + `","version":1,"state":"cancelled","status":"completed","ids":["` + m.ID + `"],"user":"vic","name":"n","root":"` + root + `","reason":"r","note":"n"}`
	n := 0
	for _, r := range h.Routes() {
		method, path, _ := strings.Cut(r, " ")
		if method == "GET" {
			continue
		}
		for _, id := range []string{se.ID, ag.ID, tk.ID, res, m.ID, tok.ID, pl.Project.ID} {
			p := path
			if strings.Contains(p, "{") {
				p = strings.NewReplacer("{id}", url.PathEscape(id), "{resource}", url.PathEscape(id)).Replace(p)
			} else if id != se.ID {
				continue // no id in the path: once
			}
			req, _ := http.NewRequest(method, hs.URL+p+"?reason=r", strings.NewReader(bodies))
			req.Header.Set("Authorization", "Bearer "+viewer)
			req.Header.Set("Content-Type", "application/json")
			resp, err := hs.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			n++
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), `"class":"forbidden"`) {
				t.Errorf("rest: %s %s as a viewer: %d %s, want 403 forbidden", method, p, resp.StatusCode, clip(string(b)))
			}
		}
	}
	if n == 0 {
		t.Fatal("rest: no write route")
	}

	// The IDE protocol: every advertised command that writes.
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, cmds, done := ideSession(cctx, t, ideAs(vsc), root)
	defer done()
	writes := 0
	for _, cmd := range cmds {
		if slices.Contains(ideReads, cmd) {
			continue
		}
		writes++
		arg := map[string]any{"to": "coder", "body": "x", "reply_to": m.ID, "title": "t", "workspace": root, "id": se.ID,
			"status": "completed", "uri": "file://" + root + "/a.go", "reason": "r"}
		var out json.RawMessage
		err := conn.Call(cctx, "workspace/executeCommand", map[string]any{"command": cmd, "arguments": []any{arg}}, &out)
		var e *jsonrpc2.Error
		if !errors.As(err, &e) || e.Data == nil || !strings.Contains(string(*e.Data), `"forbidden"`) {
			// review.accept/reject name a proposal: an unknown one may be
			// refused as not found before the role is read; nothing may
			// succeed.
			if err == nil || !strings.HasPrefix(cmd, "coditect.review.") {
				t.Errorf("ide: %s as a viewer: %s, %v; want forbidden", cmd, out, err)
			}
		}
	}
	if writes < 6 {
		t.Fatalf("ide: only %d write commands advertised (%v)", writes, cmds)
	}
	if !same(before, snapshot()) {
		t.Fatal("a viewer's refused writes changed the tenant's keys")
	}
}
