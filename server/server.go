// Package server owns the wiring of Coditect's MCP endpoints: who is
// calling (stdio: CODITECT_TOKEN, or --tenant/--user on the embedded
// store, else tenant "default" and the OS user; HTTP: a bearer token on
// every request), which agent that is (the host's clientInfo plus
// --agent/--model, registered with storage/agent, or the agent a session
// handle speaks for: agents.acting), marking a connection's agents offline
// when it ends, and the transports:
// stdio for `coditect mcp`, the connections of the local core that
// forwarded `coditect mcp` processes share (Core, ServeConn; the socket
// and its handshake are server/localcore's), and Streamable HTTP at /mcp
// for the daemon, in both protocol eras (2025-11-25 with initialize,
// 2026-07-28 without).
//
// Work sessions are Coditect's own handles returned by a tool, never the
// MCP transport session: with protocol 2026-07-28 there is none, and over
// stateless HTTP it does not survive a restart.
//
// This package imports tools and the storage layers; cmd/coditect imports
// it. It must not import ide, webview or cmd.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/tools"
)

// Defaults of Options.
const (
	// DefaultHeartbeatEvery: calls of one agent within a second share a
	// heartbeat write (liveness TTLs are tens of seconds).
	DefaultHeartbeatEvery = time.Second
	// DefaultRecheck: a long-lived stdio process, and the HTTP handler's
	// token cache, re-validate a token (revoked? expired? user or tenant
	// disabled?) at most this often (tenant.RecheckInterval).
	DefaultRecheck = tenant.RecheckInterval
)

// Options configure a Server.
type Options struct {
	// Version is the server version reported to hosts.
	Version string
	// Toolsets names the toolsets to serve (tools.Select); empty means
	// tools.DefaultToolsets().
	Toolsets []string
	// Tools configures the toolsets (file size limits, the lease a write
	// takes); the zero value means the defaults.
	Tools tools.Config
	// Agent refines the agent the host's clientInfo describes.
	Agent AgentFlags
	// Logger receives the server's logs; nil discards them. In stdio mode
	// it must not write to stdout.
	Logger *slog.Logger
	// HeartbeatEvery is how often one agent's calls write a heartbeat;
	// zero means DefaultHeartbeatEvery, a negative value every call.
	HeartbeatEvery time.Duration
	// Recheck is how often a stdio principal is re-validated; zero means
	// DefaultRecheck, a negative value every call.
	Recheck time.Duration
	// SpoolDir, when set, holds the write-ahead spool of the audit records
	// of read-only calls (tools.AuditQueue.UseSpool; storage.SpoolDir names
	// the one beside an embedded store). New first recovers what killed
	// processes left there. Empty: reads wait for their records' commits.
	SpoolDir string
	// StoreURL names the store, so that the files tools never reach its
	// files (see ProtectedPaths); when empty, an embedded store is found
	// from SpoolDir, which lies beside it.
	StoreURL string
}

// ProtectedPaths returns the paths of Coditect's own files that no files
// tool may reach, even inside a project root: storage.OwnFiles of the
// store at storeURL (else of the embedded store whose spool is spoolDir,
// which storage.SpoolDir puts beside it) and the spool directory.
func ProtectedPaths(storeURL, spoolDir string) []string {
	if storeURL == "" && strings.HasSuffix(spoolDir, "-spool") {
		cand := (&url.URL{Scheme: "sqlite", Path: strings.TrimSuffix(spoolDir, "-spool")}).String()
		if storage.SpoolDir(cand) == spoolDir {
			storeURL = cand
		}
	}
	out := storage.OwnFiles(storeURL)
	if spoolDir != "" && !slices.Contains(out, spoolDir) {
		out = append(out, spoolDir)
	}
	return out
}

// instructions returns what hosts are told at initialize (and
// server/discover): the one workflow a small model should follow, with a
// sentence for each opt-in toolset served.
func instructions(sets []tools.Toolset) string {
	s := "Coditect is shared ground for agents and humans working on the same code. " +
		"Call session_start in one of your projects (whoami lists them) before you work and pass its session_id to note and session_end."
	for _, set := range sets {
		switch set.Name {
		case "coord":
			s += " Check agents_list and inbox to see who else works; take a lease (a path relative to the project root, with your session_id) before you change a file or task others may touch, and release it when done."
		case "files":
			s += " Work on files of the session's workspace, paths relative to it: read them with fs_read (start_line and end_line for part of a long file) and fs_list, change them with fs_edit, fs_write, fs_move and fs_delete; a change takes the file's lease for you."
		}
	}
	return s
}

// Server is Coditect's MCP server: one set of tools served over stdio
// and HTTP. It is safe for concurrent use.
type Server struct {
	dir      *tenant.Directory
	mcp      *mcpserver.MCPServer
	agents   *agents
	clients  *clients
	logger   *slog.Logger
	recheck  time.Duration
	toolsets []tools.Toolset
	queue    *tools.AuditQueue
	beats    *tools.Heartbeats
}

// New returns a server for the tenants of dir.
func New(dir *tenant.Directory, opts Options) (*Server, error) {
	opts.Tools.Protected = append(slices.Clone(opts.Tools.Protected), ProtectedPaths(opts.StoreURL, opts.SpoolDir)...)
	sets, err := tools.Select(opts.Toolsets, opts.Tools)
	if err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	version := opts.Version
	if version == "" {
		version = "(devel)"
	}
	every := opts.HeartbeatEvery
	switch {
	case every == 0:
		every = DefaultHeartbeatEvery
	case every < 0:
		every = 0
	}
	recheck := opts.Recheck
	switch {
	case recheck == 0:
		recheck = DefaultRecheck
	case recheck < 0:
		recheck = time.Nanosecond
	}
	s := &Server{
		dir:      dir,
		agents:   newAgents(opts.Agent, logger),
		clients:  newClients(),
		logger:   logger,
		recheck:  recheck,
		toolsets: sets,
		queue:    tools.NewAuditQueue(auditQueueSize, logger),
		beats:    tools.NewHeartbeats(every, logger),
	}
	if opts.SpoolDir != "" {
		ctx, cancel := context.WithTimeout(context.Background(), spoolRecoveryTimeout)
		n, err := s.queue.UseSpool(ctx, opts.SpoolDir, dir.AuditLog)
		cancel()
		if err != nil {
			logger.Warn("no audit spool; reads wait for their records to commit", "dir", opts.SpoolDir, "err", err)
		} else if n > 0 {
			logger.Info("recovered audit records of killed processes", "records", n, "dir", opts.SpoolDir)
		}
	}
	hooks := &mcpserver.Hooks{}
	hooks.AddAfterInitialize(s.afterInitialize)
	s.mcp = mcpserver.NewMCPServer("coditect", version,
		mcpserver.WithToolHandlerMiddleware(rememberCall),
		mcpserver.WithToolCapabilities(false),
		mcpserver.WithInstructions(instructions(sets)),
		mcpserver.WithRecovery(),
		mcpserver.WithHooks(hooks),
	)
	// Audit wraps Heartbeat, so a call that fails in its heartbeat is
	// recorded too.
	tools.Install(s.mcp, sets, s.resolve, tools.Audit(logger, s.queue), s.beats.Middleware)
	return s, nil
}

// spoolRecoveryTimeout bounds the recovery of dead processes' spools at
// start; what is not recovered in time stays for the next start.
const spoolRecoveryTimeout = 30 * time.Second

// auditQueueSize bounds the tool.called events waiting for their group
// commit.
const auditQueueSize = 4096

// Flush returns once every audit record queued so far is committed (or set
// aside while the store is unavailable). A writing call's record is
// committed before the call is answered; a read's may still be in the
// spool, and a failed call's may be waiting for the store: Flush covers
// them.
func (s *Server) Flush(ctx context.Context) error { return s.queue.Flush(ctx) }

// Close commits the remaining audit records and stops the server's
// background work. Call it after every transport has stopped.
func (s *Server) Close(ctx context.Context) error { return s.queue.Close(ctx) }

// MCPServer returns the underlying mcp-go server (for in-process use).
func (s *Server) MCPServer() *mcpserver.MCPServer { return s.mcp }

// Toolsets returns the toolsets the server serves.
func (s *Server) Toolsets() []tools.Toolset { return s.toolsets }

// errNotAuthenticated: a request reached the tools without a principal,
// which the transports never allow; it is a wiring defect.
var errNotAuthenticated = errors.New("not authenticated: the transport resolved no identity for this request")

// resolve is the tools' Resolver: the transport's principal, acting as the
// agent agents.acting chooses for the call.
func (s *Server) resolve(ctx context.Context) (tools.Caller, error) {
	p := principalFrom(ctx)
	if p == nil {
		return tools.Caller{}, errNotAuthenticated
	}
	sc, err := p.scope(ctx)
	if err != nil {
		return tools.Caller{}, fmt.Errorf("your credentials are no longer valid (%w); ask the operator for a new token", err)
	}
	info := s.clients.clientInfo(ctx)
	bound, self, err := s.agents.acting(ctx, sc, info, toolCallFrom(ctx))
	switch {
	case bound == nil:
		return tools.Caller{}, err
	case self != nil:
		p.actedAs(bound)
	}
	return tools.Caller{Scope: bound, Client: info, Self: self, Unavailable: err, AddedKeys: p.addedKeys}, nil
}

// afterInitialize remembers a legacy client's clientInfo by MCP session
// (see clients) and registers its agent right away, so that other agents
// see it before its first tool call.
func (s *Server) afterInitialize(ctx context.Context, _ any, req *mcp.InitializeRequest, _ *mcp.InitializeResult) {
	if sess := mcpserver.ClientSessionFromContext(ctx); sess != nil && req != nil {
		s.clients.remember(sess.SessionID(), req.Params.ClientInfo)
	}
	if p := principalFrom(ctx); p != nil {
		if sc, err := p.scope(ctx); err == nil {
			info := s.clients.clientInfo(ctx)
			if info.Name == "" && req != nil {
				info = req.Params.ClientInfo
			}
			if bound, self, _ := s.agents.bind(ctx, sc, info); self != nil {
				p.actedAs(bound)
			}
		}
	}
}
