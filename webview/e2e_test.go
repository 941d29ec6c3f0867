package webview_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coditect/coditect/internal/testbin"
	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/tenant"
)

// The browser test: webview/e2e/dashboard.mjs drives Debian's Chromium
// through playwright-core against the real `coditect serve`, while this
// test plays the rest of the world on request (one JSON line each way):
// agents in separate `coditect mcp` processes writing events, and the
// operator killing and restarting the daemon. See webview/e2e/setup.sh for
// the installation (`make test` runs it first).
//
// CODITECT_SCREENSHOTS=docs/img (relative to the repository root) keeps the
// screenshots of every view; otherwise they go to a temporary directory.

const chromiumPath = "/usr/bin/chromium"

// browserTools returns node, or skips the test when node, Chromium or
// playwright-core are missing, unless CI is set: there a missing install
// step must fail, not pass silently.
func browserTools(t *testing.T) string {
	t.Helper()
	var missing []string
	node, err := exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		missing = append(missing, chromiumPath)
	}
	if _, err := os.Stat(filepath.Join("e2e", "node_modules", "playwright-core", "package.json")); err != nil {
		missing = append(missing, "webview/e2e/node_modules/playwright-core")
	}
	if len(missing) == 0 {
		return node
	}
	msg := fmt.Sprintf("browser test needs %s: run webview/e2e/setup.sh (make test does)", strings.Join(missing, ", "))
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " [CI is set, so this is a failure, not a skip]")
	}
	t.Skip(msg)
	return ""
}

func TestDashboardInBrowser(t *testing.T) {
	node := browserTools(t)
	bin := testbin.Coditect(t)
	dir := t.TempDir()
	store := "sqlite://" + filepath.ToSlash(filepath.Join(dir, "coditect.db"))
	ws := filepath.Join(dir, "webapp")
	other := filepath.Join(dir, "billing")
	for _, d := range []string{filepath.Join(ws, "src", "auth"), other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The dashboard shows full paths as the daemon resolves them.
	canon := func(p string) string {
		c, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	srv := startDaemon(t, ctx, bin, store, "127.0.0.1:0", ws)
	if srv.token == "" {
		t.Fatal("the first start printed no login URL with a token")
	}
	addr := strings.TrimPrefix(srv.url, "http://")

	// Two agents, each its own `coditect mcp` process on the same store.
	builder := startAgent(t, ctx, bin, store, "builder", "qwen2.5-coder-7b-instruct")
	reviewer := startAgent(t, ctx, bin, store, "reviewer", "llama-3.1-8b-instruct")
	sess := builder.call(t, "session_start", map[string]any{"title": "Fix the login redirect", "workspace": ws})
	builder.call(t, "lease_acquire", map[string]any{"resource": "src/auth/login.go", "ttl_seconds": 600})
	// A write through the files tools, under that lease: its diff shows
	// in the session's timeline.
	builder.call(t, "fs_write", map[string]any{"session_id": sess["session_id"], "path": "src/auth/login.go", "content": "package auth\n"})
	builder.call(t, "note", map[string]any{"text": "The redirect loses the query string", "session_id": sess["session_id"]})
	reviewer.call(t, "session_join", map[string]any{"session_id": sess["session_id"]})
	// A second project, for the project switcher: the local operator's
	// workspace registers itself.
	reviewer.call(t, "session_start", map[string]any{"title": "Review the billing service", "workspace": other})
	reviewer.call(t, "message_send", map[string]any{"to": "builder", "subject": "review", "body": "Ping me when login.go is ready"})
	var rotate any
	for i, title := range []string{"Add a test for the login redirect", "Document the session cookie", "Rotate the signing key"} {
		task := builder.call(t, "task_create", map[string]any{"title": title})
		if i < 2 {
			claimed := reviewer.call(t, "task_claim", map[string]any{"task_id": task["task_id"], "version": task["version"]})
			if i == 0 {
				reviewer.call(t, "task_update", map[string]any{"task_id": claimed["task_id"], "version": claimed["version"], "state": "in_progress"})
			}
		}
		rotate = task["task_id"]
	}
	// A task blocked by the open, ready "Rotate the signing key".
	builder.call(t, "task_create", map[string]any{"title": "Ship the release", "priority": 3, "blocked_by": []any{rotate}})
	for _, f := range []string{"src/auth/login.go", "src/auth/login_test.go", "README.md"} {
		if err := os.WriteFile(filepath.Join(ws, f), []byte("package auth\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	shots := t.TempDir()
	if d := os.Getenv("CODITECT_SCREENSHOTS"); d != "" {
		shots = filepath.Join(testbin.Root(), d)
	}
	result := runBrowserScript(t, ctx, node, "dashboard.mjs", []string{"CODITECT_LOGIN_URL=" + srv.url + "/#token=" + srv.token,
		"CODITECT_CHROMIUM=" + chromiumPath, "CODITECT_SHOTS=" + shots, "CODITECT_PROJECT_ROOT=" + canon(ws), "CODITECT_OTHER_ROOT=" + canon(other)},
		func(req browserRequest) map[string]any {
			reply := map[string]any{"ok": true}
			switch req.Op {
			case "note": // an agent in another process writes an event
				if req.Project != "" {
					reply["id"] = projectNote(t, ctx, store, req.Project, req.Text)
					break
				}
				args := map[string]any{"text": req.Text}
				if req.Kind != "" {
					args["kind"] = req.Kind
				}
				reply["id"] = builder.call(t, "note", args)["event_id"]
			case "inbox": // the builder reads its messages
				reply["messages"] = builder.call(t, "inbox", map[string]any{"limit": 50})["messages"]
			case "tell": // the builder messages a person (text: user:NAME)
				reply["id"] = builder.call(t, "message_send", map[string]any{"to": req.Text, "subject": "auth.go", "body": "May I refactor auth.go?"})["message_id"]
			case "viewer": // the operator makes a viewer's token
				reply["token"] = viewerToken(t, ctx, bin, store)
			case "kill": // the daemon dies without a goodbye
				srv.kill(t)
			case "start": // and comes back on the same address and store
				srv = startDaemon(t, ctx, bin, store, addr, ws)
				if srv.token != "" {
					t.Fatal("a restart printed a new login token")
				}
			default:
				t.Fatalf("dashboard.mjs asked for %q", req.Op)
			}
			return reply
		}, func() string { return srv.stderr() })
	t.Logf("browser: %v", result)
	for _, v := range []string{"live", "sessions", "agents", "files", "tasks", "activity"} {
		if fi, err := os.Stat(filepath.Join(shots, v+".png")); err != nil || fi.Size() < 10_000 {
			t.Errorf("screenshot of %s: %v", v, err)
		}
	}
	srv.stop(t)
}

// browserRequest is a line a browser script asks the Go test with.
type browserRequest struct {
	Op      string `json:"op"`
	Path    string `json:"path"`
	Text    string `json:"text"`
	Kind    string `json:"kind"`
	Project string `json:"project"`
}

// runBrowserScript runs webview/e2e/<script> with env, answers each JSON
// line it prints with handle's reply, and returns the line whose op is
// "done". daemonStderr tells, when the script fails, what the daemon said.
func runBrowserScript(t *testing.T, ctx context.Context, node, script string, env []string, handle func(browserRequest) map[string]any, daemonStderr func() string) map[string]any {
	t.Helper()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = "e2e"
	cmd.Env = append(append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1"), env...)
	toNode, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	fromNode, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var nodeErr strings.Builder
	cmd.Stderr = &nodeErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var result map[string]any
	requests := bufio.NewScanner(fromNode)
	requests.Buffer(nil, 1<<20)
	for requests.Scan() {
		var req browserRequest
		if err := json.Unmarshal(requests.Bytes(), &req); err != nil {
			t.Fatalf("%s said %q: %v", script, requests.Text(), err)
		}
		reply := map[string]any{"ok": true}
		if req.Op == "done" {
			result = map[string]any{}
			if err := json.Unmarshal(requests.Bytes(), &result); err != nil {
				t.Fatal(err)
			}
		} else {
			reply = handle(req)
		}
		b, _ := json.Marshal(reply)
		if _, err := toNode.Write(append(b, '\n')); err != nil {
			t.Fatalf("writing to %s: %v\n%s", script, err, nodeErr.String())
		}
	}
	toNode.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s: %v\n%s\ndaemon stderr:\n%s", script, err, nodeErr.String(), daemonStderr())
	}
	if result == nil {
		t.Fatalf("%s ended without reporting\n%s", script, nodeErr.String())
	}
	return result
}

// viewerToken creates the user vic and a viewer's token for vic with the
// CLI, and returns its secret.
func viewerToken(t *testing.T, ctx context.Context, bin, store string) string {
	t.Helper()
	run := func(args ...string) string {
		cmd := exec.CommandContext(ctx, bin, append(args, "--store", store)...)
		cmd.Env = append(os.Environ(), "CODITECT_TOKEN=")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("coditect %s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
	run("user", "create", "vic")
	return run("token", "create", "--user", "vic", "--role", "viewer")
}

// projectNote appends a note about a project's file to the default
// tenant's log, as a process other than the daemon, and returns its id.
func projectNote(t *testing.T, ctx context.Context, store, projectID, text string) string {
	t.Helper()
	sc, st := e2eScope(t, ctx, store)
	defer st.Close()
	ev := sc.Event("note.added", text)
	ev.Project, ev.Path = projectID, "README.md"
	evs, err := sc.Log().Append(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	return evs[0].ID
}

// e2eScope opens store, as a process other than the daemon, for the local
// user e2e of the default tenant; closing the store is the caller's.
func e2eScope(t *testing.T, ctx context.Context, store string) (*tenant.Scope, io.Closer) {
	t.Helper()
	st, err := storage.Open(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := tenant.NewDirectory(st, "e2e").Local(ctx, "default", "e2e")
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	return sc, st
}

// daemon is a running `coditect serve`.
type daemon struct {
	cmd   *exec.Cmd
	url   string // http://127.0.0.1:PORT
	token string // from the login URL of a first start
	errMu sync.Mutex
	errB  strings.Builder
	done  chan struct{}
}

var loginRE = regexp.MustCompile(`(http://127\.0\.0\.1:\d+)/(?:#token=(\S+))?`)

// startDaemon starts `coditect serve` and waits for the line it prints
// once it serves.
func startDaemon(t *testing.T, ctx context.Context, bin, store, addr, ws string) *daemon {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--addr", addr, "--store", store, "--watch", ws, "--log-level", "debug")
	cmd.Env = append(os.Environ(), "CODITECT_TOKEN=")
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		d.errMu.Lock()
		defer d.errMu.Unlock()
		return d.errB.Write(p)
	})
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(d.done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-d.done })
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := loginRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
				break
			}
		}
		io.Copy(io.Discard, out)
	}()
	select {
	case m := <-found:
		d.url, d.token = m[1], m[2]
	case <-d.done:
		t.Fatalf("serve exited: %v\n%s", cmd.ProcessState, d.stderr())
	case <-ctx.Done():
		t.Fatalf("serve printed no URL\n%s", d.stderr())
	}
	return d
}

func (d *daemon) stderr() string {
	d.errMu.Lock()
	defer d.errMu.Unlock()
	return d.errB.String()
}

func (d *daemon) kill(t *testing.T) {
	t.Helper()
	d.cmd.Process.Kill()
	<-d.done
}

func (d *daemon) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		if !d.cmd.ProcessState.Success() {
			t.Errorf("serve exited with %v\n%s", d.cmd.ProcessState, d.stderr())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("serve did not stop on SIGTERM")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// mcpAgent is an agent: `coditect mcp` over stdio, driven with plain
// JSON-RPC lines, one request at a time.
type mcpAgent struct {
	in   io.WriteCloser
	out  *bufio.Scanner
	next int
	err  *strings.Builder
}

func startAgent(t *testing.T, ctx context.Context, bin, store, name, model string) *mcpAgent {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, "mcp", "--store", store, "--toolsets", "core,coord,files", "--model", model)
	cmd.Env = append(os.Environ(), "CODITECT_TOKEN=")
	a := &mcpAgent{err: &strings.Builder{}}
	cmd.Stderr = a.err
	var err error
	if a.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	a.out = bufio.NewScanner(out)
	a.out.Buffer(nil, 1<<20)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.in.Close(); cmd.Wait() })
	a.rpc(t, "initialize", map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": name, "version": "1.0"}})
	if _, err := fmt.Fprintln(a.in, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *mcpAgent) rpc(t *testing.T, method string, params any) json.RawMessage {
	t.Helper()
	a.next++
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": a.next, "method": method, "params": params})
	if _, err := a.in.Write(append(b, '\n')); err != nil {
		t.Fatalf("%s: %v\n%s", method, err, a.err)
	}
	for a.out.Scan() {
		var resp struct {
			ID     *int            `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(a.out.Bytes(), &resp); err != nil {
			t.Fatalf("%s: bad line %q", method, a.out.Text())
		}
		if resp.ID == nil || *resp.ID != a.next {
			continue // a notification
		}
		if resp.Error != nil {
			t.Fatalf("%s: %s", method, resp.Error.Message)
		}
		return resp.Result
	}
	t.Fatalf("%s: the agent's process ended: %v\n%s", method, a.out.Err(), a.err)
	return nil
}

// call calls a tool and returns its structured result.
func (a *mcpAgent) call(t *testing.T, tool string, args map[string]any) map[string]any {
	t.Helper()
	var res struct {
		IsError    bool             `json:"isError"`
		Content    []map[string]any `json:"content"`
		Structured map[string]any   `json:"structuredContent"`
	}
	if err := json.Unmarshal(a.rpc(t, "tools/call", map[string]any{"name": tool, "arguments": args}), &res); err != nil {
		t.Fatal(err)
	}
	if res.IsError {
		t.Fatalf("%s %v: %v", tool, args, res.Content)
	}
	return res.Structured
}
