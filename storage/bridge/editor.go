package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/errclass"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
)

// Editor is one editor connection's end of the bridge: its presence,
// refreshed in the background, and its queue of requests. Its methods are
// safe for concurrent use.
type Editor struct {
	sc  *tenant.Scope
	ttl time.Duration
	log *slog.Logger

	mu sync.Mutex
	p  Presence
	// taken are the requests Next handed out, by id, with their
	// deadlines: kept until the deadline passes (after which Next skips
	// the request anyway), so a request answered but not yet cleared by
	// its asker is never handed out twice.
	taken map[string]time.Time

	stop   context.CancelFunc
	done   chan struct{}
	closed bool
}

// Options configure an editor connection.
type Options struct {
	// TTL is how long the presence counts without a refresh; PresenceTTL
	// when zero. It is refreshed every third of it.
	TTL time.Duration
	// Logger receives failures of the background refresh; nil discards.
	Logger *slog.Logger
}

// Connect announces the editor p.Editor for the scope's user and keeps
// its presence fresh until Close (or until ctx is done, after which the
// presence lapses at its expiry).
func Connect(ctx context.Context, sc *tenant.Scope, p Presence, opts Options) (*Editor, error) {
	if err := sc.CanWrite(); err != nil {
		return nil, err
	}
	if _, err := sc.Space().IDEEditor(p.Editor); err != nil {
		return nil, invalid("%v", err)
	}
	if p.Kind != EditorVSCode && p.Kind != EditorLSP {
		return nil, invalid("editor kind %q (want %s or %s)", p.Kind, EditorVSCode, EditorLSP)
	}
	for _, k := range p.Kinds {
		if !slices.Contains(Kinds, k) {
			return nil, invalid("unknown request kind %q", k)
		}
	}
	if len(p.Projects) > MaxProjects {
		p.Projects = p.Projects[:MaxProjects]
	}
	if opts.TTL <= 0 {
		opts.TTL = PresenceTTL
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p.User = sc.Principal().User
	e := &Editor{sc: sc, ttl: opts.TTL, log: opts.Logger, p: p, taken: map[string]time.Time{}, done: make(chan struct{})}
	if err := e.refresh(ctx); err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.stop = cancel
	go e.heartbeat(bg, ctx.Done())
	return e, nil
}

// Presence returns the editor's presence as last announced.
func (e *Editor) Presence() Presence {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.p
	p.Projects = slices.Clone(p.Projects)
	return p
}

// Update changes what the editor announces (its projects, its sharing)
// and writes it at once.
func (e *Editor) Update(ctx context.Context, change func(*Presence)) error {
	e.mu.Lock()
	change(&e.p)
	if len(e.p.Projects) > MaxProjects {
		e.p.Projects = e.p.Projects[:MaxProjects]
	}
	e.mu.Unlock()
	return e.refresh(ctx)
}

// refresh writes the presence with a fresh expiry.
func (e *Editor) refresh(ctx context.Context) error {
	key, err := e.sc.Space().IDEEditor(e.p.Editor)
	if err != nil {
		return invalid("%v", err)
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	now := time.Now().UTC()
	e.p.At, e.p.Expires = now, now.Add(e.ttl)
	val, err := json.Marshal(e.p)
	e.mu.Unlock()
	if err != nil {
		return err
	}
	// A presence is ephemeral: it lapses on its own.
	_, err = e.sc.Store().Update(kv.WithRelaxedDurability(ctx), func(tx kv.Tx) error {
		tx.Set(key, val)
		return nil
	})
	return err
}

// heartbeat refreshes the presence every third of the TTL and, every few
// beats, sweeps what killed editors and askers left behind.
func (e *Editor) heartbeat(ctx context.Context, parent <-chan struct{}) {
	defer close(e.done)
	t := time.NewTicker(e.ttl / 3)
	defer t.Stop()
	for beat := 1; ; beat++ {
		select {
		case <-ctx.Done():
			return
		case <-parent:
			return
		case <-t.C:
		}
		if err := e.refresh(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("refreshing the editor's presence", "error", err)
		}
		if beat%5 == 0 {
			if _, err := Sweep(ctx, e.sc, time.Now()); err != nil && ctx.Err() == nil {
				e.log.Warn("sweeping the IDE bridge", "error", err)
			}
		}
	}
}

// Close stops the refresh and removes the presence: the editor is
// disconnected at once. A request of its queue still unanswered is
// answered with an error saying so, at once rather than at its deadline;
// the askers clear their requests and answers as always (the sweep, those
// of killed askers). Call it after Serve has returned, so that the
// answers of the requests being handled are written first.
func (e *Editor) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	e.stop()
	<-e.done
	_, err := e.sc.Store().Update(ctx, func(tx kv.Tx) error {
		return disconnect(tx, e.sc.Space(), e.p)
	})
	return err
}

// disconnect removes an editor's presence and doorbell and answers the
// requests of its queue that have no answer with an error.
func disconnect(tx kv.Tx, sp keyspace.TenantSpace, p Presence) error {
	key, err := sp.IDEEditor(p.Editor)
	if err != nil {
		return err
	}
	tx.Clear(key)
	bell, _ := sp.IDEBell(p.Editor)
	tx.Clear(bell)
	reqs, _ := sp.IDERequests(p.Editor)
	begin, end := reqs.Range()
	it := tx.GetRange(begin, end, kv.RangeOptions{})
	var ids []string
	for it.Next() {
		var r Request
		if json.Unmarshal(it.KeyValue().Value, &r) == nil && r.ID != "" {
			ids = append(ids, r.ID)
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	gone, _ := json.Marshal(answer{Error: "it was closed before it answered", Class: errclass.Unavailable.Name()})
	for _, id := range ids {
		ak, err := sp.IDEAnswer(p.Editor, id)
		if err != nil {
			continue
		}
		v, err := tx.Get(ak)
		if err != nil {
			return err
		}
		if v == nil {
			tx.Set(ak, gone)
		}
	}
	return nil
}

// clearEditor removes an editor's presence, doorbell, queue and answers.
func clearEditor(tx kv.Tx, sp keyspace.TenantSpace, editor string) error {
	key, err := sp.IDEEditor(editor)
	if err != nil {
		return err
	}
	tx.Clear(key)
	bell, _ := sp.IDEBell(editor)
	tx.Clear(bell)
	reqs, _ := sp.IDERequests(editor)
	tx.ClearRange(reqs.Range())
	ans, _ := sp.IDEAnswers(editor)
	tx.ClearRange(ans.Range())
	return nil
}

// Next returns the next request of the editor's queue that Next has not
// returned before (whether or not it was answered since), waiting on the doorbell until one comes or ctx is done.
// Requests past their deadline are skipped.
func (e *Editor) Next(ctx context.Context) (Request, error) {
	sp := e.sc.Space()
	queue, err := sp.IDERequests(e.p.Editor)
	if err != nil {
		return Request{}, invalid("%v", err)
	}
	bell, _ := sp.IDEBell(e.p.Editor)
	begin, end := queue.Range()
	for {
		var found []Request
		var w kv.Watch
		err := e.sc.Store().View(ctx, func(tx kv.ReadTx) error {
			if w != nil {
				w.Cancel()
			}
			found = found[:0]
			it := tx.GetRange(begin, end, kv.RangeOptions{Limit: 64})
			for it.Next() {
				var r Request
				if json.Unmarshal(it.KeyValue().Value, &r) == nil {
					found = append(found, r)
				}
			}
			w = tx.Watch(bell)
			return it.Err()
		})
		if err != nil {
			if w != nil {
				w.Cancel()
			}
			return Request{}, err
		}
		now := time.Now()
		e.mu.Lock()
		for id, deadline := range e.taken {
			if now.After(deadline) {
				delete(e.taken, id)
			}
		}
		for _, r := range found {
			if _, taken := e.taken[r.ID]; taken || !now.Before(r.Deadline) {
				continue
			}
			e.taken[r.ID] = r.Deadline
			e.mu.Unlock()
			w.Cancel()
			return r, nil
		}
		e.mu.Unlock()
		err = w.Wait(ctx)
		w.Cancel()
		if err != nil {
			return Request{}, err
		}
	}
}

// Answer writes the answer to r: res, or herr when the handler failed
// (its class travels with it). An asker that gave up has removed the
// request: then nothing is written. An answer over MaxAnswer bytes is
// replaced by an error saying so.
func (e *Editor) Answer(ctx context.Context, r Request, res Result, herr error) error {
	a := answer{Result: &res}
	if herr != nil {
		a = answer{Error: textclip.Within(herr.Error(), 4000)}
		if c := errclass.Of(herr); c != nil {
			a.Class = c.Name()
		}
	}
	val, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if len(val) > MaxAnswer {
		val, _ = json.Marshal(answer{Error: fmt.Sprintf("the editor's answer is %d bytes, over the limit of %d: ask for fewer items (limit) or one file", len(val), MaxAnswer), Class: errclass.Invalid.Name()})
	}
	sp := e.sc.Space()
	reqKey, err := sp.IDERequest(e.p.Editor, r.ID)
	if err != nil {
		return invalid("%v", err)
	}
	ansKey, _ := sp.IDEAnswer(e.p.Editor, r.ID)
	// The answer is read and cleared by the asker at once.
	_, err = e.sc.Store().Update(kv.WithRelaxedDurability(ctx), func(tx kv.Tx) error {
		v, err := tx.Get(reqKey)
		if err != nil || v == nil {
			return err // the asker gave up and cleared it
		}
		tx.Set(ansKey, val)
		return nil
	})
	return err
}

// Handler answers one request. Its context ends at the request's
// deadline, or earlier when the asker withdraws the request (its call was
// cancelled, or its process cleared it); then context.Cause is
// ErrWithdrawn and nothing the handler returns is written.
type Handler func(ctx context.Context, r Request) (Result, error)

// ErrWithdrawn is the cause of a handler's context when the asker removed
// the request before its deadline.
var ErrWithdrawn = errclass.New(errclass.Unavailable, "the agent withdrew the request")

// Serve takes the editor's requests until ctx is done and runs h on each
// in a goroutine of its own, writing its answer. It returns ctx's error
// (or a store error), after the running handlers have answered.
func (e *Editor) Serve(ctx context.Context, h Handler) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		r, err := e.Next(ctx)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			dctx, dcancel := context.WithDeadline(ctx, r.Deadline)
			defer dcancel()
			rctx, cancel := context.WithCancelCause(dctx)
			watched := make(chan struct{})
			go func() {
				defer close(watched)
				if e.waitWithdrawn(rctx, r) == nil {
					cancel(ErrWithdrawn)
				}
			}()
			res, herr := h(rctx, r)
			gone := rctx.Err() != nil
			cancel(nil)
			<-watched
			if gone && (herr != nil || errors.Is(context.Cause(rctx), ErrWithdrawn)) {
				return // the asker has given up
			}
			actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer acancel()
			if err := e.Answer(actx, r, res, herr); err != nil {
				e.log.Warn("answering an IDE request", "kind", r.Kind, "error", err)
			}
		}()
	}
}

// waitWithdrawn returns nil once r's record is gone from the queue (its
// asker cleared it), or ctx's error.
func (e *Editor) waitWithdrawn(ctx context.Context, r Request) error {
	key, err := e.sc.Space().IDERequest(e.p.Editor, r.ID)
	if err != nil {
		return err
	}
	for {
		var w kv.Watch
		gone := false
		err := e.sc.Store().View(ctx, func(tx kv.ReadTx) error {
			if w != nil {
				w.Cancel()
				w = nil
			}
			v, err := tx.Get(key)
			if err != nil || v == nil {
				gone = err == nil
				return err
			}
			w = tx.Watch(key)
			return nil
		})
		if err != nil || gone {
			if w != nil {
				w.Cancel()
			}
			return err
		}
		err = w.Wait(ctx)
		w.Cancel()
		if err != nil {
			return err
		}
	}
}

// Sweep removes, in the scope's tenant, the presences expired before now
// less PresenceTTL with their queues, and the requests (and answers) whose
// deadline passed more than a grace period ago: what killed editors and
// askers left behind. It returns how many records it removed.
func Sweep(ctx context.Context, sc *tenant.Scope, now time.Time) (int, error) {
	sp := sc.Space()
	n := 0
	_, err := sc.Store().Update(ctx, func(tx kv.Tx) error {
		n = 0
		eds, err := presences(tx, sc)
		if err != nil {
			return err
		}
		for _, p := range eds {
			if now.Sub(p.Expires) > PresenceTTL {
				if err := clearEditor(tx, sp, p.Editor); err != nil {
					return err
				}
				n++
			}
		}
		begin, end := sp.AllIDERequests().Range()
		it := tx.GetRange(begin, end, kv.RangeOptions{Limit: 1000})
		for it.Next() {
			var r Request
			kvp := it.KeyValue()
			if json.Unmarshal(kvp.Value, &r) != nil || now.Sub(r.Deadline) > sweepGrace {
				tx.Clear(kvp.Key)
				if r.Editor != "" && r.ID != "" {
					if ak, err := sp.IDEAnswer(r.Editor, r.ID); err == nil {
						tx.Clear(ak)
					}
				}
				n++
			}
		}
		return it.Err()
	})
	return n, err
}
