package tools

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/kv"
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
// A write (fs_write, fs_edit) presents a fencing token of an exclusive
// lease on the file: the token sent, else the caller's lease covering the
// file, else a lease the write takes for cfg.WriteLeaseTTL. In one
// transaction, before any byte reaches the disk, it checks the token
// (lease.CheckFence), refuses a file a human holds unsaved edits of in an
// editor (attrib.CheckNoUnsavedEdits: the IDE protocol's marks) and
// records the content's hash as the agent's write
// (attrib.RecordAgentWrite, with the session), so the watcher attributes
// the change it then sees to the agent and its session with certainty; it
// does not append file.modified itself. The bytes go to a temporary file
// in the same directory, which is synced and then renamed over the file
// (keeping its mode).
func Files(cfg Config) Toolset {
	f := &files{maxRead: cfg.MaxFileRead, maxWrite: cfg.MaxFileWrite, leaseTTL: cfg.WriteLeaseTTL, protected: canonicalAll(cfg.Protected)}
	if f.maxRead <= 0 {
		f.maxRead = DefaultMaxFile
	}
	if f.maxWrite <= 0 {
		f.maxWrite = DefaultMaxFile
	}
	if f.leaseTTL <= 0 {
		f.leaseTTL = lease.DefaultTTL
	}
	return Toolset{
		Name:    "files",
		Summary: "read, list and write files of a session's workspace under a lease",
		Tools:   []*Tool{f.readTool(), f.listTool(), f.writeTool(), f.editTool()},
	}
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
	leaseTTL          time.Duration
	// protected are paths no files tool reaches, even inside a project
	// root: the store's files and the audit spool (canonical).
	protected []string
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
			return place{}, c.outside("protected path", "%q is one of Coditect's own files (its store or audit spool), which no tool reads or writes", clip(p, 200))
		}
	}
	r, err := filepath.Rel(projRoot, pl.abs)
	if err != nil || !within(projRoot, pl.abs) {
		return place{}, c.outside("outside the project root", "%q lies outside project %s", clip(p, 200), proj.Name)
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
		return "", c.outside("absolute path", "%q is an absolute path: send a path relative to the workspace root, e.g. src/main.go", clip(p, 200))
	}
	if strings.ContainsRune(p, '\\') {
		return "", c.argError("%q contains '\\': use '/' between directories, e.g. src/main.go", clip(p, 200))
	}
	cl := path.Clean(p)
	if cl == ".." || strings.HasPrefix(cl, "../") {
		return "", c.outside("leaves the root (..)", "%q leaves the workspace: send a path inside it, relative to its root", clip(p, 200))
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
			return place{}, &toolError{err: ErrNotFile, msg: fmt.Sprintf("%q goes through a file as if it were a directory", clip(arg, 200))}
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
				return place{}, c.outside("symbolic link out", "%q goes through a symbolic link that points outside the workspace", clip(arg, 200))
			}
		}
		return place{}, &toolError{err: fs.ErrNotExist, msg: fmt.Sprintf("%q goes through a symbolic link whose target does not exist", clip(arg, 200))}
	}
	if err != nil {
		// A loop of links, a directory we may not read: say so.
		return place{}, &toolError{err: ErrNotFile, msg: fmt.Sprintf("%q cannot be resolved: %v", clip(arg, 200), errors.Unwrap(err))}
	}
	if rest != "" {
		real = filepath.Join(real, rest)
	}
	if !within(root, real) {
		c.record("resolved", real)
		return place{}, c.outside("symbolic link out", "%q goes through a symbolic link that points outside the workspace: only files inside it can be used", clip(arg, 200))
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

// --- fs_read ---

type fileArgs struct {
	SessionID string `json:"session_id"`
	Path      string `json:"path"`
}

type fileOut struct {
	Path     string    `json:"path"`
	Size     int64     `json:"size"`
	Hash     string    `json:"hash"`
	Encoding string    `json:"encoding"`
	Content  string    `json:"content"`
	Lines    int       `json:"lines,omitempty"`
	Modified time.Time `json:"modified"`
}

func (f *files) readTool() *Tool {
	return spec{
		name: "fs_read", title: "Read a file",
		description: "Read a file of a session's workspace, by path relative to its root.",
		hints:       readOnly,
		input: `{"type":"object","required":["session_id","path"],"additionalProperties":false,"properties":{
			"session_id":{"type":"string"},
			"path":{"type":"string","description":"Relative to the workspace root, e.g. src/main.go"}}}`,
		output: `{"type":"object","required":["path","size","hash","encoding","content","modified"],"properties":{
			"path":{"type":"string"},"size":{"type":"integer"},"hash":{"type":"string"},
			"encoding":{"type":"string","enum":["utf-8","base64"]},"content":{"type":"string"},
			"lines":{"type":"integer"},"modified":{"type":"string"}}}`,
		example: `{"session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T","path":"src/main.go"}`,
		handler: f.read,
	}.tool()
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
		return nil, nil, tooLarge(fmt.Sprintf("%q", clip(arg, 200)), fi.Size(), int64(limit), "the files tools handle smaller files")
	}
	b, err := io.ReadAll(io.LimitReader(file, int64(limit)+1))
	if err != nil {
		return nil, nil, err
	}
	if len(b) > limit {
		return nil, nil, tooLarge(fmt.Sprintf("%q", clip(arg, 200)), int64(len(b)), int64(limit), "the files tools handle smaller files")
	}
	return b, fi, nil
}

// regular refuses what is not a regular file.
func regular(fi os.FileInfo, arg string) error {
	switch {
	case fi.IsDir():
		return &toolError{err: ErrNotFile, msg: fmt.Sprintf("%q is a directory: list it with fs_list", clip(arg, 200))}
	case !fi.Mode().IsRegular():
		return &toolError{err: ErrNotFile, msg: fmt.Sprintf("%q is not a regular file (%s)", clip(arg, 200), fi.Mode().Type())}
	}
	return nil
}

// notExist rewrites a missing file's error for a model.
func notExist(err error, arg string) error {
	if errors.Is(err, fs.ErrNotExist) {
		return &toolError{err: err, msg: fmt.Sprintf("%q does not exist: list the directory with fs_list", clip(arg, 200))}
	}
	return err
}

func (f *files) read(ctx context.Context, c *Call) (Result, error) {
	var a fileArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	pl, root, err := f.openPlace(ctx, c, a.SessionID, a.Path, fileToRead)
	if err != nil {
		return Result{}, err
	}
	defer root.Close()
	b, fi, err := readFile(root, pl.rel, a.Path, f.maxRead)
	if err != nil {
		return Result{}, err
	}
	out := fileOut{Path: pl.rel, Size: int64(len(b)), Hash: attrib.Hash(b), Modified: fi.ModTime().UTC()}
	c.record("hash", out.Hash)
	if utf8.Valid(b) {
		out.Encoding, out.Content = "utf-8", string(b)
		out.Lines = strings.Count(out.Content, "\n")
		if len(b) > 0 && b[len(b)-1] != '\n' {
			out.Lines++
		}
		return Result{Structured: out, Text: fmt.Sprintf("%s (%d bytes, %d lines):\n%s", out.Path, out.Size, out.Lines, out.Content)}, nil
	}
	out.Encoding, out.Content = "base64", base64.StdEncoding.EncodeToString(b)
	return Result{Structured: out, Text: fmt.Sprintf("%s (%d bytes) is not UTF-8 text (binary?); its bytes, base64-encoded:\n%s", out.Path, out.Size, out.Content)}, nil
}

// --- fs_list ---

type listArgs struct {
	SessionID string `json:"session_id"`
	Path      string `json:"path"`
}

type entryOut struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Size int64  `json:"size,omitempty"`
}

type listOut struct {
	Path    string     `json:"path"`
	Entries []entryOut `json:"entries"`
	// Total counts the entries read; Entries holds at most maxListEntries.
	Total     int  `json:"total"`
	Truncated bool `json:"truncated,omitempty"`
}

func (f *files) listTool() *Tool {
	return spec{
		name: "fs_list", title: "List a directory",
		description: "List a directory of a session's workspace (its root when path is empty): names, types and sizes.",
		hints:       readOnly,
		input: `{"type":"object","required":["session_id"],"additionalProperties":false,"properties":{
			"session_id":{"type":"string"},
			"path":{"type":"string","description":"Directory relative to the workspace root; empty for the root"}}}`,
		output: `{"type":"object","required":["path","entries","total"],"properties":{
			"path":{"type":"string"},"entries":{"type":"array","items":{"type":"object","required":["name","type"],"properties":{
			"name":{"type":"string"},"type":{"type":"string","enum":["file","dir","symlink","other"]},"size":{"type":"integer"}}}},
			"total":{"type":"integer"},"truncated":{"type":"boolean"}}}`,
		example: `{"session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T","path":"src"}`,
		handler: f.list,
	}.tool()
}

func (f *files) list(ctx context.Context, c *Call) (Result, error) {
	var a listArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	pl, root, err := f.openPlace(ctx, c, a.SessionID, a.Path, anyPlace)
	if err != nil {
		return Result{}, err
	}
	defer root.Close()
	// Stat before opening: opening a named pipe would block the call.
	if fi, err := root.Stat(pl.rel); err != nil {
		return Result{}, notExist(err, a.Path)
	} else if !fi.IsDir() {
		return Result{}, &toolError{err: ErrNotFile, msg: fmt.Sprintf("%q is not a directory: read a file with fs_read", clip(a.Path, 200))}
	}
	dir, err := root.Open(pl.rel)
	if err != nil {
		return Result{}, notExist(err, a.Path)
	}
	defer dir.Close()
	ents, err := dir.ReadDir(maxListScan)
	if err != nil && !errors.Is(err, io.EOF) {
		return Result{}, err
	}
	slices.SortFunc(ents, func(x, y fs.DirEntry) int { return strings.Compare(x.Name(), y.Name()) })
	out := listOut{Path: pl.rel, Entries: []entryOut{}, Total: len(ents), Truncated: len(ents) > maxListEntries || len(ents) == maxListScan}
	var b strings.Builder
	fmt.Fprintf(&b, "%s:\n", pl.rel)
	for _, e := range ents[:min(len(ents), maxListEntries)] {
		o := entryOut{Name: e.Name()}
		switch t := e.Type(); {
		case t.IsDir():
			o.Type = "dir"
			fmt.Fprintf(&b, "%s/\n", o.Name)
		case t&fs.ModeSymlink != 0:
			o.Type = "symlink"
			fmt.Fprintf(&b, "%s (symlink)\n", o.Name)
		case t.IsRegular():
			o.Type = "file"
			if info, err := e.Info(); err == nil {
				o.Size = info.Size()
			}
			fmt.Fprintf(&b, "%s %d\n", o.Name, o.Size)
		default:
			o.Type = "other"
			fmt.Fprintf(&b, "%s (%s)\n", o.Name, t)
		}
		out.Entries = append(out.Entries, o)
	}
	switch {
	case len(ents) == 0:
		b.WriteString("(empty)\n")
	case out.Truncated:
		fmt.Fprintf(&b, "Only the first %d entries are shown.\n", len(out.Entries))
	}
	return Result{Structured: out, Text: strings.TrimSuffix(b.String(), "\n")}, nil
}

// --- fs_write and fs_edit ---

type writeArgs struct {
	SessionID string  `json:"session_id"`
	Path      string  `json:"path"`
	Content   *string `json:"content"`
	Token     int64   `json:"token"`
}

type writeOut struct {
	Path    string `json:"path"`
	Bytes   int    `json:"bytes"`
	Hash    string `json:"hash"`
	Created bool   `json:"created"`
	// Lease is the resource of the lease the write presented (relative to
	// the root of Project, the project's name), Token its fencing token and
	// LeaseExpires its expiry.
	Lease        string    `json:"lease"`
	Project      string    `json:"project,omitempty"`
	Token        int64     `json:"token"`
	LeaseExpires time.Time `json:"lease_expires"`
	// LeaseTaken is set when the write took the lease itself.
	LeaseTaken bool `json:"lease_taken,omitempty"`
}

const writeSchema = `{"type":"object","required":["path","bytes","hash","created","lease","token","lease_expires"],"properties":{
	"path":{"type":"string"},"bytes":{"type":"integer"},"hash":{"type":"string"},"created":{"type":"boolean"},
	"lease":{"type":"string"},"project":{"type":"string"},"token":{"type":"integer"},"lease_expires":{"type":"string"},"lease_taken":{"type":"boolean"}}}`

// writeHints: a write replaces what the file held.
var writeHints = hints{destructive: true, idempotent: true}

func (f *files) writeTool() *Tool {
	return spec{
		name: "fs_write", title: "Write a file",
		description: "Create or replace a file of a session's workspace; takes the file's lease for you unless you send its token.",
		hints:       writeHints,
		input: `{"type":"object","required":["session_id","path","content"],"additionalProperties":false,"properties":{
			"session_id":{"type":"string"},
			"path":{"type":"string","description":"Relative to the workspace root"},
			"content":{"type":"string","description":"The whole new file"},
			"token":{"type":"integer","description":"Fencing token from lease_acquire, if you hold the lease"}}}`,
		output:  writeSchema,
		example: `{"session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T","path":"src/hello.go","content":"package main\n"}`,
		maxArgs: 2*f.maxWrite + MaxArgs,
		handler: f.write,
	}.tool()
}

func (f *files) write(ctx context.Context, c *Call) (Result, error) {
	var a writeArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	if _, err := c.sessionID(a.SessionID, true); err != nil {
		return Result{}, err
	}
	if a.Path == "" {
		return Result{}, c.argError("%q is required: the file's path relative to the workspace root, e.g. src/main.go", "path")
	}
	if a.Content == nil {
		return Result{}, c.argError("%q is required: the whole new file (\"\" for an empty one)", "content")
	}
	if len(*a.Content) > f.maxWrite {
		return Result{}, tooLarge(`"content"`, int64(len(*a.Content)), int64(f.maxWrite), "write smaller files, or change part of a file with fs_edit")
	}
	if a.Token < 0 {
		return Result{}, c.argError("%q must be the positive token lease_acquire returned, not %d", "token", a.Token)
	}
	me, pl, root, err := f.openToWrite(ctx, c, a.SessionID, a.Path)
	if err != nil {
		return Result{}, err
	}
	defer root.Close()
	out, err := f.store(ctx, c, root, pl, me, []byte(*a.Content), a.Token, a.Path)
	if err != nil {
		return Result{}, err
	}
	verb := "Wrote"
	if out.Created {
		verb = "Created"
	}
	return Result{Structured: out, Text: out.text(verb, agent.Now(ctx))}, nil
}

func (o writeOut) text(verb string, now time.Time) string {
	held := "You hold"
	if o.LeaseTaken {
		held = "It took and you now hold"
	}
	return fmt.Sprintf("%s %s (%d bytes, %s). %s the lease on %q in project %s with token %d until %s; release it with lease_release when you are done.",
		verb, o.Path, o.Bytes, o.Hash, held, o.Lease, o.Project, o.Token, until(now, o.LeaseExpires))
}

type editArgs struct {
	SessionID string `json:"session_id"`
	Path      string `json:"path"`
	Search    string `json:"search"`
	Replace   string `json:"replace"`
	Token     int64  `json:"token"`
}

func (f *files) editTool() *Tool {
	return spec{
		name: "fs_edit", title: "Edit a file",
		description: "Replace text in a file of a session's workspace: search must occur exactly once, as fs_read shows it.",
		hints:       writeHints,
		input: `{"type":"object","required":["session_id","path","search","replace"],"additionalProperties":false,"properties":{
			"session_id":{"type":"string"},
			"path":{"type":"string","description":"Relative to the workspace root"},
			"search":{"type":"string","description":"Exact text to replace, with enough lines to be unique"},
			"replace":{"type":"string"},
			"token":{"type":"integer","description":"Fencing token from lease_acquire, if you hold the lease"}}}`,
		output:  writeSchema,
		example: `{"session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T","path":"src/a.go","search":"return 301","replace":"return 302"}`,
		maxArgs: 2*f.maxWrite + MaxArgs,
		handler: f.edit,
	}.tool()
}

func (f *files) edit(ctx context.Context, c *Call) (Result, error) {
	var a editArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	if _, err := c.sessionID(a.SessionID, true); err != nil {
		return Result{}, err
	}
	switch {
	case a.Path == "":
		return Result{}, c.argError("%q is required: the file's path relative to the workspace root", "path")
	case a.Search == "":
		return Result{}, c.argError("%q is required: the exact text to replace, copied from fs_read", "search")
	case a.Search == a.Replace:
		return Result{}, c.argError("%q equals %q: nothing would change", "replace", "search")
	case len(a.Search) > f.maxWrite:
		return Result{}, tooLarge(`"search"`, int64(len(a.Search)), int64(f.maxWrite), "send a shorter, still unique piece of text")
	case len(a.Replace) > f.maxWrite:
		return Result{}, tooLarge(`"replace"`, int64(len(a.Replace)), int64(f.maxWrite), "write the file with fs_write instead")
	case a.Token < 0:
		return Result{}, c.argError("%q must be the positive token lease_acquire returned, not %d", "token", a.Token)
	}
	me, pl, root, err := f.openToWrite(ctx, c, a.SessionID, a.Path)
	if err != nil {
		return Result{}, err
	}
	defer root.Close()
	b, _, err := readFile(root, pl.rel, a.Path, f.maxRead)
	if err != nil {
		return Result{}, err
	}
	if !utf8.Valid(b) {
		return Result{}, &toolError{err: ErrNotText, msg: fmt.Sprintf("%q is not UTF-8 text: fs_edit edits text; replace the file whole with fs_write", clip(a.Path, 200))}
	}
	text := string(b)
	switch n := strings.Count(text, a.Search); n {
	case 1:
	case 0:
		return Result{}, &toolError{err: ErrNoMatch, msg: fmt.Sprintf("the search text does not occur in %q: read the file with fs_read and copy the exact text, spaces and line breaks included", clip(a.Path, 200))}
	default:
		return Result{}, &toolError{err: ErrNoMatch, msg: fmt.Sprintf("the search text occurs %d times in %q: add the lines around it so that it occurs exactly once", n, clip(a.Path, 200))}
	}
	text = strings.Replace(text, a.Search, a.Replace, 1)
	if len(text) > f.maxWrite {
		return Result{}, tooLarge("the edited file", int64(len(text)), int64(f.maxWrite), "the files tools handle smaller files")
	}
	c.record("base_hash", attrib.Hash(b))
	out, err := f.store(ctx, c, root, pl, me, []byte(text), a.Token, a.Path)
	if err != nil {
		return Result{}, err
	}
	return Result{Structured: out, Text: out.text("Edited", agent.Now(ctx))}, nil
}

// openToWrite checks that the caller may write, and opens the workspace
// root of its session with the file at path in it, for fs_write and fs_edit:
// the caller's agent id, the place and the open root (the caller closes it).
func (f *files) openToWrite(ctx context.Context, c *Call, sessionID, path string) (string, place, *os.Root, error) {
	if err := c.Scope.CanWrite(); err != nil {
		return "", place{}, nil, err
	}
	me, err := c.me()
	if err != nil {
		return "", place{}, nil, err
	}
	pl, root, err := f.openPlace(ctx, c, sessionID, path, fileToWrite)
	if err != nil {
		return "", place{}, nil, err
	}
	return me, pl, root, nil
}

// store writes data to the file at pl under a fencing token (see Files)
// and returns what it did.
func (f *files) store(ctx context.Context, c *Call, root *os.Root, pl place, me string, data []byte, token int64, arg string) (writeOut, error) {
	if pl.rel == "." {
		return writeOut{}, &toolError{err: ErrNotFile, msg: "the workspace root is a directory: send the path of a file in it"}
	}
	if strings.ContainsAny(pl.file.Rel, "*?[") {
		return writeOut{}, c.argError("%q: the files tools cannot lease a file whose path contains *, ? or [", clip(arg, 200))
	}
	// What is there now: a file keeps its mode; a directory is refused.
	mode, created := fs.FileMode(0o666), false
	switch fi, err := root.Stat(pl.rel); {
	case err == nil && fi.IsDir():
		return writeOut{}, &toolError{err: ErrNotFile, msg: fmt.Sprintf("%q is a directory: write a file inside it", clip(arg, 200))}
	case err == nil && !fi.Mode().IsRegular():
		return writeOut{}, &toolError{err: ErrNotFile, msg: fmt.Sprintf("%q is not a regular file (%s)", clip(arg, 200), fi.Mode().Type())}
	case err == nil:
		mode = fi.Mode().Perm()
	case errors.Is(err, fs.ErrNotExist):
		created = true
	default:
		return writeOut{}, err
	}
	key := pl.file.String()
	held, taken, err := f.fence(ctx, c, me, key, token)
	if err != nil {
		return writeOut{}, err
	}
	hash := attrib.Hash(data)
	leaseRel, _ := unqualify(held.Resource)
	c.record("fencing_token", held.Token)
	c.record("lease", leaseRel)
	c.record("hash", hash)
	c.record("bytes", len(data))
	if taken {
		c.record("lease_taken", true)
	}

	// The bytes go to a synced temporary file first, so that once the
	// transaction has committed only a rename is left to do.
	dir := path.Dir(pl.rel)
	made, err := mkdirs(root, dir)
	undo := func(tmp string) {
		if tmp != "" {
			_ = root.Remove(tmp)
		}
		for i := len(made) - 1; i >= 0; i-- {
			_ = root.Remove(made[i]) // only while still empty
		}
	}
	if err != nil {
		undo("")
		return writeOut{}, err
	}
	tmp, err := writeTemp(root, dir, path.Base(pl.rel), data, mode, created)
	if err != nil {
		undo("")
		return writeOut{}, err
	}
	model := ""
	if rec, err := c.agentRecord(ctx); err == nil {
		model = rec.Model
	}
	_, err = c.Scope.Store().Update(ctx, func(tx kv.Tx) error {
		if err := lease.CheckFence(tx, c.Scope, held.Resource, me, held.Token); err != nil {
			return err
		}
		if err := attrib.CheckNoUnsavedEdits(tx, c.Scope, key, time.Now()); err != nil {
			return err
		}
		return attrib.RecordAgentWrite(tx, c.Scope, key, hash, me, model, pl.session)
	})
	if err != nil {
		undo(tmp)
		var fe *lease.FenceError
		if errors.As(err, &fe) {
			return writeOut{}, fenceError(ctx, c, key, fe)
		}
		var ue *attrib.UnsavedEditsError
		if errors.As(err, &ue) {
			// A human's unsaved edits are a conflict over the file, like
			// another's lease: the agent should wait, not retry blindly.
			c.record("unsaved_edits", len(ue.Editors))
			return writeOut{}, &toolError{err: attrib.ErrUnsavedEdits,
				msg: fmt.Sprintf("%s has unsaved edits by a human (%s): the write was refused so as not to overwrite their work; wait until they save or close it (or message them), then read the file again and retry", pl.rel, editorsText(ue.Editors))}
		}
		return writeOut{}, err
	}
	if err := root.Rename(tmp, pl.rel); err != nil {
		undo(tmp)
		return writeOut{}, err
	}
	if d, err := root.Open(dir); err == nil {
		// Make the rename durable; a failure here leaves it merely
		// as durable as the file system makes renames by itself.
		_ = d.Sync()
		d.Close()
	}
	return writeOut{Path: pl.rel, Bytes: len(data), Hash: hash, Created: created, Lease: leaseRel, Project: pl.project.Name,
		Token: held.Token, LeaseExpires: held.Expires.UTC(), LeaseTaken: taken}, nil
}

// editorsText names the humans holding unsaved edits of a file.
func editorsText(eds []attrib.Editing) string {
	var who []string
	for _, ed := range eds {
		s := ed.User
		if ed.Client != "" {
			s += " in " + ed.Client
		}
		who = append(who, s+", editing since "+ed.Since.UTC().Format(time.RFC3339))
	}
	return strings.Join(who, "; ")
}

// fence returns the lease a write of the file key presents: the caller's
// grant with the token sent (or, when that is no current grant, the key
// with that token, which CheckFence then refuses), else the caller's
// exclusive lease covering the file, else a new exclusive lease on it,
// which the write takes.
func (f *files) fence(ctx context.Context, c *Call, me, key string, token int64) (lease.Lease, bool, error) {
	held, err := lease.List(ctx, c.Scope, me)
	if err != nil {
		return lease.Lease{}, false, err
	}
	if token > 0 {
		for _, h := range held {
			if h.Token != token || (h.Resource != key && !lease.Match(h.Resource, key)) {
				continue
			}
			if h.Mode != lease.Exclusive {
				return lease.Lease{}, false, &toolError{err: lease.ErrFenced, msg: fmt.Sprintf("your lease on %s (token %d) is shared: writing needs an exclusive lease; take one with lease_acquire", c.show(ctx, h.Resource), token)}
			}
			return h.Lease, false, nil
		}
		return lease.Lease{Resource: key, Token: token}, false, nil
	}
	now := agent.Now(ctx)
	for _, exact := range []bool{true, false} {
		for _, h := range held {
			if h.Mode == lease.Exclusive && (h.Resource == key) == exact && lease.Match(h.Resource, key) && now.Before(h.Expires) {
				return h.Lease, false, nil
			}
		}
	}
	// Acquiring renews a grant of ours on the file that has expired but
	// is still recorded, keeping its token.
	l, err := lease.Acquire(ctx, c.Scope, lease.Request{Resource: key, Mode: lease.Exclusive, TTL: f.leaseTTL})
	var ce *lease.ConflictError
	if errors.As(err, &ce) {
		return lease.Lease{}, false, conflictError(ctx, c, key, ce, now)
	}
	if err != nil {
		return lease.Lease{}, false, err
	}
	return l, true, nil
}

// fenceError rewrites a refused fencing token for a model, naming who
// holds the file now.
func fenceError(ctx context.Context, c *Call, key string, fe *lease.FenceError) error {
	now := agent.Now(ctx)
	held := "nobody holds it now"
	if hs, err := lease.Holders(ctx, c.Scope, key); err == nil && len(hs) > 0 {
		var parts []string
		for _, h := range hs {
			who := "agent " + h.Agent
			if h.AgentName != "" {
				who += " (" + h.AgentName + ")"
			}
			parts = append(parts, fmt.Sprintf("%s holds %s (%s, token %d; %s) until %s", who, c.show(ctx, h.Resource), h.Mode, h.Token, h.Liveness, until(now, h.Expires)))
		}
		held = strings.Join(parts, "; ")
	}
	return &toolError{err: fe, msg: fmt.Sprintf("token %d is not a current lease of yours on %s (the latest token is %d): %s. Nothing was written; take the lease again (lease_acquire, or fs_write without a token) and retry",
		fe.Token, c.show(ctx, fe.Resource), fe.Latest, held)}
}

// mkdirs creates the missing directories of dir (relative to root) and
// returns those it created, outermost first.
func mkdirs(root *os.Root, dir string) ([]string, error) {
	if dir == "." {
		return nil, nil
	}
	var made []string
	cur := ""
	for seg := range strings.SplitSeq(dir, "/") {
		cur = path.Join(cur, seg)
		err := root.Mkdir(cur, 0o777)
		switch {
		case err == nil:
			made = append(made, cur)
		case errors.Is(err, fs.ErrExist):
			if fi, err := root.Stat(cur); err != nil || !fi.IsDir() {
				return made, &toolError{err: ErrNotFile, msg: fmt.Sprintf("%q is a file, not a directory", cur)}
			}
		default:
			return made, err
		}
	}
	return made, nil
}

// writeTemp writes data to a new temporary file in dir, synced, with the
// mode of the file it will replace (or the default mode of a new file),
// and returns its name relative to root. The name ends in "~", which the
// watcher ignores: it sees the rename over the file, not the temporary.
func writeTemp(root *os.Root, dir, base string, data []byte, mode fs.FileMode, created bool) (string, error) {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	name := path.Join(dir, "."+clip(base, 64)+".coditect-"+hex.EncodeToString(rnd[:])+"~")
	perm := fs.FileMode(0o600)
	if created {
		perm = mode // 0o666 less the umask, as editors create files
	}
	file, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return "", err
	}
	_, err = file.Write(data)
	if err == nil && !created {
		err = file.Chmod(mode)
	}
	if err == nil {
		err = file.Sync()
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = root.Remove(name)
		return "", err
	}
	return name, nil
}
