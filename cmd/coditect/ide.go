package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/coditect/coditect/ide"
	"github.com/coditect/coditect/server"
	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/webview"
)

func newIDECommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ide",
		Short: "Serve the IDE protocol over stdio for the VS Code extension or any LSP client",
		Long: "Serve Coditect's LSP-style JSON-RPC dialect over stdin/stdout, one process per editor window.\n" +
			"Only protocol frames are written to stdout; logs go to stderr or --log-file.\n\n" +
			"The server tracks the open buffers: while the human has unsaved edits of a file, agents' fs_write\n" +
			"and fs_edit refuse to overwrite it; saves are recorded as the human's. Hover and code lens say who\n" +
			"last changed a file; coditect/event notifications carry the workspace's live events.\n\n" +
			"Files are tracked by project: a document in a project of the tenant is keyed by the project and its\n" +
			"path relative to the project root; as the local operator of an embedded store, a workspace folder in\n" +
			"no project becomes a project's root. Documents outside every project are not tracked (nothing is\n" +
			"recorded about them). A save in the editor's session (coditect.session.start) is filed under it.\n\n" +
			"Identity: $" + server.TokenEnv + " when set; else --tenant/--user on the embedded store (default tenant\n" +
			"\"" + server.DefaultTenant + "\" and the OS user). The identity is re-checked every second: once its token\n" +
			"is revoked or expires, or its user or tenant is disabled, requests fail and the editor is told.\n" +
			"The dashboard link of a local identity carries a login token of its own that lives as long as this\n" +
			"process: renewed while it runs, revoked when it exits, expiring within a minute if it is killed.\n\n" +
			"With --core auto (the default on the embedded store) the process forwards to the store's local core,\n" +
			"the one process serving every coditect mcp and coditect ide on this machine (see docs/DAEMON.md).\n\n" +
			"Exit status, as LSP asks: 0 after shutdown then exit (or when the editor goes away), 1 on exit\n" +
			"without shutdown, or when the local core was lost mid-session.",
		Args: cobra.NoArgs,
		RunE: runIDE,
	}
	f := cmd.Flags()
	f.String("tenant", "", "tenant of the local identity (default \""+server.DefaultTenant+"\"; not allowed with $"+server.TokenEnv+")")
	f.String("user", "", "user of the local identity (default: the OS user; not allowed with $"+server.TokenEnv+")")
	f.String("log-file", "", "append logs to this file instead of stderr")
	f.Int64("max-message", ide.DefaultMaxMessage, "largest message, in bytes, the server reads")
	f.Bool("stdio", true, "serve over stdin/stdout (the only transport; accepted because LSP clients pass it)")
	f.Duration("dashboard-token-ttl", dashboardTokenTTL, "how long the dashboard login token outlives this process")
	_ = f.MarkHidden("dashboard-token-ttl") // for tests: the default suits people
	f.String("core", "auto", "auto: forward to the store's local core, starting one when none runs (embedded store only; $"+coreEnv+"=off turns it off); off: serve directly")
	return cmd
}

func runIDE(cmd *cobra.Command, _ []string) error {
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
	maxMessage, _ := fl.GetInt64("max-message")
	if maxMessage <= 0 {
		return fmt.Errorf("--max-message must be positive, not %d", maxMessage)
	}
	tokenTTL, _ := fl.GetDuration("dashboard-token-ttl")
	if tokenTTL <= 0 {
		return fmt.Errorf("--dashboard-token-ttl must be positive, not %v", tokenTTL)
	}

	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
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
		code, err := forwardIDE(ctx, cmd, u, coreIDE{MaxMessage: maxMessage, TokenTTL: tokenTTL}, proto, logger)
		switch {
		case err == nil && code == ide.ExitOK:
			return nil
		case err == nil:
			return errors.New("exit without shutdown")
		case !errors.Is(err, errServeDirectly):
			return err
		}
		logger.Warn("no local core; serving directly", "reason", err)
	}
	env, err := openStdio(ctx, cmd, "ide")
	if err != nil {
		return err
	}
	defer env.Close()
	dash := newIDEDashboard(env, logger, tokenTTL)
	defer dash.close()
	logger.Info("coditect ide starting", "store", env.url, "pid", os.Getpid())
	code, err := ide.Serve(ctx, env.scope, server.PollableStdin(), proto, ide.Options{
		Version:    strings.Fields(versionString())[1],
		Logger:     logger,
		Dashboard:  dash,
		MaxMessage: maxMessage,
		Protected:  storage.OwnFiles(env.url),
	})
	if err != nil {
		return err
	}
	if code != ide.ExitOK {
		return errors.New("exit without shutdown")
	}
	return nil
}

// ideDashboard is the dashboard the IDE's "show the dashboard" command
// opens: the daemon's when one runs (see daemonURL), else one this process
// serves on a random loopback port, its page behind a secret path.
type ideDashboard struct {
	dir      *tenant.Directory
	storeURL string // the daemon using the same embedded store is found beside it
	own      string // the IDE's own token, when it authenticated with one
	ttl      time.Duration
	log      *slog.Logger
	version  string

	ctx    context.Context // ends when the IDE does: stops the renewal
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	login *tenant.Token // the token issued for the dashboard, if any
	token string        // its secret
	srv   *http.Server
	h     *webview.Handler
	base  string // http://127.0.0.1:PORT/SECRET/
}

// dashboardTokenTTL is how long the login token a local identity's
// dashboard link carries outlives the IDE process: the process renews it
// every third of that while it runs and revokes it when it exits, so a
// killed IDE's token dies within a minute.
const dashboardTokenTTL = time.Minute

func newIDEDashboard(env *stdioEnv, log *slog.Logger, ttl time.Duration) *ideDashboard {
	ctx, cancel := context.WithCancel(context.Background())
	return &ideDashboard{dir: env.dir, storeURL: env.url, own: env.token, ttl: ttl, log: log,
		version: strings.Fields(versionString())[1], ctx: ctx, cancel: cancel}
}

// URL implements ide.Dashboard.
func (d *ideDashboard) URL(ctx context.Context, sc *tenant.Scope) (string, error) {
	token, err := d.loginToken(ctx, sc)
	if err != nil {
		return "", err
	}
	if u := daemonURL(ctx, d.storeURL); u != "" {
		return u + "/#token=" + token, nil
	}
	base, err := d.serve()
	if err != nil {
		return "", err
	}
	return base + "#token=" + token, nil
}

// loginToken is the token the dashboard link logs in with: the IDE's own
// when it has one, else a token issued for the local identity (trusted:
// the OS user owns the embedded store) that lives as long as this process
// (see renew) and is issued again if it died.
func (d *ideDashboard) loginToken(ctx context.Context, sc *tenant.Scope) (string, error) {
	if d.own != "" {
		return d.own, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.login != nil {
		return d.token, nil
	}
	p := sc.Principal()
	if !p.Local {
		return "", errors.New("no token to log in to the dashboard with")
	}
	secret, tok, err := d.dir.IssueToken(ctx, p.Tenant, p.User, p.Role, tenant.TokenOptions{Label: "coditect ide dashboard", TTL: d.ttl})
	if err != nil {
		return "", fmt.Errorf("issuing a dashboard login token: %w", err)
	}
	d.login, d.token = &tok, secret
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.renew(tok)
	}()
	return secret, nil
}

// renew keeps tok alive, extending its expiry to ttl ahead every third of
// ttl, until the IDE ends or the token dies (revoked, its user or tenant
// disabled, or expired after the store was unreachable for a whole ttl).
func (d *ideDashboard) renew(tok tenant.Token) {
	t := time.NewTicker(max(d.ttl/3, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		}
		_, err := d.dir.ExtendToken(d.ctx, tok.Tenant, tok.ID, d.ttl)
		switch {
		case err == nil:
		case tenant.Refused(err):
			d.log.Warn("the dashboard login token died; the next dashboard link gets a new one", "token", tok.ID, "error", err)
			d.mu.Lock()
			if d.login != nil && d.login.ID == tok.ID {
				d.login, d.token = nil, ""
			}
			d.mu.Unlock()
			return
		case d.ctx.Err() == nil:
			d.log.Warn("renewing the dashboard login token; retrying", "token", tok.ID, "error", err)
		}
	}
}

// serve starts the local dashboard once and returns its page's URL.
func (d *ideDashboard) serve() (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.base != "" {
		return d.base, nil
	}
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	secret := base64.RawURLEncoding.EncodeToString(b[:])
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("dashboard: %w", err)
	}
	d.h = webview.New(d.dir, webview.Options{Logger: d.log, Version: d.version})
	d.srv = &http.Server{Handler: dashboardMux(secret, d.h), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := d.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Warn("dashboard server", "error", err)
		}
	}()
	d.base = "http://" + ln.Addr().String() + "/" + secret + "/"
	d.log.Info("dashboard serving", "addr", ln.Addr().String())
	return d.base, nil
}

// dashboardMux routes the local dashboard: the page, its assets and the
// token-guarded API and feed only under /SECRET/ (the page addresses them
// relative to itself, so a proxy prefix in front of the secret works too),
// and nothing else.
func dashboardMux(secret string, h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/"+secret+"/", http.StripPrefix("/"+secret, h))
	mux.HandleFunc("/", http.NotFound)
	return mux
}

// close stops the renewal, revokes the dashboard login token the IDE
// issued (the dashboard dies with the IDE) and stops the local dashboard.
func (d *ideDashboard) close() {
	d.cancel()
	d.wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if d.login != nil {
		if err := d.dir.RevokeToken(ctx, d.login.Tenant, d.login.ID); err != nil {
			d.log.Warn("revoking the dashboard login token; it expires on its own", "token", d.login.ID, "expires_within", d.ttl, "error", err)
		}
		d.login, d.token = nil, ""
	}
	if d.srv == nil {
		return
	}
	_ = d.h.Shutdown(ctx)
	_ = d.srv.Shutdown(ctx)
}

// daemonURL returns the running daemon's URL, "" when none answers.
func daemonURL(ctx context.Context, storeURL string) string {
	path := storage.DaemonStatePath(storeURL)
	if path == "" {
		return ""
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var st struct {
		URL string `json:"url"`
	}
	if json.Unmarshal(b, &st) != nil || !strings.HasPrefix(st.URL, "http") {
		return ""
	}
	// A daemon that is gone leaves a stale file: ask the daemon itself.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	u := strings.TrimSuffix(st.URL, "/")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"/readyz", nil)
	if err != nil {
		return ""
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return u
}
