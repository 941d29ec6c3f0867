package tools

import (
	"fmt"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/tenant"
)

// Coord is the coordination toolset: who else is working, joining their
// sessions, leases on files and tasks, messages between agents, and the
// task board. Every tool acts as the caller's agent; a caller that acts as
// no agent (a viewer's token bound to none) can only list. The tools are
// in coord_agents.go (agents, session joining), coord_leases.go,
// coord_messages.go and coord_tasks.go.
func Coord() Toolset {
	return Toolset{
		Name:    "coord",
		Summary: "other agents, session joining, leases, messages and the task board",
		Tools: []*Tool{
			agentsListTool(), agentUpdateTool(), sessionJoinTool(),
			leaseAcquireTool(), leaseRenewTool(), leaseReleaseTool(),
			messageSendTool(), inboxTool(),
			taskCreateTool(), taskListTool(), taskClaimTool(), taskNextTool(), taskUpdateTool(),
		},
	}
}

// maxIDArg bounds an id argument (agent, task, cursor): the keyspace's
// limit on ids, which agent.MaxCohort also is.
const maxIDArg = agent.MaxCohort

// errNoAgent: the caller acts as no agent, so it holds no leases and has
// no inbox.
var errNoAgent error = &toolError{err: tenant.ErrForbidden,
	msg: "you act as no agent (a viewer's token, or the agent could not be registered), so you hold no leases and have no inbox"}

// me returns the id of the agent the caller acts as.
func (c *Call) me() (string, error) {
	if id := c.Scope.Principal().Agent; id != "" {
		return id, nil
	}
	return "", errNoAgent
}

// actsAsWriter refuses a caller that may not change the tenant's data
// (a viewer) or that acts as no agent: what every coordination tool that
// changes something checks first.
func (c *Call) actsAsWriter() error {
	if err := c.Scope.CanWrite(); err != nil {
		return err
	}
	_, err := c.me()
	return err
}

// since renders how long ago t was, for a model.
func since(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

// until renders an expiry, for a model: the time and how far off it is.
func until(now, t time.Time) string {
	d := t.Sub(now).Round(time.Second)
	if d <= 0 {
		return t.Format(time.RFC3339) + " (expired)"
	}
	return fmt.Sprintf("%s (in %s)", t.Format(time.RFC3339), d)
}
