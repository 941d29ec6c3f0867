package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/tools"
)

// AgentFlags refine the agent a host's clientInfo describes
// (--agent, --model).
type AgentFlags struct {
	// Name names the agent within its client, e.g. "reviewer-2"; empty
	// means the client's name. Two processes of one host that should be
	// two agents need two names.
	Name string
	// Model is the model behind the agent, e.g. "qwen2.5-coder-7b".
	Model string
}

// unknownClient is the client of a caller whose host never said who it
// is (a legacy HTTP client after a server restart, a bare JSON-RPC
// script).
const unknownClient = "unknown"

// agents binds callers to registered agents. An agent's identity is
// (tenant, user, client, name), so registering is idempotent; the binder
// remembers the agents it registered so that a process registers each agent
// once (registration appends an audit event) and heartbeats after that, and
// hands the tools the registered record (tools.Self) so that whoami needs
// no read.
type agents struct {
	flags  AgentFlags
	logger *slog.Logger

	mu  sync.Mutex
	ids map[bindKey]*tools.Self
	// handles remembers, per session handle and host agent, which agent a
	// call passing that session_id acts as (see sessionAgent); nil when it
	// acts as the host agent. What decides it never changes once a
	// session has started.
	handles map[handleKey]*tools.Self
	// conns are the agents each legacy HTTP client's MCP session acted
	// as, so that the client's DELETE of the session marks them offline.
	conns map[connKey]*actedSet
}

type connKey struct {
	tenant, user, token, session string
}

type handleKey struct {
	tenant, user, token, host, session string
}

type bindKey struct {
	tenant, user, token, client, name, model string
}

// maxBound bounds the remembered registrations; past it the map is
// cleared and agents register again (idempotently).
const maxBound = 10_000

func newAgents(flags AgentFlags, logger *slog.Logger) *agents {
	return &agents{flags: flags, logger: logger, ids: map[bindKey]*tools.Self{}, handles: map[handleKey]*tools.Self{},
		conns: map[connKey]*actedSet{}}
}

// acting is the one place that decides which agent a tool call acts as. It
// returns sc acting as that agent and its record:
//   - the host's agent (bind: clientInfo plus --agent/--model), unless
//   - the call is a session_start that names an agent: a host speaking
//     for several models (LM Studio runs one process for all its chats)
//     starts a session per model, and the agent named, registered under
//     the same user and client, acts in it; or
//   - the call passes the session_id of a session started that way, by
//     the same user through the same client: it acts as that session's
//     agent, in every event, lease, task and fencing check.
//
// A token bound to an agent speaks only for that agent: naming another
// is refused, and a bound handle of another agent is ignored. Arguments
// that are not well formed are left for the tool to refuse.
func (a *agents) acting(ctx context.Context, sc *tenant.Scope, client mcp.Implementation, call toolCall) (*tenant.Scope, *tools.Self, error) {
	host, self, err := a.bind(ctx, sc, client)
	if err != nil || self == nil {
		return host, self, err
	}
	hostReg := a.hostRegistration(client)
	switch {
	case call.name == "session_start" && call.agent != "":
		return a.speakFor(ctx, sc, host, self, hostReg, call.agent, call.model)
	case call.session != "":
		return a.sessionAgent(ctx, sc, host, self, hostReg, call.session)
	}
	return host, self, nil
}

// speakFor registers (or finds) the agent named for a new session, under
// the user and client of the host agent, and returns sc acting as it.
func (a *agents) speakFor(ctx context.Context, sc, host *tenant.Scope, self *tools.Self, hostReg agent.Registration, name, model string) (*tenant.Scope, *tools.Self, error) {
	if agent.CheckText("agent", name, agent.MaxName, true) != nil || agent.CheckText("model", model, agent.MaxModel, false) != nil {
		return host, self, nil
	}
	p := sc.Principal()
	if p.TokenID != "" && p.Agent != "" {
		return nil, nil, fmt.Errorf("your token is bound to agent %s, so it cannot speak for agent %q: leave agent out", p.Agent, name)
	}
	if name == hostReg.Name {
		return host, self, nil
	}
	reg := agent.Registration{Client: hostReg.Client, Name: name, Model: model}
	key := bindKey{p.Tenant, p.User, p.TokenID, reg.Client, reg.Name, reg.Model}
	a.mu.Lock()
	bound, ok := a.ids[key]
	a.mu.Unlock()
	if !ok {
		ag, err := agent.Register(ctx, sc, reg)
		if errors.Is(err, kv.ErrUnavailable) {
			return host, self, err // the tool fails at once, retryably
		}
		if err != nil {
			return nil, nil, err
		}
		bound = tools.NewSelf(ag)
		a.logger.Info("agent registered for a session", "tenant", p.Tenant, "user", p.User, "agent", ag.ID,
			"client", reg.Client, "name", reg.Name, "model", reg.Model, "host_agent", self.ID())
		a.remember(key, bound)
	}
	as, err := sc.WithAgent(bound.ID())
	if err != nil {
		return nil, nil, err
	}
	return as, bound, nil
}

// sessionAgent returns sc acting as the agent a session handle is bound
// to, when the session was started bound by the same user through the
// same client as the host agent; else the host agent.
func (a *agents) sessionAgent(ctx context.Context, sc, host *tenant.Scope, self *tools.Self, hostReg agent.Registration, sid string) (*tenant.Scope, *tools.Self, error) {
	id, err := session.ParseID(sid)
	if err != nil {
		return host, self, nil
	}
	p := sc.Principal()
	hostID := self.ID()
	key := handleKey{p.Tenant, p.User, p.TokenID, hostID, id}
	a.mu.Lock()
	bound, known := a.handles[key]
	a.mu.Unlock()
	if !known {
		s, err := session.Get(ctx, host, id)
		if err != nil {
			// Not found, or unreadable now: the tool reports it.
			return host, self, nil
		}
		if s.Bound && s.Agent != hostID && s.User == p.User {
			ag, err := agent.Get(ctx, host, s.Agent)
			if err != nil {
				return host, self, nil
			}
			if ag.Client == hostReg.Client {
				bound = tools.NewSelf(ag)
			}
		}
		a.mu.Lock()
		if len(a.handles) >= maxBound {
			clear(a.handles)
		}
		a.handles[key] = bound
		a.mu.Unlock()
	}
	if bound == nil {
		return host, self, nil
	}
	as, err := sc.WithAgent(bound.ID())
	if err != nil {
		return host, self, nil // a token bound to another agent acts as its own
	}
	return as, bound, nil
}

func (a *agents) remember(key bindKey, self *tools.Self) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.ids) >= maxBound {
		clear(a.ids)
	}
	a.ids[key] = self
}

// conn returns the agents the MCP session sid of principal p acted as,
// remembered across its requests.
func (a *agents) conn(p tenant.Principal, sid string) *actedSet {
	key := connKey{p.Tenant, p.User, p.TokenID, sid}
	a.mu.Lock()
	defer a.mu.Unlock()
	set := a.conns[key]
	if set == nil {
		if len(a.conns) >= maxBound {
			clear(a.conns)
		}
		set = &actedSet{}
		a.conns[key] = set
	}
	return set
}

// endConn forgets the MCP session sid of principal p and returns the
// agents it acted as; nil when it is not known.
func (a *agents) endConn(p tenant.Principal, sid string) *actedSet {
	key := connKey{p.Tenant, p.User, p.TokenID, sid}
	a.mu.Lock()
	defer a.mu.Unlock()
	set := a.conns[key]
	delete(a.conns, key)
	return set
}

// markOffline marks every agent a connection acted as offline
// (agent.MarkOffline): the host itself and the agents it spoke for in
// sessions. Their leases become reclaimable at once; a failure is logged.
func (s *Server) markOffline(ctx context.Context, acted *actedSet, reason string) {
	for _, sc := range acted.scopes() {
		id := sc.Principal().Agent
		if err := agent.MarkOffline(ctx, sc, id, reason); err != nil {
			s.logger.Warn("agent not marked offline", "agent", id, "err", err)
			continue
		}
		s.beats.Forget(sc.Tenant(), id)
		s.logger.Info("agent offline", "agent", id, "reason", reason)
	}
}

// toolCall is what acting reads of a tool call: its name and the
// arguments that choose an agent, when they are strings.
type toolCall struct {
	name, session, agent, model string
}

type toolCallKey struct{}

// rememberCall hands the tool call's name and agent-choosing arguments to
// the resolver (acting), which sees only the context.
func rememberCall(next mcpserver.ToolHandlerFunc) mcpserver.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		// Only these three members are decoded (as any, so that one of
		// another type spoils nothing); the rest, a file's content too,
		// is scanned and skipped.
		var args struct {
			SessionID any `json:"session_id"`
			Agent     any `json:"agent"`
			Model     any `json:"model"`
		}
		if raw := req.Params.RawArguments; len(raw) > 0 {
			_ = json.Unmarshal(raw, &args)
		} else if m := req.GetArguments(); m != nil {
			args.SessionID, args.Agent, args.Model = m["session_id"], m["agent"], m["model"]
		}
		str := func(v any) string { s, _ := v.(string); return s }
		call := toolCall{name: req.Params.Name, session: str(args.SessionID), agent: str(args.Agent), model: str(args.Model)}
		return next(context.WithValue(ctx, toolCallKey{}, call), req)
	}
}

func toolCallFrom(ctx context.Context) toolCall {
	c, _ := ctx.Value(toolCallKey{}).(toolCall)
	return c
}

// bind returns sc acting as the caller's agent, registering it on first
// use, and the agent's record as registered. A principal that may not write
// (a viewer) cannot register an agent and acts as itself, or as the agent
// its token is bound to (with no record: the tools read it). When the
// registration fails the caller still acts, as itself, and the failure is
// logged: an agent record is not worth refusing work for. The error is
// returned only when the store was unavailable (tools.Caller.Unavailable).
func (a *agents) bind(ctx context.Context, sc *tenant.Scope, client mcp.Implementation) (*tenant.Scope, *tools.Self, error) {
	p := sc.Principal()
	if sc.CanWrite() != nil {
		return sc, nil, nil
	}
	reg := a.hostRegistration(client)
	key := bindKey{p.Tenant, p.User, p.TokenID, reg.Client, reg.Name, reg.Model}
	a.mu.Lock()
	self, ok := a.ids[key]
	a.mu.Unlock()
	var id string
	if ok {
		id = self.ID()
	} else {
		ag, err := agent.Register(ctx, sc, reg)
		if err != nil {
			a.logger.Warn("agent not registered; acting as the user", "tenant", p.Tenant, "user", p.User,
				"client", reg.Client, "name", reg.Name, "err", err)
			if errors.Is(err, kv.ErrUnavailable) {
				return sc, nil, err
			}
			return sc, nil, nil
		}
		id, self = ag.ID, tools.NewSelf(ag)
		a.logger.Info("agent registered", "tenant", p.Tenant, "user", p.User, "agent", id,
			"client", reg.Client, "name", reg.Name, "model", reg.Model)
		a.remember(key, self)
	}
	bound, err := sc.WithAgent(id)
	if err != nil {
		a.logger.Warn("cannot act as agent", "agent", id, "err", err)
		return sc, nil, nil
	}
	return bound, self, nil
}

// hostRegistration is the registration of the agent of a host that said
// client about itself: its client name, and --agent (else the client's
// name) and --model.
func (a *agents) hostRegistration(client mcp.Implementation) agent.Registration {
	reg := agent.Registration{
		Client: clean(client.Name, agent.MaxClient),
		Name:   clean(a.flags.Name, agent.MaxName),
		Model:  clean(a.flags.Model, agent.MaxModel),
	}
	if reg.Client == "" {
		reg.Client = unknownClient
	}
	if reg.Name == "" {
		reg.Name = clean(reg.Client, agent.MaxName)
	}
	return reg
}

// clean makes a host-supplied name fit an agent field: control characters
// dropped, spaces trimmed, at most max bytes.
func clean(s string, max int) string {
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, s))
	for len(s) > max {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// clients remembers the clientInfo that legacy clients sent in initialize,
// by MCP session id: over stateless HTTP every later request is served by
// a fresh session that knows nothing of the handshake. (Protocol 2026-07-28
// carries clientInfo in every request's _meta instead.) The memory is lost
// with the process; a legacy client that does not initialize again after
// a restart is then an "unknown" client.
type clients struct {
	mu   sync.Mutex
	byID map[string]mcp.Implementation
}

func newClients() *clients { return &clients{byID: map[string]mcp.Implementation{}} }

func (c *clients) remember(sessionID string, info mcp.Implementation) {
	if sessionID == "" || info.Name == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.byID) >= maxBound {
		clear(c.byID)
	}
	c.byID[sessionID] = info
}

func (c *clients) lookup(sessionID string) (mcp.Implementation, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	info, ok := c.byID[sessionID]
	return info, ok
}

// clientInfo returns what the host said about itself for the request in
// ctx: the request's _meta (2026-07-28), else the session's initialize
// (stdio, or a stateful transport), else what a legacy HTTP client said
// when it initialized the MCP session it names.
func (c *clients) clientInfo(ctx context.Context) mcp.Implementation {
	if info := mcpserver.RequestProtocolInfoFromContext(ctx); info != nil && info.ClientInfo != nil && info.ClientInfo.Name != "" {
		return *info.ClientInfo
	}
	sess := mcpserver.ClientSessionFromContext(ctx)
	if s, ok := sess.(mcpserver.SessionWithClientInfo); ok {
		if info := s.GetClientInfo(); info.Name != "" {
			return info
		}
	}
	if sess != nil {
		if info, ok := c.lookup(sess.SessionID()); ok {
			return info
		}
	}
	return mcp.Implementation{}
}
