package tools

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
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
// A call is answered only once its record is safe, so a caller that saw a
// result may rely on the record surviving — also when the process is
// killed right after. The record of a call that may write is committed
// durably (fsynced) before the answer. The record of a read-only call is,
// with a spool (AuditQueue.UseSpool), written to the spool file before the
// answer and committed in the background; without one, committed before
// the answer with relaxed durability (kv.WithRelaxedDurability). Either
// way it survives a crash of the process; only a power failure right after
// could lose it. The append runs with a context that outlives a canceled
// call. With a queue (see AuditQueue), the events of concurrent calls
// share commits (group commit): under load a record costs a fraction of a
// commit; without one, each call appends in its own transaction (and a
// read's record is fsynced too). A handler whose whole effect is one
// transaction (note, message_send, the lease and task tools: Tool.oneTx)
// appends its tool.called event in that same transaction
// (Call.commitCall), and the middleware
// appends nothing; so does any other call made with an idempotency_key,
// whose record commits with the result kept for its retries (Call.keep).
//
// If the append fails, the call's result still reaches the caller and the
// failure is logged: the tool's own effects (and their events) are already
// committed. A call that failed because the store is unavailable (locked by
// another process past its lock timeout) does not wait a second lock
// timeout for its record: the record is left to the queue, which keeps it
// until the store is back, and the caller gets the retryable error at once.
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
			unavailable := errors.Is(err, kv.ErrUnavailable)
			if queue != nil {
				done := queue.add(c.Scope.Log(), ev, c.Tool.ReadOnly())
				if unavailable {
					return res, err
				}
				// Wait even when the caller gave up: the record of a call
				// whose effects committed must not be skipped, and the
				// wait is bounded by the queue's append timeout.
				<-done
				return res, err
			}
			if unavailable {
				logger.Error("tool call not audited: store unavailable", "tool", c.Tool.Name(), "tenant", c.Scope.Tenant(), "err", err)
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

// AuditQueue commits tool.called events by group commit: one goroutine
// takes every event queued while the previous commit ran and appends them
// in one transaction per tenant, then tells each waiting call. There is no
// linger: an idle queue commits a lone event at once, and a busy one
// batches as many as arrived during a commit (up to maxAuditBatch per
// transaction). It holds at most its size of events: when it is full, a
// call waits for room, so load slows calls down instead of dropping records.
//
// When the store is unavailable (locked by another process) or a commit
// takes longer than recordWait, the queue does not drop the events: it
// keeps them (up to maxAuditPending) and retries until a commit succeeds,
// and meanwhile calls no longer wait for their records — reads go on while
// another process holds the store's write lock, and their records are
// committed once it lets go. A commit cut off by its deadline may have
// landed, and its retry then writes nothing: a retried chunk carries its
// records' idempotency keys (Call.recordKey), and spooled records their
// spool numbers, which the spool's mark covers (audit.Log.AppendSpool).
// With a spool (UseSpool), the records of reads are safe in its file
// before their calls are answered, and are committed by the same loop
// without anyone waiting; records still in the spool when the process
// dies are appended by the next process on the store. Flush and Close
// commit everything queued; Close leaves the spool file only if the store
// stayed unavailable.
type AuditQueue struct {
	ch       chan queued
	done     chan struct{}
	logger   *slog.Logger
	degraded atomic.Bool // the last commit found the store unavailable
	spool    *spool      // nil until UseSpool
	// wake cuts the loop's linger short: an event someone waits for (or a
	// Flush, or Close) was queued, or the queue is half full.
	wake chan struct{}
	// spoolMu makes spooled records enter the queue in their spool order,
	// which the spool's marks rely on (a mark covers every record of the
	// tenant up to it). The queue's loop never takes it.
	spoolMu sync.Mutex
	// recoverEvery is how often the spools of dead processes are looked
	// for (SpoolRecoveryEvery; tests shorten it); stopRecovery ends that.
	recoverEvery    time.Duration
	stopRecovery    chan struct{}
	recoveryStopped chan struct{}
}

type queued struct {
	log *audit.Log
	ev  audit.Event
	// relaxed: the record of a read, committed with relaxed durability
	// (kv.WithRelaxedDurability) unless it shares a transaction with a
	// record that may not be
	relaxed bool
	seq     uint64        // the record's number in the queue's spool; 0 when not spooled
	done    chan struct{} // closed once the event is committed, failed or set aside for retry
	// flush marks a Flush: nothing to append, done closes after the events
	// queued before it.
	flush bool
}

// Queue limits.
const (
	// maxAuditBatch bounds the events one transaction appends.
	maxAuditBatch = 256
	// maxAuditPending bounds the events kept for retry while the store is
	// unavailable; beyond it the oldest are dropped (and logged).
	maxAuditPending = 1 << 16
	// recordWait bounds one commit of the queue: a call waits at most
	// about this long for its record before it is answered with the record
	// kept for retry.
	recordWait = 2 * time.Second
)

// NewAuditQueue starts a queue of size events (at least maxAuditBatch).
func NewAuditQueue(size int, logger *slog.Logger) *AuditQueue {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	q := &AuditQueue{ch: make(chan queued, max(size, maxAuditBatch)), done: make(chan struct{}), logger: logger,
		wake: make(chan struct{}, 1), recoverEvery: SpoolRecoveryEvery}
	go q.run()
	return q
}

// closed is returned to callers that need not wait.
var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// UseSpool makes the queue write the records of read-only calls to a
// write-ahead spool file in dir before their calls are answered, instead
// of making the calls wait for a commit (see spool). It first appends what
// dead processes left in dir's spools (RecoverSpools, with logs giving a
// tenant's log) and returns how many records that was. Call it before the
// queue is used.
func (q *AuditQueue) UseSpool(ctx context.Context, dir string, logs func(tenant string) (*audit.Log, error)) (int, error) {
	n, rerr := RecoverSpools(ctx, dir, logs, q.logger)
	if rerr != nil {
		q.logger.Error("audit spools not (all) recovered; they are kept for the next start", "dir", dir, "err", rerr)
	}
	sp, err := openSpool(dir, q.logger)
	if err != nil {
		return n, err
	}
	q.spool = sp
	// A process that runs for long (the daemon) also recovers, now and
	// then, the spools of processes that died beside it (a coditect mcp
	// killed with its host), so their records do not wait for a restart.
	stop, stopped := make(chan struct{}), make(chan struct{})
	q.stopRecovery, q.recoveryStopped = stop, stopped
	go func() {
		defer close(stopped)
		t := time.NewTicker(q.recoverEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), recordWait)
				if _, err := RecoverSpools(ctx, dir, logs, q.logger); err != nil {
					q.logger.Warn("audit spools not (all) recovered", "dir", dir, "err", err)
				}
				cancel()
			}
		}
	}()
	return n, nil
}

// SpoolRecoveryEvery is how often a queue with a spool looks for the
// spools of dead processes beside it.
const SpoolRecoveryEvery = time.Minute

// auditLinger is how long the queue waits for more records before it
// commits a batch nobody waits for (records safe in the spool). The loop
// sleeps meanwhile (queueing a spooled record does not wake it) unless an
// event someone waits for arrives (see AuditQueue.wake).
const auditLinger = 10 * time.Millisecond

// wakeLoop cuts the loop's linger short.
func (q *AuditQueue) wakeLoop() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// nobodyWaits reports whether every item of batch is a spooled record no
// call waits for.
func nobodyWaits(batch []queued) bool {
	for _, it := range batch {
		if it.done != nil || it.flush || it.seq == 0 {
			return false
		}
	}
	return true
}

// add queues ev and returns a channel closed once it may be answered: at
// once when the record is relaxed and went to the spool, or while the store
// is unavailable (the event then waits for the store in the queue);
// otherwise once it is committed (or its failure logged).
func (q *AuditQueue) add(l *audit.Log, ev audit.Event, relaxed bool) <-chan struct{} {
	it := queued{log: l, ev: ev, relaxed: relaxed}
	if relaxed && q.spool != nil {
		if it.ev.Time.IsZero() {
			it.ev.Time = time.Now() // the call's time, also when recovered later
		}
		// A spooled record is appended exactly once by its spool number
		// (audit.Log.AppendSpool), so it writes no idempotency marker;
		// but one whose call the transport may send again (to another
		// process, with another spool) keeps the key it was sent with.
		sev := it.ev
		if !strings.HasPrefix(sev.IdempotencyKey, sentRecordPrefix) {
			sev.IdempotencyKey = ""
		}
		q.spoolMu.Lock()
		seq, ok := q.spool.write(l, sev)
		if ok {
			it.seq, it.ev = seq, sev
			if len(q.ch) >= cap(q.ch)/2 {
				q.wakeLoop()
			}
			q.ch <- it
		}
		q.spoolMu.Unlock()
		if ok {
			return closed
		}
	}
	if q.degraded.Load() {
		q.ch <- it
		return closed
	}
	it.done = make(chan struct{})
	q.ch <- it
	q.wakeLoop()
	return it.done
}

// Flush returns once every event queued before it was committed (or its
// failure logged, or set aside for retry while the store is unavailable),
// or when ctx ends.
func (q *AuditQueue) Flush(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case q.ch <- queued{flush: true, done: done}:
		q.wakeLoop()
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

// Close commits what is queued (one last try for events kept while the
// store was unavailable) and stops the queue. No event may be added after.
func (q *AuditQueue) Close(ctx context.Context) error {
	close(q.ch)
	q.wakeLoop()
	if q.stopRecovery != nil {
		close(q.stopRecovery)
		select {
		case <-q.recoveryStopped:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (q *AuditQueue) run() {
	defer close(q.done)
	defer func() {
		if q.spool != nil {
			ctx, cancel := context.WithTimeout(context.Background(), recordWait)
			q.spool.close(ctx)
			cancel()
		}
	}()
	var pending []queued // kept for retry while the store is unavailable
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	lingerT := time.NewTimer(time.Hour)
	lingerT.Stop()
	backoff := 50 * time.Millisecond
	for {
		batch := pending
		pending = nil
		open := true
		if len(batch) == 0 {
			first, ok := <-q.ch
			if !ok {
				return
			}
			batch = append(batch, first)
		} else {
			select {
			case it, ok := <-q.ch:
				if ok {
					batch = append(batch, it)
				}
				open = ok
			case <-retry.C:
			}
		}
		// Take what else is queued: up to a batch normally, everything
		// while retrying (so callers are not held up behind the retries).
		// When nobody waits for the batch (every record is safe in the
		// spool), linger a moment for more: a stream of reads then costs a
		// commit per many records instead of one each.
		linger := nobodyWaits(batch)
		collect := func() {
			for open && (len(batch) < maxAuditBatch || q.degraded.Load()) {
				select {
				case it, ok := <-q.ch:
					if !ok {
						open = false
						return
					}
					batch = append(batch, it)
					if it.done != nil || it.flush {
						linger = false // someone waits: commit now
					}
				default:
					return
				}
			}
		}
		collect()
		if linger && open && len(batch) < maxAuditBatch {
			lingerT.Reset(auditLinger)
			select {
			case <-lingerT.C:
			case <-q.wake:
			}
			lingerT.Stop()
			collect()
		}
		pending = q.commit(batch)
		if len(pending) == 0 {
			if q.degraded.Swap(false) {
				q.logger.Info("audit records committed again after the store was unavailable")
			}
			backoff = 50 * time.Millisecond
		} else {
			if !q.degraded.Swap(true) {
				q.logger.Warn("store unavailable: tool.called records kept in memory for retry", "events", len(pending))
			}
			if len(pending) > maxAuditPending {
				drop := len(pending) - maxAuditPending
				q.logger.Error("tool calls not audited: too many records waiting for the store", "dropped", drop)
				pending = pending[drop:]
			}
			retry.Reset(backoff)
			backoff = min(2*backoff, time.Second)
		}
		if !open {
			if len(pending) > 0 {
				q.logger.Error("tool calls not audited: the store stayed unavailable until shutdown", "events", len(pending))
			}
			return
		}
	}
}

// commit appends a batch, one transaction per tenant and maxAuditBatch
// events, releases the calls and flushes waiting on it, and returns the
// events to retry because the store was unavailable.
func (q *AuditQueue) commit(batch []queued) (retry []queued) {
	var order []string
	byTenant := map[string][]queued{}
	for _, it := range batch {
		if it.flush {
			continue
		}
		t := it.log.Tenant()
		if _, ok := byTenant[t]; !ok {
			order = append(order, t)
		}
		byTenant[t] = append(byTenant[t], it)
	}
	unavailable := false
	for _, t := range order {
		items := byTenant[t]
		for len(items) > 0 {
			chunk := items[:min(len(items), maxAuditBatch)]
			items = items[len(chunk):]
			if unavailable {
				retry = append(retry, chunk...)
				continue
			}
			if err := q.append(chunk); err != nil {
				unavailable = true
				retry = append(retry, chunk...)
			}
		}
	}
	for _, it := range batch {
		if it.done != nil {
			close(it.done)
		}
	}
	for i := range retry {
		retry[i].done = nil // released above
	}
	return retry
}

// append commits one tenant's chunk and returns an error only when the
// store is unavailable (the chunk is to be retried); other failures are
// logged, after trying the events one by one so that one bad event does
// not sink the others.
func (q *AuditQueue) append(chunk []queued) error {
	l := chunk[0].log
	recs := make([]audit.SpoolRecord, len(chunk))
	relaxed := true
	spooled := 0
	for i := range chunk {
		recs[i] = audit.SpoolRecord{Seq: chunk[i].seq, Event: chunk[i].ev}
		relaxed = relaxed && chunk[i].relaxed
		if chunk[i].seq > 0 {
			spooled++
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), recordWait)
	defer cancel()
	if relaxed {
		ctx = kv.WithRelaxedDurability(ctx)
	}
	appendAll := func(recs ...audit.SpoolRecord) error {
		if spooled > 0 {
			_, err := l.AppendSpool(ctx, q.spool.id, recs)
			return err
		}
		evs := make([]audit.Event, len(recs))
		for i, r := range recs {
			evs[i] = r.Event
		}
		_, err := l.Append(ctx, evs...)
		return err
	}
	err := appendAll(recs...)
	switch {
	case err == nil:
	case errors.Is(err, kv.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return err
	case len(recs) > 1:
		// One bad event must not sink the others. Each goes with its own
		// spool number: the mark must not pass a record not yet appended.
		for _, r := range recs {
			if err1 := appendAll(r); err1 != nil {
				q.logger.Error("tool call not audited", "tenant", l.Tenant(), "tool", r.Event.Attrs["tool"], "err", err1)
			}
		}
	default:
		q.logger.Error("tool call not audited", "tenant", l.Tenant(), "tool", recs[0].Event.Attrs["tool"], "err", err)
	}
	if spooled > 0 {
		q.spool.settled(spooled)
	}
	return nil
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
		"args":        redactArgs(c.Args, c.AddedKeys),
	}
	if c.Client.Name != "" {
		attrs["client"] = textclip.Clip(c.Client.Name, 128)
		if c.Client.Version != "" {
			attrs["client_version"] = textclip.Clip(c.Client.Version, 64)
		}
	}
	if err != nil {
		attrs["error"] = textclip.Clip(errorText(c.Tool.Name(), err), 512)
	}
	for k, v := range c.attrs {
		if _, taken := attrs[k]; !taken {
			attrs[k] = v
		}
	}
	ev.Attrs = attrs
	ev.IdempotencyKey = c.recordKey()
	ev.Session = sessionArg(c.Args)
	ev.Project, ev.Path = c.project, c.path
	return ev
}

// recordKey returns the idempotency key of the call's tool.called event,
// drawn once per call before its first append. Every append of the record
// carries it — a transaction run again after a commit whose outcome was
// unknown (FoundationDB's commit_unknown_result), the queue's retry of a
// chunk whose commit ran past its deadline — so an append that landed
// already writes nothing the second time. (A read's record, spooled, goes
// without: its spool number does that; see AuditQueue.add.) The record of
// a call whose transport added a key (sentAs) is keyed by it, spooled or
// not, so that the call sent again to another process is recorded once.
// Any other key starts
// with the time, so that the markers of consecutive calls sit side by side
// in the store, at the end of the markers' range, instead of one in a
// random place of it each; random bytes after the time keep keys unique.
func (c *Call) recordKey() string {
	if c.recordID == "" && c.sentAs != "" {
		c.recordID = sentRecordPrefix + c.sentAs
	}
	if c.recordID == "" {
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixNano()))
		_, _ = rand.Read(b[8:])
		c.recordID = recordKeyPrefix + hex.EncodeToString(b[:])
	}
	return c.recordID
}

// recordKeyPrefix starts the idempotency key of every tool.called record.
const recordKeyPrefix = "tool.called/"

// sentRecordPrefix starts the idempotency key of the record of a call
// whose transport added a key to it (Call.sentAs): the same for every run
// of the call however often the transport sends it, so that it is
// recorded once. A spooled record keeps it.
const sentRecordPrefix = recordKeyPrefix + "sent/"
