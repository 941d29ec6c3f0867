package webview

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
)

// ProjectList is the body of GET /api/v1/projects: the caller's tenant's
// projects with their roots, and the machine this server runs on (the
// roots on it are where the files of its events are).
type ProjectList struct {
	Projects []project.Project `json:"projects"`
	Machine  string            `json:"machine"`
}

// listProjects is GET /api/v1/projects.
func (h *Handler) listProjects(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	ps, err := project.List(r.Context(), sc)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ProjectList{Projects: nonNil(ps), Machine: project.Machine()})
}

// getProject is GET /api/v1/projects/{id} (an id or a name). Another
// tenant's project is not found, exactly as a missing one.
func (h *Handler) getProject(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	p, err := project.Get(r.Context(), sc, r.PathValue("id"))
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// ProjectRequest is the body of POST /api/v1/projects.
type ProjectRequest struct {
	// Name names the project: it is created when the tenant has none of
	// that name.
	Name string `json:"name"`
	// Remote is the new project's git remote (optional).
	Remote string `json:"remote,omitempty"`
	// Root is a directory to register as a checkout root (optional).
	Root string `json:"root,omitempty"`
	// Machine is the machine Root is on; this server's when empty.
	Machine string `json:"machine,omitempty"`
}

// createProject is POST /api/v1/projects (admins): it creates the project
// Name when it is new (201) and registers Root as one of its roots (200
// when the project existed). The body must be JSON (415 otherwise), which
// a cross-site form cannot send without a preflight.
func (h *Handler) createProject(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	if err := project.CanRegister(sc); err != nil {
		h.fail(w, err)
		return
	}
	var req ProjectRequest
	if !h.decodeJSON(w, r, 16<<10, &req) {
		return
	}
	ctx := r.Context()
	status := http.StatusOK
	p, err := project.Get(ctx, sc, req.Name)
	switch {
	case errors.Is(err, project.ErrNotFound):
		if p, err = project.Create(ctx, sc, project.Spec{Name: req.Name, Remote: req.Remote}); err != nil {
			h.fail(w, err)
			return
		}
		status = http.StatusCreated
	case err != nil:
		h.fail(w, err)
		return
	case req.Remote != "" && req.Remote != p.Remote:
		h.fail(w, badRequest("project %s exists with remote %q, not %q: leave remote out to add a root to it", p.Name, p.Remote, req.Remote))
		return
	}
	if req.Root != "" {
		np, err := project.AddRoot(ctx, sc, p.ID, req.Root, project.RootOptions{Machine: req.Machine, Protected: h.opts.ProtectedPaths})
		if err != nil {
			if status == http.StatusCreated {
				// The project was made for this root: do not leave it
				// behind when the root is refused.
				if _, rerr := project.Remove(ctx, sc, p.ID); rerr != nil {
					h.opts.Logger.Error("webview: removing a project whose root was refused", "project", p.ID, "err", rerr)
				}
			}
			h.fail(w, err)
			return
		}
		p = np
	}
	writeJSON(w, status, p)
}

// projectParam resolves the project query parameter (a name or an id) of
// the scope's tenant to its id; "" when absent. A project the tenant does
// not have, another tenant's included, is ErrNotFound.
func projectParam(r *http.Request, q url.Values, sc *tenant.Scope) (string, error) {
	ref := q.Get("project")
	if ref == "" {
		return "", nil
	}
	p, err := project.Get(r.Context(), sc, ref)
	if err != nil {
		return "", err
	}
	return p.ID, nil
}
