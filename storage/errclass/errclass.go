// Package errclass owns the few classes every layer error belongs to
// (invalid, not found, conflict, forbidden, unavailable) so that each
// surface (MCP tools, REST, the IDE protocol) translates errors in one
// place, by class, instead of listing every layer's sentinels.
//
// A layer declares its sentinels with New; errors.Is matches both the
// sentinel itself and its class, through any wrapping:
//
//	ErrConflict = errclass.New(errclass.Conflict, "lease conflict")
//	errors.Is(fmt.Errorf("lease: %w", ErrConflict), errclass.Conflict) // true
//
// It imports nothing of Coditect, so the lowest layer (storage/kv) can use it.
package errclass

import "errors"

// Class is one of the error classes. Classes are compared by identity and
// are errors themselves, so that errors.Is(err, Conflict) reads naturally.
type Class struct{ name string }

func (c *Class) Error() string { return c.name }

// Name is the class's stable name for wire formats ("not_found").
func (c *Class) Name() string { return c.name }

// The classes.
var (
	// Invalid: an argument is missing, malformed or too large; sending
	// the same request again fails again.
	Invalid = &Class{"invalid"}
	// NotFound: the thing named does not exist in the caller's tenant
	// (another tenant's things are not found either).
	NotFound = &Class{"not_found"}
	// Conflict: the world moved on (a lease held by another, a stale
	// version or fencing token, an illegal transition, a name taken).
	Conflict = &Class{"conflict"}
	// Forbidden: the caller's role, token or confinement does not allow it.
	Forbidden = &Class{"forbidden"}
	// Unavailable: the store could not be reached or is locked; nothing
	// was applied and retrying later may succeed.
	Unavailable = &Class{"unavailable"}
)

// All lists the classes, in the order Of tries them.
var All = []*Class{Invalid, NotFound, Conflict, Forbidden, Unavailable}

// classed is a sentinel of a class.
type classed struct {
	class *Class
	msg   string
}

func (e *classed) Error() string { return e.msg }

func (e *classed) Is(target error) bool { return target == e.class }

// New returns a sentinel error with message msg in class c. Each call
// returns a distinct error, as errors.New does.
func New(c *Class, msg string) error { return &classed{class: c, msg: msg} }

// Of returns the class of err, or nil when err (or anything it wraps)
// belongs to none. An error joining several classes reports the first
// in All's order.
func Of(err error) *Class {
	if err == nil {
		return nil
	}
	for _, c := range All {
		if errors.Is(err, c) {
			return c
		}
	}
	return nil
}
