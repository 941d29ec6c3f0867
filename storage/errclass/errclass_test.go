package errclass_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/coditect/coditect/storage/errclass"
)

func TestNewMatchesSentinelAndClass(t *testing.T) {
	errA := errclass.New(errclass.Conflict, "a")
	errB := errclass.New(errclass.Conflict, "a")
	wrapped := fmt.Errorf("layer: %w: detail", errA)
	if !errors.Is(wrapped, errA) || errors.Is(wrapped, errB) {
		t.Fatal("a sentinel must match itself only")
	}
	if !errors.Is(wrapped, errclass.Conflict) || errors.Is(wrapped, errclass.Invalid) {
		t.Fatal("a sentinel must match its class only")
	}
	if got := errclass.Of(wrapped); got != errclass.Conflict {
		t.Fatalf("Of = %v", got)
	}
	if wrapped.Error() != "layer: a: detail" {
		t.Fatalf("message changed: %q", wrapped)
	}
	if errclass.Of(errors.New("plain")) != nil || errclass.Of(nil) != nil {
		t.Fatal("unclassed errors have no class")
	}
}
