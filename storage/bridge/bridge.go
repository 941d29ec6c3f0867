// Package bridge owns the IDE bridge's routing: agents ask the human's
// editor what it knows (diagnostics, definitions, references, symbols,
// hover, the open editors) and ask it to show a file, through records in
// the store, so that the agent's process (`coditect mcp`) and the editor's
// (`coditect ide`) never reach each other directly and may run on
// different machines on one store.
//
//   - An editor connection announces its Presence (user, projects, the
//     kinds of request it answers, whether its human shares it with other
//     users' agents) and refreshes it while it runs (Connect); a presence
//     whose editor vanished stops counting at its expiry, PresenceTTL.
//   - Ask (the agent's side) picks the editor (the caller's own user's for
//     the project, else another user's that shares), writes a Request
//     under the editor's queue, bumps the editor's doorbell, waits on the
//     answer key until the request's deadline and always clears both
//     records. Each Ask appends one "ide.request" audit event with its
//     outcome.
//   - Editor.Serve (the editor's side) waits on its doorbell, takes the
//     requests of its queue, runs a Handler and writes the answer; a
//     request past its deadline is dropped unanswered, and a handler's
//     context ends at the deadline or when the asker withdraws the
//     request (ErrWithdrawn). Close answers what is still waiting with
//     an error; Sweep removes what killed editors and askers left (the
//     editors and the daemon run it).
//
// Requests and results are machine-neutral: files are named by project id
// and path relative to the project root, lines and columns count from 1
// (columns in characters). The editor's process converts them to and from
// its own absolute paths and the editor's positions.
//
// Every function takes a *tenant.Scope: an editor of one tenant is never
// seen by another. This package imports storage/kv, storage/keyspace,
// storage/audit, storage/errclass and storage/tenant; nothing above them.
package bridge

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/coditect/coditect/storage/errclass"
)

// Request kinds, as the wire contract with the editor names them.
const (
	KindDiagnostics = "diagnostics"
	KindDefinition  = "definition"
	KindReferences  = "references"
	KindSymbols     = "symbols"
	KindHover       = "hover"
	KindContext     = "context"
	KindOpen        = "open"
)

// Kinds lists every request kind.
var Kinds = []string{KindDiagnostics, KindDefinition, KindReferences, KindSymbols, KindHover, KindContext, KindOpen}

// Editor kinds.
const (
	// EditorVSCode is VS Code (or a fork) with the Coditect extension:
	// it answers every kind.
	EditorVSCode = "vscode"
	// EditorLSP is a plain LSP client (Neovim, Vim, Helix): the server
	// answers what it can on its own (open, context).
	EditorLSP = "lsp"
)

// Timing.
const (
	// PresenceTTL is how long a presence counts without a refresh; an
	// editor refreshes it every third of that, so a killed editor stops
	// counting within PresenceTTL.
	PresenceTTL = 5 * time.Second
	// DefaultTimeout is how long Ask waits for an answer when the caller
	// sets no timeout.
	DefaultTimeout = 10 * time.Second
	// MaxTimeout is the longest a caller may wait.
	MaxTimeout = 60 * time.Second
	// sweepGrace is how long after its deadline a request record (whose
	// asker was killed before it could clear it) is swept.
	sweepGrace = 2 * time.Second
)

// Limits.
const (
	// MaxRequest is the largest encoded request, in bytes.
	MaxRequest = 64 << 10
	// MaxAnswer is the largest encoded answer, in bytes: well under
	// kv.MaxValueSize. An editor trims longer lists (see Result.More).
	MaxAnswer = 90_000
	// MaxProjects is the most projects one presence lists.
	MaxProjects = 64
	// DefaultLimit and MaxLimit bound the items of a list result.
	DefaultLimit = 50
	MaxLimit     = 200
)

// Errors, wrapped with a sentence naming who and what; match them with
// errors.Is (or their class).
var (
	// ErrInvalid: a request is malformed or too large.
	ErrInvalid = errclass.New(errclass.Invalid, "invalid IDE request")
	// ErrNoEditor: no editor of the caller (nor a shared one) is
	// connected to the project.
	ErrNoEditor = errclass.New(errclass.Unavailable, "no editor is connected")
	// ErrNotShared: only other users' editors are connected, and their
	// humans do not share them with other users' agents.
	ErrNotShared = errclass.New(errclass.Forbidden, "the editor is not shared")
	// ErrUnsupported: the editor cannot answer this kind of request.
	ErrUnsupported = errclass.New(errclass.Unavailable, "the editor cannot answer this request")
	// ErrTimeout: the editor did not answer before the deadline.
	ErrTimeout = errclass.New(errclass.Unavailable, "the editor did not answer in time")
	// ErrEditor: the editor answered with an error.
	ErrEditor = errclass.New(errclass.Unavailable, "the editor answered with an error")
)

// Outcomes of a request, as its audit event records them.
const (
	OutcomeAnswered    = "answered"
	OutcomeTimeout     = "timeout"
	OutcomeNoEditor    = "no_editor"
	OutcomeRefused     = "refused"
	OutcomeUnsupported = "unsupported"
	OutcomeError       = "error"
)

// Presence is an editor connection as it announces itself.
type Presence struct {
	// Editor is the connection's id (one `coditect ide` process).
	Editor string `json:"editor"`
	// User is the human at the editor (set from the scope).
	User string `json:"user"`
	// Client names the editor ("Visual Studio Code 1.96", "Neovim 0.7.2").
	Client string `json:"client,omitempty"`
	// Kind is EditorVSCode or EditorLSP.
	Kind string `json:"kind"`
	// Projects are the ids of the projects the editor has open.
	Projects []string `json:"projects"`
	// Kinds are the request kinds the editor answers.
	Kinds []string `json:"kinds"`
	// Share: the human lets other users' agents ask this editor.
	Share bool `json:"share"`
	// Machine is where the editor runs (informative).
	Machine string `json:"machine,omitempty"`
	// At is the last refresh; Expires when the presence stops counting.
	At      time.Time `json:"at"`
	Expires time.Time `json:"expires"`
}

// Live reports whether the presence counts at now.
func (p Presence) Live(now time.Time) bool { return now.Before(p.Expires) }

// Serves reports whether the editor has project open.
func (p Presence) Serves(project string) bool { return slices.Contains(p.Projects, project) }

// Can reports whether the editor answers kind.
func (p Presence) Can(kind string) bool { return slices.Contains(p.Kinds, kind) }

// describe names the editor for messages: "alice (Neovim 0.7.2, plain LSP)".
func (p Presence) describe() string {
	client := p.Client
	if client == "" {
		client = "an editor"
	}
	if p.Kind == EditorLSP {
		client += ", plain LSP"
	}
	return fmt.Sprintf("%s (%s)", p.User, client)
}

// Params are a request's arguments, machine-neutral.
type Params struct {
	// Path is a file relative to the project root, '/'-separated; empty
	// for the whole project (diagnostics) or workspace symbols.
	Path string `json:"path,omitempty"`
	// Line and Column are 1-based (Column counts characters); zero when
	// the request names a Symbol instead.
	Line   int `json:"line,omitempty"`
	Column int `json:"column,omitempty"`
	// EndLine ends the range of an open request (1-based, inclusive).
	EndLine int `json:"end_line,omitempty"`
	// Symbol is a name to look up (definition, references, hover);
	// Query a workspace symbol query; Message what the human sees (open).
	Symbol  string `json:"symbol,omitempty"`
	Query   string `json:"query,omitempty"`
	Message string `json:"message,omitempty"`
	// SeverityMin keeps diagnostics at least this severe (1 error,
	// 2 warning, 3 information, 4 hint); zero keeps all.
	SeverityMin int `json:"severity_min,omitempty"`
	// WaitFor are contents the editor must see before it answers
	// (diagnostics after an agent's write).
	WaitFor []Wait `json:"wait_for,omitempty"`
	// Limit is the most items of a list result.
	Limit int `json:"limit"`
}

// Wait is a file content the editor waits for: the project-relative path
// and the lowercase hex SHA-256 of the file's bytes.
type Wait struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// Request is one question to an editor, as stored in its queue.
type Request struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"`
	Project     string `json:"project"`
	ProjectName string `json:"project_name"`
	Params      Params `json:"params"`
	// Agent is the asking agent's id, AgentLabel how the human sees it
	// ("builder (qwen2.5-coder-7b)"); User the user it acts for; Session
	// its work session.
	Agent      string    `json:"agent,omitempty"`
	AgentLabel string    `json:"agent_label,omitempty"`
	User       string    `json:"user"`
	Session    string    `json:"session,omitempty"`
	Editor     string    `json:"editor"`
	Asked      time.Time `json:"asked"`
	Deadline   time.Time `json:"deadline"`
}

// Location is a range in a project file: 1-based lines and columns.
type Location struct {
	Path      string `json:"path"`
	Line      int    `json:"line"`
	Column    int    `json:"column"`
	EndLine   int    `json:"end_line,omitempty"`
	EndColumn int    `json:"end_column,omitempty"`
}

// Diagnostic is a problem the editor shows.
type Diagnostic struct {
	Location
	// Severity is LSP's: 1 error, 2 warning, 3 information, 4 hint.
	Severity int    `json:"severity"`
	Message  string `json:"message"`
	Source   string `json:"source,omitempty"`
	Code     string `json:"code,omitempty"`
}

// Symbol is a document or workspace symbol.
type Symbol struct {
	Name string `json:"name"`
	// Kind is LSP's SymbolKind number.
	Kind      int    `json:"kind"`
	Container string `json:"container,omitempty"`
	Location
}

// OpenEditor is a file the human has open, with its visible lines.
type OpenEditor struct {
	Path      string `json:"path"`
	FirstLine int    `json:"first_line,omitempty"`
	LastLine  int    `json:"last_line,omitempty"`
}

// Active is the file the human is looking at and the selection.
type Active struct {
	Path      string   `json:"path"`
	Selection Location `json:"selection"`
	Text      string   `json:"text,omitempty"`
}

// Result is an editor's answer; the fields of the request's kind are set.
type Result struct {
	Diagnostics []Diagnostic `json:"diagnostics,omitempty"`
	Locations   []Location   `json:"locations,omitempty"`
	Symbols     []Symbol     `json:"symbols,omitempty"`
	Contents    string       `json:"contents,omitempty"`
	Editors     []OpenEditor `json:"editors,omitempty"`
	Active      *Active      `json:"active,omitempty"`
	Shown       bool         `json:"shown,omitempty"`
	Opened      bool         `json:"opened,omitempty"`
	// More counts the items left out (over the limit or the size bound);
	// Elsewhere the items outside the request's project, left out.
	More      int `json:"more,omitempty"`
	Elsewhere int `json:"elsewhere,omitempty"`
}

// answer is the stored answer: a result or an error.
type answer struct {
	Result *Result `json:"result,omitempty"`
	Error  string  `json:"error,omitempty"`
	// Class is the errclass name of Error, when the editor gave one.
	Class string `json:"class,omitempty"`
}

// newID returns a random request id.
func newID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "rq_" + hex.EncodeToString(b[:]), nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("bridge: %w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Answered is what Ask returns: the result and who answered it.
type Answered struct {
	Result Result
	// Editor is the presence of the editor that answered.
	Editor Presence
	// Duration is the round trip.
	Duration time.Duration
}
