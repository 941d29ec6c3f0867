package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/task"
	"github.com/coditect/coditect/storage/tenant"
)

func newTaskCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "task",
		Short: "Create, assign, move and list tasks",
	}
	identityFlags(cmd)
	cmd.AddCommand(newTaskCreateCommand(), newTaskAssignCommand(), newTaskMoveCommand(), newTaskListCommand())
	return cmd
}

// printTask prints a task changed by a command.
func printTask(e *env, sc *tenant.Scope, verb string, t task.Task) error {
	w := e.cmd.OutOrStdout()
	if jsonOutput(e.cmd) {
		return writeJSON(w, t)
	}
	who := "unassigned"
	if t.Assignee != "" {
		who = "assigned to " + newNamer(e, sc).agent(t.Assignee)
	}
	_, err := fmt.Fprintf(w, "task %s %s: %s, %s, version %d\n", t.ID, verb, t.State, who, t.Version)
	return err
}

// versionFlag adds --version: the task's version as last read. Without
// it a command acts on the task as it is now.
func versionFlag(cmd *cobra.Command) {
	cmd.Flags().Int64("version", 0, "the version the change applies to; refused if the task changed since (default: the current one)")
}

// taskVersion returns --version, or the task's current version.
func taskVersion(e *env, sc *tenant.Scope, id string) (int64, error) {
	if v, _ := e.cmd.Flags().GetInt64("version"); v != 0 {
		return v, nil
	}
	t, err := task.Get(e.ctx, sc, id)
	return t.Version, err
}

func newTaskCreateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create TITLE",
		Short: "Create an open task",
		Args:  cobra.ExactArgs(1),
	}
	cmd.Flags().String("description", "", "what is to be done")
	cmd.Flags().String("project", "", "the project it belongs to (name or id)")
	cmd.RunE = withStore(func(e *env, args []string) error {
		sc, err := e.scope()
		if err != nil {
			return err
		}
		n := task.New{Title: args[0]}
		n.Description, _ = e.cmd.Flags().GetString("description")
		ref, _ := e.cmd.Flags().GetString("project")
		if n.Project, err = projectID(e, sc, ref); err != nil {
			return err
		}
		t, err := task.Create(e.ctx, sc, n)
		if err != nil {
			return err
		}
		return printTask(e, sc, "created", t)
	})
	return cmd
}

func newTaskAssignCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "assign ID [AGENT]",
		Short: "Assign a task to an agent (id or name); without AGENT, unassign it",
		Args:  cobra.RangeArgs(1, 2),
	}
	versionFlag(cmd)
	cmd.RunE = withStore(func(e *env, args []string) error {
		sc, err := e.scope()
		if err != nil {
			return err
		}
		agentID := ""
		if len(args) == 2 {
			to, err := message.Address(e.ctx, sc, args[1])
			if err != nil {
				return err
			}
			if to.Agent == "" {
				return fmt.Errorf("assign to %q: name one agent (id or name)", args[1])
			}
			agentID = to.Agent
		}
		v, err := taskVersion(e, sc, args[0])
		if err != nil {
			return err
		}
		t, err := task.Assign(e.ctx, sc, args[0], v, agentID)
		if err != nil {
			return err
		}
		return printTask(e, sc, "assigned", t)
	})
	return cmd
}

func newTaskMoveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "move ID STATE",
		Short: "Move a task to open, in_progress, review, done, blocked or cancelled",
		Args:  cobra.ExactArgs(2),
	}
	versionFlag(cmd)
	cmd.Flags().String("note", "", "a note for the log")
	cmd.RunE = withStore(func(e *env, args []string) error {
		sc, err := e.scope()
		if err != nil {
			return err
		}
		v, err := taskVersion(e, sc, args[0])
		if err != nil {
			return err
		}
		note, _ := e.cmd.Flags().GetString("note")
		t, err := task.Transition(e.ctx, sc, args[0], v, task.State(args[1]), note)
		if err != nil {
			return err
		}
		return printTask(e, sc, "moved", t)
	})
	return cmd
}

func newTaskListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tasks in creation order",
		Args:  cobra.NoArgs,
	}
	f := cmd.Flags()
	f.String("state", "", "tasks in this state")
	f.String("assignee", "", "tasks of this agent (id)")
	f.String("project", "", "tasks of this project (name or id)")
	f.Int("limit", 0, "most tasks per page (default: the layer's)")
	f.String("after", "", "continue a previous listing from the cursor it printed")
	cmd.RunE = withStore(func(e *env, _ []string) error {
		sc, err := e.readScope()
		if err != nil {
			return err
		}
		var q task.Filter
		state, _ := f.GetString("state")
		q.State = task.State(state)
		q.Assignee, _ = f.GetString("assignee")
		ref, _ := f.GetString("project")
		if q.Project, err = projectID(e, sc, ref); err != nil {
			return err
		}
		q.Limit, _ = f.GetInt("limit")
		q.After, _ = f.GetString("after")
		p, err := task.List(e.ctx, sc, q)
		if err != nil {
			return err
		}
		w := e.cmd.OutOrStdout()
		if jsonOutput(e.cmd) {
			if p.Tasks == nil {
				p.Tasks = []task.Task{}
			}
			return writeJSON(w, p)
		}
		names := newNamer(e, sc)
		tw := table(w, "ID", "STATE", "ASSIGNEE", "VERSION", "PROJECT", "TITLE")
		for _, t := range p.Tasks {
			row(tw, t.ID, string(t.State), names.agent(t.Assignee), fmt.Sprint(t.Version), names.project(t.Project), t.Title)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if p.Next != "" {
			fmt.Fprintf(e.cmd.ErrOrStderr(), "more tasks: add --after %s\n", p.Next)
		}
		return nil
	})
	return cmd
}
