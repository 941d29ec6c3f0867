// Package txhook owns Hook, the one shape in which a storage layer lets
// its caller add reads and writes of its own to the single transaction of
// a mutation (message.SendWith, lease.AcquireWith, task.ClaimWith...).
// The tools use it so that a call's change, its tool.called record and the
// result kept under its idempotency key commit together: Before claims the
// key, After appends the record and keeps the result.
//
// It imports storage/kv and storage/audit only.
package txhook

import (
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
)

// Hook adds a caller's reads and writes to the one transaction of a
// layer's mutation. P is what the layer hands After: the change as it made
// it (a pending message, a lease, a task). The zero Hook adds nothing.
type Hook[P any] struct {
	// Before runs first in the transaction, before the layer reads or
	// writes anything; an error ends the transaction, the layer changes
	// nothing and returns that error as it is.
	Before func(tx kv.Tx) error
	// After runs once the layer has made its change and appended its
	// events, with the audit Writer that appended them and what the change
	// made. After appends its own events with that Writer, never with one
	// of its own (the events of one transaction are numbered by their
	// Writer); the layer finishes the Writer after After. An error ends
	// the transaction and nothing is changed.
	After func(tx kv.Tx, aw *audit.Writer, p P) error
	// Guarded says that Before makes a retry of the transaction (after a
	// commit whose outcome was unknown) write nothing, so that a layer
	// that marks its mutation against such a retry (message.SendWith) may
	// leave its marker out. Layers that keep no marker ignore it.
	Guarded bool
}

// RunBefore runs h.Before, if any, in tx.
func (h Hook[P]) RunBefore(tx kv.Tx) error {
	if h.Before == nil {
		return nil
	}
	return h.Before(tx)
}

// RunAfter runs h.After, if any, in tx.
func (h Hook[P]) RunAfter(tx kv.Tx, aw *audit.Writer, p P) error {
	if h.After == nil {
		return nil
	}
	return h.After(tx, aw, p)
}
