package watch

import (
	"context"
	"errors"
	"fmt"

	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
)

// Watched is what Register found for one directory it was given.
type Watched struct {
	// Dir is the directory as given.
	Dir string
	// Root is the project root to watch for it.
	Root Root
	// Project is the project's name.
	Project string
	// Rel is Dir relative to the project root ("." for the root itself).
	Rel string
}

// Register finds the project of each directory on this machine and returns
// the project roots to watch, once each, in the order given, with what it
// found for each directory. A directory in no project of the scope's
// tenant becomes the root of a project named after it when the principal
// may register roots (project.CanRegister: an admin, or the trusted local
// operator); opts.Protected are the paths such a root may not hold (the
// store's files and spool). Anyone else gets an error naming the projects
// it may watch.
func Register(ctx context.Context, sc *tenant.Scope, dirs []string, opts project.RootOptions) ([]Root, []Watched, error) {
	canRegister := project.CanRegister(sc) == nil
	var roots []Root
	var found []Watched
	seen := map[string]bool{}
	for _, dir := range dirs {
		var pl project.Place
		var err error
		if canRegister {
			pl, err = project.Register(ctx, sc, "", dir, opts)
		} else {
			pl, err = project.Resolve(ctx, sc, dir)
		}
		if errors.Is(err, project.ErrOutside) {
			return nil, nil, fmt.Errorf("watch: %w; only an admin registers a new project root (coditect project add NAME DIR)", err)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("watch: %s: %w", dir, err)
		}
		r := Root{Project: pl.Project.ID, Dir: pl.Root}
		found = append(found, Watched{Dir: dir, Root: r, Project: pl.Project.Name, Rel: pl.Rel})
		if !seen[r.Dir] {
			seen[r.Dir] = true
			roots = append(roots, r)
		}
	}
	return roots, found, nil
}
