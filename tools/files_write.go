package tools

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coditect/coditect/internal/atomicwrite"
	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/kv"
)

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
	// Edits is the number of replacements fs_edit made.
	Edits int `json:"edits,omitempty"`
}

const writeSchema = `{"type":"object","required":["path","bytes","hash","created","lease","token","lease_expires"],"properties":{
	"path":{"type":"string"},"bytes":{"type":"integer"},"hash":{"type":"string"},"created":{"type":"boolean"},
	"lease":{"type":"string"},"project":{"type":"string"},"token":{"type":"integer"},"lease_expires":{"type":"string"},"lease_taken":{"type":"boolean"},
	"edits":{"type":"integer"}}}`

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
	if res, ok, err := f.proposeWrite(ctx, c, root, pl, me, []byte(*a.Content), nil, a.Token, a.Path, "write"); ok || err != nil {
		return res, err
	}
	out, err := f.store(ctx, c, root, pl, me, []byte(*a.Content), nil, a.Token, a.Path)
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

// maxEdits is the most replacements one fs_edit makes.
const maxEdits = 50

// replacement is one exact replacement of fs_edit. Both fields are
// pointers so that a missing (or null) one is told apart from "".
type replacement struct {
	Search  *string `json:"search"`
	Replace *string `json:"replace"`
}

type editArgs struct {
	SessionID string        `json:"session_id"`
	Path      string        `json:"path"`
	Search    *string       `json:"search"`
	Replace   *string       `json:"replace"`
	Edits     []replacement `json:"edits"`
	Token     int64         `json:"token"`
}

func (f *files) editTool() *Tool {
	return spec{
		name: "fs_edit", title: "Edit a file",
		description: "Replace exact text in a file of a session's workspace: one search/replace, or several edits, all or none.",
		hints:       writeHints,
		input: `{"type":"object","required":["session_id","path"],"additionalProperties":false,"dependentRequired":{"search":["replace"],"replace":["search"]},"properties":{
			"session_id":{"type":"string"},
			"path":{"type":"string","description":"Relative to the workspace root"},
			"search":{"type":"string","description":"Exact text to replace, as fs_read's content shows it (without line numbers); it must occur exactly once"},
			"replace":{"type":"string","description":"The new text (\"\" deletes the search text)"},
			"edits":{"type":"array","items":{"type":"object","required":["search","replace"],"additionalProperties":false,"properties":{"search":{"type":"string"},"replace":{"type":"string"}}},
			"description":"Instead of search/replace: several replacements, applied together or not at all; each search must occur exactly once in the file as it is before the edits, and they may not overlap"},
			"token":{"type":"integer","description":"Fencing token from lease_acquire, if you hold the lease"}}}`,
		output:  writeSchema,
		example: `{"session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T","path":"src/a.go","edits":[{"search":"return 301","replace":"return 302"},{"search":"func status()","replace":"func code()"}]}`,
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
	if a.Path == "" {
		return Result{}, c.argError("%q is required: the file's path relative to the workspace root", "path")
	}
	if a.Token < 0 {
		return Result{}, c.argError("%q must be the positive token lease_acquire returned, not %d", "token", a.Token)
	}
	edits, err := f.replacements(c, a)
	if err != nil {
		return Result{}, err
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
		return Result{}, &toolError{err: ErrNotText, msg: fmt.Sprintf("%q is not UTF-8 text: fs_edit edits text; replace the file whole with fs_write", textclip.Clip(a.Path, 200))}
	}
	text, err := applyEdits(string(b), edits, a.Path)
	if err != nil {
		return Result{}, err
	}
	if len(text) > f.maxWrite {
		return Result{}, tooLarge("the edited file", int64(len(text)), int64(f.maxWrite), "the files tools handle smaller files")
	}
	c.record("base_hash", attrib.Hash(b))
	c.record("edits", len(edits))
	if res, ok, err := f.proposeWrite(ctx, c, root, pl, me, []byte(text), b, a.Token, a.Path, "edit"); ok || err != nil {
		return res, err
	}
	out, err := f.store(ctx, c, root, pl, me, []byte(text), b, a.Token, a.Path)
	if err != nil {
		return Result{}, err
	}
	out.Edits = len(edits)
	verb := "Edited"
	if len(edits) > 1 {
		verb = fmt.Sprintf("Made %d replacements in", len(edits))
	}
	return Result{Structured: out, Text: out.text(verb, agent.Now(ctx))}, nil
}

// edit is one replacement checked: its search text and the new text.
type edit struct{ search, replace string }

// replacements returns fs_edit's replacements: search and replace, or
// edits; never both, never none.
func (f *files) replacements(c *Call, a editArgs) ([]edit, error) {
	single := a.Search != nil || a.Replace != nil
	switch {
	case single && a.Edits != nil:
		return nil, c.argError("send either %q and %q or %q, not both", "search", "replace", "edits")
	case single:
		return f.checkEdits(c, []replacement{{a.Search, a.Replace}}, "")
	case len(a.Edits) == 0:
		return nil, c.argError("%q and %q are required (or %q, a list of {search, replace}): the exact text to replace, copied from fs_read's content, and the new text", "search", "replace", "edits")
	case len(a.Edits) > maxEdits:
		return nil, c.argError("%q holds %d replacements; the limit is %d: split the change, or write the file with fs_write", "edits", len(a.Edits), maxEdits)
	}
	return f.checkEdits(c, a.Edits, "edits")
}

// checkEdits checks each replacement's fields; list names the argument
// holding them ("" for the single form).
func (f *files) checkEdits(c *Call, rs []replacement, list string) ([]edit, error) {
	out := make([]edit, len(rs))
	for i, r := range rs {
		name := func(field string) string {
			if list == "" {
				return fmt.Sprintf("%q", field)
			}
			return fmt.Sprintf("%q of edit %d", field, i+1)
		}
		switch {
		case r.Search == nil || *r.Search == "":
			return nil, c.argError("%s is required: the exact text to replace, copied from fs_read's content", name("search"))
		case r.Replace == nil:
			return nil, c.argError("%s is required: the new text (\"\" to delete the search text)", name("replace"))
		case *r.Search == *r.Replace:
			return nil, c.argError("%s equals %s: nothing would change", name("replace"), name("search"))
		case len(*r.Search) > f.maxWrite:
			return nil, tooLarge(name("search"), int64(len(*r.Search)), int64(f.maxWrite), "send a shorter, still unique piece of text")
		case len(*r.Replace) > f.maxWrite:
			return nil, tooLarge(name("replace"), int64(len(*r.Replace)), int64(f.maxWrite), "write the file with fs_write instead")
		}
		out[i] = edit{*r.Search, *r.Replace}
	}
	return out, nil
}

// applyEdits applies the replacements to text all at once: each search
// must occur exactly once in text as it is before any of them, and no two
// may overlap; otherwise none is applied.
func applyEdits(text string, edits []edit, arg string) (string, error) {
	type found struct{ at, end, i int }
	spans := make([]found, len(edits))
	which := func(i int) string {
		if len(edits) == 1 {
			return "the search text"
		}
		return fmt.Sprintf("the search text of edit %d", i+1)
	}
	for i, e := range edits {
		switch n := strings.Count(text, e.search); n {
		case 1:
		case 0:
			return "", &toolError{err: ErrNoMatch, msg: fmt.Sprintf("%s does not occur in %q; nothing was changed: read the file with fs_read and copy the exact text from its content (without the line numbers), spaces and line breaks included", which(i), textclip.Clip(arg, 200))}
		default:
			return "", &toolError{err: ErrNoMatch, msg: fmt.Sprintf("%s occurs %d times in %q; nothing was changed: add the lines around it so that it occurs exactly once", which(i), n, textclip.Clip(arg, 200))}
		}
		at := strings.Index(text, e.search)
		spans[i] = found{at, at + len(e.search), i}
	}
	slices.SortFunc(spans, func(x, y found) int { return x.at - y.at })
	var b strings.Builder
	b.Grow(len(text))
	pos := 0
	for k, s := range spans {
		if k > 0 && s.at < spans[k-1].end {
			x, y := min(spans[k-1].i, s.i), max(spans[k-1].i, s.i)
			return "", &toolError{err: ErrNoMatch, msg: fmt.Sprintf("edits %d and %d overlap in %q (line %d); nothing was changed: merge them into one edit", x+1, y+1, textclip.Clip(arg, 200), strings.Count(text[:s.at], "\n")+1)}
		}
		b.WriteString(text[pos:s.at])
		b.WriteString(edits[s.i].replace)
		pos = s.end
	}
	b.WriteString(text[pos:])
	return b.String(), nil
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

// store writes data to the file at pl under a fencing token (see Files),
// records its diff from old (read here when nil) and returns what it did.
func (f *files) store(ctx context.Context, c *Call, root *os.Root, pl place, me string, data, old []byte, token int64, arg string) (out writeOut, err error) {
	if err := leasable(c, pl, arg); err != nil {
		return writeOut{}, err
	}
	// What is there now: a file keeps its mode; a directory is refused.
	mode, created, err := target(root, pl.rel, arg)
	if err != nil {
		return writeOut{}, err
	}
	known := true
	if old == nil && !created {
		old, known = prior(root, pl.rel, f.maxRead)
	}
	h, err := f.guard(ctx, c, me, pl, token, "")
	if err != nil {
		return writeOut{}, err
	}
	defer func() {
		if err != nil {
			letGo(ctx, c, h)
		}
	}()
	hash := attrib.Hash(data)
	c.record("hash", hash)
	c.record("bytes", len(data))

	// The bytes go to a synced temporary file first, so that once the
	// transaction has committed only a rename is left to do.
	staged, err := atomicwrite.Stage(root, pl.rel, data, mode, created)
	if err != nil {
		return writeOut{}, notDir(err)
	}
	err = f.commit(ctx, c, me, "write", []hold{h}, func(tx kv.Tx, model string) error {
		return attrib.RecordAgentWrite(tx, c.Scope, h.key, hash, me, model, pl.session)
	})
	if err == nil {
		err = f.fault("write")
	}
	if err == nil {
		err = staged.Commit()
	}
	if err != nil {
		staged.Abort()
		return writeOut{}, err
	}
	recordDiff(c, pl.rel, old, data, known)
	leaseRel, _ := unqualify(h.lease.Resource)
	return writeOut{Path: pl.rel, Bytes: len(data), Hash: hash, Created: created, Lease: leaseRel, Project: pl.project.Name,
		Token: h.lease.Token, LeaseExpires: h.lease.Expires.UTC(), LeaseTaken: h.taken}, nil
}

// leasable refuses a place the files tools cannot change: the workspace
// root, and a path a lease cannot name.
func leasable(c *Call, pl place, arg string) error {
	if pl.rel == "." {
		return &toolError{err: ErrNotFile, msg: "the workspace root is a directory: send the path of a file in it"}
	}
	if strings.ContainsAny(pl.file.Rel, "*?[") {
		return c.argError("%q: the files tools cannot lease a file whose path contains *, ? or [", textclip.Clip(arg, 200))
	}
	return nil
}

// target says what a write finds at rel: a regular file (its mode) or
// nothing (created is set); anything else is refused.
func target(root *os.Root, rel, arg string) (mode fs.FileMode, created bool, err error) {
	switch fi, err := root.Stat(rel); {
	case err == nil && fi.IsDir():
		return 0, false, &toolError{err: ErrNotFile, msg: fmt.Sprintf("%q is a directory: write a file inside it", textclip.Clip(arg, 200))}
	case err == nil && !fi.Mode().IsRegular():
		return 0, false, &toolError{err: ErrNotFile, msg: fmt.Sprintf("%q is not a regular file (%s)", textclip.Clip(arg, 200), fi.Mode().Type())}
	case err == nil:
		return fi.Mode().Perm(), false, nil
	case errors.Is(err, fs.ErrNotExist):
		return 0o666, true, nil
	default:
		return 0, false, err
	}
}
