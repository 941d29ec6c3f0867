package session

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
)

// Sessions started before projects existed have a workspace (an absolute
// path on the machine they were started on) and no Project. They stay
// readable and listable as they are; what needs a project (the files
// tools, file leases) refuses them until AssignProjects gives them one,
// which `coditect store verify --repair` runs for every tenant.
//
// AssignProjects places each workspace, shortest path first (so that a
// workspace inside another lands in the outer one's project):
//
//  1. a workspace in a root of the tenant's on this machine belongs to that
//     root's project, at its path relative to the root;
//  2. an existing directory on this machine is registered as a root, as the
//     local operator's first session there would (project.Register: the
//     project named after the directory, created when missing);
//  3. a workspace that is not here (deleted, or on another machine of a
//     shared store), or that cannot be a root (it overlaps a registered
//     root, maybe another tenant's, or is "/"), lies in no root: it belongs to the project
//     of an enclosing workspace placed by this rule, or else to the
//     project named after its last path element (created without roots
//     when missing). Its sessions keep their recorded workspace; an admin
//     adds the project's root where the code is (coditect project add), and
//     a local operator's session in that directory joins the project by its
//     name.
//
// A project name says which code base a session worked on, so workspaces of
// one name on different machines are one project: that is what lets old
// sessions of a team on a shared store meet again.
//
// The repair writes no event for a session it places (a session's events
// say what its participants did); the projects and roots it creates write
// theirs. Running it again changes nothing: placed sessions are skipped.

// Unplaced counts the tenant's sessions without a project: sessions
// started before projects existed.
func Unplaced(ctx context.Context, sc *tenant.Scope) (int, error) {
	n := 0
	err := scanSessions(ctx, sc, func(s Session) {
		if s.Project == "" {
			n++
		}
	})
	return n, err
}

// Assignment is what AssignProjects did.
type Assignment struct {
	// Sessions is how many sessions had no project; Assigned how many of
	// them got one.
	Sessions int `json:"sessions"`
	Assigned int `json:"assigned"`
	// Places says where each workspace went, in the order placed.
	Places []Placement `json:"places,omitempty"`
}

// Placement is where the sessions of one workspace went.
type Placement struct {
	Workspace string `json:"workspace"`
	Project   string `json:"project"` // its name
	Dir       string `json:"dir"`
	Sessions  int    `json:"sessions"`
	// Registered is set when the workspace became a root on this machine.
	Registered bool `json:"registered,omitempty"`
	// NoRoot says why the workspace has no root on this machine, when it
	// has none.
	NoRoot string `json:"no_root,omitempty"`
}

func (p Placement) String() string {
	n := fmt.Sprintf("%d sessions", p.Sessions)
	if p.Sessions == 1 {
		n = "1 session"
	}
	s := fmt.Sprintf("%s in %s → project %s", n, p.Workspace, where(p.Project, p.Dir))
	switch {
	case p.Registered:
		s += " (registered as a root on this machine)"
	case p.NoRoot != "":
		s += " (no root on this machine: " + p.NoRoot + ")"
	}
	return s
}

// assignBatch is how many sessions one transaction of AssignProjects
// updates.
const assignBatch = 100

// AssignProjects gives every session of the tenant that has none a project
// (see above); opts.Protected are the paths no root may hold (the store's
// files and spool). It needs a scope that may register projects
// (project.CanRegister): an admin's, or the operator's
// (tenant.Directory.Operator).
func AssignProjects(ctx context.Context, sc *tenant.Scope, opts project.RootOptions) (Assignment, error) {
	var a Assignment
	if err := project.CanRegister(sc); err != nil {
		return a, err
	}
	byWS := map[string][]string{}
	if err := scanSessions(ctx, sc, func(s Session) {
		if s.Project == "" {
			byWS[s.Workspace] = append(byWS[s.Workspace], s.ID)
		}
	}); err != nil {
		return a, err
	}
	wss := make([]string, 0, len(byWS))
	for ws, ids := range byWS {
		wss = append(wss, ws)
		a.Sessions += len(ids)
	}
	slices.SortFunc(wss, func(x, y string) int { return cmp.Or(cmp.Compare(len(x), len(y)), cmp.Compare(x, y)) })
	var rootless []Placement // placed by rule 3, for the workspaces inside them
	for _, ws := range wss {
		pl, p, err := placeOld(ctx, sc, ws, opts, rootless)
		if err != nil {
			return a, fmt.Errorf("session: placing the sessions of %s: %w", textclip.Clip(ws, 200), err)
		}
		n, err := assign(ctx, sc, byWS[ws], p, pl)
		if err != nil {
			return a, err
		}
		pl.Sessions = n
		a.Assigned += n
		a.Places = append(a.Places, pl)
		if pl.NoRoot != "" {
			rootless = append(rootless, pl)
		}
	}
	return a, nil
}

// placeOld finds the project of an old workspace; the placement's
// Workspace is the one its sessions get.
func placeOld(ctx context.Context, sc *tenant.Scope, ws string, opts project.RootOptions, rootless []Placement) (Placement, project.Project, error) {
	if in, err := project.Resolve(ctx, sc, ws); err == nil {
		return Placement{Workspace: in.Abs(), Project: in.Project.Name, Dir: in.Rel}, in.Project, nil
	}
	why := "the directory is not on this machine"
	if fi, err := os.Stat(ws); err == nil && fi.IsDir() {
		in, err := project.Register(ctx, sc, "", ws, opts)
		if err == nil {
			return Placement{Workspace: in.Abs(), Project: in.Project.Name, Dir: in.Rel, Registered: true}, in.Project, nil
		}
		if !errors.Is(err, project.ErrOverlap) && !errors.Is(err, project.ErrInvalid) && !errors.Is(err, tenant.ErrForbidden) {
			return Placement{}, project.Project{}, err
		}
		why = err.Error()
	}
	for i := len(rootless) - 1; i >= 0; i-- {
		outer := rootless[i]
		if rel, ok := below(outer.Workspace, ws); ok {
			p, err := project.Get(ctx, sc, outer.Project)
			if err != nil {
				return Placement{}, project.Project{}, err
			}
			return Placement{Workspace: ws, Project: p.Name, Dir: path.Join(outer.Dir, rel), NoRoot: why}, p, nil
		}
	}
	p, err := findOrCreate(ctx, sc, oldProjectName(ws))
	if errors.Is(err, project.ErrInvalid) {
		p, err = findOrCreate(ctx, sc, "workspace")
	}
	if err != nil {
		return Placement{}, project.Project{}, err
	}
	return Placement{Workspace: ws, Project: p.Name, Dir: ".", NoRoot: why}, p, nil
}

func findOrCreate(ctx context.Context, sc *tenant.Scope, name string) (project.Project, error) {
	p, err := project.Get(ctx, sc, name)
	if errors.Is(err, project.ErrNotFound) {
		p, err = project.Create(ctx, sc, project.Spec{Name: name})
	}
	return p, err
}

// below returns the path of p relative to dir ('/'-separated) when p is
// inside dir; both are recorded workspaces, Unix or Windows paths.
func below(dir, p string) (string, bool) {
	for _, sep := range []string{"/", `\`} {
		prefix := strings.TrimSuffix(dir, sep) + sep
		if strings.HasPrefix(p, prefix) {
			return strings.ReplaceAll(p[len(prefix):], `\`, "/"), true
		}
	}
	return "", false
}

// oldProjectName names the project of a workspace that has no root here:
// its last path element, Unix or Windows ("workspace" for a root or a
// drive, and when that is no valid project name).
func oldProjectName(ws string) string {
	parts := strings.FieldsFunc(ws, func(r rune) bool { return r == '/' || r == '\\' })
	if n := len(parts); n > 0 && !strings.HasSuffix(parts[n-1], ":") && strings.TrimSpace(parts[n-1]) == parts[n-1] {
		return parts[n-1]
	}
	return "workspace"
}

// assign sets the project of the sessions ids that still have none, in
// transactions of assignBatch, and returns how many it set.
func assign(ctx context.Context, sc *tenant.Scope, ids []string, p project.Project, pl Placement) (int, error) {
	n := 0
	for batch := range slices.Chunk(ids, assignBatch) {
		var done int
		_, err := sc.Store().Update(ctx, func(tx kv.Tx) error {
			done = 0
			for _, id := range batch {
				s, key, err := load(tx, sc, id)
				if errors.Is(err, ErrNotFound) {
					continue // removed meanwhile
				}
				if err != nil {
					return err
				}
				if s.Project != "" {
					continue // placed meanwhile
				}
				if s.Workspace != pl.Workspace {
					if err := indexEntry(tx, sc, keyspace.SessionByWorkspace, s.Workspace, id, false); err != nil {
						return err
					}
					if err := indexEntry(tx, sc, keyspace.SessionByWorkspace, pl.Workspace, id, true); err != nil {
						return err
					}
				}
				s.Project, s.Dir, s.Workspace = p.ID, pl.Dir, pl.Workspace
				if err := indexEntry(tx, sc, keyspace.SessionByProject, p.ID, id, true); err != nil {
					return err
				}
				if err := put(tx, key, s); err != nil {
					return err
				}
				done++
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("session: assigning project %s: %w", p.Name, err)
		}
		n += done
	}
	return n, nil
}

// scanBatch is how many session records one transaction of scanSessions
// reads.
const scanBatch = 500

// scanSessions calls fn for every session record of the tenant, in
// transactions of scanBatch records.
func scanSessions(ctx context.Context, sc *tenant.Scope, fn func(Session)) error {
	begin, end := sc.Space().Sessions().Range()
	for {
		var kvs []kv.KeyValue
		if err := sc.Store().View(ctx, func(tx kv.ReadTx) error {
			var err error
			kvs, err = kv.Collect(tx.GetRange(begin, end, kv.RangeOptions{Limit: scanBatch}))
			return err
		}); err != nil {
			return err
		}
		for _, e := range kvs {
			s, err := decode(e.Value)
			if err != nil {
				return fmt.Errorf("session: a record is corrupt (%s): %w", kv.DisplayKey(e.Key), err)
			}
			fn(s)
		}
		if len(kvs) < scanBatch {
			return nil
		}
		begin = kv.KeyAfter(kvs[len(kvs)-1].Key)
	}
}
