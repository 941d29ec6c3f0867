// Package tools owns Coditect's MCP tools: their definitions (name,
// one-sentence description, input and output schemas, annotations), their
// thin handlers (decode arguments -> call a storage layer -> encode a
// result), the middleware every call runs through (audit, heartbeat) and
// the toolsets a host picks with --toolsets. Files by toolset and area:
// core.go (whoami, sessions, notes, the audit log); coord*.go (agents,
// leases, messages, tasks); files*.go (a session's workspace: place
// resolution in files.go, reading, writing, moving and deleting under a
// lease, searching and finding over files_walk.go's walk); ide*.go (the
// human's editor, asked through storage/bridge).
//
// Every call's arguments are checked against its tool's input schema
// (required arguments present and not null, each of its declared type, no
// unknown ones) before the tool's handler runs: see spec.tool and
// argSchema. Every tool whose retry is not harmless takes an optional
// idempotency_key, so that a retried call does not change things twice:
// see idempotencyArg.
//
// A handler never sees a tenant id from a request: it acts through the
// caller's *tenant.Scope, which the transport (package server) resolved
// from a token or a trusted local identity. Errors are translated into an
// MCP tool error (isError) exactly once, at the edge (Install), with a
// sentence a small model can act on.
//
// This package imports the storage layers and mcp-go's types. It must not
// import package server (the transports), ide, webview or watch: imports
// point down only.
package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
)

// Caller is who makes a tool call, as the transport resolved it.
type Caller struct {
	// Scope is the caller's tenant-bound handle, acting as its agent when
	// the caller has one (Scope.Principal().Agent).
	Scope *tenant.Scope
	// Client is the host's clientInfo (from initialize, or from the
	// request's _meta in protocol 2026-07-28); empty when it did not say.
	Client mcp.Implementation
	// Self is the record of the agent the caller acts as, as this process
	// registered it; nil when the transport keeps none (then tools read
	// the record when they need it).
	Self *Self
	// Unavailable is set when resolving the caller needed a write (the
	// registration of its agent) that found the store unavailable: a tool
	// that may write then fails with it at once (see Heartbeat) instead of
	// waiting a second lock timeout.
	Unavailable error
	// AddedKeys, when set, starts the idempotency keys the transport adds
	// to calls that carry none (a local core's forwarder, so that a call
	// it sends again runs at most once, or, for a tool that takes no key,
	// is recorded once): the record of a call whose key has it shows the
	// arguments the caller sent, without that key.
	AddedKeys string
}

// addedKey reports whether idempotency key k is one the transport added
// (its prefix is added, Caller.AddedKeys), not the caller's own.
func addedKey(k, added string) bool { return added != "" && strings.HasPrefix(k, added) }

// Self holds, per process, the record of one agent that process registered,
// so that the tools that show who the caller is (whoami) and the writes
// that record the caller's model need no read of their own. It refreshes
// itself from the store when it is older than selfMaxAge, because another
// process (or the CLI) may re-register the same agent with another model.
// It is safe for concurrent use.
type Self struct {
	mu sync.Mutex
	a  agent.Agent
	at time.Time
}

// selfMaxAge bounds how stale a Self may be.
const selfMaxAge = 5 * time.Second

// NewSelf returns a Self holding a, the record agent.Register returned.
func NewSelf(a agent.Agent) *Self { return &Self{a: a, at: time.Now()} }

// ID returns the agent's id.
func (s *Self) ID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.a.ID
}

// set replaces the record (after the caller re-registered itself).
func (s *Self) set(a agent.Agent) {
	s.mu.Lock()
	s.a, s.at = a, time.Now()
	s.mu.Unlock()
}

// agentRecord returns the record of the agent the caller acts as: from the
// process's Self while it is fresh, from the store otherwise.
func (c *Call) agentRecord(ctx context.Context) (agent.Agent, error) {
	id := c.Scope.Principal().Agent
	if s := c.Self; s != nil {
		if a, ok := s.fresh(id); ok {
			return a, nil
		}
	}
	a, err := agent.Get(ctx, c.Scope, id)
	if err != nil {
		return agent.Agent{}, err
	}
	if c.Self != nil && a.ID == id {
		c.Self.set(a)
	}
	return a, nil
}

// Resolver resolves the caller of a tool call from the call's context. It
// fails when the caller is not (or no longer) authenticated.
type Resolver func(ctx context.Context) (Caller, error)

// Call is one tool call as a handler sees it.
type Call struct {
	Caller
	// Tool is the tool being called.
	Tool *Tool
	// Args are the arguments exactly as sent (nil when none were).
	Args json.RawMessage
	// Started is when the call reached the middleware chain.
	Started time.Time

	// path and attrs are what the handler adds to the call's tool.called
	// event (see record); audited is set when the handler committed that
	// event itself, in its own transaction (see toolEventOK).
	path    string
	project string
	attrs   map[string]any
	audited bool
	// recordID is the idempotency key of the call's tool.called event
	// (see recordKey).
	recordID string
	// sentAs is the key the transport added to the call of a tool that
	// takes none (see takeAddedKey): the call's record is keyed by it.
	sentAs string
	// keyed is the key of a keyed call to a one-transaction tool
	// (Tool.oneTx), which its transaction claims (see claimKey).
	keyed *txKey
	// resent: the call's key is one its transport added (AddedKeys), so
	// a key that finds an outcome means the transport sent the call again
	// (a local core died), not that the caller did.
	resent bool
	// names caches the names of the projects the call showed (see
	// projectName).
	names map[string]string
}

// record adds an attribute to the call's tool.called event, on success and
// failure alike: the file a call touched, the content hash it wrote, the
// fencing token it presented, why it was refused. Arguments are recorded
// cut and redacted; what the audit trail must keep goes here.
func (c *Call) record(key string, value any) {
	if c.attrs == nil {
		c.attrs = map[string]any{}
	}
	c.attrs[key] = value
}

// recordPath sets the file the call's tool.called event is indexed under:
// its project's id and its path relative to the project root, so that
// audit_query by path finds the call beside the file's changes.
func (c *Call) recordPath(f project.File) { c.project, c.path = f.Project, f.Rel }

// toolEventOK returns the tool.called event of the call as a success so
// far, for a handler whose whole effect is one audit append: appending it
// in the same transaction (and setting audited once that commits) saves the
// middleware a commit of its own.
func (c *Call) toolEventOK() audit.Event { return ToolEvent(c, nil, time.Since(c.Started)) }

// Result is what a tool returns: the structured content (which matches
// the tool's output schema) and the text a model reads.
type Result struct {
	Structured any
	Text       string
}

// Handler runs a tool call. A returned error becomes a tool error whose
// text is the error's message; wrap layer errors so that the message says
// what to send instead.
type Handler func(ctx context.Context, c *Call) (Result, error)

// Middleware wraps a Handler, as net/http middleware wraps an
// http.Handler.
type Middleware func(Handler) Handler

// Chain composes middleware so that the first one listed runs outermost.
func Chain(mw ...Middleware) Middleware {
	return func(h Handler) Handler {
		for i := len(mw) - 1; i >= 0; i-- {
			h = mw[i](h)
		}
		return h
	}
}

// Tool is one MCP tool: its definition and its handler.
type Tool struct {
	Def mcp.Tool
	// Handler runs a call: it checks the arguments against the input
	// schema (see argSchema) and, when they pass, runs the tool's own
	// handler. A call refused by that check reaches no storage layer.
	Handler Handler
	// args is the input schema as the argument check enforces it.
	args *argSchema
	// example is a valid arguments object, quoted in argument errors.
	example string
	// maxArgs is the largest arguments object the tool accepts, in bytes;
	// zero means MaxArgs.
	maxArgs int
	// oneTx: the handler commits the call's whole effect, its tool.called
	// record and a keyed call's result in one transaction (Call.claimKey,
	// Call.commitCall), so a keyed call reserves nothing (see
	// idempotencyArg).
	oneTx bool
}

// MaxArgs returns the largest arguments object the tool accepts, in bytes.
func (t *Tool) MaxArgs() int {
	if t.maxArgs > 0 {
		return t.maxArgs
	}
	return MaxArgs
}

// Name returns the tool's name.
func (t *Tool) Name() string { return t.Def.Name }

// ReadOnly reports whether the tool only reads (its readOnlyHint).
func (t *Tool) ReadOnly() bool {
	return t.Def.Annotations.ReadOnlyHint != nil && *t.Def.Annotations.ReadOnlyHint
}

// Toolset is a named group of tools a host enables with --toolsets.
type Toolset struct {
	Name string
	// Summary says in a few words what the toolset is for (--help).
	Summary string
	Tools   []*Tool
}

// hints are a tool's behaviour annotations. Every tool states all four:
// none of ours reaches outside Coditect's store, so openWorldHint is false.
type hints struct {
	readOnly, destructive, idempotent bool
}

func (h hints) annotation(title string) mcp.ToolAnnotation {
	f := false
	return mcp.ToolAnnotation{
		Title:           title,
		ReadOnlyHint:    &h.readOnly,
		DestructiveHint: &h.destructive,
		IdempotentHint:  &h.idempotent,
		OpenWorldHint:   &f,
	}
}

var (
	readOnly = hints{readOnly: true, idempotent: true}
	additive = hints{}
)

// spec describes a tool; its schemas are JSON literals (see schema).
type spec struct {
	name, title, description string
	hints                    hints
	input, output            string
	// example is a valid arguments object for argument errors.
	example string
	// maxArgs is the tool's arguments limit; zero means MaxArgs.
	maxArgs int
	// oneTx: see Tool.oneTx.
	oneTx   bool
	handler Handler
}

// tool builds the tool. Its Handler checks every call's arguments against
// the input schema before s.handler runs, so that no tool acts on a call
// that lacks a required argument or sends one of the wrong type. A tool
// whose retry is not harmless (hints.keyed) also takes an optional
// idempotency_key, added to its input schema here and honoured by
// Call.once (see idempotencyArg). An input
// schema the check cannot enforce is a programming error: tool panics,
// and the tests build every tool.
func (s spec) tool() *Tool {
	in := schema(s.input)
	keyed := s.hints.keyed()
	if keyed {
		in = withIdempotencyKey(in)
	}
	args, err := parseArgSchema(in)
	if err != nil {
		panic(fmt.Sprintf("tools: %s: input schema: %v", s.name, err))
	}
	h := s.handler
	return &Tool{
		Def: mcp.Tool{
			Name:            s.name,
			Description:     s.description,
			RawInputSchema:  in,
			RawOutputSchema: schema(s.output),
			Annotations:     s.hints.annotation(s.title),
		},
		Handler: func(ctx context.Context, c *Call) (Result, error) {
			if !keyed {
				c.takeAddedKey()
			}
			if err := c.checkArgs(); err != nil {
				return Result{}, err
			}
			if keyed {
				return c.once(ctx, h)
			}
			return h(ctx, c)
		},
		args:    args,
		example: s.example,
		maxArgs: s.maxArgs,
		oneTx:   s.oneTx,
	}
}

// schema compacts a JSON schema written in the source for reading,
// keeping its property order (which argument errors quote). The schemas
// are literals checked by the tests, so a malformed one is a programming
// error.
func schema(s string) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		panic(fmt.Sprintf("tools: malformed schema literal: %v\n%s", err, s))
	}
	return b.Bytes()
}

// Install adds the tools of the given toolsets to an mcp-go server. Every
// call resolves its caller with resolve, runs through mw (outermost first)
// and the tool's handler, and is translated to an MCP result once, here:
// a Result becomes structuredContent plus a text block, an error becomes a
// tool error (isError) carrying the error's message.
func Install(s *mcpserver.MCPServer, sets []Toolset, resolve Resolver, mw ...Middleware) {
	chain := Chain(mw...)
	var all []mcpserver.ServerTool
	for _, set := range sets {
		for _, t := range set.Tools {
			h := chain(t.Handler)
			all = append(all, mcpserver.ServerTool{Tool: t.Def, Handler: adapt(t, h, resolve)})
		}
	}
	s.AddTools(all...)
}

func adapt(t *Tool, h Handler, resolve Resolver) mcpserver.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		start := time.Now()
		caller, err := resolve(ctx)
		if err != nil {
			// Not authenticated (or no longer): nothing to audit against.
			return mcp.NewToolResultError(fmt.Sprintf("%s: %v", t.Name(), err)), nil
		}
		args := req.Params.RawArguments
		if len(args) == 0 && req.Params.Arguments != nil {
			// In-process callers hand over decoded arguments.
			if args, err = json.Marshal(req.Params.Arguments); err != nil {
				return mcp.NewToolResultError(fmt.Sprintf("%s: arguments are not JSON: %v", t.Name(), err)), nil
			}
		}
		res, err := h(ctx, &Call{Caller: caller, Tool: t, Args: args, Started: start})
		if err != nil {
			return mcp.NewToolResultError(errorText(t.Name(), err)), nil
		}
		return mcp.NewToolResultStructured(res.Structured, res.Text), nil
	}
}

// MaxArgsOf returns the largest arguments object any tool of sets
// accepts: a transport's request limit must leave room for it.
func MaxArgsOf(sets []Toolset) int {
	n := MaxArgs
	for _, s := range sets {
		for _, t := range s.Tools {
			n = max(n, t.MaxArgs())
		}
	}
	return n
}
