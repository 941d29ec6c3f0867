package ide

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"go.lsp.dev/protocol"

	"github.com/coditect/coditect/internal/textclip"
)

// The lifecycle (LSP §Lifecycle Messages) as an explicit state machine:
//
//	starting ──initialize──▶ initialized ──initialized──▶ running
//	    │                         │                          │
//	    └────────────┬────────────┴─────────shutdown─────────┘
//	                 ▼
//	              shutdown ──exit──▶ exited (code 0)
//	(exit from any other state: exited, code 1)
//
// Before initialize, requests fail with ServerNotInitialized and
// notifications other than exit are dropped. initialize is answered once;
// a second one fails with InvalidRequest. After shutdown, requests other
// than shutdown (which is idempotent) fail with InvalidRequest and
// notifications other than exit are dropped.
type state int

const (
	stateStarting    state = iota // no initialize yet
	stateInitialized              // initialize answered
	stateRunning                  // the client sent initialized
	stateShutdown                 // shutdown answered
	stateExited                   // exit received
)

func (st state) String() string {
	return [...]string{"starting", "initialized", "running", "shutdown", "exited"}[st]
}

// lifecycleRequests run on the dispatch loop itself.
var lifecycleRequests = map[string]requestHandler{
	"initialize": (*server).initialize,
	"shutdown":   (*server).shutdown,
}

// requests are the other requests, run concurrently.
var requests = map[string]requestHandler{
	"textDocument/hover":       (*server).hover,
	"textDocument/codeLens":    (*server).codeLens,
	"workspace/executeCommand": (*server).executeCommand,
}

// notifications apply in arrival order.
var notifications = map[string]notificationHandler{
	"initialized":                         (*server).initialized,
	"exit":                                (*server).exit,
	"textDocument/didOpen":                (*server).didOpen,
	"textDocument/didChange":              (*server).didChange,
	"textDocument/willSave":               (*server).willSave,
	"textDocument/didSave":                (*server).didSave,
	"textDocument/didClose":               (*server).didClose,
	activityMethod:                        (*server).activity,
	"workspace/didChangeConfiguration":    ignore,
	"workspace/didChangeWorkspaceFolders": (*server).didChangeWorkspaceFolders,
	"workspace/didChangeWatchedFiles":     ignore,
	bridgeSettingsMethod:                  (*server).bridgeSettings,
	"$/setTrace":                          ignore,
}

func ignore(*server, context.Context, json.RawMessage) error { return nil }

// admit decides whether a request other than initialize and shutdown may
// run in the current state.
func (s *server) admit(string) error {
	s.mu.Lock()
	st := s.state
	s.mu.Unlock()
	switch st {
	case stateStarting:
		return &rpcError{code: codeServerNotInitialized, msg: "the server is not initialized: send initialize first"}
	case stateShutdown, stateExited:
		return &rpcError{code: codeInvalidRequest, msg: "the server is shut down: only exit is accepted"}
	}
	return nil
}

// admitNotification decides whether a notification applies in the
// current state.
func (s *server) admitNotification(method string) bool {
	s.mu.Lock()
	st := s.state
	s.mu.Unlock()
	switch {
	case method == "exit":
		return st != stateExited
	case method == "initialized":
		return st == stateInitialized
	}
	return st == stateInitialized || st == stateRunning
}

// initializeParams is what the server reads of InitializeParams. Only
// these fields are decoded: the client capabilities are large, vary by
// client, and some do not round-trip through go.lsp.dev/protocol's types.
type initializeParams struct {
	ProcessID             *int32                     `json:"processId"`
	ClientInfo            *protocol.ClientInfo       `json:"clientInfo"`
	RootURI               string                     `json:"rootUri"`
	RootPath              string                     `json:"rootPath"`
	WorkspaceFolders      []protocol.WorkspaceFolder `json:"workspaceFolders"`
	InitializationOptions *initializationOptions     `json:"initializationOptions"`
	// Capabilities are read leniently by parseCapabilities (bridge.go).
	Capabilities json.RawMessage `json:"capabilities"`
}

// initializationOptions are the companion extension's.
type initializationOptions struct {
	// HumanActivity: the client sends coditect/activity when its human
	// types, so saves without it are not the human's.
	HumanActivity bool `json:"humanActivity"`
}

// Commands the server executes.
const (
	cmdSessionStart = "coditect.session.start"
	cmdSessionJoin  = "coditect.session.join"
	cmdSessionEnd   = "coditect.session.end"
	cmdDashboard    = "coditect.dashboard"
	cmdFileHistory  = "coditect.file.history"
	cmdAgents       = "coditect.agents"
	cmdStatus       = "coditect.status"
	cmdMessageSend  = "coditect.message.send"
	cmdTaskCreate   = "coditect.task.create"
	cmdLeaseRelease = "coditect.lease.release"
)

var commands = append([]string{cmdSessionStart, cmdSessionJoin, cmdSessionEnd, cmdDashboard, cmdFileHistory, cmdAgents, cmdStatus, cmdMessageSend, cmdTaskCreate, cmdLeaseRelease}, reviewCommands...)

func (s *server) initialize(ctx context.Context, params json.RawMessage) (any, error) {
	s.mu.Lock()
	st := s.state
	s.mu.Unlock()
	if st != stateStarting {
		return nil, &rpcError{code: codeInvalidRequest, msg: fmt.Sprintf("initialize may be sent once; the server is %s", st)}
	}
	var p initializeParams
	if err := decode(params, &p); err != nil {
		return nil, err
	}
	var roots []string
	for _, f := range p.WorkspaceFolders {
		if r, err := uriPath(string(f.URI)); err == nil {
			roots = append(roots, r)
		}
	}
	if len(roots) == 0 && p.RootURI != "" {
		if r, err := uriPath(p.RootURI); err == nil {
			roots = append(roots, r)
		}
	}
	if len(roots) == 0 && p.RootPath != "" && filepath.IsAbs(p.RootPath) {
		roots = append(roots, realPath(filepath.Clean(p.RootPath)))
	}
	folders := s.folders(ctx, roots)
	client := "an LSP client"
	if p.ClientInfo != nil && p.ClientInfo.Name != "" {
		client = strings.TrimSpace(p.ClientInfo.Name + " " + p.ClientInfo.Version)
	}
	s.mu.Lock()
	s.state = stateInitialized
	s.client = textclip.Clip(client, 120)
	s.roots = folders
	s.signals = p.InitializationOptions != nil && p.InitializationOptions.HumanActivity
	s.caps = parseCapabilities(p.Capabilities)
	s.mu.Unlock()
	s.log.Info("initialized", "client", client, "roots", roots, "user", s.sc.Principal().User, "tenant", s.sc.Tenant())
	return map[string]any{
		"capabilities": map[string]any{
			"textDocumentSync": protocol.TextDocumentSyncOptions{
				OpenClose: true,
				Change:    protocol.TextDocumentSyncKindIncremental,
				WillSave:  true,
				Save:      &protocol.SaveOptions{IncludeText: false},
			},
			"hoverProvider":          true,
			"codeLensProvider":       protocol.CodeLensOptions{},
			"executeCommandProvider": protocol.ExecuteCommandOptions{Commands: commands},
		},
		"serverInfo": protocol.ServerInfo{Name: "coditect", Version: s.opts.Version},
	}, nil
}

func (s *server) initialized(context.Context, json.RawMessage) error {
	s.mu.Lock()
	s.state = stateRunning
	caps := s.caps
	s.mu.Unlock()
	s.startBackground()
	s.startBridge(caps)
	return nil
}

func (s *server) shutdown(context.Context, json.RawMessage) (any, error) {
	s.mu.Lock()
	st := s.state
	if st == stateStarting {
		s.mu.Unlock()
		return nil, &rpcError{code: codeServerNotInitialized, msg: "the server is not initialized: send initialize first"}
	}
	s.state = stateShutdown
	s.mu.Unlock()
	if st != stateShutdown {
		s.release()
	}
	return nil, nil
}

func (s *server) exit(context.Context, json.RawMessage) error {
	s.mu.Lock()
	if s.state == stateShutdown {
		s.exitCode = ExitOK
	}
	s.state = stateExited
	s.gotExit = true
	s.mu.Unlock()
	close(s.exited)
	return nil
}

func (s *server) didChangeWorkspaceFolders(ctx context.Context, params json.RawMessage) error {
	var p struct {
		Event struct {
			Added   []protocol.WorkspaceFolder `json:"added"`
			Removed []protocol.WorkspaceFolder `json:"removed"`
		} `json:"event"`
	}
	if err := decode(params, &p); err != nil {
		return err
	}
	var added []string
	for _, f := range p.Event.Added {
		if r, err := uriPath(string(f.URI)); err == nil {
			added = append(added, r)
		}
	}
	folders := s.folders(ctx, added)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range p.Event.Removed {
		if r, err := uriPath(string(f.URI)); err == nil {
			for i, have := range s.roots {
				if have.path == r {
					s.roots = append(s.roots[:i], s.roots[i+1:]...)
					break
				}
			}
		}
	}
	s.roots = append(s.roots, folders...)
	return nil
}

// workspaceRoots returns the workspace folders.
func (s *server) workspaceRoots() []folder {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]folder(nil), s.roots...)
}
