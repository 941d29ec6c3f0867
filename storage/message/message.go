// Package message owns the messages agents and people send each other: to
// one agent, to one person (a user of the tenant), to every member of a
// cohort, or to every agent of the tenant (fanned out to the members at
// send time, retired agents included). Each agent and each person has an
// inbox ordered by versionstamp (a person's is keyed "user:" + user id and
// is private to that user); delivery is at-least-once:
// Fetch returns unacknowledged messages (optionally waiting on a watch of
// the inbox head until one arrives) and keeps returning them until Ack.
// A reply names the message it answers (ReplyTo) and joins its thread.
//
// Every send and ack is one transaction that also appends its audit event
// (message.sent, message.acked); other layers send from inside their own
// transactions with NewWriter (the lease layer notifies a holder of a
// forced release that way).
//
// It imports storage/kv, storage/keyspace, storage/audit, storage/tenant,
// storage/agent and storage/txhook (the shape of SendWith's Hook). It must
// not import storage/lease or storage/task (they import it) nor any
// transport.
package message

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/errclass"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/storage/txhook"
)

// Limits.
const (
	MaxSubject = 200
	MaxBody    = 32 << 10
	// MaxRecipients bounds one send's fan-out.
	MaxRecipients = 1000
	// MaxFanOutBytes bounds the body bytes one send writes across its
	// recipients, well under a transaction's 10 MB.
	MaxFanOutBytes = 4 << 20
	DefaultLimit   = 50
	MaxLimit       = 500
	// MaxAck is the most messages one Ack acknowledges.
	MaxAck = 500
	// MaxIdempotencyKey is the longest idempotency key, in bytes.
	MaxIdempotencyKey = 200
	// MaxWait is the longest Fetch waits for a message.
	MaxWait = 10 * time.Minute
	// maxExamine bounds the messages one read looks at.
	maxExamine = 10_000
)

// Errors, wrapped with detail; match them with errors.Is. Permission
// errors wrap tenant.ErrForbidden; an unknown recipient wraps
// agent.ErrNotFound.
var (
	// ErrInvalid: an argument is missing, malformed or too large.
	ErrInvalid = errclass.New(errclass.Invalid, "invalid argument")
	// ErrNotFound: no message with that id in the caller's inbox.
	ErrNotFound = errclass.New(errclass.NotFound, "message not found")
	// ErrNoUser: no enabled user of the tenant has that id or name.
	ErrNoUser = errclass.New(errclass.NotFound, "no such user")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("message: %w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// To addresses a message: set exactly one field.
type To struct {
	Agent string `json:"agent,omitempty"`
	// User is a person: a user id of the tenant.
	User   string `json:"user,omitempty"`
	Cohort string `json:"cohort,omitempty"`
	All    bool   `json:"all,omitempty"`
}

// String renders the address: "agent:ID", "user:ID", "cohort:NAME" or
// "all".
func (t To) String() string {
	switch {
	case t.Agent != "":
		return "agent:" + t.Agent
	case t.User != "":
		return userInbox(t.User)
	case t.Cohort != "":
		return "cohort:" + t.Cohort
	case t.All:
		return "all"
	}
	return ""
}

// Outgoing is a message to send.
type Outgoing struct {
	// To is the address. It may be left empty in a reply, which then goes
	// to the sender of the message replied to (an agent or a person).
	To      To
	Subject string
	// Body is the text; required.
	Body string
	// ReplyTo is the id of a message in the sender's inbox that this one
	// answers; the reply joins its thread.
	ReplyTo string
	// IdempotencyKey, when set, makes the send exactly-once: sending again
	// with the same key (a retry) delivers nothing more and returns the
	// first send's id. Send sets a random one when it is empty, so that a
	// transaction FoundationDB retries after commit_unknown_result does not
	// deliver twice. Keys are remembered for audit.IdempotencyWindow.
	IdempotencyKey string
}

// Message is a message in an inbox.
type Message struct {
	// ID is the send's versionstamp as 24 hex digits: the same for every
	// recipient of one send, and the inbox order.
	ID string `json:"id"`
	// Thread is the ID of the first message of the thread.
	Thread   string `json:"thread"`
	ReplyTo  string `json:"reply_to,omitempty"`
	From     string `json:"from,omitempty"` // sending agent; empty when a person sent it
	FromUser string `json:"from_user"`
	// To is the address as sent ("agent:ID", "user:ID", "cohort:NAME",
	// "all").
	To string `json:"to"`
	// Recipient is the inbox's owner: an agent id, or "user:" and a user
	// id.
	Recipient string    `json:"recipient"`
	Subject   string    `json:"subject,omitempty"`
	Body      string    `json:"body"`
	Sent      time.Time `json:"sent"`
	// Acked is when the recipient acknowledged it; zero while unread.
	Acked time.Time `json:"acked,omitzero"`
}

// stored is an inbox entry's value.
type stored struct {
	Thread   string    `json:"th,omitempty"` // empty: the message starts its thread
	ReplyTo  string    `json:"re,omitempty"`
	From     string    `json:"f,omitempty"`
	FromUser string    `json:"fu"`
	To       string    `json:"to"`
	Subject  string    `json:"s,omitempty"`
	Body     string    `json:"b"`
	Sent     time.Time `json:"t"`
	Acked    time.Time `json:"ack,omitzero"`
}

func decode(recipient string, vs kv.Versionstamp, v []byte) (Message, error) {
	var s stored
	if err := json.Unmarshal(v, &s); err != nil {
		return Message{}, fmt.Errorf("message: corrupt message %s for %s: %w", vs, recipient, err)
	}
	m := Message{ID: vs.String(), Thread: s.Thread, ReplyTo: s.ReplyTo, From: s.From, FromUser: s.FromUser,
		To: s.To, Recipient: recipient, Subject: s.Subject, Body: s.Body, Sent: s.Sent, Acked: s.Acked}
	if m.Thread == "" {
		m.Thread = m.ID
	}
	return m, nil
}

// self returns the owner of the caller's inbox: the agent the scope acts
// as, or else the scope's user ("user:" + id).
func self(sc *tenant.Scope) (string, error) {
	p := sc.Principal()
	if p.Agent == "" {
		return personInbox(p.User)
	}
	if _, err := sc.Space().Agent(p.Agent); err != nil {
		return "", invalid("%v", err)
	}
	if strings.HasPrefix(p.Agent, userPrefix) {
		// Acting as "agent user:bob" must not open bob's inbox.
		return "", invalid("agent id %q is not an agent's", textclip.Clip(p.Agent, 80))
	}
	return p.Agent, nil
}

// parseID parses a message id.
func parseID(field, id string) (kv.Versionstamp, error) {
	vs, ok := kv.ParseVersionstamp(id)
	if !ok || !vs.IsComplete() || vs.IsZero() {
		return vs, invalid("%s %q is not a message id; send the 24 hex digits of a Message.ID", field, textclip.Clip(id, 40))
	}
	return vs, nil
}

// Receipt reports a send.
type Receipt struct {
	ID         string   `json:"id"`
	Thread     string   `json:"thread"`
	Recipients []string `json:"recipients"`
}

// Pending is a send inside a transaction that has not committed yet.
type Pending struct {
	order      uint16
	thread     string
	recipients []string
	earlier    kv.Versionstamp // the first send's commit, for a repeated idempotency key
}

// Duplicate reports whether the send repeated an earlier one's idempotency
// key and delivered nothing.
func (p Pending) Duplicate() bool { return !p.earlier.IsZero() }

// Receipt returns the send's receipt given the stamp the transaction's
// Update returned.
func (p Pending) Receipt(commit kv.Versionstamp) Receipt {
	if p.Duplicate() {
		commit = p.earlier
	}
	id := commit.WithUserVersion(p.order).String()
	th := p.thread
	if th == "" {
		th = id
	}
	return Receipt{ID: id, Thread: th, Recipients: p.recipients}
}

// Writer sends messages inside a caller's transaction, appending their
// audit events to the caller's audit Writer. Use one per transaction
// attempt, like audit.Writer.
type Writer struct {
	tx   kv.Tx
	aw   *audit.Writer
	sc   *tenant.Scope
	now  time.Time
	next int
}

// NewWriter returns a Writer for tx; sent messages carry time now.
func NewWriter(tx kv.Tx, aw *audit.Writer, sc *tenant.Scope, now time.Time) *Writer {
	return &Writer{tx: tx, aw: aw, sc: sc, now: now.UTC()}
}

// validate checks what can be checked without reading.
func (m Outgoing) validate() error {
	n := 0
	if m.To.Agent != "" {
		n++
		if err := agent.CheckText("to.agent", m.To.Agent, keyspace.MaxIDSize, true); err != nil {
			return invalid("%v; send an agent id", err)
		}
	}
	if m.To.Cohort != "" {
		n++
		if err := agent.CheckText("to.cohort", m.To.Cohort, agent.MaxCohort, true); err != nil {
			return invalid("%v; send a cohort name", err)
		}
	}
	if m.To.User != "" {
		n++
		if err := agent.CheckText("to.user", m.To.User, maxUserID, true); err != nil {
			return invalid("%v; send a user id", err)
		}
	}
	if m.To.All {
		n++
	}
	if n > 1 || n == 0 && m.ReplyTo == "" {
		return invalid("address the message to exactly one of to.agent, to.user, to.cohort or to.all")
	}
	if err := agent.CheckText("subject", m.Subject, MaxSubject, false); err != nil {
		return invalid("%v", err)
	}
	if m.Body == "" {
		return invalid("body is empty; send the message text")
	}
	if len(m.Body) > MaxBody {
		return invalid("body of %d bytes exceeds the limit of %d bytes; send a shorter message (or a path to a file)", len(m.Body), MaxBody)
	}
	// Bodies may hold newlines and tabs; refuse invalid UTF-8 and NUL.
	if !utf8.ValidString(m.Body) || strings.IndexByte(m.Body, 0) >= 0 {
		return invalid("body is not valid UTF-8 text (or holds a NUL byte); send text")
	}
	if m.ReplyTo != "" {
		if _, err := parseID("reply_to", m.ReplyTo); err != nil {
			return err
		}
	}
	if err := agent.CheckText("idempotency key", m.IdempotencyKey, MaxIdempotencyKey, false); err != nil {
		return invalid("%v", err)
	}
	return nil
}

// Send writes m to its recipients' inboxes and appends message.sent.
func (w *Writer) Send(m Outgoing) (Pending, error) {
	if err := w.sc.CanWrite(); err != nil {
		return Pending{}, err
	}
	if err := m.validate(); err != nil {
		return Pending{}, err
	}
	if w.next > 0xffff {
		return Pending{}, invalid("more than %d messages in one transaction", 0xffff)
	}
	sp := w.sc.Space()
	p := w.sc.Principal()
	from := p.Agent
	if from != "" {
		if err := agent.Check(w.tx, w.sc, from); err != nil {
			return Pending{}, fmt.Errorf("message: the sender: %w", err)
		}
	}
	var thread string
	if m.ReplyTo != "" {
		// The message answered is in the sender's inbox: the agent's, or
		// the person's.
		box, err := self(w.sc)
		if err != nil {
			return Pending{}, err
		}
		parent, err := read(w.tx, w.sc, box, m.ReplyTo)
		if err != nil {
			return Pending{}, err
		}
		thread = parent.Thread
		if m.To == (To{}) {
			switch {
			case parent.From != "":
				m.To.Agent = parent.From
			case parent.FromUser != "":
				m.To.User = parent.FromUser
			default:
				return Pending{}, invalid("message %s names no sender; name a recipient in to", m.ReplyTo)
			}
		}
	}
	recipients, err := w.recipients(m.To, from)
	if err != nil {
		return Pending{}, err
	}
	if len(recipients) > MaxRecipients {
		return Pending{}, invalid("%s has %d recipients, more than the limit of %d; address a cohort instead", m.To, len(recipients), MaxRecipients)
	}
	if len(recipients)*len(m.Body) > MaxFanOutBytes {
		return Pending{}, invalid("%d recipients × %d bytes exceeds the fan-out limit of %d bytes; send a shorter body", len(recipients), len(m.Body), MaxFanOutBytes)
	}
	val, err := json.Marshal(stored{Thread: thread, ReplyTo: m.ReplyTo, From: from, FromUser: p.User, To: m.To.String(),
		Subject: m.Subject, Body: m.Body, Sent: w.now})
	if err != nil {
		return Pending{}, err
	}
	order := uint16(w.next)
	w.next++
	idem := ""
	if m.IdempotencyKey != "" {
		idem = "message:" + m.IdempotencyKey
		k, err := sp.Idempotency(idem)
		if err != nil {
			return Pending{}, invalid("%v", err)
		}
		v, err := w.tx.Get(k)
		if err != nil {
			return Pending{}, err
		}
		if earlier, ok := kv.VersionstampFromBytes(v[:min(len(v), 12)]); ok {
			return Pending{order: order, thread: thread, recipients: recipients, earlier: earlier}, nil
		}
	}
	for _, r := range recipients {
		tmpl, off, err := sp.NewInboxMessage(r, order)
		if err != nil {
			return Pending{}, invalid("%v", err)
		}
		head, _ := sp.InboxHead(r)
		unread, _ := sp.InboxUnread(r)
		w.tx.SetVersionstampedKey(tmpl, off, val)
		w.tx.Add(head, 1)
		w.tx.Add(unread, 1)
	}
	ev := w.sc.Event("message.sent", fmt.Sprintf("message %q sent to %s (%d recipients)", textclip.Clip(m.Subject, 80), m.To, len(recipients)))
	shown := recipients
	if len(shown) > 20 {
		shown = shown[:20]
	}
	ev.Attrs = map[string]any{"to": m.To.String(), "recipients": len(recipients), "recipient_ids": shown,
		"subject": m.Subject, "bytes": len(m.Body)}
	if thread != "" {
		ev.Attrs["thread"] = thread
		ev.Attrs["reply_to"] = m.ReplyTo
	}
	ev.IdempotencyKey = idem // the audit log writes the marker checked above
	if _, err := w.aw.Append(ev); err != nil {
		return Pending{}, err
	}
	return Pending{order: order, thread: thread, recipients: recipients}, nil
}

// recipients resolves an address to agent ids. Cohort and tenant-wide
// sends go to every current member but the sender, retired agents
// included.
func (w *Writer) recipients(to To, from string) ([]string, error) {
	var ids []string
	var err error
	switch {
	case to.Agent != "":
		if err := agent.Check(w.tx, w.sc, to.Agent); err != nil {
			return nil, err
		}
		return []string{to.Agent}, nil
	case to.User != "":
		if err := userExists(w.tx, w.sc, to.User); err != nil {
			return nil, err
		}
		return []string{userInbox(to.User)}, nil
	case to.Cohort != "":
		ids, err = agent.MemberIDs(w.tx, w.sc, to.Cohort)
	default:
		ids, err = agent.IDs(w.tx, w.sc)
	}
	if err != nil {
		return nil, err
	}
	ids = slices.DeleteFunc(ids, func(id string) bool { return id == from })
	if len(ids) == 0 {
		return nil, invalid("%s has no members other than the sender; nobody would receive the message", to)
	}
	return ids, nil
}

// Send sends m in its own transaction.
func Send(ctx context.Context, sc *tenant.Scope, m Outgoing) (Receipt, error) {
	r, _, err := SendWith(ctx, sc, m, Hook{})
	return r, err
}

// Hook adds a caller's reads and writes to a send's transaction (see
// SendWith): After gets the pending send and the BatchWriter that appended
// its message.sent event. With Guarded, the send needs no idempotency
// marker of its own when m has no IdempotencyKey.
type Hook = txhook.Hook[Pending]

// SendWith sends m in its own transaction, with h's reads and writes in
// it, and returns the receipt and the transaction's commit.
func SendWith(ctx context.Context, sc *tenant.Scope, m Outgoing, h Hook) (Receipt, kv.Versionstamp, error) {
	if err := sc.CanWrite(); err != nil {
		return Receipt{}, kv.Versionstamp{}, err
	}
	if err := m.validate(); err != nil {
		return Receipt{}, kv.Versionstamp{}, err
	}
	if m.IdempotencyKey == "" && !h.Guarded {
		m.IdempotencyKey = agent.NewID("send")
	}
	now := agent.Now(ctx)
	var p Pending
	stamp, err := sc.Store().Update(ctx, func(tx kv.Tx) error {
		if err := h.RunBefore(tx); err != nil {
			return err
		}
		aw := sc.Log().BatchWriter(tx)
		var err error
		if p, err = NewWriter(tx, aw, sc, now).Send(m); err != nil {
			return err
		}
		if err := h.RunAfter(tx, aw, p); err != nil {
			return err
		}
		aw.Finish()
		return nil
	})
	if err != nil {
		return Receipt{}, kv.Versionstamp{}, err
	}
	return p.Receipt(stamp), stamp, nil
}

// read returns message id of agent's inbox, unacknowledged or not.
func read(tx kv.ReadTx, sc *tenant.Scope, agentID, id string) (Message, error) {
	vs, err := parseID("id", id)
	if err != nil {
		return Message{}, err
	}
	sp := sc.Space()
	for _, build := range []func(string, kv.Versionstamp) ([]byte, error){sp.InboxMessage, sp.AckedInboxMessage} {
		key, err := build(agentID, vs)
		if err != nil {
			return Message{}, invalid("%v", err)
		}
		v, err := tx.Get(key)
		if err != nil {
			return Message{}, err
		}
		if v != nil {
			return decode(agentID, vs, v)
		}
	}
	return Message{}, fmt.Errorf("message: %w: %s is not in the inbox of %s", ErrNotFound, id, describe(agentID))
}

// Get returns a message of the caller's inbox, acknowledged or not.
func Get(ctx context.Context, sc *tenant.Scope, id string) (Message, error) {
	me, err := self(sc)
	if err != nil {
		return Message{}, err
	}
	if _, err := parseID("id", id); err != nil {
		return Message{}, err
	}
	var m Message
	err = sc.Store().View(ctx, func(tx kv.ReadTx) error {
		var err error
		m, err = read(tx, sc, me, id)
		return err
	})
	return m, err
}

// FetchOptions shape a Fetch.
type FetchOptions struct {
	// Limit is the most messages to return (DefaultLimit when 0, at most
	// MaxLimit).
	Limit int
	// After returns only messages after this id (the last one a previous
	// Fetch returned), so a consumer can page on while it has not acked.
	After string
	// Thread returns only messages of this thread.
	Thread string
	// Wait, when positive, waits up to this long (at most MaxWait) for a
	// message when there is none yet.
	Wait time.Duration
}

// Fetch returns the caller's unacknowledged messages, oldest first. With
// Wait it blocks, on a watch of the inbox head, until at least one arrives,
// the wait ends (nil, nil) or ctx ends (ctx's error). Messages stay
// unacknowledged, and are returned again, until Ack.
func Fetch(ctx context.Context, sc *tenant.Scope, o FetchOptions) ([]Message, error) {
	me, err := self(sc)
	if err != nil {
		return nil, err
	}
	if o.Limit == 0 {
		o.Limit = DefaultLimit
	}
	if o.Limit < 0 || o.Limit > MaxLimit {
		return nil, invalid("limit %d is outside [1, %d]", o.Limit, MaxLimit)
	}
	if o.Wait < 0 || o.Wait > MaxWait {
		return nil, invalid("wait %v is outside [0, %v]", o.Wait, MaxWait)
	}
	if o.Thread != "" {
		if _, err := parseID("thread", o.Thread); err != nil {
			return nil, err
		}
	}
	sp := sc.Space()
	inbox, _ := sp.Inbox(me)
	head, _ := sp.InboxHead(me)
	begin, end := inbox.Range()
	if o.After != "" {
		vs, err := parseID("after", o.After)
		if err != nil {
			return nil, err
		}
		k, _ := sp.InboxMessage(me, vs)
		begin = kv.KeyAfter(k)
	}
	var timeout <-chan time.Time
	if o.Wait > 0 {
		t := time.NewTimer(o.Wait)
		defer t.Stop()
		timeout = t.C
	}
	for {
		var out []Message
		var watch kv.Watch
		err := sc.Store().View(ctx, func(tx kv.ReadTx) error {
			out, watch = out[:0], nil
			it := tx.GetRange(begin, end, kv.RangeOptions{})
			examined := 0
			for examined < maxExamine && len(out) < o.Limit && it.Next() {
				examined++
				m, err := decodeEntry(inbox, me, it.KeyValue())
				if err != nil {
					return err
				}
				if o.Thread == "" || m.Thread == o.Thread {
					out = append(out, m)
				}
			}
			if err := it.Err(); err != nil {
				return err
			}
			if len(out) == 0 && o.Wait > 0 {
				watch = tx.Watch(head)
			}
			return nil
		})
		if err != nil || len(out) > 0 || watch == nil {
			if watch != nil {
				watch.Cancel()
			}
			return out, err
		}
		if done, err := await(ctx, watch, timeout); done || err != nil {
			return nil, err
		}
	}
}

// await waits for watch to fire, for timeout or for ctx to end, and
// cancels the watch in every case, which releases the store's slot for it
// (a watch that fired has released it already). done reports the timeout.
func await(ctx context.Context, watch kv.Watch, timeout <-chan time.Time) (done bool, err error) {
	defer watch.Cancel()
	fired := make(chan error, 1)
	go func() { fired <- watch.Wait(ctx) }()
	select {
	case err := <-fired:
		return false, err
	case <-timeout:
		watch.Cancel()
		<-fired
		return true, nil
	}
}

// Ack acknowledges messages of the caller's inbox: Fetch no longer returns
// them. Acknowledging one again is not an error; an id that is not in the
// inbox is, and then nothing is acknowledged. It returns how many messages
// changed state and appends one message.acked event when any did.
func Ack(ctx context.Context, sc *tenant.Scope, ids ...string) (int, error) {
	if err := sc.CanWrite(); err != nil {
		return 0, err
	}
	me, err := self(sc)
	if err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 0, invalid("no message ids; send the ids Fetch returned")
	}
	if len(ids) > MaxAck {
		return 0, invalid("%d ids exceed the limit of %d per ack", len(ids), MaxAck)
	}
	stamps := make([]kv.Versionstamp, len(ids))
	for i, id := range ids {
		if stamps[i], err = parseID("id", id); err != nil {
			return 0, err
		}
	}
	sp := sc.Space()
	unread, _ := sp.InboxUnread(me)
	now := agent.Now(ctx)
	n := 0
	_, err = sc.Store().Update(ctx, func(tx kv.Tx) error {
		n = 0
		var acked []string
		for i, vs := range stamps {
			key, _ := sp.InboxMessage(me, vs)
			done, _ := sp.AckedInboxMessage(me, vs)
			v, err := tx.Get(key)
			if err != nil {
				return err
			}
			if v == nil {
				old, err := tx.Get(done)
				if err != nil {
					return err
				}
				if old == nil {
					return fmt.Errorf("message: %w: %s is not in the inbox of %s; nothing was acknowledged", ErrNotFound, ids[i], describe(me))
				}
				continue
			}
			var s stored
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("message: corrupt message %s: %w", ids[i], err)
			}
			s.Acked = now
			b, err := json.Marshal(s)
			if err != nil {
				return err
			}
			tx.Clear(key)
			tx.Set(done, b)
			tx.Add(unread, -1)
			acked = append(acked, ids[i])
			n++
		}
		if n == 0 {
			return nil
		}
		ev := sc.Event("message.acked", fmt.Sprintf("%s acknowledged %d message(s)", describe(me), n))
		shown := acked
		if len(shown) > 20 {
			shown = shown[:20]
		}
		ev.Attrs = map[string]any{"count": n, "ids": shown}
		_, err := sc.Log().Writer(tx).Append(ev)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Unread returns the number of unacknowledged messages in the caller's
// inbox.
func Unread(ctx context.Context, sc *tenant.Scope) (int64, error) {
	me, err := self(sc)
	if err != nil {
		return 0, err
	}
	key, _ := sc.Space().InboxUnread(me)
	var n int64
	err = sc.Store().View(ctx, func(tx kv.ReadTx) error {
		v, err := tx.Get(key)
		n = kv.Int64(v)
		return err
	})
	return n, err
}

// Thread returns the messages of a thread in the caller's inbox,
// acknowledged or not, oldest first.
func Thread(ctx context.Context, sc *tenant.Scope, thread string) ([]Message, error) {
	me, err := self(sc)
	if err != nil {
		return nil, err
	}
	root, err := parseID("thread", thread)
	if err != nil {
		return nil, err
	}
	sp := sc.Space()
	inbox, _ := sp.Inbox(me)
	acked, _ := sp.AckedInbox(me)
	var out []Message
	err = sc.Store().View(ctx, func(tx kv.ReadTx) error {
		out = out[:0]
		for _, box := range []struct {
			sub keyspace.Subspace
			key func(string, kv.Versionstamp) ([]byte, error)
		}{{inbox, sp.InboxMessage}, {acked, sp.AckedInboxMessage}} {
			// Replies come after the message they answer: a thread starts
			// at its root.
			b, _ := box.key(me, root)
			_, e := box.sub.Range()
			it := tx.GetRange(b, e, kv.RangeOptions{Limit: maxExamine})
			for it.Next() {
				m, err := decodeEntry(box.sub, me, it.KeyValue())
				if err != nil {
					return err
				}
				if m.Thread == thread {
					out = append(out, m)
				}
			}
			if err := it.Err(); err != nil {
				return err
			}
		}
		slices.SortFunc(out, func(a, b Message) int { return strings.Compare(a.ID, b.ID) })
		return nil
	})
	return out, err
}

// decodeEntry decodes an inbox entry of sub.
func decodeEntry(sub keyspace.Subspace, recipient string, p kv.KeyValue) (Message, error) {
	t, err := sub.Unpack(p.Key)
	if err != nil || len(t) != 1 {
		return Message{}, fmt.Errorf("message: corrupt inbox key %s: %v", kv.DisplayKey(p.Key), err)
	}
	vs, ok := t[0].(kv.Versionstamp)
	if !ok {
		return Message{}, fmt.Errorf("message: corrupt inbox key %s", kv.DisplayKey(p.Key))
	}
	return decode(recipient, vs, p.Value)
}
