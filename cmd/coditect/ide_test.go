package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/internal/testbin"
	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/tenant"
)

// The tests here run `coditect ide` as a real process and drive it with
// clients written by others: a raw frame writer for protocol abuse, Node's
// vscode-jsonrpc, Neovim, and an MCP agent colliding with the human.

const ideWait = 60 * time.Second

// ideBinary is the coditect binary (built once per test process).
func ideBinary(t *testing.T) string {
	t.Helper()
	return binary(t)
}

// ideProc is a `coditect ide` process driven with raw frames.
type ideProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	frames chan map[string]any
	stderr *bytes.Buffer
	junk   chan string // anything on stdout that is not a frame
}

func startIDE(t *testing.T, bin, store, ws string, args ...string) *ideProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"ide", "--store", store, "--tenant", "t1", "--user", "ada"}, args...)...)
	cmd.Env = append(os.Environ(), "CODITECT_TOKEN=", "XDG_DATA_HOME="+t.TempDir())
	cmd.Dir = ws
	return driveIDE(t, cmd)
}

// driveIDE starts cmd, a `coditect ide`, and reads its frames; the test's
// cleanup kills it if it still runs.
func driveIDE(t *testing.T, cmd *exec.Cmd) *ideProc {
	t.Helper()
	p := &ideProc{t: t, cmd: cmd, frames: make(chan map[string]any, 1024), stderr: &bytes.Buffer{}, junk: make(chan string, 1)}
	cmd.Stderr = p.stderr
	stdin, stdout := testbin.StartPiped(t, cmd)
	p.stdin = stdin
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	go func() {
		defer close(p.frames)
		r := bufio.NewReader(stdout)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "Content-Length: ")))
			if err != nil || !strings.HasPrefix(line, "Content-Length: ") {
				p.junk <- line
				return
			}
			if blank, _ := r.ReadString('\n'); blank != "\r\n" {
				p.junk <- blank
				return
			}
			body := make([]byte, n)
			if _, err := io.ReadFull(r, body); err != nil {
				return
			}
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				p.junk <- string(body)
				return
			}
			p.frames <- m
		}
	}()
	return p
}

func (p *ideProc) write(s string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, s); err != nil {
		p.t.Fatalf("writing to the server: %v\n%s", err, p.stderr)
	}
}

func (p *ideProc) send(msg map[string]any) {
	p.t.Helper()
	msg["jsonrpc"] = "2.0"
	b, _ := json.Marshal(msg)
	p.write(fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(b), b))
}

// next returns the next frame that satisfies ok; notifications and other
// frames are skipped.
func (p *ideProc) next(ok func(map[string]any) bool) map[string]any {
	p.t.Helper()
	deadline := time.After(ideWait)
	for {
		select {
		case m, open := <-p.frames:
			if !open {
				p.t.Fatalf("the server's stdout ended\n%s", p.stderr)
			}
			if ok(m) {
				return m
			}
		case j := <-p.junk:
			p.t.Fatalf("non-protocol bytes on stdout: %q", j)
		case <-deadline:
			p.t.Fatalf("no expected frame within %v\n%s", ideWait, p.stderr)
		}
	}
}

func (p *ideProc) response(id any) map[string]any {
	p.t.Helper()
	want, _ := json.Marshal(id)
	return p.next(func(m map[string]any) bool {
		got, _ := json.Marshal(m["id"])
		_, isReq := m["method"]
		return !isReq && bytes.Equal(got, want)
	})
}

func (p *ideProc) errorCode(m map[string]any) float64 {
	e, _ := m["error"].(map[string]any)
	if e == nil {
		p.t.Fatalf("want an error, got %v", m)
	}
	return e["code"].(float64)
}

// shutdown ends the session as an editor does (shutdown with request id
// id, then exit) and requires the server to exit with status 0.
func (p *ideProc) shutdown(id int) {
	p.t.Helper()
	p.send(map[string]any{"id": id, "method": "shutdown"})
	if r := p.response(id); r["error"] != nil {
		p.t.Fatalf("shutdown: %v", r)
	}
	p.send(map[string]any{"method": "exit"})
	if code := p.wait(); code != 0 {
		p.t.Fatalf("exit status %d after shutdown and exit, want 0\n%s", code, p.stderr)
	}
}

func (p *ideProc) wait() int {
	p.t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(ideWait):
		p.t.Fatalf("the server did not exit\n%s", p.stderr)
	}
	return p.cmd.ProcessState.ExitCode()
}

func fileURL(p string) string { return (&url.URL{Scheme: "file", Path: p}).String() }

func ideWorkspace(t *testing.T) (store, ws string) {
	t.Helper()
	dir := t.TempDir()
	ws, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return "sqlite://" + filepath.Join(dir, "coditect.db"), ws
}

func (p *ideProc) initialize(ws string) {
	p.t.Helper()
	p.send(map[string]any{"id": 1, "method": "initialize", "params": map[string]any{"processId": nil, "rootUri": fileURL(ws), "capabilities": map[string]any{}}})
	if r := p.response(1); r["result"] == nil {
		p.t.Fatalf("initialize: %v", r)
	}
	p.send(map[string]any{"method": "initialized", "params": map[string]any{}})
}

// TestIDEProtocolAbuse writes garbage frames, a huge Content-Length,
// wrong types, unknown methods and cancellations to a real process: each
// gets its JSON-RPC error, stdout carries nothing but frames, and the
// server still answers and exits with the status the spec asks for.
func TestIDEProtocolAbuse(t *testing.T) {
	bin := ideBinary(t)
	store, ws := ideWorkspace(t)
	p := startIDE(t, bin, store, ws, "--max-message", "65536")
	p.send(map[string]any{"id": 1, "method": "textDocument/hover", "params": map[string]any{}})
	if c := p.errorCode(p.response(1)); c != -32002 {
		t.Fatalf("before initialize: %v", c)
	}
	p.send(map[string]any{"id": 2, "method": "initialize", "params": map[string]any{"processId": nil, "rootUri": fileURL(ws), "capabilities": map[string]any{}}})
	p.response(2)
	p.send(map[string]any{"method": "initialized", "params": map[string]any{}})

	nullErr := func(code float64) {
		t.Helper()
		m := p.next(func(m map[string]any) bool { return m["id"] == nil && m["error"] != nil })
		if c := p.errorCode(m); c != code {
			t.Fatalf("error %v, want code %v", m, code)
		}
	}
	p.write("Content-Length: 7\r\n\r\n{garbag")
	nullErr(-32700)
	p.write("Content-Type: application/vscode-jsonrpc\r\n\r\n")
	nullErr(-32700)
	p.write("Content-Length: 18446744073709551616\r\n\r\n")
	nullErr(-32700)
	// Huge: answered at once, then exactly the declared bytes skipped.
	huge := 1 << 20
	p.write(fmt.Sprintf("Content-Length: %d\r\n\r\n", huge))
	nullErr(-32600)
	p.write(strings.Repeat("{", huge))
	p.write("Content-Length: 2\r\n\r\n[]")
	nullErr(-32600)
	p.write(string([]byte{0xff, 0xfe, '\r', '\n', '\r', '\n'}))
	nullErr(-32700)
	// Wrong types, unknown methods.
	p.send(map[string]any{"id": 3, "method": "textDocument/didOpen"})
	if c := p.errorCode(p.response(3)); c != -32601 {
		t.Fatalf("a notification method sent as a request: %v", c)
	}
	p.send(map[string]any{"id": "four", "method": "textDocument/hover", "params": map[string]any{"textDocument": []int{1}, "position": "x"}})
	if c := p.errorCode(p.response("four")); c != -32602 {
		t.Fatalf("wrong param types: %v", c)
	}
	p.send(map[string]any{"id": 5, "method": "workspace/executeCommand", "params": map[string]any{"command": "coditect.file.history", "arguments": []any{map[string]any{"uri": 12}}}})
	if c := p.errorCode(p.response(5)); c != -32602 {
		t.Fatalf("wrong argument type: %v", c)
	}
	p.send(map[string]any{"method": "textDocument/didChange", "params": map[string]any{"textDocument": "nope"}})
	p.send(map[string]any{"method": "$/cancelRequest", "params": map[string]any{"id": 77}})
	p.send(map[string]any{"method": "$/cancelRequest", "params": "garbage"})
	// A request and its cancellation back to back: answered or cancelled.
	p.send(map[string]any{"id": 6, "method": "workspace/executeCommand", "params": map[string]any{"command": "coditect.status"}})
	p.send(map[string]any{"method": "$/cancelRequest", "params": map[string]any{"id": 6}})
	if r := p.response(6); r["error"] != nil && p.errorCode(r) != -32800 {
		t.Fatalf("cancelled request: %v", r)
	}
	p.send(map[string]any{"id": 7, "method": "workspace/executeCommand", "params": map[string]any{"command": "coditect.status"}})
	if r := p.response(7); r["result"] == nil {
		t.Fatalf("after the abuse: %v", r)
	}
	p.shutdown(8)
}

// TestIDEExitStatus: exit without shutdown is status 1; an editor that
// goes away (stdin closed) is a shutdown, status 0.
func TestIDEExitStatus(t *testing.T) {
	bin := ideBinary(t)
	store, ws := ideWorkspace(t)
	p := startIDE(t, bin, store, ws)
	p.initialize(ws)
	p.send(map[string]any{"method": "exit"})
	if code := p.wait(); code != 1 {
		t.Fatalf("exit without shutdown: status %d, want 1", code)
	}
	p = startIDE(t, bin, store, ws)
	p.initialize(ws)
	p.stdin.Close()
	if code := p.wait(); code != 0 {
		t.Fatalf("stdin closed: status %d, want 0\n%s", code, p.stderr)
	}
}

// dashboardToken asks the IDE for the dashboard and returns the token its
// link logs in with.
func (p *ideProc) dashboardToken(id int) string {
	p.t.Helper()
	p.send(map[string]any{"id": id, "method": "workspace/executeCommand", "params": map[string]any{"command": "coditect.dashboard"}})
	res, _ := p.response(id)["result"].(map[string]any)
	u, _ := res["url"].(string)
	_, token, ok := strings.Cut(u, "#token=")
	if !ok || token == "" {
		p.t.Fatalf("dashboard link %q carries no token", u)
	}
	return token
}

// TestIDEDashboardTokenDiesWithIDE: the login token of the dashboard link
// a local identity's IDE issues is renewed while the IDE runs (its expiry
// moves on) and revoked when the IDE exits.
func TestIDEDashboardTokenDiesWithIDE(t *testing.T) {
	bin := ideBinary(t)
	store, ws := ideWorkspace(t)
	p := startIDE(t, bin, store, ws, "--dashboard-token-ttl", "900ms")
	p.initialize(ws)
	token := p.dashboardToken(2)

	ctx := context.Background()
	st, err := storage.Open(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dir := tenant.NewDirectory(st, "test")
	sc, err := dir.Authenticate(ctx, token)
	if err != nil {
		t.Fatalf("the dashboard token does not log in: %v", err)
	}
	expiry := func() time.Time {
		toks, err := dir.ListTokens(ctx, "t1")
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range toks {
			if tk.ID == sc.Principal().TokenID {
				return tk.Expires
			}
		}
		t.Fatalf("token %s not listed", sc.Principal().TokenID)
		return time.Time{}
	}
	first := expiry()
	if first.IsZero() || time.Until(first) > time.Second {
		t.Fatalf("the dashboard token expires at %v, want within the 900ms TTL", first)
	}
	for deadline := time.Now().Add(ideWait); !expiry().After(first); {
		if time.Now().After(deadline) {
			t.Fatalf("the IDE did not renew its dashboard token within %v", ideWait)
		}
		time.Sleep(10 * time.Millisecond) // polling the store for the renewal
	}
	if err := sc.Check(ctx); err != nil {
		t.Fatalf("the renewed token: %v", err)
	}
	p.shutdown(3)
	if _, err := dir.Authenticate(ctx, token); !errors.Is(err, tenant.ErrTokenRevoked) {
		t.Fatalf("the dashboard token after the IDE exited: %v, want revoked", err)
	}
}

// TestIDENodeClient runs ide/vscode/test/e2e.mjs, a client on Node's
// vscode-jsonrpc (installed by ide/vscode/setup.sh; skipped without it).
func TestIDENodeClient(t *testing.T) {
	dir := extensionDir()
	node := needNode(t, "vscode-jsonrpc")
	bin := ideBinary(t)
	store, ws := ideWorkspace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*ideWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "test", "e2e.mjs"), bin, store, ws)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CODITECT_TOKEN=", "XDG_DATA_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node e2e: %v\n%s", err, out)
	}
	t.Logf("node e2e: %s", bytes.TrimSpace(out))
}

// TestIDENeovim drives the server with Debian's Neovim (vim.lsp.start_client)
// headless: it types quick edits (which Neovim merges into one didChange),
// checks the server saw a dirty buffer, saves, and the hash the server
// recorded for the save is the hash of the file Neovim wrote.
func TestIDENeovim(t *testing.T) {
	nvim, err := exec.LookPath("nvim")
	if err != nil {
		skipOutsideCI(t, "nvim is not installed (ide/vscode/setup.sh installs Debian's neovim)")
	}
	bin := ideBinary(t)
	store, ws := ideWorkspace(t)
	file := filepath.Join(ws, "main.go")
	if err := os.WriteFile(file, []byte("package main\n\nfunc main() {\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "result.json")
	script := filepath.Join(testbin.Root(), "ide", "testdata", "nvim_e2e.lua")
	ctx, cancel := context.WithTimeout(context.Background(), 2*ideWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, nvim, "--headless", "-u", "NONE", "-i", "NONE", "-n", file, "-c", "luafile "+script)
	cmd.Env = append(os.Environ(), "CODITECT_TOKEN=", "XDG_DATA_HOME="+t.TempDir(), "XDG_STATE_HOME="+t.TempDir(),
		"CODITECT_BIN="+bin, "CODITECT_TEST_STORE="+store, "CODITECT_TEST_ROOT="+ws, "CODITECT_TEST_OUT="+out)
	cmd.Dir = ws
	if combined, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nvim: %v\n%s", err, combined)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("no result from nvim: %v", err)
	}
	var res struct {
		Error        string  `json:"error"`
		Unsaved      float64 `json:"unsaved"`
		SavedHash    string  `json:"saved_hash"`
		ExitCode     float64 `json:"exit_code"`
		Changes      float64 `json:"did_change"`
		EventsOnOpen float64 `json:"events"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("result %s: %v", b, err)
	}
	if res.Error != "" {
		t.Fatalf("nvim script: %s", res.Error)
	}
	disk, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if res.Unsaved != 1 || res.SavedHash != attrib.Hash(disk) || res.ExitCode != 0 {
		t.Fatalf("nvim result %+v; the file's hash is %s (%q)", res, attrib.Hash(disk), disk)
	}
	t.Logf("nvim: %s", b)
}

// TestIDEAgentCollision: the human has F open and dirty in `coditect ide`;
// an agent's fs_write of F through `coditect mcp` is refused with a clear
// message and the disk is untouched; the IDE is warned; after the human
// saves, `coditect watch` attributes the change to the human and files it
// under the editor's session, and the agent's next write under the
// agent's, both in the project of the workspace.
func TestIDEAgentCollision(t *testing.T) {
	bin := ideBinary(t)
	store, ws := ideWorkspace(t)
	file := filepath.Join(ws, "shared.go")
	if err := os.WriteFile(file, []byte("package shared\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	env := append(os.Environ(), "CODITECT_TOKEN=", "XDG_DATA_HOME="+data)

	// The human's editor (its local identity creates the tenant).
	p := startIDE(t, bin, store, ws)
	p.initialize(ws)

	// The watcher, printing JSON lines.
	ctx, cancel := context.WithTimeout(context.Background(), 2*ideWait)
	defer cancel()
	watchCmd := exec.CommandContext(ctx, bin, "watch", ws, "--store", store, "--tenant", "t1", "--as", "ada", "--format", "json", "--window", "20ms", "--log-level", "warn")
	watchCmd.Env = env
	wout, err := watchCmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var wErr bytes.Buffer
	watchCmd.Stderr = &wErr
	if err := watchCmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = watchCmd.Process.Kill(); _ = watchCmd.Wait() }()
	changes := make(chan map[string]any, 64)
	go func() {
		sc := bufio.NewScanner(wout)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				changes <- m
			}
		}
		close(changes)
	}()
	nextChange := func(pred func(map[string]any) bool) map[string]any {
		t.Helper()
		deadline := time.After(ideWait)
		for {
			select {
			case c, ok := <-changes:
				if !ok {
					t.Fatalf("the watcher ended\n%s", wErr.String())
				}
				if pred(c) {
					return c
				}
			case <-deadline:
				t.Fatalf("no watcher event within %v\n%s", ideWait, wErr.String())
			}
		}
	}
	// The watcher is ready once it reports a change made after it started.
	probe := filepath.Join(ws, "probe.txt")
	for i := 0; ; i++ {
		if err := os.WriteFile(probe, []byte(strconv.Itoa(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-changes:
			if c["path"] == probe {
				goto ready
			}
		case <-time.After(200 * time.Millisecond):
		}
		if i > 100 {
			t.Fatalf("the watcher never reported\n%s", wErr.String())
		}
	}
ready:

	// The human opens the file and types.
	p.send(map[string]any{"method": "textDocument/didOpen", "params": map[string]any{"textDocument": map[string]any{"uri": fileURL(file), "languageId": "go", "version": 1, "text": "package shared\n"}}})
	p.send(map[string]any{"method": "textDocument/didChange", "params": map[string]any{"textDocument": map[string]any{"uri": fileURL(file), "version": 2},
		"contentChanges": []any{map[string]any{"range": map[string]any{"start": map[string]int{"line": 1, "character": 0}, "end": map[string]int{"line": 1, "character": 0}}, "text": "\n// the human's work\n"}}}})
	p.send(map[string]any{"id": 10, "method": "workspace/executeCommand", "params": map[string]any{"command": "coditect.status"}})
	if r := p.response(10); r["result"].(map[string]any)["unsaved"] != float64(1) {
		t.Fatalf("status %v", r)
	}

	// The agent, through coditect mcp.
	mcpCmd := exec.Command(bin, "mcp", "--store", store, "--tenant", "t1", "--user", "ada", "--toolsets", "core,coord,files", "--model", "qwen2.5-coder-7b")
	mcpCmd.Env = env
	client := mcp.NewClient(&mcp.Implementation{Name: "lmstudio", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: mcpCmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	callTool := func(name string, args map[string]any) (*mcp.CallToolResult, string) {
		t.Helper()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var text strings.Builder
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				text.WriteString(tc.Text)
			}
		}
		return res, text.String()
	}
	res, text := callTool("session_start", map[string]any{"title": "refactor", "workspace": ws})
	if res.IsError {
		t.Fatalf("session_start: %s", text)
	}
	sid, _ := res.StructuredContent.(map[string]any)["session_id"].(string)
	res, text = callTool("fs_write", map[string]any{"session_id": sid, "path": "shared.go", "content": "package shared // agent\n"})
	if !res.IsError || !strings.Contains(text, "unsaved edits by a human") || !strings.Contains(text, "ada") {
		t.Fatalf("fs_write over unsaved edits: error=%v %s", res.IsError, text)
	}
	if b, _ := os.ReadFile(file); string(b) != "package shared\n" {
		t.Fatalf("the refused write changed the file: %q", b)
	}
	// The IDE is warned.
	msg := p.next(func(m map[string]any) bool {
		return m["method"] == "window/showMessage" && strings.Contains(fmt.Sprint(m["params"]), "refused")
	})
	t.Logf("IDE warning: %v", msg["params"].(map[string]any)["message"])

	// The human saves in the editor's session; the watcher attributes the
	// change to the human, in that session.
	p.send(map[string]any{"id": 13, "method": "workspace/executeCommand", "params": map[string]any{"command": "coditect.session.start"}})
	human, _ := p.response(13)["result"].(map[string]any)
	humanSession, _ := human["id"].(string)
	if humanSession == "" || human["project"] == nil {
		t.Fatalf("coditect.session.start: %v", human)
	}
	text2 := "package shared\n\n// the human's work\n"
	p.send(map[string]any{"method": "textDocument/willSave", "params": map[string]any{"textDocument": map[string]any{"uri": fileURL(file)}, "reason": 1}})
	p.send(map[string]any{"id": 11, "method": "workspace/executeCommand", "params": map[string]any{"command": "coditect.status"}})
	p.response(11) // willSave has recorded the evidence: now the bytes go to disk
	if err := os.WriteFile(file, []byte(text2), 0o644); err != nil {
		t.Fatal(err)
	}
	p.send(map[string]any{"method": "textDocument/didSave", "params": map[string]any{"textDocument": map[string]any{"uri": fileURL(file)}}})
	c := nextChange(func(c map[string]any) bool { return c["path"] == file })
	at, _ := c["attribution"].(map[string]any)
	if at["actor"] != "human" || c["hash"] != attrib.Hash([]byte(text2)) || c["session"] != humanSession ||
		c["project"] != human["project"] || c["rel"] != "shared.go" {
		t.Fatalf("watcher change %v, want the human's in session %s of project %v", c, humanSession, human["project"])
	}
	// Now the agent may write: the change is the agent's, in its session.
	res, text = callTool("fs_write", map[string]any{"session_id": sid, "path": "shared.go", "content": "package shared // agent\n"})
	if res.IsError {
		t.Fatalf("fs_write after the save: %s", text)
	}
	c = nextChange(func(c map[string]any) bool { return c["path"] == file })
	if at, _ := c["attribution"].(map[string]any); at["actor"] != "agent" || c["session"] != sid || c["project"] != human["project"] {
		t.Fatalf("watcher change %v, want the agent's in session %s", c, sid)
	}
	p.shutdown(12)
}

// skipOutsideCI skips a test whose outside tool is missing, except in CI
// (CI=true), where make test installs it: there a missing tool is a broken
// install step and must fail, not pass silently.
func skipOutsideCI(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(why)
	}
	t.Skip(why)
}
