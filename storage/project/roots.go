package project

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
)

// Canonical returns the absolute, clean form of p with the symbolic links
// of its longest existing prefix resolved (the rest does not exist yet):
// the one spelling of a path that roots and Resolve compare.
func Canonical(p string) (string, error) {
	if p == "" {
		return "", invalid("a path is required")
	}
	if strings.HasPrefix(strings.ToLower(p), "file://") {
		p = p[len("file://"):]
		if strings.HasPrefix(p, "localhost/") {
			p = p[len("localhost"):]
		}
	}
	if !filepath.IsAbs(p) {
		return "", invalid("%q is not an absolute path: send the directory's full path, e.g. /home/alice/src/app", textclip.Clip(p, 200))
	}
	p = filepath.Clean(p)
	existing, rest := p, ""
	for {
		real, err := filepath.EvalSymlinks(existing)
		if err == nil {
			if rest != "" {
				real = filepath.Join(real, rest)
			}
			return real, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("project: resolving %q: %w", textclip.Clip(p, 200), err)
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			return p, nil
		}
		rest = filepath.Join(filepath.Base(existing), rest)
		existing = parent
	}
}

// within reports whether p is dir or below it (both canonical).
func within(dir, p string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// forbiddenRoot says why dir (canonical) cannot be a root, "" when it can.
func forbiddenRoot(dir string, protected []string) string {
	if dir == "/" {
		return "the whole file system cannot be a project root"
	}
	for _, sys := range []string{"/proc", "/sys", "/dev"} {
		if within(sys, dir) {
			return "a project root cannot lie inside " + sys
		}
	}
	for _, p := range protected {
		if p != "" && (within(dir, p) || within(p, dir)) {
			return "it holds Coditect's own store or spool"
		}
	}
	return ""
}

// rootEntry is the value of a keyspace.RootEntry.
type rootEntry struct {
	Tenant  string `json:"tenant"`
	Project string `json:"project"`
}

func getEntry(tx kv.ReadTx, machine, dir string) (*rootEntry, error) {
	k, err := keyspace.RootEntry(machine, dir)
	if err != nil {
		return nil, invalid("root: %v", err)
	}
	b, err := tx.Get(k)
	if err != nil || b == nil {
		return nil, err
	}
	var e rootEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("project: root entry %s is corrupt: %w", dir, err)
	}
	return &e, nil
}

// enclosing returns the registered root on machine that is dir or an
// ancestor of it, with its entry; nil when there is none.
func enclosing(tx kv.ReadTx, machine, dir string) (string, *rootEntry, error) {
	for p := dir; ; p = path.Dir(p) {
		e, err := getEntry(tx, machine, p)
		if err != nil || e != nil {
			return p, e, err
		}
		if p == "/" || p == "." {
			return "", nil, nil
		}
	}
}

// RootOptions refine AddRoot.
type RootOptions struct {
	// Machine is where the directory is; Machine() when empty.
	Machine string
	// Protected are paths no root may contain or lie inside (the store's
	// files and its spool).
	Protected []string
}

// AddRoot registers dir as a checkout root of the project ref on a machine
// (admins and the local operator). dir must be an existing directory on
// this machine when opts.Machine is this machine; it is stored canonical.
// Registering a root the project has already is a no-op.
func AddRoot(ctx context.Context, sc *tenant.Scope, ref, dir string, opts RootOptions) (Project, error) {
	if err := CanRegister(sc); err != nil {
		return Project{}, err
	}
	machine, canon, err := checkRoot(sc, dir, opts)
	if err != nil {
		return Project{}, err
	}
	var p Project
	_, err = sc.Store().Update(ctx, func(tx kv.Tx) error {
		var key []byte
		if p, key, err = find(tx, sc, ref); err != nil {
			return err
		}
		return addRoot(tx, sc.Log().Writer(tx), sc, &p, key, machine, canon)
	})
	return p, err
}

// checkRoot validates a root directory and returns its machine and
// canonical path. Besides opts.Protected, the database file of an embedded
// store (one with a Path) is protected: its journals, spool and daemon
// state lie beside it, so a root holding none of the directory's files
// but the database would still be refused.
func checkRoot(sc *tenant.Scope, dir string, opts RootOptions) (string, string, error) {
	machine := opts.Machine
	if machine == "" {
		machine = Machine()
	}
	canon, err := Canonical(dir)
	if err != nil {
		return "", "", err
	}
	if machine == Machine() {
		fi, err := os.Stat(canon)
		switch {
		case err != nil:
			return "", "", invalid("%s: %v: a root is an existing directory on this machine", textclip.Clip(dir, 200), errors.Unwrap(err))
		case !fi.IsDir():
			return "", "", invalid("%s is not a directory", textclip.Clip(dir, 200))
		}
	}
	own := opts.Protected
	if f, ok := sc.Store().(interface{ Path() string }); ok && f.Path() != "" {
		own = append(slices.Clone(own), f.Path())
	}
	protected := make([]string, 0, len(own))
	for _, p := range own {
		if c, err := Canonical(p); err == nil {
			protected = append(protected, c)
		}
	}
	if why := forbiddenRoot(canon, protected); why != "" {
		return "", "", fmt.Errorf("project: %w: %s cannot be registered: %s", tenant.ErrForbidden, textclip.Clip(canon, 200), why)
	}
	return machine, canon, nil
}

// addRoot registers a root and writes its event with w, the transaction's
// one audit writer.
func addRoot(tx kv.Tx, w *audit.Writer, sc *tenant.Scope, p *Project, key []byte, machine, canon string) error {
	at, e, err := enclosing(tx, machine, canon)
	if err != nil {
		return err
	}
	if e != nil {
		if at == canon && e.Tenant == sc.Tenant() && e.Project == p.ID {
			return nil
		}
		return overlap(sc, e, canon, at)
	}
	begin, end, err := keyspace.RootsBelow(machine, strings.TrimSuffix(canon, "/")+"/")
	if err != nil {
		return invalid("root: %v", err)
	}
	below, err := kv.Collect(tx.GetRange(begin, end, kv.RangeOptions{Limit: 1}))
	if err != nil {
		return err
	}
	if len(below) > 0 {
		sub, _ := keyspace.Roots(machine)
		t, _ := sub.Unpack(below[0].Key)
		var inner rootEntry
		_ = json.Unmarshal(below[0].Value, &inner)
		innerPath := ""
		if len(t) == 1 {
			innerPath, _ = t[0].(string)
		}
		return overlap(sc, &inner, canon, innerPath)
	}
	if len(p.Roots) >= MaxRoots {
		return invalid("project %s has %d roots, the most it may have: remove one first", p.Name, MaxRoots)
	}
	p.Roots = append(p.Roots, Root{Machine: machine, Path: canon, Added: time.Now().UTC(), AddedBy: sc.Principal().User})
	if err := put(tx, key, *p); err != nil {
		return err
	}
	ek, err := keyspace.RootEntry(machine, canon)
	if err != nil {
		return invalid("root: %v", err)
	}
	b, _ := json.Marshal(rootEntry{Tenant: sc.Tenant(), Project: p.ID})
	tx.Set(ek, b)
	ev := sc.Event("project.root_added", fmt.Sprintf("%s: root %s on %s", p.Name, canon, machine))
	ev.Project = p.ID
	ev.Attrs = map[string]any{"machine": machine, "root": canon}
	_, err = w.Append(ev)
	return err
}

// overlap is the error of a root that would overlap the registered root
// at; it names the other project only when it is the caller's tenant's.
func overlap(sc *tenant.Scope, e *rootEntry, canon, at string) error {
	if e.Tenant != sc.Tenant() {
		// Neither the other root nor the canonical path (which may show
		// where a symbolic link leads) is told.
		return fmt.Errorf("project: %w: the directory overlaps a directory registered by another tenant", ErrOverlap)
	}
	return fmt.Errorf("project: %w: %s overlaps %s, a root of project %s: roots may not contain one another", ErrOverlap, textclip.Clip(canon, 200), textclip.Clip(at, 200), e.Project)
}

// RemoveRoot unregisters a root of the project ref on machine (Machine()
// when empty).
func RemoveRoot(ctx context.Context, sc *tenant.Scope, ref, machine, dir string) (Project, error) {
	if err := CanRegister(sc); err != nil {
		return Project{}, err
	}
	if machine == "" {
		machine = Machine()
	}
	canon, err := Canonical(dir)
	if err != nil {
		return Project{}, err
	}
	var p Project
	_, err = sc.Store().Update(ctx, func(tx kv.Tx) error {
		var key []byte
		if p, key, err = find(tx, sc, ref); err != nil {
			return err
		}
		i := -1
		for j, r := range p.Roots {
			if r.Machine == machine && (r.Path == canon || r.Path == filepath.Clean(dir)) {
				i = j
			}
		}
		if i < 0 {
			return fmt.Errorf("project: %w: project %s has no root %s on %s", ErrNotFound, p.Name, textclip.Clip(canon, 200), machine)
		}
		r := p.Roots[i]
		p.Roots = append(p.Roots[:i], p.Roots[i+1:]...)
		if err := put(tx, key, p); err != nil {
			return err
		}
		if ek, err := keyspace.RootEntry(r.Machine, r.Path); err == nil {
			tx.Clear(ek)
		}
		ev := sc.Event("project.root_removed", fmt.Sprintf("%s: root %s on %s removed", p.Name, r.Path, machine))
		ev.Project = p.ID
		ev.Attrs = map[string]any{"machine": machine, "root": r.Path}
		_, err = sc.Log().Writer(tx).Append(ev)
		return err
	})
	return p, err
}

// Register finds or creates the project of dir on this machine, for the
// callers that may register (CanRegister): a directory inside a root of
// the tenant's belongs to that root's project; otherwise dir becomes a
// root of the project named name (created when missing; dir's base name
// when name is empty).
func Register(ctx context.Context, sc *tenant.Scope, name, dir string, opts RootOptions) (Place, error) {
	if pl, err := Resolve(ctx, sc, dir); err == nil {
		return pl, nil
	} else if !errors.Is(err, ErrOutside) {
		return Place{}, err
	}
	if err := CanRegister(sc); err != nil {
		return Place{}, err
	}
	opts.Machine = Machine()
	machine, canon, err := checkRoot(sc, dir, opts)
	if err != nil {
		return Place{}, err
	}
	if name == "" {
		name = filepath.Base(canon)
	}
	if err := checkName(name); err != nil {
		return Place{}, err
	}
	var p Project
	_, err = sc.Store().Update(ctx, func(tx kv.Tx) error {
		var key []byte
		w := sc.Log().Writer(tx)
		p, key, err = find(tx, sc, name)
		if errors.Is(err, ErrNotFound) {
			if p, err = create(tx, w, sc, Spec{Name: name}); err != nil {
				return err
			}
			key, _ = sc.Space().Project(p.ID)
		}
		if err != nil {
			return err
		}
		return addRoot(tx, w, sc, &p, key, machine, canon)
	})
	if err != nil {
		return Place{}, err
	}
	return Place{Project: p, Root: canon, Rel: "."}, nil
}

// Place is a path resolved into a project: the project, the root on this
// machine it lies in, and the path relative to that root ('/'-separated,
// "." for the root itself).
type Place struct {
	Project Project
	Root    string
	Rel     string
}

// Abs returns the place's path on this machine.
func (pl Place) Abs() string { return filepath.Join(pl.Root, filepath.FromSlash(pl.Rel)) }

// File returns the place's file key.
func (pl Place) File() File { return File{Project: pl.Project.ID, Rel: pl.Rel} }

// Resolve resolves a path on this machine into the scope's tenant's project
// whose root holds it. A path in no root of the tenant's (outside every
// root, or in another tenant's) is ErrOutside, with the tenant's projects
// named in the error.
func Resolve(ctx context.Context, sc *tenant.Scope, p string) (Place, error) {
	canon, err := Canonical(p)
	if err != nil {
		return Place{}, err
	}
	var pl Place
	err = sc.Store().View(ctx, func(tx kv.ReadTx) error {
		pl, err = ResolveTx(tx, sc, Machine(), canon)
		return err
	})
	return pl, err
}

// ResolveTx resolves a canonical path on machine in tx (see Resolve).
func ResolveTx(tx kv.ReadTx, sc *tenant.Scope, machine, canon string) (Place, error) {
	at, e, err := enclosing(tx, machine, canon)
	if err != nil {
		return Place{}, err
	}
	if e == nil || e.Tenant != sc.Tenant() {
		return Place{}, outside(tx, sc, machine, canon)
	}
	p, _, err := load(tx, sc, e.Project)
	if err != nil {
		return Place{}, err
	}
	rel, err := filepath.Rel(at, canon)
	if err != nil {
		return Place{}, err
	}
	return Place{Project: p, Root: at, Rel: filepath.ToSlash(rel)}, nil
}

// outside is the error of a path in no root of the tenant's on machine.
func outside(tx kv.ReadTx, sc *tenant.Scope, machine, canon string) error {
	ps, err := list(tx, sc)
	if err != nil {
		return err
	}
	return fmt.Errorf("project: %w: %s is in no project of tenant %q on this machine (%s); %s", ErrOutside, textclip.Clip(canon, 200), sc.Tenant(), machine, Describe(ps, machine))
}

// Describe names projects and their roots on machine for an error
// message: what the caller may use instead.
func Describe(ps []Project, machine string) string {
	if len(ps) == 0 {
		return "the tenant has no projects yet: an admin registers one with `coditect project add NAME DIR`"
	}
	var parts []string
	for i, p := range ps {
		if i == 10 {
			parts = append(parts, fmt.Sprintf("and %d more", len(ps)-i))
			break
		}
		roots := p.RootsOn(machine)
		if len(roots) == 0 {
			parts = append(parts, p.Name+" (no root on this machine)")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", p.Name, strings.Join(roots, ", ")))
	}
	return "its projects: " + strings.Join(parts, "; ")
}
