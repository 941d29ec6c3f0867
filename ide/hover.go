package ide

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.lsp.dev/protocol"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/project"
)

// Hover (and, in code_lens.go, code lens): who last changed the file (actor, agent and model,
// session, when), from the audit log's path index, by the file's project and relative path.

// historyScan is how many of a file's newest events are examined for its
// last change; the path index makes it one short range read.
const historyScan = 50

type documentPosition struct {
	TextDocument struct {
		URI string `json:"uri"`
	} `json:"textDocument"`
	Position *protocol.Position `json:"position"`
}

func (s *server) hover(ctx context.Context, params json.RawMessage) (any, error) {
	var p documentPosition
	if err := decode(params, &p); err != nil {
		return nil, err
	}
	if p.Position == nil {
		return nil, invalidParams("params.position is required")
	}
	path, err := uriPath(p.TextDocument.URI)
	if err != nil {
		return nil, nil // not a file: nothing to say
	}
	f, ok, err := s.place(ctx, path)
	if err != nil || !ok {
		return nil, err // no project: nothing recorded
	}
	ev, ok, err := s.lastChange(ctx, f)
	if err != nil || !ok {
		return nil, err
	}
	who := s.describe(ctx, ev)
	text := fmt.Sprintf("**Coditect** · last changed by %s, %s", who.markdown(), ago(ev.Time))
	var details []string
	if ev.Session != "" {
		details = append(details, "session `"+ev.Session+"`")
	}
	details = append(details, "`"+ev.Kind+"`")
	if a := ev.Attribution; a != nil && a.Evidence != "" {
		details = append(details, fmt.Sprintf("evidence: %s (confidence %.0f%%)", a.Evidence, a.Confidence*100))
	}
	text += "\n\n" + strings.Join(details, " · ") + "\n\n" + ev.Time.UTC().Format(time.RFC3339)
	return map[string]any{"contents": protocol.MarkupContent{Kind: protocol.Markdown, Value: text}}, nil
}

// changes reports whether ev changed the file it names.
func changes(ev *audit.Event) bool {
	switch ev.Kind {
	case "file.created", "file.modified", "file.renamed", "file.deleted", "ide.saved":
		return true
	case "tool.called":
		tool, _ := ev.Attrs["tool"].(string)
		outcome, _ := ev.Attrs["outcome"].(string)
		return (tool == "fs_write" || tool == "fs_edit") && outcome == "ok"
	}
	return false
}

// lastChange returns the newest event that changed the file.
func (s *server) lastChange(ctx context.Context, f project.File) (audit.Event, bool, error) {
	page, err := s.sc.Log().Query(ctx, audit.Query{Filter: audit.Filter{Project: f.Project, Path: f.Rel}, Order: audit.NewestFirst, Limit: historyScan})
	if err != nil {
		return audit.Event{}, false, err
	}
	for _, ev := range page.Events {
		if changes(&ev) {
			return ev, true, nil
		}
	}
	return audit.Event{}, false, nil
}

// actor is who made a change, as a hover shows it.
type actor struct {
	human       bool
	user, agent string // agent: its name, else its id
	model       string
	unknown     bool
}

func (a actor) plain() string {
	switch {
	case a.unknown:
		return "an unknown writer"
	case a.human:
		return a.user + " (human)"
	}
	s := "agent " + a.agent
	if a.model != "" {
		s += " (" + a.model + ")"
	}
	return s
}

func (a actor) markdown() string {
	switch {
	case a.unknown:
		return "an unknown writer"
	case a.human:
		return "**" + a.user + "** (human)"
	}
	s := "agent **" + a.agent + "**"
	if a.model != "" {
		s += " (`" + a.model + "`)"
	}
	if a.user != "" {
		s += " for " + a.user
	}
	return s
}

// describe says who made ev, naming an agent by its registered name.
func (s *server) describe(ctx context.Context, ev audit.Event) actor {
	a := actor{user: ev.User}
	id := ev.Agent
	if at := ev.Attribution; at != nil {
		switch at.Actor {
		case audit.ActorHuman:
			a.human = true
			return a
		case audit.ActorUnknown:
			a.unknown = true
			return a
		}
		if at.AgentID != "" {
			id = at.AgentID
		}
		a.model = at.Model
	}
	if id == "" {
		a.human = a.user != ""
		a.unknown = !a.human
		return a
	}
	a.agent = id
	if ag, err := agent.Get(ctx, s.sc, id); err == nil {
		a.agent = ag.Name
		if a.model == "" {
			a.model = ag.Model
		}
		if a.user == "" {
			a.user = ag.User
		}
	}
	return a
}

// ago renders how long ago t was.
func ago(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%d days ago", int(d/(24*time.Hour)))
}
