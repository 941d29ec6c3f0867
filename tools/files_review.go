package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/coditect/coditect/internal/filediff"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/review"
)

// Review before write. When the review policy of a file's project
// (storage/review) covers the file for the calling agent, a change through
// the files tools is not written: it becomes a proposal that holds the
// change's lease, and the tool answers with the proposal's id and what
// happens next (a result, not an error: the model waits for the message
// that tells the outcome). Without a policy, or for a file no rule covers,
// the change is written as always; the decision costs one point read.

// coverage is the rule that makes a change of the files at pls a
// proposal for the caller, if any.
type coverage struct {
	rule  review.Rule
	agent string // the agent's name
	model string
}

// covered reports whether the review policy of pls' project covers any
// of the files at pls for the caller.
func (f *files) covered(ctx context.Context, c *Call, me string, pls ...place) (coverage, bool, error) {
	if len(pls) == 0 {
		return coverage{}, false, nil
	}
	pol, err := review.PolicyFor(ctx, c.Scope, pls[0].project.ID)
	if err != nil || len(pol.Rules) == 0 {
		return coverage{}, false, err
	}
	rec, err := c.agentRecord(ctx)
	if err != nil {
		return coverage{}, false, err
	}
	for _, pl := range pls {
		if r, ok := pol.Covers(pl.file.Rel, me, rec.Name); ok {
			return coverage{rule: r, agent: rec.Name, model: rec.Model}, true, nil
		}
	}
	return coverage{}, false, nil
}

// flat is a change's result when it became a proposal: the fields of
// out, the result its tool describes (so its output schema holds), with
// the proposal's id and state.
func flat(out any, p review.Proposal) map[string]any {
	m := map[string]any{}
	if b, err := json.Marshal(out); err == nil {
		_ = json.Unmarshal(b, &m)
	}
	m["review"], m["state"] = p.ID, "proposed"
	return m
}

// proposeWrite makes fs_write's or fs_edit's change of the file at pl (to
// data, from old, nil when not read yet) a proposal when the policy
// covers it; ok is false when it does not, and the caller writes.
func (f *files) proposeWrite(ctx context.Context, c *Call, root *os.Root, pl place, me string, data, old []byte, token int64, arg string, kind review.Kind) (res Result, ok bool, err error) {
	cov, ok, err := f.covered(ctx, c, me, pl)
	if err != nil || !ok {
		return Result{}, false, err
	}
	if err := leasable(c, pl, arg); err != nil {
		return Result{}, true, err
	}
	_, created, err := target(root, pl.rel, arg)
	if err != nil {
		return Result{}, true, err
	}
	known := true
	if old == nil && !created {
		old, known = prior(root, pl.rel, f.maxRead)
	}
	// The base is what the change was computed from: accepting refuses
	// a file that no longer holds it.
	baseHash := ""
	switch {
	case !created && known:
		baseHash = attrib.Hash(old)
	case !created:
		if baseHash, err = fileHash(root, pl.rel); err != nil {
			return Result{}, true, err
		}
	}
	h, err := f.guard(ctx, c, me, pl, token, "")
	if err != nil {
		return Result{}, true, err
	}
	spec := f.spec(c, me, cov, kind, pl, old, data, known)
	spec.BaseHash = baseHash
	spec.Leases = []review.Held{{Resource: h.lease.Resource, Token: h.lease.Token, Taken: h.taken}}
	p, err := f.propose(ctx, c, spec, h)
	if err != nil {
		return Result{}, true, err
	}
	leaseRel, _ := unqualify(h.lease.Resource)
	out := writeOut{Path: pl.rel, Bytes: len(data), Hash: p.NewHash, Created: created, Lease: leaseRel, Project: pl.project.Name,
		Token: h.lease.Token, LeaseExpires: h.lease.Expires.UTC(), LeaseTaken: h.taken}
	out.LeaseExpires = p.Leases[0].Expires
	return Result{Structured: flat(out, p), Text: proposedText(p, agent.Now(ctx))}, true, nil
}

// proposeMove makes fs_move's or fs_delete's change a proposal when the
// policy covers one of its files (to is the zero place for a delete); ok
// is false when it does not.
func (f *files) proposeMove(ctx context.Context, c *Call, root *os.Root, from, to place, me string, token int64, size int64, hash string) (res Result, ok bool, err error) {
	pls := []place{from}
	kind := review.Delete
	if to.rel != "" {
		pls, kind = append(pls, to), review.Move
	}
	cov, ok, err := f.covered(ctx, c, me, pls...)
	if err != nil || !ok {
		return Result{}, false, err
	}
	old, known := prior(root, from.rel, f.maxRead)
	src, err := f.guard(ctx, c, me, from, token, "")
	if err != nil {
		return Result{}, true, err
	}
	hs := []hold{src}
	if kind == review.Move {
		dst, err := f.guard(ctx, c, me, to, 0, "to_")
		if err != nil {
			letGo(ctx, c, src)
			return Result{}, true, err
		}
		hs = append(hs, dst)
	}
	var spec review.Spec
	if kind == review.Move {
		spec = f.spec(c, me, cov, kind, from, old, nil, known)
		spec.To = to.file.Rel
		spec.Diff = fmt.Sprintf("rename from %s\nrename to %s\n", from.file.Rel, to.file.Rel)
		spec.Added, spec.Removed = 0, 0
	} else {
		spec = f.spec(c, me, cov, kind, from, old, nil, known)
	}
	spec.BaseHash = hash
	for _, h := range hs {
		spec.Leases = append(spec.Leases, review.Held{Resource: h.lease.Resource, Token: h.lease.Token, Taken: h.taken})
	}
	p, err := f.propose(ctx, c, spec, hs...)
	if err != nil {
		return Result{}, true, err
	}
	var leases []heldOut
	for i, h := range hs {
		ho := h.out()
		ho.Expires = p.Leases[i].Expires
		leases = append(leases, ho)
	}
	text := proposedText(p, agent.Now(ctx))
	if kind == review.Move {
		return Result{Structured: flat(moveOut{From: from.rel, Path: to.rel, Bytes: size, Hash: hash, Project: from.project.Name, Leases: leases}, p), Text: text}, true, nil
	}
	return Result{Structured: flat(deleteOut{Path: from.rel, Bytes: size, Hash: hash, Project: from.project.Name, Leases: leases}, p), Text: text}, true, nil
}

// spec is the proposal of a change of the file at pl from old to data.
func (f *files) spec(c *Call, me string, cov coverage, kind review.Kind, pl place, old, data []byte, known bool) review.Spec {
	s := review.Spec{Kind: kind, Project: pl.project.ID, Path: pl.file.Rel, Agent: me, AgentName: cov.agent, Model: cov.model,
		Session: pl.session, Glob: cov.rule.Glob, New: data, BaseKnown: known}
	if known {
		s.Base = old
		d := filediff.Of(pl.rel, old, data, maxDiff)
		s.Diff, s.Added, s.Removed, s.Binary = secretValue.ReplaceAllString(d.Text, "[redacted]"), d.Added, d.Removed, d.Binary
	} else {
		s.Diff = "not diffed: the old content could not be read within the files tools' size limit"
	}
	return s
}

// propose records the proposal; when that fails the leases the call took
// are released, as after any failed change.
func (f *files) propose(ctx context.Context, c *Call, s review.Spec, hs ...hold) (review.Proposal, error) {
	p, err := review.Propose(ctx, c.Scope, s)
	if err != nil {
		letGo(ctx, c, hs...)
		if errors.Is(err, review.ErrPending) {
			return p, &toolError{err: err, msg: fmt.Sprintf("%s: nothing was proposed; wait for the message that tells its outcome, then read the file again", err)}
		}
		return p, err
	}
	c.record("review", p.ID)
	c.record("review_glob", p.Glob)
	return p, nil
}

// proposedText tells a model that its change waits for a person.
func proposedText(p review.Proposal, now time.Time) string {
	what := p.Path
	if p.To != "" {
		what += " to " + p.To
	}
	var ls []string
	for _, l := range p.Leases {
		rel, _ := unqualify(l.Resource)
		ls = append(ls, fmt.Sprintf("%q (token %d) until %s", rel, l.Token, until(now, l.Expires)))
	}
	return fmt.Sprintf("Proposed for review (id %s): a person must accept it; you will get a message with the outcome. Nothing is written yet: the project's review policy (%s) covers %s, so your %s waits for a person's decision. The proposal holds your lease on %s; do not release it, and do not change the file again until you read the outcome with inbox.",
		p.ID, p.Glob, what, p.Kind, strings.Join(ls, " and on "))
}

// fileHash is the content hash of the regular file rel of root.
func fileHash(root *os.Root, rel string) (string, error) {
	file, err := root.Open(rel)
	if err != nil {
		return "", err
	}
	defer file.Close()
	return attrib.HashReader(file)
}
