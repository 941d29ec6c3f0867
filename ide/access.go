package ide

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.lsp.dev/protocol"

	"github.com/coditect/coditect/storage/tenant"
)

// A connection acts for one principal for its whole life, so it
// re-validates its scope (tenant.Scope.Check: the token revoked, expired
// or gone, the user or the tenant disabled) at most every Options.Recheck,
// as stdio MCP does: before every message that reads or writes the
// tenant's data (all but shutdown, exit, initialized and the ignored
// notifications), before delivering a live event or refreshing the
// unsaved-edit marks, and on a ticker while the editor is idle. Once the
// scope is refused, requests fail with RequestFailed saying why,
// notifications are dropped, no event is delivered, and the client gets
// one window/showMessage error; a later check that passes (the user or
// tenant enabled again) restores the connection.

// DefaultRecheck is how often a connection re-validates its scope when
// Options.Recheck is zero (tenant.RecheckInterval, as for `coditect mcp`).
const DefaultRecheck = tenant.RecheckInterval

// unguarded are the messages served without re-validating the scope: the
// lifecycle's end and notifications that touch no data.
var unguarded = map[string]bool{
	"shutdown":                         true,
	"exit":                             true,
	"initialized":                      true,
	"$/setTrace":                       true,
	"workspace/didChangeConfiguration": true,
	"workspace/didChangeWatchedFiles":  true,
}

// access is a scope's last verdict and when it was reached.
type access struct {
	sc    *tenant.Scope
	every time.Duration

	mu      sync.Mutex
	at      time.Time // when the verdict was reached; zero: never checked
	refused error     // the verdict: nil when the scope passed
}

// check returns the scope's verdict, re-validating it when the last one is
// older than every. changed reports a verdict that differs from the one
// before. A failure to check (the store unavailable, ctx done) is returned
// but not remembered.
func (a *access) check(ctx context.Context) (changed bool, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.at.IsZero() && time.Since(a.at) < a.every {
		return false, a.refused
	}
	err = a.sc.Check(ctx)
	if err != nil && !tenant.Refused(err) {
		return false, err
	}
	changed = (err == nil) != (a.refused == nil)
	a.at, a.refused = time.Now(), err
	return changed, err
}

// authorize re-validates the connection's scope when due. It returns the
// refusal as the error requests answer with, and tells the client once
// when the verdict changes.
func (s *server) authorize(ctx context.Context) error {
	changed, err := s.access.check(ctx)
	switch {
	case err == nil:
		if changed {
			s.log.Info("access restored: the scope passes its check again")
			s.notify("window/showMessage", protocol.ShowMessageParams{Type: protocol.MessageTypeInfo,
				Message: "Coditect: this editor's access is restored."})
		}
		return nil
	case !tenant.Refused(err):
		return err
	}
	reason := strings.TrimPrefix(err.Error(), "tenant: ")
	if changed {
		s.log.Warn("access refused: the connection no longer reads or writes the tenant's data", "error", err)
		s.notify("window/showMessage", protocol.ShowMessageParams{Type: protocol.MessageTypeError,
			Message: fmt.Sprintf("Coditect refuses this editor's identity (%s): nothing is recorded or shown until an administrator restores access; with a new token, restart the Coditect extension.", reason)})
	}
	return &rpcError{code: codeRequestFailed, msg: fmt.Sprintf("access refused: %s", reason)}
}

// refusal reports whether err is authorize's refusal (its only
// *rpcError), not a failure to check.
func refusal(err error) bool {
	var re *rpcError
	return errors.As(err, &re)
}

// guard authorizes method unless it is unguarded.
func (s *server) guard(ctx context.Context, method string) error {
	if unguarded[method] {
		return nil
	}
	return s.authorize(ctx)
}

// watchAccess re-validates the scope every s.access.every until ctx is
// done, so that an idle editor hears of a refusal within that time.
func (s *server) watchAccess(ctx context.Context) {
	t := time.NewTicker(s.access.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.authorize(ctx); err != nil && !refusal(err) && ctx.Err() == nil {
				s.log.Warn("re-validating the connection's scope", "error", err)
			}
		}
	}
}
