package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/session"
)

// Limits of what a tool.called event records of the arguments.
const (
	// maxAuditString is the longest string value kept; longer ones are cut.
	maxAuditString = 256
	// maxAuditArgs is the most bytes of (redacted, cut) arguments kept;
	// beyond it only the argument names are recorded.
	maxAuditArgs = 2048
	// auditTimeout bounds the append of a tool.called event, which runs
	// even when the call's own context was canceled.
	auditTimeout = 10 * time.Second
)

// Audit records every tool call in the caller's tenant audit log as a
// tool.called event: the agent and user (from the scope), the tool, the
// outcome, the duration, the host's clientInfo, the error text of a failed
// call, and the arguments with secrets redacted and long values cut. A call
// that names a session_id is indexed under that session, so the session's
// summary counts it.
//
// The event of a call that may write is appended before the call returns,
// in its own transaction, with a context that outlives a canceled call:
// when the caller sees the result, the record is durable. The event of a
// read-only call goes to queue, when there is one, which commits such
// events in batches in the background (see AuditQueue): a read then costs
// no commit of its own. A handler whose whole effect is one audit append
// (note) appends its tool.called event in that same transaction
// (Call.toolEventOK), and the middleware appends nothing. If an append
// fails, the call's result still reaches the caller and the failure is
// logged: the tool's own effects (and their events) are already committed.
func Audit(logger *slog.Logger, queue *AuditQueue) Middleware {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return func(next Handler) Handler {
		return func(ctx context.Context, c *Call) (Result, error) {
			res, err := next(ctx, c)
			if c.audited {
				return res, err // committed with the call's own effect
			}
			ev := ToolEvent(c, err, time.Since(c.Started))
			if queue != nil && c.Tool.ReadOnly() {
				queue.add(c.Scope.Log(), ev)
				return res, err
			}
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
			defer cancel()
			if _, aerr := c.Scope.Log().Append(actx, ev); aerr != nil {
				logger.Error("tool call not audited", "tool", c.Tool.Name(), "tenant", c.Scope.Tenant(), "err", aerr)
			}
			return res, err
		}
	}
}

// AuditQueue commits the tool.called events of read-only calls in the
// background, many per transaction (one per tenant per batch). It holds at
// most its size of events: when it is full, a call waits for room, so load
// slows reads down instead of dropping records. Events still queued when
// the process dies are lost; Flush and Close commit everything queued.
type AuditQueue struct {
	ch     chan queued
	done   chan struct{}
	logger *slog.Logger
}

type queued struct {
	log   *audit.Log
	ev    audit.Event
	flush chan struct{} // a Flush marker when non-nil
}

// maxAuditBatch bounds the events one background transaction appends.
const maxAuditBatch = 256

// NewAuditQueue starts a queue of size events (at least maxAuditBatch).
func NewAuditQueue(size int, logger *slog.Logger) *AuditQueue {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	q := &AuditQueue{ch: make(chan queued, max(size, maxAuditBatch)), done: make(chan struct{}), logger: logger}
	go q.run()
	return q
}

func (q *AuditQueue) add(l *audit.Log, ev audit.Event) { q.ch <- queued{log: l, ev: ev} }

// Flush returns once every event queued before it was committed (or its
// failure logged), or when ctx ends.
func (q *AuditQueue) Flush(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case q.ch <- queued{flush: done}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close flushes the queue and stops it. No event may be added after.
func (q *AuditQueue) Close(ctx context.Context) error {
	close(q.ch)
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// auditLinger is how long the queue waits for more events before it
// commits a batch: a few milliseconds of exposure to a crash buy batches
// of many events when calls come fast, so a read's audit record costs a
// fraction of a commit.
const auditLinger = 2 * time.Millisecond

func (q *AuditQueue) run() {
	defer close(q.done)
	timer := time.NewTimer(auditLinger)
	for first := range q.ch {
		batch := []queued{first}
		timer.Reset(auditLinger)
	collect:
		for len(batch) < maxAuditBatch && batch[len(batch)-1].flush == nil {
			select {
			case it, ok := <-q.ch:
				if !ok {
					break collect
				}
				batch = append(batch, it)
			case <-timer.C:
				break collect
			}
		}
		q.commit(batch)
	}
}

// commit appends a batch, one transaction per tenant, then releases the
// flushes it carried.
func (q *AuditQueue) commit(batch []queued) {
	var order []string
	logs := map[string]*audit.Log{}
	evs := map[string][]audit.Event{}
	var flushes []chan struct{}
	for _, it := range batch {
		if it.flush != nil {
			flushes = append(flushes, it.flush)
			continue
		}
		t := it.log.Tenant()
		if _, ok := logs[t]; !ok {
			order = append(order, t)
			logs[t] = it.log
		}
		evs[t] = append(evs[t], it.ev)
	}
	for _, t := range order {
		ctx, cancel := context.WithTimeout(context.Background(), auditTimeout)
		_, err := logs[t].Append(ctx, evs[t]...)
		if err != nil && len(evs[t]) > 1 {
			// One bad event must not sink the others: append one by one.
			for _, ev := range evs[t] {
				if _, err1 := logs[t].Append(ctx, ev); err1 != nil {
					q.logger.Error("tool call not audited", "tenant", t, "tool", ev.Attrs["tool"], "err", err1)
				}
			}
		} else if err != nil {
			q.logger.Error("tool call not audited", "tenant", t, "tool", evs[t][0].Attrs["tool"], "err", err)
		}
		cancel()
	}
	for _, f := range flushes {
		close(f)
	}
}

// ToolEvent returns the tool.called event of a call that ended with err
// after d: the tool, outcome, duration, client, error text and redacted
// arguments, plus what the handler recorded (Call.record) and the path it
// touched.
func ToolEvent(c *Call, err error, d time.Duration) audit.Event {
	outcome := Classify(err)
	ms := float64(d.Microseconds()) / 1000
	summary := fmt.Sprintf("%s %s in %.1f ms", c.Tool.Name(), outcome, ms)
	ev := c.Scope.Event("tool.called", summary)
	attrs := map[string]any{
		"tool":        c.Tool.Name(),
		"outcome":     string(outcome),
		"duration_ms": ms,
		"args":        RedactArgs(c.Args),
	}
	if c.Client.Name != "" {
		attrs["client"] = clip(c.Client.Name, 128)
		if c.Client.Version != "" {
			attrs["client_version"] = clip(c.Client.Version, 64)
		}
	}
	if err != nil {
		attrs["error"] = clip(errorText(c.Tool.Name(), err), 512)
	}
	for k, v := range c.attrs {
		if _, taken := attrs[k]; !taken {
			attrs[k] = v
		}
	}
	ev.Attrs = attrs
	ev.Session = sessionArg(c.Args)
	ev.Path = c.path
	return ev
}

// sessionArg returns the call's session_id argument when it is a well-formed
// session id, so that the event lands in the session's index; "" otherwise.
func sessionArg(args json.RawMessage) string {
	var a struct {
		SessionID any `json:"session_id"`
	}
	if json.Unmarshal(args, &a) != nil {
		return ""
	}
	s, ok := a.SessionID.(string)
	if !ok {
		return ""
	}
	id, err := session.ParseID(s)
	if err != nil {
		return ""
	}
	return id
}

// secretKey matches argument names whose values are never recorded.
var secretKey = regexp.MustCompile(`(?i)token|secret|passw|authori[sz]|api[-_]?key|credential|private[-_]?key|cookie|session[-_]?key`)

// secretValue matches Coditect API tokens and common bearer credentials
// inside any string value.
var secretValue = regexp.MustCompile(`cdt_[A-Za-z0-9_-]{16,}|(?i)bearer\s+[A-Za-z0-9._~+/=-]{8,}`)

// RedactArgs returns the arguments as recorded in the audit log: a JSON
// value with the values of secret-looking keys replaced by "[redacted]",
// token-looking substrings replaced likewise, strings cut to 256 bytes and,
// when the result is still over 2 KiB, only the argument names.
func RedactArgs(args json.RawMessage) any {
	args = bytes.TrimSpace(args)
	if len(args) == 0 {
		return map[string]any{}
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return map[string]any{"_unparsed": true, "_bytes": len(args)}
	}
	v = redact(v, 0)
	b, err := json.Marshal(v)
	if err == nil && len(b) <= maxAuditArgs {
		return v
	}
	out := map[string]any{"_truncated": true, "_bytes": len(args)}
	if m, ok := v.(map[string]any); ok {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, clip(k, 64))
		}
		slices.Sort(keys)
		if len(keys) > 32 {
			keys = keys[:32]
		}
		out["_keys"] = keys
	}
	return out
}

func redact(v any, depth int) any {
	if depth > 8 {
		return "[too deep]"
	}
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if secretKey.MatchString(k) && !strings.EqualFold(k, "session_id") {
				x[k] = "[redacted]"
				continue
			}
			x[k] = redact(val, depth+1)
		}
		return x
	case []any:
		for i := range x {
			x[i] = redact(x[i], depth+1)
		}
		return x
	case string:
		return clip(secretValue.ReplaceAllString(x, "[redacted]"), maxAuditString)
	}
	return v
}
