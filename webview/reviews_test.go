package webview_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/review"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/webview"
)

// proposeIn makes acme's agent propose an edit of src/auth/a.go (which
// holds "v1\n") under a policy on src/auth/**.
func proposeIn(t *testing.T, d *tenantData) review.Proposal {
	t.Helper()
	ctx := context.Background()
	f := filepath.Join(d.root, "src", "auth", "a.go")
	if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, []byte("v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := review.SetPolicy(ctx, d.sc, d.project, []review.Rule{{Glob: "src/auth/**"}}); err != nil {
		t.Fatal(err)
	}
	asc, err := d.sc.WithAgent(d.agent)
	if err != nil {
		t.Fatal(err)
	}
	l, err := lease.Acquire(ctx, asc, lease.Request{Resource: "@" + d.project + "/src/auth/a.go"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := review.Propose(ctx, asc, review.Spec{Kind: review.Edit, Project: d.project, Path: "src/auth/a.go", Agent: d.agent,
		Base: []byte("v1\n"), BaseHash: attrib.Hash([]byte("v1\n")), BaseKnown: true, New: []byte("v2\n"), Diff: "-v1\n+v2\n",
		Leases: []review.Held{{Resource: l.Resource, Token: l.Token}}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReviewRoutes: the proposal is listed and shown with its contents;
// a viewer may not accept, reject or set the policy (403 forbidden) and a
// member may not set the policy; another tenant's admin gets 404; a
// member rejects with a reason that reaches the agent; a second proposal
// is accepted and written.
func TestReviewRoutes(t *testing.T) {
	f := newFixture(t, webview.Options{})
	acme, globex := f.t["acme"], f.t["globex"]
	ctx := context.Background()
	if _, err := f.dir.CreateUser(ctx, "acme", "bob-acme", ""); err != nil {
		t.Fatal(err)
	}
	member, _, err := f.dir.IssueToken(ctx, "acme", "bob-acme", tenant.RoleMember, tenant.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := proposeIn(t, acme)
	rp := "/api/v1/reviews/" + p.ID
	pp := "/api/v1/projects/" + acme.project + "/review-policy"

	status, b := f.do(t, "GET", "/api/v1/reviews?project="+acme.project, acme.viewer, nil)
	if status != 200 || !contains(b, p.ID) {
		t.Fatalf("list: %d %s", status, b)
	}
	status, b = f.do(t, "GET", rp, acme.viewer, nil)
	shown := decode[webview.ReviewShown](t, b)
	if status != 200 || shown.Before != "v1\n" || shown.After != "v2\n" || shown.Kind != review.Edit || shown.Agent != acme.agent {
		t.Fatalf("show: %d %s", status, b)
	}
	for _, c := range []struct{ method, path, token, body string }{
		{"POST", rp + "/accept", acme.viewer, ""},
		{"POST", rp + "/reject", acme.viewer, `{"reason":"no"}`},
		{"PUT", pp, acme.viewer, `{"rules":[]}`},
		{"DELETE", pp, acme.viewer, ""},
		{"PUT", pp, member, `{"rules":[{"glob":"**","agents":[]}]}`},
		{"DELETE", pp, member, ""},
	} {
		status, b := f.send(t, acme, c.method, c.path, c.token, c.body)
		if e := errorBody(t, b); status != http.StatusForbidden || e.Class != "forbidden" {
			t.Errorf("%s %s: %d %s, want 403 forbidden", c.method, c.path, status, b)
		}
	}
	for _, c := range []struct{ method, path, body string }{
		{"GET", rp, ""}, {"POST", rp + "/accept", ""}, {"POST", rp + "/reject", `{"reason":"x"}`}, {"GET", pp, ""}, {"PUT", pp, `{"rules":[]}`},
	} {
		status, b := f.send(t, globex, c.method, c.path, globex.admin, c.body)
		if status != http.StatusNotFound || contains(b, acme.marker) {
			t.Errorf("globex %s %s: %d %s, want 404", c.method, c.path, status, b)
		}
	}
	if status, b := f.do(t, "GET", "/api/v1/reviews", globex.admin, nil); status != 200 || contains(b, p.ID) {
		t.Errorf("globex lists %d %s", status, b)
	}
	if pol, err := review.GetPolicy(ctx, acme.sc, acme.project); err != nil || len(pol.Rules) != 1 || pol.Rules[0].Glob != "src/auth/**" {
		t.Fatalf("the policy after refused changes: %+v %v", pol, err)
	}

	// A reason is required; the member's reason reaches the agent.
	if status, b := f.send(t, acme, "POST", rp+"/reject", member, `{"reason":""}`); status != http.StatusBadRequest {
		t.Errorf("reject without a reason: %d %s", status, b)
	}
	if status, b := f.send(t, acme, "POST", rp+"/reject", member, `{"reason":"not in auth"}`); status != 200 || decode[review.Proposal](t, b).State != review.Rejected {
		t.Fatalf("reject: %d %s", status, b)
	}
	asc, _ := acme.sc.WithAgent(acme.agent)
	msgs, err := message.Fetch(ctx, asc, message.FetchOptions{})
	if err != nil || !strings.Contains(msgs[len(msgs)-1].Body, "Reason: not in auth") {
		t.Fatalf("inbox: %+v %v", msgs, err)
	}
	if status, b := f.send(t, acme, "POST", rp+"/accept", member, ""); status != http.StatusConflict {
		t.Errorf("accepting a rejected proposal: %d %s", status, b)
	}

	// Accepted: the file holds the new content.
	p = proposeIn(t, acme)
	if status, b := f.send(t, acme, "POST", "/api/v1/reviews/"+p.ID+"/accept", member, ""); status != 200 {
		t.Fatalf("accept: %d %s", status, b)
	}
	if got, _ := os.ReadFile(filepath.Join(acme.root, "src", "auth", "a.go")); string(got) != "v2\n" {
		t.Fatalf("after accept: %q", got)
	}
	// The admin replaces and clears the policy.
	if status, b := f.send(t, acme, "PUT", pp, acme.admin, `{"rules":[{"glob":"src/**","agents":["agent-marker-acme"]}]}`); status != 200 || !contains(b, `"src/**"`) {
		t.Fatalf("put policy: %d %s", status, b)
	}
	if status, b := f.send(t, acme, "PUT", pp, acme.admin, `{"rules":[{"glob":"/etc/**"}]}`); status != http.StatusBadRequest {
		t.Errorf("an absolute glob: %d %s", status, b)
	}
	if status, b := f.send(t, acme, "DELETE", pp, acme.admin, ""); status != 200 || !contains(b, `"rules":[]`) {
		t.Fatalf("delete policy: %d %s", status, b)
	}
}
