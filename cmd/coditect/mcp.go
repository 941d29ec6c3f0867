package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coditect/coditect/server"
	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/tools"
)

func newMCPCommand() *cobra.Command {
	var names []string
	for _, s := range tools.Catalog(tools.Config{}) {
		names = append(names, fmt.Sprintf("%s (%s)", s.Name, s.Summary))
	}
	cmd := &cobra.Command{
		Use:   "mcp",
		Short: "Serve MCP over stdio for LM Studio, Claude Desktop, Cursor, Cline or any MCP host",
		Long: "Serve the Model Context Protocol over stdin/stdout, one process per host connection. Only protocol\n" +
			"messages are written to stdout; logs go to stderr or --log-file.\n\n" +
			"Identity: $" + server.TokenEnv + " when set (the token's tenant and user); else --tenant/--user on the\n" +
			"embedded store (default tenant \"" + server.DefaultTenant + "\" and the OS user). The agent is what the host says in\n" +
			"clientInfo, refined by --agent and --model.\n\n" +
			"With --core auto (the default on the embedded store) the process forwards to the store's local core,\n" +
			"one process serving every agent on this machine (started when none runs; see docs/DAEMON.md).\n\n" +
			"Toolsets: " + strings.Join(names, "; ") + ".",
		Args: cobra.NoArgs,
		RunE: runMCP,
	}
	f := cmd.Flags()
	f.String("tenant", "", "tenant of the local identity (default \""+server.DefaultTenant+"\"; not allowed with $"+server.TokenEnv+")")
	f.String("user", "", "user of the local identity (default: the OS user; not allowed with $"+server.TokenEnv+")")
	f.String("agent", "", "agent name, to tell apart several agents of one host (default: the host's clientInfo name)")
	f.String("model", "", "model behind the agent, e.g. qwen2.5-coder-7b-instruct")
	f.StringSlice("toolsets", tools.DefaultToolsets(), "toolsets to serve, comma-separated, or all (agents sharing a project: core,coord,files)")
	f.Int("max-file-size", tools.DefaultMaxFile, "largest file, in bytes, the files toolset reads or writes")
	f.Int("read-lines", tools.DefaultReadLines, "most lines one fs_read returns (it says where to continue)")
	f.Int("read-bytes", tools.DefaultReadBytes, "most bytes one fs_read returns (it says where to continue)")
	f.String("log-file", "", "append logs to this file instead of stderr")
	f.String("core", "auto", "auto: forward to the store's local core, starting one when none runs (embedded store only; $"+coreEnv+"=off turns it off); off: serve directly")
	return cmd
}

func runMCP(cmd *cobra.Command, _ []string) error {
	// First, before anything can print: stdout belongs to the protocol.
	proto, err := server.ReserveStdout()
	if err != nil {
		return err
	}
	defer proto.Close()
	fl := cmd.Flags()
	logFile, _ := fl.GetString("log-file")
	logger, closeLog, err := mcpLogger(logFile)
	if err != nil {
		return err
	}
	defer closeLog()

	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	agentName, _ := fl.GetString("agent")
	model, _ := fl.GetString("model")
	sets, _ := fl.GetStringSlice("toolsets")
	maxFile, _ := fl.GetInt("max-file-size")
	readLines, _ := fl.GetInt("read-lines")
	readBytes, _ := fl.GetInt("read-bytes")
	for _, v := range []struct {
		flag string
		n    int
	}{{"max-file-size", maxFile}, {"read-lines", readLines}, {"read-bytes", readBytes}} {
		if v.n <= 0 {
			return fmt.Errorf("--%s must be positive, not %d", v.flag, v.n)
		}
	}
	mode, err := coreMode(cmd)
	if err != nil {
		return err
	}
	u, err := storeURL(cmd)
	if err != nil {
		return err
	}
	if mode == "auto" && server.EmbeddedStore(u) {
		m := server.CoreMCP{Toolsets: sets, MaxFile: maxFile, ReadLines: readLines, ReadBytes: readBytes, Agent: agentName, Model: model}
		err := forwardMCP(ctx, cmd, u, m, proto, logger)
		if !errors.Is(err, errServeDirectly) {
			return err
		}
		logger.Warn("no local core; serving directly", "reason", err)
	}
	env, err := openStdio(ctx, cmd, "mcp")
	if err != nil {
		return err
	}
	defer env.Close()
	srv, err := server.New(env.dir, server.Options{
		Version:  strings.Fields(versionString())[1],
		Toolsets: sets,
		Tools:    tools.Config{MaxFileRead: maxFile, MaxFileWrite: maxFile, MaxReadLines: readLines, MaxReadBytes: readBytes},
		Agent:    server.AgentFlags{Name: agentName, Model: model},
		Logger:   logger,
		SpoolDir: storage.SpoolDir(env.url),
	})
	if err != nil {
		return err
	}
	logger.Info("coditect mcp starting", "store", env.url, "toolsets", sets, "pid", os.Getpid())
	err = srv.ServeStdio(ctx, env.scope, server.PollableStdin(), proto)
	closeCtx, cancelClose := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelClose()
	if cerr := srv.Close(closeCtx); err == nil {
		err = cerr
	}
	return err
}

// mcpLogger logs to path (appending) or, when path is empty, to stderr.
func mcpLogger(path string) (*slog.Logger, func(), error) {
	var w io.Writer = os.Stderr
	closeFn := func() {}
	if path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("--log-file: %w", err)
		}
		w, closeFn = f, func() { f.Close() }
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})), closeFn, nil
}

// stdioEnv is the open store and the resolved principal of a stdio mode
// (coditect mcp, coditect ide).
type stdioEnv struct {
	url   string
	store kv.Store
	dir   *tenant.Directory
	scope *tenant.Scope
	token string // CODITECT_TOKEN, when the principal came from one
}

// openStdio opens the store --store names and resolves the stdio identity
// (server.ResolveStdio): CODITECT_TOKEN, else the trusted local
// --tenant/--user on an embedded store, else tenant default and the OS
// user. operator names the mode in the audit trail.
func openStdio(ctx context.Context, cmd *cobra.Command, operator string) (*stdioEnv, error) {
	u, err := storeURL(cmd)
	if err != nil {
		return nil, err
	}
	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := storage.Open(openCtx, u)
	if err != nil {
		return nil, err
	}
	dir := tenant.NewDirectory(st, operator)
	fl := cmd.Flags()
	ten, _ := fl.GetString("tenant")
	usr, _ := fl.GetString("user")
	token := strings.TrimSpace(os.Getenv(server.TokenEnv))
	sc, err := server.ResolveStdio(openCtx, dir, server.StdioIdentity{Token: token, Tenant: ten, User: usr, StoreURL: u})
	if err != nil {
		st.Close()
		return nil, err
	}
	return &stdioEnv{url: u, store: st, dir: dir, scope: sc, token: token}, nil
}

func (e *stdioEnv) Close() error { return e.store.Close() }
