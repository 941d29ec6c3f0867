package ide

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/session"
)

// workspace/executeCommand: the commands the editor offers its human.
//
//	coditect.session.start  {title?, workspace?}   start (or return) the session of the workspace
//	coditect.session.end    {status?, summary?}    end it (status completed, failed or cancelled)
//	coditect.dashboard      {}                     the dashboard's URL ({url})
//	coditect.file.history   {uri, limit?}          a file's events, newest first ({events})
//	coditect.agents         {}                     the tenant's active agents ({agents})
//	coditect.status         {}                     for a status bar: user, session, agents alive, buffers

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
	case "":
		return nil, invalidParams("params.command is required")
	}
	return nil, invalidParams("unknown command %q: want one of %v", clip(p.Command, 80), commands)
}

func (s *server) sessionStart(ctx context.Context, arg json.RawMessage) (any, error) {
	var a struct {
		Title     string `json:"title"`
		Workspace string `json:"workspace"`
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
	if a.Workspace == "" {
		roots := s.workspaceRoots()
		if len(roots) == 0 {
			return nil, invalidParams("no workspace: the client sent no workspace folder; pass {\"workspace\": \"/abs/path\"}")
		}
		a.Workspace = roots[0]
	}
	if a.Title == "" {
		a.Title = "Editing " + filepath.Base(a.Workspace)
	}
	se, err := session.Start(ctx, s.sc, session.Spec{Title: a.Title, Workspace: a.Workspace})
	if errors.Is(err, session.ErrInvalid) {
		return nil, invalidParams("%v", err)
	}
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
	if a.Status == "" {
		a.Status = string(session.Completed)
	}
	st, err := session.ParseStatus(a.Status)
	if err != nil {
		return nil, invalidParams("%v", err)
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
	path, err := uriPath(a.URI)
	if err != nil {
		return nil, invalidParams("uri: %v", err)
	}
	if a.Limit <= 0 {
		a.Limit = 100
	}
	page, err := s.sc.Log().Query(ctx, audit.Query{Filter: audit.Filter{Path: path}, Order: audit.NewestFirst, Limit: min(a.Limit, audit.MaxLimit), Cursor: a.Cursor})
	if errors.Is(err, audit.ErrBadCursor) {
		return nil, invalidParams("cursor: %v", err)
	}
	if err != nil {
		return nil, err
	}
	evs := page.Events
	if evs == nil {
		evs = []audit.Event{}
	}
	return map[string]any{"path": path, "events": evs, "next": page.Next}, nil
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
	open := s.docs.openPaths()
	dirty := 0
	for _, d := range open {
		if d {
			dirty++
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return map[string]any{
		"tenant": s.sc.Tenant(), "user": s.sc.Principal().User, "session": s.session,
		"agents": len(ags), "agents_alive": alive, "open": len(open), "unsaved": dirty, "roots": s.roots,
	}, nil
}
