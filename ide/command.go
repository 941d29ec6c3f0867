package ide

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.lsp.dev/protocol"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/task"
)

// workspace/executeCommand: the commands the editor offers its human.
//
//	coditect.session.start  {title?, workspace?, project?}  start (or return) the editor's session, in the workspace's project
//	coditect.session.join   {id}                   join an open session (an agent's): the editor's saves are filed under it
//	coditect.session.end    {status?, summary?}    end it (status completed, failed or cancelled)
//	coditect.dashboard      {}                     the dashboard's URL ({url})
//	coditect.file.history   {uri, limit?}          a file's events, newest first ({project, path, abs, events}); each event's who names its author for people, and diff is what an agent's change through the files tools did (a unified diff)
//	coditect.agents         {}                     the tenant's active agents ({agents})
//	coditect.status         {}                     for a status bar: user, session, agents alive, buffers
//	coditect.message.send   {to, body, subject?, reply_to?, uri?, range?}  send the human's message to an agent (id or name), a person (user:NAME), cohort:NAME or all, or reply to a message of the human's inbox (reply_to; to may be left out: the reply goes to its sender); a uri (and range) appends path:lines and the selected text ({id, thread, recipients})
//	coditect.task.create    {title, description?, project?, uri?, range?}  create an open task; a uri appends path:lines and the selection to the description
//	coditect.lease.release  {uri, reason?}         force-release every lease on exactly that file (admins only, as everywhere) ({released}); each holder is told
//
// The write commands act as the human (the connection's scope): each is
// one layer call, whose transaction appends the audit event naming the
// human and whose layer enforces the role (a viewer is refused). Every
// command's layer errors reach the client through replyErr (dispatch.go),
// by class; commands translate none themselves.

func (s *server) executeCommand(ctx context.Context, params json.RawMessage) (any, error) {
	var p struct {
		Command   string            `json:"command"`
		Arguments []json.RawMessage `json:"arguments"`
	}
	if err := decode(params, &p); err != nil {
		return nil, err
	}
	arg := json.RawMessage(`{}`)
	if len(p.Arguments) > 0 && string(p.Arguments[0]) != "null" {
		arg = p.Arguments[0]
	}
	switch p.Command {
	case cmdSessionStart:
		return s.sessionStart(ctx, arg)
	case cmdSessionJoin:
		return s.sessionJoin(ctx, arg)
	case cmdSessionEnd:
		return s.sessionEnd(ctx, arg)
	case cmdDashboard:
		return s.dashboard(ctx)
	case cmdFileHistory:
		return s.fileHistory(ctx, arg)
	case cmdAgents:
		ags, err := agent.List(ctx, s.sc, agent.Filter{Active: true})
		if err != nil {
			return nil, err
		}
		if ags == nil {
			ags = []agent.Agent{}
		}
		return map[string]any{"agents": ags}, nil
	case cmdStatus:
		return s.status(ctx)
	case cmdMessageSend:
		return s.messageSend(ctx, arg)
	case cmdTaskCreate:
		return s.taskCreate(ctx, arg)
	case cmdLeaseRelease:
		return s.leaseRelease(ctx, arg)
	case cmdReviewList, cmdReviewShow, cmdReviewAccept, cmdReviewReject:
		return s.reviewCommand(ctx, p.Command, arg)
	case "":
		return nil, invalidParams("params.command is required")
	}
	return nil, invalidParams("unknown command %q: want one of %v", textclip.Clip(p.Command, 80), commands)
}

func (s *server) sessionStart(ctx context.Context, arg json.RawMessage) (any, error) {
	var a struct {
		Title     string `json:"title"`
		Workspace string `json:"workspace"`
		Project   string `json:"project"`
	}
	if err := decode(arg, &a); err != nil {
		return nil, err
	}
	s.mu.Lock()
	current := s.session
	s.mu.Unlock()
	if current != "" {
		if se, err := session.Get(ctx, s.sc, current); err == nil && se.State == session.Open {
			return se, nil
		}
	}
	if a.Workspace == "" && a.Project == "" {
		roots := s.workspaceRoots()
		if len(roots) == 0 {
			return nil, invalidParams("no workspace: the client sent no workspace folder; pass {\"workspace\": \"/abs/path\"} or {\"project\": \"name\"}")
		}
		a.Workspace = roots[0].path
	}
	if a.Title == "" {
		a.Title = "Editing " + cmp.Or(a.Project, filepath.Base(a.Workspace))
	}
	se, err := session.Start(ctx, s.sc, session.Spec{Title: a.Title, Workspace: a.Workspace, Project: a.Project})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.session = se.ID
	s.mu.Unlock()
	return se, nil
}

// sessionJoin makes an open session, another participant's, the editor's
// session.
func (s *server) sessionJoin(ctx context.Context, arg json.RawMessage) (any, error) {
	var a struct {
		ID string `json:"id"`
	}
	if err := decode(arg, &a); err != nil {
		return nil, err
	}
	if a.ID == "" {
		return nil, invalidParams("the id of the session to join is required: {\"id\": \"…\"}")
	}
	se, err := session.Join(ctx, s.sc, a.ID)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.session = se.ID
	s.mu.Unlock()
	return se, nil
}

func (s *server) sessionEnd(ctx context.Context, arg json.RawMessage) (any, error) {
	var a struct {
		Status  string `json:"status"`
		Summary string `json:"summary"`
	}
	if err := decode(arg, &a); err != nil {
		return nil, err
	}
	if err := s.sc.CanWrite(); err != nil {
		return nil, err // before the editor's state: a viewer is told its role
	}
	if a.Status == "" {
		a.Status = string(session.Completed)
	}
	st, err := session.ParseStatus(a.Status)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	id := s.session
	s.mu.Unlock()
	if id == "" {
		return nil, &rpcError{code: codeRequestFailed, msg: "no session is open in this editor: start one with " + cmdSessionStart}
	}
	se, err := session.End(ctx, s.sc, id, session.Outcome{Status: st, Summary: a.Summary})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.session == id {
		s.session = ""
	}
	s.mu.Unlock()
	return se, nil
}

func (s *server) dashboard(ctx context.Context) (any, error) {
	if s.opts.Dashboard == nil {
		return nil, &rpcError{code: codeRequestFailed, msg: "this server has no dashboard: run coditect serve and open its URL"}
	}
	u, err := s.opts.Dashboard.URL(ctx, s.sc)
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	return map[string]string{"url": u}, nil
}

func (s *server) fileHistory(ctx context.Context, arg json.RawMessage) (any, error) {
	var a struct {
		URI    string `json:"uri"`
		Limit  int    `json:"limit"`
		Cursor string `json:"cursor"`
	}
	if err := decode(arg, &a); err != nil {
		return nil, err
	}
	path, f, ok, err := s.placeURI(ctx, a.URI)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &rpcError{code: codeRequestFailed, msg: fmt.Sprintf("%s is in no project of tenant %s on this machine: Coditect records no history for it", path, s.sc.Tenant())}
	}
	if a.Limit <= 0 {
		a.Limit = 100
	}
	page, err := s.sc.Log().Query(ctx, audit.Query{Filter: audit.Filter{Project: f.Project, Path: f.Rel}, Order: audit.NewestFirst, Limit: min(a.Limit, audit.MaxLimit), Cursor: a.Cursor})
	if err != nil {
		return nil, err
	}
	return map[string]any{"project": f.Project, "path": f.Rel, "abs": path, "events": s.named(ctx, page.Events), "next": page.Next}, nil
}

// historyEvent is an event of a file's history with its author named for
// people (actor.plain: "agent builder (qwen2.5-coder-7b)", "alice
// (human)"); the event keeps the ids. Diff is the bounded unified diff
// the files tools record with an agent's change (attrs "diff").
type historyEvent struct {
	audit.Event
	Who  string `json:"who"`
	Diff string `json:"diff,omitempty"`
}

// named gives each event its who, reading each agent once.
func (s *server) named(ctx context.Context, evs []audit.Event) []historyEvent {
	out := make([]historyEvent, 0, len(evs))
	seen := map[string]string{}
	for _, ev := range evs {
		key := ev.User + "\x00" + ev.Agent
		if at := ev.Attribution; at != nil {
			key += "\x00" + string(at.Actor) + "\x00" + at.AgentID + "\x00" + at.Model
		}
		who, ok := seen[key]
		if !ok {
			who = s.describe(ctx, ev).plain()
			seen[key] = who
		}
		diff, _ := ev.Attrs["diff"].(string)
		out = append(out, historyEvent{Event: ev, Who: who, Diff: diff})
	}
	return out
}

func (s *server) status(ctx context.Context) (any, error) {
	ags, err := agent.List(ctx, s.sc, agent.Filter{Active: true})
	if err != nil {
		return nil, err
	}
	alive := 0
	for _, a := range ags {
		if a.Liveness == agent.Alive {
			alive++
		}
	}
	open := s.docs.openDocs()
	dirty, untracked := 0, 0
	for _, d := range open {
		if d.dirty {
			dirty++
		}
		if d.key == "" {
			untracked++
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	roots := make([]string, 0, len(s.roots))
	projects := []string{}
	for _, r := range s.roots {
		roots = append(roots, r.path)
		if r.project != "" && !slices.Contains(projects, r.project) {
			projects = append(projects, r.project)
		}
	}
	return map[string]any{
		"tenant": s.sc.Tenant(), "user": s.sc.Principal().User, "session": s.session,
		"agents": len(ags), "agents_alive": alive, "open": len(open), "unsaved": dirty, "untracked": untracked,
		"roots": roots, "projects": projects,
	}, nil
}

// placeURI resolves a document URI sent with a command: its path, and
// its project file (ok false for a file in no project of the tenant).
func (s *server) placeURI(ctx context.Context, uri string) (string, project.File, bool, error) {
	path, err := uriPath(uri)
	if err != nil {
		return "", project.File{}, false, invalidParams("uri: %v", err)
	}
	f, ok, err := s.place(ctx, path)
	return path, f, ok, err
}

// quote is what a write command appends for a selection: "path:L1-L3"
// (the project-relative path when the file is in a project) and the
// selected text, read from the open document or else, for a file in a
// project, from disk. It also returns the file's project id ("" when it
// is in none).
func (s *server) quote(ctx context.Context, uri string, rng *protocol.Range) (text, projectID string, err error) {
	if uri == "" {
		return "", "", nil
	}
	path, f, ok, err := s.placeURI(ctx, uri)
	if err != nil {
		return "", "", err
	}
	shown := path
	if ok {
		shown, projectID = f.Rel, f.Project
	}
	if rng == nil {
		return shown, projectID, nil
	}
	s.docs.mu.Lock()
	var buf *buffer
	if d, open := s.docs.m[uri]; open {
		buf = newBuffer(slices.Clone(d.buf.text))
	}
	s.docs.mu.Unlock()
	if buf == nil && !ok {
		return "", "", invalidParams("%s is neither open in the editor nor in a project of tenant %s: Coditect does not read it", path, s.sc.Tenant())
	}
	if buf == nil {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", "", invalidParams("the selection's file: %v", err)
		}
		buf = newBuffer(b)
	}
	first, last := rng.Start.Line+1, rng.End.Line+1
	if rng.End.Character == 0 && rng.End.Line > rng.Start.Line {
		last-- // a selection of whole lines ends at the next line's start
	}
	lines := fmt.Sprintf("%s:%d", shown, first)
	if last > first {
		lines += fmt.Sprintf("-%d", last)
	}
	sel := string(buf.text[buf.offset(rng.Start):max(buf.offset(rng.Start), buf.offset(rng.End))])
	if sel == "" {
		return lines, projectID, nil
	}
	return lines + "\n```\n" + strings.TrimSuffix(sel, "\n") + "\n```", projectID, nil
}

// withQuote appends a selection's quote to text.
func withQuote(text, quote string) string {
	if quote == "" || text == "" {
		return text + quote
	}
	return text + "\n\n" + quote
}

// messageSend sends the human's message (message.Address reads to as
// people type it).
func (s *server) messageSend(ctx context.Context, arg json.RawMessage) (any, error) {
	var a struct {
		To      string          `json:"to"`
		Subject string          `json:"subject"`
		Body    string          `json:"body"`
		ReplyTo string          `json:"reply_to"`
		URI     string          `json:"uri"`
		Range   *protocol.Range `json:"range"`
	}
	if err := decode(arg, &a); err != nil {
		return nil, err
	}
	if err := s.sc.CanWrite(); err != nil {
		return nil, err // before anything is read: a viewer learns nothing else
	}
	q, _, err := s.quote(ctx, a.URI, a.Range)
	if err != nil {
		return nil, err
	}
	var to message.To
	if a.To != "" || a.ReplyTo == "" {
		if to, err = message.Address(ctx, s.sc, a.To); err != nil {
			return nil, err
		}
	}
	return message.Send(ctx, s.sc, message.Outgoing{To: to, Subject: a.Subject, Body: withQuote(a.Body, q), ReplyTo: a.ReplyTo})
}

// taskCreate creates an open task, in the selection's project unless
// another is named.
func (s *server) taskCreate(ctx context.Context, arg json.RawMessage) (any, error) {
	var a struct {
		Title       string          `json:"title"`
		Description string          `json:"description"`
		Project     string          `json:"project"`
		URI         string          `json:"uri"`
		Range       *protocol.Range `json:"range"`
	}
	if err := decode(arg, &a); err != nil {
		return nil, err
	}
	if err := s.sc.CanWrite(); err != nil {
		return nil, err
	}
	q, projectID, err := s.quote(ctx, a.URI, a.Range)
	if err != nil {
		return nil, err
	}
	return task.Create(ctx, s.sc, task.New{Title: a.Title, Description: withQuote(a.Description, q), Project: cmp.Or(a.Project, projectID)})
}

// leaseRelease force-releases the leases on exactly a file's project key,
// through the layer call REST's DELETE /api/v1/leases/{resource} makes
// (admins only).
func (s *server) leaseRelease(ctx context.Context, arg json.RawMessage) (any, error) {
	var a struct {
		URI    string `json:"uri"`
		Reason string `json:"reason"`
	}
	if err := decode(arg, &a); err != nil {
		return nil, err
	}
	path, f, ok, err := s.placeURI(ctx, a.URI)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, invalidParams("%s is in no project of tenant %s: Coditect holds no lease on it", path, s.sc.Tenant())
	}
	reason := cmp.Or(a.Reason, "released from the editor by "+s.sc.Principal().User)
	ls, err := lease.ForceRelease(ctx, s.sc, f.String(), reason)
	if err != nil {
		return nil, err
	}
	return map[string]any{"resource": f.String(), "released": ls}, nil
}
