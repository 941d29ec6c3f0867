package webview_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/task"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/webview"
)

// writeRoutes are the people's write actions, on acme's ids.
var writeRoutes = []struct{ method, path, body string }{
	{"POST", "/api/v1/messages", `{"to":"{agent}","body":"hands off auth.go"}`},
	{"POST", "/api/v1/tasks", `{"title":"fix login","project":"{project}"}`},
	{"PATCH", "/api/v1/tasks/{task}", `{"version":1,"state":"cancelled"}`},
	{"DELETE", "/api/v1/leases/{lease}?reason=stuck", ""},
	{"POST", "/api/v1/sessions/{session}/end", `{"status":"completed"}`},
}

func errorBody(t *testing.T, b []byte) webview.APIError {
	t.Helper()
	return decode[struct {
		Error webview.APIError `json:"error"`
	}](t, b).Error
}

func (f *fixture) send(t *testing.T, d *tenantData, method, path, token, body string) (int, []byte) {
	t.Helper()
	if body == "" {
		return f.do(t, method, d.expand(path), token, nil)
	}
	return f.do(t, method, d.expand(path), token, strings.NewReader(d.expand(body)))
}

// A viewer may perform no write action: 403 with class forbidden, and
// nothing changes.
func TestViewerCannotWrite(t *testing.T) {
	f := newFixture(t, webview.Options{})
	acme := f.t["acme"]
	for _, rt := range writeRoutes {
		status, b := f.send(t, acme, rt.method, rt.path, acme.viewer, rt.body)
		if e := errorBody(t, b); status != http.StatusForbidden || e.Class != "forbidden" {
			t.Errorf("%s %s as viewer: %d %s, want 403 forbidden", rt.method, rt.path, status, b)
		}
	}
	// The task, the lease and the session are as they were.
	if tk, err := task.Get(context.Background(), acme.sc, acme.task); err != nil || tk.Version != 1 {
		t.Fatalf("task after the viewer's attempts: %+v %v", tk, err)
	}
	if status, b := f.do(t, "GET", "/api/v1/leases", acme.admin, nil); status != 200 || !contains(b, acme.lease) {
		t.Fatalf("lease gone after the viewer's attempt: %d %s", status, b)
	}
}

// A member sends, creates, assigns and moves, ends a session; each action
// is audited under the member's name; a stale version is a 409 conflict;
// forcing a lease needs an admin, and its holder is told.
func TestMemberActs(t *testing.T) {
	f := newFixture(t, webview.Options{})
	acme := f.t["acme"]
	ctx := context.Background()
	if _, err := f.dir.CreateUser(ctx, "acme", "bob-acme", ""); err != nil {
		t.Fatal(err)
	}
	member, _, err := f.dir.IssueToken(ctx, "acme", "bob-acme", tenant.RoleMember, tenant.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expect := func(method, path, token, body string, want int, class string) []byte {
		t.Helper()
		status, b := f.send(t, acme, method, path, token, body)
		if status != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, status, b, want)
		}
		if class != "" {
			if e := errorBody(t, b); e.Class != class {
				t.Fatalf("%s %s: class %q, want %q: %s", method, path, e.Class, class, b)
			}
		}
		return b
	}
	// A message reaches the agent's inbox from bob.
	expect("POST", "/api/v1/messages", member, `{"to":"{agent}","subject":"auth","body":"hands off auth.go"}`, http.StatusCreated, "")
	asc, err := acme.sc.WithAgent(acme.agent)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := message.Fetch(ctx, asc, message.FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if last := msgs[len(msgs)-1]; last.Body != "hands off auth.go" || last.FromUser != "bob-acme" || last.From != "" {
		t.Fatalf("inbox: %+v", last)
	}
	expect("POST", "/api/v1/messages", member, `{"to":"cohort:","body":"x"}`, http.StatusBadRequest, "invalid")
	expect("POST", "/api/v1/messages", member, `{"to":"ag_06H4EAB6ZASM9QPMAYB1V5YHV4","body":"x"}`, http.StatusNotFound, "not_found")
	// A task, assigned at its version; a stale version is a conflict.
	b := expect("POST", "/api/v1/tasks", member, `{"title":"fix login"}`, http.StatusCreated, "")
	tk := decode[task.Task](t, b)
	if tk.CreatedBy != "bob-acme" {
		t.Fatalf("task created by %q", tk.CreatedBy)
	}
	tp := "/api/v1/tasks/" + tk.ID
	b = expect("PATCH", tp, member, `{"version":1,"assignee":"{agent}"}`, http.StatusOK, "")
	if tk = decode[task.Task](t, b); tk.Assignee != acme.agent || tk.Version != 2 {
		t.Fatalf("assigned: %+v", tk)
	}
	expect("PATCH", tp, member, `{"version":1,"state":"cancelled"}`, http.StatusConflict, "conflict")
	expect("PATCH", tp, member, `{"version":2,"state":"sideways"}`, http.StatusBadRequest, "invalid")
	expect("PATCH", tp, member, `{"version":2,"state":"cancelled"}`, http.StatusOK, "")
	// Bodies other than JSON are refused before anything is read.
	req, _ := http.NewRequest("POST", f.srv.URL+"/api/v1/tasks", strings.NewReader("title=x"))
	req.Header.Set("Authorization", "Bearer "+member)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("a form body: %d, want 415", resp.StatusCode)
	}
	// Forcing a lease: a member may not; an admin may, once.
	lp := "/api/v1/leases/" + url.PathEscape(acme.lease) + "?reason=stuck"
	expect("DELETE", lp, member, "", http.StatusForbidden, "forbidden")
	expect("DELETE", "/api/v1/leases/"+url.PathEscape(acme.lease), acme.admin, "", http.StatusBadRequest, "invalid")
	expect("DELETE", lp, acme.admin, "", http.StatusOK, "")
	expect("DELETE", lp, acme.admin, "", http.StatusNotFound, "not_found")
	msgs, err = message.Fetch(ctx, asc, message.FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if last := msgs[len(msgs)-1]; !strings.Contains(last.Subject, "force-released") {
		t.Fatalf("the holder was not told: %+v", last)
	}
	// The session ends once.
	sp := "/api/v1/sessions/" + acme.session + "/end"
	expect("POST", sp, member, `{"status":"done"}`, http.StatusBadRequest, "invalid")
	expect("POST", sp, member, `{"status":"completed","summary":"shipped"}`, http.StatusOK, "")
	expect("POST", sp, member, `{"status":"completed"}`, http.StatusConflict, "conflict")
	// Every action is audited under the human's name.
	for kind, user := range map[string]string{"message.sent": "bob-acme", "task.created": "bob-acme", "task.assigned": "bob-acme",
		"task.updated": "bob-acme", "lease.forced": "alice-acme", "session.ended": "bob-acme"} {
		q := url.Values{"kind": {kind}, "user": {user}}
		b := expect("GET", "/api/v1/events?"+q.Encode(), acme.admin, "", http.StatusOK, "")
		if !contains(b, fmt.Sprintf(`"user":%q`, user)) {
			t.Errorf("no %s event by %s: %s", kind, user, b)
		}
	}
}
