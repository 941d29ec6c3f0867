package webview

import (
	"net/http"
	"unicode/utf8"

	"github.com/coditect/coditect/storage/review"
	"github.com/coditect/coditect/storage/tenant"
)

// Review before write (storage/review): the proposals agents' changes
// became under a project's review policy, and the policy itself. Reads
// need any role; accepting and rejecting need a member or an admin;
// changing a policy needs an admin. Writes follow actions.go: bearer token
// only, JSON bodies only, one error translation (fail).
//
//	GET    /api/v1/reviews?project=&all=     pending proposals, oldest first ({"reviews": [...]}; all=1 adds decided ones)
//	GET    /api/v1/reviews/{id}              one proposal with before/after contents
//	POST   /api/v1/reviews/{id}/accept       apply it (409 conflict when the file changed since)
//	POST   /api/v1/reviews/{id}/reject       {"reason": "…"} decline it; the reason reaches the agent
//	GET    /api/v1/projects/{id}/review-policy
//	PUT    /api/v1/projects/{id}/review-policy   {"rules": [{"glob": "src/auth/**", "agents": []}]}
//	DELETE /api/v1/projects/{id}/review-policy

// ReviewShown is a proposal with its contents (GET /api/v1/reviews/{id}):
// Before is what the change was made against, After what accepting writes
// (empty for a delete); both are empty and Binary set for binary content.
type ReviewShown struct {
	review.Proposal
	Before string `json:"before"`
	After  string `json:"after"`
	Binary bool   `json:"binary,omitempty"`
}

// ReviewReject is the body of POST /api/v1/reviews/{id}/reject.
type ReviewReject struct {
	Reason string `json:"reason"`
}

// PolicyRequest is the body of PUT /api/v1/projects/{id}/review-policy.
type PolicyRequest struct {
	Rules []review.Rule `json:"rules"`
}

func (h *Handler) listReviews(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	q := r.URL.Query()
	ps, err := review.List(r.Context(), sc, review.Filter{Project: q.Get("project"), All: q.Get("all") == "1" || q.Get("all") == "true"})
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Reviews []review.Proposal `json:"reviews"`
	}{ps})
}

func (h *Handler) getReview(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	p, before, after, err := review.Contents(r.Context(), sc, r.PathValue("id"))
	if err != nil {
		h.fail(w, err)
		return
	}
	if p.Kind == review.Move {
		after = before
	}
	out := ReviewShown{Proposal: p}
	if utf8.Valid(before) && utf8.Valid(after) {
		out.Before, out.After = string(before), string(after)
	} else {
		out.Binary = true
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) acceptReview(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	if err := sc.CanWrite(); err != nil {
		h.fail(w, err)
		return
	}
	p, err := review.Accept(r.Context(), sc, r.PathValue("id"))
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (h *Handler) rejectReview(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	if err := sc.CanWrite(); err != nil {
		h.fail(w, err)
		return
	}
	var req ReviewReject
	if !h.decodeJSON(w, r, maxActionBody, &req) {
		return
	}
	p, err := review.Reject(r.Context(), sc, r.PathValue("id"), req.Reason)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (h *Handler) getPolicy(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	p, err := review.GetPolicy(r.Context(), sc, r.PathValue("id"))
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (h *Handler) putPolicy(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	if err := sc.CanWrite(); err != nil {
		h.fail(w, err) // before the body: a viewer learns nothing else
		return
	}
	var req PolicyRequest
	if !h.decodeJSON(w, r, maxActionBody, &req) {
		return
	}
	if req.Rules == nil {
		h.fail(w, badRequest("rules is required: a list of {\"glob\": \"src/auth/**\", \"agents\": []}; DELETE the policy to clear it"))
		return
	}
	p, err := review.SetPolicy(r.Context(), sc, r.PathValue("id"), req.Rules)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (h *Handler) deletePolicy(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	p, err := review.ClearPolicy(r.Context(), sc, r.PathValue("id"))
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}
