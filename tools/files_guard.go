package tools

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/coditect/coditect/internal/atomicwrite"
	"github.com/coditect/coditect/internal/filediff"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/lease"
)

// A change of files (fs_write, fs_edit, fs_move, fs_delete) goes through
// one path, so that every change is fenced, checked and attributed alike:
// guard finds or takes the exclusive lease of each file it changes; commit
// checks, in one transaction before any byte reaches the disk, each
// lease's fencing token (lease.CheckFence) and that no human holds unsaved
// edits of the file (attrib.CheckNoUnsavedEdits), and records the
// evidence the watcher attributes the change by; when the change then
// fails, letGo releases the leases the call took itself, so that a
// refused change leaves no lease behind.

// hold is the lease a change presents for one file: the file's key
// (project.File), its path for a model, the lease and whether the call
// took it.
type hold struct {
	key, rel string
	lease    lease.Lease
	taken    bool
}

// guard returns the lease a change of the file at pl presents (see fence)
// and records it in the call's tool.called event under prefix ("" for the
// file a call is about, "to_" for a move's destination).
func (f *files) guard(ctx context.Context, c *Call, me string, pl place, token int64, prefix string) (hold, error) {
	key := pl.file.String()
	held, taken, err := f.fence(ctx, c, me, key, token)
	if err != nil {
		return hold{}, err
	}
	leaseRel, _ := unqualify(held.Resource)
	c.record(prefix+"fencing_token", held.Token)
	c.record(prefix+"lease", leaseRel)
	if taken {
		c.record(prefix+"lease_taken", true)
	}
	return hold{key: key, rel: pl.rel, lease: held, taken: taken}, nil
}

// letGo releases the leases of hs the call took itself, after its change
// failed, best effort: a lease that cannot be released expires.
func letGo(ctx context.Context, c *Call, hs ...hold) {
	ctx = context.WithoutCancel(ctx)
	for _, h := range hs {
		if !h.taken {
			continue
		}
		if err := lease.Release(ctx, c.Scope, h.lease.Resource, h.lease.Token); err == nil {
			c.record("lease_released", true)
		}
	}
}

// commit checks, in one transaction, every hold's fencing token and that
// no human holds unsaved edits of its file, and runs evidence (which
// records what the change will do, for the watcher) in that transaction.
// Its errors are told for a model, op naming the change ("write", "move",
// "delete").
func (f *files) commit(ctx context.Context, c *Call, me, op string, hs []hold, evidence func(tx kv.Tx, model string) error) error {
	model := ""
	if rec, err := c.agentRecord(ctx); err == nil {
		model = rec.Model
	}
	var blocked hold
	_, err := c.Scope.Store().Update(ctx, func(tx kv.Tx) error {
		for _, h := range hs {
			if err := lease.CheckFence(tx, c.Scope, h.lease.Resource, me, h.lease.Token); err != nil {
				blocked = h
				return err
			}
		}
		for _, h := range hs {
			if err := attrib.CheckNoUnsavedEdits(tx, c.Scope, h.key, time.Now()); err != nil {
				blocked = h
				return err
			}
		}
		return evidence(tx, model)
	})
	var fe *lease.FenceError
	var ue *attrib.UnsavedEditsError
	switch {
	case errors.As(err, &fe):
		return fenceError(ctx, c, blocked.key, fe)
	case errors.As(err, &ue):
		// A human's unsaved edits are a conflict over the file, like
		// another's lease: the agent should wait, not retry blindly.
		c.record("unsaved_edits", len(ue.Editors))
		return &toolError{err: attrib.ErrUnsavedEdits,
			msg: fmt.Sprintf("%s has unsaved edits by a human (%s): the %s was refused so as not to overwrite their work; wait until they save or close it (or message them), then read the file again and retry", blocked.rel, editorsText(ue.Editors), op)}
	}
	return err
}

// withdrawDeletion takes back, best effort, the deletion record a move or
// delete committed before its disk step failed: it would otherwise
// explain someone else's later deletion of the file.
func withdrawDeletion(ctx context.Context, c *Call, me, key string) {
	_, _ = c.Scope.Store().Update(context.WithoutCancel(ctx), func(tx kv.Tx) error {
		return attrib.Withdraw(tx, c.Scope, key, attrib.AgentDelete, me)
	})
}

// maxDiff bounds the JSON encoding of the diff a change records, so
// that with the call's other attributes (its arguments are cut to
// maxAuditArgs) its tool.called event stays well under audit.MaxAttrs.
const maxDiff = 16 << 10

// prior returns the content of the file at rel before a change, for the
// change's diff; ok is false when it cannot be read within limit bytes.
func prior(root *os.Root, rel string, limit int) (b []byte, ok bool) {
	b, _, err := readFile(root, rel, rel, limit)
	return b, err == nil
}

// recordDiff records in the call's tool.called event what a change did
// to the file at rel: the unified diff from old to new (nil: no file),
// bounded by maxDiff, with token-looking text redacted as in the
// arguments, and its line counts; a summary for binary content, or when
// the old content could not be read (known false).
func recordDiff(c *Call, rel string, old, new []byte, known bool) {
	if !known {
		c.record("diff", "not diffed: the old content could not be read within the files tools' size limit")
		return
	}
	d := filediff.Of(rel, old, new, maxDiff)
	if d.Text == "" {
		return
	}
	c.record("diff", redactSecrets(d.Text))
	if d.Binary {
		c.record("diff_binary", true)
		return
	}
	c.record("diff_added", d.Added)
	c.record("diff_removed", d.Removed)
}

// fault is where a test makes the disk step of a change fail once its
// transaction committed (files.diskFault); nil otherwise.
func (f *files) fault(op string) error {
	if f.diskFault == nil {
		return nil
	}
	return f.diskFault(op)
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
	return &toolError{err: fe, msg: fmt.Sprintf("token %d is not a current lease of yours on %s (the latest token is %d); nothing was written. %s",
		fe.Token, c.show(ctx, fe.Resource), fe.Latest, c.heldBy(ctx, key))}
}

// notDir tells a model which path stands where a change needs a directory
// (atomicwrite.NotDirError); other errors pass unchanged.
func notDir(err error) error {
	var nd *atomicwrite.NotDirError
	if errors.As(err, &nd) {
		return &toolError{err: ErrNotFile, msg: fmt.Sprintf("%q is a file, not a directory", nd.Path)}
	}
	return err
}
