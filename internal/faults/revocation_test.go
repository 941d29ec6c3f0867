package faults_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/internal/testbin"
	"github.com/coditect/coditect/server/servertest"
	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/webview"
)

// The tests here revoke a token, let one expire, or disable its user or
// tenant while real processes hold connections open with it, and check
// that every surface refuses it: stdio MCP, the IDE, and the daemon's
// REST API, /mcp and feed (closed with 4401). The bar is one second from
// the change (docs/DAEMON.md); the tests assert the refusal within
// refusalDeadline, a margin for a loaded machine, and log the latency.

const refusalDeadline = 10 * time.Second

// accessChange is one way a token stops being valid. apply makes the
// change and returns when it took effect (for an expiry: the expiry).
type accessChange struct {
	name  string
	ttl   time.Duration // the token's TTL; zero: it never expires
	apply func(ctx context.Context, d *tenant.Directory, tok tenant.Token) (time.Time, error)
}

var accessChanges = []accessChange{
	{name: "token revoked", apply: func(ctx context.Context, d *tenant.Directory, tok tenant.Token) (time.Time, error) {
		err := d.RevokeToken(ctx, tok.Tenant, tok.ID)
		return time.Now(), err
	}},
	{name: "token expired", ttl: 6 * time.Second, apply: func(_ context.Context, _ *tenant.Directory, tok tenant.Token) (time.Time, error) {
		return tok.Expires, nil
	}},
	{name: "user disabled", apply: func(ctx context.Context, d *tenant.Directory, tok tenant.Token) (time.Time, error) {
		err := d.SetUserDisabled(ctx, tok.Tenant, tok.User, true)
		return time.Now(), err
	}},
	{name: "tenant disabled", apply: func(ctx context.Context, d *tenant.Directory, tok tenant.Token) (time.Time, error) {
		err := d.SetTenantDisabled(ctx, tok.Tenant, true)
		return time.Now(), err
	}},
}

// openDirectory opens the store as a separate client: the operator acting
// from another process.
func openDirectory(t *testing.T, storeURL string) *tenant.Directory {
	t.Helper()
	st, err := storage.Open(context.Background(), storeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return tenant.NewDirectory(st, "faults-test")
}

// memberToken creates tenant ten with user ada and issues her a member
// token.
func memberToken(t *testing.T, d *tenant.Directory, ten string, ttl time.Duration) (string, tenant.Token) {
	t.Helper()
	ctx := context.Background()
	if _, err := d.CreateTenant(ctx, ten, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateUser(ctx, ten, "ada", ""); err != nil {
		t.Fatal(err)
	}
	secret, tok, err := d.IssueToken(ctx, ten, "ada", tenant.RoleMember, tenant.TokenOptions{TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return secret, tok
}

// untilRefused calls try until it reports a refusal (or fails the test
// after refusalDeadline) and returns how long after since the refusal
// came.
func untilRefused(t *testing.T, what string, since time.Time, try func() (refused bool, err error)) time.Duration {
	t.Helper()
	if d := time.Until(since); d > 0 {
		<-time.After(d) // an expiry: nothing changes before it
	}
	deadline := since.Add(refusalDeadline)
	for {
		refused, err := try()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if refused {
			return time.Since(since)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still served %v after the change", what, refusalDeadline)
		}
	}
}

// TestStdioRefusedAfterAccessChange: a `coditect mcp` and a `coditect ide`
// started with a token refuse their next call once the token is revoked or
// expires, or its user or tenant is disabled; the IDE refuses
// coditect.session.end too (the session stays open) and says why in a
// window/showMessage.
func TestStdioRefusedAfterAccessChange(t *testing.T) {
	for _, ch := range accessChanges {
		t.Run(ch.name, func(t *testing.T) {
			storeURL := sqliteURL(filepath.Join(t.TempDir(), "coditect.db"))
			d := openDirectory(t, storeURL)
			secret, tok := memberToken(t, d, "acme", ch.ttl)
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			admin, err := d.Local(ctx, "acme", "admin")
			if err != nil {
				t.Fatal(err)
			}
			ws, err := filepath.EvalSymlinks(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := project.Register(ctx, admin, "", ws, project.RootOptions{}); err != nil {
				t.Fatal(err)
			}

			cmd := exec.Command(testbin.Coditect(t), "mcp", "--store", storeURL)
			cmd.Env = append(os.Environ(), "CODITECT_TOKEN="+secret, "XDG_DATA_HOME="+t.TempDir())
			var stderr syncBuffer
			cmd.Stderr = &stderr
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "lmstudio", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
			if err != nil {
				t.Fatalf("connect: %v\n%s", err, &stderr)
			}
			defer cs.Close()
			if r, err := callTool(ctx, cs, "whoami", map[string]any{}); err != nil || r.isError {
				t.Fatalf("whoami before the change: %v %+v\n%s", err, r, &stderr)
			}

			p := startIDEWithToken(t, storeURL, ws, secret)
			p.initializeIDE(ws)
			se, _ := p.request(2, "workspace/executeCommand", map[string]any{"command": "coditect.session.start"})["result"].(map[string]any)
			sessionID, _ := se["id"].(string)
			if sessionID == "" {
				t.Fatalf("session.start before the change: %v\n%s", se, p.stderr)
			}
			if st := p.request(3, "workspace/executeCommand", map[string]any{"command": "coditect.status"}); st["result"] == nil {
				t.Fatalf("status before the change: %v\n%s", st, p.stderr)
			}

			at, err := ch.apply(ctx, d, tok)
			if err != nil {
				t.Fatal(err)
			}
			var mcpText string
			mcpLatency := untilRefused(t, "coditect mcp", at, func() (bool, error) {
				r, err := callTool(ctx, cs, "whoami", map[string]any{})
				if err != nil {
					return false, fmt.Errorf("whoami: %w\n%s", err, &stderr)
				}
				mcpText = r.text
				return r.isError, nil
			})
			if !strings.Contains(mcpText, "no longer valid") {
				t.Fatalf("coditect mcp refused with %q, want it to say the credentials are no longer valid", mcpText)
			}
			id := 10
			var ideErr map[string]any
			ideLatency := untilRefused(t, "coditect ide", at, func() (bool, error) {
				id++
				r := p.request(id, "workspace/executeCommand", map[string]any{"command": "coditect.status"})
				ideErr, _ = r["error"].(map[string]any)
				return ideErr != nil, nil
			})
			if msg, _ := ideErr["message"].(string); ideErr["code"] != float64(-32803) || !strings.HasPrefix(msg, "access refused: ") {
				t.Fatalf("coditect ide refused with %v, want RequestFailed saying access refused", ideErr)
			}
			end := p.request(100, "workspace/executeCommand", map[string]any{"command": "coditect.session.end"})
			if e, _ := end["error"].(map[string]any); e == nil || !strings.HasPrefix(fmt.Sprint(e["message"]), "access refused: ") {
				t.Fatalf("session.end after the change: %v", end)
			}
			if got, err := session.Get(ctx, admin, sessionID); err != nil || got.State != session.Open {
				t.Fatalf("the session after a refused session.end: %+v, %v", got, err)
			}
			p.waitShowMessage(1, "refuses this editor's identity")
			t.Logf("%s: refused %v after the change by coditect mcp, %v by coditect ide (bar: 1s)", ch.name, mcpLatency.Round(time.Millisecond), ideLatency.Round(time.Millisecond))
		})
	}
}

// TestDaemonRefusedAfterAccessChange: on a running daemon, a dashboard's
// open feed is closed with 4401 and the REST API and /mcp answer 401 once
// the connection's token is revoked or expires, or its user or tenant is
// disabled.
func TestDaemonRefusedAfterAccessChange(t *testing.T) {
	storeURL := sqliteURL(filepath.Join(t.TempDir(), "coditect.db"))
	daemon := startDaemon(t, storeURL, "127.0.0.1:0")
	d := openDirectory(t, storeURL)
	for i, ch := range accessChanges {
		t.Run(ch.name, func(t *testing.T) {
			secret, tok := memberToken(t, d, fmt.Sprintf("acme%d", i), ch.ttl)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			feed, err := dialFeed(ctx, daemon, secret, "head", webview.FeedFilter{})
			if err != nil {
				t.Fatalf("feed: %v\n%s", err, daemon.stderr)
			}
			defer feed.c.CloseNow()
			cs, err := connectHTTP(ctx, daemon, secret, "remote-agent")
			if err != nil {
				t.Fatalf("/mcp: %v\n%s", err, daemon.stderr)
			}
			defer cs.Close()
			if r, err := callTool(ctx, cs, "whoami", map[string]any{}); err != nil || r.isError {
				t.Fatalf("/mcp whoami before the change: %v %+v", err, r)
			}
			rest := servertest.BearerClient(secret)
			if code := restStatus(ctx, t, rest, daemon.url+"/api/v1/whoami"); code != http.StatusOK {
				t.Fatalf("REST before the change: %d", code)
			}

			at, err := ch.apply(ctx, d, tok)
			if err != nil {
				t.Fatal(err)
			}
			feedClosed := make(chan error, 1)
			go func() {
				for {
					if _, err := feed.read(ctx); err != nil {
						feedClosed <- err
						return
					}
				}
			}()
			restLatency := untilRefused(t, "REST", at, func() (bool, error) {
				return restStatus(ctx, t, rest, daemon.url+"/api/v1/whoami") == http.StatusUnauthorized, nil
			})
			var mcpRefusal string
			mcpLatency := untilRefused(t, "/mcp", at, func() (bool, error) {
				r, err := callTool(ctx, cs, "whoami", map[string]any{})
				if err != nil {
					mcpRefusal = err.Error()
				}
				return err != nil || r.isError, nil
			})
			if !strings.Contains(mcpRefusal, "Unauthorized") {
				t.Errorf("/mcp refused with %q, want Unauthorized", mcpRefusal)
			}
			var feedLatency time.Duration
			select {
			case err := <-feedClosed:
				feedLatency = time.Since(at)
				if st := websocket.CloseStatus(err); st != webview.StatusUnauthorized {
					t.Fatalf("the feed ended with %v (status %d), want the close code %d", err, st, webview.StatusUnauthorized)
				}
			case <-time.After(time.Until(at.Add(refusalDeadline))):
				t.Fatalf("the feed is still open %v after the change", refusalDeadline)
			}
			t.Logf("%s: refused after %v by REST, %v by /mcp; the feed closed with 4401 after %v (bar: 1s; the feed's latency is an upper bound, read after the others)",
				ch.name, restLatency.Round(time.Millisecond), mcpLatency.Round(time.Millisecond), feedLatency.Round(time.Millisecond))
		})
	}
}

func restStatus(ctx context.Context, t *testing.T, c *http.Client, url string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestKilledIDEDashboardTokenExpires: the dashboard login token a local
// identity's `coditect ide` issues lives on renewals; once the IDE is
// SIGKILLed (nothing can revoke it) it stops authenticating when its
// short expiry passes.
func TestKilledIDEDashboardTokenExpires(t *testing.T) {
	storeURL := sqliteURL(filepath.Join(t.TempDir(), "coditect.db"))
	ws, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const ttl = 2 * time.Second
	p := runIDE(t, exec.Command(testbin.Coditect(t), "ide", "--store", storeURL, "--tenant", "t1", "--user", "ada",
		"--dashboard-token-ttl", ttl.String()), "")
	p.initializeIDE(ws)
	r := p.request(2, "workspace/executeCommand", map[string]any{"command": "coditect.dashboard"})
	res, _ := r["result"].(map[string]any)
	_, secret, ok := strings.Cut(fmt.Sprint(res["url"]), "#token=")
	if !ok {
		t.Fatalf("dashboard: %v\n%s", r, p.stderr)
	}
	ctx := context.Background()
	d := openDirectory(t, storeURL)
	sc, err := d.Authenticate(ctx, secret)
	if err != nil {
		t.Fatalf("the dashboard token does not log in: %v", err)
	}
	expires := func() time.Time {
		toks, err := d.ListTokens(ctx, "t1")
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range toks {
			if tk.ID == sc.Principal().TokenID {
				return tk.Expires
			}
		}
		t.Fatalf("the dashboard token %s is not listed", sc.Principal().TokenID)
		return time.Time{}
	}
	first := expires()
	// The running IDE renews it: its expiry moves on.
	for deadline := time.Now().Add(refusalDeadline); !expires().After(first); {
		if time.Now().After(deadline) {
			t.Fatalf("the IDE did not renew its dashboard token within %v\n%s", refusalDeadline, p.stderr)
		}
		time.Sleep(20 * time.Millisecond) // polling the store for the renewal
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
	killed := time.Now()
	last := expires()
	if last.Sub(killed) > ttl {
		t.Fatalf("after the kill the token expires at %v, more than %v ahead", last, ttl)
	}
	var refusal error
	untilRefused(t, "the killed IDE's dashboard token", killed.Add(ttl), func() (bool, error) {
		_, refusal = d.Authenticate(ctx, secret)
		if refusal == nil {
			time.Sleep(20 * time.Millisecond) // polling for the expiry
		}
		return refusal != nil, nil
	})
	if !errors.Is(refusal, tenant.ErrTokenExpired) {
		t.Fatalf("the killed IDE's dashboard token: %v, want expired", refusal)
	}
	t.Logf("the killed IDE's dashboard token stopped authenticating %v after the kill (TTL %v)", time.Since(killed).Round(time.Millisecond), ttl)
}

// ideConn is an ideSession that also keeps the window/showMessage
// notifications, which request skips.
type ideConn struct {
	*ideSession
	messages chan map[string]any
}

// startIDEWithToken starts `coditect ide` on storeURL authenticated by
// secret ($CODITECT_TOKEN) rather than a local identity.
func startIDEWithToken(t *testing.T, storeURL, ws, secret string) *ideConn {
	t.Helper()
	cmd := exec.Command(testbin.Coditect(t), "ide", "--store", storeURL)
	cmd.Env = append(os.Environ(), "CODITECT_TOKEN="+secret, "XDG_DATA_HOME="+t.TempDir())
	return runIDE(t, cmd, ws)
}

// runIDE starts cmd, a `coditect ide`, in ws (unless "") and reads its
// frames.
func runIDE(t *testing.T, cmd *exec.Cmd, ws string) *ideConn {
	t.Helper()
	if cmd.Env == nil {
		cmd.Env = append(os.Environ(), "CODITECT_TOKEN=", "XDG_DATA_HOME="+t.TempDir())
	}
	messages := make(chan map[string]any, 64)
	return &ideConn{spawnIDE(t, cmd, ws, messages), messages}
}

func (p *ideConn) initializeIDE(ws string) {
	p.t.Helper()
	if r := p.request(1, "initialize", map[string]any{"processId": nil, "rootUri": fileURI(ws), "capabilities": map[string]any{}}); r["result"] == nil {
		p.t.Fatalf("initialize: %v\n%s", r, p.stderr)
	}
	p.send(map[string]any{"method": "initialized", "params": map[string]any{}})
}

// waitShowMessage waits for a window/showMessage of type typ containing
// text.
func (p *ideConn) waitShowMessage(typ float64, text string) {
	p.t.Helper()
	deadline := time.After(refusalDeadline)
	for {
		select {
		case m := <-p.messages:
			params, _ := m["params"].(map[string]any)
			if m["method"] == "window/showMessage" && params["type"] == typ && strings.Contains(fmt.Sprint(params["message"]), text) {
				return
			}
		case <-deadline:
			p.t.Fatalf("no window/showMessage saying %q\n%s", text, p.stderr)
		}
	}
}
