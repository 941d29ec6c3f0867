package errclass_test

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/bridge"
	"github.com/coditect/coditect/storage/errclass"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/review"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/task"
	"github.com/coditect/coditect/storage/tenant"
)

// layers are the storage layers whose every exported Err* must carry a
// class; the table below must name each of them.
var layers = []string{"session", "lease", "task", "message", "agent", "attrib", "project", "tenant", "audit", "review", "bridge"}

var table = map[string]struct {
	err   error
	class *errclass.Class
}{
	"session.ErrInvalid":        {session.ErrInvalid, errclass.Invalid},
	"session.ErrBadCursor":      {session.ErrBadCursor, errclass.Invalid},
	"session.ErrNotFound":       {session.ErrNotFound, errclass.NotFound},
	"session.ErrNotOpen":        {session.ErrNotOpen, errclass.Conflict},
	"session.ErrFull":           {session.ErrFull, errclass.Conflict},
	"lease.ErrInvalid":          {lease.ErrInvalid, errclass.Invalid},
	"lease.ErrConflict":         {lease.ErrConflict, errclass.Conflict},
	"lease.ErrNotHeld":          {lease.ErrNotHeld, errclass.NotFound},
	"lease.ErrFenced":           {lease.ErrFenced, errclass.Conflict},
	"lease.ErrGone":             {lease.ErrGone, errclass.Conflict},
	"lease.ErrTooManyHolders":   {lease.ErrTooManyHolders, errclass.Conflict},
	"task.ErrInvalid":           {task.ErrInvalid, errclass.Invalid},
	"task.ErrNotFound":          {task.ErrNotFound, errclass.NotFound},
	"task.ErrVersion":           {task.ErrVersion, errclass.Conflict},
	"task.ErrTransition":        {task.ErrTransition, errclass.Conflict},
	"message.ErrInvalid":        {message.ErrInvalid, errclass.Invalid},
	"message.ErrNotFound":       {message.ErrNotFound, errclass.NotFound},
	"message.ErrNoUser":         {message.ErrNoUser, errclass.NotFound},
	"agent.ErrInvalid":          {agent.ErrInvalid, errclass.Invalid},
	"agent.ErrNotFound":         {agent.ErrNotFound, errclass.NotFound},
	"attrib.ErrInvalid":         {attrib.ErrInvalid, errclass.Invalid},
	"attrib.ErrUnsavedEdits":    {attrib.ErrUnsavedEdits, errclass.Conflict},
	"project.ErrInvalid":        {project.ErrInvalid, errclass.Invalid},
	"project.ErrNotFound":       {project.ErrNotFound, errclass.NotFound},
	"project.ErrExists":         {project.ErrExists, errclass.Conflict},
	"project.ErrOverlap":        {project.ErrOverlap, errclass.Conflict},
	"project.ErrOutside":        {project.ErrOutside, errclass.Forbidden},
	"review.ErrInvalid":         {review.ErrInvalid, errclass.Invalid},
	"review.ErrNotFound":        {review.ErrNotFound, errclass.NotFound},
	"review.ErrDecided":         {review.ErrDecided, errclass.Conflict},
	"review.ErrStale":           {review.ErrStale, errclass.Conflict},
	"review.ErrPending":         {review.ErrPending, errclass.Conflict},
	"review.ErrNoRoot":          {review.ErrNoRoot, errclass.NotFound},
	"tenant.ErrInvalid":         {tenant.ErrInvalid, errclass.Invalid},
	"tenant.ErrNotFound":        {tenant.ErrNotFound, errclass.NotFound},
	"tenant.ErrExists":          {tenant.ErrExists, errclass.Conflict},
	"tenant.ErrUnauthenticated": {tenant.ErrUnauthenticated, errclass.Forbidden},
	"tenant.ErrTokenRevoked":    {tenant.ErrTokenRevoked, errclass.Forbidden},
	"tenant.ErrTokenExpired":    {tenant.ErrTokenExpired, errclass.Forbidden},
	"tenant.ErrTenantDisabled":  {tenant.ErrTenantDisabled, errclass.Forbidden},
	"tenant.ErrUserDisabled":    {tenant.ErrUserDisabled, errclass.Forbidden},
	"tenant.ErrForbidden":       {tenant.ErrForbidden, errclass.Forbidden},
	"tenant.ErrRateLimited":     {tenant.ErrRateLimited, errclass.Unavailable},
	"audit.ErrInvalidEvent":     {audit.ErrInvalidEvent, errclass.Invalid},
	"audit.ErrUnknownKind":      {audit.ErrUnknownKind, errclass.Invalid},
	"audit.ErrBadCursor":        {audit.ErrBadCursor, errclass.Invalid},
	"audit.ErrNotFound":         {audit.ErrNotFound, errclass.NotFound},
	"bridge.ErrInvalid":         {bridge.ErrInvalid, errclass.Invalid},
	"bridge.ErrNoEditor":        {bridge.ErrNoEditor, errclass.Unavailable},
	"bridge.ErrNotShared":       {bridge.ErrNotShared, errclass.Forbidden},
	"bridge.ErrUnsupported":     {bridge.ErrUnsupported, errclass.Unavailable},
	"bridge.ErrTimeout":         {bridge.ErrTimeout, errclass.Unavailable},
	"bridge.ErrEditor":          {bridge.ErrEditor, errclass.Unavailable},
	"bridge.ErrWithdrawn":       {bridge.ErrWithdrawn, errclass.Unavailable},
	// The store's errors a surface meets.
	"kv.ErrUnavailable":   {kv.ErrUnavailable, errclass.Unavailable},
	"kv.ErrClosed":        {kv.ErrClosed, errclass.Unavailable},
	"kv.ErrKeyTooLarge":   {kv.ErrKeyTooLarge, errclass.Invalid},
	"kv.ErrValueTooLarge": {kv.ErrValueTooLarge, errclass.Invalid},
}

// TestLayerErrorsClassify: every layer sentinel, wrapped as layers wrap
// them, has exactly its class, and keeps its identity and message.
func TestLayerErrorsClassify(t *testing.T) {
	for name, c := range table {
		wrapped := fmt.Errorf("layer: %w: detail", c.err)
		if got := errclass.Of(wrapped); got != c.class {
			t.Errorf("%s: class %v, want %v", name, got, c.class)
		}
		if !errors.Is(wrapped, c.err) {
			t.Errorf("%s: lost its identity", name)
		}
		for _, other := range errclass.All {
			if other != c.class && errors.Is(wrapped, other) {
				t.Errorf("%s: also matches %v", name, other)
			}
		}
	}
	// The layers' error types with detail match their sentinel's class.
	for name, c := range map[string]struct {
		err   error
		class *errclass.Class
	}{
		"lease.ConflictError":      {&lease.ConflictError{}, errclass.Conflict},
		"lease.FenceError":         {&lease.FenceError{}, errclass.Conflict},
		"task.VersionError":        {&task.VersionError{}, errclass.Conflict},
		"task.TransitionError":     {&task.TransitionError{}, errclass.Conflict},
		"task.ForbiddenError":      {&task.ForbiddenError{}, errclass.Forbidden},
		"attrib.UnsavedEditsError": {&attrib.UnsavedEditsError{}, errclass.Conflict},
	} {
		if got := errclass.Of(fmt.Errorf("wrapped: %w", c.err)); got != c.class {
			t.Errorf("%s: class %v, want %v", name, got, c.class)
		}
	}
	// kv.LimitError unwraps to its sentinel, hence its class.
	if errclass.Of(kv.CheckKey("set", make([]byte, kv.MaxKeySize+1))) != errclass.Invalid {
		t.Error("a key too large is not invalid")
	}
}

// TestEveryLayerErrorInTable: the table names every exported Err* variable
// of every layer, so a new sentinel cannot be added without a class.
func TestEveryLayerErrorInTable(t *testing.T) {
	for _, pkg := range layers {
		dir := filepath.Join("..", pkg)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		fset := token.NewFileSet()
		found := 0
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range f.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok || g.Tok != token.VAR {
					continue
				}
				for _, spec := range g.Specs {
					for _, n := range spec.(*ast.ValueSpec).Names {
						if strings.HasPrefix(n.Name, "Err") && n.IsExported() {
							found++
							if _, ok := table[pkg+"."+n.Name]; !ok {
								t.Errorf("%s.%s has no row in the class table", pkg, n.Name)
							}
						}
					}
				}
			}
		}
		if found == 0 {
			t.Errorf("%s: no Err* variables found; is the layer list stale?", pkg)
		}
	}
}
