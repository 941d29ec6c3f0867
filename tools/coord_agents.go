package tools

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/session"
)

// --- agents ---

// agentOut is an agent as the tools show it.
type agentOut struct {
	AgentID      string    `json:"agent_id"`
	Name         string    `json:"name"`
	Client       string    `json:"client"`
	Model        string    `json:"model,omitempty"`
	User         string    `json:"user"`
	Capabilities []string  `json:"capabilities,omitempty"`
	Cohort       string    `json:"cohort,omitempty"`
	Liveness     string    `json:"liveness"`
	LastSeen     time.Time `json:"last_seen,omitzero"`
	Retired      bool      `json:"retired,omitempty"`
	You          bool      `json:"you,omitempty"`
}

const agentSchema = `{"type":"object","required":["agent_id","name","client","user","liveness"],"properties":{
	"agent_id":{"type":"string"},"name":{"type":"string"},"client":{"type":"string"},"model":{"type":"string"},
	"user":{"type":"string"},"capabilities":{"type":"array","items":{"type":"string"}},"cohort":{"type":"string"},
	"liveness":{"type":"string"},"last_seen":{"type":"string"},"retired":{"type":"boolean"},"you":{"type":"boolean"}}}`

func newAgentOut(a agent.Agent, me string) agentOut {
	return agentOut{AgentID: a.ID, Name: a.Name, Client: a.Client, Model: a.Model, User: a.User,
		Capabilities: a.Capabilities, Cohort: a.Cohort, Liveness: string(a.Liveness), LastSeen: a.LastSeen.UTC(),
		Retired: a.IsRetired(), You: a.ID == me}
}

func (a agentOut) line(now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s (%s", a.AgentID, a.Name, a.Client)
	if a.Model != "" {
		fmt.Fprintf(&b, ", %s", a.Model)
	}
	fmt.Fprintf(&b, ") for %s: %s, last seen %s", a.User, a.Liveness, since(now, a.LastSeen))
	if len(a.Capabilities) > 0 {
		fmt.Fprintf(&b, ", can %s", strings.Join(a.Capabilities, ", "))
	}
	if a.Cohort != "" {
		fmt.Fprintf(&b, ", cohort %s", a.Cohort)
	}
	if a.Retired {
		b.WriteString(", retired")
	}
	if a.You {
		b.WriteString(" [you]")
	}
	return b.String()
}

type agentsListArgs struct {
	Liveness string `json:"liveness"`
	Cohort   string `json:"cohort"`
	Retired  bool   `json:"retired"`
}

type agentsListOut struct {
	Agents []agentOut `json:"agents"`
	// Total counts the matching agents; Agents holds at most maxAgents.
	Total int `json:"total"`
}

// maxAgents bounds the agents one agents_list shows.
const maxAgents = 50

func agentsListTool() *Tool {
	return spec{
		name: "agents_list", title: "List agents",
		description: "List the agents of your team with their liveness (alive, stale, offline, gone), to know who to message or wait for.",
		hints:       readOnly,
		input: `{"type":"object","additionalProperties":false,"properties":{
			"liveness":{"type":"string","enum":["alive","stale","offline","gone"]},
			"cohort":{"type":"string","description":"Only this cohort"},
			"retired":{"type":"boolean","description":"Include retired agents"}}}`,
		output:  `{"type":"object","required":["agents","total"],"properties":{"agents":{"type":"array","items":` + agentSchema + `},"total":{"type":"integer"}}}`,
		example: `{"liveness":"alive"}`,
		handler: agentsList,
	}.tool()
}

// agentNames returns the names of the tenant's agents by id, in one read;
// empty when it fails (the ids still show).
func (c *Call) agentNames(ctx context.Context) map[string]string {
	names := map[string]string{}
	if list, err := agent.List(ctx, c.Scope, agent.Filter{}); err == nil {
		for _, ag := range list {
			names[ag.ID] = ag.Name
		}
	}
	return names
}

func livenessRank(l string) int {
	return slices.Index([]string{string(agent.Alive), string(agent.Stale), string(agent.Gone)}, l)
}

func agentsList(ctx context.Context, c *Call) (Result, error) {
	var a agentsListArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	f := agent.Filter{Active: !a.Retired}
	if a.Liveness != "" {
		if err := c.oneOf("liveness", a.Liveness, "alive", "stale", "offline", "gone"); err != nil {
			return Result{}, err
		}
		f.Liveness = agent.Liveness(a.Liveness)
	}
	if err := c.text("cohort", a.Cohort, agent.MaxCohort, false, true); err != nil {
		return Result{}, err
	}
	f.Cohort = a.Cohort
	list, err := agent.List(ctx, c.Scope, f)
	if err != nil {
		return Result{}, err
	}
	me := c.Scope.Principal().Agent
	out := agentsListOut{Agents: make([]agentOut, 0, min(len(list), maxAgents)), Total: len(list)}
	// Alive first, then the most recently seen: who to talk to now.
	slices.SortStableFunc(list, func(x, y agent.Agent) int {
		if r := cmp.Compare(livenessRank(string(x.Liveness)), livenessRank(string(y.Liveness))); r != 0 {
			return r
		}
		return y.LastSeen.Compare(x.LastSeen)
	})
	now := agent.Now(ctx)
	var b strings.Builder
	for _, ag := range list[:min(len(list), maxAgents)] {
		o := newAgentOut(ag, me)
		out.Agents = append(out.Agents, o)
		b.WriteString(o.line(now))
		b.WriteByte('\n')
	}
	switch {
	case len(list) == 0:
		b.WriteString("No agents match.\n")
	case len(list) > maxAgents:
		fmt.Fprintf(&b, "%d more not shown: filter by liveness or cohort.\n", len(list)-maxAgents)
	}
	return Result{Structured: out, Text: strings.TrimSuffix(b.String(), "\n")}, nil
}

type agentUpdateArgs struct {
	actingAs
	Model        *string   `json:"model"`
	Capabilities *[]string `json:"capabilities"`
	Cohort       *string   `json:"cohort"`
}

func agentUpdateTool() *Tool {
	return spec{
		name: "agent_update", title: "Describe yourself",
		description: "Set your model, capabilities or cohort so that other agents know what you can do.",
		hints:       hints{idempotent: true},
		input: `{"type":"object","additionalProperties":false,"properties":{
			` + actAs + `"model":{"type":"string","maxLength":256},
			"capabilities":{"type":"array","maxItems":64,"items":{"type":"string","maxLength":128},"description":"Short labels, e.g. go, review"},
			"cohort":{"type":"string","description":"Your team; empty to leave it"}}}`,
		output:  agentSchema,
		example: `{"model":"qwen2.5-coder-7b","capabilities":["go","tests"]}`,
		handler: agentUpdate,
	}.tool()
}

func agentUpdate(ctx context.Context, c *Call) (Result, error) {
	var a agentUpdateArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	if a.Model == nil && a.Capabilities == nil && a.Cohort == nil {
		return Result{}, c.argError("send at least one of model, capabilities or cohort")
	}
	if a.Model != nil {
		if err := c.text("model", *a.Model, agent.MaxModel, false, true); err != nil {
			return Result{}, err
		}
	}
	if a.Cohort != nil {
		if err := c.text("cohort", *a.Cohort, agent.MaxCohort, false, true); err != nil {
			return Result{}, err
		}
	}
	if a.Capabilities != nil {
		if len(*a.Capabilities) > agent.MaxCapabilities {
			return Result{}, c.argError("%q has %d labels; the limit is %d", "capabilities", len(*a.Capabilities), agent.MaxCapabilities)
		}
		for _, cp := range *a.Capabilities {
			if err := c.text("capabilities", cp, agent.MaxCapability, true, true); err != nil {
				return Result{}, err
			}
		}
	}
	if err := c.Scope.CanWrite(); err != nil {
		return Result{}, err
	}
	me, err := c.me()
	if err != nil {
		return Result{}, err
	}
	cur, err := agent.Get(ctx, c.Scope, me)
	if err != nil {
		return Result{}, err
	}
	// The identity (client, name) stays: it is what the host and --agent
	// named, and registering it again keeps the agent's id.
	reg := agent.Registration{Name: cur.Name, Client: cur.Client, Model: cur.Model,
		Capabilities: cur.Capabilities, Cohort: cur.Cohort, TTL: cur.TTL}
	if a.Model != nil {
		reg.Model = *a.Model
	}
	if a.Capabilities != nil {
		reg.Capabilities = *a.Capabilities
	}
	if a.Cohort != nil {
		reg.Cohort = *a.Cohort
	}
	ag, err := agent.Register(ctx, c.Scope, reg)
	if err != nil {
		return Result{}, err
	}
	if ag.ID != me {
		return Result{}, fmt.Errorf("re-registering agent %s returned agent %s", me, ag.ID)
	}
	if c.Self != nil {
		c.Self.set(ag)
	}
	out := newAgentOut(ag, me)
	return Result{Structured: out, Text: "Updated: " + out.line(agent.Now(ctx))}, nil
}

// --- sessions ---

type sessionJoinArgs struct {
	SessionID string `json:"session_id"`
}

func sessionJoinTool() *Tool {
	return spec{
		name: "session_join", title: "Join a work session",
		description: "Join another agent's open work session to work in its workspace; pass its session_id to the fs_ tools.",
		hints:       hints{idempotent: true},
		input: `{"type":"object","required":["session_id"],"additionalProperties":false,"properties":{
			"session_id":{"type":"string"}}}`,
		output:  sessionSchema,
		example: `{"session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T"}`,
		handler: sessionJoin,
	}.tool()
}

func sessionJoin(ctx context.Context, c *Call) (Result, error) {
	var a sessionJoinArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	id, err := c.sessionID(a.SessionID, true)
	if err != nil {
		return Result{}, err
	}
	s, err := session.Join(ctx, c.Scope, id)
	if err != nil {
		return Result{}, err
	}
	out := c.sessionOut(ctx, s)
	return Result{Structured: out, Text: fmt.Sprintf("Joined session %s (%q) in %s with %d participant(s).",
		out.SessionID, out.Title, out.where(), len(s.Participants))}, nil
}

// actAs is the optional session_id of the coordination tools that act as
// an agent: a session started with an agent name and model (several
// models behind one host) makes the call act as that session's agent,
// which the server resolves before the tool runs; the handlers read the
// scope's agent as ever.
const actAs = `"session_id":{"type":"string"},`

// actingAs decodes actAs's argument, which the handlers do not read.
type actingAs struct {
	SessionID string `json:"session_id"`
}
