package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/bridge"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/watch"
)

// SweeperUser is the local user the daemon's sweepers act as in each
// tenant (created on the first sweep, like any local identity).
const SweeperUser = "coditect-sweeper"

// WebUI is what the daemon mounts at "/" in roles all and dashboard: the
// dashboard, the REST API and the WebSocket feed (webview.Handler, which
// cmd/coditect passes in so that this package does not import webview).
// Shutdown ends its long-lived connections, which http.Server.Shutdown
// does not wait for.
type WebUI interface {
	http.Handler
	Shutdown(ctx context.Context) error
}

// DaemonOptions are what the daemon needs besides its Config.
type DaemonOptions struct {
	// Dir is the directory of the open store; the caller closes the store
	// after Run returns.
	Dir *tenant.Directory
	// StoreURL names the store (for the watcher's local identity and the
	// logs).
	StoreURL string
	// Web is mounted at "/" when the role serves HTTP; nil serves no
	// dashboard.
	Web WebUI
	// Version is reported by MCP and the logs.
	Version string
	// Logger receives the daemon's logs (never a token).
	Logger *slog.Logger
	// Out receives, once the daemon serves (so it doubles as the ready
	// signal for scripts and tests), the login URL on a first start, the
	// hint on later ones, and in role core the health URL: the person's
	// terminal (stdout).
	Out io.Writer
	// IgnorePaths are files the watcher must never report (the store's);
	// no project root --watch registers may hold them, nor the audit
	// spool.
	IgnorePaths []string
}

// Daemon is `coditect serve`: one HTTP server (health, metrics, and in the
// HTTP roles the dashboard, REST API, feed and MCP), the workspace watcher
// and the sweepers, with a graceful shutdown.
type Daemon struct {
	cfg     Config
	opts    DaemonOptions
	log     *slog.Logger
	metrics *metrics
	mcp     *Server

	ln      net.Listener
	http    *http.Server
	watcher *watch.Watcher
	ready   atomic.Bool

	mu     sync.Mutex
	scopes map[string]*tenant.Scope // sweeper scopes by tenant
}

// NewDaemon checks cfg and builds the daemon; nothing runs until Listen
// and Serve (or Run).
func NewDaemon(cfg Config, opts DaemonOptions) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Dir == nil {
		return nil, errors.New("daemon: no directory")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	d := &Daemon{cfg: cfg, opts: opts, log: opts.Logger, scopes: map[string]*tenant.Scope{}}
	d.metrics = newMetrics(d)
	if cfg.Role.HTTP() {
		srv, err := New(opts.Dir, Options{Version: opts.Version, Toolsets: cfg.Toolsets, Logger: opts.Logger.With("part", "mcp"),
			SpoolDir: storage.SpoolDir(opts.StoreURL)})
		if err != nil {
			return nil, err
		}
		d.mcp = srv
	}
	return d, nil
}

// Handler returns the daemon's HTTP handler (for tests that serve it
// themselves).
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", d.readyz)
	mux.Handle("GET /metrics", d.metrics.handler())
	if d.cfg.Role.HTTP() {
		origins := append([]string{"vscode-webview://*"}, d.cfg.AllowedOrigins...)
		mux.Handle(MCPPath, d.mcp.HTTPHandler(HTTPOptions{AllowedOrigins: origins}))
		if d.opts.Web != nil {
			mux.Handle("/", d.opts.Web)
		}
	}
	return d.metrics.instrument(mux)
}

// readyz is 200 once the store answers and, in the background roles, the
// watcher has its first listing; 503 while starting or shutting down.
func (d *Daemon) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	fail := func(reason string) {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "{\"status\":\"not ready\",\"reason\":%q}\n", reason)
	}
	if !d.ready.Load() {
		fail("starting or shutting down")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := d.opts.Dir.Store().View(ctx, func(tx kv.ReadTx) error {
		_, err := tx.Get([]byte("coditect-readyz"))
		return err
	}); err != nil {
		fail("store: " + err.Error())
		return
	}
	if d.watcher != nil {
		select {
		case <-d.watcher.Ready():
		default:
			fail("watcher: first listing of the workspaces in progress")
			return
		}
	}
	fmt.Fprintln(w, `{"status":"ready"}`)
}

// Listen binds the HTTP address.
func (d *Daemon) Listen() (net.Addr, error) {
	ln, err := net.Listen("tcp", d.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", d.cfg.Addr, err)
	}
	d.ln = ln
	return ln.Addr(), nil
}

// URL is the address people open: PublicURL, else http://ADDR.
func (d *Daemon) URL() string {
	if d.cfg.PublicURL != "" {
		return strings.TrimSuffix(d.cfg.PublicURL, "/")
	}
	host, port, _ := net.SplitHostPort(d.ln.Addr().String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Run is Listen and Serve.
func (d *Daemon) Run(ctx context.Context) error {
	if _, err := d.Listen(); err != nil {
		return err
	}
	return d.Serve(ctx)
}

// Serve runs the daemon until ctx is done, then shuts down gracefully:
// /readyz turns 503, the HTTP server stops accepting and drains its
// requests, feeds are closed with "going away", the watcher stores its
// pending batch, the sweepers stop and MCP commits its audit records,
// all within ShutdownTimeout.
func (d *Daemon) Serve(ctx context.Context) error {
	if d.ln == nil {
		return errors.New("daemon: Serve before Listen")
	}
	d.log.Info("coditect serve starting", "role", d.cfg.Role, "addr", d.ln.Addr().String(), "store", d.opts.StoreURL, "version", d.opts.Version)
	welcome := fmt.Sprintf("\nCoditect core is running (watcher and sweepers); health and metrics at %s/healthz and %s/metrics\n\n", d.URL(), d.URL())
	if d.cfg.Role.HTTP() {
		var err error
		if welcome, err = d.welcome(ctx); err != nil {
			d.ln.Close()
			return err
		}
	}

	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	if d.cfg.Role.Background() {
		if len(d.cfg.Watch) > 0 {
			w, err := d.newWatcher(ctx)
			if err != nil {
				d.ln.Close()
				return err
			}
			d.watcher = w
			wg.Go(func() {
				if err := w.Run(bg); err != nil && bg.Err() == nil {
					errc <- fmt.Errorf("watcher: %w", err)
				}
			})
		}
		wg.Go(func() { d.sweepLoop(bg) })
	}

	// No ReadTimeout or WriteTimeout: they would cut the feed and MCP's
	// streamed responses. Bodies are bounded by bodyDeadline instead.
	d.http = &http.Server{
		Handler:           bodyDeadline(d.Handler(), BodyTimeout),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := d.http.Serve(d.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	}()
	d.ready.Store(true)
	d.log.Info("ready", "url", d.URL())
	if d.cfg.Role.HTTP() {
		d.writeState()
		defer d.removeState()
	}
	// Printed once serving: a script that waits for this line can connect.
	fmt.Fprint(d.opts.Out, welcome)

	var runErr error
	select {
	case <-ctx.Done():
		d.log.Info("shutting down", "cause", context.Cause(ctx))
	case runErr = <-errc:
		d.log.Error("stopping after a failure", "err", runErr)
	}
	d.ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), time.Duration(d.cfg.ShutdownTimeout))
	defer cancel()
	var sw sync.WaitGroup
	if d.opts.Web != nil && d.cfg.Role.HTTP() {
		sw.Go(func() {
			if err := d.opts.Web.Shutdown(sctx); err != nil {
				d.log.Warn("closing feeds", "err", err)
			}
		})
	}
	if err := d.http.Shutdown(sctx); err != nil {
		d.log.Warn("draining HTTP requests", "err", err)
		d.http.Close()
	}
	sw.Wait()
	// The watcher stores what is pending when its context ends.
	stopBG()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
		d.log.Warn("the watcher did not finish storing within the shutdown timeout")
	}
	if d.mcp != nil {
		if err := d.mcp.Close(sctx); err != nil {
			d.log.Warn("committing MCP audit records", "err", err)
		}
	}
	d.log.Info("stopped")
	return runErr
}

// welcome makes sure someone can log in: on a store with no tenant yet it
// creates the default tenant, its first admin and a token, and returns the
// message with a login URL carrying the token (printed once, on Out, never
// in the logs); later it returns how to get a token. The token stays valid
// across restarts until someone revokes it (`coditect token revoke`).
func (d *Daemon) welcome(ctx context.Context) (string, error) {
	ts, err := d.opts.Dir.ListTenants(ctx)
	if err != nil {
		return "", fmt.Errorf("reading tenants: %w", err)
	}
	url := d.URL() + "/"
	if len(ts) == 0 {
		secret, err := Bootstrap(ctx, d.opts.Dir, d.cfg.Tenant, d.cfg.User)
		if err == nil {
			return fmt.Sprintf("\nCoditect is running. Open the dashboard (the link logs you in; keep it private):\n\n    %s#token=%s\n\n", url, secret), nil
		}
		if !errors.Is(err, tenant.ErrExists) {
			return "", err
		}
		// Another process created the first tenant at the same moment.
	}
	return fmt.Sprintf("\nCoditect is running at %s\nLog in with a token; create one with:\n\n    %s\n\n", url, d.tokenCommand()), nil
}

// tokenCommand is the command that creates a dashboard token for this
// daemon's store and tenant, as it runs from any directory and shell: the
// absolute path of this executable (a checkout's bin/coditect is not on
// the PATH), and the store and tenant named, not left to the environment.
func (d *Daemon) tokenCommand() string {
	exe, err := os.Executable()
	if err != nil {
		exe = "coditect"
	}
	args := []string{exe, "token", "create", "--role", "admin", "--label", "dashboard", "--store", d.opts.StoreURL}
	if d.cfg.Tenant != "" && d.cfg.Tenant != DefaultTenant {
		args = append(args, "--tenant", d.cfg.Tenant)
	}
	if d.cfg.User != "" {
		args = append(args, "--as", d.cfg.User)
	}
	for i, a := range args {
		args[i] = shellQuote(a)
	}
	return strings.Join(args, " ")
}

// shellQuote quotes s for a POSIX shell when it holds anything but
// letters, digits and -_./:=@%+,.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@%+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Bootstrap creates the first tenant (tenantID, default "default"), its
// admin user (default the OS user) and an admin token, and returns the
// token's secret. It fails with tenant.ErrExists when the tenant exists.
func Bootstrap(ctx context.Context, dir *tenant.Directory, tenantID, user string) (string, error) {
	if tenantID == "" {
		tenantID = DefaultTenant
	}
	if user == "" {
		user = OSUser()
	}
	if _, err := dir.CreateTenant(ctx, tenantID, ""); err != nil {
		return "", err
	}
	if _, err := dir.CreateUser(ctx, tenantID, user, ""); err != nil && !errors.Is(err, tenant.ErrExists) {
		return "", err
	}
	secret, _, err := dir.IssueToken(ctx, tenantID, user, tenant.RoleAdmin, tenant.TokenOptions{Label: "dashboard login (first start)"})
	return secret, err
}

func (d *Daemon) newWatcher(ctx context.Context) (*watch.Watcher, error) {
	sc, err := ResolveStdio(ctx, d.opts.Dir, StdioIdentity{Token: d.cfg.Token, Tenant: d.cfg.Tenant, User: d.cfg.User, StoreURL: d.opts.StoreURL})
	if err != nil {
		return nil, fmt.Errorf("watcher identity: %w", err)
	}
	roots, found, err := watch.Register(ctx, sc, d.cfg.Watch, project.RootOptions{Protected: storage.OwnFiles(d.opts.StoreURL)})
	if err != nil {
		return nil, fmt.Errorf("--watch: %w", err)
	}
	for _, f := range found {
		d.log.Info("watching a project", "dir", f.Dir, "project", f.Project, "id", f.Root.Project, "root", f.Root.Dir)
	}
	w, err := watch.New(sc, watch.Config{
		Roots:       roots,
		IgnorePaths: d.opts.IgnorePaths,
		Logger:      d.log.With("part", "watch"),
		OnStored:    func(cs []watch.Change) { d.metrics.watchEvents.Add(float64(len(cs))) },
	})
	if err != nil {
		return nil, err
	}
	d.log.Info("watching", "roots", d.cfg.Watch, "tenant", sc.Tenant(), "user", sc.Principal().User)
	return w, nil
}

// sweepLoop runs the sweepers at once and then every SweepEvery.
func (d *Daemon) sweepLoop(ctx context.Context) {
	t := time.NewTicker(time.Duration(d.cfg.SweepEvery))
	defer t.Stop()
	for {
		d.Sweep(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep runs every sweeper once over every enabled tenant: agents gone
// silent are retired, idle sessions abandoned, expired leases removed,
// stale file evidence dropped, the IDE bridge's records of killed editors
// and askers removed, and each tenant's retention enforced. A
// failure in one tenant is logged and does not stop the others.
func (d *Daemon) Sweep(ctx context.Context) {
	start := time.Now()
	defer func() { d.metrics.sweepSeconds.Observe(time.Since(start).Seconds()) }()
	ts, err := d.opts.Dir.ListTenants(ctx)
	if err != nil {
		d.sweepFailed(ctx, "tenants", "", err)
		return
	}
	for _, t := range ts {
		if t.Disabled || ctx.Err() != nil {
			continue
		}
		sc, err := d.sweeperScope(ctx, t.ID)
		if err != nil {
			d.sweepFailed(ctx, "scope", t.ID, err)
			continue
		}
		now := time.Now()
		if as, err := agent.Sweep(ctx, sc, now); err != nil {
			d.sweepFailed(ctx, "agents", t.ID, err)
		} else {
			d.swept("agents", t.ID, len(as))
		}
		if ss, err := session.Sweep(ctx, sc, time.Duration(d.cfg.SessionIdle)); err != nil {
			d.sweepFailed(ctx, "sessions", t.ID, err)
		} else {
			d.swept("sessions", t.ID, len(ss))
		}
		if ls, err := lease.Sweep(ctx, sc, now); err != nil {
			d.sweepFailed(ctx, "leases", t.ID, err)
		} else {
			d.swept("leases", t.ID, len(ls))
		}
		if n, err := attrib.Sweep(ctx, sc, now); err != nil {
			d.sweepFailed(ctx, "evidence", t.ID, err)
		} else {
			d.swept("evidence", t.ID, n)
		}
		if n, err := attrib.SweepEditing(ctx, sc, now); err != nil {
			d.sweepFailed(ctx, "editing", t.ID, err)
		} else {
			d.swept("editing", t.ID, n)
		}
		if n, err := bridge.Sweep(ctx, sc, now); err != nil {
			d.sweepFailed(ctx, "ide", t.ID, err)
		} else {
			d.swept("ide", t.ID, n)
		}
	}
	removed, err := d.opts.Dir.SweepRetention(ctx)
	if err != nil {
		d.sweepFailed(ctx, "retention", "", err)
	}
	for id, n := range removed {
		d.swept("retention", id, n)
	}
}

func (d *Daemon) swept(what, tenantID string, n int) {
	if n == 0 {
		return
	}
	d.metrics.swept.WithLabelValues(what).Add(float64(n))
	d.log.Info("swept", "what", what, "tenant", tenantID, "count", n)
}

func (d *Daemon) sweepFailed(ctx context.Context, what, tenantID string, err error) {
	if ctx.Err() != nil {
		return
	}
	d.metrics.sweepErrors.WithLabelValues(what).Inc()
	d.log.Error("sweep failed", "what", what, "tenant", tenantID, "err", err)
}

// sweeperScope returns the sweepers' scope in a tenant, created once.
func (d *Daemon) sweeperScope(ctx context.Context, tenantID string) (*tenant.Scope, error) {
	d.mu.Lock()
	sc := d.scopes[tenantID]
	d.mu.Unlock()
	if sc != nil {
		return sc, nil
	}
	sc, err := d.opts.Dir.Local(ctx, tenantID, SweeperUser)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.scopes[tenantID] = sc
	d.mu.Unlock()
	return sc, nil
}

// MCP returns the MCP server of the HTTP roles, nil in role core.
func (d *Daemon) MCP() *Server { return d.mcp }

// daemonState is what the state file beside the embedded store says.
type daemonState struct {
	URL   string `json:"url"`
	Store string `json:"store"`
	PID   int    `json:"pid"`
}

// writeState tells other processes on this machine using the same
// embedded store (the IDE's "show the dashboard") where the dashboard is.
// It is a hint: readers check /readyz before they use it.
func (d *Daemon) writeState() {
	path := storage.DaemonStatePath(d.opts.StoreURL)
	if path == "" {
		return
	}
	b, _ := json.Marshal(daemonState{URL: d.URL(), Store: d.opts.StoreURL, PID: os.Getpid()})
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		err = os.Rename(tmp, path)
		if err != nil {
			d.log.Warn("daemon state file", "path", path, "err", err)
		}
	}
}

// removeState removes the state file if it is still this process's.
func (d *Daemon) removeState() {
	path := storage.DaemonStatePath(d.opts.StoreURL)
	if path == "" {
		return
	}
	var st daemonState
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &st) == nil && st.PID == os.Getpid() {
		os.Remove(path)
	}
}
