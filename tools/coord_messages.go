package tools

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/message"
)

// --- messages ---

type messageSendArgs struct {
	actingAs
	To      string `json:"to"`
	Subject string `json:"subject"`
	Body    string `json:"body"`
	ReplyTo string `json:"reply_to"`
}

type messageSendOut struct {
	MessageID  string   `json:"message_id"`
	Thread     string   `json:"thread"`
	Recipients []string `json:"recipients"`
}

func messageSendTool() *Tool {
	return spec{
		name: "message_send", title: "Send a message",
		description: "Send a message to an agent, a person, a cohort or everyone, or reply with reply_to.",
		hints:       additive,
		input: `{"type":"object","required":["body"],"additionalProperties":false,"properties":{
			` + actAs + `"to":{"type":"string","description":"Agent id or name, user:NAME (a person), cohort:NAME or all; omit to reply"},
			"subject":{"type":"string","maxLength":200},
			"body":{"type":"string","maxLength":32768},
			"reply_to":{"type":"string","description":"message_id you answer"}}}`,
		output: `{"type":"object","required":["message_id","thread","recipients"],"properties":{
			"message_id":{"type":"string"},"thread":{"type":"string"},"recipients":{"type":"array","items":{"type":"string"}}}}`,
		example: `{"to":"reviewer","subject":"login fix","body":"Ready for review: src/auth/login.go"}`,
		oneTx:   true,
		handler: messageSend,
	}.tool()
}

func messageSend(ctx context.Context, c *Call) (Result, error) {
	var a messageSendArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	if err := c.text("to", a.To, maxIDArg, false, true); err != nil {
		return Result{}, err
	}
	if err := c.text("subject", a.Subject, message.MaxSubject, false, true); err != nil {
		return Result{}, err
	}
	if err := c.text("body", a.Body, message.MaxBody, true, false); err != nil {
		return Result{}, err
	}
	if err := c.text("reply_to", a.ReplyTo, 64, false, true); err != nil {
		return Result{}, err
	}
	if a.To == "" && a.ReplyTo == "" {
		return Result{}, c.argError("%q is required: an agent id or name from agents_list, \"user:NAME\" (a person of your tenant), \"cohort:NAME\" or \"all\" (or send reply_to to answer a message)", "to")
	}
	if err := c.actsAsWriter(); err != nil {
		return Result{}, err
	}
	to, err := c.address(ctx, a.To)
	if err != nil {
		return Result{}, err
	}
	result := func(r message.Receipt) Result {
		out := messageSendOut{MessageID: r.ID, Thread: r.Thread, Recipients: r.Recipients}
		return Result{Structured: out, Text: fmt.Sprintf("Sent message %s to %s (%d recipient(s)).", r.ID, strings.Join(r.Recipients, ", "), len(r.Recipients))}
	}
	// The message, the call's own record and a keyed call's result commit
	// together: one commit.
	r, _, err := message.SendWith(ctx, c.Scope, message.Outgoing{To: to, Subject: a.Subject, Body: a.Body, ReplyTo: a.ReplyTo}, message.Hook{
		Before: func(tx kv.Tx) error { return c.claimKey(tx) },
		After: func(tx kv.Tx, aw *audit.Writer, p message.Pending) error {
			return c.commitCall(tx, aw, func(commit kv.Versionstamp) Result { return result(p.Receipt(commit)) })
		},
		Guarded: c.keyed != nil,
	})
	if errors.Is(err, errKeyUsed) {
		return Result{}, err
	}
	if errors.Is(err, agent.ErrNotFound) {
		return Result{}, &toolError{err: err, msg: fmt.Sprintf("no agent %q in your tenant: call agents_list for the ids and names of the agents you can message", textclip.Clip(a.To, 80))}
	}
	if errors.Is(err, message.ErrNotFound) {
		return Result{}, &toolError{err: err, msg: fmt.Sprintf("message %q is not in your inbox: reply_to takes a message_id that inbox showed you", textclip.Clip(a.ReplyTo, 40))}
	}
	if err != nil {
		return Result{}, err
	}
	c.audited = true
	return result(r), nil
}

// address resolves a message_send "to": "all", "cohort:NAME", "user:NAME"
// (a person), an agent id, or the name of exactly one active agent of the
// tenant.
func (c *Call) address(ctx context.Context, to string) (message.To, error) {
	if to == "" {
		return message.To{}, nil // a reply: the layer addresses it
	}
	a, err := message.Address(ctx, c.Scope, to)
	if errors.Is(err, agent.ErrNotFound) {
		return a, &toolError{err: err, msg: fmt.Sprintf("no active agent is named %q: call agents_list for the ids and names of the agents you can message; to reach a person, send to \"user:\" and their user id or name", textclip.Clip(to, 80))}
	}
	if errors.Is(err, message.ErrNoUser) {
		return a, &toolError{err: err, msg: fmt.Sprintf("%q names no person of your tenant: \"user:\" takes a user id or display name (ask your human which); \"all\" reaches every agent", textclip.Clip(to, 80))}
	}
	return a, err
}

type inboxArgs struct {
	actingAs
	Ack         []string `json:"ack"`
	Limit       int      `json:"limit"`
	WaitSeconds int      `json:"wait_seconds"`
}

type messageOut struct {
	MessageID string    `json:"message_id"`
	Thread    string    `json:"thread"`
	ReplyTo   string    `json:"reply_to,omitempty"`
	From      string    `json:"from,omitempty"`
	FromName  string    `json:"from_name,omitempty"`
	FromUser  string    `json:"from_user"`
	To        string    `json:"to"`
	Subject   string    `json:"subject,omitempty"`
	Body      string    `json:"body"`
	Sent      time.Time `json:"sent"`
}

type inboxOut struct {
	Messages []messageOut `json:"messages"`
	// Acked is how many messages the ack argument acknowledged.
	Acked int `json:"acked"`
	// Unread counts the unacknowledged messages, shown or not.
	Unread int64 `json:"unread"`
}

// maxInboxWait bounds inbox's wait_seconds: a host times a tool call out.
const maxInboxWait = 60

func inboxTool() *Tool {
	return spec{
		name: "inbox", title: "Read your messages",
		description: "Read your unread messages, oldest first; pass the ids you have handled in ack so they stop showing.",
		hints:       hints{idempotent: true},
		input: `{"type":"object","additionalProperties":false,"properties":{
			` + actAs + `"ack":{"type":"array","maxItems":500,"items":{"type":"string"},"description":"message_ids to mark read"},
			"limit":{"type":"integer","minimum":1,"maximum":50},
			"wait_seconds":{"type":"integer","minimum":0,"maximum":60,"description":"Wait for a message if none is unread"}}}`,
		output: `{"type":"object","required":["messages","acked","unread"],"properties":{"messages":{"type":"array","items":{
			"type":"object","required":["message_id","thread","from_user","to","body","sent"],"properties":{
			"message_id":{"type":"string"},"thread":{"type":"string"},"reply_to":{"type":"string"},"from":{"type":"string"},
			"from_name":{"type":"string"},"from_user":{"type":"string"},"to":{"type":"string"},"subject":{"type":"string"},
			"body":{"type":"string"},"sent":{"type":"string"}}}},"acked":{"type":"integer"},"unread":{"type":"integer"}}}`,
		example: `{"ack":["0000000000001a2b00000000"],"limit":10}`,
		handler: inbox,
	}.tool()
}

func inbox(ctx context.Context, c *Call) (Result, error) {
	var a inboxArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	limit, err := c.limit(a.Limit, 10, maxPage)
	if err != nil {
		return Result{}, err
	}
	if a.WaitSeconds < 0 || a.WaitSeconds > maxInboxWait {
		return Result{}, c.argError("%q must be between 0 and %d, not %d", "wait_seconds", maxInboxWait, a.WaitSeconds)
	}
	if len(a.Ack) > message.MaxAck {
		return Result{}, c.argError("%q lists %d ids; the limit is %d", "ack", len(a.Ack), message.MaxAck)
	}
	for _, id := range a.Ack {
		if err := c.text("ack", id, 64, true, true); err != nil {
			return Result{}, err
		}
	}
	if _, err := c.me(); err != nil {
		return Result{}, err
	}
	out := inboxOut{Messages: []messageOut{}}
	if len(a.Ack) > 0 {
		n, err := message.Ack(ctx, c.Scope, a.Ack...)
		if errors.Is(err, message.ErrNotFound) {
			return Result{}, &toolError{err: err, msg: strings.TrimPrefix(strings.TrimPrefix(err.Error(), "message: "), "message not found: ") +
				": ack takes the message_ids inbox showed you"}
		}
		if err != nil {
			return Result{}, err
		}
		out.Acked = n
	}
	msgs, err := message.Fetch(ctx, c.Scope, message.FetchOptions{Limit: limit, Wait: time.Duration(a.WaitSeconds) * time.Second})
	if err != nil {
		return Result{}, err
	}
	if out.Unread, err = message.Unread(ctx, c.Scope); err != nil {
		return Result{}, err
	}
	names := map[string]string{}
	if len(msgs) > 0 {
		// The senders' names, which models use to reply.
		names = c.agentNames(ctx)
	}
	var b strings.Builder
	if out.Acked > 0 {
		fmt.Fprintf(&b, "Marked %d message(s) read.\n", out.Acked)
	}
	var ids []string
	for _, m := range msgs {
		o := messageOut{MessageID: m.ID, Thread: m.Thread, ReplyTo: m.ReplyTo, From: m.From, FromName: names[m.From],
			FromUser: m.FromUser, To: m.To, Subject: m.Subject, Body: m.Body, Sent: m.Sent.UTC()}
		out.Messages = append(out.Messages, o)
		ids = append(ids, fmt.Sprintf("%q", o.MessageID))
		from := "user " + o.FromUser
		if o.From != "" {
			from = fmt.Sprintf("agent %s (%s)", o.From, cmp.Or(o.FromName, "?"))
		}
		fmt.Fprintf(&b, "[%s] from %s to %s at %s", o.MessageID, from, o.To, o.Sent.Format(time.RFC3339))
		if o.Subject != "" {
			fmt.Fprintf(&b, ", subject %q", o.Subject)
		}
		fmt.Fprintf(&b, ":\n%s\n", o.Body)
	}
	switch {
	case len(msgs) == 0:
		b.WriteString("No unread messages.\n")
	default:
		fmt.Fprintf(&b, "%d unread in all. When handled, call inbox with {\"ack\":[%s]}; answer with message_send and reply_to.\n",
			out.Unread, strings.Join(ids, ","))
	}
	return Result{Structured: out, Text: strings.TrimSuffix(b.String(), "\n")}, nil
}
