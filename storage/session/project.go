package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
)

// placed is where a new session works: its project, the workspace's
// directory relative to the project root, and the workspace's absolute
// path on this machine ("" when the project has no root here).
type placed struct {
	project project.Project
	dir     string
	ws      string
}

// place finds the project of a new session. A named project is looked up;
// a workspace must then lie in one of its roots on this machine (the
// project's first root here is the workspace when none is sent). A
// workspace alone names the project whose root on this machine holds it;
// when none does, the trusted local operator registers the workspace as a
// new project's root (project.Register), and anyone else is told which
// projects it may use.
func place(ctx context.Context, sc *tenant.Scope, in Spec) (placed, error) {
	if in.Project != "" {
		p, err := project.Get(ctx, sc, in.Project)
		if err != nil {
			return placed{}, err
		}
		if in.Workspace == "" {
			out := placed{project: p, dir: "."}
			if roots := p.RootsOn(project.Machine()); len(roots) > 0 {
				out.ws = roots[0]
			}
			return out, nil
		}
		pl, err := project.Resolve(ctx, sc, in.Workspace)
		if err == nil && pl.Project.ID != p.ID {
			err = fmt.Errorf("session: %w: workspace %s belongs to project %s, not %s", ErrInvalid, textclip.Clip(in.Workspace, 200), pl.Project.Name, p.Name)
		}
		if errors.Is(err, project.ErrOutside) {
			err = fmt.Errorf("session: %w: workspace %s is not inside project %s on this machine (its roots here: %v); send a directory inside one, or only the project",
				project.ErrOutside, textclip.Clip(in.Workspace, 200), p.Name, p.RootsOn(project.Machine()))
		}
		if err != nil {
			return placed{}, err
		}
		return placed{project: pl.Project, dir: pl.Rel, ws: pl.Abs()}, nil
	}
	pl, err := project.Resolve(ctx, sc, in.Workspace)
	if errors.Is(err, project.ErrOutside) && sc.Principal().Local {
		pl, err = project.Register(ctx, sc, "", in.Workspace, project.RootOptions{})
	}
	if err != nil {
		return placed{}, err
	}
	return placed{project: pl.Project, dir: pl.Rel, ws: pl.Abs()}, nil
}

// where names a session's place for a person: the project, and the
// directory inside it unless it is the root.
func where(name, dir string) string {
	if dir == "" || dir == "." {
		return name
	}
	return name + "/" + dir
}
