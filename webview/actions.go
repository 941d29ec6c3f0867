package webview

import (
	"encoding/json"
	"mime"
	"net/http"

	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/task"
	"github.com/coditect/coditect/storage/tenant"
)

// Write actions of people: each route is one layer call, whose transaction
// appends the audit event naming the human (the scope's user), and whose
// layer enforces the role (viewer: tenant.ErrForbidden, 403; forcing a
// lease: admins only).
//
// CSRF. The API authenticates only with a bearer token in the
// Authorization header, which a browser never attaches on its own to a
// cross-site request (there is no cookie session): a forged form or image
// request arrives without a token and gets 401. As a second line, every
// write that has a body requires Content-Type: application/json, which a
// cross-site page cannot send without a CORS preflight this server never
// grants; a body sent as a form gets 415 before anything is read.

// maxActionBody bounds the JSON body of a write action.
const maxActionBody = 64 << 10

// decodeJSON reads a write's JSON body, at most limit bytes, into v,
// refusing other content types (415) and unknown fields or malformed JSON
// (400). It reports false after writing the error. Every API route with a
// body reads it through here.
func (h *Handler) decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as JSON with Content-Type: application/json")
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		h.fail(w, badRequest("body: %v", err))
		return false
	}
	return true
}

// MessageRequest is the body of POST /api/v1/messages.
type MessageRequest struct {
	// To is an agent id or name, "user:NAME" (a person), "cohort:NAME" or
	// "all"; it may be left out of a reply, which goes to the sender of
	// the message answered.
	To      string `json:"to,omitempty"`
	Subject string `json:"subject,omitempty"`
	Body    string `json:"body"`
	// ReplyTo is the id of a message in the caller's inbox (GET
	// /api/v1/inbox) this one answers; the reply joins its thread.
	ReplyTo string `json:"reply_to,omitempty"`
}

// sendMessage sends a person's message to an agent, a person, a cohort or
// everyone, or replies to a message of the person's inbox.
func (h *Handler) sendMessage(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	if err := sc.CanWrite(); err != nil {
		h.fail(w, err) // before the body: a viewer learns nothing else
		return
	}
	var req MessageRequest
	if !h.decodeJSON(w, r, maxActionBody, &req) {
		return
	}
	var to message.To
	if req.To != "" || req.ReplyTo == "" {
		var err error
		if to, err = message.Address(r.Context(), sc, req.To); err != nil {
			h.fail(w, err)
			return
		}
	}
	rc, err := message.Send(r.Context(), sc, message.Outgoing{To: to, Subject: req.Subject, Body: req.Body, ReplyTo: req.ReplyTo})
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, rc)
}

// TaskRequest is the body of POST /api/v1/tasks.
type TaskRequest struct {
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
	Project     string `json:"project,omitempty"`
}

// createTask creates an open task.
func (h *Handler) createTask(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	if err := sc.CanWrite(); err != nil {
		h.fail(w, err)
		return
	}
	var req TaskRequest
	if !h.decodeJSON(w, r, maxActionBody, &req) {
		return
	}
	t, err := task.Create(r.Context(), sc, task.New{Title: req.Title, Description: req.Description, Project: req.Project})
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, t)
}

// TaskChange is the body of PATCH /api/v1/tasks/{id}: the version read,
// and either an assignee (an agent id; "" unassigns) or a state (with an
// optional note). A changed task answers 409 with class conflict.
type TaskChange struct {
	Version  int64   `json:"version"`
	Assignee *string `json:"assignee,omitempty"`
	State    string  `json:"state,omitempty"`
	Note     string  `json:"note,omitempty"`
}

// changeTask assigns or moves a task.
func (h *Handler) changeTask(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	if err := sc.CanWrite(); err != nil {
		h.fail(w, err)
		return
	}
	var req TaskChange
	if !h.decodeJSON(w, r, maxActionBody, &req) {
		return
	}
	var (
		t   task.Task
		err error
	)
	switch {
	case req.Assignee != nil && req.State != "":
		err = badRequest("send either assignee or state, not both")
	case req.Assignee != nil:
		t, err = task.Assign(r.Context(), sc, r.PathValue("id"), req.Version, *req.Assignee)
	case req.State != "":
		t, err = task.Transition(r.Context(), sc, r.PathValue("id"), req.Version, task.State(req.State), req.Note)
	default:
		err = badRequest("send assignee (an agent id, or \"\" to unassign) or state")
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// releaseLease force-releases every grant on a resource (admins only);
// each holder gets a message saying so, and its fencing token is refused
// from then on. The query parameter reason is required.
func (h *Handler) releaseLease(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	ls, err := lease.ForceRelease(r.Context(), sc, r.PathValue("resource"), r.URL.Query().Get("reason"))
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Released []lease.Lease `json:"released"`
	}{ls})
}

// SessionEnd is the body of POST /api/v1/sessions/{id}/end.
type SessionEnd struct {
	Status  string `json:"status"`
	Summary string `json:"summary,omitempty"`
}

// endSession ends an open session with an outcome.
func (h *Handler) endSession(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	if err := sc.CanWrite(); err != nil {
		h.fail(w, err)
		return
	}
	var req SessionEnd
	if !h.decodeJSON(w, r, maxActionBody, &req) {
		return
	}
	st, err := session.ParseStatus(req.Status)
	if err != nil {
		h.fail(w, err)
		return
	}
	s, err := session.End(r.Context(), sc, r.PathValue("id"), session.Outcome{Status: st, Summary: req.Summary})
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}
