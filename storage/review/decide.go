package review

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/coditect/coditect/internal/atomicwrite"
	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/tenant"
)

// Accept applies a pending proposal as a member or admin of its tenant
// (see the package doc): a file changed since the proposal, or a lease the
// proposal lost, is ErrStale and nothing is written; the project must
// have a root on this machine (ErrNoRoot).
func Accept(ctx context.Context, sc *tenant.Scope, id string) (Proposal, error) {
	if err := sc.CanWrite(); err != nil {
		return Proposal{}, err
	}
	p, _, neu, err := Contents(ctx, sc, id)
	if err != nil {
		return Proposal{}, err
	}
	if p.State != Pending {
		return Proposal{}, decided(p)
	}
	root, err := openRoot(ctx, sc, p)
	if err != nil {
		return Proposal{}, err
	}
	defer root.Close()
	if err := unchanged(root, p); err != nil {
		return Proposal{}, err
	}
	leases, err := reacquire(ctx, sc, p)
	if err != nil {
		return Proposal{}, err
	}
	// The new bytes wait, synced, in a temporary file: once the
	// transaction commits only a rename is left.
	var staged *atomicwrite.Staged
	var made atomicwrite.Dirs
	undo := func() {
		if staged != nil {
			staged.Abort()
		}
		made.Remove()
	}
	switch p.Kind {
	case Write, Edit:
		mode, created := fs.FileMode(0o666), true
		if fi, err := root.Stat(p.Path); err == nil {
			mode, created = fi.Mode().Perm(), false
		}
		staged, err = atomicwrite.Stage(root, p.Path, neu, mode, created)
	case Move:
		made, err = atomicwrite.MakeDirs(root, path.Dir(p.To))
	}
	if err != nil {
		return Proposal{}, notDir(err)
	}
	human := sc.Principal().User
	now := agent.Now(ctx).UTC()
	p, err = decide(ctx, sc, p.ID, Accepted, "", now, func(tx kv.Tx, q Proposal) error {
		for _, h := range leases {
			if err := lease.CheckFence(tx, sc, h.Resource, q.Agent, h.Token); err != nil {
				return fmt.Errorf("review: %w: the proposal's lease was lost (%v); nothing was written: reject it and ask the agent to make the change again", ErrStale, err)
			}
		}
		for _, rel := range q.files() {
			if err := attrib.CheckNoUnsavedEdits(tx, sc, project.File{Project: q.Project, Rel: rel}.String(), now); err != nil {
				return err
			}
		}
		key := q.File().String()
		switch q.Kind {
		case Write, Edit:
			return attrib.RecordAgentWrite(tx, sc, key, q.NewHash, q.Agent, q.Model, q.Session)
		case Move:
			if err := attrib.RecordAgentWrite(tx, sc, project.File{Project: q.Project, Rel: q.To}.String(), q.NewHash, q.Agent, q.Model, q.Session); err != nil {
				return err
			}
		}
		return attrib.RecordAgentDelete(tx, sc, key, q.Agent, q.Model, q.Session)
	})
	if err != nil {
		undo()
		return Proposal{}, err
	}
	switch p.Kind {
	case Write, Edit:
		err = staged.Commit()
	case Move:
		err = atomicwrite.Rename(root, p.Path, p.To)
	case Delete:
		err = atomicwrite.Remove(root, p.Path)
	}
	if err != nil {
		undo()
		return p, fmt.Errorf("review: proposal %s is recorded as accepted by %s but the file could not be changed on disk: %w", p.ID, human, err)
	}
	p.Leases = leases
	release(ctx, sc, p)
	return p, nil
}

// reacquire returns the proposal's leases, each still granted to its
// agent or, when the grant was lost (expired and swept while the agent was
// away, released, force-released), granted anew to the agent, as the files
// tools take a lease a change needs: the file still holds the proposal's
// base (unchanged checked it), so nobody changed it since. A file another
// agent holds now is ErrStale.
func reacquire(ctx context.Context, sc *tenant.Scope, p Proposal) ([]Held, error) {
	held, err := lease.List(ctx, sc, p.Agent)
	if err != nil {
		return nil, err
	}
	out := make([]Held, len(p.Leases))
	for i, h := range p.Leases {
		out[i] = h
		if slices.ContainsFunc(held, func(g lease.Holder) bool { return g.Resource == h.Resource && g.Token == h.Token }) {
			continue
		}
		asc, err := sc.WithAgent(p.Agent)
		if err != nil {
			return nil, err
		}
		l, err := lease.Acquire(ctx, asc, lease.Request{Resource: h.Resource, Mode: lease.Exclusive})
		if err != nil {
			return nil, fmt.Errorf("review: %w: the proposal's lease on %s was lost and cannot be taken again (%v); nothing was written: reject the proposal", ErrStale, h.Resource, err)
		}
		out[i] = Held{Resource: l.Resource, Token: l.Token, Taken: true, Expires: l.Expires.UTC()}
	}
	return out, nil
}

// Reject declines a pending proposal with a reason, as a member or admin:
// nothing is written, review.rejected is appended, the reason reaches the
// agent's inbox and the proposal's leases on its files are released.
func Reject(ctx context.Context, sc *tenant.Scope, id, reason string) (Proposal, error) {
	if err := sc.CanWrite(); err != nil {
		return Proposal{}, err
	}
	reason = strings.TrimSpace(reason)
	if err := agent.CheckText("reason", reason, MaxReason, true); err != nil {
		return Proposal{}, invalid("%v: say why, for the agent and the audit log", err)
	}
	p, err := decide(ctx, sc, id, Rejected, reason, agent.Now(ctx).UTC(), nil)
	if err != nil {
		return Proposal{}, err
	}
	release(ctx, sc, p)
	return p, nil
}

// decide marks a pending proposal accepted or rejected in one transaction
// that also runs apply (for an accept), appends the decision's event and
// tells the agent.
func decide(ctx context.Context, sc *tenant.Scope, id string, st State, reason string, now time.Time, apply func(kv.Tx, Proposal) error) (Proposal, error) {
	human := sc.Principal().User
	var out Proposal
	_, err := sc.Store().Update(ctx, func(tx kv.Tx) error {
		p, err := load(tx, sc, id)
		if err != nil {
			return err
		}
		if p.State != Pending {
			return decided(p)
		}
		if apply != nil {
			if err := apply(tx, p); err != nil {
				return err
			}
		}
		p.State, p.DecidedBy, p.Decided, p.Reason = st, human, now, reason
		rec, err := json.Marshal(p)
		if err != nil {
			return err
		}
		key, _ := sc.Space().Review(p.ID)
		pend, _ := sc.Space().ReviewPending(p.ID)
		tx.Set(key, rec)
		tx.Clear(pend)
		who := cmpOr(p.AgentName, p.Agent)
		w := sc.Log().Writer(tx)
		var ev = sc.Event(KindAccepted, textclip.Clip(fmt.Sprintf("%s of %s by agent %s, approved by %s (%s)", p.Kind, describe(p), who, human, p.ID), 1000))
		ev.Attrs = p.attrs(p.Diff)
		subject := fmt.Sprintf("review %s accepted: %s", p.ID, describe(p))
		body := fmt.Sprintf("%s accepted your proposed %s of %s (%s); it is now on disk. Your lease on the file is released: acquire it again before changing the file further.", human, p.Kind, describe(p), p.ID)
		if st == Accepted {
			// The change is the agent's, approved by the person.
			ev.Agent = p.Agent
			ev.Attribution = &audit.Attribution{Actor: audit.ActorAgent, AgentID: p.Agent, Model: p.Model, Evidence: "review approved by " + human, Confidence: 1}
			ev.Attrs["approved_by"] = human
		} else {
			ev = sc.Event(KindRejected, textclip.Clip(fmt.Sprintf("%s of %s by agent %s rejected by %s (%s): %s", p.Kind, describe(p), who, human, p.ID, reason), 1000))
			ev.Attrs = p.attrs("")
			ev.Attrs["rejected_by"], ev.Attrs["reason"], ev.Attrs["agent"] = human, reason, p.Agent
			subject = fmt.Sprintf("review %s rejected: %s", p.ID, describe(p))
			body = fmt.Sprintf("%s rejected your proposed %s of %s (%s); nothing was written.\nReason: %s\nYour lease on the file is released.", human, p.Kind, describe(p), p.ID, reason)
		}
		ev.Project, ev.Path, ev.Session = p.Project, p.Path, p.Session
		if _, err := w.Append(ev); err != nil {
			return err
		}
		if _, err := agent.Read(tx, sc, p.Agent, now); err == nil {
			if _, err := message.NewWriter(tx, w, sc, now).Send(message.Outgoing{To: message.To{Agent: p.Agent}, Subject: textclip.Clip(subject, 180), Body: body}); err != nil {
				return err
			}
		} else if !errors.Is(err, agent.ErrNotFound) {
			return err
		}
		out = p
		return nil
	})
	return out, err
}

// decided is the error of deciding a proposal twice.
func decided(p Proposal) error {
	return fmt.Errorf("review: %w: proposal %s was %s by %s at %s", ErrDecided, p.ID, p.State, p.DecidedBy, p.Decided.Format(time.RFC3339))
}

// files are the paths a proposal changes.
func (p Proposal) files() []string {
	if p.To != "" {
		return []string{p.Path, p.To}
	}
	return []string{p.Path}
}

// release releases, best effort and as the agent, the proposal's leases
// on exactly its files (a glob lease the agent presented stays its own):
// a lease that cannot be released expires.
func release(ctx context.Context, sc *tenant.Scope, p Proposal) {
	asc, err := sc.WithAgent(p.Agent)
	if err != nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	for _, h := range p.Leases {
		f, ok := project.ParseFile(h.Resource)
		if !ok || f.Project != p.Project || (f.Rel != p.Path && f.Rel != p.To) {
			continue
		}
		_ = lease.Release(ctx, asc, h.Resource, h.Token)
	}
}

// openRoot opens the root, on this machine, of the proposal's project
// that holds its session's workspace (else the project's first root here).
func openRoot(ctx context.Context, sc *tenant.Scope, p Proposal) (*os.Root, error) {
	pr, err := project.Get(ctx, sc, p.Project)
	if err != nil {
		return nil, err
	}
	machine := project.Machine()
	roots := pr.RootsOn(machine)
	if len(roots) == 0 {
		return nil, fmt.Errorf("review: %w: project %s has no root on %s; accept the proposal on a machine that has its checkout", ErrNoRoot, pr.Name, machine)
	}
	dir := roots[0]
	if p.Session != "" {
		if s, err := session.Get(ctx, sc, p.Session); err == nil && s.Workspace != "" {
			for _, r := range roots {
				if s.Workspace == r || strings.HasPrefix(s.Workspace, strings.TrimSuffix(r, string(filepath.Separator))+string(filepath.Separator)) {
					dir = r
					break
				}
			}
		}
	}
	return os.OpenRoot(dir)
}

// FilePath returns the absolute path of the file a proposal changes on
// this machine ("" when its project has no root here), for a client's URI.
func FilePath(ctx context.Context, sc *tenant.Scope, p Proposal) string {
	root, err := openRoot(ctx, sc, p)
	if err != nil {
		return ""
	}
	defer root.Close()
	return filepath.Join(root.Name(), filepath.FromSlash(p.Path))
}

// unchanged refuses (ErrStale) a proposal whose file no longer has the
// content it was made against, or whose move destination now exists.
func unchanged(root *os.Root, p Proposal) error {
	now, err := hashOf(root, p.Path)
	if err != nil {
		return err
	}
	if now != p.BaseHash {
		state := "now holds " + now
		if now == "" {
			state = "no longer exists"
		} else if p.BaseHash == "" {
			state = "now exists (" + now + ")"
		}
		was := p.BaseHash
		if was == "" {
			was = "did not exist"
		}
		return fmt.Errorf("review: %w: %s changed since agent %s proposed the %s (it %s; the proposal was made when it %s): nothing was written; reject the proposal and ask the agent to redo it against the current file",
			ErrStale, p.Path, cmpOr(p.AgentName, p.Agent), p.Kind, state, map[bool]string{true: "did not exist", false: "held " + was}[p.BaseHash == ""])
	}
	if p.Kind == Move {
		if _, err := root.Lstat(p.To); err == nil {
			return fmt.Errorf("review: %w: %s, the move's destination, exists now: nothing was written", ErrStale, p.To)
		}
	}
	return nil
}

// hashOf returns the hash of the regular file rel of root, "" when it does
// not exist.
func hashOf(root *os.Root, rel string) (string, error) {
	fi, err := root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("review: %w: %s is not a regular file now (%s): nothing was written", ErrStale, rel, fi.Mode().Type())
	}
	f, err := root.Open(rel)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return attrib.HashReader(f)
}

// notDir tells a person which path now stands where an accepted change
// needs a directory (atomicwrite.NotDirError); other errors pass unchanged.
func notDir(err error) error {
	var nd *atomicwrite.NotDirError
	if errors.As(err, &nd) {
		return fmt.Errorf("review: %w: %s is a file now, not a directory: nothing was written", ErrStale, nd.Path)
	}
	return err
}
