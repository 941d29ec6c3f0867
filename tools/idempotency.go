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
// A keyed call first reserves its key in the store (one commit), so that
// a duplicate in another process sees it running; duplicates in the same
// process wait for it. Once the key is reserved, the call runs to the end
// even when its caller gives up (a host that timed out will retry), and
// its result is kept in the same transaction as its tool.called record. A
// call refused (bad arguments, a conflict, the store locked: nothing was
// changed) releases its key, so its retry runs again. A call whose outcome
// is not known — it failed on the server's side, its process died, or the
// store failed while its result was kept — is never run again under the
// same key: its retry is told that the outcome is unknown.
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
	c.record(idempotencyArg, k)
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

// replay answers a call whose key was used before.
func (c *Call) replay(prior audit.Outcome, digest string) (Result, error) {
	age := time.Since(prior.Time).Round(time.Second)
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
	var kept keptResult
	if err := json.Unmarshal(prior.Result, &kept); err != nil {
		return Result{}, fmt.Errorf("the result kept under this %s is corrupt: %w", idempotencyArg, err)
	}
	structured := any(kept.Structured)
	var obj map[string]any
	if json.Unmarshal(kept.Structured, &obj) == nil && obj != nil {
		obj["replayed"] = true
		structured = obj
	}
	note := fmt.Sprintf("(Replayed: a call with this %s already did this %s ago; nothing was done again.)", idempotencyArg, age)
	return Result{Structured: structured, Text: kept.Text + "\n" + note}, nil
}

// keep stores the call's result under key, in the same transaction as
// the call's tool.called record unless the handler committed that record
// itself (then right after it). If that fails, the reservation stays and
// a retry is told that the outcome is unknown.
func (c *Call) keep(ctx context.Context, key, digest string, res Result) {
	o := audit.Outcome{Digest: digest, Done: true}
	if s, err := json.Marshal(res.Structured); err == nil {
		if b, err := json.Marshal(keptResult{Structured: s, Text: res.Text}); err == nil && len(b) <= audit.MaxOutcome-1024 {
			o.Result = b
		}
	}
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
