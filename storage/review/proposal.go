package review

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
)

// Audit event kinds of reviews.
const (
	KindProposed  = "review.proposed"
	KindAccepted  = "review.accepted"
	KindRejected  = "review.rejected"
	KindPolicySet = "review.policy_set"
)

// Kind is what a proposal changes.
type Kind string

// Kinds of proposal, one per files tool.
const (
	Write  Kind = "write"  // fs_write: the whole new content
	Edit   Kind = "edit"   // fs_edit: the content after the replacements
	Move   Kind = "move"   // fs_move: Path moves to To
	Delete Kind = "delete" // fs_delete
)

// State is where a proposal stands.
type State string

// States.
const (
	Pending  State = "pending"
	Accepted State = "accepted"
	Rejected State = "rejected"
)

// Held is a lease a proposal holds: the resource and fencing token of the
// agent's grant, and whether the change took it itself.
type Held struct {
	Resource string `json:"resource"`
	Token    int64  `json:"token"`
	Taken    bool   `json:"taken,omitempty"`
	// Expires is when the grant expires, renewed by Propose.
	Expires time.Time `json:"expires,omitzero"`
}

// Proposal is a change of an agent's that waits for a person's decision.
type Proposal struct {
	ID      string `json:"id"`
	Project string `json:"project"`
	// Path is the file's path relative to the project root; To a move's
	// destination.
	Path string `json:"path"`
	To   string `json:"to,omitempty"`
	Kind Kind   `json:"kind"`
	// Agent is the agent's id, AgentName its name; User the agent's user.
	Agent     string `json:"agent"`
	AgentName string `json:"agent_name,omitempty"`
	Model     string `json:"model,omitempty"`
	Session   string `json:"session,omitempty"`
	User      string `json:"user,omitempty"`
	// Glob is the policy rule's glob that made the change a proposal.
	Glob string `json:"glob,omitempty"`
	// BaseHash is the hash (attrib.Hash) of the file the change was made
	// against, "" when the file did not exist; NewHash that of the new
	// content (a move's content; "" for a delete).
	BaseHash string `json:"base_hash,omitempty"`
	NewHash  string `json:"new_hash,omitempty"`
	BaseSize int    `json:"base_size"`
	NewSize  int    `json:"new_size"`
	// BaseKnown is false when the base content could not be kept (over
	// the size limit): the hash still guards the apply.
	BaseKnown bool `json:"base_known"`
	// Diff is the bounded unified diff of the change.
	Diff    string    `json:"diff,omitempty"`
	Added   int       `json:"added,omitempty"`
	Removed int       `json:"removed,omitempty"`
	Binary  bool      `json:"binary,omitempty"`
	Leases  []Held    `json:"leases"`
	Created time.Time `json:"created"`
	State   State     `json:"state"`
	// DecidedBy is the person who accepted or rejected it, Reason a
	// rejection's reason.
	DecidedBy string    `json:"decided_by,omitempty"`
	Decided   time.Time `json:"decided,omitzero"`
	Reason    string    `json:"reason,omitempty"`
}

// File returns the key of the proposal's file (its project path).
func (p Proposal) File() project.File { return project.File{Project: p.Project, Rel: p.Path} }

// Spec is a change the files tools turn into a proposal.
type Spec struct {
	Kind      Kind
	Project   string // project id
	Path, To  string // relative to the project root
	Agent     string // the agent's id; the scope must act as it
	AgentName string
	Model     string
	Session   string
	Glob      string
	// Base is the content the change was made against (nil, with
	// BaseHash "", for a new file); BaseKnown is false when it could not
	// be read within the size limit (BaseHash is then still set).
	Base      []byte
	BaseHash  string
	BaseKnown bool
	// New is the new content (write, edit, move); nil for a delete.
	New []byte
	// Diff is the change's bounded unified diff, token-looking text
	// redacted as in the audit log (the contents stay whole), Added and
	// Removed its lines.
	Diff           string
	Added, Removed int
	Binary         bool
	// Leases are those the change presented, one per changed file.
	Leases []Held
}

// chunk is the size of one stored piece of a proposal's content, under
// kv's value limit.
const chunk = 90_000

// Propose records a change as a pending proposal, as the scope's agent:
// it renews the change's leases to lease.MaxTTL (so they do not expire
// while a person decides), then in one transaction checks their fencing
// tokens, refuses a file that already has a pending proposal (ErrPending),
// stores the proposal and appends review.proposed.
func Propose(ctx context.Context, sc *tenant.Scope, s Spec) (Proposal, error) {
	if err := sc.CanWrite(); err != nil {
		return Proposal{}, err
	}
	if s.Agent == "" || sc.Principal().Agent != s.Agent {
		return Proposal{}, invalid("the scope must act as the proposing agent")
	}
	switch s.Kind {
	case Write, Edit, Move, Delete:
	default:
		return Proposal{}, invalid("kind %q", s.Kind)
	}
	if s.Project == "" || s.Path == "" || len(s.Leases) == 0 {
		return Proposal{}, invalid("a proposal needs a project, a path and the leases it holds")
	}
	now := agent.Now(ctx).UTC()
	held := slices.Clone(s.Leases)
	for i, h := range held {
		l, err := lease.Renew(ctx, sc, h.Resource, h.Token, lease.MaxTTL)
		if err != nil {
			return Proposal{}, err
		}
		held[i].Token, held[i].Expires = l.Token, l.Expires.UTC()
	}
	p := Proposal{
		ID: agent.NewID("rv"), Project: s.Project, Path: s.Path, To: s.To, Kind: s.Kind,
		Agent: s.Agent, AgentName: s.AgentName, Model: s.Model, Session: s.Session, User: sc.Principal().User, Glob: s.Glob,
		BaseHash: s.BaseHash, BaseSize: len(s.Base), BaseKnown: s.BaseKnown, NewSize: len(s.New),
		Diff: s.Diff, Added: s.Added, Removed: s.Removed, Binary: s.Binary,
		Leases: held, Created: now, State: Pending,
	}
	switch s.Kind {
	case Move:
		p.NewHash = s.BaseHash
	case Write, Edit:
		p.NewHash = attrib.Hash(s.New)
	}
	sp := sc.Space()
	recKey, err := sp.Review(p.ID)
	if err != nil {
		return Proposal{}, invalid("%v", err)
	}
	pendKey, _ := sp.ReviewPending(p.ID)
	rec, err := json.Marshal(p)
	if err != nil {
		return Proposal{}, err
	}
	_, err = sc.Store().Update(ctx, func(tx kv.Tx) error {
		for _, h := range held {
			if err := lease.CheckFence(tx, sc, h.Resource, s.Agent, h.Token); err != nil {
				return err
			}
		}
		pending, err := pendingIn(tx, sc)
		if err != nil {
			return err
		}
		for _, q := range pending {
			if q.Project == p.Project && (touches(q, p.Path) || (p.To != "" && touches(q, p.To))) {
				return fmt.Errorf("review: %w: proposal %s (%s of %s by agent %s) waits for a person's decision", ErrPending, q.ID, q.Kind, q.Path, cmpOr(q.AgentName, q.Agent))
			}
		}
		tx.Set(recKey, rec)
		tx.Set(pendKey, nil)
		if err := putBlob(tx, sc, p.ID, "base", s.Base); err != nil {
			return err
		}
		if err := putBlob(tx, sc, p.ID, "new", s.New); err != nil {
			return err
		}
		ev := sc.Event(KindProposed, textclip.Clip(fmt.Sprintf("agent %s proposed to %s %s for review (%s)", cmpOr(s.AgentName, s.Agent), s.Kind, describe(p), p.ID), 1000))
		ev.Project, ev.Path, ev.Session = p.Project, p.Path, p.Session
		if ev.Attribution != nil {
			ev.Attribution.Model = s.Model
		}
		ev.Attrs = p.attrs(p.Diff)
		_, err = sc.Log().Writer(tx).Append(ev)
		return err
	})
	if err != nil {
		return Proposal{}, err
	}
	return p, nil
}

// attrs are the attributes of a proposal's audit events.
func (p Proposal) attrs(diff string) map[string]any {
	a := map[string]any{"review": p.ID, "review_kind": string(p.Kind), "base_hash": p.BaseHash}
	if p.To != "" {
		a["to"] = p.To
	}
	if p.NewHash != "" {
		a["hash"] = p.NewHash
	}
	if p.Glob != "" {
		a["glob"] = p.Glob
	}
	if diff != "" {
		a["diff"] = diff
		if p.Binary {
			a["diff_binary"] = true
		} else {
			a["diff_added"], a["diff_removed"] = p.Added, p.Removed
		}
	}
	return a
}

// describe names the proposal's file(s) for a summary.
func describe(p Proposal) string {
	if p.Kind == Move {
		return p.Path + " to " + p.To
	}
	return p.Path
}

// touches reports whether proposal q changes the file rel.
func touches(q Proposal, rel string) bool { return q.Path == rel || (q.To != "" && q.To == rel) }

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// putBlob stores content in chunks under the proposal's part.
func putBlob(tx kv.Tx, sc *tenant.Scope, id, part string, b []byte) error {
	for i := 0; i*chunk < len(b); i++ {
		k, err := sc.Space().ReviewBlobChunk(id, part, i)
		if err != nil {
			return invalid("%v", err)
		}
		tx.Set(k, b[i*chunk:min(len(b), (i+1)*chunk)])
	}
	return nil
}

// getBlob reads a content stored by putBlob.
func getBlob(tx kv.ReadTx, sc *tenant.Scope, id, part string) ([]byte, error) {
	sub, err := sc.Space().ReviewBlob(id, part)
	if err != nil {
		return nil, invalid("%v", err)
	}
	b, e := sub.Range()
	it := tx.GetRange(b, e, kv.RangeOptions{})
	var buf bytes.Buffer
	for it.Next() {
		buf.Write(it.KeyValue().Value)
	}
	return buf.Bytes(), it.Err()
}

// load reads a proposal's record in tx.
func load(tx kv.ReadTx, sc *tenant.Scope, id string) (Proposal, error) {
	if !strings.HasPrefix(id, "rv_") || len(id) != 29 {
		return Proposal{}, fmt.Errorf("review: %w: %q is not a proposal id (rv_ and 26 characters)", ErrNotFound, textclip.Clip(id, 80))
	}
	key, err := sc.Space().Review(id)
	if err != nil {
		return Proposal{}, invalid("%v", err)
	}
	v, err := tx.Get(key)
	if err != nil {
		return Proposal{}, err
	}
	if v == nil {
		return Proposal{}, fmt.Errorf("review: %w: no proposal %s in tenant %s", ErrNotFound, id, sc.Tenant())
	}
	var p Proposal
	if err := json.Unmarshal(v, &p); err != nil {
		return Proposal{}, fmt.Errorf("review: corrupt proposal %s: %w", id, err)
	}
	return p, nil
}

// pendingIn returns the tenant's pending proposals, oldest first.
func pendingIn(tx kv.ReadTx, sc *tenant.Scope) ([]Proposal, error) {
	sub := sc.Space().ReviewsPending()
	b, e := sub.Range()
	it := tx.GetRange(b, e, kv.RangeOptions{})
	var out []Proposal
	for it.Next() {
		t, err := sub.Unpack(it.KeyValue().Key)
		if err != nil || len(t) != 1 {
			return nil, fmt.Errorf("review: corrupt pending marker %s", kv.DisplayKey(it.KeyValue().Key))
		}
		id, _ := t[0].(string)
		p, err := load(tx, sc, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, it.Err()
}

// Filter selects proposals for List.
type Filter struct {
	// Project is a project's name or id ("" for every project).
	Project string
	// All includes decided proposals (newest first); otherwise only
	// pending ones, oldest first.
	All bool
	// Limit bounds the answer (0: 500).
	Limit int
}

// List returns the tenant's proposals that f selects.
func List(ctx context.Context, sc *tenant.Scope, f Filter) ([]Proposal, error) {
	projectID := ""
	if f.Project != "" {
		pr, err := project.Get(ctx, sc, f.Project)
		if err != nil {
			return nil, err
		}
		projectID = pr.ID
	}
	limit := f.Limit
	if limit <= 0 || limit > 500 {
		limit = 500
	}
	out := []Proposal{}
	err := sc.Store().View(ctx, func(tx kv.ReadTx) error {
		out = out[:0]
		var ps []Proposal
		if !f.All {
			var err error
			if ps, err = pendingIn(tx, sc); err != nil {
				return err
			}
		} else {
			sub := sc.Space().Reviews()
			b, e := sub.Range()
			it := tx.GetRange(b, e, kv.RangeOptions{Reverse: true})
			for it.Next() {
				var p Proposal
				if err := json.Unmarshal(it.KeyValue().Value, &p); err != nil {
					return fmt.Errorf("review: corrupt proposal %s: %w", kv.DisplayKey(it.KeyValue().Key), err)
				}
				ps = append(ps, p)
			}
			if err := it.Err(); err != nil {
				return err
			}
		}
		for _, p := range ps {
			if projectID != "" && p.Project != projectID {
				continue
			}
			if len(out) == limit {
				break
			}
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// Get returns a proposal of the tenant.
func Get(ctx context.Context, sc *tenant.Scope, id string) (Proposal, error) {
	var p Proposal
	err := sc.Store().View(ctx, func(tx kv.ReadTx) error {
		var err error
		p, err = load(tx, sc, id)
		return err
	})
	return p, err
}

// Contents returns a proposal with the content it was made against
// (empty for a new file, or when it was over the size limit: see
// BaseKnown) and its new content (empty for a delete).
func Contents(ctx context.Context, sc *tenant.Scope, id string) (Proposal, []byte, []byte, error) {
	var (
		p         Proposal
		base, neu []byte
	)
	err := sc.Store().View(ctx, func(tx kv.ReadTx) error {
		var err error
		if p, err = load(tx, sc, id); err != nil {
			return err
		}
		if base, err = getBlob(tx, sc, id, "base"); err != nil {
			return err
		}
		neu, err = getBlob(tx, sc, id, "new")
		return err
	})
	return p, base, neu, err
}
