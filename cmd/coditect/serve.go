package main

import (
	"context"

	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coditect/coditect/server"
	"github.com/coditect/coditect/server/localcore"
	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/webview"
)

// newServeCommand is `coditect serve`: the headless daemon.
func newServeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon: dashboard, REST API, WebSocket feed, MCP over HTTP, workspace watching and sweepers",
		Long: `Run the daemon on one HTTP address (default 127.0.0.1:3000):

  /              the dashboard (log in with the link printed on first start)
  /api/v1/...    the REST API and, at /api/v1/feed, the live WebSocket feed
  /mcp           MCP over Streamable HTTP (bearer token)
  /healthz /readyz /metrics   health and Prometheus metrics

It watches the workspaces given with --watch and runs the sweepers (agent
liveness, abandoned sessions, expired leases, file evidence, retention).
--role core runs only the watcher and sweepers, --role dashboard only HTTP:
any number of dashboards and one core per node may share one store.

Configuration: flags, then CODITECT_* variables, then a JSON file (--config),
then the defaults; see docs/DAEMON.md. SIGTERM or Ctrl-C stops it gracefully.`,
		Args: cobra.NoArgs,
		RunE: runServe,
	}
	server.ConfigFlags(cmd.Flags())
	profileFlag(cmd)
	return cmd
}

func runServe(cmd *cobra.Command, _ []string) error {
	serverGC()
	cfg, err := server.LoadConfig(cmd.Flags(), os.Getenv)
	if err != nil {
		return err
	}
	logger := serveLogger(cfg)
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	u := cfg.Store
	if u == "" {
		if u, err = storage.DefaultURL(); err != nil {
			return err
		}
	}
	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := storage.Open(openCtx, u)
	if err != nil {
		return err
	}
	defer st.Close()
	stopProfile, err := startCPUProfile(cmd)
	if err != nil {
		return err
	}
	defer stopProfile()
	dir := tenant.NewDirectory(st, "serve")
	ver := strings.Fields(versionString())[1]
	opts := server.DaemonOptions{
		Dir: dir, StoreURL: u, Version: ver, Logger: logger, Out: cmd.OutOrStdout(),
		IgnorePaths: storage.OwnFiles(u),
	}
	if cfg.Role.HTTP() {
		opts.Web = webview.New(dir, webview.Options{
			Logger:         logger.With("part", "webview"),
			OriginPatterns: append([]string{"vscode-webview://*"}, originHosts(cfg.AllowedOrigins)...),
			Version:        ver,
			ProtectedPaths: storage.OwnFiles(u),
		})
	}
	d, err := server.NewDaemon(cfg, opts)
	if err != nil {
		return err
	}
	stopCore := serveCore(ctx, st, u, ver, logger)
	defer stopCore()
	if err := d.Run(ctx); err != nil && !cancelled(ctx, err) {
		return err
	}
	return nil
}

// serveCore makes the daemon the local core of its embedded store, unless
// $CODITECT_CORE is off or another core holds the store: coditect mcp
// processes on this machine then forward to it. It returns what stops
// the core, closing its connections.
func serveCore(ctx context.Context, st kv.Store, u, ver string, logger *slog.Logger) func() {
	if !server.EmbeddedStore(u) || os.Getenv(coreEnv) == "off" {
		return func() {}
	}
	paths, err := corePaths(u)
	if err != nil {
		logger.Warn("not serving as the local core", "err", err)
		return func() {}
	}
	ln, err := localcore.Listen(paths, logger)
	if err != nil {
		logger.Info("not serving as the local core", "reason", err)
		return func() {}
	}
	core := server.NewCore(tenant.NewDirectory(st, "mcp"), u, ver, logger.With("part", "core"))
	core.Handle("ide", ideCoreOpener(tenant.NewDirectory(st, "ide"), u, logger.With("part", "core")))
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := localcore.Serve(ctx, ln, 0, core.Open); err != nil {
			logger.Error("local core stopped", "err", err)
		}
	}()
	logger.Info("serving as the local core", "socket", paths.Socket)
	return func() {
		cancel()
		<-done
		closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := core.Close(closeCtx); err != nil {
			logger.Error("local core: audit records not committed", "err", err)
		}
	}
}

// originHosts turns allowed origins (https://dash.example.com) into the
// WebSocket library's patterns (scheme://host).
func originHosts(origins []string) []string {
	var out []string
	for _, o := range origins {
		out = append(out, strings.TrimSuffix(o, "/"))
	}
	return out
}

// serveLogger logs to stderr in the configured format and level.
func serveLogger(cfg server.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // Validate checked it
	o := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, o))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, o))
}
