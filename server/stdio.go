package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/coditect/coditect/storage/tenant"
)

// ServeStdio serves MCP over in and out (newline-delimited JSON-RPC) as
// the principal of sc until in ends or ctx is canceled. It writes nothing
// but protocol messages to out; its own logs go to the server's logger.
// Use ReserveStdout to keep everything else in the process off the real
// standard output as well.
func (s *Server) ServeStdio(ctx context.Context, sc *tenant.Scope, in io.Reader, out io.Writer) error {
	p := newPrincipal(sc, s.recheck)
	std := mcpserver.NewStdioServer(s.mcp)
	std.SetErrorLogger(slog.NewLogLogger(s.logger.Handler(), slog.LevelError))
	std.SetContextFunc(func(ctx context.Context) context.Context { return withPrincipal(ctx, p) })
	pr := sc.Principal()
	s.logger.Info("serving MCP on stdio", "tenant", pr.Tenant, "user", pr.User, "role", pr.Role, "local", pr.Local)
	err := std.Listen(ctx, in, out)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		err = nil
	}
	// The host may kill the process once stdin is closed: commit the
	// queued audit records now.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if ferr := s.Flush(fctx); ferr != nil {
		s.logger.Error("audit records not flushed", "err", ferr)
	}
	s.logger.Info("stdio closed", "err", err)
	return err
}
