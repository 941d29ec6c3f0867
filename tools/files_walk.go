package tools

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/coditect/coditect/internal/gitignore"
	"github.com/coditect/coditect/internal/textclip"
)

// Finding code: fs_search looks for a literal or a regular expression in
// the files of a session's workspace, fs_find for files by glob or name.
// Both walk the workspace through its os.Root, never following a symbolic
// link, and skip what git would (package gitignore: the .gitignore files,
// nested ones too, and .git/info/exclude of the repository, within the
// project root) and the usual dependency and build folders
// (gitignore.Defaults), as the watcher does; Coditect's protected paths are
// never listed. The rules apply below the path sent, so a model can still
// search an ignored folder by naming it. Results come in path order and
// are capped, with a count of what was left out; a walk stops at a
// deadline and says how far it got.

// Limits of the finding tools.
const (
	// maxPatternArg bounds a search pattern, a glob or a name, in bytes.
	maxPatternArg = 1000
	// defaultSearchResults and maxSearchResults bound the matching lines
	// fs_search shows; defaultFindResults and maxFindResults the entries
	// fs_find shows.
	defaultSearchResults = 50
	maxSearchResults     = 200
	defaultFindResults   = 100
	maxFindResults       = 1000
	// defaultContext and maxContext are the lines shown around a match.
	defaultContext = 1
	maxContext     = 5
	// maxShownLine bounds one line of a result, in bytes.
	maxShownLine = 240
	// maxFoundOutput bounds the text block of either tool, in bytes: a
	// small model's context must hold it.
	maxFoundOutput = 24 << 10
	// binarySniff is how much of a file is checked for a NUL byte, which
	// marks it binary (as git and ripgrep do).
	binarySniff = 8 << 10
	// maxGlobBraces bounds the {a,b} groups of a glob: each one multiplies
	// the matcher's work.
	maxGlobBraces, maxGlobCommas = 3, 16
	// findTimeout bounds one search or find.
	findTimeout = 10 * time.Second
)

// finder runs fs_search and fs_find; timeout bounds each call.
type finder struct {
	f       *files
	timeout time.Duration
}

func (f *files) searchTool() *Tool { return finder{f: f, timeout: findTimeout}.searchTool() }
func (f *files) findTool() *Tool   { return finder{f: f, timeout: findTimeout}.findTool() }

// --- the walk ---

// tree is the part of a session's workspace a finding tool looks at.
type tree struct {
	root  *os.Root
	rules *gitignore.Rules
	start string // the path sent, resolved: relative to the workspace, "." for its root
	isDir bool
	// deadline ends the walk; timedOut says it did.
	deadline time.Time
	timedOut bool
	// guard, when set, holds the protected paths inside the workspace (see
	// openTree), and every opened file is checked against the entry listed.
	guard bool
	// held are the directories kept open for reading their files later
	// (see hold).
	held map[*os.Root]bool
}

// maxHeldDirs bounds the directories a search keeps open at once.
const maxHeldDirs = 512

// entry is a directory or regular file a walk found.
type entry struct {
	dir  *os.Root // its directory, opened as a root
	name string   // its name in dir
	rel  string   // its path relative to the workspace
	d    fs.DirEntry
}

// openTree resolves the path sent in the session's workspace, as the other
// files tools do (refusing what leaves it or is protected), and prepares
// the ignore rules of the workspace; the caller closes the tree.
func (fd finder) openTree(ctx context.Context, c *Call, sessionID, p string) (*tree, error) {
	pl, root, err := fd.f.openPlace(ctx, c, sessionID, p, anyPlace)
	if err != nil {
		return nil, err
	}
	fi, err := root.Stat(pl.rel)
	if err != nil {
		root.Close()
		return nil, notExist(err, p)
	}
	t := &tree{root: root, start: pl.rel, isDir: fi.IsDir(), deadline: time.Now().Add(fd.timeout), held: map[*os.Root]bool{}}
	if d, ok := ctx.Deadline(); ok && d.Before(t.deadline) {
		t.deadline = d
	}
	var inside []string
	for _, prot := range fd.f.protected {
		if within(pl.root, prot) {
			inside = append(inside, prot)
		}
	}
	t.guard = len(inside) > 0
	// The rules consult nothing above the project root, and read ignore
	// files through it.
	rules, err := gitignore.New(pl.root, gitignore.Options{Defaults: gitignore.Defaults, Paths: inside, Top: projectRoot(pl)})
	if err != nil {
		root.Close()
		return nil, err
	}
	t.rules = rules
	// The .gitignore files from the workspace root down to the start.
	if t.isDir && t.start != "." {
		dir := ""
		for seg := range strings.SplitSeq(path.Dir(t.start), "/") {
			rules.LoadDir(dir)
			if seg != "." {
				dir = path.Join(dir, seg)
			}
		}
		rules.LoadDir(dir)
	}
	return t, nil
}

// close closes the workspace root and the directories held.
func (t *tree) close() {
	for r := range t.held {
		r.Close()
	}
	t.root.Close()
}

// hold keeps dir open until the tree closes, so that its files can be read
// after the walk with one open each. It reports false when too many
// directories are held: the caller then reads through the workspace root.
func (t *tree) hold(dir *os.Root) bool {
	if dir == t.root || t.held[dir] {
		return true
	}
	if len(t.held) >= maxHeldDirs {
		return false
	}
	t.held[dir] = true
	return true
}

// projectRoot returns the real path of the root of the place's project.
func projectRoot(pl place) string {
	if pl.file.Rel == "." {
		return pl.abs
	}
	return strings.TrimSuffix(pl.abs, string(filepath.Separator)+filepath.FromSlash(pl.file.Rel))
}

// walk calls visit for every directory and regular file below the start
// (the start itself when it is a file) that the rules keep, in path order,
// until visit returns false or the deadline passes. Symbolic links and
// other special files are skipped, never followed. Every directory is
// opened as an os.Root inside the one it is listed in.
func (t *tree) walk(visit func(e entry) bool) {
	if !t.isDir {
		fi, err := t.root.Lstat(t.start)
		if err == nil && fi.Mode().IsRegular() {
			visit(entry{dir: t.root, name: t.start, rel: t.start, d: fs.FileInfoToDirEntry(fi)})
		}
		return
	}
	dir := t.root
	if t.start != "." {
		var err error
		if dir, err = t.root.OpenRoot(t.start); err != nil {
			return
		}
	}
	t.dir(dir, t.start, visit)
	if !t.held[dir] && dir != t.root {
		dir.Close()
	}
}

func (t *tree) dir(dir *os.Root, rel string, visit func(entry) bool) bool {
	if time.Now().After(t.deadline) {
		t.timedOut = true
		return false
	}
	d, err := dir.OpenFile(".", os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return true // gone, or not ours to read: go on
	}
	ents, _ := d.ReadDir(-1)
	d.Close()
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	ruleRel := rel
	if rel == "." {
		ruleRel = ""
	}
	if slices.ContainsFunc(ents, func(e fs.DirEntry) bool { return e.Name() == ".gitignore" }) {
		t.rules.LoadDir(ruleRel)
	}
	for _, e := range ents {
		crel := path.Join(ruleRel, e.Name())
		switch typ := e.Type(); {
		case typ.IsDir():
			if t.rules.IgnoredEntry(crel, true) {
				continue
			}
			if !visit(entry{dir: dir, name: e.Name(), rel: crel, d: e}) {
				return false
			}
			sub, err := dir.OpenRoot(e.Name())
			if err != nil {
				continue
			}
			more := t.dir(sub, crel, visit)
			if !t.held[sub] {
				sub.Close()
			}
			if !more {
				return false
			}
		case typ.IsRegular():
			if !t.rules.IgnoredEntry(crel, false) && !visit(entry{dir: dir, name: e.Name(), rel: crel, d: e}) {
				return false
			}
		}
	}
	return true
}

// readText reads the regular file e for a search into buf (grown as
// needed), at most the size it had when listed: nil with why when it is
// skipped ("binary", "large" or "unreadable").
func (t *tree) readText(e entry, limit int, buf *[]byte) ([]byte, string) {
	info, err := e.d.Info() // read with the listing, through the root
	if err != nil {
		return nil, "unreadable"
	}
	size := info.Size()
	switch {
	case size > int64(limit):
		return nil, "large"
	case size == 0:
		return (*buf)[:0], ""
	}
	// O_NONBLOCK: a file swapped for a named pipe must not block the call
	// (a read of one then fails or finds nothing).
	file, err := e.dir.OpenFile(e.name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, "unreadable"
	}
	defer file.Close()
	if t.guard {
		// A protected path lies inside the workspace: the file opened must
		// be the entry listed, not what a link swapped in since leads to.
		if fi, err := file.Stat(); err != nil || !os.SameFile(info, fi) {
			return nil, "unreadable"
		}
	}
	if int64(cap(*buf)) < size {
		*buf = make([]byte, 0, max(size, 64<<10))
	}
	b := (*buf)[:size]
	n, err := io.ReadFull(file, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, "unreadable"
	}
	b = b[:n]
	if bytes.IndexByte(b[:min(len(b), binarySniff)], 0) >= 0 {
		return nil, "binary"
	}
	return b, ""
}

// --- globs ---

// fileGlob is a glob a tool filters paths with: doublestar's syntax ("**"
// for any directories, {a,b} for alternatives). A glob without '/' matches
// a file's name at any depth ("*.go"), else its path relative to the
// workspace root ("src/**/*_test.go").
type fileGlob struct {
	pattern string
	base    bool
}

func (c *Call) glob(name, g string) (fileGlob, error) {
	if g == "" {
		return fileGlob{}, nil
	}
	if err := c.text(name, g, maxPatternArg, false, true); err != nil {
		return fileGlob{}, err
	}
	g = strings.TrimPrefix(g, "./")
	if strings.HasPrefix(g, "/") || slices.Contains(strings.Split(g, "/"), "..") {
		return fileGlob{}, c.argError("%q is matched against paths relative to the workspace root: send one without a leading '/' or '..', e.g. src/**/*.go", name)
	}
	if !doublestar.ValidatePattern(g) {
		return fileGlob{}, c.argError("%q is not a valid glob (%s): use * and ? within a name, ** for any directories, [abc] and {a,b}, e.g. **/*.go", name, textclip.Clip(g, 100))
	}
	if strings.Count(g, "{") > maxGlobBraces || strings.Count(g, ",") > maxGlobCommas {
		return fileGlob{}, c.argError("%q has too many {a,b} alternatives (at most %d groups and %d commas)", name, maxGlobBraces, maxGlobCommas)
	}
	return fileGlob{pattern: g, base: !strings.Contains(g, "/")}, nil
}

// match reports whether the workspace-relative path rel passes the glob
// (an empty glob passes everything).
func (g fileGlob) match(rel string) bool {
	switch {
	case g.pattern == "":
		return true
	case g.base:
		return doublestar.MatchUnvalidated(g.pattern, path.Base(rel))
	}
	return doublestar.MatchUnvalidated(g.pattern, rel)
}
