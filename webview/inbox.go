package webview

import (
	"net/http"
	"strings"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/message"
	"github.com/coditect/coditect/storage/tenant"
)

// A person's inbox. Messages addressed "user:NAME" land in that user's
// inbox; the caller reads and acknowledges only its own (the agent's, for
// a token bound to an agent). No route reads another person's inbox,
// admins included.

// InboxMessage is a message of the caller's inbox with its sending
// agent's name.
type InboxMessage struct {
	message.Message
	FromName string `json:"from_name,omitempty"`
}

// InboxPage is GET /api/v1/inbox's answer: the unread messages (or a
// thread's, read or not), oldest first, and the unread count.
type InboxPage struct {
	Messages []InboxMessage `json:"messages"`
	Unread   int64          `json:"unread"`
}

// listInbox is GET /api/v1/inbox?limit=&after=&thread=: the caller's
// unacknowledged messages, or with thread the whole thread as the
// caller's inbox holds it.
func (h *Handler) listInbox(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	q := r.URL.Query()
	limit, err := limitParam(q, message.MaxLimit)
	if err != nil {
		h.fail(w, err)
		return
	}
	var msgs []message.Message
	if th := q.Get("thread"); th != "" {
		msgs, err = message.Thread(r.Context(), sc, th)
	} else {
		msgs, err = message.Fetch(r.Context(), sc, message.FetchOptions{Limit: limit, After: q.Get("after")})
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	page := InboxPage{Messages: make([]InboxMessage, 0, len(msgs))}
	if page.Unread, err = message.Unread(r.Context(), sc); err != nil {
		h.fail(w, err)
		return
	}
	names := map[string]string{}
	for _, m := range msgs {
		if m.From != "" {
			names[m.From] = ""
		}
	}
	if len(names) > 0 {
		as, err := agent.List(r.Context(), sc, agent.Filter{})
		if err != nil {
			h.fail(w, err)
			return
		}
		for _, a := range as {
			if _, ok := names[a.ID]; ok {
				names[a.ID] = a.Name
			}
		}
	}
	for _, m := range msgs {
		page.Messages = append(page.Messages, InboxMessage{Message: m, FromName: names[m.From]})
	}
	writeJSON(w, http.StatusOK, page)
}

// InboxAck is the body of POST /api/v1/inbox/ack.
type InboxAck struct {
	IDs []string `json:"ids"`
}

// ackInbox acknowledges messages of the caller's inbox (members and
// admins: an acknowledgement is a write).
func (h *Handler) ackInbox(w http.ResponseWriter, r *http.Request, sc *tenant.Scope) {
	if err := sc.CanWrite(); err != nil {
		h.fail(w, err)
		return
	}
	var req InboxAck
	if !h.decodeJSON(w, r, maxActionBody, &req) {
		return
	}
	for i, id := range req.IDs {
		req.IDs[i] = strings.TrimSpace(id)
	}
	n, err := message.Ack(r.Context(), sc, req.IDs...)
	if err != nil {
		h.fail(w, err)
		return
	}
	un, err := message.Unread(r.Context(), sc)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Acked  int   `json:"acked"`
		Unread int64 `json:"unread"`
	}{n, un})
}
