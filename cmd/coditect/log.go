package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/tenant"
)

func newLogCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Read the tenant's audit log: tail (and follow), query a page, export as JSON Lines",
	}
	identityFlags(cmd)
	cmd.AddCommand(newLogTailCommand(), newLogQueryCommand(), newLogExportCommand(), newLogSweepCommand())
	return cmd
}

// filterFlags adds the audit filters; until adds --until.
func filterFlags(cmd *cobra.Command, until bool) {
	f := cmd.Flags()
	f.String("session", "", "events of this session")
	f.String("agent", "", "events of this agent")
	f.String("user", "", "events of this user")
	f.String("kind", "", "events of this kind, e.g. file.modified")
	f.String("path", "", "events about this path (relative to the project root with --project)")
	f.String("project", "", "events of this project (name or id)")
	f.String("since", "", "events at or after: 30m, 2h, 7d, 2026-03-01, RFC 3339")
	if until {
		f.String("until", "", "events at or before (same forms as --since)")
	}
}

func readFilter(e *env, sc *tenant.Scope) (audit.Filter, error) {
	var af audit.Filter
	cmd := e.cmd
	f := cmd.Flags()
	ref, _ := f.GetString("project")
	var err error
	if af.Project, err = projectID(e, sc, ref); err != nil {
		return af, err
	}
	af.Session, _ = f.GetString("session")
	af.Agent, _ = f.GetString("agent")
	af.User, _ = f.GetString("user")
	af.Kind, _ = f.GetString("kind")
	af.Path, _ = f.GetString("path")
	af.Since, af.Until, err = timeRange(cmd)
	if err != nil {
		return af, err
	}
	return af, af.Validate()
}

// eventLine renders an event on one line: UTC time, kind, who (an agent
// as "name (model)"), then the session, project (by name), path and
// summary when present.
func eventLine(ev audit.Event, names *namer) string {
	var b strings.Builder
	b.WriteString(ev.Time.UTC().Format("2006-01-02T15:04:05.000Z"))
	fmt.Fprintf(&b, "  %-17s  %-12s", ev.Kind, cell(names.who(ev.User, ev.Agent)))
	if ev.Session != "" {
		b.WriteString("  session=" + cell(ev.Session))
	}
	if ev.Project != "" {
		b.WriteString("  project=" + cell(names.project(ev.Project)))
	}
	if ev.Path != "" {
		b.WriteString("  path=" + cell(ev.Path))
	}
	if ev.Summary != "" {
		b.WriteString("  " + cell(ev.Summary))
	}
	return b.String()
}

// printEvent writes one event as a text line or, with --json, as one JSON
// line, and flushes, so a follower's reader sees it at once.
func printEvent(w *bufio.Writer, jsonLines bool, ev audit.Event, names *namer) error {
	if jsonLines {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		w.Write(b)
		w.WriteByte('\n')
	} else {
		w.WriteString(eventLine(ev, names))
		w.WriteByte('\n')
	}
	return w.Flush()
}

func newLogTailCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print the last events, oldest first; with -f, keep printing new ones until interrupted",
		Long: "Print the last -n events matching the filters, oldest first (with --since, every event since then\n" +
			"unless -n is given). With -f, then follow the log: events appended by any process on the store are\n" +
			"printed as they commit, until the command is interrupted. --json prints JSON Lines.",
		Args: cobra.NoArgs,
	}
	filterFlags(cmd, false)
	cmd.Flags().BoolP("follow", "f", false, "keep printing new events until interrupted")
	cmd.Flags().IntP("lines", "n", 20, "how many of the last events to print first")
	cmd.RunE = withStore(func(e *env, _ []string) error {
		sc, err := e.readScope()
		if err != nil {
			return err
		}
		f, err := readFilter(e, sc)
		if err != nil {
			return err
		}
		fl := e.cmd.Flags()
		follow, _ := fl.GetBool("follow")
		n, _ := fl.GetInt("lines")
		if n < 0 {
			return fmt.Errorf("-n %d: want 0 or more", n)
		}
		if !f.Since.IsZero() && !fl.Changed("lines") {
			n = -1 // every event since
		}
		log := sc.Log()
		// The head splits the work: the backlog is what committed up to
		// it, the follower starts after it, so nothing is missed or
		// printed twice.
		head, err := log.Head(e.ctx)
		if err != nil {
			return err
		}
		var backlog []audit.Event
		q := audit.Query{Filter: f, Order: audit.NewestFirst, Limit: audit.MaxLimit}
		for n != 0 && head != "" {
			p, err := log.Query(e.ctx, q)
			if err != nil {
				return err
			}
			for _, ev := range p.Events {
				if ev.ID <= head && (n < 0 || len(backlog) < n) {
					backlog = append(backlog, ev)
				}
			}
			if p.Next == "" || (n > 0 && len(backlog) >= n) {
				break
			}
			q.Cursor = p.Next
		}
		slices.Reverse(backlog)
		w := bufio.NewWriter(e.cmd.OutOrStdout())
		jsonLines := jsonOutput(e.cmd)
		names := newNamer(e, sc)
		for _, ev := range backlog {
			if err := printEvent(w, jsonLines, ev, names); err != nil {
				return err
			}
		}
		if !follow {
			return nil
		}
		err = log.Tail(e.ctx, head, f, func(ev audit.Event) error { return printEvent(w, jsonLines, ev, names) })
		if cancelled(e.ctx, err) {
			return nil
		}
		return err
	})
	return cmd
}

func newLogQueryCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "query",
		Short: "Print one page of events matching the filters, newest first",
		Args:  cobra.NoArgs,
	}
	filterFlags(cmd, true)
	cmd.Flags().Bool("oldest", false, "oldest first")
	cmd.Flags().Int("limit", audit.DefaultLimit, fmt.Sprintf("most events on the page (1 to %d)", audit.MaxLimit))
	cmd.Flags().String("cursor", "", "continue from the cursor a previous page printed")
	cmd.RunE = withStore(func(e *env, _ []string) error {
		sc, err := e.readScope()
		if err != nil {
			return err
		}
		f, err := readFilter(e, sc)
		if err != nil {
			return err
		}
		fl := e.cmd.Flags()
		q := audit.Query{Filter: f, Order: audit.NewestFirst}
		if oldest, _ := fl.GetBool("oldest"); oldest {
			q.Order = audit.OldestFirst
		}
		q.Limit, _ = fl.GetInt("limit")
		if q.Limit < 1 || q.Limit > audit.MaxLimit {
			return fmt.Errorf("--limit %d: want 1 to %d", q.Limit, audit.MaxLimit)
		}
		q.Cursor, _ = fl.GetString("cursor")
		p, err := sc.Log().Query(e.ctx, q)
		if err != nil {
			return err
		}
		w := e.cmd.OutOrStdout()
		if jsonOutput(e.cmd) {
			if p.Events == nil {
				p.Events = []audit.Event{}
			}
			return writeJSON(w, struct {
				Events []audit.Event `json:"events"`
				Next   string        `json:"next,omitempty"`
			}{p.Events, p.Next})
		}
		names := newNamer(e, sc)
		for _, ev := range p.Events {
			if _, err := fmt.Fprintln(w, eventLine(ev, names)); err != nil {
				return err
			}
		}
		if p.Next != "" {
			fmt.Fprintf(e.cmd.ErrOrStderr(), "more events: add --cursor %s\n", p.Next)
		}
		return nil
	})
	return cmd
}

func newLogExportCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write every event matching the filters as JSON Lines, oldest first",
		Args:  cobra.NoArgs,
	}
	filterFlags(cmd, true)
	cmd.RunE = withStore(func(e *env, _ []string) error {
		sc, err := e.readScope()
		if err != nil {
			return err
		}
		f, err := readFilter(e, sc)
		if err != nil {
			return err
		}
		_, err = sc.Log().Export(e.ctx, audit.Query{Filter: f, Order: audit.OldestFirst}, e.cmd.OutOrStdout())
		return err
	})
	return cmd
}

func newLogSweepCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "sweep",
		Short: "Enforce every tenant's retention policy now (the daemon does it periodically)",
		Args:  cobra.NoArgs,
		RunE: withStore(func(e *env, _ []string) error {
			if err := requireOperator(); err != nil {
				return err
			}
			removed, err := e.dir.SweepRetention(e.ctx)
			if jsonOutput(e.cmd) {
				if removed == nil {
					removed = map[string]int{}
				}
				if werr := writeJSON(e.cmd.OutOrStdout(), removed); werr != nil {
					return werr
				}
				return err
			}
			ids := make([]string, 0, len(removed))
			for id := range removed {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			tw := table(e.cmd.OutOrStdout(), "TENANT", "REMOVED")
			for _, id := range ids {
				row(tw, id, fmt.Sprint(removed[id]))
			}
			if ferr := tw.Flush(); ferr != nil {
				return ferr
			}
			return err
		}),
	}
}
