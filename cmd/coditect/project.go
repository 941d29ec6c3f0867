package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
)

func newProjectCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "project",
		Short: "Register, list, show and remove the tenant's projects and their checkout roots",
		Long: "A project is a code base the tenant works on: a name, optionally its git remote, and its checkout\n" +
			"roots, one or more directories per machine. Sessions, leases, tasks and file events belong to a\n" +
			"project, and the files tools reach nothing outside the roots of the caller's tenant.\n\n" +
			"Only an admin (or the local operator, on the store of this machine) registers projects and roots;\n" +
			"members use the roots registered for them.",
	}
	identityFlags(cmd)
	cmd.AddCommand(newProjectAddCommand(), newProjectListCommand(), newProjectShowCommand(), newProjectRemoveCommand(), newProjectPolicyCommand())
	return cmd
}

func newProjectAddCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "add NAME DIR",
		Short: "Register DIR as a checkout root of project NAME, creating the project when it is new (admins only)",
		Long: "Register the directory DIR as a checkout root of the project NAME, creating the project when the\n" +
			"tenant has none of that name. A root is an existing directory (on another machine with --machine),\n" +
			"never /, /proc, /sys or /dev nor a directory holding the store or its spool, and it never contains\n" +
			"or lies inside another root registered on the same machine. Adding a root the project has already\n" +
			"changes nothing.",
		Args: cobra.ExactArgs(2),
	}
	cmd.Flags().String("remote", "", "the project's git remote, e.g. git@github.com:acme/webapp.git (when it is created)")
	cmd.Flags().String("machine", "", "the machine DIR is on (default: this one, "+project.Machine()+")")
	cmd.RunE = withStore(func(e *env, args []string) error {
		sc, err := e.scope()
		if err != nil {
			return err
		}
		name, dir := args[0], args[1]
		remote, _ := e.cmd.Flags().GetString("remote")
		machine, _ := e.cmd.Flags().GetString("machine")
		if !filepath.IsAbs(dir) && (machine == "" || machine == project.Machine()) {
			if dir, err = filepath.Abs(dir); err != nil {
				return err
			}
		}
		if err := project.CanRegister(sc); err != nil {
			return err
		}
		p, err := project.Get(e.ctx, sc, name)
		created := false
		switch {
		case errors.Is(err, project.ErrNotFound):
			if p, err = project.Create(e.ctx, sc, project.Spec{Name: name, Remote: remote}); err != nil {
				return err
			}
			created = true
		case err != nil:
			return err
		case remote != "" && remote != p.Remote:
			return fmt.Errorf("project %s exists with remote %q, not %q: drop --remote to add a root to it", p.Name, p.Remote, remote)
		}
		u, err := storeURL(e.cmd)
		if err != nil {
			return err
		}
		p2, err := project.AddRoot(e.ctx, sc, p.ID, dir, project.RootOptions{Machine: machine, Protected: storage.OwnFiles(u)})
		if err != nil {
			if created {
				// A project made for a root that cannot be registered
				// would only be in the way of the next attempt.
				if _, rerr := project.Remove(e.ctx, sc, p.ID); rerr != nil {
					return fmt.Errorf("%w (and removing the new project %s failed: %v)", err, p.Name, rerr)
				}
			}
			return err
		}
		return printProject(e.cmd, p2)
	})
	return cmd
}

func newProjectListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the tenant's projects with their roots on this machine",
		Args:  cobra.NoArgs,
		RunE: withStore(func(e *env, _ []string) error {
			sc, err := e.readScope()
			if err != nil {
				return err
			}
			ps, err := project.List(e.ctx, sc)
			if err != nil {
				return err
			}
			w := e.cmd.OutOrStdout()
			if jsonOutput(e.cmd) {
				return writeRecords(w, ps, false)
			}
			machine := project.Machine()
			tw := table(w, "NAME", "ID", "REMOTE", "ROOTS ON THIS MACHINE")
			for _, p := range ps {
				row(tw, p.Name, p.ID, p.Remote, rootsText(p, machine))
			}
			return tw.Flush()
		}),
	}
}

// rootsText renders a project's roots on machine, and how many it has on
// other machines.
func rootsText(p project.Project, machine string) string {
	here := p.RootsOn(machine)
	s := strings.Join(here, ", ")
	if n := len(p.Roots) - len(here); n > 0 {
		if s != "" {
			s += " "
		}
		s += fmt.Sprintf("(+%d on other machines)", n)
	}
	return s
}

func newProjectShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME|ID",
		Short: "Show a project and every root it has, on every machine",
		Args:  cobra.ExactArgs(1),
		RunE: withStore(func(e *env, args []string) error {
			sc, err := e.readScope()
			if err != nil {
				return err
			}
			p, err := project.Get(e.ctx, sc, args[0])
			if err != nil {
				return err
			}
			return printProject(e.cmd, p)
		}),
	}
}

func newProjectRemoveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remove NAME|ID",
		Short: "Remove a project, or with --root one of its roots (admins only); events and tasks that name it stay",
		Args:  cobra.ExactArgs(1),
	}
	cmd.Flags().String("root", "", "remove only this root directory of the project")
	cmd.Flags().String("machine", "", "the machine of --root (default: this one)")
	cmd.RunE = withStore(func(e *env, args []string) error {
		sc, err := e.scope()
		if err != nil {
			return err
		}
		root, _ := e.cmd.Flags().GetString("root")
		machine, _ := e.cmd.Flags().GetString("machine")
		if root == "" {
			if machine != "" {
				return fmt.Errorf("--machine names the machine of --root: add --root DIR, or drop --machine to remove the whole project")
			}
			p, err := project.Remove(e.ctx, sc, args[0])
			if err != nil {
				return err
			}
			if jsonOutput(e.cmd) {
				return writeJSON(e.cmd.OutOrStdout(), p)
			}
			_, err = fmt.Fprintf(e.cmd.OutOrStdout(), "project %s (%s) removed with its %s\n", p.Name, p.ID, count(len(p.Roots), "root"))
			return err
		}
		if !filepath.IsAbs(root) && (machine == "" || machine == project.Machine()) {
			if root, err = filepath.Abs(root); err != nil {
				return err
			}
		}
		p, err := project.RemoveRoot(e.ctx, sc, args[0], machine, root)
		if err != nil {
			return err
		}
		return printProject(e.cmd, p)
	})
	return cmd
}

// printProject writes one project: its record with --json, else its fields
// and a table of its roots.
func printProject(cmd *cobra.Command, p project.Project) error {
	w := cmd.OutOrStdout()
	if jsonOutput(cmd) {
		return writeJSON(w, p)
	}
	tw := table(w)
	field := func(key, value string) { fmt.Fprintf(tw, "%s\t%s\n", key, cell(value)) }
	field("name:", p.Name)
	field("id:", p.ID)
	field("remote:", p.Remote)
	created := stamp(p.Created)
	if p.CreatedBy != "" {
		created += " by " + p.CreatedBy
	}
	field("created:", created)
	field("roots:", fmt.Sprint(len(p.Roots)))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(p.Roots) == 0 {
		return nil
	}
	return printRoots(w, p.Roots)
}

func printRoots(w io.Writer, roots []project.Root) error {
	here := project.Machine()
	tw := table(w, "MACHINE", "PATH", "ADDED", "BY")
	for _, r := range roots {
		m := r.Machine
		if m == here {
			m += " (this machine)"
		}
		row(tw, m, r.Path, stamp(r.Added), r.AddedBy)
	}
	return tw.Flush()
}

// projectID resolves a project name or id of the scope's tenant to its id
// ("" for ""), for the --project filters.
func projectID(e *env, sc *tenant.Scope, ref string) (string, error) {
	if ref == "" {
		return "", nil
	}
	p, err := project.Get(e.ctx, sc, ref)
	if err != nil {
		return "", err
	}
	return p.ID, nil
}

// projectNames maps the tenant's project ids to their names, for listings
// that show a project.
func projectNames(e *env, sc *tenant.Scope) (map[string]string, error) {
	ps, err := project.List(e.ctx, sc)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(ps))
	for _, p := range ps {
		out[p.ID] = p.Name
	}
	return out, nil
}
