package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/coditect/coditect/server/localcore"
	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/tools"
)

// CoreMCP are the settings of a forwarded `coditect mcp` (its flags), sent
// in the hello's options.
type CoreMCP struct {
	Toolsets  []string `json:"toolsets,omitempty"`
	MaxFile   int      `json:"max_file,omitempty"`
	ReadLines int      `json:"read_lines,omitempty"`
	ReadBytes int      `json:"read_bytes,omitempty"`
	Agent     string   `json:"agent,omitempty"`
	Model     string   `json:"model,omitempty"`
}

// ServerOptions returns the server options a `coditect mcp` with these
// settings serves with.
func (m CoreMCP) ServerOptions(version, storeURL string, logger *slog.Logger) Options {
	return Options{
		Version:  version,
		Toolsets: m.Toolsets,
		Tools:    tools.Config{MaxFileRead: m.MaxFile, MaxFileWrite: m.MaxFile, MaxReadLines: m.ReadLines, MaxReadBytes: m.ReadBytes},
		Agent:    AgentFlags{Name: m.Agent, Model: m.Model},
		Logger:   logger,
		SpoolDir: storage.SpoolDir(storeURL),
	}
}

// Core serves the connections of the local core of an embedded store:
// each forwarded `coditect mcp` is served as ServeStdio would serve it,
// by a Server with that process's settings; processes with the same
// settings share one.
type Core struct {
	dir      *tenant.Directory
	storeURL string
	version  string
	logger   *slog.Logger

	mu      sync.Mutex
	servers map[string]*Server
	// others serve the connections of protocols other than mcp (Handle).
	others map[string]localcore.Opener
}

// Handle makes the core serve connections whose hello names the protocol
// kind with open; call it before the core serves. A hello for a store
// opened with other parameters is sent to serve itself before open runs.
func (c *Core) Handle(kind string, open localcore.Opener) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.others == nil {
		c.others = map[string]localcore.Opener{}
	}
	c.others[kind] = open
}

// NewCore returns a core serving the tenants of dir, the embedded store
// at storeURL.
func NewCore(dir *tenant.Directory, storeURL, version string, logger *slog.Logger) *Core {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Core{dir: dir, storeURL: storeURL, version: version, logger: logger, servers: map[string]*Server{}}
}

// Open answers a hello (localcore.Opener): it resolves the identity with
// ResolveStdio, the rules of a stdio process, and returns what serves the
// connection.
func (c *Core) Open(ctx context.Context, h localcore.Hello) (func(context.Context, net.Conn) error, error) {
	if q, own := storeParams(h.Store), storeParams(c.storeURL); q != own {
		return nil, &localcore.DirectError{Reason: fmt.Sprintf("the local core opened the store with parameters %q, this process with %q", own, q)}
	}
	if h.Kind != "mcp" {
		c.mu.Lock()
		open := c.others[h.Kind]
		c.mu.Unlock()
		if open == nil {
			return nil, &localcore.DirectError{Reason: fmt.Sprintf("this core does not serve %q connections", h.Kind)}
		}
		return open(ctx, h)
	}
	var m CoreMCP
	if len(h.Options) > 0 {
		if err := json.Unmarshal(h.Options, &m); err != nil {
			return nil, fmt.Errorf("hello options: %w", err)
		}
	}
	sc, err := ResolveStdio(ctx, c.dir, StdioIdentity{Token: h.Token, Tenant: h.Tenant, User: h.User, StoreURL: c.storeURL})
	if err != nil {
		return nil, err
	}
	srv, err := c.server(m)
	if err != nil {
		return nil, err
	}
	c.logger.Info("core connection", "pid", h.PID, "workspace", h.Workspace, "toolsets", m.Toolsets, "agent", m.Agent)
	return func(ctx context.Context, conn net.Conn) error {
		return srv.ServeConn(ctx, sc, h.Instance, conn, conn)
	}, nil
}

// storeParams are the parameters of a store URL (its query), in a
// canonical order.
func storeParams(u string) string {
	if !strings.Contains(u, "?") {
		return ""
	}
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Query().Encode()
}

// server returns the server for the settings m, made on first use.
func (c *Core) server(m CoreMCP) (*Server, error) {
	m.Toolsets = slices.Clone(m.Toolsets)
	slices.Sort(m.Toolsets)
	key, _ := json.Marshal(m)
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.servers[string(key)]; ok {
		return s, nil
	}
	s, err := New(c.dir, m.ServerOptions(c.version, c.storeURL, c.logger))
	if err != nil {
		return nil, err
	}
	c.servers[string(key)] = s
	return s, nil
}

// Close commits the remaining audit records of every server; call it
// once no connection is served.
func (c *Core) Close(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, s := range c.servers {
		errs = append(errs, s.Close(ctx))
	}
	return errors.Join(errs...)
}

// CoreTools returns, for each tool a `coditect mcp` with settings m
// serves, what a forwarder may send again of its calls after a core died:
// from each tool's input schema (does it take an idempotency_key?) and
// its annotations (read-only, idempotent, destructive), as tools/list
// gives them.
func CoreTools(m CoreMCP) (map[string]localcore.ToolRetry, error) {
	sets, err := tools.Select(m.Toolsets, m.ServerOptions("", "", nil).Tools)
	if err != nil {
		return nil, err
	}
	out := map[string]localcore.ToolRetry{}
	for _, set := range sets {
		for _, t := range set.Tools {
			schema := string(t.Def.RawInputSchema)
			if schema == "" {
				b, _ := json.Marshal(t.Def.InputSchema)
				schema = string(b)
			}
			a := t.Def.Annotations
			ro := a.ReadOnlyHint != nil && *a.ReadOnlyHint
			idem := a.IdempotentHint != nil && *a.IdempotentHint
			destr := a.DestructiveHint == nil || *a.DestructiveHint
			out[t.Def.Name] = localcore.ToolRetry{
				Keyed:    strings.Contains(schema, `"idempotency_key"`),
				Harmless: ro || (idem && !destr),
			}
		}
	}
	return out, nil
}

// MaxStdioMessage is the largest message a `coditect mcp` with settings m
// reads (see LimitLines).
func MaxStdioMessage(m CoreMCP) (int, error) {
	sets, err := tools.Select(m.Toolsets, m.ServerOptions("", "", nil).Tools)
	if err != nil {
		return 0, err
	}
	return int(max(DefaultMaxBody, int64(tools.MaxArgsOf(sets))+bodyEnvelope)), nil
}
