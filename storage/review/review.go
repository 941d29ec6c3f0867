// Package review owns review before write: a project's review policy
// (path globs, for every agent or for named ones) and the proposals that
// agents' changes through the files tools become under it, until a person
// accepts or rejects them.
//
// A proposal holds the leases its change presented (each renewed to
// lease.MaxTTL when it is made, so that they do not expire while a person
// decides; a grant lost nonetheless — its agent went offline and a sweep
// removed it, or it was released — is taken again for the agent at accept
// time when no other agent holds the file), the hash of the content the change was made against, the new
// content (chunked: a file may exceed one value), both bounded by the files
// tools' size limit, and the unified diff. Accept applies it through the
// fenced write path: the file must still have the base content (else
// ErrStale, a conflict, and nothing is written), and in one transaction the
// agent's fencing tokens are checked (lease.CheckFence), a human's unsaved
// edits refuse it (attrib.CheckNoUnsavedEdits), the watcher's evidence is
// recorded as the agent's write (attrib.RecordAgentWrite, RecordAgentDelete),
// the proposal is marked accepted, review.accepted is appended (attributed to
// the agent, attrs approved_by naming the person) and the agent is told in
// its inbox; then the bytes reach the disk (a synced temporary file renamed
// over the file) and the leases on exactly the changed files are released.
// Reject writes nothing, appends review.rejected, sends the reason to the
// agent's inbox and releases those leases.
//
// Every mutation is one transaction with its audit event. Policy changes
// need an admin or the local operator (project.CanRegister); deciding needs
// a member or an admin; reading needs any role of the tenant.
//
// It imports storage/kv, storage/keyspace, storage/audit, storage/tenant,
// storage/agent, storage/lease, storage/attrib, storage/message,
// storage/project, storage/session and storage/errclass. It must not import
// any transport (tools, ide, webview, server, cmd).
package review

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/errclass"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
)

// Errors, each in its errclass class.
var (
	// ErrInvalid: a glob, a reason or an id is malformed or missing.
	ErrInvalid = errclass.New(errclass.Invalid, "invalid review request")
	// ErrNotFound: no such proposal in the caller's tenant.
	ErrNotFound = errclass.New(errclass.NotFound, "proposal not found")
	// ErrDecided: the proposal was already accepted or rejected.
	ErrDecided = errclass.New(errclass.Conflict, "proposal already decided")
	// ErrStale: the file changed since the proposal was made, or the
	// proposal's lease was lost; nothing was written.
	ErrStale = errclass.New(errclass.Conflict, "proposal is stale")
	// ErrPending: the file already has a pending proposal.
	ErrPending = errclass.New(errclass.Conflict, "a proposal for the file is pending")
	// ErrNoRoot: the proposal's project has no root on this machine, so it
	// cannot be applied here.
	ErrNoRoot = errclass.New(errclass.NotFound, "project has no root on this machine")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("review: %w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Limits.
const (
	// MaxRules is the most rules one project's policy holds.
	MaxRules = 64
	// MaxGlob bounds a rule's glob, in bytes.
	MaxGlob = 1024
	// MaxAgents is the most agents one rule names.
	MaxAgents = 64
	// MaxReason bounds a rejection's reason, in bytes.
	MaxReason = 2000
)

// Rule makes the changes of the files its Glob matches (relative to the
// project root, doublestar semantics as leases: "src/auth/**") proposals,
// for the agents it names (by name or id), or for every agent when Agents
// is empty.
type Rule struct {
	Glob   string   `json:"glob"`
	Agents []string `json:"agents"`
}

// Policy is a project's review policy.
type Policy struct {
	Project   string    `json:"project"`
	Rules     []Rule    `json:"rules"`
	UpdatedBy string    `json:"updated_by,omitempty"`
	Updated   time.Time `json:"updated,omitzero"`
}

// Covers returns the first rule that makes a change of rel (a path
// relative to the project root) by the agent (its id and name) a proposal.
func (p Policy) Covers(rel, agentID, agentName string) (Rule, bool) {
	for _, r := range p.Rules {
		if !lease.Match(r.Glob, rel) {
			continue
		}
		if len(r.Agents) == 0 || slices.Contains(r.Agents, agentID) || (agentName != "" && slices.Contains(r.Agents, agentName)) {
			return r, true
		}
	}
	return Rule{}, false
}

// checkRules validates and normalises a policy's rules.
func checkRules(rules []Rule) ([]Rule, error) {
	if len(rules) > MaxRules {
		return nil, invalid("%d rules; the limit is %d", len(rules), MaxRules)
	}
	out := make([]Rule, 0, len(rules))
	for i, r := range rules {
		g := r.Glob
		switch {
		case g == "":
			return nil, invalid("rule %d: glob is empty; send a path glob relative to the project root, e.g. src/auth/**", i+1)
		case len(g) > MaxGlob:
			return nil, invalid("rule %d: glob of %d bytes exceeds %d", i+1, len(g), MaxGlob)
		case strings.HasPrefix(g, "/") || strings.HasPrefix(g, "@") || strings.ContainsRune(g, '\\'):
			return nil, invalid("rule %d: glob %q must be relative to the project root, '/'-separated, e.g. src/auth/**", i+1, g)
		case path.Clean(g) != g || g == "." || g == ".." || strings.HasPrefix(g, "../"):
			return nil, invalid("rule %d: glob %q is not a clean relative path (no '.', '..', empty segment or trailing '/')", i+1, g)
		}
		for _, seg := range strings.Split(g, "/") {
			if strings.Contains(seg, "**") && seg != "**" {
				return nil, invalid("rule %d: glob %q: '**' must be a whole segment, as in src/**/x.go", i+1, g)
			}
			if _, err := path.Match(seg, ""); err != nil {
				return nil, invalid("rule %d: glob %q: segment %q is malformed: %v", i+1, g, seg, err)
			}
		}
		if len(r.Agents) > MaxAgents {
			return nil, invalid("rule %d names %d agents; the limit is %d", i+1, len(r.Agents), MaxAgents)
		}
		ags := []string{}
		for _, a := range r.Agents {
			if err := agent.CheckText("agent", a, 256, true); err != nil {
				return nil, invalid("rule %d: %v; name an agent by its name or id", i+1, err)
			}
			if !slices.Contains(ags, a) {
				ags = append(ags, a)
			}
		}
		out = append(out, Rule{Glob: g, Agents: ags})
	}
	return out, nil
}

// readPolicy reads a project's policy in tx (no rules when it has none).
func readPolicy(tx kv.ReadTx, sc *tenant.Scope, projectID string) (Policy, error) {
	key, err := sc.Space().ReviewPolicy(projectID)
	if err != nil {
		return Policy{}, invalid("%v", err)
	}
	v, err := tx.Get(key)
	if err != nil {
		return Policy{}, err
	}
	p := Policy{Project: projectID, Rules: []Rule{}}
	if v == nil {
		return p, nil
	}
	if err := json.Unmarshal(v, &p); err != nil {
		return Policy{}, fmt.Errorf("review: corrupt policy of project %s: %w", projectID, err)
	}
	if p.Rules == nil {
		p.Rules = []Rule{}
	}
	return p, nil
}

// GetPolicy returns the review policy of a project (its name or id); a
// project without one has no rules.
func GetPolicy(ctx context.Context, sc *tenant.Scope, projectRef string) (Policy, error) {
	pr, err := project.Get(ctx, sc, projectRef)
	if err != nil {
		return Policy{}, err
	}
	var p Policy
	err = sc.Store().View(ctx, func(tx kv.ReadTx) error {
		p, err = readPolicy(tx, sc, pr.ID)
		return err
	})
	return p, err
}

// PolicyFor returns the policy of the project with id projectID, for the
// files tools' decision on every change: one point read.
func PolicyFor(ctx context.Context, sc *tenant.Scope, projectID string) (Policy, error) {
	var p Policy
	err := sc.Store().View(ctx, func(tx kv.ReadTx) error {
		var err error
		p, err = readPolicy(tx, sc, projectID)
		return err
	})
	return p, err
}

// Policies returns the policies of the tenant's projects that have rules.
func Policies(ctx context.Context, sc *tenant.Scope) ([]Policy, error) {
	ps, err := project.List(ctx, sc)
	if err != nil {
		return nil, err
	}
	out := []Policy{}
	err = sc.Store().View(ctx, func(tx kv.ReadTx) error {
		out = out[:0]
		for _, pr := range ps {
			p, err := readPolicy(tx, sc, pr.ID)
			if err != nil {
				return err
			}
			if len(p.Rules) > 0 {
				out = append(out, p)
			}
		}
		return nil
	})
	return out, err
}

// SetPolicy replaces the review policy of a project (its name or id) with
// rules (none clears it), as an admin or the local operator, and appends
// review.policy_set in the same transaction.
func SetPolicy(ctx context.Context, sc *tenant.Scope, projectRef string, rules []Rule) (Policy, error) {
	if err := project.CanRegister(sc); err != nil {
		return Policy{}, fmt.Errorf("%w: only an admin (or the local operator) changes a project's review policy", err)
	}
	rules, err := checkRules(rules)
	if err != nil {
		return Policy{}, err
	}
	pr, err := project.Get(ctx, sc, projectRef)
	if err != nil {
		return Policy{}, err
	}
	p := Policy{Project: pr.ID, Rules: rules, UpdatedBy: sc.Principal().User, Updated: agent.Now(ctx).UTC()}
	key, err := sc.Space().ReviewPolicy(pr.ID)
	if err != nil {
		return Policy{}, invalid("%v", err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return Policy{}, err
	}
	globs := make([]string, len(rules))
	for i, r := range rules {
		globs[i] = r.Glob
		if len(r.Agents) > 0 {
			globs[i] += " (" + strings.Join(r.Agents, ", ") + ")"
		}
	}
	summary := fmt.Sprintf("review policy of project %s cleared by %s", pr.Name, p.UpdatedBy)
	if len(rules) > 0 {
		summary = fmt.Sprintf("review policy of project %s set by %s: %s", pr.Name, p.UpdatedBy, strings.Join(globs, "; "))
	}
	_, err = sc.Store().Update(ctx, func(tx kv.Tx) error {
		if len(rules) == 0 {
			tx.Clear(key)
		} else {
			tx.Set(key, b)
		}
		ev := sc.Event(KindPolicySet, textclip.Clip(summary, 1000))
		ev.Project = pr.ID
		ev.Attrs = map[string]any{"rules": rules}
		_, err := sc.Log().Writer(tx).Append(ev)
		return err
	})
	if err != nil {
		return Policy{}, err
	}
	return p, nil
}

// ClearPolicy removes a project's review policy (SetPolicy with no rules).
func ClearPolicy(ctx context.Context, sc *tenant.Scope, projectRef string) (Policy, error) {
	return SetPolicy(ctx, sc, projectRef, nil)
}
