package audit

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
)

// Log is one tenant's audit log.
type Log struct {
	store kv.Store
	space keyspace.TenantSpace
	now   func() time.Time
	// budget bounds each page of a query (tests shrink it)
	budget scanBudget
}

// NewLog returns the log of the tenant whose keys space builds. Only the
// tenant layer calls it, for an authenticated principal.
func NewLog(store kv.Store, space keyspace.TenantSpace) *Log {
	return &Log{store: store, space: space, now: time.Now, budget: defaultScanBudget}
}

// Tenant returns the tenant id.
func (l *Log) Tenant() string { return l.space.ID() }

// counterEvents names the counter of events in the log.
const counterEvents = "audit_events"

// Ref identifies an event appended in a transaction that has not committed
// yet; its ID is known once the commit's stamp is.
type Ref struct {
	order    uint16
	existing kv.Versionstamp // set when an idempotency key matched
}

// ID returns the event's ID given the stamp Update returned.
func (r Ref) ID(commit kv.Versionstamp) string {
	if !r.existing.IsZero() {
		return r.existing.String()
	}
	return commit.WithUserVersion(r.order).String()
}

// Duplicate reports whether the append matched an earlier one by its
// idempotency key and wrote nothing.
func (r Ref) Duplicate() bool { return !r.existing.IsZero() }

// Writer appends events inside a caller's transaction, so a mutation and its
// audit event commit together. Use one Writer per transaction attempt
// (create it inside the function passed to kv.Store.Update): it numbers the
// events of the transaction.
type Writer struct {
	log  *Log
	tx   kv.Tx
	next int
	idem map[string]Ref
	now  time.Time
	// batched: the caller adds the head and count deltas, and raises the
	// audit clock's high-water mark, once for all its events (finish)
	batched bool
	added   int64
	// raise: the high-water mark this transaction's events reached, not
	// yet written (batched only)
	raise bool
	// the audit clock's high-water mark as this transaction knows it: read
	// once (snapshot), raised by its own events (see noteTime)
	clockRead bool
	haveHigh  bool
	high      int64
}

// Writer returns a Writer for tx.
func (l *Log) Writer(tx kv.Tx) *Writer {
	return &Writer{log: l, tx: tx, now: l.now()}
}

// maxPerTx is the most events one transaction may append (the 2-byte user
// order of a versionstamp, less room to spare).
const maxPerTx = 1 << 15

// Append validates ev and writes it, its index entries, the head bump, the
// event counter and the audit clock (see clock.go) into the transaction.
func (w *Writer) Append(ev Event) (Ref, error) {
	if ev.Time.IsZero() {
		ev.Time = w.now
	}
	val, err := validate(&ev)
	if err != nil {
		return Ref{}, err
	}
	if w.next >= maxPerTx {
		return Ref{}, invalid("more than %d events in one transaction", maxPerTx)
	}
	sp := w.log.space
	var idemKey []byte
	if ev.IdempotencyKey != "" {
		if r, ok := w.idem[ev.IdempotencyKey]; ok {
			return r, nil // the same key twice in one transaction: one event
		}
		idemKey, err = sp.Idempotency(ev.IdempotencyKey)
		if err != nil {
			return Ref{}, invalid("idempotency key: %v", err)
		}
		v, err := w.tx.Get(idemKey)
		if err != nil {
			return Ref{}, err
		}
		if len(v) >= 12 {
			vs, _ := kv.VersionstampFromBytes(v[:12])
			return Ref{existing: vs}, nil
		}
	}
	// Index values are checked before anything is written.
	type entry struct {
		tmpl []byte
		off  int
	}
	var entries []entry
	order := uint16(w.next)
	for _, p := range indexed(&ev) {
		tmpl, off, err := sp.NewAuditIndexEntry(p[0], p[1], order)
		if err != nil {
			return Ref{}, invalid("%s: %v", p[0], err)
		}
		entries = append(entries, entry{tmpl, off})
	}
	if err := w.noteTime(ev.Time); err != nil {
		return Ref{}, err
	}
	w.next++
	tmpl, off := sp.NewAuditEvent(order)
	w.tx.SetVersionstampedKey(tmpl, off, val)
	for _, e := range entries {
		w.tx.SetVersionstampedKey(e.tmpl, e.off, nil)
	}
	if w.batched {
		w.added++
	} else {
		w.bump(1)
	}
	ref := Ref{order: order}
	if idemKey != nil {
		// The marker holds the event's stamp and the time, for the sweeper.
		inc := kv.IncompleteVersionstamp(order)
		mark := binary.BigEndian.AppendUint64(inc[:], uint64(ev.Time.UnixNano()))
		w.tx.SetVersionstampedValue(idemKey, mark, 0)
		if w.idem == nil {
			w.idem = map[string]Ref{}
		}
		w.idem[ev.IdempotencyKey] = ref
	}
	return ref, nil
}

// BatchWriter returns a Writer for tx that writes the head and counter
// deltas and the audit clock's high-water mark once for all its events,
// when Finish is called: fewer writes than Writer when a transaction
// appends more than one event. Call Finish after the last Append.
func (l *Log) BatchWriter(tx kv.Tx) *Writer {
	w := l.Writer(tx)
	w.batched = true
	return w
}

// Finish writes what a BatchWriter's events appended so far add up to;
// it does nothing for a Writer's (which writes them with each event).
func (w *Writer) Finish() { w.finish() }

// finish writes what a batched Writer's events add up to: the head and
// counter deltas and the audit clock's high-water mark, once each.
func (w *Writer) finish() {
	if w.added > 0 {
		w.bump(w.added)
		w.added = 0
	}
	if w.raise {
		w.tx.Max(w.log.space.AuditHighWater(), encodeHighWater(w.high))
		w.raise = false
	}
}

// bump adds n to the head and the event counter.
func (w *Writer) bump(n int64) {
	count, _ := w.log.space.Counter(counterEvents)
	w.tx.Add(w.log.space.AuditHead(), n)
	w.tx.Add(count, n)
}

// Append appends events in one transaction and returns them with their IDs,
// times and tenant set. An event whose idempotency key was seen before is
// not written again; the first event's ID is returned for it.
func (l *Log) Append(ctx context.Context, evs ...Event) ([]Event, error) {
	return l.appendWith(ctx, nil, evs)
}

// appendWith is Append with also, when not nil, writing into the same
// transaction.
func (l *Log) appendWith(ctx context.Context, also func(kv.Tx), evs []Event) ([]Event, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	out := make([]Event, len(evs))
	refs := make([]Ref, len(evs))
	stamp, err := l.store.Update(ctx, func(tx kv.Tx) error {
		if also != nil {
			also(tx)
		}
		w := l.Writer(tx)
		w.batched = true
		for i, ev := range evs {
			if ev.Time.IsZero() {
				ev.Time = w.now
			}
			r, err := w.Append(ev)
			if err != nil {
				if len(evs) > 1 {
					return fmt.Errorf("event %d: %w", i, err)
				}
				return err
			}
			refs[i] = r
			out[i] = ev
		}
		w.finish()
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].ID = refs[i].ID(stamp)
		out[i].Tenant = l.space.ID()
		out[i].IdempotencyKey = ""
		out[i].Time = out[i].Time.UTC()
	}
	return out, nil
}

// Get returns the event with the given ID.
func (l *Log) Get(ctx context.Context, id string) (Event, error) {
	vs, err := ParseID(id)
	if err != nil {
		return Event{}, err
	}
	key, err := l.space.AuditEvent(vs)
	if err != nil {
		return Event{}, err
	}
	var ev Event
	err = l.store.View(ctx, func(tx kv.ReadTx) error {
		v, err := tx.Get(key)
		if err != nil {
			return err
		}
		if v == nil {
			return fmt.Errorf("audit: %w: %s", ErrNotFound, id)
		}
		ev, err = decode(l.space.ID(), vs, v)
		return err
	})
	return ev, err
}

// Count returns the number of events in the log.
func (l *Log) Count(ctx context.Context) (int64, error) {
	key, err := l.space.Counter(counterEvents)
	if err != nil {
		return 0, err
	}
	var n int64
	err = l.store.View(ctx, func(tx kv.ReadTx) error {
		v, err := tx.Get(key)
		n = kv.Int64(v)
		return err
	})
	return n, err
}

// Head returns the ID of the newest event, "" when the log is empty: a
// cursor for following only what comes next.
func (l *Log) Head(ctx context.Context) (string, error) {
	var id string
	err := l.store.View(ctx, func(tx kv.ReadTx) error {
		b, e := l.space.Audit().Range()
		it := tx.GetRange(b, e, kv.RangeOptions{Limit: 1, Reverse: true})
		for it.Next() {
			vs, err := l.stampOf(l.space.Audit(), it.KeyValue().Key)
			if err != nil {
				return err
			}
			id = vs.String()
		}
		return it.Err()
	})
	return id, err
}

// stampOf decodes the versionstamp that ends a key of subspace s.
func (l *Log) stampOf(s keyspace.Subspace, key []byte) (kv.Versionstamp, error) {
	t, err := s.Unpack(key)
	if err != nil || len(t) == 0 {
		return kv.Versionstamp{}, fmt.Errorf("audit: corrupt key %s: %v", kv.DisplayKey(key), err)
	}
	vs, ok := t[len(t)-1].(kv.Versionstamp)
	if !ok {
		return kv.Versionstamp{}, fmt.Errorf("audit: key %s does not end in a versionstamp", kv.DisplayKey(key))
	}
	return vs, nil
}
