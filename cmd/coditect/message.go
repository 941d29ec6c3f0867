package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/message"
)

func newMessageCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "message",
		Short: "Send messages to agents and list the messages sent",
	}
	identityFlags(cmd)
	cmd.AddCommand(newMessageSendCommand(), newMessageListCommand())
	return cmd
}

func newMessageSendCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "send TO BODY",
		Short: "Send a message to an agent (id or name), a cohort (cohort:NAME) or everyone (all)",
		Args:  cobra.ExactArgs(2),
	}
	cmd.Flags().String("subject", "", "a short subject")
	cmd.RunE = withStore(func(e *env, args []string) error {
		sc, err := e.scope()
		if err != nil {
			return err
		}
		to, err := message.Address(e.ctx, sc, args[0])
		if err != nil {
			return err
		}
		subject, _ := e.cmd.Flags().GetString("subject")
		r, err := message.Send(e.ctx, sc, message.Outgoing{To: to, Subject: subject, Body: args[1]})
		if err != nil {
			return err
		}
		if jsonOutput(e.cmd) {
			return writeJSON(e.cmd.OutOrStdout(), r)
		}
		names := newNamer(e, sc)
		shown := make([]string, len(r.Recipients))
		for i, id := range r.Recipients {
			shown[i] = names.agent(id)
		}
		_, err = fmt.Fprintf(e.cmd.OutOrStdout(), "message %s sent to %s: %s\n", r.ID, count(len(r.Recipients), "recipient"), strings.Join(shown, ", "))
		return err
	})
	return cmd
}

func newMessageListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the messages sent in the tenant, newest first (from the audit log; bodies stay in the inboxes)",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().String("user", "", "messages sent by this user")
	cmd.Flags().String("agent", "", "messages sent by this agent")
	cmd.Flags().Int("limit", 50, fmt.Sprintf("most messages to print (1 to %d)", audit.MaxLimit))
	cmd.RunE = withStore(func(e *env, _ []string) error {
		sc, err := e.readScope()
		if err != nil {
			return err
		}
		fl := e.cmd.Flags()
		q := audit.Query{Filter: audit.Filter{Kind: "message.sent"}, Order: audit.NewestFirst}
		q.Filter.User, _ = fl.GetString("user")
		q.Filter.Agent, _ = fl.GetString("agent")
		if q.Limit, _ = fl.GetInt("limit"); q.Limit < 1 || q.Limit > audit.MaxLimit {
			return fmt.Errorf("--limit %d: want 1 to %d", q.Limit, audit.MaxLimit)
		}
		p, err := sc.Log().Query(e.ctx, q)
		if err != nil {
			return err
		}
		w := e.cmd.OutOrStdout()
		if jsonOutput(e.cmd) {
			if p.Events == nil {
				p.Events = []audit.Event{}
			}
			return writeJSON(w, p.Events)
		}
		names := newNamer(e, sc)
		tw := table(w, "SENT", "FROM", "TO", "RECIPIENTS", "SUBJECT")
		for _, ev := range p.Events {
			to := fmt.Sprint(ev.Attrs["to"])
			if id, ok := strings.CutPrefix(to, "agent:"); ok {
				to = names.agent(id)
			}
			row(tw, stamp(ev.Time), names.who(ev.User, ev.Agent), to, fmt.Sprint(ev.Attrs["recipients"]), fmt.Sprint(ev.Attrs["subject"]))
		}
		return tw.Flush()
	})
	return cmd
}
