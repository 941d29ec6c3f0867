package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/coditect/coditect/internal/testbin"
)

// daemonProc is a running `coditect serve`.
type daemonProc struct {
	cmd    *exec.Cmd
	url    string // http://127.0.0.1:PORT
	token  string // from the login URL, on a first start
	stderr *strings.Builder
	// rest receives the lines of stdout after the URL's.
	rest chan string
}

var urlRE = regexp.MustCompile(`(http://127\.0\.0\.1:\d+)/(#token=(\S+))?`)

// startServe starts the daemon and reads its stdout until it names its URL,
// which it prints once it serves.
func startServe(t *testing.T, storeURL string, args ...string) *daemonProc {
	t.Helper()
	bin := testbin.Coditect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--store", storeURL, "--sweep-every", "1s"}, args...)...)
	cmd.Env = append(os.Environ(), "CODITECT_TOKEN=")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &daemonProc{cmd: cmd, stderr: &strings.Builder{}, rest: make(chan string, 64)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := urlRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
				break
			}
		}
		for sc.Scan() {
			select {
			case p.rest <- sc.Text():
			default:
			}
		}
		io.Copy(io.Discard, out)
	}()
	select {
	case m := <-found:
		p.url, p.token = m[1], m[3]
	case <-ctx.Done():
		t.Fatalf("serve printed no URL; stderr:\n%s", p.stderr)
	}
	return p
}

func (p *daemonProc) get(t *testing.T, path, token string) (int, string) {
	t.Helper()
	return p.do(t, "GET", path, token, "")
}

// do sends a request with token ("": none) and a JSON body ("": none),
// and returns the status and body of the response.
func (p *daemonProc) do(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, p.url+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// line returns the first line of stdout after the URL's that contains s.
func (p *daemonProc) line(t *testing.T, s string) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l := <-p.rest:
			if strings.Contains(l, s) {
				return strings.TrimSpace(l)
			}
		case <-deadline:
			t.Fatalf("serve printed no line with %q", s)
		}
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *daemonProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve exited with %v; stderr:\n%s", err, p.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop on SIGTERM; stderr:\n%s", p.stderr)
	}
}

func TestServeFirstStartLoginAndShutdown(t *testing.T) {
	store := "sqlite://" + filepath.ToSlash(filepath.Join(t.TempDir(), "c.db"))
	ws, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := startServe(t, store, "--watch", ws)
	if p.token == "" {
		t.Fatal("first start printed no login token")
	}
	if code, body := p.get(t, "/api/v1/whoami", p.token); code != 200 || !strings.Contains(body, `"role":"admin"`) {
		t.Fatalf("login token: %d %s", code, body)
	}
	if code, _ := p.get(t, "/api/v1/whoami", ""); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code, body := p.get(t, "/", ""); code != 200 || !strings.Contains(body, "<!doctype html>") {
		t.Fatalf("dashboard: %d", code)
	}
	// The watcher records a file change; the feed delivers it.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(p.url, "http")+"/api/v1/feed", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	if err := wsjson.Write(ctx, c, map[string]any{"type": "subscribe", "token": p.token, "filter": map[string]string{"kind": "file.created"}}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "hello.go"), []byte("package hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for seen := false; !seen; {
		var m struct {
			Type   string `json:"type"`
			Events []struct {
				Project string         `json:"project"`
				Path    string         `json:"path"`
				Attrs   map[string]any `json:"attrs"`
			} `json:"events"`
		}
		if err := wsjson.Read(ctx, c, &m); err != nil {
			t.Fatalf("waiting for the watcher's event: %v\n%s", err, p.stderr)
		}
		for _, e := range m.Events {
			if e.Path == "hello.go" {
				seen = true
				// The project of --watch DIR names it, with its path
				// relative to the root.
				if !strings.HasPrefix(e.Project, "pr_") || e.Attrs["abs"] != filepath.Join(ws, "hello.go") {
					t.Errorf("the watcher's event is in project %q with abs %v", e.Project, e.Attrs["abs"])
				}
			}
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
	if code, body := p.get(t, "/readyz", ""); code != 200 {
		t.Fatalf("readyz: %d %s", code, body)
	}
	if code, body := p.get(t, "/metrics", ""); code != 200 || !strings.Contains(body, "coditect_watch_events_total 1") {
		t.Fatalf("metrics: %d\n%s", code, body)
	}
	p.stop(t)
	if strings.Contains(p.stderr.String(), p.token) {
		t.Fatal("the token reached the log")
	}

	// A later start prints how to get a token, not a token: a command
	// that works as shown, from another directory, in a shell whose PATH
	// has no coditect and whose environment names no store.
	p2 := startServe(t, store)
	if p2.token != "" {
		t.Fatal("second start printed a token")
	}
	hint := p2.line(t, "token create")
	sh := exec.Command("sh", "-c", hint)
	sh.Dir = t.TempDir()
	sh.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir(), "USER=" + os.Getenv("USER")}
	secret, err := sh.Output()
	if err != nil || !strings.HasPrefix(string(secret), "cdt_") {
		t.Fatalf("the hint %q: %v\n%s", hint, err, secret)
	}
	if code, body := p2.get(t, "/api/v1/whoami", strings.TrimSpace(string(secret))); code != 200 || !strings.Contains(body, `"role":"admin"`) {
		t.Fatalf("the hint's token: %d %s", code, body)
	}
	if code, _ := p2.get(t, "/api/v1/whoami", p.token); code != 200 {
		t.Fatal("the first token stopped working after a restart")
	}
	p2.stop(t)
}

// TestServeRefusesToWatchTheStore: --watch of a directory holding the
// store fails with a message saying why.
func TestServeRefusesToWatchTheStore(t *testing.T) {
	bin := testbin.Coditect(t)
	dir := t.TempDir()
	store := "sqlite://" + filepath.ToSlash(filepath.Join(dir, "c.db"))
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--store", store, "--watch", dir)
	cmd.Env = append(os.Environ(), "CODITECT_TOKEN=")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "store") || !strings.Contains(string(out), "--watch") {
		t.Fatalf("watching the store's directory: %v %s", err, out)
	}
}

func TestServeRefusesRemoteBindWithoutFlag(t *testing.T) {
	bin := testbin.Coditect(t)
	store := "sqlite://" + filepath.ToSlash(filepath.Join(t.TempDir(), "c.db"))
	out, err := exec.Command(bin, "serve", "--addr", "0.0.0.0:0", "--store", store).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--allow-remote") {
		t.Fatalf("binding 0.0.0.0 without --allow-remote: %v %s", err, out)
	}
}

func TestServeCoreRoleServesNoAPI(t *testing.T) {
	store := "sqlite://" + filepath.ToSlash(filepath.Join(t.TempDir(), "c.db"))
	// Core prints its health URL once it serves, as the other roles print
	// the dashboard's.
	p := startServe(t, store, "--role", "core")
	if p.token != "" {
		t.Fatal("core printed a login token")
	}
	if code, _ := p.get(t, "/healthz", ""); code != 200 {
		t.Fatalf("core /healthz: %d", code)
	}
	if code, body := p.get(t, "/readyz", ""); code != 200 {
		t.Fatalf("core /readyz right after its ready line: %d %s", code, body)
	}
	if code, _ := p.get(t, "/api/v1/whoami", "x"); code != 404 {
		t.Fatalf("core serves the API: %d", code)
	}
	p.stop(t)
}
