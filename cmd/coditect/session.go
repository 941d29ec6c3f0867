package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coditect/coditect/storage/session"
)

func newSessionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "session",
		Short: "Start, list, show, join, end and sweep work sessions",
	}
	identityFlags(cmd)
	cmd.AddCommand(newSessionListCommand(), newSessionShowCommand(), newSessionStartCommand(),
		newSessionJoinCommand(), newSessionEndCommand(), newSessionSweepCommand())
	return cmd
}

func newSessionListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List sessions, newest first",
		Args:  cobra.NoArgs,
	}
	f := cmd.Flags()
	f.String("user", "", "sessions this user started or joined")
	f.String("agent", "", "sessions this agent started or joined")
	f.String("workspace", "", "sessions of this workspace root (absolute path)")
	f.String("project", "", "sessions of this project (name or id)")
	f.String("state", "", "open, ended or abandoned")
	f.String("since", "", "started at or after: 2h, 7d, 2026-03-01, RFC 3339")
	f.String("until", "", "started at or before (same forms as --since)")
	f.Bool("oldest", false, "oldest first")
	f.Int("limit", 50, fmt.Sprintf("most sessions to print (1 to %d)", session.MaxLimit))
	f.String("cursor", "", "continue a previous listing from the cursor it printed")
	cmd.RunE = withStore(func(e *env, _ []string) error {
		sc, err := e.readScope()
		if err != nil {
			return err
		}
		var q session.Query
		q.User, _ = f.GetString("user")
		q.Agent, _ = f.GetString("agent")
		q.Workspace, _ = f.GetString("workspace")
		ref, _ := f.GetString("project")
		if q.Project, err = projectID(e, sc, ref); err != nil {
			return err
		}
		state, _ := f.GetString("state")
		q.State = session.State(state)
		if q.Since, q.Until, err = timeRange(e.cmd); err != nil {
			return err
		}
		if oldest, _ := f.GetBool("oldest"); oldest {
			q.Order = session.OldestFirst
		}
		q.Cursor, _ = f.GetString("cursor")
		limit, _ := f.GetInt("limit")
		if limit < 1 || limit > session.MaxLimit {
			return fmt.Errorf("--limit %d: want 1 to %d", limit, session.MaxLimit)
		}
		// A page may stop short (each examines a bounded number of
		// records): follow pages until the limit or the end.
		page := session.Page{Sessions: []session.Session{}}
		for {
			q.Limit = limit - len(page.Sessions)
			p, err := session.List(e.ctx, sc, q)
			if err != nil {
				return err
			}
			page.Sessions = append(page.Sessions, p.Sessions...)
			page.Next = p.Next
			if p.Next == "" || len(page.Sessions) == limit {
				break
			}
			q.Cursor = p.Next
		}
		w := e.cmd.OutOrStdout()
		if jsonOutput(e.cmd) {
			return writeJSON(w, page)
		}
		names := newNamer(e, sc)
		tw := table(w, "ID", "STATE", "STARTED", "USER", "PROJECT", "TITLE")
		for _, s := range page.Sessions {
			where := names.place(s.Project, s.Dir)
			if where == "" {
				where = s.Workspace // a session from before projects
			}
			row(tw, s.ID, string(s.State), stamp(s.Started), names.who(s.User, s.Agent), where, s.Title)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if page.Next != "" {
			fmt.Fprintf(e.cmd.ErrOrStderr(), "more sessions: add --cursor %s\n", page.Next)
		}
		return nil
	})
	return cmd
}

func newSessionShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a session and its summary: duration, events by kind, files touched, agents involved",
		Args:  cobra.ExactArgs(1),
		RunE: withStore(func(e *env, args []string) error {
			sc, err := e.readScope()
			if err != nil {
				return err
			}
			r, err := session.Summary(e.ctx, sc, args[0])
			if err != nil {
				return err
			}
			if jsonOutput(e.cmd) {
				return writeJSON(e.cmd.OutOrStdout(), r)
			}
			return printReport(e.cmd.OutOrStdout(), r, newNamer(e, sc))
		}),
	}
}

func printReport(w io.Writer, r session.Report, names *namer) error {
	s := r.Session
	tw := table(w)
	field := func(key, value string) { fmt.Fprintf(tw, "%s\t%s\n", key, cell(value)) }
	state := string(s.State)
	if s.Outcome != nil {
		state += " (" + string(s.Outcome.Status) + ")"
	}
	field("id:", s.ID)
	field("title:", s.Title)
	field("state:", state)
	if s.Project != "" {
		field("project:", names.place(s.Project, s.Dir))
	}
	field("workspace:", s.Workspace)
	if s.Purpose != "" {
		field("purpose:", s.Purpose)
	}
	if s.Cohort != "" {
		field("cohort:", s.Cohort)
	}
	field("started:", stamp(s.Started)+" by "+names.who(s.User, s.Agent))
	if !s.Ended.IsZero() {
		field("ended:", stamp(s.Ended)+" by "+names.who(s.EndedBy, s.EndedByAgent))
	}
	if s.Outcome != nil && s.Outcome.Summary != "" {
		field("outcome:", s.Outcome.Summary)
	}
	if !s.Abandoned.IsZero() {
		field("abandoned:", stamp(s.Abandoned)+", last activity "+stamp(s.LastActivity))
	}
	field("duration:", r.Duration.Round(time.Second).String())
	var ps []string
	for _, p := range s.Participants {
		ps = append(ps, names.who(p.User, p.Agent))
	}
	field("participants:", strings.Join(ps, ", "))
	events := fmt.Sprint(r.Events)
	if r.Truncated {
		events += fmt.Sprintf(" (counted up to %d)", session.MaxSummaryEvents)
	}
	field("events:", events)
	kinds := make([]string, 0, len(r.ByKind))
	for k := range r.ByKind {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		field("", fmt.Sprintf("%-18s %d", k, r.ByKind[k]))
	}
	field("files touched:", fmt.Sprint(len(r.Files)))
	for _, f := range r.Files {
		field("", fmt.Sprintf("%s  (%s, last %s)", f.Path, count(f.Events, "change"), stamp(f.Last)))
	}
	field("agents:", activities(r.Agents, names.agent))
	field("users:", activities(r.Users, func(id string) string { return id }))
	return tw.Flush()
}

// activities renders "qwen (qwen2.5-coder-7b): 3 events, alice: 1 event",
// each id as name renders it.
func activities(as []session.Activity, name func(id string) string) string {
	var out []string
	for _, a := range as {
		out = append(out, fmt.Sprintf("%s: %s", name(a.ID), count(a.Events, "event")))
	}
	return strings.Join(out, ", ")
}

// count renders "1 event", "2 events".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func newSessionStartCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Start a session and print its id",
		Args:  cobra.NoArgs,
	}
	f := cmd.Flags()
	f.String("title", "", "what the session is for, one line (required)")
	f.String("project", "", "the project to work in, by name or id (its root on this machine is the workspace unless --workspace names a directory inside it)")
	f.String("workspace", "", "the directory to work in, inside a registered project root (default without --project: the current directory)")
	f.String("purpose", "", "why, in a few sentences")
	f.String("cohort", "", "group of agents working together")
	cmd.RunE = withStore(func(e *env, _ []string) error {
		sc, err := e.scope()
		if err != nil {
			return err
		}
		var in session.Spec
		in.Title, _ = f.GetString("title")
		in.Workspace, _ = f.GetString("workspace")
		in.Project, _ = f.GetString("project")
		in.Purpose, _ = f.GetString("purpose")
		in.Cohort, _ = f.GetString("cohort")
		if in.Workspace == "" && in.Project == "" {
			if in.Workspace, err = os.Getwd(); err != nil {
				return fmt.Errorf("no --workspace and no current directory: %w", err)
			}
		}
		s, err := session.Start(e.ctx, sc, in)
		if err != nil {
			return err
		}
		if jsonOutput(e.cmd) {
			return writeJSON(e.cmd.OutOrStdout(), s)
		}
		_, err = fmt.Fprintln(e.cmd.OutOrStdout(), s.ID)
		return err
	})
	return cmd
}

func newSessionJoinCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "join ID",
		Short: "Join an open session as the acting user",
		Args:  cobra.ExactArgs(1),
		RunE: withStore(func(e *env, args []string) error {
			sc, err := e.scope()
			if err != nil {
				return err
			}
			s, err := session.Join(e.ctx, sc, args[0])
			if err != nil {
				return err
			}
			if jsonOutput(e.cmd) {
				return writeJSON(e.cmd.OutOrStdout(), s)
			}
			_, err = fmt.Fprintf(e.cmd.OutOrStdout(), "joined session %s (%d participants)\n", s.ID, len(s.Participants))
			return err
		}),
	}
}

func newSessionEndCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "end ID",
		Short: "End an open or abandoned session with an outcome",
		Args:  cobra.ExactArgs(1),
	}
	cmd.Flags().String("status", "completed", "completed, failed or cancelled")
	cmd.Flags().String("summary", "", "what came of it")
	cmd.RunE = withStore(func(e *env, args []string) error {
		sc, err := e.scope()
		if err != nil {
			return err
		}
		var out session.Outcome
		status, _ := e.cmd.Flags().GetString("status")
		out.Status = session.Status(status)
		out.Summary, _ = e.cmd.Flags().GetString("summary")
		s, err := session.End(e.ctx, sc, args[0], out)
		if err != nil {
			return err
		}
		if jsonOutput(e.cmd) {
			return writeJSON(e.cmd.OutOrStdout(), s)
		}
		_, err = fmt.Fprintf(e.cmd.OutOrStdout(), "session %s ended: %s after %s\n", s.ID, s.Outcome.Status, s.Ended.Sub(s.Started).Round(time.Second))
		return err
	})
	return cmd
}

func newSessionSweepCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sweep",
		Short: "Mark open sessions with no activity for --idle as abandoned, and list them",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().Duration("idle", 2*time.Hour, "how long without activity makes a session abandoned")
	cmd.RunE = withStore(func(e *env, _ []string) error {
		sc, err := e.scope()
		if err != nil {
			return err
		}
		idle, _ := e.cmd.Flags().GetDuration("idle")
		ss, err := session.Sweep(e.ctx, sc, idle)
		if err != nil {
			return err
		}
		w := e.cmd.OutOrStdout()
		if jsonOutput(e.cmd) {
			if ss == nil {
				ss = []session.Session{}
			}
			return writeJSON(w, ss)
		}
		names := newNamer(e, sc)
		tw := table(w, "ID", "LAST ACTIVITY", "USER", "TITLE")
		for _, s := range ss {
			row(tw, s.ID, stamp(s.LastActivity), names.who(s.User, s.Agent), s.Title)
		}
		return tw.Flush()
	})
	return cmd
}
