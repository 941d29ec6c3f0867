package tools

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/tenant"
)

// ArgError is a wrong, missing or oversized argument. Its message says
// what to send instead. Nothing is written when a handler returns one.
type ArgError struct{ msg string }

func (e *ArgError) Error() string { return e.msg }

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

// Classify returns the outcome of a call that returned err.
func Classify(err error) Outcome {
	var ae *ArgError
	switch {
	case err == nil:
		return OutcomeOK
	case errors.As(err, &ae),
		errors.Is(err, session.ErrInvalid), errors.Is(err, session.ErrBadCursor),
		errors.Is(err, audit.ErrInvalidEvent), errors.Is(err, audit.ErrUnknownKind), errors.Is(err, audit.ErrBadCursor),
		errors.Is(err, agent.ErrInvalid), errors.Is(err, tenant.ErrInvalid):
		return OutcomeInvalid
	case errors.Is(err, tenant.ErrForbidden):
		return OutcomeForbidden
	case errors.Is(err, session.ErrNotFound), errors.Is(err, agent.ErrNotFound),
		errors.Is(err, audit.ErrNotFound), errors.Is(err, tenant.ErrNotFound):
		return OutcomeNotFound
	case errors.Is(err, session.ErrNotOpen), errors.Is(err, session.ErrFull):
		return OutcomeConflict
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return OutcomeCanceled
	}
	return OutcomeError
}

// errorText is the text of the tool error a model reads: the tool's name
// and the error's message, without the layer prefixes ("session: invalid
// session input: ") that mean nothing to a model.
func errorText(tool string, err error) string {
	msg := err.Error()
	var ae *ArgError
	if !errors.As(err, &ae) {
		for _, sentinel := range []error{
			session.ErrInvalid, audit.ErrInvalidEvent, agent.ErrInvalid, tenant.ErrInvalid,
		} {
			if errors.Is(err, sentinel) {
				if i := strings.Index(msg, sentinel.Error()+": "); i >= 0 {
					msg = msg[i+len(sentinel.Error())+2:]
				}
				break
			}
		}
	}
	for _, p := range []string{"session: ", "audit: ", "agent: ", "tenant: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	if Classify(err) == OutcomeError {
		return fmt.Sprintf("%s failed: %s. This is a server-side problem; retrying later may help.", tool, msg)
	}
	return fmt.Sprintf("%s: %s", tool, msg)
}
