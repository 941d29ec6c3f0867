package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/coditect/coditect/server"
	"github.com/coditect/coditect/server/localcore"
	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/tenant"
)

// Environment of the local core.
const (
	// coreEnv set to "off" makes coditect mcp serve directly (--core off).
	coreEnv = "CODITECT_CORE"
	// coreIdleEnv is the idle grace of a core that coditect mcp starts.
	coreIdleEnv = "CODITECT_CORE_IDLE"
	// coreAnswersEnv set to "relay" has a forwarding coditect mcp relay
	// the core's answers instead of passing the core its stdout.
	coreAnswersEnv = "CODITECT_CORE_ANSWERS"
	// profileEnv names the file a core that coditect mcp starts, or
	// coditect serve, writes its CPU profile to (--cpuprofile).
	profileEnv = "CODITECT_CPUPROFILE"
)

// defaultCoreIdle is how long a core with no connection waits before it
// exits.
const defaultCoreIdle = 30 * time.Second

func newCoreCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "core",
		Short: "Serve every local coditect mcp and coditect ide of one embedded store from one process (started by them with --core auto)",
		Long: "Serve the connections of every `coditect mcp` and `coditect ide` on this machine that uses the embedded store, over a\n" +
			"Unix socket only this user can reach, so that all agents share one store writer and its group commit.\n" +
			"coditect mcp and coditect ide start it when none runs; it exits after --idle with no connection. One core per store:\n" +
			"a second one exits at once. See docs/DAEMON.md, \"The local core\".",
		Args: cobra.NoArgs,
		RunE: runCore,
	}
	cmd.Flags().Duration("idle", coreIdle(), "exit after this long with no connection (0: never); default $"+coreIdleEnv+" or 30s")
	profileFlag(cmd)
	return cmd
}

// coreIdle is the default idle grace: $CODITECT_CORE_IDLE, else 30 s.
func coreIdle() time.Duration {
	if d, err := time.ParseDuration(os.Getenv(coreIdleEnv)); err == nil && d >= 0 {
		return d
	}
	return defaultCoreIdle
}

func runCore(cmd *cobra.Command, _ []string) error {
	serverGC()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	idle, _ := cmd.Flags().GetDuration("idle")
	u, err := storeURL(cmd)
	if err != nil {
		localcore.SignalReady(err)
		return err
	}
	paths, err := corePaths(u)
	if err != nil {
		localcore.SignalReady(err)
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	st, err := storage.Open(openCtx, u)
	cancel()
	if err != nil {
		localcore.SignalReady(err)
		return err
	}
	defer st.Close()
	ln, err := localcore.Listen(paths, logger)
	localcore.SignalReady(err)
	if errors.Is(err, localcore.ErrRunning) {
		logger.Info("another core serves this store", "store", u)
		return nil
	}
	if err != nil {
		return err
	}
	stopProfile, err := startCPUProfile(cmd)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopProfile()
	logger.Info("coditect core listening", "store", u, "socket", paths.Socket, "pid", os.Getpid(), "idle", idle)
	core := server.NewCore(tenant.NewDirectory(st, "mcp"), u, strings.Fields(versionString())[1], logger)
	core.Handle("ide", ideCoreOpener(tenant.NewDirectory(st, "ide"), u, logger))
	ctx, cancelGone := context.WithCancel(ctx)
	defer cancelGone()
	go exitWhenGone(ctx, cancelGone, paths.Store, logger)
	err = localcore.Serve(ctx, ln, idle, core.Open)
	closeCtx, cancelClose := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelClose()
	if cerr := core.Close(closeCtx); err == nil {
		err = cerr
	}
	logger.Info("coditect core stopped", "err", err)
	return err
}

// profileFlag adds --cpuprofile to a command that serves many agents.
func profileFlag(cmd *cobra.Command) {
	cmd.Flags().String("cpuprofile", os.Getenv(profileEnv), "write a CPU profile (go tool pprof) to this file until the process stops; default $"+profileEnv)
}

// startCPUProfile writes a CPU profile to the file --cpuprofile names, if
// any, until the returned function is called.
func startCPUProfile(cmd *cobra.Command) (stop func(), err error) {
	path, _ := cmd.Flags().GetString("cpuprofile")
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// exitWhenGone cancels the core when its store's database file is removed
// (a deleted test directory): it has nothing left to serve.
func exitWhenGone(ctx context.Context, cancel context.CancelFunc, path string, logger *slog.Logger) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				logger.Info("the store's file is gone; exiting", "store", path)
				cancel()
				return
			}
		}
	}
}

// corePaths locates the core files of the embedded store at u.
func corePaths(u string) (localcore.Paths, error) {
	spool := storage.SpoolDir(u)
	if !server.EmbeddedStore(u) || !strings.HasSuffix(spool, "-spool") {
		return localcore.Paths{}, fmt.Errorf("the local core serves only an embedded store, not %s", u)
	}
	path := strings.TrimSuffix(spool, "-spool")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return localcore.Paths{}, err
	}
	return localcore.Locate(path, os.Getenv("XDG_RUNTIME_DIR"))
}

// absStoreURL is the embedded store's URL u with its absolute path.
func absStoreURL(u string, paths localcore.Paths) string {
	abs := "sqlite://" + (&url.URL{Path: filepath.ToSlash(paths.Store)}).EscapedPath()
	if i := strings.IndexByte(u, '?'); i >= 0 {
		abs += u[i:]
	}
	return abs
}

// coreMode is --core when it is given, else off when $CODITECT_CORE says
// so, else the flag's default (auto).
func coreMode(cmd *cobra.Command) (string, error) {
	mode, _ := cmd.Flags().GetString("core")
	if v := os.Getenv(coreEnv); v == "off" && !cmd.Flags().Changed("core") {
		mode = "off"
	}
	if mode != "auto" && mode != "off" {
		return "", fmt.Errorf("--core %q: want auto or off", mode)
	}
	return mode, nil
}

// errServeDirectly: no core could serve this process; it serves itself.
var errServeDirectly = errors.New("serving directly")

// forwardMCP forwards a coditect mcp to its store's core, starting one
// when none runs. It returns an error wrapping errServeDirectly when no
// core can serve it, and a core's refusal of its identity as is.
func forwardMCP(ctx context.Context, cmd *cobra.Command, u string, m server.CoreMCP, proto *os.File, logger *slog.Logger) error {
	paths, hello, argv, env, err := coreClient(cmd, u, "mcp", m)
	if err != nil {
		return err
	}
	retry, err := server.CoreTools(m)
	if err != nil {
		return err
	}
	limit, err := server.MaxStdioMessage(m)
	if err != nil {
		return err
	}
	instance := newInstanceID()
	hello.Instance = instance
	for name, r := range retry {
		if r.AddsKey() {
			hello.Keyed = append(hello.Keyed, name)
		}
	}
	slices.Sort(hello.Keyed)
	// The core writes its answers to the client itself, and reads the
	// client's requests itself, where the platform allows it; elsewhere
	// (or when told to) the forwarder relays them.
	stdin := server.PollableStdin()
	var answers *localcore.Answers
	switch v := os.Getenv(coreAnswersEnv); v {
	case "", "direct", "answers":
		if answers, err = localcore.NewAnswers(proto); err != nil {
			logger.Debug("relaying the core's answers", "err", err)
			break
		}
		// Only a pipe or socket can be read by the core and stopped.
		if v != "answers" && stdin != os.Stdin {
			if err := answers.WithInput(stdin, limit); err != nil {
				logger.Debug("relaying the client's requests", "err", err)
			}
		}
	case "relay":
	default:
		return fmt.Errorf("$%s=%q: want direct, answers or relay", coreAnswersEnv, v)
	}
	hello = hello.WithAnswers(answers)
	connect := func(ctx context.Context) (net.Conn, error) {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		c, r, err := localcore.Connect(cctx, paths, hello, argv, env)
		if err == nil {
			logger.Info("serving MCP on stdio through the local core", "store", u, "socket", paths.Socket, "core_pid", r.PID, "pid", os.Getpid(), "answers_directly", localcore.AnswersDirectly(c), "reads_input", localcore.ReadsDirectly(c))
		}
		return c, err
	}
	c, err := connect(ctx)
	var refused *localcore.RefusedError
	switch {
	case errors.As(err, &refused) && refused.Direct:
		return fmt.Errorf("%w: %s", errServeDirectly, refused.Reason)
	case errors.As(err, &refused):
		return errors.New(refused.Reason)
	case err != nil:
		return fmt.Errorf("%w: %v", errServeDirectly, err)
	}
	relayOnly()
	out := localcore.LineWriter(proto)
	f := &localcore.Forwarder{
		In:       server.LimitLines(stdin, out, limit, logger),
		Out:      out,
		Connect:  connect,
		Tools:    retry,
		Instance: instance,
		Logger:   logger,
		Answers:  answers,
	}
	return f.Run(ctx, c)
}

// relayOnly sets up a process that from now on only relays bytes
// between its stdio and a core: one scheduler thread. Each message wakes
// the relay once; with more threads the Go scheduler hands the work from
// thread to thread, which cost a forwarder about twice the CPU per call
// (0.40 against 0.21 ms at 32 agents, internal/agentbench) on the cores
// the agents' calls share.
func relayOnly() { runtime.GOMAXPROCS(1) }

// serverGC sets up a process that serves many agents (coditect serve,
// coditect core) to collect garbage once its heap has grown by 400 % since
// the last collection instead of Go's 100 %, unless $GOGC says otherwise.
// Its live heap is small and every call allocates, so at 100 % the
// collector ran often enough to cost about a fifth of the daemon's CPU per
// call (internal/agentbench, HTTP, 16 agents); the heap stays a few times
// its live size.
func serverGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}

// coreClient returns what a stdio process of the protocol kind with the
// settings opts needs to reach its store's core: the core's files, its
// hello, and how to start a core. The error wraps errServeDirectly when
// the store has no core.
func coreClient(cmd *cobra.Command, u, kind string, opts any) (localcore.Paths, localcore.Hello, []string, []string, error) {
	var hello localcore.Hello
	paths, err := corePaths(u)
	if err != nil {
		return paths, hello, nil, nil, fmt.Errorf("%w: %v", errServeDirectly, err)
	}
	fl := cmd.Flags()
	ten, _ := fl.GetString("tenant")
	usr, _ := fl.GetString("user")
	token := strings.TrimSpace(os.Getenv(server.TokenEnv))
	if token == "" && usr == "" {
		usr = server.OSUser()
	}
	wd, _ := os.Getwd()
	raw, err := jsonRaw(opts)
	if err != nil {
		return paths, hello, nil, nil, err
	}
	hello = localcore.Hello{Kind: kind, Store: u, Token: token, Tenant: ten, User: usr, Workspace: wd, PID: os.Getpid(), Options: raw}
	exe, err := os.Executable()
	if err != nil {
		return paths, hello, nil, nil, fmt.Errorf("%w: %v", errServeDirectly, err)
	}
	// The core runs in /, so it is given the store's absolute path.
	argv := []string{exe, "core", "--store", absStoreURL(u, paths)}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, server.TokenEnv+"=") })
	return paths, hello, argv, env, nil
}

func jsonRaw(v any) (json.RawMessage, error) { return json.Marshal(v) }

// newInstanceID names one coditect mcp process among all that ever
// forward to a core (its idempotency keys carry it).
func newInstanceID() string { return rand.Text()[:16] }
