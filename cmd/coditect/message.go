package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/message"
)

func newMessageCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "message",
		Short: "Send messages to agents and people, read and acknowledge your inbox, list the messages sent",
	}
	identityFlags(cmd)
	cmd.AddCommand(newMessageSendCommand(), newMessageListCommand(), newMessageAckCommand())
	return cmd
}

func newMessageSendCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "send [TO] BODY",
		Short: "Send a message to an agent (id or name), a person (user:NAME), a cohort (cohort:NAME) or everyone (all), or reply with --reply-to",
		Long: "Send a message. TO is an agent id or name, user:NAME (a person of the tenant: a user id or name), " +
			"cohort:NAME or all. With --reply-to ID (a message of your inbox, from `coditect message list`) the message " +
			"joins that thread, and TO may be left out: the reply goes to the message's sender.",
		Args: cobra.RangeArgs(1, 2),
	}
	cmd.Flags().String("subject", "", "a short subject")
	cmd.Flags().String("reply-to", "", "the id of a message of your inbox this one answers")
	cmd.RunE = withStore(func(e *env, args []string) error {
		replyTo, _ := e.cmd.Flags().GetString("reply-to")
		if len(args) == 1 && replyTo == "" {
			return errors.New("send TO BODY, or --reply-to ID BODY to answer a message of your inbox")
		}
		sc, err := e.scope()
		if err != nil {
			return err
		}
		var to message.To
		if len(args) == 2 {
			if to, err = message.Address(e.ctx, sc, args[0]); err != nil {
				return err
			}
		}
		subject, _ := e.cmd.Flags().GetString("subject")
		r, err := message.Send(e.ctx, sc, message.Outgoing{To: to, Subject: subject, Body: args[len(args)-1], ReplyTo: replyTo})
		if err != nil {
			return err
		}
		if jsonOutput(e.cmd) {
			return writeJSON(e.cmd.OutOrStdout(), r)
		}
		names := newNamer(e, sc)
		shown := make([]string, len(r.Recipients))
		for i, id := range r.Recipients {
			shown[i] = recipientName(names, id)
		}
		_, err = fmt.Fprintf(e.cmd.OutOrStdout(), "message %s sent to %s: %s\n", r.ID, count(len(r.Recipients), "recipient"), strings.Join(shown, ", "))
		return err
	})
	return cmd
}

// recipientName names an inbox owner: an agent by name, a person as
// "user NAME".
func recipientName(names *namer, id string) string {
	if u, ok := strings.CutPrefix(id, "user:"); ok {
		return "user " + u
	}
	return names.agent(id)
}

// inboxList is `message list --json`: the caller's messages and unread
// count.
type inboxList struct {
	Messages []message.Message `json:"messages"`
	Unread   int64             `json:"unread"`
}

func newMessageListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List your inbox's unread messages, oldest first (--thread: a thread; --sent: the messages sent in the tenant)",
		Long: "List your inbox: the unread messages addressed to you (user:YOU), or to the agent a token is bound to, " +
			"oldest first. Reply with `coditect message send --reply-to ID BODY`; mark read with `coditect message ack ID`. " +
			"--thread ID lists a thread, read or not. --sent lists the messages sent in the tenant, newest first, from " +
			"the audit log (bodies stay in the inboxes).",
		Args: cobra.NoArgs,
	}
	cmd.Flags().String("thread", "", "list this thread of your inbox, read messages included")
	cmd.Flags().Bool("sent", false, "list the messages sent in the tenant (from the audit log) instead of your inbox")
	cmd.Flags().String("user", "", "with --sent: messages sent by this user")
	cmd.Flags().String("agent", "", "with --sent: messages sent by this agent")
	cmd.Flags().Int("limit", 50, fmt.Sprintf("most messages to print (1 to %d)", audit.MaxLimit))
	cmd.RunE = withStore(func(e *env, _ []string) error {
		fl := e.cmd.Flags()
		limit, _ := fl.GetInt("limit")
		if limit < 1 || limit > audit.MaxLimit {
			return fmt.Errorf("--limit %d: want 1 to %d", limit, audit.MaxLimit)
		}
		sent, _ := fl.GetBool("sent")
		if !sent && (fl.Changed("user") || fl.Changed("agent")) {
			return errors.New("--user and --agent filter the messages sent: add --sent")
		}
		if sent {
			return listSent(e, limit)
		}
		sc, err := e.readScope()
		if err != nil {
			return err
		}
		var out inboxList
		if th, _ := fl.GetString("thread"); th != "" {
			out.Messages, err = message.Thread(e.ctx, sc, th)
		} else {
			out.Messages, err = message.Fetch(e.ctx, sc, message.FetchOptions{Limit: limit})
		}
		if err != nil {
			return err
		}
		if out.Unread, err = message.Unread(e.ctx, sc); err != nil {
			return err
		}
		w := e.cmd.OutOrStdout()
		if jsonOutput(e.cmd) {
			if out.Messages == nil {
				out.Messages = []message.Message{}
			}
			return writeJSON(w, out)
		}
		if len(out.Messages) == 0 {
			_, err := fmt.Fprintf(w, "no unread messages (%d unread)\n", out.Unread)
			return err
		}
		names := newNamer(e, sc)
		tw := table(w, "SENT", "ID", "FROM", "THREAD", "SUBJECT", "BODY")
		for _, m := range out.Messages {
			thread := "-"
			if m.Thread != m.ID {
				thread = m.Thread
			}
			row(tw, stamp(m.Sent), m.ID, names.who(m.FromUser, m.From), thread, m.Subject, clipBody(m.Body, 80))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%d unread; reply with `coditect message send --reply-to ID BODY`, mark read with `coditect message ack ID`\n", out.Unread)
		return err
	})
	return cmd
}

// clipBody is a body on one line, at most n runes.
func clipBody(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// listSent lists the messages sent in the tenant from the audit log.
func listSent(e *env, limit int) error {
	sc, err := e.readScope()
	if err != nil {
		return err
	}
	fl := e.cmd.Flags()
	q := audit.Query{Filter: audit.Filter{Kind: "message.sent"}, Order: audit.NewestFirst, Limit: limit}
	q.Filter.User, _ = fl.GetString("user")
	q.Filter.Agent, _ = fl.GetString("agent")
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
}

func newMessageAckCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ack ID...",
		Short: "Mark messages of your inbox read",
		Args:  cobra.MinimumNArgs(1),
	}
	cmd.RunE = withStore(func(e *env, args []string) error {
		sc, err := e.scope()
		if err != nil {
			return err
		}
		n, err := message.Ack(e.ctx, sc, args...)
		if err != nil {
			return err
		}
		un, err := message.Unread(e.ctx, sc)
		if err != nil {
			return err
		}
		if jsonOutput(e.cmd) {
			return writeJSON(e.cmd.OutOrStdout(), struct {
				Acked  int   `json:"acked"`
				Unread int64 `json:"unread"`
			}{n, un})
		}
		_, err = fmt.Fprintf(e.cmd.OutOrStdout(), "%s marked read; %d unread\n", count(n, "message"), un)
		return err
	})
	return cmd
}
