package webview

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/task"
	"github.com/coditect/coditect/storage/tenant"
)

// fail answers each class with its status and a JSON body naming the
// class: a lease conflict is 409 (it was a 500 before the classes), an
// unavailable store 503 with Retry-After.
func TestFailByClass(t *testing.T) {
	h := New(tenant.NewDirectory(nil, "fail"), Options{})
	for _, c := range []struct {
		err         error
		status      int
		code, class string
		retryAfter  bool
	}{
		{&lease.ConflictError{Resource: "src/a.go"}, http.StatusConflict, "conflict", "conflict", false},
		{fmt.Errorf("lease: %w", lease.ErrFenced), http.StatusConflict, "conflict", "conflict", false},
		{&task.VersionError{}, http.StatusConflict, "conflict", "conflict", false},
		{fmt.Errorf("task: %w: x", task.ErrInvalid), http.StatusBadRequest, "bad_request", "invalid", false},
		{badRequest("limit"), http.StatusBadRequest, "bad_request", "invalid", false},
		{fmt.Errorf("project: %w", project.ErrNotFound), http.StatusNotFound, "not_found", "not_found", false},
		{fmt.Errorf("tenant: %w", tenant.ErrForbidden), http.StatusForbidden, "forbidden", "forbidden", false},
		{fmt.Errorf("sqlite: %w: locked", kv.ErrUnavailable), http.StatusServiceUnavailable, "unavailable", "unavailable", true},
		{context.DeadlineExceeded, http.StatusServiceUnavailable, "unavailable", "unavailable", true},
		{errors.New("boom"), http.StatusInternalServerError, "internal", "internal", false},
	} {
		rec := httptest.NewRecorder()
		h.fail(rec, c.err)
		var body struct{ Error APIError }
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		if rec.Code != c.status || body.Error.Code != c.code || body.Error.Class != c.class {
			t.Errorf("%v: %d %s, want %d code %s class %s", c.err, rec.Code, rec.Body, c.status, c.code, c.class)
		}
		if got := rec.Header().Get("Retry-After") != ""; got != c.retryAfter {
			t.Errorf("%v: Retry-After %q", c.err, rec.Header().Get("Retry-After"))
		}
	}
}
