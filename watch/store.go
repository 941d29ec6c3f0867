package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/project"
)

// store attributes a batch and appends it to the audit log in one
// transaction; a rename moves the old path's evidence to the new one in
// that transaction too. Then it writes the events file and calls
// OnStored.
func (w *Watcher) store(ctx context.Context, batch []Change) error {
	holders, err := lease.List(ctx, w.sc, "")
	if err != nil {
		w.log.Warn("cannot read leases; attributing without them", "err", err)
	}
	now := time.Now()
	events := make([]audit.Event, len(batch))
	refs := make([]audit.Ref, len(batch))
	stored := make([]bool, len(batch))
	var procs []toolProcess
	procsRead := false
	stamp, err := w.sc.Store().Update(ctx, func(tx kv.Tx) error {
		at := &attributor{sc: w.sc, tx: tx, holders: holders, formatWin: w.cfg.FormatWindow, now: now,
			procs: func() []toolProcess {
				if !procsRead {
					procs, procsRead = w.procs.snapshot(now), true
				}
				return procs
			}}
		aw := w.sc.Log().Writer(tx)
		for i := range batch {
			c := &batch[i]
			stored[i] = false
			key := project.File{Project: c.Project, Rel: c.Rel}.String()
			if c.Kind == "file.renamed" {
				from := project.File{Project: c.Project, Rel: relOf(c.Root, c.From)}.String()
				if err := attrib.Move(tx, w.sc, from, key, now); err != nil && !errors.Is(err, attrib.ErrInvalid) {
					return err
				}
			}
			recs, err := attrib.Lookup(tx, w.sc, key, now)
			if err != nil && !errors.Is(err, attrib.ErrInvalid) {
				return err
			}
			v := at.attribute(c, recs)
			c.Attribution, c.User, c.Session = v.attribution, v.user, v.session
			if c.Session == "" {
				c.Session = w.cfg.Session
			}
			ev, ok := w.event(c)
			if !ok {
				continue
			}
			ref, err := aw.Append(ev)
			if err != nil {
				return fmt.Errorf("watch: storing %s %s: %w", c.Kind, c.Path, err)
			}
			events[i], refs[i], stored[i] = ev, ref, true
		}
		return nil
	})
	if err != nil {
		return err
	}
	out := batch[:0]
	for i := range batch {
		if !stored[i] {
			continue
		}
		batch[i].ID = refs[i].ID(stamp)
		events[i].ID = batch[i].ID
		events[i].Tenant = w.sc.Tenant()
		events[i].Time = events[i].Time.UTC()
		if w.cfg.EventsFile != nil {
			line, err := json.Marshal(events[i])
			if err == nil {
				line = append(line, '\n')
				if _, err := w.cfg.EventsFile.Write(line); err != nil {
					w.log.Warn("cannot write the events file", "err", err)
				}
			}
		}
		out = append(out, batch[i])
	}
	w.stats.events.Add(int64(len(out)))
	w.stats.batches.Add(1)
	if w.cfg.OnStored != nil && len(out) > 0 {
		w.cfg.OnStored(out)
	}
	return nil
}

// event renders a change as an audit event: about the file's project, with
// its path relative to the project root (the absolute path, for a person's
// hover, in attrs). ok is false for one the log cannot hold (a path longer
// than audit.MaxPath).
func (w *Watcher) event(c *Change) (audit.Event, bool) {
	attrs := map[string]any{"root": clean(c.Root, nil, ""), "abs": clean(c.Path, nil, ""), "size": c.Size, "lines": c.Lines, "via": string(c.Via)}
	if c.Hash != "" {
		attrs["hash"] = c.Hash
	}
	if c.LinesDelta != nil {
		attrs["lines_delta"] = *c.LinesDelta
	}
	if c.From != "" {
		attrs["from"] = clean(relOf(c.Root, c.From), attrs, "from_quoted")
	}
	if c.Replaced {
		attrs["replaced"] = true
	}
	p := clean(c.Rel, attrs, "path_quoted")
	// The log indexes the path as the project's path (project.File).
	if len(project.File{Project: c.Project, Rel: p}.String()) > audit.MaxPath {
		w.log.Warn("a path too long for the audit log; its event is not stored", "path", textclip.Clip(p, 200), "bytes", len(p))
		return audit.Event{}, false
	}
	ev := audit.Event{Time: c.Time, Kind: c.Kind, Project: c.Project, Path: p, Session: c.Session, User: c.User, Summary: summary(c), Attrs: attrs}
	a := c.Attribution
	ev.Attribution = &a
	if a.Actor == audit.ActorAgent && strings.HasPrefix(a.AgentID, "ag_") {
		ev.Agent = a.AgentID // a registered agent: index the event under it
	}
	return ev, true
}

// clean makes a path valid UTF-8 for the log, keeping the exact bytes
// quoted in attrs[key] when it was not (and attrs is not nil).
func clean(p string, attrs map[string]any, key string) string {
	if utf8.ValidString(p) {
		return p
	}
	if attrs != nil {
		attrs[key] = strconv.Quote(p)
	}
	return strings.ToValidUTF8(p, "\uFFFD")
}

func summary(c *Change) string {
	verb := strings.TrimPrefix(c.Kind, "file.")
	s := verb + " " + c.Rel
	if c.From != "" {
		s = verb + " " + relOf(c.Root, c.From) + " → " + c.Rel
	}
	if c.LinesDelta != nil {
		s += fmt.Sprintf(" (%+d lines)", *c.LinesDelta)
	}
	// A path need not be UTF-8: its bytes that are not are replaced
	// before the cut, which counts what the summary will hold.
	return textclip.Within(strings.ToValidUTF8(s, "\uFFFD"), audit.MaxSummary)
}
