package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coditect/coditect/storage/lease"
)

func newLeaseCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lease",
		Short: "List the agents' leases and force-release one",
	}
	identityFlags(cmd)
	cmd.AddCommand(newLeaseListCommand(), newLeaseReleaseCommand())
	return cmd
}

func newLeaseListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the leases held in the tenant, with their holders' liveness",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().String("agent", "", "leases of this agent (id)")
	cmd.RunE = withStore(func(e *env, _ []string) error {
		sc, err := e.readScope()
		if err != nil {
			return err
		}
		agentID, _ := e.cmd.Flags().GetString("agent")
		ls, err := lease.List(e.ctx, sc, agentID)
		if err != nil {
			return err
		}
		w := e.cmd.OutOrStdout()
		if jsonOutput(e.cmd) {
			if ls == nil {
				ls = []lease.Holder{}
			}
			return writeJSON(w, ls)
		}
		names := newNamer(e, sc)
		tw := table(w, "RESOURCE", "MODE", "HOLDER", "LIVENESS", "TOKEN", "EXPIRES")
		for _, l := range ls {
			live := string(l.Liveness)
			if l.Expired {
				live += " (expired)"
			}
			row(tw, l.Resource, string(l.Mode), names.agent(l.Agent), live, fmt.Sprint(l.Token), stamp(l.Expires))
		}
		return tw.Flush()
	})
	return cmd
}

func newLeaseReleaseCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "release RESOURCE",
		Short: "Force-release every lease on RESOURCE (admins only); each holder is told, and its fencing token refused",
		Args:  cobra.ExactArgs(1),
	}
	cmd.Flags().String("reason", "", "why, for the holder and the audit log (required)")
	cmd.RunE = withStore(func(e *env, args []string) error {
		sc, err := e.scope()
		if err != nil {
			return err
		}
		reason, _ := e.cmd.Flags().GetString("reason")
		ls, err := lease.ForceRelease(e.ctx, sc, args[0], reason)
		if err != nil {
			return err
		}
		w := e.cmd.OutOrStdout()
		if jsonOutput(e.cmd) {
			return writeJSON(w, ls)
		}
		names := newNamer(e, sc)
		for _, l := range ls {
			fmt.Fprintf(w, "released %s lease on %s of %s (token %d)\n", l.Mode, l.Resource, names.agent(l.Agent), l.Token)
		}
		return nil
	})
	return cmd
}
