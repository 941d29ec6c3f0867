package tools

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/txhook"
)

// Idempotency keys. Every tool whose retry is not harmless by its hints
// (one that writes and is not idempotent, or is destructive: see
// hints.keyed) takes an optional idempotency_key argument, so that a host
// that retries a call whose answer it lost does not make the change twice.
// The first call with a key runs and its result is kept; a later call by
// the same principal (user and agent) to the same tool with the same key
// and the same arguments is answered with that result ("replayed": true)
// without running again; the same key with other arguments is refused as
// an invalid argument and changes nothing. Keys are kept for
// audit.IdempotencyWindow in the caller's tenant, so they never cross
// tenants, principals or tools.
//
// How a call holds its key depends on what its effect is.
//
// A tool whose whole effect is one store transaction (Tool.oneTx: note,
// message_send, lease_acquire, lease_renew, task_create, task_claim,
// task_next) holds it in that transaction, at no commit of its own:
// the transaction first reads the key's outcome (Call.claimKey); if there
// is one, it writes nothing and the call is answered from that outcome (a
// replay, or the refusal of other arguments); if not, it makes the call's
// change, appends the call's tool.called record and keeps the result under
// the key (Call.commitCall), all in one commit. Transactions are
// serializable, so two duplicates racing in different processes cannot
// both run: on SQLite they take the write lock in turn and the second
// reads the first's outcome; on FoundationDB the second conflicts and its
// retry reads it. A call whose transaction did not commit changed
// nothing, so its retry runs; one whose commit landed though it was
// reported failed is found by its retry, which answers with its result.
// No call of such a tool is ever left "running" by a process that died.
//
// Any other keyed call (its work spans several transactions, or touches
// the disk, as fs_write does) first reserves its key in the store (one
// commit), so that a duplicate in another process sees it running;
// duplicates in the same process wait for it. Once the key is reserved,
// the call runs to the end even when its caller gives up (a host that
// timed out will retry), and its result is kept in the same transaction
// as its tool.called record. A call refused (bad arguments, a conflict,
// the store locked: nothing was changed) releases its key, so its retry
// runs again. A call whose outcome is not known — it failed on the
// server's side, its process died, or the store failed while its result
// was kept — is never run again under the same key: its retry is told
// that the outcome is unknown (after reservationTTL when the reservation
// is another process's).
const (
	idempotencyArg = "idempotency_key"
	// maxIdempotencyKey is the longest key, in bytes.
	maxIdempotencyKey = 128
	// keyedCallTimeout bounds a keyed call once it runs (it no longer
	// ends when its caller gives up).
	keyedCallTimeout = time.Minute
	// reservationTTL is how long a reservation made by another process
	// counts as a call still running; after it, its outcome is unknown.
	reservationTTL = 2 * keyedCallTimeout
)

// keyed reports whether a tool with these hints takes an idempotency key:
// it writes, and a retry is not harmless (it is not idempotent, or it is
// destructive: a repeated write may undo what others did in between).
func (h hints) keyed() bool { return !h.readOnly && (!h.idempotent || h.destructive) }

// idempotencyProp is the property added to a keyed tool's input schema.
// It has no description: tools/list is read on every turn.
const idempotencyProp = `"` + idempotencyArg + `":{"type":"string"}`

// withIdempotencyKey returns the input schema in with idempotency_key as
// its last property, keeping the order of everything else.
func withIdempotencyKey(in json.RawMessage) json.RawMessage {
	dec := json.NewDecoder(bytes.NewReader(in))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		panic("tools: an input schema is not an object")
	}
	var b bytes.Buffer
	b.WriteByte('{')
	added := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			panic(fmt.Sprintf("tools: input schema: %v", err))
		}
		name := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			panic(fmt.Sprintf("tools: input schema: %v", err))
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		b.Write(k)
		b.WriteByte(':')
		if name == "properties" {
			v = bytes.TrimSuffix(v, []byte("}"))
			b.Write(v)
			if len(v) > 1 {
				b.WriteByte(',')
			}
			b.WriteString(idempotencyProp + "}")
			added = true
			continue
		}
		b.Write(v)
	}
	if !added {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		b.WriteString(`"properties":{` + idempotencyProp + "}")
	}
	b.WriteByte('}')
	return b.Bytes()
}

// processID names this process in the reservations it makes.
var processID = agent.NewID("proc")

// flights are the keyed calls running in this process, by tenant and key:
// a duplicate waits on the channel, closed when the call is over. unheld
// are the keys whose call this process refused (it changed nothing) but
// whose reservation it could not remove: their next call runs.
var flights = struct {
	sync.Mutex
	m      map[string]chan struct{}
	unheld map[string]bool
}{m: map[string]chan struct{}{}, unheld: map[string]bool{}}

// enterFlight makes the caller the one call running under slot, waiting
// while another one is; it fails only when ctx ends first.
func enterFlight(ctx context.Context, slot string) error {
	for {
		flights.Lock()
		ch, busy := flights.m[slot]
		if !busy {
			flights.m[slot] = make(chan struct{})
			flights.Unlock()
			return nil
		}
		flights.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func leaveFlight(slot string) {
	flights.Lock()
	close(flights.m[slot])
	delete(flights.m, slot)
	flights.Unlock()
}

// keptResult is a Result as an outcome keeps it.
type keptResult struct {
	Structured json.RawMessage `json:"s"`
	Text       string          `json:"t"`
}

// idempotencyKey takes the call's idempotency_key out of its arguments
// (the tool's handler decodes only its own) and returns the key the
// outcome is kept under, naming the principal and the tool, and the digest
// of the other arguments; key is "" when the call sent none.
func (c *Call) idempotencyKey() (key, digest string, err error) {
	args, err := argsObject(c)
	if err != nil {
		return "", "", err
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return "", "", c.argError("arguments are not valid JSON (%v)", err)
	}
	raw, sent := obj[idempotencyArg]
	if !sent {
		return "", "", nil
	}
	delete(obj, idempotencyArg)
	var rest bytes.Buffer
	enc := json.NewEncoder(&rest)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(obj); err != nil {
		return "", "", c.argError("arguments could not be read: %v", err)
	}
	c.Args = bytes.TrimSpace(rest.Bytes())
	if raw == nil {
		return "", "", nil // null: no key
	}
	k, _ := raw.(string) // checkArgs made it a string
	if err := c.text(idempotencyArg, k, maxIdempotencyKey, true, true); err != nil {
		return "", "", err
	}
	if c.resent = addedKey(k, c.AddedKeys); !c.resent {
		c.record(idempotencyArg, k)
	}
	// Null means absent for an optional argument (see argSchema), so a
	// retry that sends every property matches one that sent only some.
	for name, v := range obj {
		if v == nil {
			delete(obj, name)
		}
	}
	canon, _ := json.Marshal(obj) // sorted keys
	p := c.Scope.Principal()
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%s\x00%s", p.User, p.Agent, c.Tool.Name(), k))
	d := sha256.Sum256(canon)
	return "tool:" + hex.EncodeToString(h[:]), hex.EncodeToString(d[:16]), nil
}

// once runs a keyed call at most once per key (see idempotencyArg): it
// reserves the key, runs h and keeps its result, or answers a retry with
// the result kept.
func (c *Call) once(ctx context.Context, h Handler) (Result, error) {
	key, digest, err := c.idempotencyKey()
	if err != nil {
		return Result{}, err
	}
	if key == "" || c.Scope.CanWrite() != nil {
		return h(ctx, c) // a viewer reserves nothing: the tool refuses it
	}
	slot := c.Scope.Tenant() + "\x00" + key
	if err := enterFlight(ctx, slot); err != nil {
		return Result{}, err
	}
	defer leaveFlight(slot)
	if c.Tool.oneTx {
		return c.onceInTx(ctx, h, key, digest)
	}
	flights.Lock()
	unheld := flights.unheld[slot]
	flights.Unlock()
	prior, found, err := c.reserve(ctx, key, digest, unheld)
	if err != nil {
		return Result{}, err
	}
	if found {
		return c.replay(prior, digest)
	}
	if unheld {
		flights.Lock()
		delete(flights.unheld, slot)
		flights.Unlock()
	}
	// Run to the end even if the caller gives up: its retry is answered
	// with this call's result.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keyedCallTimeout)
	defer cancel()
	res, err := h(rctx, c)
	if err != nil {
		if o := Classify(err); o != OutcomeError && o != OutcomeCanceled || errors.Is(err, kv.ErrUnavailable) {
			if c.release(rctx, key) != nil {
				flights.Lock()
				flights.unheld[slot] = true
				flights.Unlock()
			}
		}
		return res, err
	}
	c.keep(rctx, key, digest, res)
	return res, nil
}

// reserve returns the outcome kept under key, or reserves key for this
// call when there is none, or when there is this process's reservation of
// a call it refused (unheld). The commit has relaxed durability: a
// reservation lost with a power failure was followed by no durable effect.
func (c *Call) reserve(ctx context.Context, key, digest string, unheld bool) (prior audit.Outcome, found bool, err error) {
	l := c.Scope.Log()
	_, err = c.Scope.Store().Update(kv.WithRelaxedDurability(ctx), func(tx kv.Tx) error {
		var err error
		prior, found, err = l.GetOutcome(tx, key)
		if err != nil {
			return err
		}
		if found && !(unheld && !prior.Done && prior.Owner == processID) {
			return nil
		}
		found = false
		return l.PutOutcome(tx, key, audit.Outcome{Digest: digest, Owner: processID})
	})
	return prior, found, err
}

// txKey is the key of a keyed call to a one-transaction tool and what
// its transaction found under it.
type txKey struct {
	key, digest string
	// prior is the outcome claimKey found; it ends the transaction with
	// errKeyUsed.
	prior audit.Outcome
}

// errKeyUsed ends the transaction of a call whose key has an outcome:
// the call is answered from it and writes nothing.
var errKeyUsed = errors.New("tools: the idempotency key has an outcome")

// onceInTx runs a keyed call of a one-transaction tool: its transaction
// claims the key (see idempotencyArg).
func (c *Call) onceInTx(ctx context.Context, h Handler, key, digest string) (Result, error) {
	c.keyed = &txKey{key: key, digest: digest}
	// Like a reserved call, it runs to the end even if the caller gives
	// up: its retry then finds its result.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keyedCallTimeout)
	defer cancel()
	res, err := h(rctx, c)
	if !errors.Is(err, errKeyUsed) {
		return res, err
	}
	prior := c.keyed.prior
	if prior.Done && prior.Owner == c.recordKey() && prior.Digest == digest {
		// The call's own commit, which landed though it was reported
		// failed and was run again: its record is in it.
		c.audited = true
		return c.keptResult(prior, false)
	}
	return c.replay(prior, digest)
}

// claimKey is the first thing a one-transaction handler (Tool.oneTx)
// does in its transaction, before it writes: for a keyed call, it reads
// the key's outcome and, when there is one, ends the transaction with
// errKeyUsed (the handler returns that error as it is). It does nothing
// for a call without a key.
func (c *Call) claimKey(tx kv.ReadTx) error {
	if c.keyed == nil {
		return nil
	}
	prior, found, err := c.Scope.Log().GetOutcome(tx, c.keyed.key)
	if err != nil {
		return err
	}
	if found {
		c.keyed.prior = prior
		return errKeyUsed
	}
	return nil
}

// commitCall is the last thing a one-transaction handler does in its
// transaction, after its writes: it appends the call's tool.called record
// with w (and finishes w) and, for a keyed call, keeps its result under
// the key. result returns the call's result given the transaction's
// commit; it is called here with kv.IncompleteVersionstamp, whose place a
// replay fills with the commit (audit.Outcome.Stamp). Once the
// transaction commits, the handler sets c.audited.
func (c *Call) commitCall(tx kv.Tx, w *audit.Writer, result func(commit kv.Versionstamp) Result) error {
	// The record keeps its marker (Call.recordKey) also in a keyed call:
	// if the commit lands but is reported failed, the middleware's record
	// of the failure is then not written beside it.
	if _, err := w.Append(c.toolEventOK()); err != nil {
		return err
	}
	w.Finish()
	if c.keyed == nil {
		return nil
	}
	o := audit.Outcome{Digest: c.keyed.digest, Owner: c.recordKey(), Done: true}
	o.Result = keptBytes(result(kv.IncompleteVersionstamp(0)))
	return c.Scope.Log().PutOutcomeStamped(tx, c.keyed.key, o)
}

// oneTxHook returns the hook through which a one-transaction tool
// (Tool.oneTx) puts its call into the transaction of the layer's change:
// Before claims the call's key (Call.claimKey); After sets *out to
// result(p), what the change made as the caller will see it, then appends
// the call's tool.called record and keeps that result under the key
// (Call.commitCall). *out is then the result of the attempt that
// committed. result runs inside the transaction: a name it shows comes
// from the call's cache (projectName) or a read of its own, never from the
// transaction, whose reads it leaves as the layer made them. Once the
// layer's call returns without error, the handler sets c.audited and
// answers *out; errKeyUsed it returns as it is.
func oneTxHook[P any](c *Call, out *Result, result func(P) Result) txhook.Hook[P] {
	return txhook.Hook[P]{
		Before: func(tx kv.Tx) error { return c.claimKey(tx) },
		After: func(tx kv.Tx, aw *audit.Writer, p P) error {
			res := result(p)
			*out = res
			return c.commitCall(tx, aw, func(kv.Versionstamp) Result { return res })
		},
		Guarded: c.keyed != nil,
	}
}

// keptBytes encodes a result to keep; nil when it is too large to keep.
func keptBytes(res Result) json.RawMessage {
	s, err := json.Marshal(res.Structured)
	if err != nil {
		return nil
	}
	b, err := json.Marshal(keptResult{Structured: s, Text: res.Text})
	if err != nil || len(b) > audit.MaxOutcome-1024 {
		return nil
	}
	return b
}

// placeholderCommit is kv.IncompleteVersionstamp's commit bytes in hex,
// as a result kept in the transaction that made it names that commit.
var placeholderCommit = func() []byte {
	v := kv.IncompleteVersionstamp(0)
	return []byte(v.String()[:2*kv.StampSize])
}()

// replay answers a call whose key was used before.
func (c *Call) replay(prior audit.Outcome, digest string) (Result, error) {
	age := time.Since(prior.Time).Round(time.Second)
	if c.resent && prior.Digest == digest {
		return c.replayResent(prior, age)
	}
	switch {
	case prior.Digest != digest:
		return Result{}, c.argError("%q was already used in the last %d hours for a %s call with other arguments; "+
			"send a new key with new arguments (nothing was changed)", idempotencyArg, int(audit.IdempotencyWindow.Hours()), c.Tool.Name())
	case !prior.Done && prior.Owner != processID && age < reservationTTL:
		return Result{}, &toolError{err: lease.ErrConflict, msg: fmt.Sprintf("a %s call with this %s started %s ago "+
			"in another process and is still running; retry in a few seconds to get its result", c.Tool.Name(), idempotencyArg, age)}
	case !prior.Done:
		return Result{}, &toolError{err: lease.ErrConflict, msg: fmt.Sprintf("a %s call with this %s started %s ago "+
			"and stopped before its outcome was recorded, so it may or may not have made its change; "+
			"check, then send a new key", c.Tool.Name(), idempotencyArg, age)}
	case len(prior.Result) == 0:
		return Result{}, &toolError{err: lease.ErrConflict, msg: fmt.Sprintf("a %s call with this %s already ran %s ago; "+
			"its result was too large to keep, and it was not run again", c.Tool.Name(), idempotencyArg, age)}
	}
	c.record("replayed", true)
	return c.keptResult(prior, true)
}

// replayResent answers a call its transport sent again after the local
// core that ran it died, in the words of a caller who sent no key: a call
// it makes again is a new call, so it must not wait for the first to end.
func (c *Call) replayResent(prior audit.Outcome, age time.Duration) (Result, error) {
	const why = "the local Coditect core serving this connection stopped while %s ran, and the call was sent again to a new one: "
	switch {
	case !prior.Done:
		return Result{}, &toolError{err: lease.ErrConflict, msg: fmt.Sprintf(why+
			"it started %s ago and its outcome was not recorded, so it may or may not have made its change; "+
			"check whether it did before calling it again", c.Tool.Name(), age)}
	case len(prior.Result) == 0:
		return Result{}, &toolError{err: lease.ErrConflict, msg: fmt.Sprintf(why+
			"it had already run %s ago and was not run again; its result was too large to keep", c.Tool.Name(), age)}
	}
	c.record("replayed", true)
	return c.keptResult(prior, true)
}

// keptResult returns the result kept in prior, marked as replayed or not.
func (c *Call) keptResult(prior audit.Outcome, replayed bool) (Result, error) {
	raw := []byte(prior.Result)
	if !prior.Stamp.IsZero() {
		commit := prior.Stamp.String()[:2*kv.StampSize]
		raw = bytes.ReplaceAll(raw, placeholderCommit, []byte(commit))
	}
	var kept keptResult
	if err := json.Unmarshal(raw, &kept); err != nil {
		return Result{}, fmt.Errorf("the result kept under this %s is corrupt: %w", idempotencyArg, err)
	}
	structured := any(kept.Structured)
	if !replayed {
		var v any
		if json.Unmarshal(kept.Structured, &v) == nil {
			structured = v
		}
		return Result{Structured: structured, Text: kept.Text}, nil
	}
	var obj map[string]any
	if json.Unmarshal(kept.Structured, &obj) == nil && obj != nil {
		obj["replayed"] = true
		structured = obj
	}
	age := time.Since(prior.Time).Round(time.Second)
	note := fmt.Sprintf("(Replayed: a call with this %s already did this %s ago; nothing was done again.)", idempotencyArg, age)
	if c.resent {
		note = fmt.Sprintf("(The local Coditect core stopped before this call was answered, and it was sent again: it had already done this %s ago, and nothing was done again.)", age)
	}
	return Result{Structured: structured, Text: kept.Text + "\n" + note}, nil
}

// keep stores the call's result under key, in the same transaction as
// the call's tool.called record unless the handler committed that record
// itself (then right after it). If that fails, the reservation stays and
// a retry is told that the outcome is unknown.
func (c *Call) keep(ctx context.Context, key, digest string, res Result) {
	o := audit.Outcome{Digest: digest, Done: true, Result: keptBytes(res)}
	l := c.Scope.Log()
	audited := c.audited
	_, err := c.Scope.Store().Update(ctx, func(tx kv.Tx) error {
		if !audited {
			if _, err := l.Writer(tx).Append(c.toolEventOK()); err != nil {
				return err
			}
		}
		return l.PutOutcome(tx, key, o)
	})
	if err == nil {
		c.audited = true
	}
}

// release removes the reservation of a call that was refused: it changed
// nothing, so its retry runs again.
func (c *Call) release(ctx context.Context, key string) error {
	l := c.Scope.Log()
	_, err := c.Scope.Store().Update(kv.WithRelaxedDurability(ctx), func(tx kv.Tx) error { return l.ClearOutcome(tx, key) })
	return err
}
