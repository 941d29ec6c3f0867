package ide

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/coditect/coditect/storage/errclass"
)

// Dispatch, as gopls does it (ARCHITECTURE.md §6):
//
//   - the read loop (jsonrpc2's goroutine) handles $/cancelRequest itself
//     and queues every other message, in arrival order; it never waits on
//     the client nor on the store;
//   - run takes messages off the queue one at a time: a notification runs
//     to completion there, so notifications apply strictly in order; a
//     request starts there (after every notification before it has
//     applied) in a goroutine of its own, so requests run concurrently;
//   - lifecycle requests (initialize, shutdown) run on run itself, so the
//     state they set holds for every later message.
//
// Handlers that talk to the client only send notifications: nothing here
// waits for the client's answer, so nothing can deadlock on it.

// Handle implements jsonrpc2.Handler. It runs on the read loop.
func (s *server) Handle(ctx context.Context, _ *jsonrpc2.Conn, req *jsonrpc2.Request) {
	<-s.ready
	if req.Method == "$/cancelRequest" {
		s.cancelRequest(req)
		return
	}
	if !req.Notif {
		// Registered now, so that a cancel overtaking the queue finds it.
		s.mu.Lock()
		_, dup := s.inflight[req.ID]
		if !dup {
			ctx, cancel := context.WithCancel(s.ctx)
			s.inflight[req.ID] = &pending{ctx, cancel}
		}
		s.mu.Unlock()
		if dup {
			s.replyError(ctx, req, codeInvalidRequest, fmt.Sprintf("request id %s is already in use by a pending request", req.ID))
			return
		}
	}
	select {
	case s.queue <- req:
	case <-s.ctx.Done():
	}
}

// cancelRequest cancels a pending request's context; the request answers
// with RequestCancelled unless it has already finished.
func (s *server) cancelRequest(req *jsonrpc2.Request) {
	var p struct {
		ID jsonrpc2.ID `json:"id"`
	}
	if req.Params == nil || json.Unmarshal(*req.Params, &p) != nil {
		s.log.Warn("$/cancelRequest with bad params")
		return
	}
	s.mu.Lock()
	p2 := s.inflight[p.ID]
	s.mu.Unlock()
	if p2 != nil {
		p2.cancel()
	}
}

// run is the queue's consumer.
func (s *server) run() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case req := <-s.queue:
			if req.Notif {
				s.notification(req)
				continue
			}
			ctx := s.requestContext(req.ID)
			if h, ok := lifecycleRequests[req.Method]; ok {
				s.answer(ctx, req, h)
				continue
			}
			if err := s.admit(req.Method); err != nil {
				s.finish(req.ID)
				s.replyErr(ctx, req, err)
				continue
			}
			h, ok := requests[req.Method]
			if !ok {
				s.finish(req.ID)
				s.replyError(ctx, req, codeMethodNotFound, fmt.Sprintf("method %q is not supported by coditect ide", req.Method))
				continue
			}
			if !s.goBackground(func() { s.answer(ctx, req, h) }) {
				s.finish(req.ID)
			}
		}
	}
}

// pending is a request between its arrival and its answer.
type pending struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// requestContext returns the context Handle registered for id.
func (s *server) requestContext(id jsonrpc2.ID) context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.inflight[id]; p != nil {
		return p.ctx
	}
	return s.ctx
}

func (s *server) finish(id jsonrpc2.ID) {
	s.mu.Lock()
	p := s.inflight[id]
	delete(s.inflight, id)
	s.mu.Unlock()
	if p != nil {
		p.cancel()
	}
}

// requestHandler answers a request; an error is translated once, by
// replyErr.
type requestHandler func(s *server, ctx context.Context, params json.RawMessage) (any, error)

// notificationHandler applies a notification; its error is logged.
type notificationHandler func(s *server, ctx context.Context, params json.RawMessage) error

// answer runs h and replies.
func (s *server) answer(ctx context.Context, req *jsonrpc2.Request, h requestHandler) {
	defer s.finish(req.ID)
	res, err := s.safely(ctx, req.Method, func() (any, error) {
		if err := s.guard(ctx, req.Method); err != nil {
			return nil, err
		}
		return h(s, ctx, rawParams(req))
	})
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		s.replyErr(ctx, req, err)
		return
	}
	if err := s.rpc.Reply(context.WithoutCancel(ctx), req.ID, res); err != nil {
		s.log.Debug("reply", "method", req.Method, "error", err)
	}
}

// notification applies a notification in order.
func (s *server) notification(req *jsonrpc2.Request) {
	h, ok := notifications[req.Method]
	if !ok {
		if !strings.HasPrefix(req.Method, "$/") {
			s.log.Debug("ignoring an unknown notification", "method", req.Method)
		}
		return
	}
	if !s.admitNotification(req.Method) {
		return
	}
	if err := s.guard(s.ctx, req.Method); err != nil {
		s.log.Warn("notification dropped", "method", req.Method, "error", err)
		return
	}
	if _, err := s.safely(s.ctx, req.Method, func() (any, error) { return nil, h(s, s.ctx, rawParams(req)) }); err != nil {
		s.log.Warn("notification failed", "method", req.Method, "error", err)
	}
}

// safely runs fn, turning a panic into an internal error: no input may
// end the server.
func (s *server) safely(_ context.Context, method string, fn func() (any, error)) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("handler panicked", "method", method, "panic", r)
			res, err = nil, &rpcError{code: codeInternalError, msg: fmt.Sprintf("internal error in %s", method)}
		}
	}()
	return fn()
}

func rawParams(req *jsonrpc2.Request) json.RawMessage {
	if req.Params == nil {
		return nil
	}
	return *req.Params
}

// rpcError is an error with its JSON-RPC code, the one translation point.
type rpcError struct {
	code int64
	msg  string
}

func (e *rpcError) Error() string { return e.msg }

func invalidParams(format string, args ...any) error {
	return &rpcError{code: codeInvalidParams, msg: fmt.Sprintf(format, args...)}
}

// decode unmarshals params into v; missing or mistyped params are
// InvalidParams.
func decode(params json.RawMessage, v any) error {
	if len(params) == 0 || string(params) == "null" {
		return invalidParams("params are required")
	}
	if err := json.Unmarshal(params, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return invalidParams("params.%s: %s is not a %s", te.Field, te.Value, te.Type)
		}
		return invalidParams("params: %v", err)
	}
	return nil
}

func (s *server) replyError(ctx context.Context, req *jsonrpc2.Request, code int64, msg string) {
	if err := s.rpc.ReplyWithError(context.WithoutCancel(ctx), req.ID, &jsonrpc2.Error{Code: code, Message: msg}); err != nil {
		s.log.Debug("reply", "method", req.Method, "error", err)
	}
}

// replyErr translates err to a JSON-RPC error, once: the one place the
// IDE protocol maps layer errors, by class (errclass). An invalid argument
// is InvalidParams; the other classes are RequestFailed with data
// {"class": "not_found" | "conflict" | "forbidden" | "unavailable"}.
func (s *server) replyErr(ctx context.Context, req *jsonrpc2.Request, err error) {
	var re *rpcError
	switch {
	case errors.As(err, &re):
		s.replyError(ctx, req, re.code, re.msg)
		return
	case errors.Is(err, context.Canceled) && s.ctx.Err() == nil:
		s.replyError(ctx, req, codeRequestCancelled, "request cancelled")
		return
	}
	class := errclass.Of(err)
	switch class {
	case errclass.Invalid:
		s.replyError(ctx, req, codeInvalidParams, err.Error())
		return
	case nil, errclass.Unavailable:
		s.log.Warn("request failed", "method", req.Method, "error", err)
	}
	e := &jsonrpc2.Error{Code: codeRequestFailed, Message: err.Error()}
	if class != nil {
		e.SetError(struct {
			Class string `json:"class"`
		}{class.Name()})
	}
	if rerr := s.rpc.ReplyWithError(context.WithoutCancel(ctx), req.ID, e); rerr != nil {
		s.log.Debug("reply", "method", req.Method, "error", rerr)
	}
}

// notify sends a notification to the client; it does not wait.
func (s *server) notify(method string, params any) {
	if err := s.rpc.Notify(s.ctx, method, params); err != nil {
		s.log.Debug("notify", "method", method, "error", err)
	}
}
