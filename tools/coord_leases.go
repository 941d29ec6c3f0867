package tools

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/lease"
)

// --- leases ---

// leaseOut is a lease the caller holds: Resource is a path or glob
// relative to the root of Project (the project's name), or a key.
type leaseOut struct {
	Resource   string    `json:"resource"`
	Project    string    `json:"project,omitempty"`
	Mode       string    `json:"mode"`
	Token      int64     `json:"token"`
	Expires    time.Time `json:"expires"`
	TTLSeconds int64     `json:"ttl_seconds"`
}

const leaseSchema = `{"type":"object","required":["resource","mode","token","expires","ttl_seconds"],"properties":{
	"resource":{"type":"string"},"project":{"type":"string"},"mode":{"type":"string"},"token":{"type":"integer"},
	"expires":{"type":"string"},"ttl_seconds":{"type":"integer"}}}`

func (c *Call) newLeaseOut(ctx context.Context, l lease.Lease) leaseOut {
	rel, id := unqualify(l.Resource)
	return leaseOut{Resource: rel, Project: c.projectName(ctx, id), Mode: string(l.Mode), Token: l.Token, Expires: l.Expires.UTC(),
		TTLSeconds: int64(l.TTL / time.Second)}
}

// Bounds of a lease's TTL in seconds.
const (
	minLeaseSeconds = int64(lease.MinTTL / time.Second)
	maxLeaseSeconds = int64(lease.MaxTTL / time.Second)
)

// ttl checks a ttl_seconds argument: 0 means the default (returned as 0).
func (c *Call) ttl(v int64) (time.Duration, error) {
	if v == 0 {
		return 0, nil
	}
	if v < minLeaseSeconds || v > maxLeaseSeconds {
		return 0, c.argError("%q must be between %d and %d, not %d", "ttl_seconds", minLeaseSeconds, maxLeaseSeconds, v)
	}
	return time.Duration(v) * time.Second, nil
}

// resource checks a resource argument and returns the lease resource it
// names: a key as it is; a path or glob relative to the root of the
// project of session_id, or of project, or of the tenant's only project,
// qualified with that project (see qualify). The lease layer checks the
// grammar.
func (c *Call) resource(ctx context.Context, v, sessionID, ref string) (string, error) {
	if err := c.text("resource", v, lease.MaxResource, true, true); err != nil {
		return "", err
	}
	if lease.IsKey(v) {
		return v, nil
	}
	switch {
	case strings.HasPrefix(v, "/"):
		return "", c.argError("%q %q is an absolute path: send a file path or glob relative to the project root, e.g. src/a.go or src/**/*.go", "resource", textclip.Clip(v, 80))
	case v == "." || v == ".." || strings.HasPrefix(v, "../") || path.Clean(v) != v:
		return "", c.argError("%q %q is not a clean path inside the project: no \".\" or \"..\" segment, empty segment or trailing '/', e.g. src/a.go", "resource", textclip.Clip(v, 80))
	}
	p, err := c.resolveProject(ctx, sessionID, ref)
	if err != nil {
		return "", err
	}
	return qualify(p.ID, v), nil
}

// leaseError rewrites a lease layer's refusal of the resource res for a
// model, without the project prefix of its resources.
func (c *Call) leaseError(ctx context.Context, res string, err error) error {
	var ce *lease.ConflictError
	if errors.As(err, &ce) {
		return conflictError(ctx, c, res, ce, agent.Now(ctx))
	}
	if errors.Is(err, lease.ErrInvalid) || errors.Is(err, lease.ErrNotHeld) || errors.Is(err, lease.ErrGone) {
		_, id := unqualify(res)
		msg := err.Error()
		for _, sentinel := range []error{lease.ErrInvalid, lease.ErrNotHeld, lease.ErrGone} {
			if errors.Is(err, sentinel) {
				if i := strings.Index(msg, sentinel.Error()+": "); i >= 0 {
					msg = msg[i+len(sentinel.Error())+2:]
				}
			}
		}
		return &toolError{err: err, msg: unqualifyText(strings.TrimPrefix(msg, "lease: "), id)}
	}
	return err
}

// conflictError rewrites a lease conflict over res for a model: who holds
// the resource, how alive it is, until when, and what to do.
func conflictError(ctx context.Context, c *Call, res string, ce *lease.ConflictError, now time.Time) error {
	var hs []string
	allShared := true
	for _, h := range ce.Holders {
		hs = append(hs, c.holderText(ctx, res, h, now))
		allShared = allShared && h.Mode == lease.Shared
	}
	instead := ""
	if allShared && ce.Mode != lease.Shared {
		instead = ", take a shared lease (mode shared) to read alongside them"
	}
	return &toolError{err: ce, msg: fmt.Sprintf("%s is taken: %s. Wait until then and try again%s, work on something else, or ask the holder with message_send",
		c.show(ctx, res), strings.Join(hs, "; "), instead)}
}

// holderText renders a grant that covers res for a model: who holds it —
// "you", or the agent's id and name with its liveness — through which
// resource, with which token, until when.
func (c *Call) holderText(ctx context.Context, res string, h lease.Holder, now time.Time) string {
	if h.Agent == c.Scope.Principal().Agent {
		what := "it"
		if h.Resource != res {
			what = c.show(ctx, h.Resource)
		}
		return fmt.Sprintf("you hold %s (%s, token %d) until %s", what, h.Mode, h.Token, until(now, h.Expires))
	}
	who := "agent " + h.Agent
	if h.AgentName != "" {
		who += " (" + h.AgentName + ")"
	}
	what := ""
	if h.Resource != res {
		what = " through its lease on " + c.show(ctx, h.Resource)
	}
	return fmt.Sprintf("%s holds it%s (%s, token %d; %s, last seen %s) until %s",
		who, what, h.Mode, h.Token, h.Liveness, since(now, h.LastSeen), until(now, h.Expires))
}

// heldBy says who holds res now (grants on it, globs covering it, paths
// it covers) and the call that will succeed: the caller's own token, or
// waiting for and asking the other holders, or taking the lease. The
// refusals of a lease the caller does not hold end with it.
func (c *Call) heldBy(ctx context.Context, res string) string {
	hs, err := lease.Holders(ctx, c.Scope, res)
	if err != nil {
		return "Take it with lease_acquire."
	}
	now := agent.Now(ctx)
	me := c.Scope.Principal().Agent
	var others []string
	for _, h := range hs {
		if h.Agent != me {
			others = append(others, c.holderText(ctx, res, h, now))
		}
	}
	// The caller's own grant is the answer: the exact one first.
	for _, exact := range []bool{true, false} {
		for _, h := range hs {
			if h.Agent != me || (h.Resource == res) != exact {
				continue
			}
			if exact {
				return fmt.Sprintf("You hold it with token %d (%s) until %s: call again with token %d, or with no token.", h.Token, h.Mode, until(now, h.Expires), h.Token)
			}
			return fmt.Sprintf("You hold %s with token %d (%s) until %s: name that resource and token %d.", c.show(ctx, h.Resource), h.Token, h.Mode, until(now, h.Expires), h.Token)
		}
	}
	if len(others) > 0 {
		return "It is not yours: " + strings.Join(others, "; ") + ". Wait until then, ask the holder with message_send, or work on something else."
	}
	return "Nobody holds it now: take it with lease_acquire."
}

// notHeldError rewrites the lease layer's ErrNotHeld for the caller's
// token on res.
func (c *Call) notHeldError(ctx context.Context, res string, token int64, err error) error {
	return &toolError{err: err, msg: fmt.Sprintf("token %d is no lease of yours on %s (it was released, expired and reclaimed, or never yours). %s", token, c.show(ctx, res), c.heldBy(ctx, res))}
}

// leaseWhere are the arguments that say which project a path or glob
// resource is relative to.
const leaseWhere = `"session_id":{"type":"string","description":"Your session, for its project"},
			"project":{"type":"string","description":"Or a project name"}`

type leaseAcquireArgs struct {
	Resource   string `json:"resource"`
	SessionID  string `json:"session_id"`
	Project    string `json:"project"`
	Mode       string `json:"mode"`
	TTLSeconds int64  `json:"ttl_seconds"`
}

func leaseAcquireTool() *Tool {
	return spec{
		name: "lease_acquire", title: "Take a lease",
		description: "Lock a file path, glob or task key such as task:tk_1 for yourself; returns the fencing token fs_write needs.",
		hints:       additive,
		input: `{"type":"object","required":["resource"],"additionalProperties":false,"properties":{
			"resource":{"type":"string","description":"Project path (src/a.go), glob (src/**/*.go) or key (task:ID)"},
			` + leaseWhere + `,
			"mode":{"type":"string","enum":["exclusive","shared"]},
			"ttl_seconds":{"type":"integer","minimum":1,"maximum":86400,"description":"Default 120"}}}`,
		output:  leaseSchema,
		example: `{"resource":"src/auth/login.go","session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T","ttl_seconds":300}`,
		oneTx:   true,
		handler: leaseAcquire,
	}.tool()
}

func leaseAcquire(ctx context.Context, c *Call) (Result, error) {
	var a leaseAcquireArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	if a.Mode != "" {
		if err := c.oneOf("mode", a.Mode, "exclusive", "shared"); err != nil {
			return Result{}, err
		}
	}
	ttl, err := c.ttl(a.TTLSeconds)
	if err != nil {
		return Result{}, err
	}
	if err := c.actsAsWriter(); err != nil {
		return Result{}, err
	}
	res, err := c.resource(ctx, a.Resource, a.SessionID, a.Project)
	if err != nil {
		return Result{}, err
	}
	// The lease, the call's own record and a keyed call's result commit
	// together: one commit.
	var r Result
	_, err = lease.AcquireWith(ctx, c.Scope, lease.Request{Resource: res, Mode: lease.Mode(a.Mode), TTL: ttl}, oneTxHook(c, &r, func(l lease.Lease) Result {
		c.record("fencing_token", l.Token)
		out := c.newLeaseOut(ctx, l)
		return Result{Structured: out, Text: fmt.Sprintf("You hold %s (%s) with token %d until %s. Pass token %d to fs_write and lease_release; renew with lease_renew before it ends.",
			c.show(ctx, l.Resource), out.Mode, out.Token, until(agent.Now(ctx), out.Expires), out.Token)}
	}))
	if errors.Is(err, errKeyUsed) {
		return Result{}, err
	}
	if err != nil {
		delete(c.attrs, "fencing_token") // of an attempt that did not commit
		return Result{}, c.leaseError(ctx, res, err)
	}
	c.audited = true
	return r, nil
}

// ownToken returns the token of the caller's grant on exactly resource.
func (c *Call) ownToken(ctx context.Context, resource string) (int64, error) {
	me, err := c.me()
	if err != nil {
		return 0, err
	}
	held, err := lease.List(ctx, c.Scope, me)
	if err != nil {
		return 0, err
	}
	for _, h := range held {
		if h.Resource == resource {
			return h.Token, nil
		}
	}
	return 0, &toolError{err: lease.ErrNotHeld, msg: fmt.Sprintf("you hold no lease on exactly %s (it was released, expired and reclaimed, or never taken). %s", c.show(ctx, resource), c.heldBy(ctx, resource))}
}

type leaseTokenArgs struct {
	Resource   string `json:"resource"`
	SessionID  string `json:"session_id"`
	Project    string `json:"project"`
	Token      int64  `json:"token"`
	TTLSeconds int64  `json:"ttl_seconds"`
}

func leaseRenewTool() *Tool {
	return spec{
		name: "lease_renew", title: "Renew a lease",
		description: "Extend a lease you hold before it expires, keeping its fencing token.",
		hints:       additive,
		input: `{"type":"object","required":["resource"],"additionalProperties":false,"properties":{
			"resource":{"type":"string"},
			` + leaseWhere + `,
			"token":{"type":"integer","description":"From lease_acquire; default: yours"},
			"ttl_seconds":{"type":"integer","minimum":1,"maximum":86400}}}`,
		output:  leaseSchema,
		example: `{"resource":"src/auth/login.go","session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T","ttl_seconds":300}`,
		oneTx:   true,
		handler: leaseRenew,
	}.tool()
}

func leaseRenew(ctx context.Context, c *Call) (Result, error) {
	var a leaseTokenArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	if a.Token < 0 {
		return Result{}, c.argError("%q must be the positive token lease_acquire returned, not %d", "token", a.Token)
	}
	ttl, err := c.ttl(a.TTLSeconds)
	if err != nil {
		return Result{}, err
	}
	res, err := c.resource(ctx, a.Resource, a.SessionID, a.Project)
	if err != nil {
		return Result{}, err
	}
	token, err := c.heldToken(ctx, res, a.Token)
	if err != nil {
		return Result{}, err
	}
	var r Result
	_, err = lease.RenewWith(ctx, c.Scope, res, token, ttl, oneTxHook(c, &r, func(l lease.Lease) Result {
		out := c.newLeaseOut(ctx, l)
		return Result{Structured: out, Text: fmt.Sprintf("Renewed %s (token %d) until %s.", c.show(ctx, l.Resource), out.Token, until(agent.Now(ctx), out.Expires))}
	}))
	if errors.Is(err, errKeyUsed) {
		return Result{}, err
	}
	if errors.Is(err, lease.ErrNotHeld) {
		return Result{}, c.notHeldError(ctx, res, token, err)
	}
	if err != nil {
		return Result{}, c.leaseError(ctx, res, err)
	}
	c.audited = true
	return r, nil
}

type leaseReleaseArgs struct {
	Resource  string `json:"resource"`
	SessionID string `json:"session_id"`
	Project   string `json:"project"`
	Token     int64  `json:"token"`
}

type leaseReleaseOut struct {
	Resource string `json:"resource"`
	Project  string `json:"project,omitempty"`
	Token    int64  `json:"token"`
	Released bool   `json:"released"`
}

func leaseReleaseTool() *Tool {
	return spec{
		name: "lease_release", title: "Release a lease",
		description: "Release a lease you hold as soon as you are done, so that others can take it.",
		hints:       hints{idempotent: true},
		input: `{"type":"object","required":["resource"],"additionalProperties":false,"properties":{
			"resource":{"type":"string"},
			` + leaseWhere + `,
			"token":{"type":"integer","description":"From lease_acquire; default: yours"}}}`,
		output: `{"type":"object","required":["resource","token","released"],"properties":{
			"resource":{"type":"string"},"project":{"type":"string"},"token":{"type":"integer"},"released":{"type":"boolean"}}}`,
		example: `{"resource":"src/auth/login.go","session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T","token":7}`,
		oneTx:   true,
		handler: leaseRelease,
	}.tool()
}

// heldToken checks a token argument (0 means the caller's own grant on
// res, which it looks up), refuses viewers, and records the token in the
// call's audit event.
func (c *Call) heldToken(ctx context.Context, res string, token int64) (int64, error) {
	if token < 0 {
		return 0, c.argError("%q must be the positive token lease_acquire returned, not %d", "token", token)
	}
	if err := c.Scope.CanWrite(); err != nil {
		return 0, err
	}
	if token == 0 {
		var err error
		if token, err = c.ownToken(ctx, res); err != nil {
			return 0, err
		}
	}
	c.record("fencing_token", token)
	return token, nil
}

func leaseRelease(ctx context.Context, c *Call) (Result, error) {
	var a leaseReleaseArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	if a.Token < 0 {
		return Result{}, c.argError("%q must be the positive token lease_acquire returned, not %d", "token", a.Token)
	}
	res, err := c.resource(ctx, a.Resource, a.SessionID, a.Project)
	if err != nil {
		return Result{}, err
	}
	token, err := c.heldToken(ctx, res, a.Token)
	if err != nil {
		return Result{}, err
	}
	// It takes no idempotency key (a repeat is harmless), but its record
	// commits with the release all the same.
	var r Result
	err = lease.ReleaseWith(ctx, c.Scope, res, token, oneTxHook(c, &r, func(lease.Lease) Result {
		rel, id := unqualify(res)
		out := leaseReleaseOut{Resource: rel, Project: c.projectName(ctx, id), Token: token, Released: true}
		return Result{Structured: out, Text: fmt.Sprintf("Released %s (token %d).", c.show(ctx, res), token)}
	}))
	if errors.Is(err, lease.ErrNotHeld) {
		return Result{}, c.notHeldError(ctx, res, token, err)
	}
	if err != nil {
		return Result{}, c.leaseError(ctx, res, err)
	}
	c.audited = true
	return r, nil
}
