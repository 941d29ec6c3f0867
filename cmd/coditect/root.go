package main

import (
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
	root.AddCommand(newVersionCommand(), newStoreCommand(), newTenantCommand(), newUserCommand(), newTokenCommand(), newSessionCommand(), newProjectCommand(), newLogCommand(), newAgentCommand(), newMCPCommand(), newWatchCommand(), newServeCommand(), newIDECommand())
	return root
}
