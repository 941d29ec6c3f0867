package webview

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coditect/coditect/storage/audit"
)

// item is one event on its way to a feed client, encoded once however
// many clients it goes to.
type item struct {
	id  string
	raw []byte // the event as JSON
}

func encodeItem(ev audit.Event) (item, error) {
	b, err := json.Marshal(ev)
	return item{id: ev.ID, raw: b}, err
}

// queue holds the events on their way to one feed client: at most
// cap(ch) events and maxBytes bytes of them (but always one event, however
// large), so that a client that does not read costs the daemon a bounded
// amount. One goroutine at a time puts (the client's catch-up, or the
// shared tail it is attached to) and one takes (the client's writer).
type queue struct {
	ch       chan item
	bytes    atomic.Int64 // of the events in ch
	maxBytes int64
	room     chan struct{} // signalled when an event is taken
	slow     atomic.Bool   // the client was found slow (counted once)
}

func newQueue(events, maxBytes int) *queue {
	return &queue{ch: make(chan item, events), maxBytes: int64(maxBytes), room: make(chan struct{}, 1)}
}

// tryPut adds it if it fits, without waiting.
func (q *queue) tryPut(it item) bool {
	n := int64(len(it.raw))
	if b := q.bytes.Load(); b > 0 && b+n > q.maxBytes {
		return false
	}
	q.bytes.Add(n)
	select {
	case q.ch <- it:
		return true
	default:
		q.bytes.Add(-n)
		return false
	}
}

// put adds it, waiting up to wait for room; it returns errSlow when there
// was none in time, or ctx's error.
func (q *queue) put(ctx context.Context, it item, wait time.Duration) error {
	if q.tryPut(it) {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-q.room:
			if q.tryPut(it) {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return errSlow
		}
	}
}

// took records that the writer took it from ch.
func (q *queue) took(it item) {
	q.bytes.Add(-int64(len(it.raw)))
	select {
	case q.room <- struct{}{}:
	default:
	}
}

// free returns how many events, and how many bytes of them, fit now.
func (q *queue) free() (events int, bytes int64) {
	return cap(q.ch) - len(q.ch), q.maxBytes - q.bytes.Load()
}

// tails shares store tails among feed clients: one tail per tenant and
// filter follows the log and hands each event, encoded once, to every
// client attached to it. Without it every client reads the store on its
// own, and 100 clients at 1,000 events/s cost 100 times the reads and
// encodings (BenchmarkFeedFanout).
//
// A client reads its backlog from the log at its own pace (catch-up) and
// attaches to the shared tail only once it has caught up. The tail never
// waits for a client: one whose queue is full is detached and catches up
// from the last event it was given, then attaches again. So a slow client
// slows nobody else, and the slow-consumer rule (its queue stays full for
// SlowAfter) applies during its catch-up exactly as with its own tail.
type tails struct {
	ctx context.Context // ends every shared tail (the handler's feeds)
	wg  *sync.WaitGroup // counts the tails' goroutines
	log *slog.Logger

	mu sync.Mutex // guards m; taken before a sharedTail's mu
	m  map[tailKey]*sharedTail
}

type tailKey struct {
	tenant string
	filter FeedFilter
}

// sharedTail is one tail of one tenant's log for one filter.
type sharedTail struct {
	key  tailKey
	stop context.CancelFunc

	mu sync.Mutex
	// pos is where the tail stands: it has handed out every matching event
	// up to pos and will hand out every matching one after it.
	pos    string
	subs   map[*follower]struct{}
	closed bool
}

// follower is one feed client attached to a shared tail.
type follower struct {
	q *queue
	// last is the id of the last event put in q (or the position the
	// client had caught up to when it attached); guarded by the tail's mu
	// while attached.
	last string
	// detached is closed when the tail lets the client go: its queue was
	// full, or the tail ended.
	detached chan struct{}
}

func newTails(ctx context.Context, wg *sync.WaitGroup, log *slog.Logger) *tails {
	return &tails{ctx: ctx, wg: wg, log: log, m: map[tailKey]*sharedTail{}}
}

// joinRead bounds how many pages attach reads from the log while holding
// the shared tail (which waits meanwhile), to cover what the tail handed
// out that the client has not read yet.
const joinRead = 3

// attach attaches a client that has caught up to pos to the shared tail of
// key, starting one at pos if there is none, and returns the follower. When
// the tail is already past pos, the events in between are read from the log
// and queued first (while the tail waits); if they do not fit in q's free
// space, attach returns ok false and the client should catch up further.
// The caller holds a count of the handler's feeds wait group.
func (t *tails) attach(ctx context.Context, l *audit.Log, key tailKey, f audit.Filter, pos string, q *queue) (st *sharedTail, fl *follower, ok bool, err error) {
	t.mu.Lock()
	st = t.m[key]
	if st == nil || st.isClosed() {
		st = t.start(l, key, f, pos)
	}
	st.mu.Lock()
	t.mu.Unlock()
	defer st.mu.Unlock()
	fl = &follower{q: q, last: pos, detached: make(chan struct{})}
	if st.pos > pos {
		events, bytes := q.free()
		its, complete, err := readThrough(ctx, l, f, pos, st.pos, events, bytes)
		if err != nil || !complete {
			return nil, nil, false, err
		}
		for _, it := range its {
			q.tryPut(it) // fits: only this client's goroutine adds to q while it is detached
		}
		fl.last = st.pos
	}
	st.subs[fl] = struct{}{}
	return st, fl, true, nil
}

// readThrough reads the events matching f after after and up to through,
// at most max of them, maxBytes of their JSON and joinRead pages; complete
// is false when they do not fit.
func readThrough(ctx context.Context, l *audit.Log, f audit.Filter, after, through string, max int, maxBytes int64) (its []item, complete bool, err error) {
	cursor := after
	for range joinRead {
		p, err := l.Query(ctx, audit.Query{Filter: f, Order: audit.OldestFirst, Cursor: cursor, Limit: audit.MaxLimit})
		if err != nil {
			return nil, false, err
		}
		for _, ev := range p.Events {
			if ev.ID > through {
				return its, true, nil
			}
			if len(its) == max {
				return nil, false, nil
			}
			it, err := encodeItem(ev)
			if err != nil {
				return nil, false, err
			}
			if maxBytes -= int64(len(it.raw)); maxBytes < 0 {
				return nil, false, nil
			}
			its = append(its, it)
		}
		if p.Next == "" || p.Next >= through {
			return its, true, nil
		}
		cursor = p.Next
	}
	return nil, false, nil
}

// detach lets fl go (the client has ended) and stops the tail when it was
// the last one.
func (t *tails) detach(st *sharedTail, fl *follower) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.subs[fl]; ok {
		delete(st.subs, fl)
		close(fl.detached)
	}
	if len(st.subs) == 0 && !st.closed {
		st.closed = true
		st.stop()
		if t.m[st.key] == st {
			delete(t.m, st.key)
		}
	}
}

// start starts the shared tail of key at pos; t.mu is held.
func (t *tails) start(l *audit.Log, key tailKey, f audit.Filter, pos string) *sharedTail {
	ctx, stop := context.WithCancel(t.ctx)
	st := &sharedTail{key: key, stop: stop, pos: pos, subs: map[*follower]struct{}{}}
	t.m[key] = st
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		// Tail returns only with an error: ctx's, or the store's.
		if err := l.Tail(ctx, pos, f, st.deliver); ctx.Err() == nil {
			t.log.Error("webview: shared feed tail", "tenant", key.tenant, "err", err)
		}
		// Followers still attached catch up on their own and attach to a
		// new tail, which surfaces the store's error to them if it lasts.
		t.mu.Lock()
		st.mu.Lock()
		st.closed = true
		stop()
		if t.m[key] == st {
			delete(t.m, key)
		}
		for fl := range st.subs {
			delete(st.subs, fl)
			close(fl.detached)
		}
		st.mu.Unlock()
		t.mu.Unlock()
	}()
	return st
}

func (st *sharedTail) isClosed() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.closed
}

// deliver hands ev to every attached follower that has not had it, and
// detaches those whose queue is full.
func (st *sharedTail) deliver(ev audit.Event) error {
	it, err := encodeItem(ev)
	if err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.pos = ev.ID
	for fl := range st.subs {
		if ev.ID <= fl.last {
			continue
		}
		if fl.q.tryPut(it) {
			fl.last = ev.ID
		} else {
			delete(st.subs, fl)
			close(fl.detached)
		}
	}
	return nil
}

// lastOf returns where a detached follower stands.
func (st *sharedTail) lastOf(fl *follower) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	return fl.last
}
