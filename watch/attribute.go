package watch

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
)

// Evidence names why a change was attributed as it was, strongest first;
// it is the first word of audit.Attribution.Evidence.
type Evidence string

// The evidence ladder (ARCHITECTURE.md §3).
const (
	// FromAgentWrite (1, agent, certain): the content matches what an
	// agent wrote through fs_write or fs_edit.
	FromAgentWrite Evidence = "fs_write"
	// FromAgentDelete (1, agent, certain): the file was deleted and the
	// newest record made for its path is an agent's deletion through
	// fs_delete or fs_move.
	FromAgentDelete Evidence = "fs_delete"
	// FromIDESave (2, human, strong): the content matches what the IDE
	// saved for its human.
	FromIDESave Evidence = "ide_save"
	// FromFormatter (agent, probable): no record matches, but an agent
	// wrote the file within Config.FormatWindow: a formatter or a save hook
	// ran on its output.
	FromFormatter Evidence = "fs_write_then_format"
	// FromLease (3, agent, probable): exactly one live agent holds a lease
	// on the file.
	FromLease Evidence = "lease"
	// FromDeclared (3, agent, probable): exactly one agent declared,
	// through a tool, that it is editing the file.
	FromDeclared Evidence = "declared"
	// FromProcess (4, agent, probable): exactly one known AI coding tool
	// has a process working inside the workspace.
	FromProcess Evidence = "process"
	// FromNothing (5, unknown): no evidence. Never "human" by default.
	FromNothing Evidence = "none"
)

// Confidences of the ladder's steps.
const (
	confCertain   = 1.0
	confIDE       = 0.9
	confFormatter = 0.8
	confLease     = 0.7
	confProcess   = 0.6
	confEditor    = 0.4 // a tool that is also a human's editor
)

// attributor decides the attribution of the changes of one batch.
type attributor struct {
	sc        *tenant.Scope
	tx        kv.ReadTx
	holders   []lease.Holder
	procs     func() []toolProcess
	formatWin time.Duration
	now       time.Time
	models    map[string]string
}

// verdict is the attribution of a change, with the human and the work
// session its evidence names.
type verdict struct {
	attribution   audit.Attribution
	user, session string
}

// attribute climbs the evidence ladder for c, given the records about its
// file (newest first).
func (a *attributor) attribute(c *Change, recs []attrib.Record) verdict {
	if c.Hash != "" {
		for _, r := range recs {
			if r.Hash != c.Hash {
				continue
			}
			switch r.Source {
			case attrib.AgentWrite:
				return verdict{audit.Attribution{Actor: audit.ActorAgent, AgentID: r.Agent, Model: r.Model, Confidence: confCertain,
					Evidence: evidence(FromAgentWrite, "the content matches agent %s's write at %s", r.Agent, clock(r.At))}, r.User, r.Session}
			case attrib.IDESave:
				return verdict{audit.Attribution{Actor: audit.ActorHuman, Confidence: confIDE,
					Evidence: evidence(FromIDESave, "the content matches %s's save in the IDE at %s", r.User, clock(r.At))}, r.User, r.Session}
			}
		}
	}
	if c.Kind == "file.deleted" && len(recs) > 0 && recs[0].Source == attrib.AgentDelete && recs[0].From == "" {
		r := recs[0]
		return verdict{audit.Attribution{Actor: audit.ActorAgent, AgentID: r.Agent, Model: r.Model, Confidence: confCertain,
			Evidence: evidence(FromAgentDelete, "agent %s deleted or moved the file at %s", r.Agent, clock(r.At))}, r.User, r.Session}
	}
	if a.formatWin > 0 && c.Kind != "file.deleted" {
		for _, r := range recs {
			if r.Source == attrib.IDESave && r.Hash != "" {
				break // a human saved since: not a formatter on the agent's output
			}
			if r.Source == attrib.AgentWrite && c.Time.Sub(r.At) <= a.formatWin && r.At.Sub(c.Time) <= a.formatWin {
				return verdict{audit.Attribution{Actor: audit.ActorAgent, AgentID: r.Agent, Model: r.Model, Confidence: confFormatter,
					Evidence: evidence(FromFormatter, "agent %s wrote the file %s before; the content differs as a formatter's would", r.Agent, c.Time.Sub(r.At).Round(time.Millisecond))}, r.User, r.Session}
			}
		}
	}
	// 3: leases and declarations. File leases are keyed by project and
	// relative path (project.File), as the change is.
	key := project.File{Project: c.Project, Rel: c.Rel}.String()
	fromKey := ""
	if c.From != "" {
		fromKey = project.File{Project: c.Project, Rel: relOf(c.Root, c.From)}.String()
	}
	type claim struct {
		agent, model string
		ev           Evidence
		detail       string
	}
	var claims []claim
	for _, h := range a.holders {
		if h.Expired || h.Liveness.Absent() {
			continue
		}
		if lease.Match(h.Resource, key) || (fromKey != "" && lease.Match(h.Resource, fromKey)) {
			claims = append(claims, claim{h.Agent, "", FromLease, fmt.Sprintf("agent %s holds a %s lease on %s", h.Agent, h.Mode, h.Resource)})
		}
	}
	for _, r := range recs {
		if r.Source == attrib.Declared {
			claims = append(claims, claim{r.Agent, r.Model, FromDeclared, fmt.Sprintf("agent %s declared at %s that it edits the file", r.Agent, clock(r.At))})
		}
	}
	agents := map[string]bool{}
	for _, cl := range claims {
		agents[cl.agent] = true
	}
	if len(agents) == 1 {
		cl := claims[0]
		model := cl.model
		if model == "" {
			model = a.model(cl.agent)
		}
		return verdict{attribution: audit.Attribution{Actor: audit.ActorAgent, AgentID: cl.agent, Model: model, Confidence: confLease,
			Evidence: evidence(cl.ev, "%s", cl.detail)}}
	}
	// 4: exactly one known AI tool working in the workspace.
	if in := toolsIn(a.procs(), c.Root); len(in) == 1 {
		p := in[0]
		conf := confProcess
		if p.tool.Editor {
			conf = confEditor
		}
		return verdict{attribution: audit.Attribution{Actor: audit.ActorAgent, AgentID: p.tool.ID, Confidence: conf,
			Evidence: evidence(FromProcess, "%s (pid %d) is the only known AI tool working in %s", p.tool.Name, p.pid, p.cwd)}}
	}
	detail := "no write record, lease, declaration or single AI tool explains the change"
	if len(agents) > 1 {
		detail = fmt.Sprintf("%d agents claim the file", len(agents))
	}
	return verdict{attribution: audit.Attribution{Actor: audit.ActorUnknown, Evidence: evidence(FromNothing, "%s", detail)}}
}

// model returns a registered agent's model, "" when unknown.
func (a *attributor) model(id string) string {
	if m, ok := a.models[id]; ok {
		return m
	}
	m := ""
	if ag, err := agent.Read(a.tx, a.sc, id, a.now); err == nil {
		m = ag.Model
	}
	if a.models == nil {
		a.models = map[string]string{}
	}
	a.models[id] = m
	return m
}

func evidence(e Evidence, format string, args ...any) string {
	s := string(e) + ": " + fmt.Sprintf(format, args...)
	if len(s) > audit.MaxSummary {
		s = s[:audit.MaxSummary]
	}
	return s
}

func clock(t time.Time) string { return t.UTC().Format("15:04:05.000") }

// relOf returns abs relative to root, '/' separated.
func relOf(root, abs string) string {
	rel, err := filepath.Rel(root, abs)
	if err != nil {
		return abs
	}
	return filepath.ToSlash(rel)
}
