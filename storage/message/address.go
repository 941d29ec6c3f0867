package message

import (
	"context"
	"fmt"
	"strings"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/tenant"
)

// Address reads an address as people type it: "all", "cohort:NAME",
// "user:NAME" (a person: a user id of the scope's tenant, or the display
// name of exactly one of its users), an agent id (ag_…) or the name of
// exactly one active agent of the scope's tenant. An unknown agent name is
// agent.ErrNotFound, an unknown person ErrNoUser; a name several agents or
// users share is ErrInvalid, naming their ids.
func Address(ctx context.Context, sc *tenant.Scope, s string) (To, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return To{}, invalid("to is required: an agent id or name, cohort:NAME, user:NAME or all")
	case strings.EqualFold(s, "all"):
		return To{All: true}, nil
	case strings.HasPrefix(s, "cohort:"):
		name := strings.TrimPrefix(s, "cohort:")
		if name == "" {
			return To{}, invalid("to %q names no cohort: send cohort:NAME", s)
		}
		return To{Cohort: name}, nil
	case strings.HasPrefix(s, userPrefix):
		return person(ctx, sc, strings.TrimSpace(strings.TrimPrefix(s, userPrefix)))
	case strings.HasPrefix(s, "ag_"):
		return To{Agent: s}, nil
	}
	list, err := agent.List(ctx, sc, agent.Filter{Active: true})
	if err != nil {
		return To{}, err
	}
	var ids []string
	for _, a := range list {
		if strings.EqualFold(a.Name, s) {
			ids = append(ids, a.ID)
		}
	}
	switch len(ids) {
	case 1:
		return To{Agent: ids[0]}, nil
	case 0:
		return To{}, fmt.Errorf("message: %w: no active agent is named %q (a person is user:NAME)", agent.ErrNotFound, textclip.Clip(s, 80))
	}
	return To{}, invalid("%d agents are named %q (%s): send one of their ids", len(ids), textclip.Clip(s, 80), strings.Join(ids, ", "))
}
