package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/tenant"
)

// Core is the default toolset: who am I, work sessions, notes and
// decisions, and reading the audit log.
func Core() Toolset {
	return Toolset{
		Name:    "core",
		Summary: "whoami, work sessions, notes and decisions, audit log queries",
		Tools: []*Tool{
			whoamiTool(), sessionStartTool(), sessionEndTool(), sessionListTool(), noteTool(), auditQueryTool(),
		},
	}
}

// Page sizes of the listing tools: small, because a model reads them.
const (
	defaultPage = 20
	maxPage     = 50
)

// --- whoami ---

type whoamiOut struct {
	Tenant        string `json:"tenant"`
	User          string `json:"user"`
	Role          string `json:"role"`
	AgentID       string `json:"agent_id,omitempty"`
	AgentName     string `json:"agent_name,omitempty"`
	Model         string `json:"model,omitempty"`
	Client        string `json:"client,omitempty"`
	ClientVersion string `json:"client_version,omitempty"`
	// Projects are the tenant's projects, with their roots on this
	// machine: where sessions can start.
	Projects []projectOut `json:"projects"`
}

// projectOut is a project as the tools show it.
type projectOut struct {
	Name  string   `json:"name"`
	ID    string   `json:"id"`
	Roots []string `json:"roots"`
}

func whoamiTool() *Tool {
	return spec{
		name: "whoami", title: "Who am I",
		description: "Show who you are in Coditect (tenant, user, role, agent id) and the projects you can work in.",
		hints:       readOnly,
		input: `{"type":"object","additionalProperties":false,"properties":{
			"session_id":{"type":"string"}}}`,
		output: `{"type":"object","required":["tenant","user","role"],"properties":{
			"tenant":{"type":"string"},"user":{"type":"string"},"role":{"type":"string"},
			"agent_id":{"type":"string"},"agent_name":{"type":"string"},"model":{"type":"string"},
			"client":{"type":"string"},"client_version":{"type":"string"},
			"projects":{"type":"array","items":{"type":"object","required":["name","id","roots"],"properties":{
			"name":{"type":"string"},"id":{"type":"string"},"roots":{"type":"array","items":{"type":"string"}}}}}}}`,
		example: `{}`,
		handler: whoami,
	}.tool()
}

func whoami(ctx context.Context, c *Call) (Result, error) {
	var a struct {
		SessionID string `json:"session_id"`
	}
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	if _, err := c.sessionID(a.SessionID, false); err != nil {
		return Result{}, err
	}
	p := c.Scope.Principal()
	out := whoamiOut{Tenant: p.Tenant, User: p.User, Role: string(p.Role), AgentID: p.Agent,
		Client: c.Client.Name, ClientVersion: c.Client.Version}
	ag, ps, err := c.whoamiRead(ctx)
	if err != nil {
		return Result{}, err
	}
	if p.Agent != "" {
		out.AgentName, out.Model = ag.Name, ag.Model
	}
	var b strings.Builder
	if out.AgentID != "" {
		fmt.Fprintf(&b, "You are agent %s (%s", out.AgentID, out.AgentName)
		if out.Model != "" {
			fmt.Fprintf(&b, ", model %s", out.Model)
		}
		fmt.Fprintf(&b, ") acting for ")
	} else {
		b.WriteString("You are ")
	}
	fmt.Fprintf(&b, "user %s (%s) in tenant %s.", out.User, out.Role, out.Tenant)
	machine := project.Machine()
	out.Projects = make([]projectOut, 0, len(ps))
	for _, p := range ps {
		roots := p.RootsOn(machine)
		if roots == nil {
			roots = []string{}
		}
		out.Projects = append(out.Projects, projectOut{Name: p.Name, ID: p.ID, Roots: roots})
	}
	if len(ps) == 0 {
		b.WriteString(" Your tenant has no projects yet: an admin registers one with `coditect project add NAME DIR`.")
	} else {
		fmt.Fprintf(&b, " Start sessions in one of your %s.", strings.TrimPrefix(project.Describe(ps, machine), "its "))
	}
	return Result{Structured: out, Text: b.String()}, nil
}

// --- sessions ---

// sessionOut is a session as the tools show it: what a model needs to
// pick one and pass its session_id on.
type sessionOut struct {
	SessionID string `json:"session_id"`
	Title     string `json:"title"`
	// Project is the project's name, Dir the workspace's directory
	// relative to the project root ("." for the root) and Workspace its
	// path on the machine the session started on.
	Project   string    `json:"project,omitempty"`
	Dir       string    `json:"dir,omitempty"`
	Workspace string    `json:"workspace"`
	State     string    `json:"state"`
	User      string    `json:"user"`
	Agent     string    `json:"agent,omitempty"`
	Started   time.Time `json:"started"`
	Ended     time.Time `json:"ended,omitzero"`
	Status    string    `json:"status,omitempty"`
}

// sessionSchema is sessionOut's schema.
const sessionSchema = `{"type":"object","required":["session_id","title","workspace","state","started"],"properties":{
	"session_id":{"type":"string"},"title":{"type":"string"},"project":{"type":"string"},"dir":{"type":"string"},"workspace":{"type":"string"},
	"state":{"type":"string"},"user":{"type":"string"},"agent":{"type":"string"},
	"started":{"type":"string"},"ended":{"type":"string"},"status":{"type":"string"}}}`

// newSessionOut shows a session; name is its project's name.
func newSessionOut(s session.Session, name string) sessionOut {
	out := sessionOut{SessionID: s.ID, Title: s.Title, Project: name, Dir: s.Dir, Workspace: s.Workspace, State: string(s.State),
		User: s.User, Agent: s.Agent, Started: s.Started.UTC(), Ended: s.Ended.UTC()}
	if s.Outcome != nil {
		out.Status = string(s.Outcome.Status)
	}
	return out
}

func (s sessionOut) line() string {
	who := s.User
	if s.Agent != "" {
		who += "/" + s.Agent
	}
	state := s.State
	if s.Status != "" {
		state += " (" + s.Status + ")"
	}
	return fmt.Sprintf("%s  %s  %q in %s by %s, started %s", s.SessionID, state, s.Title, s.where(), who,
		s.Started.Format(time.RFC3339))
}

// where names the session's place for a model: the project and the
// directory in it, else (a session older than projects) the workspace.
func (s sessionOut) where() string {
	switch {
	case s.Project == "":
		return s.Workspace
	case s.Dir == "" || s.Dir == ".":
		return "project " + s.Project
	}
	return fmt.Sprintf("project %s, directory %s", s.Project, s.Dir)
}

// sessionOut shows a session with its project's name.
func (c *Call) sessionOut(ctx context.Context, s session.Session) sessionOut {
	return newSessionOut(s, c.projectName(ctx, s.Project))
}

// sessionID checks and normalises a session_id argument.
func (c *Call) sessionID(v string, required bool) (string, error) {
	if v == "" {
		if required {
			return "", c.argError("%q is required: use the session_id that session_start returned, or find one with session_list", "session_id")
		}
		return "", nil
	}
	id, err := session.ParseID(v)
	if err != nil {
		return "", c.argError("%q %q is not a session id: use the 26-character session_id that session_start returned, or find one with session_list", "session_id", textclip.Clip(v, 40))
	}
	return id, nil
}

type sessionStartArgs struct {
	Title     string `json:"title"`
	Project   string `json:"project"`
	Workspace string `json:"workspace"`
	Purpose   string `json:"purpose"`
	Agent     string `json:"agent"`
	Model     string `json:"model"`
}

func sessionStartTool() *Tool {
	return spec{
		name: "session_start", title: "Start a work session",
		description: "Start a work session in a project; returns the session_id to pass to note and session_end.",
		hints:       additive,
		input: `{"type":"object","required":["title"],"additionalProperties":false,"properties":{
			"title":{"type":"string","maxLength":200,"description":"What the work is, in one line"},
			"project":{"type":"string","description":"Project name (whoami lists yours)"},
			"workspace":{"type":"string","description":"Absolute path of your directory in a project"},
			"purpose":{"type":"string"},
			"agent":{"type":"string","description":"Your name if models share this server"},
			"model":{"type":"string"}}}`,
		output:  sessionSchema,
		example: `{"title":"Fix the login redirect","workspace":"/home/me/project"}`,
		handler: sessionStart,
	}.tool()
}

func sessionStart(ctx context.Context, c *Call) (Result, error) {
	var a sessionStartArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	if err := c.text("title", a.Title, session.MaxTitle, true, true); err != nil {
		return Result{}, err
	}
	if err := c.text("project", a.Project, project.MaxName, false, true); err != nil {
		return Result{}, err
	}
	if a.Project == "" && a.Workspace == "" {
		return Result{}, c.argError("%q or %q is required: the name of a project (whoami lists yours), or the absolute path of the directory you work in, e.g. /home/me/project", "project", "workspace")
	}
	if err := c.text("workspace", a.Workspace, session.MaxWorkspace, false, true); err != nil {
		return Result{}, err
	}
	if a.Workspace != "" {
		if _, err := session.Workspace(a.Workspace); err != nil {
			return Result{}, c.argError("%q %q is not an absolute path: send the directory you work in, e.g. /home/me/project", "workspace", textclip.Clip(a.Workspace, 80))
		}
	}
	if err := c.text("purpose", a.Purpose, session.MaxPurpose, false, false); err != nil {
		return Result{}, err
	}
	if err := c.sessionAgentArgs(ctx, a.Agent, a.Model); err != nil {
		return Result{}, err
	}
	s, err := session.Start(ctx, c.Scope, session.Spec{Title: a.Title, Project: a.Project, Workspace: a.Workspace, Purpose: a.Purpose,
		Bound: a.Agent != ""})
	switch {
	case errors.Is(err, project.ErrOutside) && a.Project == "":
		return Result{}, c.outsideError(ctx, a.Workspace, err)
	case err != nil:
		return Result{}, c.projectError(ctx, a.Project, err)
	}
	out := c.sessionOut(ctx, s)
	text := fmt.Sprintf("Started session %s (%q) in %s. Pass session_id %q to note and session_end.",
		out.SessionID, out.Title, out.where(), out.SessionID)
	if s.Bound {
		text = fmt.Sprintf("Started session %s (%q) in %s as agent %s (%s). Pass session_id %q to every call: each call with it acts as %s.",
			out.SessionID, out.Title, out.where(), a.Agent, s.Agent, out.SessionID, a.Agent)
	}
	return Result{Structured: out, Text: text}, nil
}

// sessionAgentArgs checks session_start's agent and model, and that the
// call acts as the agent named (the transport chose it: see package
// server's agents.acting).
func (c *Call) sessionAgentArgs(ctx context.Context, name, model string) error {
	if err := c.text("agent", name, agent.MaxName, false, true); err != nil {
		return err
	}
	if err := c.text("model", model, agent.MaxModel, false, true); err != nil {
		return err
	}
	switch {
	case name == "" && model != "":
		return c.argError("%q goes with %q: send your name as agent too, e.g. {\"agent\":\"qwen-coder\",\"model\":%q}", "model", "agent", textclip.Clip(model, 60))
	case name == "":
		return nil
	}
	if err := c.Scope.CanWrite(); err != nil {
		return err
	}
	if c.Scope.Principal().Agent == "" {
		return &toolError{err: tenant.ErrForbidden,
			msg: fmt.Sprintf("you act as no agent here, so this server cannot speak for agent %q; start the session without agent", name)}
	}
	rec, err := c.agentRecord(ctx)
	if err != nil {
		return err
	}
	if rec.Name != name {
		return &toolError{err: tenant.ErrForbidden,
			msg: fmt.Sprintf("this call acts as agent %s (%s), not %q; start the session without agent", rec.ID, rec.Name, name)}
	}
	return nil
}

type sessionEndArgs struct {
	SessionID string `json:"session_id"`
	Status    string `json:"status"`
	Summary   string `json:"summary"`
}

type sessionEndOut struct {
	SessionID string    `json:"session_id"`
	State     string    `json:"state"`
	Status    string    `json:"status"`
	Ended     time.Time `json:"ended"`
}

func sessionEndTool() *Tool {
	return spec{
		name: "session_end", title: "End a work session",
		description: "End a work session when its task is done, with status completed, failed or cancelled.",
		hints:       additive,
		input: `{"type":"object","required":["session_id","status"],"additionalProperties":false,"properties":{
			"session_id":{"type":"string"},
			"status":{"type":"string","enum":["completed","failed","cancelled"]},
			"summary":{"type":"string","maxLength":2000,"description":"What was done"}}}`,
		output: `{"type":"object","required":["session_id","state","status","ended"],"properties":{
			"session_id":{"type":"string"},"state":{"type":"string"},"status":{"type":"string"},"ended":{"type":"string"}}}`,
		example: `{"session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T","status":"completed","summary":"Fixed it; tests pass"}`,
		handler: sessionEnd,
	}.tool()
}

func sessionEnd(ctx context.Context, c *Call) (Result, error) {
	var a sessionEndArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	id, err := c.sessionID(a.SessionID, true)
	if err != nil {
		return Result{}, err
	}
	if a.Status == "" {
		return Result{}, c.argError("%q is required: completed, failed or cancelled", "status")
	}
	if err := c.oneOf("status", a.Status, "completed", "failed", "cancelled"); err != nil {
		return Result{}, err
	}
	if err := c.text("summary", a.Summary, session.MaxOutcomeSummary, false, false); err != nil {
		return Result{}, err
	}
	s, err := session.End(ctx, c.Scope, id, session.Outcome{Status: session.Status(a.Status), Summary: a.Summary})
	if err != nil {
		return Result{}, err
	}
	out := sessionEndOut{SessionID: s.ID, State: string(s.State), Ended: s.Ended.UTC()}
	if s.Outcome != nil {
		out.Status = string(s.Outcome.Status)
	}
	return Result{Structured: out, Text: fmt.Sprintf("Ended session %s as %s.", out.SessionID, out.Status)}, nil
}

type sessionListArgs struct {
	State     string `json:"state"`
	Project   string `json:"project"`
	Workspace string `json:"workspace"`
	Mine      bool   `json:"mine"`
	Limit     int    `json:"limit"`
	Cursor    string `json:"cursor"`
}

type sessionListOut struct {
	Sessions []sessionOut `json:"sessions"`
	Next     string       `json:"next,omitempty"`
}

func sessionListTool() *Tool {
	return spec{
		name: "session_list", title: "List work sessions",
		description: "List work sessions, newest first, to find a session_id or see who works on what.",
		hints:       readOnly,
		input: `{"type":"object","additionalProperties":false,"properties":{
			"state":{"type":"string","enum":["open","ended","abandoned"]},
			"project":{"type":"string","description":"Only this project's (name)"},
			"workspace":{"type":"string","description":"Only this workspace directory"},
			"mine":{"type":"boolean","description":"Only sessions you started or joined"},
			"limit":{"type":"integer","minimum":1,"maximum":50},
			"cursor":{"type":"string","description":"next from the previous page"}}}`,
		output:  `{"type":"object","required":["sessions"],"properties":{"sessions":{"type":"array","items":` + sessionSchema + `},"next":{"type":"string"}}}`,
		example: `{"state":"open","limit":10}`,
		handler: sessionList,
	}.tool()
}

func sessionList(ctx context.Context, c *Call) (Result, error) {
	var a sessionListArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	limit, err := c.limit(a.Limit, defaultPage, maxPage)
	if err != nil {
		return Result{}, err
	}
	q := session.Query{Limit: limit, Cursor: a.Cursor}
	if a.State != "" {
		if err := c.oneOf("state", a.State, "open", "ended", "abandoned"); err != nil {
			return Result{}, err
		}
		q.State = session.State(a.State)
	}
	if a.Workspace != "" {
		if _, err := session.Workspace(a.Workspace); err != nil {
			return Result{}, c.argError("%q %q is not an absolute path: send the project root, e.g. /home/me/project", "workspace", textclip.Clip(a.Workspace, 80))
		}
		q.Workspace = a.Workspace
		if canon, err := project.Canonical(a.Workspace); err == nil {
			q.Workspace = canon // as sessions record it
		}
	}
	if err := c.text("cursor", a.Cursor, 256, false, true); err != nil {
		return Result{}, err
	}
	if q.Project, err = c.projectArg(ctx, a.Project); err != nil {
		return Result{}, err
	}
	if a.Mine {
		if p := c.Scope.Principal(); p.Agent != "" {
			q.Agent = p.Agent
		} else {
			q.User = p.User
		}
	}
	page, err := session.List(ctx, c.Scope, q)
	if err != nil {
		return Result{}, err
	}
	out := sessionListOut{Sessions: make([]sessionOut, 0, len(page.Sessions)), Next: page.Next}
	var b strings.Builder
	for _, s := range page.Sessions {
		so := c.sessionOut(ctx, s)
		out.Sessions = append(out.Sessions, so)
		b.WriteString(so.line())
		b.WriteByte('\n')
	}
	if len(out.Sessions) == 0 {
		b.WriteString("No sessions match.\n")
	}
	if out.Next != "" {
		fmt.Fprintf(&b, "More: call session_list again with cursor %q.\n", out.Next)
	}
	return Result{Structured: out, Text: strings.TrimSuffix(b.String(), "\n")}, nil
}

// --- notes and decisions ---

type noteArgs struct {
	Text      string `json:"text"`
	Kind      string `json:"kind"`
	SessionID string `json:"session_id"`
	Path      string `json:"path"`
}

type noteOut struct {
	EventID   string    `json:"event_id"`
	Kind      string    `json:"kind"`
	SessionID string    `json:"session_id,omitempty"`
	Time      time.Time `json:"time"`
}

func noteTool() *Tool {
	return spec{
		name: "note", title: "Record a note or decision",
		description: `Record a note, or a decision (kind "decision"), in the shared audit log, optionally for a session_id.`,
		hints:       additive,
		input: `{"type":"object","required":["text"],"additionalProperties":false,"properties":{
			"text":{"type":"string","maxLength":2000},
			"kind":{"type":"string","enum":["note","decision"]},
			"session_id":{"type":"string"},
			"path":{"type":"string","description":"File the note is about"}}}`,
		output: `{"type":"object","required":["event_id","kind","time"],"properties":{
			"event_id":{"type":"string"},"kind":{"type":"string"},"session_id":{"type":"string"},"time":{"type":"string"}}}`,
		example: `{"text":"Chose sqlite over bbolt: several processes must write","kind":"decision"}`,
		oneTx:   true,
		handler: note,
	}.tool()
}

func note(ctx context.Context, c *Call) (Result, error) {
	var a noteArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	if err := c.text("text", a.Text, audit.MaxSummary, true, false); err != nil {
		return Result{}, err
	}
	kind := "note.added"
	switch a.Kind {
	case "", "note":
	case "decision":
		kind = "decision.recorded"
	default:
		return Result{}, c.argError("%q must be \"note\" or \"decision\", not %q", "kind", textclip.Clip(a.Kind, 40))
	}
	id, err := c.sessionID(a.SessionID, false)
	if err != nil {
		return Result{}, err
	}
	if err := c.text("path", a.Path, audit.MaxPath, false, true); err != nil {
		return Result{}, err
	}
	if err := c.Scope.CanWrite(); err != nil {
		return Result{}, err
	}
	if id != "" {
		// A note names a session of the caller's tenant or none: an id
		// from elsewhere is refused like one that does not exist.
		if _, err := session.Get(ctx, c.Scope, id); err != nil {
			return Result{}, err
		}
	}
	ev := c.Scope.Event(kind, a.Text)
	ev.Session, ev.Path = id, a.Path
	ev.Time = time.Now()
	result := func(commit kv.Versionstamp, ref audit.Ref) Result {
		out := noteOut{EventID: ref.ID(commit), Kind: kind, SessionID: id, Time: ev.Time.UTC()}
		what := "Note"
		if kind == "decision.recorded" {
			what = "Decision"
		}
		text := fmt.Sprintf("%s recorded as event %s", what, out.EventID)
		if id != "" {
			text += " in session " + id
		}
		return Result{Structured: out, Text: text + "."}
	}
	// The note, the call's own record and a keyed call's result commit
	// together: one commit.
	var ref audit.Ref
	commit, err := c.Scope.Store().Update(ctx, func(tx kv.Tx) error {
		if err := c.claimKey(tx); err != nil {
			return err
		}
		w := c.Scope.Log().BatchWriter(tx)
		var err error
		if ref, err = w.Append(ev); err != nil {
			return err
		}
		return c.commitCall(tx, w, func(commit kv.Versionstamp) Result { return result(commit, ref) })
	})
	if err != nil {
		return Result{}, err
	}
	c.audited = true
	return result(commit, ref), nil
}

// --- audit log ---

type auditQueryArgs struct {
	SessionID string `json:"session_id"`
	Agent     string `json:"agent"`
	Kind      string `json:"kind"`
	Project   string `json:"project"`
	Path      string `json:"path"`
	Limit     int    `json:"limit"`
	Cursor    string `json:"cursor"`
}

// eventOut is an audit event as the tools show it, with its summary and
// attributes cut so that a page stays small.
type eventOut struct {
	ID        string         `json:"id"`
	Time      time.Time      `json:"time"`
	Kind      string         `json:"kind"`
	User      string         `json:"user,omitempty"`
	Agent     string         `json:"agent,omitempty"`
	SessionID string         `json:"session_id,omitempty"`
	Project   string         `json:"project,omitempty"`
	Path      string         `json:"path,omitempty"`
	Summary   string         `json:"summary,omitempty"`
	Attrs     map[string]any `json:"attrs,omitempty"`
}

type auditQueryOut struct {
	Events []eventOut `json:"events"`
	Next   string     `json:"next,omitempty"`
}

// Bounds of an audit_query page.
const (
	maxEventSummary = 300
	maxEventAttrs   = 512
	// maxQueryPages bounds the log pages one call reads while it skips
	// tool.called events.
	maxQueryPages = 5
)

func auditQueryTool() *Tool {
	return spec{
		name: "audit_query", title: "Read the audit log",
		description: "Read the shared audit log, newest first, filtered by session_id, agent, kind or path.",
		hints:       readOnly,
		input: `{"type":"object","additionalProperties":false,"properties":{
			"session_id":{"type":"string"},"agent":{"type":"string"},
			"kind":{"type":"string","description":"e.g. note.added, decision.recorded, session.started, tool.called"},
			"project":{"type":"string","description":"Project name; path is then relative to its root"},
			"path":{"type":"string"},
			"limit":{"type":"integer","minimum":1,"maximum":50},
			"cursor":{"type":"string","description":"next from the previous page"}}}`,
		output: `{"type":"object","required":["events"],"properties":{"events":{"type":"array","items":{
			"type":"object","required":["id","time","kind"],"properties":{
			"id":{"type":"string"},"time":{"type":"string"},"kind":{"type":"string"},"user":{"type":"string"},
			"agent":{"type":"string"},"session_id":{"type":"string"},"project":{"type":"string"},"path":{"type":"string"},
			"summary":{"type":"string"},"attrs":{"type":"object"}}}},"next":{"type":"string"}}}`,
		example: `{"kind":"decision.recorded","limit":10}`,
		handler: auditQuery,
	}.tool()
}

func auditQuery(ctx context.Context, c *Call) (Result, error) {
	var a auditQueryArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	limit, err := c.limit(a.Limit, defaultPage, maxPage)
	if err != nil {
		return Result{}, err
	}
	f := audit.Filter{Agent: a.Agent, Kind: a.Kind, Path: a.Path}
	if f.Session, err = c.sessionID(a.SessionID, false); err != nil {
		return Result{}, err
	}
	if err := c.text("agent", a.Agent, audit.MaxIDField, false, true); err != nil {
		return Result{}, err
	}
	if err := c.text("path", a.Path, audit.MaxPath, false, true); err != nil {
		return Result{}, err
	}
	if f.Project, err = c.projectArg(ctx, a.Project); err != nil {
		return Result{}, err
	}
	if a.Kind != "" && !audit.KnownKind(a.Kind) {
		return Result{}, c.argError("%q %q is not an event kind; use one of %s", "kind", textclip.Clip(a.Kind, 40), strings.Join(audit.Kinds(), ", "))
	}
	if a.Cursor != "" {
		if _, err := audit.ParseID(a.Cursor); err != nil {
			return Result{}, c.argError("%q is not a cursor: send the next value of the previous page, or leave it out to start at the newest event", "cursor")
		}
	}
	// Every call is itself audited, so tool.called events would crowd out
	// everything else: they are shown only when asked for by kind.
	skipCalls := a.Kind == ""
	out := auditQueryOut{Events: []eventOut{}}
	q := audit.Query{Filter: f, Order: audit.NewestFirst, Cursor: a.Cursor}
	for range maxQueryPages {
		q.Limit = limit - len(out.Events)
		if skipCalls {
			q.Limit = min(audit.MaxLimit, 4*q.Limit+20)
		}
		page, err := c.Scope.Log().Query(ctx, q)
		if err != nil {
			return Result{}, err
		}
		out.Next = page.Next
		for _, ev := range page.Events {
			if skipCalls && ev.Kind == "tool.called" {
				continue
			}
			out.Events = append(out.Events, c.eventOut(ctx, ev))
			if len(out.Events) == limit {
				out.Next = ev.ID
				break
			}
		}
		if len(out.Events) == limit || page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	var b strings.Builder
	for _, ev := range out.Events {
		fmt.Fprintf(&b, "%s %s", ev.Time.Format(time.RFC3339), ev.Kind)
		if ev.Agent != "" {
			fmt.Fprintf(&b, " agent=%s", ev.Agent)
		} else if ev.User != "" {
			fmt.Fprintf(&b, " user=%s", ev.User)
		}
		if ev.SessionID != "" {
			fmt.Fprintf(&b, " session=%s", ev.SessionID)
		}
		if ev.Project != "" {
			fmt.Fprintf(&b, " project=%s", ev.Project)
		}
		if ev.Path != "" {
			fmt.Fprintf(&b, " path=%s", ev.Path)
		}
		fmt.Fprintf(&b, ": %s\n", ev.Summary)
	}
	if len(out.Events) == 0 {
		b.WriteString("No events match.\n")
	}
	if out.Next != "" {
		fmt.Fprintf(&b, "More: call audit_query again with cursor %q.\n", out.Next)
	}
	return Result{Structured: out, Text: strings.TrimSuffix(b.String(), "\n")}, nil
}

// eventOut shows an event, with its project's name and a path relative
// to the project root (also when the event's path is a project key).
func (c *Call) eventOut(ctx context.Context, ev audit.Event) eventOut {
	p, id := ev.Path, ev.Project
	if rel, pid := unqualify(p); pid != "" {
		p, id = rel, pid
	}
	out := eventOut{ID: ev.ID, Time: ev.Time.UTC(), Kind: ev.Kind, User: ev.User, Agent: ev.Agent,
		SessionID: ev.Session, Project: c.projectName(ctx, id), Path: p, Summary: textclip.Clip(unqualifyText(ev.Summary, id), maxEventSummary)}
	if len(ev.Attrs) > 0 {
		if b, err := json.Marshal(ev.Attrs); err == nil && len(b) <= maxEventAttrs {
			out.Attrs = ev.Attrs
		} else {
			out.Attrs = map[string]any{"_truncated": true, "_bytes": len(b)}
		}
	}
	return out
}
