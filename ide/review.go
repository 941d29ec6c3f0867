package ide

import (
	"context"
	"encoding/json"
	"net/url"
	"path/filepath"
	"time"
	"unicode/utf8"

	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/review"
)

// Review before write: the commands with which the human decides the
// proposals agents' changes became under a project's review policy
// (storage/review). A new proposal reaches the client as a coditect/event
// of kind review.proposed (events.go), like every event of the workspace.
//
//	coditect.review.list   {project?}     pending proposals, oldest first: [{id, project, path, agent, session, created, diff, kind, …}]
//	coditect.review.show   {id}           one proposal with its contents: {id, path, uri, before, after, diff, agent, …}
//	coditect.review.accept {id}           apply it through the fenced write path (a changed file is a conflict)
//	coditect.review.reject {id, reason}   decline it; the reason goes to the agent's inbox
//
// Deciding needs a member or an admin (the layer refuses a viewer).

// Commands of reviews.
const (
	cmdReviewList   = "coditect.review.list"
	cmdReviewShow   = "coditect.review.show"
	cmdReviewAccept = "coditect.review.accept"
	cmdReviewReject = "coditect.review.reject"
)

// reviewItem is a proposal as the editor lists it.
type reviewItem struct {
	ID          string       `json:"id"`
	Project     string       `json:"project"`
	ProjectName string       `json:"project_name,omitempty"`
	Path        string       `json:"path"`
	To          string       `json:"to,omitempty"`
	Agent       string       `json:"agent"`
	AgentName   string       `json:"agent_name,omitempty"`
	Model       string       `json:"model,omitempty"`
	Session     string       `json:"session,omitempty"`
	Created     time.Time    `json:"created"`
	Diff        string       `json:"diff"`
	Kind        review.Kind  `json:"kind"`
	State       review.State `json:"state"`
	Glob        string       `json:"glob,omitempty"`
	DecidedBy   string       `json:"decided_by,omitempty"`
	Reason      string       `json:"reason,omitempty"`
}

func item(p review.Proposal, projectName string) reviewItem {
	return reviewItem{ID: p.ID, Project: p.Project, ProjectName: projectName, Path: p.Path, To: p.To, Agent: p.Agent, AgentName: p.AgentName, Model: p.Model,
		Session: p.Session, Created: p.Created, Diff: p.Diff, Kind: p.Kind, State: p.State, Glob: p.Glob, DecidedBy: p.DecidedBy, Reason: p.Reason}
}

// reviewCommands are the review commands, advertised with the others.
var reviewCommands = []string{cmdReviewList, cmdReviewShow, cmdReviewAccept, cmdReviewReject}

// reviewCommand runs one of the review commands.
func (s *server) reviewCommand(ctx context.Context, cmd string, arg json.RawMessage) (any, error) {
	var a struct {
		ID      string `json:"id"`
		Project string `json:"project"`
		Reason  string `json:"reason"`
	}
	if err := decode(arg, &a); err != nil {
		return nil, err
	}
	if cmd != cmdReviewList && a.ID == "" {
		return nil, invalidParams("the proposal's id is required: {\"id\": \"rv_…\"}")
	}
	var (
		res any
		err error
	)
	switch cmd {
	case cmdReviewList:
		res, err = s.reviewList(ctx, a.Project)
	case cmdReviewShow:
		res, err = s.reviewShow(ctx, a.ID)
	case cmdReviewAccept:
		var p review.Proposal
		if p, err = review.Accept(ctx, s.sc, a.ID); err == nil {
			res = item(p, s.projectName(ctx, p.Project))
		}
	case cmdReviewReject:
		var p review.Proposal
		if p, err = review.Reject(ctx, s.sc, a.ID, a.Reason); err == nil {
			res = item(p, s.projectName(ctx, p.Project))
		}
	}
	return res, err
}

func (s *server) reviewList(ctx context.Context, projectRef string) (any, error) {
	ps, err := review.List(ctx, s.sc, review.Filter{Project: projectRef})
	if err != nil {
		return nil, err
	}
	out := make([]reviewItem, 0, len(ps))
	names := map[string]string{}
	for _, p := range ps {
		if _, ok := names[p.Project]; !ok {
			names[p.Project] = s.projectName(ctx, p.Project)
		}
		out = append(out, item(p, names[p.Project]))
	}
	return out, nil
}

// reviewShown is a proposal with its contents, for a diff editor: Before
// is what the change was made against, After what accepting writes
// (empty for a delete); both are omitted for binary content. URI is the
// file on this machine ("" when its project has no root here).
type reviewShown struct {
	reviewItem
	URI       string `json:"uri"`
	ToURI     string `json:"to_uri,omitempty"`
	Before    string `json:"before"`
	After     string `json:"after"`
	Binary    bool   `json:"binary,omitempty"`
	BaseKnown bool   `json:"base_known"`
	BaseHash  string `json:"base_hash,omitempty"`
	NewHash   string `json:"new_hash,omitempty"`
}

func (s *server) reviewShow(ctx context.Context, id string) (any, error) {
	p, before, after, err := review.Contents(ctx, s.sc, id)
	if err != nil {
		return nil, err
	}
	if p.Kind == review.Move {
		after = before
	}
	out := reviewShown{reviewItem: item(p, s.projectName(ctx, p.Project)), BaseKnown: p.BaseKnown, BaseHash: p.BaseHash, NewHash: p.NewHash}
	if abs := review.FilePath(ctx, s.sc, p); abs != "" {
		out.URI = (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
		if p.To != "" {
			to := filepath.Join(filepath.Dir(abs), filepath.FromSlash(relFrom(p.Path, p.To)))
			out.ToURI = (&url.URL{Scheme: "file", Path: filepath.ToSlash(to)}).String()
		}
	}
	if utf8.Valid(before) && utf8.Valid(after) {
		out.Before, out.After = string(before), string(after)
	} else {
		out.Binary = true
	}
	return out, nil
}

// relFrom is to relative to the directory of from (both relative to one
// root).
func relFrom(from, to string) string {
	r, err := filepath.Rel(filepath.Dir(filepath.FromSlash(from)), filepath.FromSlash(to))
	if err != nil {
		return to
	}
	return filepath.ToSlash(r)
}

// projectName is a project's name for people ("" when it cannot be read).
func (s *server) projectName(ctx context.Context, id string) string {
	p, err := project.Get(ctx, s.sc, id)
	if err != nil {
		return ""
	}
	return p.Name
}
