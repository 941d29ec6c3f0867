package tools

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/session"
)

// Projects as the tools show them. A file's lease and attribution key is
// its project's path (project.File.String(), "@<project id>/<rel>"): the
// same for every session, workspace directory, symbolic-link alias and
// checkout of the project. Models never see that form: they send and read
// paths relative to the project root, and the project's name (qualify,
// unqualify and show are where the two forms meet).

// qualify returns the lease resource of a path or glob relative to the
// root of project id; a key stays as it is.
func qualify(id, res string) string {
	if lease.IsKey(res) {
		return res
	}
	return project.File{Project: id, Rel: res}.String()
}

// unqualify splits a lease resource into what a model reads: the path or
// glob relative to its project's root and the project's id; a key (or any
// resource of no project) comes back whole, with id "".
func unqualify(res string) (rel, id string) {
	if f, ok := project.ParseFile(res); ok {
		return f.Rel, f.Project
	}
	return res, ""
}

// projectName returns the name of the caller's project id, read once per
// call; the id itself when it cannot be read.
func (c *Call) projectName(ctx context.Context, id string) string {
	if id == "" {
		return ""
	}
	if n, ok := c.names[id]; ok {
		return n
	}
	if c.names == nil {
		c.names = map[string]string{}
	}
	n := id
	if p, err := project.Get(ctx, c.Scope, id); err == nil {
		n = p.Name
	}
	c.names[id] = n
	return n
}

// nameProject remembers a project's name for the rest of the call.
func (c *Call) nameProject(p project.Project) {
	if c.names == nil {
		c.names = map[string]string{}
	}
	c.names[p.ID] = p.Name
}

// show renders a lease resource for a model: `"src/a.go" in project
// webapp`, or a key quoted.
func (c *Call) show(ctx context.Context, res string) string {
	rel, id := unqualify(res)
	if id == "" {
		return fmt.Sprintf("%q", res)
	}
	return fmt.Sprintf("%q in project %s", rel, c.projectName(ctx, id))
}

// unqualifyText removes the project prefixes of the resources of the
// projects ids from a layer's message.
func unqualifyText(msg string, ids ...string) string {
	for _, id := range ids {
		if id != "" {
			msg = strings.ReplaceAll(msg, project.File{Project: id}.String()+"/", "")
		}
	}
	return msg
}

// sessionProject returns the project of a session of the caller's tenant,
// refusing a session of a store written before projects existed.
func (c *Call) sessionProject(ctx context.Context, s session.Session) (project.Project, error) {
	if s.Project == "" {
		return project.Project{}, &toolError{err: project.ErrNotFound,
			msg: fmt.Sprintf("session %s belongs to no project (it was started before projects existed): end it and start a new session in a project with session_start; an operator can also place old sessions in projects with coditect store verify --repair", s.ID)}
	}
	p, err := project.Get(ctx, c.Scope, s.Project)
	if errors.Is(err, project.ErrNotFound) {
		return p, &toolError{err: err, msg: fmt.Sprintf("the project of session %s was removed: start a new session in a project with session_start", s.ID)}
	}
	return p, err
}

// resolveProject returns the project a tool works in: the project of the
// session sessionID when it is sent, else the project ref (a name or id)
// when it is sent, else the tenant's only project.
func (c *Call) resolveProject(ctx context.Context, sessionID, ref string) (project.Project, error) {
	id, err := c.sessionID(sessionID, false)
	if err != nil {
		return project.Project{}, err
	}
	if err := c.text("project", ref, project.MaxName, false, true); err != nil {
		return project.Project{}, err
	}
	var p project.Project
	switch {
	case id != "":
		s, err := session.Get(ctx, c.Scope, id)
		if err != nil {
			return p, err
		}
		if p, err = c.sessionProject(ctx, s); err != nil {
			return p, err
		}
		if ref != "" && ref != p.ID && ref != p.Name {
			return p, c.argError("session %s works in project %s, not %q: send one of session_id and project", id, p.Name, textclip.Clip(ref, 80))
		}
	case ref != "":
		if p, err = project.Get(ctx, c.Scope, ref); err != nil {
			return p, c.projectError(ctx, ref, err)
		}
	default:
		ps, err := project.List(ctx, c.Scope)
		if err != nil {
			return p, err
		}
		if len(ps) != 1 {
			return p, c.argError("a file path or glob belongs to a project: send %q (the session you work in) or %q (a project's name); %s",
				"session_id", "project", describe(ps))
		}
		p = ps[0]
	}
	c.nameProject(p)
	return p, nil
}

// projectError rewrites the refusal of a lookup of project ref for a
// model, naming the projects it may use.
func (c *Call) projectError(ctx context.Context, ref string, err error) error {
	if !errors.Is(err, project.ErrNotFound) {
		return err
	}
	ps, lerr := project.List(ctx, c.Scope)
	if lerr != nil {
		return err
	}
	return &toolError{err: err, msg: fmt.Sprintf("no project %q; %s", textclip.Clip(ref, 120), describe(ps))}
}

// outsideError rewrites the refusal of a workspace in none of the
// caller's projects for a model: which projects it may use, and who may
// register another.
func (c *Call) outsideError(ctx context.Context, workspace string, err error) error {
	ps, lerr := project.List(ctx, c.Scope)
	if lerr != nil {
		return err
	}
	msg := fmt.Sprintf("%s lies in none of your projects on this machine: send %q (a project's name) or a workspace inside one of its roots; %s",
		textclip.Clip(workspace, 200), "project", describe(ps))
	if len(ps) > 0 {
		msg += ". Only an admin registers another directory (coditect project add NAME DIR)"
	}
	return &toolError{err: err, msg: msg}
}

// describe names the tenant's projects and their roots on this machine.
func describe(ps []project.Project) string {
	if len(ps) == 0 {
		return "your tenant has no projects yet: an admin registers one with `coditect project add NAME DIR`"
	}
	return "your " + strings.TrimPrefix(project.Describe(ps, project.Machine()), "its ")
}
