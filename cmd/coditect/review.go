package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coditect/coditect/storage/review"
	"github.com/coditect/coditect/storage/tenant"
)

// `coditect review …` decides the proposals agents' changes became under
// a project's review policy; `coditect project policy …` sets that policy.

func newReviewCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "review",
		Short: "List, show, accept and reject the changes agents proposed under a review policy",
		Long: "Under a project's review policy (coditect project policy set), an agent's change of a covered file\n" +
			"through the files tools is not written: it waits here as a proposal holding the file's lease.\n" +
			"Accepting applies it (refused when the file changed since); rejecting sends the agent your reason.",
	}
	identityFlags(cmd)
	cmd.AddCommand(newReviewListCommand(), newReviewShowCommand(), newReviewAcceptCommand(), newReviewRejectCommand())
	return cmd
}

func newReviewListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List pending proposals, oldest first (--all: decided ones too, newest first)",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().String("project", "", "only this project's (name or id)")
	cmd.Flags().Bool("all", false, "include accepted and rejected proposals")
	cmd.RunE = withStore(func(e *env, _ []string) error {
		sc, err := e.readScope()
		if err != nil {
			return err
		}
		proj, _ := e.cmd.Flags().GetString("project")
		all, _ := e.cmd.Flags().GetBool("all")
		ps, err := review.List(e.ctx, sc, review.Filter{Project: proj, All: all})
		if err != nil {
			return err
		}
		w := e.cmd.OutOrStdout()
		if jsonOutput(e.cmd) {
			if ps == nil {
				ps = []review.Proposal{}
			}
			return writeJSON(w, ps)
		}
		names := newNamer(e, sc)
		projects, err := projectNames(e, sc)
		if err != nil {
			return err
		}
		tw := table(w, "ID", "STATE", "KIND", "PROJECT", "PATH", "AGENT", "CREATED", "DIFF")
		for _, p := range ps {
			row(tw, p.ID, string(p.State), string(p.Kind), projects[p.Project], pathText(p), names.agent(p.Agent), stamp(p.Created), fmt.Sprintf("+%d -%d", p.Added, p.Removed))
		}
		return tw.Flush()
	})
	return cmd
}

func pathText(p review.Proposal) string {
	if p.To != "" {
		return p.Path + " -> " + p.To
	}
	return p.Path
}

func newReviewShowCommand() *cobra.Command {
	return proposalCommand("show ID", "Show a proposal and its diff", true, func(e *env, sc *tenant.Scope, id string) (review.Proposal, error) {
		return review.Get(e.ctx, sc, id)
	}, printProposal)
}

func newReviewAcceptCommand() *cobra.Command {
	return proposalCommand("accept ID", "Apply a proposal (members and admins); refused when the file changed since it was proposed", false, func(e *env, sc *tenant.Scope, id string) (review.Proposal, error) {
		return review.Accept(e.ctx, sc, id)
	}, printDecided)
}

func newReviewRejectCommand() *cobra.Command {
	cmd := proposalCommand("reject ID --reason TEXT", "Reject a proposal (members and admins): nothing is written and the agent gets the reason", false, func(e *env, sc *tenant.Scope, id string) (review.Proposal, error) {
		reason, _ := e.cmd.Flags().GetString("reason")
		return review.Reject(e.ctx, sc, id, reason)
	}, printDecided)
	cmd.Flags().String("reason", "", "why, for the agent and the audit log (required)")
	return cmd
}

// proposalCommand is a review subcommand on the proposal its one argument
// names: act does it (as a read-only command with read), print prints the
// proposal act returns.
func proposalCommand(use, short string, read bool, act func(e *env, sc *tenant.Scope, id string) (review.Proposal, error), print func(*env, *tenant.Scope, review.Proposal) error) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(1)}
	cmd.RunE = scoped(read, func(e *env, sc *tenant.Scope, args []string) (review.Proposal, error) {
		return act(e, sc, args[0])
	}, print)
	return cmd
}

// scoped adapts the body of a command that acts as its caller (with read,
// as a read-only command: env.readScope) and prints what the body returns
// with print.
func scoped[T any](read bool, body func(e *env, sc *tenant.Scope, args []string) (T, error), print func(e *env, sc *tenant.Scope, v T) error) func(*cobra.Command, []string) error {
	return withStore(func(e *env, args []string) error {
		resolve := e.scope
		if read {
			resolve = e.readScope
		}
		sc, err := resolve()
		if err != nil {
			return err
		}
		v, err := body(e, sc, args)
		if err != nil {
			return err
		}
		return print(e, sc, v)
	})
}

func printProposal(e *env, sc *tenant.Scope, p review.Proposal) error {
	w := e.cmd.OutOrStdout()
	if jsonOutput(e.cmd) {
		return writeJSON(w, p)
	}
	projects, err := projectNames(e, sc)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "proposal %s: %s of %s in project %s by %s, %s (policy %s)\n", p.ID, p.Kind, pathText(p), projects[p.Project], newNamer(e, sc).agent(p.Agent), stamp(p.Created), p.Glob)
	switch p.State {
	case review.Pending:
		fmt.Fprintln(w, "pending: accept with `coditect review accept "+p.ID+"` or reject with `coditect review reject "+p.ID+" --reason …`")
	case review.Accepted:
		fmt.Fprintf(w, "accepted by %s at %s\n", p.DecidedBy, stamp(p.Decided))
	case review.Rejected:
		fmt.Fprintf(w, "rejected by %s at %s: %s\n", p.DecidedBy, stamp(p.Decided), p.Reason)
	}
	if p.Diff != "" {
		fmt.Fprintln(w)
		fmt.Fprint(w, p.Diff)
		if !strings.HasSuffix(p.Diff, "\n") {
			fmt.Fprintln(w)
		}
	}
	return nil
}

// printDecided prints a proposal accept or reject decided: its record
// with --json, else what the decision did.
func printDecided(e *env, _ *tenant.Scope, p review.Proposal) error {
	w := e.cmd.OutOrStdout()
	if jsonOutput(e.cmd) {
		return writeJSON(w, p)
	}
	var err error
	if p.State == review.Accepted {
		_, err = fmt.Fprintf(w, "accepted %s: %s of %s is written; the agent is told\n", p.ID, p.Kind, pathText(p))
	} else {
		_, err = fmt.Fprintf(w, "rejected %s: nothing written; the agent got the reason\n", p.ID)
	}
	return err
}

// newProjectPolicyCommand is `coditect project policy set|clear|show`.
func newProjectPolicyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Set, clear and show a project's review policy (changes need an admin or the local operator)",
		Long: "A review policy makes agents' changes of the files its globs match (relative to the project root,\n" +
			"\"src/auth/**\") proposals a person accepts or rejects (coditect review) instead of writes.",
	}
	set := &cobra.Command{
		Use:   "set PROJECT --glob GLOB [--glob GLOB…] [--agent NAME…]",
		Short: "Replace the project's policy: the globs, for the agents named (default: every agent)",
		Args:  cobra.ExactArgs(1),
	}
	set.Flags().StringArray("glob", nil, "a path glob relative to the project root, e.g. 'src/auth/**' (repeatable; required)")
	set.Flags().StringArray("agent", nil, "an agent's name or id the globs apply to (repeatable; default: all agents)")
	set.RunE = scoped(false, func(e *env, sc *tenant.Scope, args []string) (review.Policy, error) {
		globs, _ := e.cmd.Flags().GetStringArray("glob")
		agents, _ := e.cmd.Flags().GetStringArray("agent")
		if len(globs) == 0 {
			return review.Policy{}, fmt.Errorf("--glob is required: a path glob relative to the project root, e.g. 'src/auth/**' (coditect project policy clear removes the policy)")
		}
		rules := make([]review.Rule, len(globs))
		for i, g := range globs {
			rules[i] = review.Rule{Glob: g, Agents: agents}
		}
		return review.SetPolicy(e.ctx, sc, args[0], rules)
	}, printPolicy)
	clear := &cobra.Command{
		Use:   "clear PROJECT",
		Short: "Remove the project's policy: agents' changes are written at once again",
		Args:  cobra.ExactArgs(1),
	}
	clear.RunE = scoped(false, func(e *env, sc *tenant.Scope, args []string) (review.Policy, error) {
		return review.ClearPolicy(e.ctx, sc, args[0])
	}, printPolicy)
	show := &cobra.Command{
		Use:   "show [PROJECT]",
		Short: "Show a project's policy (without PROJECT: every project that has one)",
		Args:  cobra.MaximumNArgs(1),
	}
	show.RunE = withStore(func(e *env, args []string) error {
		sc, err := e.readScope()
		if err != nil {
			return err
		}
		if len(args) == 1 {
			p, err := review.GetPolicy(e.ctx, sc, args[0])
			if err != nil {
				return err
			}
			return printPolicy(e, sc, p)
		}
		ps, err := review.Policies(e.ctx, sc)
		if err != nil {
			return err
		}
		if jsonOutput(e.cmd) {
			if ps == nil {
				ps = []review.Policy{}
			}
			return writeJSON(e.cmd.OutOrStdout(), ps)
		}
		for _, p := range ps {
			if err := printPolicy(e, sc, p); err != nil {
				return err
			}
		}
		return nil
	})
	cmd.AddCommand(set, clear, show)
	return cmd
}

func printPolicy(e *env, sc *tenant.Scope, p review.Policy) error {
	w := e.cmd.OutOrStdout()
	if jsonOutput(e.cmd) {
		return writeJSON(w, p)
	}
	projects, err := projectNames(e, sc)
	if err != nil {
		return err
	}
	name := projects[p.Project]
	if len(p.Rules) == 0 {
		fmt.Fprintf(w, "project %s has no review policy: agents' changes are written at once\n", name)
		return nil
	}
	fmt.Fprintf(w, "project %s: review before write\n", name)
	for _, r := range p.Rules {
		who := "every agent"
		if len(r.Agents) > 0 {
			who = strings.Join(r.Agents, ", ")
		}
		fmt.Fprintf(w, "  %s  (%s)\n", r.Glob, who)
	}
	return nil
}
