package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/coditect/coditect/storage/agent"
)

func newAgentCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Inspect the tenant's agents",
	}
	identityFlags(cmd)
	list := &cobra.Command{
		Use:   "list",
		Short: "List the tenant's agents with their liveness and when they were last seen",
		Args:  cobra.NoArgs,
	}
	list.Flags().String("cohort", "", "agents of this cohort")
	list.Flags().String("liveness", "", "alive, stale or gone")
	list.Flags().Bool("active", false, "leave retired agents out")
	list.RunE = withStore(func(e *env, _ []string) error {
		sc, err := e.readScope()
		if err != nil {
			return err
		}
		var f agent.Filter
		fl := e.cmd.Flags()
		f.Cohort, _ = fl.GetString("cohort")
		live, _ := fl.GetString("liveness")
		f.Liveness = agent.Liveness(live)
		f.Active, _ = fl.GetBool("active")
		as, err := agent.List(e.ctx, sc, f)
		if err != nil {
			return err
		}
		w := e.cmd.OutOrStdout()
		if jsonOutput(e.cmd) {
			if as == nil {
				as = []agent.Agent{}
			}
			return writeJSON(w, as)
		}
		tw := table(w, "ID", "NAME", "CLIENT", "MODEL", "USER", "COHORT", "LIVENESS", "LAST SEEN", "CAPABILITIES")
		for _, a := range as {
			live := string(a.Liveness)
			if a.IsRetired() {
				live += " (retired)"
			}
			row(tw, a.ID, a.Name, a.Client, a.Model, a.User, a.Cohort, live, stamp(a.LastSeen), strings.Join(a.Capabilities, ","))
		}
		return tw.Flush()
	})
	cmd.AddCommand(list)
	return cmd
}
