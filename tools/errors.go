package tools

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/bridge"
	"github.com/coditect/coditect/storage/errclass"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/task"
	"github.com/coditect/coditect/storage/tenant"
)

// ArgError is a wrong, missing or oversized argument. Its message says
// what to send instead. Nothing is written when a handler returns one.
type ArgError struct{ msg string }

func (e *ArgError) Error() string { return e.msg }

// toolError is a layer's error told for a model: msg replaces the layer's
// wording (which names Go functions and packages) and err keeps the error
// for Classify.
type toolError struct {
	msg string
	err error
}

func (e *toolError) Error() string { return e.msg }
func (e *toolError) Unwrap() error { return e.err }

// Errors of the files toolset, matched with errors.Is.
var (
	// ErrOutsideWorkspace: a path that leaves the session's workspace root
	// (.., an absolute path, a symbolic link pointing out) or reaches one
	// of Coditect's own files (Config.Protected). Such attempts are
	// refused and audited with outcome forbidden.
	ErrOutsideWorkspace = errclass.New(errclass.Forbidden, "path outside the workspace")
	// ErrTooLarge: a file or content over the files toolset's size limit.
	ErrTooLarge = errclass.New(errclass.Invalid, "too large")
	// ErrNotFile: a directory, device or other non-regular file where a
	// file was expected (or a file where a directory was).
	ErrNotFile = errclass.New(errclass.Invalid, "not a regular file")
	// ErrNoMatch: fs_edit's search text occurs zero or several times.
	ErrNoMatch = errclass.New(errclass.Invalid, "search text does not occur exactly once")
	// ErrNotText: fs_edit on a file that is not UTF-8 text.
	ErrNotText = errclass.New(errclass.Invalid, "not UTF-8 text")
	// ErrExists: fs_move to a path where a file exists.
	ErrExists = errclass.New(errclass.Conflict, "a file exists there")
)

// Outcome classifies how a tool call ended, for the audit trail.
type Outcome string

// Outcomes.
const (
	OutcomeOK        Outcome = "ok"
	OutcomeInvalid   Outcome = "invalid_arguments"
	OutcomeForbidden Outcome = "forbidden"
	OutcomeNotFound  Outcome = "not_found"
	OutcomeConflict  Outcome = "conflict"
	OutcomeCanceled  Outcome = "canceled"
	OutcomeError     Outcome = "error"
)

// Classify returns the outcome of a call that returned err: the class of
// the layer error (errclass) decides, and the few errors of the standard
// library the files tools return.
func Classify(err error) Outcome {
	var ae *ArgError
	switch {
	case err == nil:
		return OutcomeOK
	case errors.As(err, &ae):
		return OutcomeInvalid
	case errors.Is(err, fs.ErrPermission):
		return OutcomeForbidden
	case errors.Is(err, fs.ErrNotExist):
		return OutcomeNotFound
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return OutcomeCanceled
	}
	switch errclass.Of(err) {
	case errclass.Invalid:
		return OutcomeInvalid
	case errclass.Forbidden:
		return OutcomeForbidden
	case errclass.NotFound:
		return OutcomeNotFound
	case errclass.Conflict:
		// A lease held by another agent, a stale fencing token, a task
		// that changed or may not make that move: the world moved on.
		return OutcomeConflict
	}
	// Unavailable and unclassed errors: nothing the caller did wrong.
	return OutcomeError
}

// errorText is the text of the tool error a model reads: the tool's name
// and the error's message, without the layer prefixes ("session: invalid
// session input: ") that mean nothing to a model.
func errorText(tool string, err error) string {
	msg := err.Error()
	var ae *ArgError
	var te *toolError
	if !errors.As(err, &ae) && !errors.As(err, &te) {
		for _, sentinel := range []error{
			session.ErrInvalid, audit.ErrInvalidEvent, agent.ErrInvalid, tenant.ErrInvalid,
			lease.ErrInvalid, message.ErrInvalid, task.ErrInvalid, attrib.ErrInvalid, project.ErrInvalid,
		} {
			if errors.Is(err, sentinel) {
				if i := strings.Index(msg, sentinel.Error()+": "); i >= 0 {
					msg = msg[i+len(sentinel.Error())+2:]
				}
				break
			}
		}
	}
	for _, p := range []string{"session: ", "audit: ", "agent: ", "tenant: ", "lease: ", "message: ", "task: ", "attrib: ", "project: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	if errors.Is(err, kv.ErrUnavailable) {
		// The store's path and SQLite's codes mean nothing to a model and
		// stay in the server's log.
		return fmt.Sprintf("%s failed: the store is locked by another process; nothing was changed. Retry in a few seconds.", tool)
	}
	if Classify(err) == OutcomeError && !errors.Is(err, bridge.ErrNoEditor) && !errors.Is(err, bridge.ErrUnsupported) {
		return fmt.Sprintf("%s failed: %s. This is a server-side problem; retrying later may help.", tool, msg)
	}
	return fmt.Sprintf("%s: %s", tool, msg)
}
