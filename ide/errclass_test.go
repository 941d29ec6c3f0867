package ide_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/coditect/coditect/ide"
	"github.com/coditect/coditect/storage/session"
)

// A layer error reaches the editor as RequestFailed with its class in the
// error's data: ending a session that another surface ended meanwhile is
// a conflict.
func TestLayerErrorCarriesItsClass(t *testing.T) {
	sc := scope(t)
	c := start(t, sc, ide.Options{})
	c.initialize(nil)
	var se struct{ ID string }
	c.mustCall("workspace/executeCommand", map[string]any{"command": "coditect.session.start"}, &se)
	if _, err := session.End(context.Background(), sc, se.ID, session.Outcome{Status: session.Completed}); err != nil {
		t.Fatal(err)
	}
	err := c.call("workspace/executeCommand", map[string]any{"command": "coditect.session.end"}, nil)
	var e *jsonrpc2.Error
	if !errors.As(err, &e) || e.Code != -32803 || e.Data == nil {
		t.Fatalf("ending an ended session: %v, want RequestFailed with data", err)
	}
	var data struct{ Class string }
	if err := json.Unmarshal(*e.Data, &data); err != nil || data.Class != "conflict" {
		t.Fatalf("data %s, want class conflict", *e.Data)
	}
}
