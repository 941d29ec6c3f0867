package tools

import (
	"context"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/project"
)

// fresh returns the record Self holds when it is agent id's and younger
// than selfMaxAge.
func (s *Self) fresh(id string) (agent.Agent, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.a, s.a.ID == id && time.Since(s.at) < selfMaxAge
}

// whoamiRead reads what whoami shows in one read transaction: the tenant's
// projects and, when the caller acts as an agent whose record the process's
// Self does not hold fresh, that record (which then refreshes Self, as
// agentRecord does). A caller without an agent gets the zero Agent.
func (c *Call) whoamiRead(ctx context.Context) (agent.Agent, []project.Project, error) {
	id := c.Scope.Principal().Agent
	var a agent.Agent
	read := id != ""
	if read && c.Self != nil {
		if s, ok := c.Self.fresh(id); ok {
			a, read = s, false
		}
	}
	now := agent.Now(ctx)
	var ps []project.Project
	err := c.Scope.Store().View(ctx, func(tx kv.ReadTx) error {
		var err error
		if read {
			if a, err = agent.Read(tx, c.Scope, id, now); err != nil {
				return err
			}
		}
		ps, err = project.ListTx(tx, c.Scope)
		return err
	})
	if err != nil {
		return agent.Agent{}, nil, err
	}
	if read && c.Self != nil {
		c.Self.set(a)
	}
	return a, ps, nil
}
