package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"iter"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/internal/testbin"
)

// What the end-to-end tests of this package share: Node and the VS Code
// extension's npm packages (or a skip), the extension compiled with its
// tsc, a Node script's output lines, an agent on a real `coditect mcp`
// through the official MCP SDK client, and users' tokens.

// extensionDir is the VS Code extension's folder, with its node_modules.
func extensionDir() string { return filepath.Join(testbin.Root(), "ide", "vscode") }

// needNode returns node, or skips the test (fails it in CI) when node or
// one of the extension's npm packages pkgs is not installed
// (ide/vscode/setup.sh installs them).
func needNode(t testing.TB, pkgs ...string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		skipOutsideCI(t, "node is not installed (ide/vscode/setup.sh)")
	}
	for _, p := range pkgs {
		if _, err := os.Stat(filepath.Join(extensionDir(), "node_modules", p)); err != nil {
			skipOutsideCI(t, p+" is not installed: run ide/vscode/setup.sh")
		}
	}
	return node
}

// compileExtension compiles the extension with its own tsc into a new
// directory and returns node and that directory.
func compileExtension(t testing.TB, ctx context.Context) (node, out string) {
	t.Helper()
	node = needNode(t, "typescript", "vscode-jsonrpc")
	out = t.TempDir()
	tsc := filepath.Join(extensionDir(), "node_modules", "typescript", "bin", "tsc")
	if b, err := exec.CommandContext(ctx, node, tsc, "-p", extensionDir(), "--outDir", out).CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, b)
	}
	return node, out
}

// nodeProc is a Node script of the tests running: its stdout lines as
// they come, its stdin for answers.
type nodeProc struct {
	t      testing.TB
	script string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *lockedBuffer
	last   string // the last line read
}

// startNode runs `node script args…` in dir with env. The test's cleanup
// closes its stdin and waits for it to end, killing it after ideWait.
func startNode(t testing.TB, ctx context.Context, node, dir string, env []string, script string, args ...string) *nodeProc {
	t.Helper()
	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	cmd.Dir = dir
	cmd.Env = env
	p := &nodeProc{t: t, script: filepath.Base(script), cmd: cmd, lines: make(chan string, 256), stderr: &lockedBuffer{}}
	cmd.Stderr = p.stderr
	var stdout io.ReadCloser
	p.stdin, stdout = testbin.StartPiped(t, cmd)
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		p.stdin.Close()
		if cmd.ProcessState != nil {
			return
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(ideWait):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return p
}

// read returns the script's next line; ok is false once it has ended.
func (p *nodeProc) read() (line string, ok bool) {
	p.t.Helper()
	select {
	case l, open := <-p.lines:
		if open {
			p.last = l
		}
		return l, open
	case <-time.After(ideWait):
		p.t.Fatalf("%s printed nothing within %v\n%s", p.script, ideWait, p.stderr)
		return "", false
	}
}

// line returns the script's next line; the test fails if it has ended.
func (p *nodeProc) line() string {
	p.t.Helper()
	l, ok := p.read()
	if !ok {
		p.t.Fatalf("%s ended\n%s", p.script, p.stderr)
	}
	return l
}

// next returns the script's next line that satisfies ok.
func (p *nodeProc) next(ok func(string) bool) string {
	p.t.Helper()
	for {
		if l := p.line(); ok(l) {
			return l
		}
	}
}

// rest yields the script's lines until it ends.
func (p *nodeProc) rest() iter.Seq[string] {
	return func(yield func(string) bool) {
		for {
			l, ok := p.read()
			if !ok || !yield(l) {
				return
			}
		}
	}
}

// send writes a line to the script's stdin.
func (p *nodeProc) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatalf("writing to %s: %v\n%s", p.script, err, p.stderr)
	}
}

// finish closes the script's stdin, reads its lines to the end and waits
// for it; it must exit 0, its last line being a JSON report, which goes
// into v. It returns that line.
func (p *nodeProc) finish(v any) string {
	p.t.Helper()
	p.stdin.Close()
	for range p.rest() {
	}
	if err := p.cmd.Wait(); err != nil {
		p.t.Fatalf("%s: %v\n%s\n%s", p.script, err, p.last, p.stderr)
	}
	if err := json.Unmarshal([]byte(p.last), v); err != nil {
		p.t.Fatalf("%s's report %q: %v\n%s", p.script, p.last, err, p.stderr)
	}
	return p.last
}

// lockedBuffer is a process's stderr, safe to read while it writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// mcpAgent is an agent on a real `coditect mcp`, driven by the official
// MCP Go SDK client. With sid set, calls without a session_id are made in
// that session.
type mcpAgent struct {
	t   testing.TB
	ctx context.Context
	cs  *mcp.ClientSession
	sid string
}

// startMCP starts `coditect mcp args…` with env and connects to it; the
// agent's calls end with ctx.
func startMCP(t testing.TB, ctx context.Context, env []string, bin string, args ...string) *mcpAgent {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"mcp"}, args...)...)
	cmd.Env = env
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "LM Studio", Version: "0.3"}, nil).Connect(cctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return &mcpAgent{t: t, ctx: ctx, cs: cs}
}

// mcp starts an agent on the cli's store.
func (c *cli) mcp(args ...string) *mcpAgent {
	c.t.Helper()
	return startMCP(c.t, context.Background(), append(os.Environ(), c.env...), c.bin, args...)
}

// call calls a tool and returns its structured content, its text and
// whether it was a tool error.
func (a *mcpAgent) call(name string, args map[string]any) (map[string]any, string, bool) {
	a.t.Helper()
	if a.sid != "" {
		if args == nil {
			args = map[string]any{}
		}
		if _, ok := args["session_id"]; !ok {
			args["session_id"] = a.sid
		}
	}
	ctx, cancel := context.WithTimeout(a.ctx, ideWait)
	defer cancel()
	res, err := a.cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		a.t.Fatalf("%s: %v", name, err)
	}
	var text strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text.WriteString(tc.Text)
		}
	}
	var out map[string]any
	if b, err := json.Marshal(res.StructuredContent); err == nil {
		_ = json.Unmarshal(b, &out)
	}
	return out, text.String(), res.IsError
}

// ok calls a tool that must succeed.
func (a *mcpAgent) ok(name string, args map[string]any) map[string]any {
	a.t.Helper()
	out, _ := a.okText(name, args)
	return out
}

// okText calls a tool that must succeed and returns its text too.
func (a *mcpAgent) okText(name string, args map[string]any) (map[string]any, string) {
	a.t.Helper()
	out, text, isErr := a.call(name, args)
	if isErr {
		a.t.Fatalf("%s %v: %s", name, args, text)
	}
	return out, text
}

// fail calls a tool that must fail with an error text containing wants.
func (a *mcpAgent) fail(name string, args map[string]any, wants ...string) string {
	a.t.Helper()
	_, text, isErr := a.call(name, args)
	if !isErr {
		a.t.Fatalf("%s %v succeeded: %s", name, args, text)
	}
	for _, w := range wants {
		if !strings.Contains(text, w) {
			a.t.Errorf("%s %v: %q, want it to contain %q", name, args, text, w)
		}
	}
	return text
}

// token creates the user (a member of the cli's tenant) and a token of
// role for them, and returns its secret.
func (c *cli) token(user, role string) string {
	c.t.Helper()
	c.ok("user", "create", user)
	out, errOut, code := run(c.t, c.bin, c.env, "token", "create", "--user", user, "--role", role)
	if code != 0 {
		c.t.Fatalf("token create: %s", errOut)
	}
	return strings.TrimSpace(out)
}

// ideWithToken starts `coditect ide` on store with the identity of a
// token (the editor's human), in ws.
func ideWithToken(t *testing.T, bin, store, ws, token string) *ideProc {
	t.Helper()
	cmd := exec.Command(bin, "ide", "--store", store)
	cmd.Env = append(os.Environ(), "CODITECT_TOKEN="+token, "XDG_DATA_HOME="+t.TempDir())
	cmd.Dir = ws
	return driveIDE(t, cmd)
}
