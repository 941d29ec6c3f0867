package session

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
)

// Report is what happened in a session, derived from its events in the
// audit log (the log's session index), so it agrees with the log by
// construction.
type Report struct {
	Session Session `json:"session"`
	// Duration runs from the start to the end, to the last activity of an
	// abandoned session, or to now for an open one.
	Duration time.Duration `json:"duration_ns"`
	// Events counts the session's events; ByKind splits them by kind.
	Events int            `json:"events"`
	ByKind map[string]int `json:"by_kind"`
	// First and Last are the times of the oldest and newest event.
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`
	// Files are the files the session's file and editor events changed
	// (file.*, ide.edited, ide.saved), by path.
	Files []FileActivity `json:"files"`
	// Agents are the agents that joined or acted in the session, by id;
	// Users the same for humans.
	Agents []Activity `json:"agents"`
	Users  []Activity `json:"users"`
	// Truncated is set when the session had more than MaxSummaryEvents
	// events: the counts cover the oldest MaxSummaryEvents.
	Truncated bool `json:"truncated,omitempty"`
}

// FileActivity is one file touched in a session: Path is relative to the
// root of Project (an absolute path for events recorded before projects,
// which name none).
type FileActivity struct {
	Project string         `json:"project,omitempty"`
	Path    string         `json:"path"`
	Events  int            `json:"events"`
	ByKind  map[string]int `json:"by_kind"`
	Last    time.Time      `json:"last"`
}

// Activity is what one agent or user did in a session. Events is zero for
// a participant who joined and did nothing.
type Activity struct {
	ID     string    `json:"id"`
	Events int       `json:"events"`
	First  time.Time `json:"first,omitzero"`
	Last   time.Time `json:"last,omitzero"`
}

// MaxSummaryEvents bounds the events one Summary call reads.
const MaxSummaryEvents = 200_000

// touches reports whether an event of kind changed the file at its path.
func touches(kind string) bool {
	switch kind {
	case "ide.edited", "ide.saved":
		return true
	}
	return strings.HasPrefix(kind, "file.")
}

// Summary reports what happened in a session of the scope's tenant:
// duration, events by kind, files touched, agents and users involved. A
// session of another tenant is ErrNotFound.
func Summary(ctx context.Context, sc *tenant.Scope, id string) (Report, error) {
	return wall().summary(ctx, sc, id)
}

func (l layer) summary(ctx context.Context, sc *tenant.Scope, id string) (Report, error) {
	s, err := Get(ctx, sc, id)
	if err != nil {
		return Report{}, err
	}
	sum := Report{Session: s, ByKind: map[string]int{}, Files: []FileActivity{}, Agents: []Activity{}, Users: []Activity{}}
	files := map[string]*FileActivity{}
	agents := map[string]*Activity{}
	users := map[string]*Activity{}
	note := func(m map[string]*Activity, who string, t time.Time, event bool) {
		if who == "" {
			return
		}
		a := m[who]
		if a == nil {
			a = &Activity{ID: who}
			m[who] = a
		}
		if !event {
			return
		}
		a.Events++
		if a.First.IsZero() || t.Before(a.First) {
			a.First = t
		}
		if t.After(a.Last) {
			a.Last = t
		}
	}
	for _, p := range s.Participants {
		note(users, p.User, p.Joined, false)
		note(agents, p.Agent, p.Joined, false)
	}
	q := audit.Query{Filter: audit.Filter{Session: s.ID}, Order: audit.OldestFirst, Limit: audit.MaxLimit}
	for {
		page, err := sc.Log().Query(ctx, q)
		if err != nil {
			return Report{}, err
		}
		for i := range page.Events {
			ev := &page.Events[i]
			if sum.Events == MaxSummaryEvents {
				sum.Truncated = true
				break
			}
			sum.Events++
			sum.ByKind[ev.Kind]++
			if sum.First.IsZero() || ev.Time.Before(sum.First) {
				sum.First = ev.Time
			}
			if ev.Time.After(sum.Last) {
				sum.Last = ev.Time
			}
			note(users, ev.User, ev.Time, true)
			note(agents, ev.Agent, ev.Time, true)
			if ev.Path != "" && touches(ev.Kind) {
				key := project.File{Project: ev.Project, Rel: ev.Path}.String()
				if ev.Project == "" {
					key = ev.Path
				}
				f := files[key]
				if f == nil {
					f = &FileActivity{Project: ev.Project, Path: ev.Path, ByKind: map[string]int{}}
					files[key] = f
				}
				f.Events++
				f.ByKind[ev.Kind]++
				if ev.Time.After(f.Last) {
					f.Last = ev.Time
				}
			}
		}
		if sum.Truncated || page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	switch s.State {
	case Ended:
		sum.Duration = s.Ended.Sub(s.Started)
	case Abandoned:
		sum.Duration = s.LastActivity.Sub(s.Started)
	default:
		sum.Duration = l.now().Sub(s.Started)
	}
	if sum.Duration < 0 {
		sum.Duration = 0
	}
	for _, f := range files {
		sum.Files = append(sum.Files, *f)
	}
	slices.SortFunc(sum.Files, func(a, b FileActivity) int {
		return cmp.Or(strings.Compare(a.Path, b.Path), strings.Compare(a.Project, b.Project))
	})
	sum.Agents = sorted(agents)
	sum.Users = sorted(users)
	return sum, nil
}

func sorted(m map[string]*Activity) []Activity {
	out := make([]Activity, 0, len(m))
	for _, a := range m {
		out = append(out, *a)
	}
	slices.SortFunc(out, func(a, b Activity) int { return strings.Compare(a.ID, b.ID) })
	return out
}
