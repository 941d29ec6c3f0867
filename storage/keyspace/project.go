package keyspace

import "github.com/coditect/coditect/storage/kv"

// Keys of projects (storage/project): a tenant's code bases and their
// checkout roots, one or more per machine.
//
//	("coditect", "t", tenant, "project", project)                 project record (name, remote, roots)
//	("coditect", "t", tenant, "project_by_name", name) -> project  name index
//	("coditect", "idx", "root", machine, path) -> (tenant, project) every registered root of every tenant
//
// The root index is global so that no two roots on one machine overlap,
// whichever tenants own them: a path lies in at most one root, and a
// tenant's files tools can never reach a directory registered by another.
// Its values name a tenant; only storage/project reads them, and it never
// shows another tenant's entry to a caller.

// Element names are part of the on-disk format: never rename one.
const (
	elProject       = "project"
	elProjectByName = "project_by_name"
	elRoot          = "root"
)

// Projects is ("project"): every project record.
func (t TenantSpace) Projects() Subspace { return t.space().sub(elProject) }

// Project is ("project", id): a project's record.
func (t TenantSpace) Project(id string) ([]byte, error) {
	if err := checkID("project", id, MaxIDSize); err != nil {
		return nil, err
	}
	return t.space().strings(elProject, id), nil
}

// ProjectByName is ("project_by_name", name), whose value is the id of the
// tenant's project with that name.
func (t TenantSpace) ProjectByName(name string) ([]byte, error) {
	if err := checkID("project name", name, MaxIDSize); err != nil {
		return nil, err
	}
	return t.space().strings(elProjectByName, name), nil
}

// Roots is ("coditect", "idx", "root", machine): the registered roots of
// every tenant on one machine, by path.
func Roots(machine string) (Subspace, error) {
	if err := checkID("machine", machine, MaxIDSize); err != nil {
		return Subspace{}, err
	}
	return Root().sub(elIndex, elRoot, machine), nil
}

// AllRoots is ("coditect", "idx", "root"): the registered roots of every
// tenant on every machine (a tenant's copy takes its entries along).
func AllRoots() Subspace { return Root().sub(elIndex, elRoot) }

// RootEntry is ("coditect", "idx", "root", machine, path): the tenant and
// project that registered the directory path (absolute, clean, symbolic
// links resolved) on machine.
func RootEntry(machine, path string) ([]byte, error) {
	sub, err := Roots(machine)
	if err != nil {
		return nil, err
	}
	if err := checkID("root path", path, MaxResourceSize); err != nil {
		return nil, err
	}
	return sub.strings(path), nil
}

// RootsBelow returns the bounds [begin, end) of the RootEntry keys of
// machine whose path starts with prefix: the roots inside a directory when
// prefix is that directory and a trailing '/'.
func RootsBelow(machine, prefix string) (begin, end []byte, err error) {
	sub, err := Roots(machine)
	if err != nil {
		return nil, nil, err
	}
	if err := checkID("root path prefix", prefix, MaxResourceSize); err != nil {
		return nil, nil, err
	}
	k := sub.strings(prefix)
	begin, end = kv.PrefixRange(k[:len(k)-1]) // without the string's terminating 0x00
	return begin, end, nil
}

// ProjectPath is the one string form of a path of a project,
// "@<project>/<rel>" ("@<project>" for the root, rel "" or "."): the
// resource of a file's lease and attribution records and the value of the
// audit log's path index for an event about a project's file, so that one
// file has one key on every machine. No path relative to a project root
// starts with "@<project id>/", since a project id has no '/'.
func ProjectPath(project, rel string) string {
	if rel == "" || rel == "." {
		return "@" + project
	}
	return "@" + project + "/" + rel
}
