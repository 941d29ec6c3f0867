package main

import (
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/tenant"
)

// Text output names things for people: a project by its name, an agent as
// "name (model)". --json keeps the ids.

// agentLabel renders an agent for people: "name (model)", or the name
// alone when it reported no model.
func agentLabel(a agent.Agent) string {
	name := a.Name
	if name == "" {
		name = a.ID
	}
	if a.Model == "" {
		return name
	}
	return name + " (" + a.Model + ")"
}

// namer names the projects and agents of a tenant by id. It reads the
// tenant's projects, or an agent, again when it meets an id it does not
// know (a project created or an agent registered while the log is
// followed); an id that stays unknown (a removed project) is shown as is.
type namer struct {
	e        *env
	sc       *tenant.Scope
	projects map[string]string
	agents   map[string]string
}

func newNamer(e *env, sc *tenant.Scope) *namer {
	return &namer{e: e, sc: sc, agents: map[string]string{}}
}

// project returns the name of project id.
func (n *namer) project(id string) string {
	if v, ok := n.projects[id]; ok {
		return v
	}
	if m, err := projectNames(n.e, n.sc); err == nil {
		n.projects = m
	}
	if n.projects == nil {
		n.projects = map[string]string{}
	}
	if _, ok := n.projects[id]; !ok {
		n.projects[id] = id
	}
	return n.projects[id]
}

// agent returns agent id as agentLabel renders it, or the id when the
// agent cannot be read.
func (n *namer) agent(id string) string {
	if id == "" {
		return ""
	}
	if v, ok := n.agents[id]; ok {
		return v
	}
	label := id
	if a, err := agent.Get(n.e.ctx, n.sc, id); err == nil {
		label = agentLabel(a)
	}
	n.agents[id] = label
	return label
}

// who renders a user, or an agent acting for one, as user/agent, the
// agent by its label.
func (n *namer) who(user, agentID string) string {
	switch {
	case agentID == "":
		return user
	case user == "":
		return "-/" + n.agent(agentID)
	}
	return user + "/" + n.agent(agentID)
}

// place renders a project and a directory inside it for a person:
// "webapp", "webapp/src/auth"; the id when the project is gone.
func (n *namer) place(id, dir string) string {
	if id == "" {
		return ""
	}
	name := n.project(id)
	if dir == "" || dir == "." {
		return name
	}
	return name + "/" + dir
}
