package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "coditect",
		Short: "Coordination server for teams of LLM agents and humans working on the same code",
		// Errors are printed once, by main, without usage noise.
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.PersistentFlags().String("store", "", "store URL: sqlite:///path/to.db or fdb:///etc/foundationdb/fdb.cluster (default $CODITECT_STORE, else the embedded store under $XDG_DATA_HOME/coditect)")
	root.AddCommand(newVersionCommand(), newStoreCommand(), newTenantCommand(), newUserCommand(), newTokenCommand(), newSessionCommand(), newProjectCommand(), newLogCommand(), newAgentCommand(), newMCPCommand(), newWatchCommand(), newServeCommand(), newIDECommand(), newMessageCommand(), newTaskCommand(), newLeaseCommand(), newCoreCommand(), newReviewCommand())
	refuseUnknownSubcommands(root)
	return root
}

// refuseUnknownSubcommands gives every command group below root (store,
// log, session, …) a RunE that prints the group's help when no
// subcommand is named and fails on an unknown one. Without it cobra
// treats `coditect log list` as `coditect log` and prints the help with
// exit status 0, so a script's typo looks like success. (The root itself
// already fails on an unknown command.)
func refuseUnknownSubcommands(root *cobra.Command) {
	for _, c := range root.Commands() {
		if !c.HasSubCommands() {
			continue
		}
		if c.RunE == nil && c.Run == nil {
			c.RunE = runGroup
		}
		refuseUnknownSubcommands(c)
	}
}

func runGroup(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return fmt.Errorf("%s (its commands: %s)", msg, strings.Join(names, ", "))
}
