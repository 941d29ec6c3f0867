package gitignore

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// Defaults are the patterns a workspace's users almost never want to see:
// version-control metadata, dependency trees, build output, caches and
// editors' swap and backup files. Passed as Options.Defaults, they rank
// below every .gitignore, so a repository can re-include one with a
// negation.
var Defaults = []string{
	".hg/", ".svn/", ".jj/", ".bzr/",
	"node_modules/", "bower_components/", ".pnpm-store/", ".yarn/cache/",
	"__pycache__/", "*.py[co]", ".venv/", ".tox/", ".nox/", ".mypy_cache/", ".pytest_cache/", ".ruff_cache/",
	".gradle/", ".next/", ".nuxt/", ".svelte-kit/", ".turbo/", ".parcel-cache/", ".angular/", ".terraform/",
	"/target/", "/dist/", "/build/", "/out/", "/coverage/", ".cache/", ".idea/",
	"*.swp", "*.swo", "*.swx", "*~", ".#*", "#*#", "4913", ".DS_Store", "Thumbs.db",
}

// maxIgnoreFile bounds what is read of one ignore file; lines past it are
// not read (git reads on, but no real ignore file comes near it).
const maxIgnoreFile = 4 << 20

// Options say which rules besides the repository's apply.
type Options struct {
	// Patterns are the caller's own gitignore lines, relative to the
	// root; they outrank every .gitignore.
	Patterns []string
	// Defaults are gitignore lines ranked below every ignore file
	// (usually the package's Defaults).
	Defaults []string
	// Paths are absolute paths always ignored, with everything below them
	// (Coditect's own store and spool, an events file).
	Paths []string
	// Top, when set, is the highest directory the rules consult: the
	// repository's top level is looked for from the root up to Top only,
	// and ignore files are read through an os.Root of Top, so a symbolic
	// link cannot make them read a file outside it.
	Top string
}

// Rules decide which paths of one directory tree (the root) are ignored.
// The match base is the enclosing git repository's top level when the
// root is inside one (so that its .gitignore files above the root apply),
// the root otherwise. Paths are relative to the root, '/'-separated, ""
// for the root itself. Not safe for concurrent use.
type Rules struct {
	base   string // absolute match base
	prefix string // the root relative to base, "" when equal
	top    string // Options.Top
	user   []pattern
	files  map[string][]pattern // .gitignore patterns by directory, relative to base
	info   []pattern            // .git/info/exclude
	defs   []pattern
	paths  map[string]bool // Options.Paths, cleaned
}

// New builds the rules of the tree at root (absolute, symbolic links
// resolved). It reads the .gitignore files from the repository's top level
// down to root; those at and below root are read by LoadDir, as a walk
// finds them. A pattern of o.Patterns that can match nothing is an error.
func New(root string, o Options) (*Rules, error) {
	r := &Rules{base: root, top: o.Top, files: map[string][]pattern{}, paths: map[string]bool{}}
	if top := gitTopLevel(root, o.Top); top != "" {
		r.base = top
		rel, err := filepath.Rel(top, root)
		if err == nil && rel != "." {
			r.prefix = filepath.ToSlash(rel)
		}
		r.info = r.readFile(filepath.Join(top, ".git", "info", "exclude"), "")
		// .gitignore files from the top level down to root's parent.
		dir := ""
		for _, el := range strings.Split(r.prefix, "/") {
			if el == "" {
				break
			}
			r.loadDirRel(dir)
			dir = path.Join(dir, el)
		}
	}
	for _, l := range o.Patterns {
		if p, ok := parseLine(l, r.prefix); ok {
			r.user = append(r.user, p)
		} else if strings.TrimSpace(l) != "" && !strings.HasPrefix(l, "#") {
			return nil, fmt.Errorf("gitignore: pattern %q matches nothing", l)
		}
	}
	for _, l := range o.Defaults {
		if p, ok := parseLine(l, r.prefix); ok {
			r.defs = append(r.defs, p)
		}
	}
	for _, e := range o.Paths {
		r.paths[filepath.Clean(e)] = true
	}
	return r, nil
}

// gitTopLevel returns the top level of the git work tree that contains
// dir: the nearest ancestor (or dir itself) holding .git, not above top
// when top is set.
func gitTopLevel(dir, top string) string {
	for d := dir; ; {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d || d == top {
			return ""
		}
		d = parent
	}
}

// readFile reads the ignore file name (absolute) of the directory domain,
// through an os.Root of the top when there is one.
func (r *Rules) readFile(name, domain string) []pattern {
	f, err := r.open(name)
	if err != nil {
		return nil
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(f, maxIgnoreFile))
	if err != nil {
		return nil
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // a UTF-8 BOM, as git allows
	var out []pattern
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		if p, ok := parseLine(sc.Text(), domain); ok {
			out = append(out, p)
		}
	}
	return out
}

// open opens the file name (absolute) for reading, through an os.Root of
// the top when there is one. It does not wait for a writer of a named pipe
// (the caller then finds it is not a regular file).
func (r *Rules) open(name string) (*os.File, error) {
	const flags = os.O_RDONLY | syscall.O_NONBLOCK
	if r.top == "" {
		return os.OpenFile(name, flags, 0)
	}
	rel, err := filepath.Rel(r.top, name)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(r.top)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return root.OpenFile(rel, flags, 0)
}

// rel converts a root-relative path to a base-relative one.
func (r *Rules) rel(wsRel string) string {
	switch {
	case r.prefix == "":
		return wsRel
	case wsRel == "":
		return r.prefix
	}
	return r.prefix + "/" + wsRel
}

// LoadDir (re)reads the .gitignore of the directory rel ("" for the root);
// it reports whether the rules changed.
func (r *Rules) LoadDir(rel string) bool { return r.loadDirRel(r.rel(rel)) }

func (r *Rules) loadDirRel(dir string) bool {
	old, had := r.files[dir]
	ps := r.readFile(filepath.Join(r.base, filepath.FromSlash(dir), ".gitignore"), dir)
	if len(ps) == 0 {
		delete(r.files, dir)
		return had
	}
	r.files[dir] = ps
	if len(old) != len(ps) {
		return true
	}
	for i := range ps {
		if old[i].src != ps[i].src {
			return true
		}
	}
	return false
}

// DropDir forgets the .gitignore files of rel and below (a removed
// directory).
func (r *Rules) DropDir(rel string) {
	d := r.rel(rel)
	for k := range r.files {
		if k == d || strings.HasPrefix(k, d+"/") || d == "" {
			delete(r.files, k)
		}
	}
}

// Ignored reports whether the root-relative path rel ('/' separated) is
// ignored, its ancestors below the root included.
func (r *Rules) Ignored(rel string, isDir bool) bool {
	if rel == "" {
		return false
	}
	for i := 0; i < len(rel); i++ {
		if rel[i] == '/' && r.IgnoredEntry(rel[:i], true) {
			return true
		}
	}
	return r.IgnoredEntry(rel, isDir)
}

// IgnoredEntry reports whether rel is ignored by a rule that names it,
// given that its parent directory is not ignored: what a walk from the
// root, which never enters an ignored directory, asks of each entry.
func (r *Rules) IgnoredEntry(rel string, isDir bool) bool {
	name := path.Base(rel)
	if name == ".git" {
		return true
	}
	if len(r.paths) > 0 && r.paths[filepath.Join(r.root(), filepath.FromSlash(rel))] {
		return true
	}
	brel := r.rel(rel)
	if m, ok := lastMatch(r.user, brel, isDir); ok {
		return m
	}
	// .gitignore files from the path's own directory up to the base.
	for dir := path.Dir(brel); ; dir = path.Dir(dir) {
		if dir == "." {
			dir = ""
		}
		if m, ok := lastMatch(r.files[dir], brel, isDir); ok {
			return m
		}
		if dir == "" {
			break
		}
	}
	if m, ok := lastMatch(r.info, brel, isDir); ok {
		return m
	}
	m, _ := lastMatch(r.defs, brel, isDir)
	return m
}

func (r *Rules) root() string {
	return filepath.Join(r.base, filepath.FromSlash(r.prefix))
}

// lastMatch applies ps, the last matching pattern deciding; ok is false
// when none matches.
func lastMatch(ps []pattern, rel string, isDir bool) (ignored, ok bool) {
	for i := len(ps) - 1; i >= 0; i-- {
		if ps[i].match(rel, isDir) {
			return !ps[i].negate, true
		}
	}
	return false, false
}
