package ide

import (
	"context"
	"errors"
	"path"
	"strings"

	"github.com/coditect/coditect/storage/project"
)

// Projects. Everything the server records about a document is keyed by
// the file's project and its path relative to the project root
// (project.File): unsaved-edit marks, IDE saves (with the editor's
// session), ide.* events (Project and a relative Path; the absolute path
// in attrs["abs"]). The server resolves each document's path once, when
// it is opened, with the scope's tenant's roots on this machine; the
// workspace folders too, and for the trusted local operator (an embedded
// store: the OS user owns the files) a folder in no project becomes a
// project's root, as `coditect mcp` does with a session's workspace.
//
// A document outside every project of the tenant is tracked for the
// editor but nothing is recorded about it: no mark (the files tools
// cannot reach it, so a mark would protect nothing), no save evidence
// (the watcher does not watch it, so it would explain no event), no
// event. Keying it by its absolute path instead would give a file a
// second, machine-bound key and put paths outside the tenant's projects,
// another tenant's included, in its audit log. Hover shows nothing for
// it and the code lens says it is not tracked.

// folder is a workspace folder of the editor: its real path and, when it
// lies in a project of the tenant's, the project and the folder's path
// relative to the project root.
type folder struct {
	path    string
	project string
	rel     string
}

// holds reports whether the project file (id, rel) is in the folder.
func (f folder) holds(id, rel string) bool {
	if f.project == "" || id != f.project {
		return false
	}
	return f.rel == "." || rel == f.rel || strings.HasPrefix(rel, f.rel+"/")
}

// place resolves an absolute path into the tenant's project whose root
// holds it; ok is false when none does.
func (s *server) place(ctx context.Context, abs string) (project.File, bool, error) {
	pl, err := project.Resolve(ctx, s.sc, abs)
	if errors.Is(err, project.ErrOutside) || errors.Is(err, project.ErrInvalid) {
		return project.File{}, false, nil
	}
	if err != nil {
		return project.File{}, false, err
	}
	return pl.File(), true, nil
}

// folders resolves workspace folders into projects, registering a folder
// in none as a project's root when the principal is the local operator.
func (s *server) folders(ctx context.Context, paths []string) []folder {
	out := make([]folder, 0, len(paths))
	for _, p := range paths {
		f := folder{path: p}
		pl, err := project.Resolve(ctx, s.sc, p)
		if errors.Is(err, project.ErrOutside) && s.sc.Principal().Local {
			pl, err = project.Register(ctx, s.sc, "", p, project.RootOptions{Protected: s.opts.Protected})
		}
		switch {
		case err != nil:
			s.log.Warn("a workspace folder is in no project: its files are not tracked", "folder", p, "error", err)
		default:
			f.project, f.rel = pl.Project.ID, pl.Rel
			s.log.Info("workspace folder", "folder", p, "project", pl.Project.Name, "id", pl.Project.ID, "root", pl.Root)
		}
		out = append(out, f)
	}
	return out
}

// eventFile returns the project file an event is about: its project and
// path, or a path that is a project file's key (a lease's resource).
func eventFile(projectID, p string) (project.File, bool) {
	if p == "" {
		return project.File{}, false
	}
	if projectID != "" {
		return project.File{Project: projectID, Rel: path.Clean(p)}, true
	}
	return project.ParseFile(p)
}
