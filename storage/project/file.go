package project

import (
	"path"
	"strings"

	"github.com/coditect/coditect/storage/keyspace"
)

// File names a file (or directory, or glob) of a project: the project id
// and the path relative to the project root, '/'-separated and clean. It
// is the same on every machine and under every spelling of the path, so
// it is the key of everything about the file.
type File struct {
	Project string
	Rel     string
}

// filePrefix starts keyspace.ProjectPath's strings.
const filePrefix = "@"

// String returns the file as one resource string, "@<project>/<rel>" (or
// "@<project>" for the root): the lease resource of the file, and the
// value of the audit log's path index for events about it. Globs in Rel
// stay globs, confined to the project.
func (f File) String() string { return keyspace.ProjectPath(f.Project, f.Rel) }

// ParseFile splits a resource made by File.String; ok is false for any
// other resource (a key such as "task:…", a path of no project).
func ParseFile(s string) (File, bool) {
	if !strings.HasPrefix(s, filePrefix) {
		return File{}, false
	}
	id, rel, found := strings.Cut(s[len(filePrefix):], "/")
	if !isID(id) {
		return File{}, false
	}
	if !found {
		rel = "."
	}
	if rel != "." && (path.Clean(rel) != rel || rel == ".." || strings.HasPrefix(rel, "../")) {
		return File{}, false
	}
	return File{Project: id, Rel: rel}, true
}
