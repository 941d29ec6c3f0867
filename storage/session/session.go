// Package session owns work sessions: the handles agents and humans open
// when they start on a piece of work (title, workspace root, purpose,
// cohort), join, and end with an outcome, and that the sweeper marks
// abandoned when they fall silent. A session's history is the audit log's
// session index: the summary (duration, events by kind, files touched,
// agents involved) and the sweeper's "last activity" are derived from it,
// never from counters kept beside it.
//
// Every function takes a *tenant.Scope, the only tenant-bound handle; no
// function takes a tenant id. Every mutation is one transaction that writes
// the session record, its secondary indexes and its audit event
// (session.started, session.joined, session.ended, session.abandoned)
// together; bad input and viewers are refused before anything is written.
//
// Work sessions are Coditect's own handles, never the MCP transport
// session (ARCHITECTURE.md §5).
//
// This package imports storage/kv, storage/keyspace, storage/audit and
// storage/tenant; it must not import a backend, a transport or another
// domain layer.
package session

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/errclass"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
)

// State is where a session is in its life: open until it is ended, or
// abandoned by the sweeper when it sees no activity. An abandoned session
// may still be ended (recording its outcome); an ended one is final.
type State string

// States.
const (
	Open      State = "open"
	Ended     State = "ended"
	Abandoned State = "abandoned"
)

// ParseState checks a state name.
func ParseState(s string) (State, error) {
	switch st := State(s); st {
	case Open, Ended, Abandoned:
		return st, nil
	}
	return "", fmt.Errorf("session: %w: state %q: want open, ended or abandoned", ErrInvalid, s)
}

// Status is how a session ended.
type Status string

// Statuses.
const (
	Completed Status = "completed"
	Failed    Status = "failed"
	Cancelled Status = "cancelled"
)

// ParseStatus checks a status name.
func ParseStatus(s string) (Status, error) {
	switch st := Status(s); st {
	case Completed, Failed, Cancelled:
		return st, nil
	}
	return "", fmt.Errorf("session: %w: status %q: want completed, failed or cancelled", ErrInvalid, s)
}

// Spec describes a new session. It names its project, its workspace, or
// both (see Start).
type Spec struct {
	// Title says what the work is, on one line (required).
	Title string
	// Project is the name or id of the session's project.
	Project string
	// Workspace is the absolute path, on the machine Coditect runs on, of
	// the directory the session works in: a project's root or a directory
	// inside one, e.g. /home/alice/project or file:///home/alice/project.
	// It is stored canonical (symbolic links and ".." resolved).
	Workspace string
	// Purpose says why, in a few sentences (optional).
	Purpose string
	// Cohort names the group of agents working together (optional).
	Cohort string
	// Bound makes the session the handle of the agent that starts it (see
	// Session.Bound).
	Bound bool
}

// Outcome is how a session ended.
type Outcome struct {
	Status  Status `json:"status"`
	Summary string `json:"summary,omitempty"`
}

// Participant is a human, or an agent acting for one, who started or joined
// a session.
type Participant struct {
	User   string    `json:"user"`
	Agent  string    `json:"agent,omitempty"`
	Joined time.Time `json:"joined"`
}

// Session is a work session's record.
type Session struct {
	// ID is time-sortable: sessions started later have greater ids.
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	Title  string `json:"title"`
	// Project is the id of the session's project and Dir the workspace's
	// directory relative to the project root ("." for the root): the same
	// on every machine.
	Project string `json:"project,omitempty"`
	Dir     string `json:"dir,omitempty"`
	// Workspace is the workspace's absolute path on the machine the
	// session was started on.
	Workspace string `json:"workspace"`
	Purpose   string `json:"purpose,omitempty"`
	Cohort    string `json:"cohort,omitempty"`
	State     State  `json:"state"`
	// User and Agent started the session; they are also the first
	// participant.
	User  string `json:"user"`
	Agent string `json:"agent,omitempty"`
	// Bound is set when the session was started as the handle of its
	// Agent (a host speaking for several models names the agent when it
	// starts the session): a call of the same user through the same client
	// that passes the session's id acts as that agent.
	Bound   bool      `json:"bound,omitempty"`
	Started time.Time `json:"started"`
	// Ended, EndedBy and Outcome are set when the session ends.
	Ended        time.Time `json:"ended,omitzero"`
	EndedBy      string    `json:"ended_by,omitempty"`
	EndedByAgent string    `json:"ended_by_agent,omitempty"`
	Outcome      *Outcome  `json:"outcome,omitempty"`
	// Abandoned is when the sweeper gave up on the session; LastActivity
	// is the time of its newest audit event then.
	Abandoned    time.Time     `json:"abandoned,omitzero"`
	LastActivity time.Time     `json:"last_activity,omitzero"`
	Participants []Participant `json:"participants"`
}

// participant returns the index of (user, agent) among the participants,
// -1 when absent.
func (s *Session) participant(user, agent string) int {
	for i, p := range s.Participants {
		if p.User == user && p.Agent == agent {
			return i
		}
	}
	return -1
}

// Limits on input, each well under the store's limits: a session record
// with every field at its limit stays under kv.MaxValueSize.
const (
	MaxTitle          = 200
	MaxPurpose        = 2000
	MaxOutcomeSummary = audit.MaxSummary
	MaxWorkspace      = keyspace.MaxResourceSize
	MaxCohort         = keyspace.MaxIDSize
	// MaxParticipants is how many (user, agent) pairs may join one session.
	MaxParticipants = 100
)

// Errors. Each is wrapped with detail that says what to send instead; match
// with errors.Is. A viewer's mutation fails with tenant.ErrForbidden.
var (
	// ErrInvalid: a field is missing, malformed or too long.
	ErrInvalid = errclass.New(errclass.Invalid, "invalid session input")
	// ErrNotFound: no session with that id in the scope's tenant.
	ErrNotFound = errclass.New(errclass.NotFound, "session not found")
	// ErrNotOpen: the session has ended (or, for Join, was abandoned).
	ErrNotOpen = errclass.New(errclass.Conflict, "session not open")
	// ErrFull: the session has MaxParticipants participants.
	ErrFull = errclass.New(errclass.Conflict, "session full")
	// ErrBadCursor: a cursor that List did not hand out.
	ErrBadCursor = errclass.New(errclass.Invalid, "malformed session cursor")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("session: %w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// checkText validates a free-text field: valid UTF-8, at most limit bytes,
// and, when oneLine, no control characters at all (else only tabs and
// newlines).
func checkText(name, s string, limit int, oneLine bool) error {
	if len(s) > limit {
		return invalid("%s of %d bytes exceeds the limit of %d bytes: shorten it", name, len(s), limit)
	}
	if !utf8.ValidString(s) {
		return invalid("%s is not valid UTF-8", name)
	}
	for _, r := range s {
		if unicode.IsControl(r) && (oneLine || (r != '\n' && r != '\t' && r != '\r')) {
			if oneLine {
				return invalid("%s must be one line without control characters (found %U)", name, r)
			}
			return invalid("%s contains the control character %U", name, r)
		}
	}
	return nil
}

// validate checks a Spec and returns it cleaned.
func (in Spec) validate() (Spec, error) {
	in.Title = strings.TrimSpace(in.Title)
	if in.Title == "" {
		return in, invalid("title is required: say in one line what the session is for, e.g. \"fix the login redirect\"")
	}
	if err := checkText("title", in.Title, MaxTitle, true); err != nil {
		return in, err
	}
	if in.Workspace != "" {
		ws, err := Workspace(in.Workspace)
		if err != nil {
			return in, err
		}
		in.Workspace = ws
	} else if in.Project == "" {
		return in, invalid("a project or a workspace is required: send the project's name, or the absolute path of the directory you work in, e.g. /home/alice/project")
	}
	if err := checkText("project", in.Project, keyspace.MaxIDSize, true); err != nil {
		return in, err
	}
	if err := checkText("purpose", in.Purpose, MaxPurpose, false); err != nil {
		return in, err
	}
	if err := checkText("cohort", in.Cohort, MaxCohort, true); err != nil {
		return in, err
	}
	return in, nil
}

// validate checks an Outcome.
func (o Outcome) validate() error {
	if o.Status == "" {
		return invalid("status is required: completed, failed or cancelled")
	}
	if _, err := ParseStatus(string(o.Status)); err != nil {
		return err
	}
	return checkText("summary", o.Summary, MaxOutcomeSummary, false)
}

// Workspace validates a workspace root and returns it in the form sessions
// store and filter by: a file:// URI becomes its path; a POSIX path is
// cleaned (no trailing slash, no "." or ".." elements); a Windows path
// (C:\dir or \\server\share) keeps its form with backslashes, an upper-case
// drive letter and no trailing separator. Relative paths are refused: the
// server cannot know the caller's working directory.
func Workspace(ws string) (string, error) {
	if ws == "" {
		return "", invalid("workspace is required: send the absolute path of the workspace root, e.g. /home/alice/project or C:\\src\\project")
	}
	if err := checkText("workspace", ws, MaxWorkspace, true); err != nil {
		return "", err
	}
	if strings.HasPrefix(strings.ToLower(ws), "file:") {
		u, err := url.Parse(ws)
		if err != nil || (u.Host != "" && u.Host != "localhost") || u.Path == "" {
			return "", invalid("workspace %q is not a local file URI: send file:///abs/path or the path itself", textclip.Clip(ws, 200))
		}
		ws = u.Path
		if isDrivePath(strings.TrimPrefix(ws, "/")) {
			ws = strings.TrimPrefix(ws, "/") // file:///C:/src -> C:/src
		}
	}
	switch {
	case strings.HasPrefix(ws, "/"):
		return path.Clean(ws), nil
	case isDrivePath(ws):
		w := strings.ReplaceAll(ws, "/", `\`)
		w = strings.ToUpper(w[:1]) + w[1:]
		for len(w) > 3 && strings.HasSuffix(w, `\`) {
			w = w[:len(w)-1]
		}
		return w, nil
	case strings.HasPrefix(ws, `\\`) && len(strings.TrimLeft(ws, `\`)) > 0:
		w := strings.ReplaceAll(ws, "/", `\`)
		return strings.TrimRight(w, `\`), nil
	}
	return "", invalid("workspace %q is not an absolute path: send the workspace root, e.g. /home/alice/project or C:\\src\\project", textclip.Clip(ws, 200))
}

// isDrivePath reports whether p starts with a Windows drive and separator.
func isDrivePath(p string) bool {
	return len(p) >= 3 && (p[0]|0x20) >= 'a' && (p[0]|0x20) <= 'z' && p[1] == ':' && (p[2] == '\\' || p[2] == '/')
}

// load reads a session record in tx; ErrNotFound when the scope's tenant
// has no session id (whether or not another tenant has one).
func load(tx kv.ReadTx, sc *tenant.Scope, id string) (Session, []byte, error) {
	key, err := sc.Space().Session(id)
	if err != nil {
		return Session{}, nil, invalid("session id: %v", err)
	}
	b, err := tx.Get(key)
	if err != nil {
		return Session{}, key, err
	}
	if b == nil {
		return Session{}, key, fmt.Errorf("session: %w: no session %s in tenant %q: list sessions to find its id", ErrNotFound, id, sc.Tenant())
	}
	s, err := decode(b)
	if err != nil {
		return s, key, fmt.Errorf("session: record %s is corrupt: %w", id, err)
	}
	s.Tenant = sc.Tenant()
	return s, key, nil
}

func decode(b []byte) (Session, error) {
	var s Session
	err := json.Unmarshal(b, &s)
	return s, err
}

func put(tx kv.Tx, key []byte, s Session) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := kv.CheckValue("session record", key, b); err != nil {
		return err
	}
	tx.Set(key, b)
	return nil
}

// indexEntry sets or clears one secondary index entry of a session.
func indexEntry(tx kv.Tx, sc *tenant.Scope, index, value, id string, set bool) error {
	key, err := sc.Space().SessionsByEntry(index, value, id)
	if err != nil {
		return invalid("%s index: %v", index, err)
	}
	if set {
		tx.Set(key, nil)
	} else {
		tx.Clear(key)
	}
	return nil
}
