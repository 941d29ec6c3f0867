package tools

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/task"
	"github.com/coditect/coditect/storage/tenant"
)

// Coord is the coordination toolset: who else is working, joining their
// sessions, leases on files and tasks, messages between agents, and the
// task board. Every tool acts as the caller's agent; a caller that acts as
// no agent (a viewer's token bound to none) can only list.
func Coord() Toolset {
	return Toolset{
		Name:    "coord",
		Summary: "other agents, session joining, leases, messages and the task board",
		Tools: []*Tool{
			agentsListTool(), agentUpdateTool(), sessionJoinTool(),
			leaseAcquireTool(), leaseRenewTool(), leaseReleaseTool(),
			messageSendTool(), inboxTool(),
			taskCreateTool(), taskListTool(), taskClaimTool(), taskUpdateTool(),
		},
	}
}

// maxIDArg bounds an id argument (agent, task, cursor): the keyspace's
// limit on ids, which agent.MaxCohort also is.
const maxIDArg = agent.MaxCohort

// errNoAgent: the caller acts as no agent, so it holds no leases and has
// no inbox.
var errNoAgent error = &toolError{err: tenant.ErrForbidden,
	msg: "you act as no agent (a viewer's token, or the agent could not be registered), so you hold no leases and have no inbox"}

// me returns the id of the agent the caller acts as.
func (c *Call) me() (string, error) {
	if id := c.Scope.Principal().Agent; id != "" {
		return id, nil
	}
	return "", errNoAgent
}

// since renders how long ago t was, for a model.
func since(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

// until renders an expiry, for a model: the time and how far off it is.
func until(now, t time.Time) string {
	d := t.Sub(now).Round(time.Second)
	if d <= 0 {
		return t.Format(time.RFC3339) + " (expired)"
	}
	return fmt.Sprintf("%s (in %s)", t.Format(time.RFC3339), d)
}

// --- agents ---

// agentOut is an agent as the tools show it.
type agentOut struct {
	AgentID      string    `json:"agent_id"`
	Name         string    `json:"name"`
	Client       string    `json:"client"`
	Model        string    `json:"model,omitempty"`
	User         string    `json:"user"`
	Capabilities []string  `json:"capabilities,omitempty"`
	Cohort       string    `json:"cohort,omitempty"`
	Liveness     string    `json:"liveness"`
	LastSeen     time.Time `json:"last_seen,omitzero"`
	Retired      bool      `json:"retired,omitempty"`
	You          bool      `json:"you,omitempty"`
}

const agentSchema = `{"type":"object","required":["agent_id","name","client","user","liveness"],"properties":{
	"agent_id":{"type":"string"},"name":{"type":"string"},"client":{"type":"string"},"model":{"type":"string"},
	"user":{"type":"string"},"capabilities":{"type":"array","items":{"type":"string"}},"cohort":{"type":"string"},
	"liveness":{"type":"string"},"last_seen":{"type":"string"},"retired":{"type":"boolean"},"you":{"type":"boolean"}}}`

func newAgentOut(a agent.Agent, me string) agentOut {
	return agentOut{AgentID: a.ID, Name: a.Name, Client: a.Client, Model: a.Model, User: a.User,
		Capabilities: a.Capabilities, Cohort: a.Cohort, Liveness: string(a.Liveness), LastSeen: a.LastSeen.UTC(),
		Retired: a.IsRetired(), You: a.ID == me}
}

func (a agentOut) line(now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s (%s", a.AgentID, a.Name, a.Client)
	if a.Model != "" {
		fmt.Fprintf(&b, ", %s", a.Model)
	}
	fmt.Fprintf(&b, ") for %s: %s, last seen %s", a.User, a.Liveness, since(now, a.LastSeen))
	if len(a.Capabilities) > 0 {
		fmt.Fprintf(&b, ", can %s", strings.Join(a.Capabilities, ", "))
	}
	if a.Cohort != "" {
		fmt.Fprintf(&b, ", cohort %s", a.Cohort)
	}
	if a.Retired {
		b.WriteString(", retired")
	}
	if a.You {
		b.WriteString(" [you]")
	}
	return b.String()
}

type agentsListArgs struct {
	Liveness string `json:"liveness"`
	Cohort   string `json:"cohort"`
	Retired  bool   `json:"retired"`
}

type agentsListOut struct {
	Agents []agentOut `json:"agents"`
	// Total counts the matching agents; Agents holds at most maxAgents.
	Total int `json:"total"`
}

// maxAgents bounds the agents one agents_list shows.
const maxAgents = 50

func agentsListTool() *Tool {
	return spec{
		name: "agents_list", title: "List agents",
		description: "List the agents of your team with their liveness (alive, stale, gone), to know who to message or wait for.",
		hints:       readOnly,
		input: `{"type":"object","additionalProperties":false,"properties":{
			"liveness":{"type":"string","enum":["alive","stale","gone"]},
			"cohort":{"type":"string","description":"Only this cohort"},
			"retired":{"type":"boolean","description":"Include retired agents"}}}`,
		output:  `{"type":"object","required":["agents","total"],"properties":{"agents":{"type":"array","items":` + agentSchema + `},"total":{"type":"integer"}}}`,
		example: `{"liveness":"alive"}`,
		handler: agentsList,
	}.tool()
}

func livenessRank(l string) int {
	return slices.Index([]string{string(agent.Alive), string(agent.Stale), string(agent.Gone)}, l)
}

func agentsList(ctx context.Context, c *Call) (Result, error) {
	var a agentsListArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	f := agent.Filter{Active: !a.Retired}
	if a.Liveness != "" {
		if err := c.oneOf("liveness", a.Liveness, "alive", "stale", "gone"); err != nil {
			return Result{}, err
		}
		f.Liveness = agent.Liveness(a.Liveness)
	}
	if err := c.text("cohort", a.Cohort, agent.MaxCohort, false, true); err != nil {
		return Result{}, err
	}
	f.Cohort = a.Cohort
	list, err := agent.List(ctx, c.Scope, f)
	if err != nil {
		return Result{}, err
	}
	me := c.Scope.Principal().Agent
	out := agentsListOut{Agents: make([]agentOut, 0, min(len(list), maxAgents)), Total: len(list)}
	// Alive first, then the most recently seen: who to talk to now.
	slices.SortStableFunc(list, func(x, y agent.Agent) int {
		if r := cmp.Compare(livenessRank(string(x.Liveness)), livenessRank(string(y.Liveness))); r != 0 {
			return r
		}
		return y.LastSeen.Compare(x.LastSeen)
	})
	now := agent.Now(ctx)
	var b strings.Builder
	for _, ag := range list[:min(len(list), maxAgents)] {
		o := newAgentOut(ag, me)
		out.Agents = append(out.Agents, o)
		b.WriteString(o.line(now))
		b.WriteByte('\n')
	}
	switch {
	case len(list) == 0:
		b.WriteString("No agents match.\n")
	case len(list) > maxAgents:
		fmt.Fprintf(&b, "%d more not shown: filter by liveness or cohort.\n", len(list)-maxAgents)
	}
	return Result{Structured: out, Text: strings.TrimSuffix(b.String(), "\n")}, nil
}

type agentUpdateArgs struct {
	Model        *string   `json:"model"`
	Capabilities *[]string `json:"capabilities"`
	Cohort       *string   `json:"cohort"`
}

func agentUpdateTool() *Tool {
	return spec{
		name: "agent_update", title: "Describe yourself",
		description: "Set your model, capabilities or cohort so that other agents know what you can do.",
		hints:       hints{idempotent: true},
		input: `{"type":"object","additionalProperties":false,"properties":{
			"model":{"type":"string","maxLength":256},
			"capabilities":{"type":"array","maxItems":64,"items":{"type":"string","maxLength":128},"description":"Short labels, e.g. go, review"},
			"cohort":{"type":"string","description":"Your team; empty to leave it"}}}`,
		output:  agentSchema,
		example: `{"model":"qwen2.5-coder-7b","capabilities":["go","tests"]}`,
		handler: agentUpdate,
	}.tool()
}

func agentUpdate(ctx context.Context, c *Call) (Result, error) {
	var a agentUpdateArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	if a.Model == nil && a.Capabilities == nil && a.Cohort == nil {
		return Result{}, c.argError("send at least one of model, capabilities or cohort")
	}
	if a.Model != nil {
		if err := c.text("model", *a.Model, agent.MaxModel, false, true); err != nil {
			return Result{}, err
		}
	}
	if a.Cohort != nil {
		if err := c.text("cohort", *a.Cohort, agent.MaxCohort, false, true); err != nil {
			return Result{}, err
		}
	}
	if a.Capabilities != nil {
		if len(*a.Capabilities) > agent.MaxCapabilities {
			return Result{}, c.argError("%q has %d labels; the limit is %d", "capabilities", len(*a.Capabilities), agent.MaxCapabilities)
		}
		for _, cp := range *a.Capabilities {
			if err := c.text("capabilities", cp, agent.MaxCapability, true, true); err != nil {
				return Result{}, err
			}
		}
	}
	if err := c.Scope.CanWrite(); err != nil {
		return Result{}, err
	}
	me, err := c.me()
	if err != nil {
		return Result{}, err
	}
	cur, err := agent.Get(ctx, c.Scope, me)
	if err != nil {
		return Result{}, err
	}
	// The identity (client, name) stays: it is what the host and --agent
	// named, and registering it again keeps the agent's id.
	reg := agent.Registration{Name: cur.Name, Client: cur.Client, Model: cur.Model,
		Capabilities: cur.Capabilities, Cohort: cur.Cohort, TTL: cur.TTL}
	if a.Model != nil {
		reg.Model = *a.Model
	}
	if a.Capabilities != nil {
		reg.Capabilities = *a.Capabilities
	}
	if a.Cohort != nil {
		reg.Cohort = *a.Cohort
	}
	ag, err := agent.Register(ctx, c.Scope, reg)
	if err != nil {
		return Result{}, err
	}
	if ag.ID != me {
		return Result{}, fmt.Errorf("re-registering agent %s returned agent %s", me, ag.ID)
	}
	if c.Self != nil {
		c.Self.set(ag)
	}
	out := newAgentOut(ag, me)
	return Result{Structured: out, Text: "Updated: " + out.line(agent.Now(ctx))}, nil
}

// --- sessions ---

type sessionJoinArgs struct {
	SessionID string `json:"session_id"`
}

func sessionJoinTool() *Tool {
	return spec{
		name: "session_join", title: "Join a work session",
		description: "Join another agent's open work session to work in its workspace; pass its session_id to the fs_ tools.",
		hints:       hints{idempotent: true},
		input: `{"type":"object","required":["session_id"],"additionalProperties":false,"properties":{
			"session_id":{"type":"string"}}}`,
		output:  sessionSchema,
		example: `{"session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T"}`,
		handler: sessionJoin,
	}.tool()
}

func sessionJoin(ctx context.Context, c *Call) (Result, error) {
	var a sessionJoinArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	id, err := c.sessionID(a.SessionID, true)
	if err != nil {
		return Result{}, err
	}
	s, err := session.Join(ctx, c.Scope, id)
	if err != nil {
		return Result{}, err
	}
	out := c.sessionOut(ctx, s)
	return Result{Structured: out, Text: fmt.Sprintf("Joined session %s (%q) in %s with %d participant(s).",
		out.SessionID, out.Title, out.where(), len(s.Participants))}, nil
}

// --- leases ---

// leaseOut is a lease the caller holds: Resource is a path or glob
// relative to the root of Project (the project's name), or a key.
type leaseOut struct {
	Resource   string    `json:"resource"`
	Project    string    `json:"project,omitempty"`
	Mode       string    `json:"mode"`
	Token      int64     `json:"token"`
	Expires    time.Time `json:"expires"`
	TTLSeconds int64     `json:"ttl_seconds"`
}

const leaseSchema = `{"type":"object","required":["resource","mode","token","expires","ttl_seconds"],"properties":{
	"resource":{"type":"string"},"project":{"type":"string"},"mode":{"type":"string"},"token":{"type":"integer"},
	"expires":{"type":"string"},"ttl_seconds":{"type":"integer"}}}`

func (c *Call) newLeaseOut(ctx context.Context, l lease.Lease) leaseOut {
	rel, id := unqualify(l.Resource)
	return leaseOut{Resource: rel, Project: c.projectName(ctx, id), Mode: string(l.Mode), Token: l.Token, Expires: l.Expires.UTC(),
		TTLSeconds: int64(l.TTL / time.Second)}
}

// Bounds of a lease's TTL in seconds.
const (
	minLeaseSeconds = int64(lease.MinTTL / time.Second)
	maxLeaseSeconds = int64(lease.MaxTTL / time.Second)
)

// ttl checks a ttl_seconds argument: 0 means the default (returned as 0).
func (c *Call) ttl(v int64) (time.Duration, error) {
	if v == 0 {
		return 0, nil
	}
	if v < minLeaseSeconds || v > maxLeaseSeconds {
		return 0, c.argError("%q must be between %d and %d, not %d", "ttl_seconds", minLeaseSeconds, maxLeaseSeconds, v)
	}
	return time.Duration(v) * time.Second, nil
}

// resource checks a resource argument and returns the lease resource it
// names: a key as it is; a path or glob relative to the root of the
// project of session_id, or of project, or of the tenant's only project,
// qualified with that project (see qualify). The lease layer checks the
// grammar.
func (c *Call) resource(ctx context.Context, v, sessionID, ref string) (string, error) {
	if err := c.text("resource", v, lease.MaxResource, true, true); err != nil {
		return "", err
	}
	if lease.IsKey(v) {
		return v, nil
	}
	switch {
	case strings.HasPrefix(v, "/"):
		return "", c.argError("%q %q is an absolute path: send a file path or glob relative to the project root, e.g. src/a.go or src/**/*.go", "resource", clip(v, 80))
	case v == "." || v == ".." || strings.HasPrefix(v, "../") || path.Clean(v) != v:
		return "", c.argError("%q %q is not a clean path inside the project: no \".\" or \"..\" segment, empty segment or trailing '/', e.g. src/a.go", "resource", clip(v, 80))
	}
	p, err := c.resolveProject(ctx, sessionID, ref)
	if err != nil {
		return "", err
	}
	return qualify(p.ID, v), nil
}

// leaseError rewrites a lease layer's refusal of the resource res for a
// model, without the project prefix of its resources.
func (c *Call) leaseError(ctx context.Context, res string, err error) error {
	var ce *lease.ConflictError
	if errors.As(err, &ce) {
		return conflictError(ctx, c, res, ce, agent.Now(ctx))
	}
	if errors.Is(err, lease.ErrInvalid) || errors.Is(err, lease.ErrNotHeld) || errors.Is(err, lease.ErrGone) {
		_, id := unqualify(res)
		msg := err.Error()
		for _, sentinel := range []error{lease.ErrInvalid, lease.ErrNotHeld, lease.ErrGone} {
			if errors.Is(err, sentinel) {
				if i := strings.Index(msg, sentinel.Error()+": "); i >= 0 {
					msg = msg[i+len(sentinel.Error())+2:]
				}
			}
		}
		return &toolError{err: err, msg: unqualifyText(strings.TrimPrefix(msg, "lease: "), id)}
	}
	return err
}

// conflictError rewrites a lease conflict over res for a model: who holds
// the resource, how alive it is, until when, and what to do.
func conflictError(ctx context.Context, c *Call, res string, ce *lease.ConflictError, now time.Time) error {
	var hs []string
	for _, h := range ce.Holders {
		who := "agent " + h.Agent
		if h.AgentName != "" {
			who += " (" + h.AgentName + ")"
		}
		what := ""
		if h.Resource != res {
			what = " through its lease on " + c.show(ctx, h.Resource)
		}
		hs = append(hs, fmt.Sprintf("%s holds it%s (%s, token %d; %s, last seen %s) until %s",
			who, what, h.Mode, h.Token, h.Liveness, since(now, h.LastSeen), until(now, h.Expires)))
	}
	return &toolError{err: ce, msg: fmt.Sprintf("%s is taken: %s. Wait until then and try again, work on something else, or ask the holder with message_send",
		c.show(ctx, res), strings.Join(hs, "; "))}
}

// leaseWhere are the arguments that say which project a path or glob
// resource is relative to.
const leaseWhere = `"session_id":{"type":"string","description":"Your session: a path is relative to its project's root"},
			"project":{"type":"string","description":"Or a project name"}`

type leaseAcquireArgs struct {
	Resource   string `json:"resource"`
	SessionID  string `json:"session_id"`
	Project    string `json:"project"`
	Mode       string `json:"mode"`
	TTLSeconds int64  `json:"ttl_seconds"`
}

func leaseAcquireTool() *Tool {
	return spec{
		name: "lease_acquire", title: "Take a lease",
		description: "Lock a file path, glob or task key such as task:tk_1 for yourself; returns the fencing token fs_write needs.",
		hints:       additive,
		input: `{"type":"object","required":["resource"],"additionalProperties":false,"properties":{
			"resource":{"type":"string","description":"Path relative to the project root (src/a.go), glob (src/**/*.go) or key (task:ID)"},
			` + leaseWhere + `,
			"mode":{"type":"string","enum":["exclusive","shared"]},
			"ttl_seconds":{"type":"integer","minimum":1,"maximum":86400,"description":"Default 120; renew before it ends"}}}`,
		output:  leaseSchema,
		example: `{"resource":"src/auth/login.go","session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T","ttl_seconds":300}`,
		handler: leaseAcquire,
	}.tool()
}

func leaseAcquire(ctx context.Context, c *Call) (Result, error) {
	var a leaseAcquireArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	if a.Mode != "" {
		if err := c.oneOf("mode", a.Mode, "exclusive", "shared"); err != nil {
			return Result{}, err
		}
	}
	ttl, err := c.ttl(a.TTLSeconds)
	if err != nil {
		return Result{}, err
	}
	if err := c.Scope.CanWrite(); err != nil {
		return Result{}, err
	}
	if _, err := c.me(); err != nil {
		return Result{}, err
	}
	res, err := c.resource(ctx, a.Resource, a.SessionID, a.Project)
	if err != nil {
		return Result{}, err
	}
	l, err := lease.Acquire(ctx, c.Scope, lease.Request{Resource: res, Mode: lease.Mode(a.Mode), TTL: ttl})
	if err != nil {
		return Result{}, c.leaseError(ctx, res, err)
	}
	c.record("fencing_token", l.Token)
	out := c.newLeaseOut(ctx, l)
	return Result{Structured: out, Text: fmt.Sprintf("You hold %s (%s) with token %d until %s. Pass token %d to fs_write and lease_release; renew with lease_renew before it ends.",
		c.show(ctx, l.Resource), out.Mode, out.Token, until(agent.Now(ctx), out.Expires), out.Token)}, nil
}

// ownToken returns the token of the caller's grant on exactly resource.
func (c *Call) ownToken(ctx context.Context, resource string) (int64, error) {
	me, err := c.me()
	if err != nil {
		return 0, err
	}
	held, err := lease.List(ctx, c.Scope, me)
	if err != nil {
		return 0, err
	}
	for _, h := range held {
		if h.Resource == resource {
			return h.Token, nil
		}
	}
	return 0, &toolError{err: lease.ErrNotHeld, msg: fmt.Sprintf("you hold no lease on %s (it was released, expired and reclaimed, or never taken): take it with lease_acquire", c.show(ctx, resource))}
}

type leaseTokenArgs struct {
	Resource   string `json:"resource"`
	SessionID  string `json:"session_id"`
	Project    string `json:"project"`
	Token      int64  `json:"token"`
	TTLSeconds int64  `json:"ttl_seconds"`
}

func leaseRenewTool() *Tool {
	return spec{
		name: "lease_renew", title: "Renew a lease",
		description: "Extend a lease you hold before it expires, keeping its fencing token.",
		hints:       additive,
		input: `{"type":"object","required":["resource"],"additionalProperties":false,"properties":{
			"resource":{"type":"string"},
			` + leaseWhere + `,
			"token":{"type":"integer","description":"From lease_acquire; default: yours on resource"},
			"ttl_seconds":{"type":"integer","minimum":1,"maximum":86400}}}`,
		output:  leaseSchema,
		example: `{"resource":"src/auth/login.go","session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T","ttl_seconds":300}`,
		handler: leaseRenew,
	}.tool()
}

func leaseRenew(ctx context.Context, c *Call) (Result, error) {
	var a leaseTokenArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	if a.Token < 0 {
		return Result{}, c.argError("%q must be the positive token lease_acquire returned, not %d", "token", a.Token)
	}
	ttl, err := c.ttl(a.TTLSeconds)
	if err != nil {
		return Result{}, err
	}
	res, err := c.resource(ctx, a.Resource, a.SessionID, a.Project)
	if err != nil {
		return Result{}, err
	}
	token, err := c.heldToken(ctx, res, a.Token)
	if err != nil {
		return Result{}, err
	}
	l, err := lease.Renew(ctx, c.Scope, res, token, ttl)
	if err != nil {
		return Result{}, c.leaseError(ctx, res, err)
	}
	out := c.newLeaseOut(ctx, l)
	return Result{Structured: out, Text: fmt.Sprintf("Renewed %s (token %d) until %s.", c.show(ctx, l.Resource), out.Token, until(agent.Now(ctx), out.Expires))}, nil
}

type leaseReleaseArgs struct {
	Resource  string `json:"resource"`
	SessionID string `json:"session_id"`
	Project   string `json:"project"`
	Token     int64  `json:"token"`
}

type leaseReleaseOut struct {
	Resource string `json:"resource"`
	Project  string `json:"project,omitempty"`
	Token    int64  `json:"token"`
	Released bool   `json:"released"`
}

func leaseReleaseTool() *Tool {
	return spec{
		name: "lease_release", title: "Release a lease",
		description: "Release a lease you hold as soon as you are done, so that others can take it.",
		hints:       hints{idempotent: true},
		input: `{"type":"object","required":["resource"],"additionalProperties":false,"properties":{
			"resource":{"type":"string"},
			` + leaseWhere + `,
			"token":{"type":"integer","description":"From lease_acquire; default: yours on resource"}}}`,
		output: `{"type":"object","required":["resource","token","released"],"properties":{
			"resource":{"type":"string"},"project":{"type":"string"},"token":{"type":"integer"},"released":{"type":"boolean"}}}`,
		example: `{"resource":"src/auth/login.go","session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T","token":7}`,
		handler: leaseRelease,
	}.tool()
}

// heldToken checks a token argument (0 means the caller's own grant on
// res, which it looks up), refuses viewers, and records the token in the
// call's audit event.
func (c *Call) heldToken(ctx context.Context, res string, token int64) (int64, error) {
	if token < 0 {
		return 0, c.argError("%q must be the positive token lease_acquire returned, not %d", "token", token)
	}
	if err := c.Scope.CanWrite(); err != nil {
		return 0, err
	}
	if token == 0 {
		var err error
		if token, err = c.ownToken(ctx, res); err != nil {
			return 0, err
		}
	}
	c.record("fencing_token", token)
	return token, nil
}

func leaseRelease(ctx context.Context, c *Call) (Result, error) {
	var a leaseReleaseArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	if a.Token < 0 {
		return Result{}, c.argError("%q must be the positive token lease_acquire returned, not %d", "token", a.Token)
	}
	res, err := c.resource(ctx, a.Resource, a.SessionID, a.Project)
	if err != nil {
		return Result{}, err
	}
	token, err := c.heldToken(ctx, res, a.Token)
	if err != nil {
		return Result{}, err
	}
	if err := lease.Release(ctx, c.Scope, res, token); err != nil {
		return Result{}, c.leaseError(ctx, res, err)
	}
	rel, id := unqualify(res)
	out := leaseReleaseOut{Resource: rel, Project: c.projectName(ctx, id), Token: token, Released: true}
	return Result{Structured: out, Text: fmt.Sprintf("Released %s (token %d).", c.show(ctx, res), token)}, nil
}

// --- messages ---

type messageSendArgs struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
	Body    string `json:"body"`
	ReplyTo string `json:"reply_to"`
}

type messageSendOut struct {
	MessageID  string   `json:"message_id"`
	Thread     string   `json:"thread"`
	Recipients []string `json:"recipients"`
}

func messageSendTool() *Tool {
	return spec{
		name: "message_send", title: "Send a message",
		description: `Send a message to an agent (id or name), a cohort ("cohort:NAME") or everyone ("all"), or reply with reply_to.`,
		hints:       additive,
		input: `{"type":"object","required":["body"],"additionalProperties":false,"properties":{
			"to":{"type":"string","description":"Agent id or name, cohort:NAME, or all; omit when replying"},
			"subject":{"type":"string","maxLength":200},
			"body":{"type":"string","maxLength":32768},
			"reply_to":{"type":"string","description":"message_id you answer"}}}`,
		output: `{"type":"object","required":["message_id","thread","recipients"],"properties":{
			"message_id":{"type":"string"},"thread":{"type":"string"},"recipients":{"type":"array","items":{"type":"string"}}}}`,
		example: `{"to":"reviewer","subject":"login fix","body":"Ready for review: src/auth/login.go"}`,
		handler: messageSend,
	}.tool()
}

func messageSend(ctx context.Context, c *Call) (Result, error) {
	var a messageSendArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	if err := c.text("to", a.To, maxIDArg, false, true); err != nil {
		return Result{}, err
	}
	if err := c.text("subject", a.Subject, message.MaxSubject, false, true); err != nil {
		return Result{}, err
	}
	if err := c.text("body", a.Body, message.MaxBody, true, false); err != nil {
		return Result{}, err
	}
	if err := c.text("reply_to", a.ReplyTo, 64, false, true); err != nil {
		return Result{}, err
	}
	if a.To == "" && a.ReplyTo == "" {
		return Result{}, c.argError("%q is required: an agent id or name from agents_list, \"cohort:NAME\" or \"all\" (or send reply_to to answer a message)", "to")
	}
	if err := c.Scope.CanWrite(); err != nil {
		return Result{}, err
	}
	if _, err := c.me(); err != nil {
		return Result{}, err
	}
	to, err := c.address(ctx, a.To)
	if err != nil {
		return Result{}, err
	}
	r, err := message.Send(ctx, c.Scope, message.Outgoing{To: to, Subject: a.Subject, Body: a.Body, ReplyTo: a.ReplyTo})
	if errors.Is(err, agent.ErrNotFound) {
		return Result{}, &toolError{err: err, msg: fmt.Sprintf("no agent %q in your tenant: call agents_list for the ids and names of the agents you can message", clip(a.To, 80))}
	}
	if errors.Is(err, message.ErrNotFound) {
		return Result{}, &toolError{err: err, msg: fmt.Sprintf("message %q is not in your inbox: reply_to takes a message_id that inbox showed you", clip(a.ReplyTo, 40))}
	}
	if err != nil {
		return Result{}, err
	}
	out := messageSendOut{MessageID: r.ID, Thread: r.Thread, Recipients: r.Recipients}
	return Result{Structured: out, Text: fmt.Sprintf("Sent message %s to %s (%d recipient(s)).", r.ID, strings.Join(r.Recipients, ", "), len(r.Recipients))}, nil
}

// address resolves a message_send "to": "all", "cohort:NAME", an agent id,
// or the name of exactly one active agent of the tenant.
func (c *Call) address(ctx context.Context, to string) (message.To, error) {
	switch {
	case to == "":
		return message.To{}, nil
	case strings.EqualFold(to, "all"):
		return message.To{All: true}, nil
	case strings.HasPrefix(to, "cohort:"):
		name := strings.TrimPrefix(to, "cohort:")
		if name == "" {
			return message.To{}, c.argError("%q %q names no cohort: send cohort:NAME", "to", to)
		}
		return message.To{Cohort: name}, nil
	case strings.HasPrefix(to, "ag_"):
		return message.To{Agent: to}, nil
	}
	list, err := agent.List(ctx, c.Scope, agent.Filter{Active: true})
	if err != nil {
		return message.To{}, err
	}
	var ids []string
	for _, a := range list {
		if strings.EqualFold(a.Name, to) {
			ids = append(ids, a.ID)
		}
	}
	switch len(ids) {
	case 1:
		return message.To{Agent: ids[0]}, nil
	case 0:
		return message.To{}, &toolError{err: agent.ErrNotFound, msg: fmt.Sprintf("no active agent is named %q: call agents_list for the ids and names of the agents you can message", clip(to, 80))}
	}
	return message.To{}, c.argError("%d agents are named %q (%s): send one of their ids", len(ids), clip(to, 80), strings.Join(ids, ", "))
}

type inboxArgs struct {
	Ack         []string `json:"ack"`
	Limit       int      `json:"limit"`
	WaitSeconds int      `json:"wait_seconds"`
}

type messageOut struct {
	MessageID string    `json:"message_id"`
	Thread    string    `json:"thread"`
	ReplyTo   string    `json:"reply_to,omitempty"`
	From      string    `json:"from,omitempty"`
	FromName  string    `json:"from_name,omitempty"`
	FromUser  string    `json:"from_user"`
	To        string    `json:"to"`
	Subject   string    `json:"subject,omitempty"`
	Body      string    `json:"body"`
	Sent      time.Time `json:"sent"`
}

type inboxOut struct {
	Messages []messageOut `json:"messages"`
	// Acked is how many messages the ack argument acknowledged.
	Acked int `json:"acked"`
	// Unread counts the unacknowledged messages, shown or not.
	Unread int64 `json:"unread"`
}

// maxInboxWait bounds inbox's wait_seconds: a host times a tool call out.
const maxInboxWait = 60

func inboxTool() *Tool {
	return spec{
		name: "inbox", title: "Read your messages",
		description: "Read your unread messages, oldest first; pass the ids you have handled in ack so they stop showing.",
		hints:       hints{idempotent: true},
		input: `{"type":"object","additionalProperties":false,"properties":{
			"ack":{"type":"array","maxItems":500,"items":{"type":"string"},"description":"message_ids to mark read first"},
			"limit":{"type":"integer","minimum":1,"maximum":50},
			"wait_seconds":{"type":"integer","minimum":0,"maximum":60,"description":"Wait this long for a message if none is unread"}}}`,
		output: `{"type":"object","required":["messages","acked","unread"],"properties":{"messages":{"type":"array","items":{
			"type":"object","required":["message_id","thread","from_user","to","body","sent"],"properties":{
			"message_id":{"type":"string"},"thread":{"type":"string"},"reply_to":{"type":"string"},"from":{"type":"string"},
			"from_name":{"type":"string"},"from_user":{"type":"string"},"to":{"type":"string"},"subject":{"type":"string"},
			"body":{"type":"string"},"sent":{"type":"string"}}}},"acked":{"type":"integer"},"unread":{"type":"integer"}}}`,
		example: `{"ack":["0000000000001a2b00000000"],"limit":10}`,
		handler: inbox,
	}.tool()
}

func inbox(ctx context.Context, c *Call) (Result, error) {
	var a inboxArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	limit, err := c.limit(a.Limit, 10, maxPage)
	if err != nil {
		return Result{}, err
	}
	if a.WaitSeconds < 0 || a.WaitSeconds > maxInboxWait {
		return Result{}, c.argError("%q must be between 0 and %d, not %d", "wait_seconds", maxInboxWait, a.WaitSeconds)
	}
	if len(a.Ack) > message.MaxAck {
		return Result{}, c.argError("%q lists %d ids; the limit is %d", "ack", len(a.Ack), message.MaxAck)
	}
	for _, id := range a.Ack {
		if err := c.text("ack", id, 64, true, true); err != nil {
			return Result{}, err
		}
	}
	if _, err := c.me(); err != nil {
		return Result{}, err
	}
	out := inboxOut{Messages: []messageOut{}}
	if len(a.Ack) > 0 {
		n, err := message.Ack(ctx, c.Scope, a.Ack...)
		if errors.Is(err, message.ErrNotFound) {
			return Result{}, &toolError{err: err, msg: strings.TrimPrefix(strings.TrimPrefix(err.Error(), "message: "), "message not found: ") +
				": ack takes the message_ids inbox showed you"}
		}
		if err != nil {
			return Result{}, err
		}
		out.Acked = n
	}
	msgs, err := message.Fetch(ctx, c.Scope, message.FetchOptions{Limit: limit, Wait: time.Duration(a.WaitSeconds) * time.Second})
	if err != nil {
		return Result{}, err
	}
	if out.Unread, err = message.Unread(ctx, c.Scope); err != nil {
		return Result{}, err
	}
	names := map[string]string{}
	if len(msgs) > 0 {
		// One read for the senders' names, which models use to reply.
		if list, err := agent.List(ctx, c.Scope, agent.Filter{}); err == nil {
			for _, ag := range list {
				names[ag.ID] = ag.Name
			}
		}
	}
	var b strings.Builder
	if out.Acked > 0 {
		fmt.Fprintf(&b, "Marked %d message(s) read.\n", out.Acked)
	}
	var ids []string
	for _, m := range msgs {
		o := messageOut{MessageID: m.ID, Thread: m.Thread, ReplyTo: m.ReplyTo, From: m.From, FromName: names[m.From],
			FromUser: m.FromUser, To: m.To, Subject: m.Subject, Body: m.Body, Sent: m.Sent.UTC()}
		out.Messages = append(out.Messages, o)
		ids = append(ids, fmt.Sprintf("%q", o.MessageID))
		from := "user " + o.FromUser
		if o.From != "" {
			from = fmt.Sprintf("agent %s (%s)", o.From, cmp.Or(o.FromName, "?"))
		}
		fmt.Fprintf(&b, "[%s] from %s to %s at %s", o.MessageID, from, o.To, o.Sent.Format(time.RFC3339))
		if o.Subject != "" {
			fmt.Fprintf(&b, ", subject %q", o.Subject)
		}
		fmt.Fprintf(&b, ":\n%s\n", o.Body)
	}
	switch {
	case len(msgs) == 0:
		b.WriteString("No unread messages.\n")
	default:
		fmt.Fprintf(&b, "%d unread in all. When handled, call inbox with {\"ack\":[%s]}; answer with message_send and reply_to.\n",
			out.Unread, strings.Join(ids, ","))
	}
	return Result{Structured: out, Text: strings.TrimSuffix(b.String(), "\n")}, nil
}

// --- tasks ---

// taskOut is a task as the tools show it.
type taskOut struct {
	TaskID      string `json:"task_id"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
	// Project is the name of the task's project; empty for a task of the
	// whole tenant.
	Project   string    `json:"project,omitempty"`
	State     string    `json:"state"`
	Assignee  string    `json:"assignee,omitempty"`
	Version   int64     `json:"version"`
	CreatedBy string    `json:"created_by"`
	Updated   time.Time `json:"updated"`
}

const taskSchema = `{"type":"object","required":["task_id","title","state","version","created_by","updated"],"properties":{
	"task_id":{"type":"string"},"title":{"type":"string"},"description":{"type":"string"},"project":{"type":"string"},"state":{"type":"string"},
	"assignee":{"type":"string"},"version":{"type":"integer"},"created_by":{"type":"string"},"updated":{"type":"string"}}}`

// maxListedDescription bounds a description in task_list; task_claim
// returns it whole.
const maxListedDescription = 1000

// taskOut shows a task with its project's name.
func (c *Call) taskOut(ctx context.Context, t task.Task) taskOut {
	return taskOut{TaskID: t.ID, Title: t.Title, Description: t.Description, Project: c.projectName(ctx, t.Project), State: string(t.State),
		Assignee: t.Assignee, Version: t.Version, CreatedBy: t.CreatedBy, Updated: t.Updated.UTC()}
}

func (t taskOut) line() string {
	who := "unassigned"
	if t.Assignee != "" {
		who = "assigned to " + t.Assignee
	}
	where := ""
	if t.Project != "" {
		where = " in project " + t.Project
	}
	return fmt.Sprintf("%s v%d %s%s, %s: %s", t.TaskID, t.Version, t.State, where, who, t.Title)
}

// projectArg resolves an optional project argument (a name or id) to the
// project's id; "" when it is not sent.
func (c *Call) projectArg(ctx context.Context, ref string) (string, error) {
	if err := c.text("project", ref, project.MaxName, false, true); err != nil || ref == "" {
		return "", err
	}
	p, err := project.Get(ctx, c.Scope, ref)
	if err != nil {
		return "", c.projectError(ctx, err)
	}
	c.nameProject(p)
	return p.ID, nil
}

// taskID checks a task_id argument.
func (c *Call) taskID(v string) (string, error) {
	if v == "" {
		return "", c.argError("%q is required: use a task_id from task_list or task_create", "task_id")
	}
	if err := c.text("task_id", v, maxIDArg, true, true); err != nil {
		return "", err
	}
	return v, nil
}

// version checks a version argument.
func (c *Call) version(v int64) (int64, error) {
	if v <= 0 {
		return 0, c.argError("%q is required: send the task's version as task_list showed it (it grows with every change)", "version")
	}
	return v, nil
}

// taskError rewrites the task layer's refusals for a model.
func taskError(err error, id string) error {
	var ve *task.VersionError
	if errors.As(err, &ve) {
		cur := ve.Current
		var next string
		switch {
		case cur.State == task.Open || cur.State == task.Blocked:
			next = fmt.Sprintf("call again with version %d if it still fits", cur.Version)
		case cur.Assignee != "":
			next = fmt.Sprintf("agent %s has it; pick another task from task_list", cur.Assignee)
		default:
			next = fmt.Sprintf("decide with its state now and call again with version %d", cur.Version)
		}
		return &toolError{err: err, msg: fmt.Sprintf("task %s changed: it is at version %d (%s), not %d; %s", id, cur.Version, cur.State, ve.Expected, next)}
	}
	if errors.Is(err, task.ErrNotFound) {
		return &toolError{err: err, msg: fmt.Sprintf("no task %s in your tenant: find task ids with task_list", id)}
	}
	var te *task.TransitionError
	if errors.As(err, &te) {
		var allowed []string
		for _, s := range te.Allowed {
			if s != task.Claimed {
				allowed = append(allowed, string(s))
			}
		}
		next := "none: it is final"
		if len(allowed) > 0 {
			next = strings.Join(allowed, ", ")
		}
		msg := fmt.Sprintf("task %s is %s and cannot move to %s; from %s it may move to %s", id, te.From, te.To, te.From, next)
		if te.From == task.Open || te.From == task.Blocked {
			msg += "; claim it first with task_claim"
		}
		return &toolError{err: err, msg: msg}
	}
	return err
}

type taskCreateArgs struct {
	Title       string `json:"title"`
	Description string `json:"description"`
	Project     string `json:"project"`
}

func taskCreateTool() *Tool {
	return spec{
		name: "task_create", title: "Create a task",
		description: "Put a new open task on the shared task board for any agent to claim.",
		hints:       additive,
		input: `{"type":"object","required":["title"],"additionalProperties":false,"properties":{
			"title":{"type":"string","maxLength":200},
			"description":{"type":"string","maxLength":16384},
			"project":{"type":"string","description":"The project's name, if the task is about one"}}}`,
		output:  taskSchema,
		example: `{"title":"Add a test for the login redirect","description":"auth/login_test.go"}`,
		handler: taskCreate,
	}.tool()
}

func taskCreate(ctx context.Context, c *Call) (Result, error) {
	var a taskCreateArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	if err := c.text("title", a.Title, task.MaxTitle, true, true); err != nil {
		return Result{}, err
	}
	if err := c.text("description", a.Description, task.MaxDescription, false, false); err != nil {
		return Result{}, err
	}
	pid, err := c.projectArg(ctx, a.Project)
	if err != nil {
		return Result{}, err
	}
	t, err := task.Create(ctx, c.Scope, task.New{Title: a.Title, Description: a.Description, Project: pid})
	if err != nil {
		return Result{}, err
	}
	out := c.taskOut(ctx, t)
	where := ""
	if out.Project != "" {
		where = " in project " + out.Project
	}
	return Result{Structured: out, Text: fmt.Sprintf("Created task %s%s (version %d, open): %s", out.TaskID, where, out.Version, out.Title)}, nil
}

type taskListArgs struct {
	State   string `json:"state"`
	Project string `json:"project"`
	Mine    bool   `json:"mine"`
	Limit   int    `json:"limit"`
	Cursor  string `json:"cursor"`
}

type taskListOut struct {
	Tasks []taskOut `json:"tasks"`
	Next  string    `json:"next,omitempty"`
}

var taskStates = []string{"open", "claimed", "in_progress", "review", "done", "blocked", "cancelled"}

func taskListTool() *Tool {
	return spec{
		name: "task_list", title: "List tasks",
		description: "List tasks on the shared board with their state, assignee and version, oldest first.",
		hints:       readOnly,
		input: `{"type":"object","additionalProperties":false,"properties":{
			"state":{"type":"string","enum":["open","claimed","in_progress","review","done","blocked","cancelled"]},
			"project":{"type":"string","description":"Only this project's tasks (name)"},
			"mine":{"type":"boolean","description":"Only tasks assigned to you"},
			"limit":{"type":"integer","minimum":1,"maximum":50},
			"cursor":{"type":"string","description":"next from the previous page"}}}`,
		output:  `{"type":"object","required":["tasks"],"properties":{"tasks":{"type":"array","items":` + taskSchema + `},"next":{"type":"string"}}}`,
		example: `{"state":"open"}`,
		handler: taskList,
	}.tool()
}

func taskList(ctx context.Context, c *Call) (Result, error) {
	var a taskListArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	limit, err := c.limit(a.Limit, defaultPage, maxPage)
	if err != nil {
		return Result{}, err
	}
	f := task.Filter{Limit: limit}
	if a.State != "" {
		if err := c.oneOf("state", a.State, taskStates...); err != nil {
			return Result{}, err
		}
		f.State = task.State(a.State)
	}
	if err := c.text("cursor", a.Cursor, maxIDArg, false, true); err != nil {
		return Result{}, err
	}
	f.After = a.Cursor
	if f.Project, err = c.projectArg(ctx, a.Project); err != nil {
		return Result{}, err
	}
	if a.Mine {
		if f.Assignee, err = c.me(); err != nil {
			return Result{}, err
		}
	}
	page, err := task.List(ctx, c.Scope, f)
	if err != nil {
		return Result{}, err
	}
	out := taskListOut{Tasks: make([]taskOut, 0, len(page.Tasks)), Next: page.Next}
	var b strings.Builder
	for _, t := range page.Tasks {
		o := c.taskOut(ctx, t)
		o.Description = clip(o.Description, maxListedDescription)
		out.Tasks = append(out.Tasks, o)
		b.WriteString(o.line())
		b.WriteByte('\n')
	}
	if len(out.Tasks) == 0 {
		b.WriteString("No tasks match.\n")
	}
	if out.Next != "" {
		fmt.Fprintf(&b, "More: call task_list again with cursor %q.\n", out.Next)
	}
	return Result{Structured: out, Text: strings.TrimSuffix(b.String(), "\n")}, nil
}

type taskClaimArgs struct {
	TaskID  string `json:"task_id"`
	Version int64  `json:"version"`
}

func taskClaimTool() *Tool {
	return spec{
		name: "task_claim", title: "Claim a task",
		description: "Claim an open task at the version task_list showed; if another agent got it first you are told who.",
		hints:       additive,
		input: `{"type":"object","required":["task_id","version"],"additionalProperties":false,"properties":{
			"task_id":{"type":"string"},"version":{"type":"integer","minimum":1}}}`,
		output:  taskSchema,
		example: `{"task_id":"tk_01JZ3K5V8Q2W7X9Y4N6M1P0R3T","version":1}`,
		handler: taskClaim,
	}.tool()
}

func taskClaim(ctx context.Context, c *Call) (Result, error) {
	var a taskClaimArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	id, err := c.taskID(a.TaskID)
	if err != nil {
		return Result{}, err
	}
	version, err := c.version(a.Version)
	if err != nil {
		return Result{}, err
	}
	if err := c.Scope.CanWrite(); err != nil {
		return Result{}, err
	}
	if _, err := c.me(); err != nil {
		return Result{}, err
	}
	t, err := task.Claim(ctx, c.Scope, id, version)
	var te *task.TransitionError
	if errors.As(err, &te) {
		return Result{}, &toolError{err: err, msg: fmt.Sprintf("task %s is %s, not open: only open or blocked tasks can be claimed; pick another from task_list with state open", id, te.From)}
	}
	if err != nil {
		return Result{}, taskError(err, id)
	}
	out := c.taskOut(ctx, t)
	return Result{Structured: out, Text: fmt.Sprintf("You claimed task %s (now version %d): %s. Move it on with task_update (in_progress, review, done).",
		out.TaskID, out.Version, out.Title)}, nil
}

type taskUpdateArgs struct {
	TaskID  string `json:"task_id"`
	Version int64  `json:"version"`
	State   string `json:"state"`
	Note    string `json:"note"`
}

func taskUpdateTool() *Tool {
	return spec{
		name: "task_update", title: "Move a task",
		description: "Move a task to in_progress, review, done, blocked, cancelled or back to open, at its current version.",
		hints:       additive,
		input: `{"type":"object","required":["task_id","version","state"],"additionalProperties":false,"properties":{
			"task_id":{"type":"string"},"version":{"type":"integer","minimum":1},
			"state":{"type":"string","enum":["open","in_progress","review","done","blocked","cancelled"]},
			"note":{"type":"string","maxLength":2000,"description":"Why, for the log"}}}`,
		output:  taskSchema,
		example: `{"task_id":"tk_01JZ3K5V8Q2W7X9Y4N6M1P0R3T","version":2,"state":"in_progress"}`,
		handler: taskUpdate,
	}.tool()
}

func taskUpdate(ctx context.Context, c *Call) (Result, error) {
	var a taskUpdateArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	id, err := c.taskID(a.TaskID)
	if err != nil {
		return Result{}, err
	}
	version, err := c.version(a.Version)
	if err != nil {
		return Result{}, err
	}
	switch a.State {
	case "":
		return Result{}, c.argError("%q is required: in_progress, review, done, blocked, cancelled or open", "state")
	case "claimed":
		return Result{}, c.argError("to claim a task call task_claim")
	}
	if err := c.oneOf("state", a.State, "open", "in_progress", "review", "done", "blocked", "cancelled"); err != nil {
		return Result{}, err
	}
	if err := c.text("note", a.Note, task.MaxNote, false, true); err != nil {
		return Result{}, err
	}
	t, err := task.Transition(ctx, c.Scope, id, version, task.State(a.State), a.Note)
	if err != nil {
		return Result{}, taskError(err, id)
	}
	out := c.taskOut(ctx, t)
	return Result{Structured: out, Text: fmt.Sprintf("Task %s is %s (version %d).", out.TaskID, out.State, out.Version)}, nil
}
