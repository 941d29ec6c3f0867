package ide

import (
	"context"
	"encoding/json"
	"fmt"

	"go.lsp.dev/protocol"
)

// Code lens: one lens at the top of a file saying who last changed it;
// it runs coditect.file.history.

func (s *server) codeLens(ctx context.Context, params json.RawMessage) (any, error) {
	var p documentPosition
	if err := decode(params, &p); err != nil {
		return nil, err
	}
	path, err := uriPath(p.TextDocument.URI)
	if err != nil {
		return []any{}, nil
	}
	f, tracked, err := s.place(ctx, path)
	if err != nil {
		return nil, err
	}
	if !tracked {
		return []protocol.CodeLens{{Range: protocol.Range{}, Command: &protocol.Command{Title: "Coditect: not in a project, not tracked"}}}, nil
	}
	ev, ok, err := s.lastChange(ctx, f)
	if err != nil {
		return nil, err
	}
	title := "Coditect: no recorded changes"
	if ok {
		title = fmt.Sprintf("Coditect: last changed by %s, %s", s.describe(ctx, ev).plain(), ago(ev.Time))
	}
	args, _ := json.Marshal(map[string]string{"uri": p.TextDocument.URI})
	return []protocol.CodeLens{{
		Range:   protocol.Range{},
		Command: &protocol.Command{Title: title, Command: cmdFileHistory, Arguments: []any{json.RawMessage(args)}},
	}}, nil
}
