package tools

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/session"
)

// Files is the files toolset: reading, listing and guarded writing of the
// files of a session's workspace, which is the session's directory in its
// project's root on this machine (the root that holds the workspace the
// session started in, else the project's first root here): the tools
// reach nothing outside the roots of the caller's tenant. Paths are
// relative to the workspace and may not leave it: "..", absolute paths and
// symbolic links pointing out are refused, and so is anything at or below
// cfg.Protected (Coditect's own store and spool) even inside a root (all
// with outcome forbidden, audited like every call). Every file operation
// goes through an os.Root of the resolved workspace, so a link swapped in
// after the check cannot lead out either.
//
// A file's key is project.File: its project and its path relative to the
// project root, symbolic links resolved, the same from every workspace,
// alias and checkout of the project. Its lease, its attribution evidence
// and its unsaved-edit marks are kept under that key; models see the
// relative path and the project's name.
//
// fs_read returns at most a budget of lines and bytes of a file
// (cfg.MaxReadLines, MaxReadBytes), from the line asked for, and says
// where to continue; its text numbers the lines, its structured content
// keeps their raw text, from which fs_edit's search can be copied.
//
// A change (fs_write, fs_edit, fs_move, fs_delete) presents a fencing
// token of an exclusive lease on each file it changes — a move, on both
// paths: the token sent, else the caller's lease covering the file, else
// a lease the change takes for cfg.WriteLeaseTTL. In one transaction,
// before any byte reaches the disk, it checks the tokens
// (lease.CheckFence), refuses a file a human holds unsaved edits of in an
// editor (attrib.CheckNoUnsavedEdits: the IDE protocol's marks) and
// records the evidence the watcher attributes the change by, with the
// session: the content's hash as the agent's write
// (attrib.RecordAgentWrite; for a move, at the new path) and a deletion
// (attrib.RecordAgentDelete; for a move, at the old path), so the watcher
// attributes what it then sees to the agent and its session with
// certainty; no tool appends file events itself. A change that fails
// after it took a lease itself releases it (see files_guard.go). Written
// bytes go to a temporary file in the same directory, which is synced and
// then renamed over the file (keeping its mode); fs_edit's replacements
// are applied all at once or not at all; fs_move never replaces a file.
func Files(cfg Config) Toolset {
	f := newFiles(cfg)
	return Toolset{
		Name:    "files",
		Summary: "read, find, write, move and delete files of a session's workspace under a lease",
		Tools: []*Tool{
			f.readTool(),
			f.listTool(),
			f.writeTool(),
			f.editTool(),
			f.moveTool(),
			f.deleteTool(),
			f.searchTool(), f.findTool(),
		},
	}
}

// newFiles returns the files toolset's state for cfg, its zero values
// replaced by the defaults.
func newFiles(cfg Config) *files {
	orDefault := func(v, def int) int {
		if v <= 0 {
			return def
		}
		return v
	}
	f := &files{
		maxRead:   orDefault(cfg.MaxFileRead, DefaultMaxFile),
		maxWrite:  orDefault(cfg.MaxFileWrite, DefaultMaxFile),
		readLines: orDefault(cfg.MaxReadLines, DefaultReadLines),
		readBytes: orDefault(cfg.MaxReadBytes, DefaultReadBytes),
		leaseTTL:  cfg.WriteLeaseTTL,
		protected: canonicalAll(cfg.Protected),
	}
	if f.leaseTTL <= 0 {
		f.leaseTTL = lease.DefaultTTL
	}
	return f
}

// canonicalAll returns the paths both as sent (cleaned) and canonical
// (symbolic links of their existing prefix resolved).
func canonicalAll(paths []string) []string {
	var out []string
	for _, p := range paths {
		if p == "" || !filepath.IsAbs(p) {
			continue
		}
		out = append(out, filepath.Clean(p))
		if c, err := project.Canonical(p); err == nil && c != filepath.Clean(p) {
			out = append(out, c)
		}
	}
	return out
}

// DefaultMaxFile is the default limit of a file read or written (1 MiB).
const DefaultMaxFile = 1 << 20

// Limits of the files toolset.
const (
	// maxPathArg is the longest path argument, in bytes.
	maxPathArg = 4096
	// maxListEntries bounds the entries fs_list shows; maxListScan the
	// entries it reads from one directory.
	maxListEntries = 500
	maxListScan    = 10_000
)

type files struct {
	maxRead, maxWrite int
	// readLines and readBytes are the budget of one fs_read.
	readLines, readBytes int
	leaseTTL             time.Duration
	// protected are paths no files tool reaches, even inside a project
	// root: the store's files and the audit spool (canonical).
	protected []string
	// diskFault, set by tests only, makes the disk step of a change fail
	// (op is "write", "move" or "delete") after its transaction committed.
	diskFault func(op string) error
}

// place is a file or directory of a session's workspace, resolved.
type place struct {
	root string // the workspace, symbolic links resolved: the project root joined with the session's directory
	rel  string // relative to root, '/'-separated, without symbolic links; "." for the root
	abs  string // root joined with rel: the file's real path
	// session is the session's id, project its project, and file the key
	// of the file: its path relative to the project root on this machine.
	session string
	project project.Project
	file    project.File
}

// outside refuses a path that leaves the workspace and records why in the
// call's tool.called event.
func (c *Call) outside(reason, format string, args ...any) error {
	c.record("refused", reason)
	return &toolError{err: ErrOutsideWorkspace, msg: fmt.Sprintf(format, args...)}
}

// Kinds of place a files tool works on.
const (
	anyPlace    = iota // a directory or file; empty means the root (fs_list)
	fileToRead         // a file, which must be named
	fileToWrite        // a file, which must be named, in an open session
)

// openPlace resolves a path in the session's workspace (see place) and
// opens the workspace as an os.Root, through which every file operation
// goes; the caller closes the root.
func (f *files) openPlace(ctx context.Context, c *Call, sessionID, p string, kind int) (place, *os.Root, error) {
	pl, err := f.place(ctx, c, sessionID, p, kind)
	if err != nil {
		return pl, nil, err
	}
	root, err := os.OpenRoot(pl.root)
	if err != nil {
		return pl, nil, err
	}
	return pl, root, nil
}

// place resolves a session_id and a workspace-relative path: the
// session's workspace is its directory in its project's root on this
// machine, and the path may not leave it nor reach a protected path.
func (f *files) place(ctx context.Context, c *Call, sessionID, p string, kind int) (place, error) {
	id, err := c.sessionID(sessionID, true)
	if err != nil {
		return place{}, err
	}
	if p == "" && kind != anyPlace {
		return place{}, c.argError("%q is required: a file path relative to the workspace root, e.g. src/main.go", "path")
	}
	if err := c.text("path", p, maxPathArg, false, true); err != nil {
		return place{}, err
	}
	rel, err := c.lexical(p)
	if err != nil {
		return place{}, err
	}
	s, err := session.Get(ctx, c.Scope, id)
	if err != nil {
		return place{}, err
	}
	if kind == fileToWrite && s.State != session.Open {
		return place{}, &toolError{err: session.ErrNotOpen, msg: fmt.Sprintf("session %s is %s: files are written only in an open session; start one with session_start or join one with session_join", id, s.State)}
	}
	proj, err := c.sessionProject(ctx, s)
	if err != nil {
		return place{}, err
	}
	c.nameProject(proj)
	projRoot, ws, err := workspaceOf(s, proj)
	if err != nil {
		return place{}, err
	}
	pl, err := c.resolveBelow(ws, rel, p)
	if err != nil {
		return place{}, err
	}
	for _, prot := range f.protected {
		if within(prot, pl.abs) {
			c.record("resolved", pl.abs)
			return place{}, c.outside("protected path", "%q is one of Coditect's own files (its store or audit spool), which no tool reads or writes", textclip.Clip(p, 200))
		}
	}
	r, err := filepath.Rel(projRoot, pl.abs)
	if err != nil || !within(projRoot, pl.abs) {
		return place{}, c.outside("outside the project root", "%q lies outside project %s", textclip.Clip(p, 200), proj.Name)
	}
	pl.session, pl.project = s.ID, proj
	pl.file = project.File{Project: proj.ID, Rel: filepath.ToSlash(r)}
	c.record("rel", pl.rel)
	c.recordPath(pl.file)
	return pl, nil
}

// workspaceOf returns, on this machine, the real path of the root of the
// session's project that holds the session's workspace (else the
// project's first root here) and of the session's workspace in it.
func workspaceOf(s session.Session, p project.Project) (root, ws string, err error) {
	machine := project.Machine()
	roots := p.RootsOn(machine)
	if len(roots) == 0 {
		return "", "", &toolError{err: fs.ErrNotExist, msg: fmt.Sprintf("project %s has no root on this machine (%s), so the files of session %s cannot be reached here; an admin registers one with `coditect project add %s DIR`",
			p.Name, machine, s.ID, p.Name)}
	}
	root = roots[0]
	for _, r := range roots {
		if s.Workspace != "" && within(r, s.Workspace) {
			root = r
			break
		}
	}
	missing := func(what, path string) error {
		return &toolError{err: fs.ErrNotExist, msg: fmt.Sprintf("the %s %s of session %s (project %s) is missing or not a directory on this machine", what, path, s.ID, p.Name)}
	}
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", "", missing("project root", root)
	}
	ws = real
	if s.Dir != "" && s.Dir != "." {
		if ws, err = filepath.EvalSymlinks(filepath.Join(real, filepath.FromSlash(s.Dir))); err != nil {
			return "", "", missing("workspace", filepath.Join(root, filepath.FromSlash(s.Dir)))
		}
	}
	if fi, err := os.Stat(ws); err != nil || !fi.IsDir() {
		return "", "", missing("workspace", ws)
	}
	if !within(real, ws) {
		return "", "", &toolError{err: ErrOutsideWorkspace, msg: fmt.Sprintf("the workspace of session %s now leads out of project %s through a symbolic link: start a new session", s.ID, p.Name)}
	}
	return real, ws, nil
}

// lexical checks a path argument without touching the disk: relative,
// '/'-separated, not leaving the root. It returns the path cleaned, "."
// for the root.
func (c *Call) lexical(p string) (string, error) {
	if p == "" || p == "." {
		return ".", nil
	}
	if strings.HasPrefix(p, "/") || filepath.IsAbs(p) || filepath.VolumeName(p) != "" {
		return "", c.outside("absolute path", "%q is an absolute path: send a path relative to the workspace root, e.g. src/main.go", textclip.Clip(p, 200))
	}
	if strings.ContainsRune(p, '\\') {
		return "", c.argError("%q contains '\\': use '/' between directories, e.g. src/main.go", textclip.Clip(p, 200))
	}
	cl := path.Clean(p)
	if cl == ".." || strings.HasPrefix(cl, "../") {
		return "", c.outside("leaves the root (..)", "%q leaves the workspace: send a path inside it, relative to its root", textclip.Clip(p, 200))
	}
	return cl, nil
}

// resolveBelow resolves rel below root through symbolic links (those of
// its longest existing prefix; the rest does not exist yet) and refuses a
// result outside root.
func (c *Call) resolveBelow(root, rel, arg string) (place, error) {
	target := filepath.Join(root, filepath.FromSlash(rel))
	existing, rest := target, ""
	for existing != root {
		_, err := os.Lstat(existing)
		if err == nil {
			break
		}
		if errors.Is(err, syscall.ENOTDIR) {
			return place{}, &toolError{err: ErrNotFile, msg: fmt.Sprintf("%q goes through a file as if it were a directory", textclip.Clip(arg, 200))}
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return place{}, err
		}
		rest = filepath.Join(filepath.Base(existing), rest)
		existing = filepath.Dir(existing)
	}
	real, err := filepath.EvalSymlinks(existing)
	if errors.Is(err, fs.ErrNotExist) {
		// A link whose target is missing: refuse it, saying whether it
		// would have led out.
		if link, lerr := os.Readlink(existing); lerr == nil {
			if !filepath.IsAbs(link) {
				link = filepath.Join(filepath.Dir(existing), link)
			}
			if !within(root, filepath.Clean(link)) {
				return place{}, c.outside("symbolic link out", "%q goes through a symbolic link that points outside the workspace", textclip.Clip(arg, 200))
			}
		}
		return place{}, &toolError{err: fs.ErrNotExist, msg: fmt.Sprintf("%q goes through a symbolic link whose target does not exist", textclip.Clip(arg, 200))}
	}
	if err != nil {
		// A loop of links, a directory we may not read: say so.
		return place{}, &toolError{err: ErrNotFile, msg: fmt.Sprintf("%q cannot be resolved: %v", textclip.Clip(arg, 200), errors.Unwrap(err))}
	}
	if rest != "" {
		real = filepath.Join(real, rest)
	}
	if !within(root, real) {
		c.record("resolved", real)
		return place{}, c.outside("symbolic link out", "%q goes through a symbolic link that points outside the workspace: only files inside it can be used", textclip.Clip(arg, 200))
	}
	r, err := filepath.Rel(root, real)
	if err != nil {
		return place{}, err
	}
	return place{root: root, rel: filepath.ToSlash(r), abs: real}, nil
}

// within reports whether p is root or below it (both clean and absolute).
func within(root, p string) bool {
	return p == root || strings.HasPrefix(p, strings.TrimSuffix(root, string(filepath.Separator))+string(filepath.Separator))
}

// tooLarge is the error of content over a limit.
func tooLarge(what string, n, limit int64, hint string) error {
	return &toolError{err: ErrTooLarge, msg: fmt.Sprintf("%s is %d bytes; the limit is %d bytes: %s", what, n, limit, hint)}
}

// readFile reads the regular file rel of root, at most limit bytes. It
// checks the file's type before opening it: opening a named pipe would
// block the call.
func readFile(root *os.Root, rel, arg string, limit int) ([]byte, os.FileInfo, error) {
	fi, err := root.Stat(rel)
	if err != nil {
		return nil, nil, notExist(err, arg)
	}
	if err := regular(fi, arg); err != nil {
		return nil, nil, err
	}
	file, err := root.Open(rel)
	if err != nil {
		return nil, nil, notExist(err, arg)
	}
	defer file.Close()
	if fi, err = file.Stat(); err != nil {
		return nil, nil, err
	}
	if err := regular(fi, arg); err != nil {
		return nil, nil, err
	}
	if fi.Size() > int64(limit) {
		return nil, nil, tooLarge(fmt.Sprintf("%q", textclip.Clip(arg, 200)), fi.Size(), int64(limit), "the files tools handle smaller files")
	}
	b, err := io.ReadAll(io.LimitReader(file, int64(limit)+1))
	if err != nil {
		return nil, nil, err
	}
	if len(b) > limit {
		return nil, nil, tooLarge(fmt.Sprintf("%q", textclip.Clip(arg, 200)), int64(len(b)), int64(limit), "the files tools handle smaller files")
	}
	return b, fi, nil
}

// regular refuses what is not a regular file.
func regular(fi os.FileInfo, arg string) error {
	switch {
	case fi.IsDir():
		return &toolError{err: ErrNotFile, msg: fmt.Sprintf("%q is a directory: list it with fs_list", textclip.Clip(arg, 200))}
	case !fi.Mode().IsRegular():
		return &toolError{err: ErrNotFile, msg: fmt.Sprintf("%q is not a regular file (%s)", textclip.Clip(arg, 200), fi.Mode().Type())}
	}
	return nil
}

// notExist rewrites a missing file's error for a model.
func notExist(err error, arg string) error {
	if errors.Is(err, fs.ErrNotExist) {
		return &toolError{err: err, msg: fmt.Sprintf("%q does not exist: list the directory with fs_list", textclip.Clip(arg, 200))}
	}
	return err
}
