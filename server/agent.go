package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/kv"
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
}

type bindKey struct {
	tenant, user, token, client, name, model string
}

// maxBound bounds the remembered registrations; past it the map is
// cleared and agents register again (idempotently).
const maxBound = 10_000

func newAgents(flags AgentFlags, logger *slog.Logger) *agents {
	return &agents{flags: flags, logger: logger, ids: map[bindKey]*tools.Self{}}
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
		a.mu.Lock()
		if len(a.ids) >= maxBound {
			clear(a.ids)
		}
		a.ids[key] = self
		a.mu.Unlock()
	}
	bound, err := sc.WithAgent(id)
	if err != nil {
		a.logger.Warn("cannot act as agent", "agent", id, "err", err)
		return sc, nil, nil
	}
	return bound, self, nil
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
