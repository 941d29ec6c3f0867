package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coditect/coditect/ide"
	"github.com/coditect/coditect/server"
	"github.com/coditect/coditect/server/localcore"
	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/tenant"
)

// coreIDE are the settings of a forwarded `coditect ide` (its flags), sent
// in the hello's options.
type coreIDE struct {
	MaxMessage int64         `json:"max_message,omitempty"`
	TokenTTL   time.Duration `json:"token_ttl,omitempty"`
}

// ideCoreOpener serves the local core's IDE connections: each as
// `coditect ide` serves its stdio, for the identity it resolves the same
// way, with a dashboard of the connection's own (its login token lives as
// long as the connection). dir is the core's directory for the IDE
// protocol; u the store's URL.
func ideCoreOpener(dir *tenant.Directory, u string, logger *slog.Logger) localcore.Opener {
	version := strings.Fields(versionString())[1]
	return func(ctx context.Context, h localcore.Hello) (func(context.Context, net.Conn) error, error) {
		var o coreIDE
		if len(h.Options) > 0 {
			if err := json.Unmarshal(h.Options, &o); err != nil {
				return nil, fmt.Errorf("hello options: %w", err)
			}
		}
		if o.MaxMessage <= 0 {
			o.MaxMessage = ide.DefaultMaxMessage
		}
		if o.TokenTTL <= 0 {
			o.TokenTTL = dashboardTokenTTL
		}
		sc, err := server.ResolveStdio(ctx, dir, server.StdioIdentity{Token: h.Token, Tenant: h.Tenant, User: h.User, StoreURL: u})
		if err != nil {
			return nil, err
		}
		logger.Info("core IDE connection", "pid", h.PID, "workspace", h.Workspace)
		return func(ctx context.Context, conn net.Conn) error {
			dash := newIDEDashboard(&stdioEnv{url: u, dir: dir, token: h.Token}, logger, o.TokenTTL)
			code, err := ide.Serve(ctx, sc, conn, conn, ide.Options{
				Version:    version,
				Logger:     logger.With("ide_pid", h.PID),
				Dashboard:  dash,
				MaxMessage: o.MaxMessage,
				Protected:  storage.OwnFiles(u),
			})
			// The dashboard's login token is revoked before the forwarder
			// hears the status and exits, as when the IDE serves itself.
			dash.close()
			if err != nil {
				return err
			}
			return localcore.WriteExit(conn, code)
		}, nil
	}
}

// forwardIDE forwards a coditect ide to its store's core, starting one
// when none runs, and returns the exit status of its session. The error
// wraps errServeDirectly when no core can serve it; a core's refusal of
// its identity is returned as is. A core lost mid-session cannot be
// replaced (the session's documents lived in it): status 1 and
// localcore.ErrCoreLost.
func forwardIDE(ctx context.Context, cmd *cobra.Command, u string, o coreIDE, proto *os.File, logger *slog.Logger) (int, error) {
	paths, hello, argv, env, err := coreClient(cmd, u, "ide", o)
	if err != nil {
		return 1, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	c, r, err := localcore.Connect(cctx, paths, hello, argv, env)
	cancel()
	var refused *localcore.RefusedError
	switch {
	case errors.As(err, &refused) && refused.Direct:
		return 1, fmt.Errorf("%w: %s", errServeDirectly, refused.Reason)
	case errors.As(err, &refused):
		return 1, errors.New(refused.Reason)
	case err != nil:
		return 1, fmt.Errorf("%w: %v", errServeDirectly, err)
	}
	logger.Info("serving the IDE protocol on stdio through the local core", "store", u, "socket", paths.Socket, "core_pid", r.PID, "pid", os.Getpid())
	relayOnly()
	return localcore.ForwardIDE(ctx, server.PollableStdin(), proto, c)
}
