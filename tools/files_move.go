package tools

import (
	"context"
	"fmt"
	"os"
	"path"
	"time"

	"github.com/coditect/coditect/internal/atomicwrite"
	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/kv"
)

// --- fs_move and fs_delete ---

// heldOut is a lease a change of files presented.
type heldOut struct {
	Lease   string    `json:"lease"`
	Token   int64     `json:"token"`
	Expires time.Time `json:"expires"`
	Taken   bool      `json:"taken,omitempty"`
}

func (h hold) out() heldOut {
	rel, _ := unqualify(h.lease.Resource)
	return heldOut{Lease: rel, Token: h.lease.Token, Expires: h.lease.Expires.UTC(), Taken: h.taken}
}

type moveArgs struct {
	SessionID string `json:"session_id"`
	Path      string `json:"path"`
	To        string `json:"to"`
	Token     int64  `json:"token"`
}

type moveOut struct {
	From    string `json:"from"`
	Path    string `json:"path"`
	Bytes   int64  `json:"bytes"`
	Hash    string `json:"hash"`
	Project string `json:"project,omitempty"`
	// Leases are those of the file's old and new paths.
	Leases []heldOut `json:"leases"`
}

const leasesSchema = `"leases":{"type":"array","items":{"type":"object","required":["lease","token","expires"],"properties":{
	"lease":{"type":"string"},"token":{"type":"integer"},"expires":{"type":"string"},"taken":{"type":"boolean"}}}}`

func (f *files) moveTool() *Tool {
	return spec{
		name: "fs_move", title: "Move a file",
		description: "Rename or move a file within a session's workspace, under the leases of both paths; never replaces a file.",
		hints:       writeHints,
		input: `{"type":"object","required":["session_id","path","to"],"additionalProperties":false,"properties":{
			"session_id":{"type":"string"},
			"path":{"type":"string","description":"The file to move, relative to the workspace root"},
			"to":{"type":"string","description":"Its new path, relative to the workspace root; must not exist"},
			"token":{"type":"integer","description":"Fencing token of your lease on path, if you hold one"}}}`,
		output: `{"type":"object","required":["from","path","bytes","hash","leases"],"properties":{
			"from":{"type":"string"},"path":{"type":"string"},"bytes":{"type":"integer"},"hash":{"type":"string"},"project":{"type":"string"},` + leasesSchema + `}}`,
		example: `{"session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T","path":"src/hello.go","to":"src/greeting.go"}`,
		handler: f.move,
	}.tool()
}

func (f *files) move(ctx context.Context, c *Call) (res Result, err error) {
	var a moveArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	switch {
	case a.Path == "":
		return Result{}, c.argError("%q is required: the path of the file to move, relative to the workspace root", "path")
	case a.To == "":
		return Result{}, c.argError("%q is required: the file's new path, relative to the workspace root", "to")
	case a.Token < 0:
		return Result{}, c.argError("%q must be the positive token lease_acquire returned, not %d", "token", a.Token)
	}
	me, from, root, err := f.openToWrite(ctx, c, a.SessionID, a.Path)
	if err != nil {
		return Result{}, err
	}
	defer root.Close()
	size, hash, err := f.changeable(c, root, from, a.Path, "move")
	if err != nil {
		return Result{}, err
	}
	to, err := f.place(ctx, c, a.SessionID, a.To, fileToWrite)
	if err != nil {
		return Result{}, err
	}
	c.record("from", from.rel)
	if err := leasable(c, to, a.To); err != nil {
		return Result{}, err
	}
	if to.file == from.file {
		return Result{}, c.argError("%q and %q name the same file, %s", "path", "to", from.rel)
	}
	if _, created, err := target(root, to.rel, a.To); err != nil {
		return Result{}, err
	} else if !created {
		return Result{}, &toolError{err: ErrExists, msg: fmt.Sprintf("%q exists: fs_move never replaces a file; choose another name, or delete it first with fs_delete", textclip.Clip(a.To, 200))}
	}
	if res, ok, err := f.proposeMove(ctx, c, root, from, to, me, a.Token, size, hash); ok || err != nil {
		return res, err
	}
	src, err := f.guard(ctx, c, me, from, a.Token, "")
	if err != nil {
		return Result{}, err
	}
	var dst hold
	defer func() {
		if err != nil {
			letGo(ctx, c, src, dst)
		}
	}()
	if dst, err = f.guard(ctx, c, me, to, 0, "to_"); err != nil {
		return Result{}, err
	}
	c.record("hash", hash)
	made, err := atomicwrite.MakeDirs(root, path.Dir(to.rel))
	if err != nil {
		return Result{}, notDir(err)
	}
	// The new path gets the content's hash as the agent's write (a rename
	// the watcher sees, or a creation if it sees a deletion and a
	// creation), the old one a deletion record.
	err = f.commit(ctx, c, me, "move", []hold{src, dst}, func(tx kv.Tx, model string) error {
		if err := attrib.RecordAgentWrite(tx, c.Scope, dst.key, hash, me, model, to.session); err != nil {
			return err
		}
		return attrib.RecordAgentDelete(tx, c.Scope, src.key, me, model, from.session)
	})
	if err != nil {
		made.Remove()
		return Result{}, err
	}
	if err = f.fault("move"); err == nil {
		err = atomicwrite.Rename(root, from.rel, to.rel)
	}
	if err != nil {
		withdrawDeletion(ctx, c, me, src.key)
		made.Remove()
		return Result{}, err
	}
	out := moveOut{From: from.rel, Path: to.rel, Bytes: size, Hash: hash, Project: from.project.Name, Leases: []heldOut{src.out(), dst.out()}}
	return Result{Structured: out, Text: fmt.Sprintf("Moved %s to %s (%d bytes, %s). %s",
		out.From, out.Path, out.Bytes, out.Hash, leasesText(out.Leases, agent.Now(ctx)))}, nil
}

// changeable checks that the file at pl can be moved or deleted (op): a
// regular file the path names itself, not through a symbolic link as its
// last element (that would change the link's target and leave the link
// dangling). It returns the file's size and content hash.
func (f *files) changeable(c *Call, root *os.Root, pl place, arg, op string) (int64, string, error) {
	if err := leasable(c, pl, arg); err != nil {
		return 0, "", err
	}
	if fi, err := root.Lstat(path.Clean(arg)); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return 0, "", &toolError{err: ErrNotFile, msg: fmt.Sprintf("%q is a symbolic link (to %s): fs_%s works on files, not links; name the file itself", textclip.Clip(arg, 200), pl.rel, op)}
	}
	fi, err := root.Stat(pl.rel)
	if err != nil {
		return 0, "", notExist(err, arg)
	}
	if err := regular(fi, arg); err != nil {
		return 0, "", err
	}
	file, err := root.Open(pl.rel)
	if err != nil {
		return 0, "", notExist(err, arg)
	}
	defer file.Close()
	hash, err := attrib.HashReader(file)
	return fi.Size(), hash, err
}

// leasesText tells a model which leases it now holds.
func leasesText(ls []heldOut, now time.Time) string {
	s := "You hold the lease on"
	for i, l := range ls {
		if i > 0 {
			s += " and on"
		}
		s += fmt.Sprintf(" %q (token %d%s) until %s", l.Lease, l.Token, map[bool]string{true: ", taken for you"}[l.Taken], until(now, l.Expires))
	}
	return s + "; release it with lease_release when you are done."
}

type deleteArgs struct {
	SessionID string `json:"session_id"`
	Path      string `json:"path"`
	Token     int64  `json:"token"`
}

type deleteOut struct {
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"`
	// Hash is the hash of the content deleted.
	Hash    string    `json:"hash"`
	Project string    `json:"project,omitempty"`
	Leases  []heldOut `json:"leases"`
}

func (f *files) deleteTool() *Tool {
	return spec{
		name: "fs_delete", title: "Delete a file",
		description: "Delete a file of a session's workspace; takes the file's lease for you unless you send its token.",
		hints:       writeHints,
		input: `{"type":"object","required":["session_id","path"],"additionalProperties":false,"properties":{
			"session_id":{"type":"string"},
			"path":{"type":"string","description":"Relative to the workspace root"},
			"token":{"type":"integer","description":"Fencing token from lease_acquire, if you hold the lease"}}}`,
		output: `{"type":"object","required":["path","bytes","hash","leases"],"properties":{
			"path":{"type":"string"},"bytes":{"type":"integer"},"hash":{"type":"string","description":"Of the content deleted"},"project":{"type":"string"},` + leasesSchema + `}}`,
		example: `{"session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T","path":"src/hello.go"}`,
		handler: f.delete,
	}.tool()
}

func (f *files) delete(ctx context.Context, c *Call) (res Result, err error) {
	var a deleteArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	switch {
	case a.Path == "":
		return Result{}, c.argError("%q is required: the path of the file to delete, relative to the workspace root", "path")
	case a.Token < 0:
		return Result{}, c.argError("%q must be the positive token lease_acquire returned, not %d", "token", a.Token)
	}
	me, pl, root, err := f.openToWrite(ctx, c, a.SessionID, a.Path)
	if err != nil {
		return Result{}, err
	}
	defer root.Close()
	size, hash, err := f.changeable(c, root, pl, a.Path, "delete")
	if err != nil {
		return Result{}, err
	}
	if res, ok, err := f.proposeMove(ctx, c, root, pl, place{}, me, a.Token, size, hash); ok || err != nil {
		return res, err
	}
	old, known := prior(root, pl.rel, f.maxRead)
	h, err := f.guard(ctx, c, me, pl, a.Token, "")
	if err != nil {
		return Result{}, err
	}
	defer func() {
		if err != nil {
			letGo(ctx, c, h)
		}
	}()
	c.record("hash", hash)
	err = f.commit(ctx, c, me, "delete", []hold{h}, func(tx kv.Tx, model string) error {
		return attrib.RecordAgentDelete(tx, c.Scope, h.key, me, model, pl.session)
	})
	if err != nil {
		return Result{}, err
	}
	if err = f.fault("delete"); err == nil {
		err = atomicwrite.Remove(root, pl.rel)
	}
	if err != nil {
		withdrawDeletion(ctx, c, me, h.key)
		return Result{}, err
	}
	recordDiff(c, pl.rel, old, nil, known)
	out := deleteOut{Path: pl.rel, Bytes: size, Hash: hash, Project: pl.project.Name, Leases: []heldOut{h.out()}}
	return Result{Structured: out, Text: fmt.Sprintf("Deleted %s (%d bytes, %s). %s", out.Path, out.Bytes, out.Hash, leasesText(out.Leases, agent.Now(ctx)))}, nil
}
