// Package project owns projects: the code bases a tenant works on. A
// project has an id, a name unique in its tenant, optionally its git
// remote, and its checkout roots: directories on machines, one or more per
// machine (a team on a shared FoundationDB store has the same repository at
// different paths on different laptops).
//
// Everything about code is keyed by project and by the path relative to
// the project root (File): leases, file events, attribution evidence,
// unsaved-edit marks, tasks. Resolve turns a path on this machine into
// that pair after resolving symbolic links and "..", so a subdirectory used
// as a workspace, a symlinked alias of the root and a second checkout of
// the same project all name one file with one key.
//
// Rules kept here, in one place:
//   - only an admin, or the trusted local operator of an embedded store
//     (tenant.Principal.Local: the OS user already owns the files), creates
//     projects and registers roots (CanRegister);
//   - a root is an existing directory, never "/" nor inside /proc, /sys or
//     /dev, and never overlaps (contains or lies inside) another root
//     registered on the same machine by any tenant: a path lies in at most
//     one root, so no tenant's files tools reach another's files;
//   - a caller sees only its tenant's projects; a path inside another
//     tenant's root resolves exactly as a path outside every root does.
//
// Every mutation is one transaction with its audit event (project.created,
// project.root_added, project.root_removed, project.removed).
//
// This package imports storage/kv, storage/keyspace, storage/audit,
// storage/tenant and storage/agent (ids, text checks); it must not import
// another domain layer or a transport.
package project

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/errclass"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
)

// Root is one checkout of a project: a directory on a machine.
type Root struct {
	Machine string    `json:"machine"`
	Path    string    `json:"path"`
	Added   time.Time `json:"added"`
	AddedBy string    `json:"added_by,omitempty"`
}

// Project is a project's record.
type Project struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Remote    string    `json:"remote,omitempty"`
	Roots     []Root    `json:"roots"`
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// RootsOn returns the project's roots on machine.
func (p Project) RootsOn(machine string) []string {
	var out []string
	for _, r := range p.Roots {
		if r.Machine == machine {
			out = append(out, r.Path)
		}
	}
	return out
}

// Limits.
const (
	MaxName   = 100
	MaxRemote = 1000
	// MaxRoots is the most roots one project keeps, over all machines.
	MaxRoots = 64
	// MaxProjects is the most projects List returns.
	MaxProjects = 1000
)

// Errors, wrapped with detail; match them with errors.Is. Permission
// errors wrap tenant.ErrForbidden.
var (
	// ErrInvalid: a name, path or id is missing or malformed.
	ErrInvalid = errclass.New(errclass.Invalid, "invalid project input")
	// ErrNotFound: no such project in the caller's tenant.
	ErrNotFound = errclass.New(errclass.NotFound, "project not found")
	// ErrExists: a project of that name exists already.
	ErrExists = errclass.New(errclass.Conflict, "project exists")
	// ErrOverlap: a root would contain, or lie inside, a registered root.
	ErrOverlap = errclass.New(errclass.Conflict, "root overlaps a registered root")
	// ErrOutside: a path lies in no root of the caller's projects on this
	// machine.
	ErrOutside = errclass.New(errclass.Forbidden, "path outside the caller's projects")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("project: %w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Machine names the machine this process runs on, as roots record it:
// $CODITECT_MACHINE when set, else the host name followed by the first 8
// characters of /etc/machine-id (host names repeat across a team, and a
// container's host name is its pod's).
func Machine() string {
	if m := strings.TrimSpace(os.Getenv("CODITECT_MACHINE")); m != "" {
		return m
	}
	return hostMachine()
}

// hostMachine is the host's name and id, read once: they do not change
// while the process runs, and every files tool call needs them.
var hostMachine = sync.OnceValue(func() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	if b, err := os.ReadFile("/etc/machine-id"); err == nil {
		if id := strings.TrimSpace(string(b)); len(id) >= 8 {
			return host + "-" + id[:8]
		}
	}
	return host
})

// CanRegister reports whether the principal may create projects and
// register roots: an admin, or the trusted local operator.
func CanRegister(sc *tenant.Scope) error {
	if sc.Principal().Local {
		return sc.CanWrite()
	}
	if err := sc.RequireAdmin(); err != nil {
		return fmt.Errorf("%w: only an admin registers projects and their roots (coditect project add NAME DIR)", err)
	}
	return nil
}

// checkName validates a project name: one line, no '/', not empty.
func checkName(name string) error {
	if err := agent.CheckText("project name", name, MaxName, true); err != nil {
		return invalid("%v: name the project in one short line, e.g. \"webapp\"", err)
	}
	if strings.TrimSpace(name) != name || strings.ContainsAny(name, "/\\") {
		return invalid("project name %q has outer spaces or a '/' or '\\': use a plain name such as \"webapp\"", name)
	}
	return nil
}

// isID reports whether s has the form of a project id.
func isID(s string) bool { return strings.HasPrefix(s, "pr_") && len(s) == 29 }

func load(tx kv.ReadTx, sc *tenant.Scope, id string) (Project, []byte, error) {
	key, err := sc.Space().Project(id)
	if err != nil {
		return Project{}, nil, invalid("project id: %v", err)
	}
	b, err := tx.Get(key)
	if err != nil {
		return Project{}, key, err
	}
	if b == nil {
		return Project{}, key, notFound(sc, id)
	}
	var p Project
	if err := json.Unmarshal(b, &p); err != nil {
		return p, key, fmt.Errorf("project: record %s is corrupt: %w", id, err)
	}
	return p, key, nil
}

func notFound(sc *tenant.Scope, ref string) error {
	return fmt.Errorf("project: %w: no project %q in tenant %q: list the projects to find its name", ErrNotFound, textclip.Clip(ref, 120), sc.Tenant())
}

// find loads a project by id or name.
func find(tx kv.ReadTx, sc *tenant.Scope, ref string) (Project, []byte, error) {
	if ref == "" {
		return Project{}, nil, invalid("a project is required: send its name or id")
	}
	if isID(ref) {
		p, key, err := load(tx, sc, ref)
		if !errors.Is(err, ErrNotFound) {
			return p, key, err
		}
	}
	nk, err := sc.Space().ProjectByName(ref)
	if err != nil {
		return Project{}, nil, invalid("project name: %v", err)
	}
	id, err := tx.Get(nk)
	if err != nil {
		return Project{}, nil, err
	}
	if id == nil {
		return Project{}, nil, notFound(sc, ref)
	}
	return load(tx, sc, string(id))
}

func put(tx kv.Tx, key []byte, p Project) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := kv.CheckValue("project record", key, b); err != nil {
		return err
	}
	tx.Set(key, b)
	return nil
}

// Get returns a project of the scope's tenant by id or name.
func Get(ctx context.Context, sc *tenant.Scope, ref string) (Project, error) {
	var p Project
	err := sc.Store().View(ctx, func(tx kv.ReadTx) error {
		var err error
		p, _, err = find(tx, sc, ref)
		return err
	})
	return p, err
}

// List returns the scope's tenant's projects, by name.
func List(ctx context.Context, sc *tenant.Scope) ([]Project, error) {
	var out []Project
	err := sc.Store().View(ctx, func(tx kv.ReadTx) error {
		var err error
		out, err = list(tx, sc)
		return err
	})
	return out, err
}

// ListTx is List inside a transaction of the caller, so that a caller that
// reads other records too (whoami reads its agent's) needs one transaction.
func ListTx(tx kv.ReadTx, sc *tenant.Scope) ([]Project, error) { return list(tx, sc) }

func list(tx kv.ReadTx, sc *tenant.Scope) ([]Project, error) {
	begin, end := sc.Space().Projects().Range()
	kvs, err := kv.Collect(tx.GetRange(begin, end, kv.RangeOptions{Limit: MaxProjects}))
	if err != nil {
		return nil, err
	}
	out := make([]Project, 0, len(kvs))
	for _, e := range kvs {
		var p Project
		if err := json.Unmarshal(e.Value, &p); err != nil {
			return nil, fmt.Errorf("project: a record is corrupt: %w", err)
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Project) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// Spec describes a new project.
type Spec struct {
	Name   string
	Remote string
}

// Create creates a project without roots (admins and the local operator).
func Create(ctx context.Context, sc *tenant.Scope, s Spec) (Project, error) {
	if err := CanRegister(sc); err != nil {
		return Project{}, err
	}
	if err := checkName(s.Name); err != nil {
		return Project{}, err
	}
	if err := agent.CheckText("remote", s.Remote, MaxRemote, false); err != nil {
		return Project{}, invalid("%v", err)
	}
	var p Project
	_, err := sc.Store().Update(ctx, func(tx kv.Tx) error {
		var err error
		p, err = create(tx, sc.Log().Writer(tx), sc, s)
		return err
	})
	return p, err
}

// create writes a new project and its event with w, the transaction's
// one audit writer (two writers in one transaction would give their
// events the same id).
func create(tx kv.Tx, w *audit.Writer, sc *tenant.Scope, s Spec) (Project, error) {
	nk, err := sc.Space().ProjectByName(s.Name)
	if err != nil {
		return Project{}, invalid("project name: %v", err)
	}
	if b, err := tx.Get(nk); err != nil {
		return Project{}, err
	} else if b != nil {
		return Project{}, fmt.Errorf("project: %w: %q exists already (id %s)", ErrExists, s.Name, b)
	}
	p := Project{ID: agent.NewID("pr"), Name: s.Name, Remote: s.Remote, Roots: []Root{}, Created: time.Now().UTC(), CreatedBy: sc.Principal().User}
	key, _ := sc.Space().Project(p.ID)
	if err := put(tx, key, p); err != nil {
		return Project{}, err
	}
	tx.Set(nk, []byte(p.ID))
	ev := sc.Event("project.created", fmt.Sprintf("project %s created", p.Name))
	ev.Project = p.ID
	ev.Attrs = map[string]any{"name": p.Name}
	if p.Remote != "" {
		ev.Attrs["remote"] = p.Remote
	}
	_, err = w.Append(ev)
	return p, err
}

// Remove deletes a project and its roots (admins and the local operator).
// Events, tasks and other records that name it stay.
func Remove(ctx context.Context, sc *tenant.Scope, ref string) (Project, error) {
	if err := CanRegister(sc); err != nil {
		return Project{}, err
	}
	var p Project
	_, err := sc.Store().Update(ctx, func(tx kv.Tx) error {
		var key []byte
		var err error
		if p, key, err = find(tx, sc, ref); err != nil {
			return err
		}
		for _, r := range p.Roots {
			if k, err := keyspace.RootEntry(r.Machine, r.Path); err == nil {
				tx.Clear(k)
			}
		}
		tx.Clear(key)
		nk, _ := sc.Space().ProjectByName(p.Name)
		tx.Clear(nk)
		ev := sc.Event("project.removed", fmt.Sprintf("project %s removed", p.Name))
		ev.Project = p.ID
		ev.Attrs = map[string]any{"name": p.Name, "roots": len(p.Roots)}
		_, err = sc.Log().Writer(tx).Append(ev)
		return err
	})
	return p, err
}
