package webview

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/errclass"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/task"
	"github.com/coditect/coditect/storage/tenant"
)

// fail translates a layer error into the one HTTP error it means, by its
// class (errclass): the one place REST maps errors. The body's code keeps
// its earlier names (bad_request, not_found, …) and class names the class.
func (h *Handler) fail(w http.ResponseWriter, err error) {
	var (
		status = http.StatusInternalServerError
		code   = "internal"
		msg    = "internal error; the server log has the details"
		class  = errclass.Of(err)
	)
	if class == nil && errors.Is(err, context.DeadlineExceeded) {
		class = errclass.Unavailable
	}
	switch class {
	case errclass.Invalid:
		status, code, msg = http.StatusBadRequest, "bad_request", clean(err)
	case errclass.NotFound:
		status, code, msg = http.StatusNotFound, "not_found", clean(err)
	case errclass.Conflict:
		status, code, msg = http.StatusConflict, "conflict", clean(err)
	case errclass.Forbidden:
		status, code, msg = http.StatusForbidden, "forbidden", clean(err)
	case errclass.Unavailable:
		status, code, msg = http.StatusServiceUnavailable, "unavailable", "the store is unavailable; retry shortly"
		w.Header().Set("Retry-After", "1")
	}
	if status >= 500 {
		h.opts.Logger.Error("webview: request failed", "err", err)
	}
	name := "internal"
	if class != nil {
		name = class.Name()
	}
	writeClassedError(w, status, code, name, msg)
}

var errBadRequest = errclass.New(errclass.Invalid, "bad request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

// clean drops the package prefixes of a layer error ("audit: …").
func clean(err error) string {
	s := err.Error()
	for _, p := range []string{"tenant: ", "audit: ", "session: ", "agent: ", "task: ", "lease: ", "project: ", "message: ", "review: ", "bad request: "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}

// whoami tells the dashboard who it is logged in as.
func (h *Handler) whoami(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	p := sc.Principal()
	writeJSON(w, http.StatusOK, struct {
		Tenant  string      `json:"tenant"`
		User    string      `json:"user"`
		Role    tenant.Role `json:"role"`
		Agent   string      `json:"agent,omitempty"`
		TokenID string      `json:"token_id,omitempty"`
		Version string      `json:"version,omitempty"`
	}{p.Tenant, p.User, p.Role, p.Agent, p.TokenID, h.opts.Version})
}

func (h *Handler) kinds(w http.ResponseWriter, _ *http.Request, _ *tenant.Scope) {
	writeJSON(w, http.StatusOK, struct {
		Kinds []string `json:"kinds"`
	}{audit.Kinds()})
}

// eventFilter reads the audit filters from a query string; project is the
// id the project parameter resolved to.
func eventFilter(q url.Values, project string) (audit.Filter, error) {
	f := audit.Filter{User: q.Get("user"), Session: q.Get("session"), Agent: q.Get("agent"), Kind: q.Get("kind"), Path: q.Get("path"), Project: project}
	var err error
	if f.Since, err = timeParam(q, "since"); err != nil {
		return f, err
	}
	if f.Until, err = timeParam(q, "until"); err != nil {
		return f, err
	}
	if err := f.Validate(); err != nil {
		return f, err
	}
	return f, nil
}

func timeParam(q url.Values, name string) (time.Time, error) {
	s := q.Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, badRequest("%s=%q: want an RFC 3339 time such as 2026-03-01T12:00:00Z", name, s)
	}
	return t, nil
}

func limitParam(q url.Values, max int) (int, error) {
	s := q.Get("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, badRequest("limit=%q: want a number from 1 to %d", s, max)
	}
	return n, nil
}

// EventPage is one page of events; Next continues it.
type EventPage struct {
	Events []audit.Event `json:"events"`
	Next   string        `json:"next,omitempty"`
}

// listEvents is GET /api/v1/events?user=&session=&agent=&kind=&path=&project=&since=&until=&order=newest|oldest&cursor=&limit=.
// With project (a name or an id), path is relative to the project root.
func (h *Handler) listEvents(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	q := r.URL.Query()
	proj, err := projectParam(r, q, sc)
	if err != nil {
		h.fail(w, err)
		return
	}
	f, err := eventFilter(q, proj)
	if err != nil {
		h.fail(w, err)
		return
	}
	aq := audit.Query{Filter: f, Cursor: q.Get("cursor")}
	switch q.Get("order") {
	case "", "newest":
		aq.Order = audit.NewestFirst
	case "oldest":
		aq.Order = audit.OldestFirst
	default:
		h.fail(w, badRequest("order=%q: want newest or oldest", q.Get("order")))
		return
	}
	if aq.Limit, err = limitParam(q, audit.MaxLimit); err != nil {
		h.fail(w, err)
		return
	}
	p, err := sc.Log().Query(r.Context(), aq)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, EventPage{Events: nonNil(p.Events), Next: p.Next})
}

func (h *Handler) getEvent(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	id := r.PathValue("id")
	if _, err := audit.ParseID(id); err != nil {
		h.fail(w, badRequest("event id %q: want 24 hex digits", id))
		return
	}
	ev, err := sc.Log().Get(r.Context(), id)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ev)
}

// fileKinds are the kinds the Files view shows.
var fileKinds = []string{"file.created", "file.modified", "file.deleted", "file.renamed"}

// listFiles is GET /api/v1/files?limit=&path=&agent=&user=&project=: the
// newest file changes, with their attribution, merged from the kind index.
func (h *Handler) listFiles(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	q := r.URL.Query()
	proj, err := projectParam(r, q, sc)
	if err != nil {
		h.fail(w, err)
		return
	}
	limit, err := limitParam(q, audit.MaxLimit)
	if err != nil {
		h.fail(w, err)
		return
	}
	if limit == 0 {
		limit = audit.DefaultLimit
	}
	var all []audit.Event
	for _, k := range fileKinds {
		q.Set("kind", k)
		f, err := eventFilter(q, proj)
		if err != nil {
			h.fail(w, err)
			return
		}
		// Pages may come back short (each examines a bounded number of
		// events): follow them until limit or the end.
		cursor := ""
		got := 0
		for range 20 {
			p, err := sc.Log().Query(r.Context(), audit.Query{Filter: f, Order: audit.NewestFirst, Limit: limit - got, Cursor: cursor})
			if err != nil {
				h.fail(w, err)
				return
			}
			all = append(all, p.Events...)
			got += len(p.Events)
			if p.Next == "" || got >= limit {
				break
			}
			cursor = p.Next
		}
	}
	slices.SortFunc(all, func(a, b audit.Event) int { return strings.Compare(b.ID, a.ID) })
	if len(all) > limit {
		all = all[:limit]
	}
	writeJSON(w, http.StatusOK, EventPage{Events: nonNil(all)})
}

// listSessions is GET /api/v1/sessions?user=&agent=&workspace=&project=&state=&since=&until=&order=&cursor=&limit=.
func (h *Handler) listSessions(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	q := r.URL.Query()
	proj, err := projectParam(r, q, sc)
	if err != nil {
		h.fail(w, err)
		return
	}
	sq := session.Query{Filter: session.Filter{User: q.Get("user"), Agent: q.Get("agent"), Workspace: q.Get("workspace"), Project: proj}, Cursor: q.Get("cursor")}
	if s := q.Get("state"); s != "" {
		if sq.State, err = session.ParseState(s); err != nil {
			h.fail(w, badRequest("state=%q: want open, ended or abandoned", s))
			return
		}
	}
	if sq.Since, err = timeParam(q, "since"); err != nil {
		h.fail(w, err)
		return
	}
	if sq.Until, err = timeParam(q, "until"); err != nil {
		h.fail(w, err)
		return
	}
	switch q.Get("order") {
	case "", "newest":
	case "oldest":
		sq.Order = session.OldestFirst
	default:
		h.fail(w, badRequest("order=%q: want newest or oldest", q.Get("order")))
		return
	}
	if sq.Limit, err = limitParam(q, session.MaxLimit); err != nil {
		h.fail(w, err)
		return
	}
	p, err := session.List(r.Context(), sc, sq)
	if err != nil {
		h.fail(w, err)
		return
	}
	p.Sessions = nonNil(p.Sessions)
	writeJSON(w, http.StatusOK, p)
}

func (h *Handler) getSession(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	s, err := session.Get(r.Context(), sc, r.PathValue("id"))
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

func (h *Handler) sessionSummary(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	rep, err := session.Summary(r.Context(), sc, r.PathValue("id"))
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// AgentView is an agent as the roster shows it: its record and liveness,
// the leases it holds and the depth of its inbox.
type AgentView struct {
	agent.Agent
	Leases []lease.Holder `json:"leases"`
	// Inbox is the number of unacknowledged messages; -1 when the caller's
	// token is bound to another agent and may not read it.
	Inbox int64 `json:"inbox"`
}

// listAgents is GET /api/v1/agents?cohort=&liveness=&active=true.
func (h *Handler) listAgents(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	q := r.URL.Query()
	f := agent.Filter{Cohort: q.Get("cohort"), Liveness: agent.Liveness(q.Get("liveness"))}
	switch f.Liveness {
	case "", agent.Alive, agent.Stale, agent.Offline, agent.Gone:
	default:
		h.fail(w, badRequest("liveness=%q: want alive, stale, offline or gone", f.Liveness))
		return
	}
	if a := q.Get("active"); a != "" {
		v, err := strconv.ParseBool(a)
		if err != nil {
			h.fail(w, badRequest("active=%q: want true or false", a))
			return
		}
		f.Active = v
	}
	as, err := agent.List(r.Context(), sc, f)
	if err != nil {
		h.fail(w, err)
		return
	}
	holders, err := lease.List(r.Context(), sc, "")
	if err != nil {
		h.fail(w, err)
		return
	}
	byAgent := map[string][]lease.Holder{}
	for _, l := range holders {
		byAgent[l.Agent] = append(byAgent[l.Agent], l)
	}
	out := make([]AgentView, 0, len(as))
	for _, a := range as {
		v, err := h.agentView(r.Context(), sc, a, byAgent[a.ID])
		if err != nil {
			h.fail(w, err)
			return
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, struct {
		Agents []AgentView `json:"agents"`
		Now    time.Time   `json:"now"`
	}{out, time.Now().UTC()})
}

func (h *Handler) agentView(ctx context.Context, sc *tenant.Scope, a agent.Agent, ls []lease.Holder) (AgentView, error) {
	v := AgentView{Agent: a, Leases: nonNil(ls), Inbox: -1}
	as, err := sc.WithAgent(a.ID)
	if err != nil {
		return v, nil // a token bound to another agent: its inbox is not ours to count
	}
	v.Inbox, err = message.Unread(ctx, as)
	return v, err
}

func (h *Handler) getAgent(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	a, err := agent.Get(r.Context(), sc, r.PathValue("id"))
	if err != nil {
		h.fail(w, err)
		return
	}
	ls, err := lease.List(r.Context(), sc, a.ID)
	if err != nil {
		h.fail(w, err)
		return
	}
	v, err := h.agentView(r.Context(), sc, a, ls)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// listLeases is GET /api/v1/leases?agent=.
func (h *Handler) listLeases(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	ls, err := lease.List(r.Context(), sc, r.URL.Query().Get("agent"))
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Leases []lease.Holder `json:"leases"`
	}{nonNil(ls)})
}

// listTasks is GET /api/v1/tasks?state=&assignee=&project=&after=&limit=.
func (h *Handler) listTasks(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	q := r.URL.Query()
	proj, err := projectParam(r, q, sc)
	if err != nil {
		h.fail(w, err)
		return
	}
	f := task.Filter{State: task.State(q.Get("state")), Assignee: q.Get("assignee"), After: q.Get("after"), Project: proj}
	if f.State != "" && !slices.Contains(task.States(), f.State) {
		h.fail(w, badRequest("state=%q: want one of %v", f.State, task.States()))
		return
	}
	if f.Limit, err = limitParam(q, task.MaxLimit); err != nil {
		h.fail(w, err)
		return
	}
	p, err := task.List(r.Context(), sc, f)
	if err != nil {
		h.fail(w, err)
		return
	}
	p.Tasks = nonNil(p.Tasks)
	writeJSON(w, http.StatusOK, struct {
		task.Page
		States []task.State `json:"states"`
	}{p, task.States()})
}

func (h *Handler) getTask(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	t, err := task.Get(r.Context(), sc, r.PathValue("id"))
	if err != nil {
		h.fail(w, err)
		return
	}
	hist, err := task.History(r.Context(), sc, t.ID)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		task.Task
		History []audit.Event `json:"history"`
	}{t, nonNil(hist)})
}

func (h *Handler) getTenant(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	t, err := sc.TenantRecord(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	n, err := sc.Log().Count(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		tenant.Tenant
		Events int64 `json:"events"`
	}{t, n})
}

func (h *Handler) listUsers(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	us, err := sc.Users(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Users []tenant.User `json:"users"`
	}{nonNil(us)})
}

// TokenView is a token without its hash: the API never hands that out.
type TokenView struct {
	ID      string      `json:"id"`
	User    string      `json:"user"`
	Role    tenant.Role `json:"role"`
	Agent   string      `json:"agent,omitempty"`
	Label   string      `json:"label,omitempty"`
	Created time.Time   `json:"created"`
	Expires time.Time   `json:"expires,omitzero"`
	Revoked time.Time   `json:"revoked,omitzero"`
}

func tokenView(t tenant.Token) TokenView {
	return TokenView{ID: t.ID, User: t.User, Role: t.Role, Agent: t.Agent, Label: t.Label, Created: t.Created, Expires: t.Expires, Revoked: t.Revoked}
}

// listTokens is GET /api/v1/tokens (admins): the scope's tenant's tokens.
func (h *Handler) listTokens(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	ts, err := sc.ListTokens(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	out := make([]TokenView, 0, len(ts))
	for _, t := range ts {
		out = append(out, tokenView(t))
	}
	writeJSON(w, http.StatusOK, struct {
		Tokens []TokenView `json:"tokens"`
	}{out})
}

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	User  string `json:"user"`
	Role  string `json:"role"`
	Label string `json:"label,omitempty"`
	Agent string `json:"agent,omitempty"`
	// TTL is a Go duration ("720h"); empty means never expires.
	TTL string `json:"ttl,omitempty"`
}

// createToken is POST /api/v1/tokens (admins): it returns the secret once.
func (h *Handler) createToken(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	if err := sc.RequireAdmin(); err != nil {
		h.fail(w, err)
		return
	}
	var req TokenRequest
	if !h.decodeJSON(w, r, 16<<10, &req) {
		return
	}
	if req.User == "" {
		req.User = sc.Principal().User
	}
	if req.Role == "" {
		req.Role = string(tenant.RoleMember)
	}
	role, err := tenant.ParseRole(req.Role)
	if err != nil {
		h.fail(w, err)
		return
	}
	opts := tenant.TokenOptions{Label: req.Label, Agent: req.Agent}
	if req.TTL != "" {
		if opts.TTL, err = time.ParseDuration(req.TTL); err != nil || opts.TTL <= 0 {
			h.fail(w, badRequest("ttl=%q: want a positive duration such as 720h", req.TTL))
			return
		}
	}
	secret, tok, err := sc.IssueToken(r.Context(), req.User, role, opts)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, struct {
		Secret string    `json:"secret"`
		Token  TokenView `json:"token"`
	}{secret, tokenView(tok)})
}

// revokeToken is DELETE /api/v1/tokens/{id} (admins).
func (h *Handler) revokeToken(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	if err := sc.RevokeToken(r.Context(), r.PathValue("id")); err != nil {
		h.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
