package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/internal/testbin"
	"github.com/coditect/coditect/server"
	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/tenant"
)

// stdioEnv is a store for `coditect mcp` subprocesses, and the directory
// the test inspects it through (SQLite lets both write at once).
type stdioEnv struct {
	storeURL string
	dir      *tenant.Directory
	data     string
}

func newStdioEnv(t *testing.T) *stdioEnv {
	t.Helper()
	data := t.TempDir()
	u := "sqlite://" + filepath.ToSlash(filepath.Join(data, "coditect.db"))
	st, err := storage.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &stdioEnv{storeURL: u, dir: tenant.NewDirectory(st, "test"), data: data}
}

// command returns `coditect mcp args…` on the env's store, with extra
// environment; its stderr is collected in the returned buffer.
func (e *stdioEnv) command(t *testing.T, env []string, args ...string) (*exec.Cmd, *syncBuffer) {
	cmd := exec.Command(coditectBinary(t), append([]string{"mcp"}, args...)...)
	cmd.Env = append(os.Environ(), "CODITECT_STORE="+e.storeURL, "CODITECT_TOKEN=", "XDG_DATA_HOME="+e.data)
	cmd.Env = append(cmd.Env, env...)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	return cmd, &stderr
}

// answers runs `coditect mcp` serving the store itself, with args, on the
// lines as its whole input, and returns its output's lines once it exited.
func (e *stdioEnv) answers(t *testing.T, lines []string, args ...string) []string {
	t.Helper()
	cmd, stderr := e.command(t, []string{"CODITECT_CORE=off"}, args...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil {
		t.Fatalf("coditect mcp: %v\n%s", err, stderr)
	}
	return strings.Split(strings.TrimSpace(stdout.String()), "\n")
}

func (e *stdioEnv) local(t *testing.T, ten, user string) *tenant.Scope {
	t.Helper()
	sc, err := e.dir.Local(context.Background(), ten, user)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func TestStdioBothEras(t *testing.T) {
	for _, era := range []string{eraLegacy, eraModern} {
		t.Run(era, func(t *testing.T) {
			e := newStdioEnv(t)
			cmd, stderr := e.command(t, nil, "--tenant", "acme", "--user", "alice", "--agent", "coder-1", "--model", "qwen2.5-coder-7b")
			c := connect(t, &mcp.CommandTransport{Command: cmd}, "lmstudio", era)
			sid := c.exercise("acme", "alice", t.TempDir())
			m, _, _ := c.call("whoami", map[string]any{})
			if m["agent_name"] != "coder-1" || m["model"] != "qwen2.5-coder-7b" || m["client"] != "lmstudio" || m["client_version"] != "9.9.9" {
				t.Errorf("whoami = %v", m)
			}
			// Closing stdin ends the process, which commits its queued
			// audit records before it exits.
			if err := c.cs.Close(); err != nil {
				t.Logf("close: %v", err)
			}
			sc := e.local(t, "acme", "alice")
			// whoami ran twice here.
			calls := events(t, sc, audit.Filter{Kind: "tool.called"})
			if len(calls) != len(coreTools)+1 {
				t.Errorf("%d tool.called events, want %d", len(calls), len(coreTools)+1)
			}
			checkAuditExcept(t, sc, "lmstudio", sid, "whoami")
			if !strings.Contains(stderr.String(), "serving MCP on stdio") {
				t.Errorf("stderr has no logs: %q", stderr.String())
			}
		})
	}
}

// checkAuditExcept is checkAudit for a log where tool except ran twice.
func checkAuditExcept(t *testing.T, sc *tenant.Scope, clientName, sid, except string) {
	t.Helper()
	byTool := map[string]int{}
	for _, ev := range events(t, sc, audit.Filter{Kind: "tool.called"}) {
		byTool[ev.Attrs["tool"].(string)]++
		if ev.Attrs["client"] != clientName || ev.Attrs["outcome"] != "ok" || ev.Agent == "" {
			t.Errorf("tool.called %+v", ev)
		}
	}
	for _, name := range coreTools {
		want := 1
		if name == except {
			want = 2
		}
		if byTool[name] != want {
			t.Errorf("%s called %d times per the log, want %d", name, byTool[name], want)
		}
	}
	if n := len(events(t, sc, audit.Filter{Kind: "tool.called", Session: sid})); n != 3 {
		t.Errorf("%d tool calls under the session, want 3", n)
	}
}

// TestStdioOnlyProtocolOnStdout drives the process with raw lines,
// including garbage and failing calls, and checks that every byte on
// stdout belongs to a JSON-RPC message.
func TestStdioOnlyProtocolOnStdout(t *testing.T) {
	e := newStdioEnv(t)
	logFile := filepath.Join(t.TempDir(), "mcp.log")
	for _, withLogFile := range []bool{false, true} {
		args := []string{"--tenant", "acme"}
		if withLogFile {
			args = append(args, "--log-file", logFile)
		}
		cmd, stderr := e.command(t, nil, args...)
		stdin, stdout := testbin.StartPiped(t, cmd)
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		// Write everything, then read until every request is answered,
		// stdin open as a host keeps it while it waits.
		_, err := io.WriteString(stdin, strings.Join([]string{
			`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`,
			`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
			`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`,
			`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`,
			`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"note","arguments":{"text":""}}}`,
			`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"nope","arguments":{}}}`,
			`this is not json`,
			`{"jsonrpc":"2.0","id":6,"method":"ping"}`,
			`[1,2]`,
			`"a string"`,
			`{"jsonrpc":"2.0","id":7,"method":5}`,
			`{"jsonrpc":"2.0","id":8,"method":"ping"} trailing`,
			`{"jsonrpc":"2.0","id":9,"method":"ping"}   `,
			`{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"whoami","arguments":{}}}` + "\t",
		}, "\n")+"\n")
		if err != nil {
			t.Fatal(err)
		}
		ids := map[float64]bool{}
		unnamed := 0 // errors without an id: one per line that is not a request
		check := func(line string) {
			var msg struct {
				JSONRPC string          `json:"jsonrpc"`
				ID      any             `json:"id"`
				Result  json.RawMessage `json:"result"`
				Error   json.RawMessage `json:"error"`
			}
			if err := json.Unmarshal([]byte(line), &msg); err != nil || msg.JSONRPC != "2.0" || (msg.Result == nil && msg.Error == nil) {
				t.Fatalf("stdout line is not a JSON-RPC response: %q", line)
			}
			if id, ok := msg.ID.(float64); ok {
				ids[id] = true
			} else if msg.ID == nil && msg.Error != nil {
				unnamed++
			}
		}
		timeout := time.After(30 * time.Second)
		for len(ids) < 8 {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("stdout closed after responses %v\n%s", ids, stderr.String())
				}
				check(line)
			case <-timeout:
				cmd.Process.Kill()
				t.Fatalf("responses %v after 30s", ids)
			}
		}
		stdin.Close()
		for line := range lines {
			check(line)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
		// Every request with an id is answered under it; the five lines
		// that are not JSON-RPC requests (not JSON, an array, a string, a
		// method that is not a string, text after the object) each get an
		// error without one.
		for _, id := range []float64{1, 2, 3, 4, 5, 6, 9, 10} {
			if !ids[id] {
				t.Errorf("request %v not answered (answered: %v)", id, ids)
			}
		}
		if len(ids) != 8 || unnamed != 5 {
			t.Errorf("answered ids %v and %d errors without an id; want 8 and 5", ids, unnamed)
		}
		if withLogFile {
			b, _ := os.ReadFile(logFile)
			if !strings.Contains(string(b), "serving MCP on stdio") || stderr.Len() != 0 {
				t.Errorf("with --log-file: log %q, stderr %q", b, stderr.String())
			}
		} else if !strings.Contains(stderr.String(), "serving MCP on stdio") {
			t.Errorf("stderr %q", stderr.String())
		}
	}
}

func TestStdioIdentity(t *testing.T) {
	e := newStdioEnv(t)
	ctx := context.Background()
	if _, err := e.dir.CreateTenant(ctx, "tenant-b", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.dir.CreateUser(ctx, "tenant-b", "bob", ""); err != nil {
		t.Fatal(err)
	}
	secret, _, err := e.dir.IssueToken(ctx, "tenant-b", "bob", tenant.RoleMember, tenant.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// The token decides the tenant and user.
	cmd, _ := e.command(t, []string{"CODITECT_TOKEN=" + secret})
	c := connect(t, &mcp.CommandTransport{Command: cmd}, "claude-desktop", eraLegacy)
	if m, _, _ := c.call("whoami", map[string]any{}); m["tenant"] != "tenant-b" || m["user"] != "bob" || m["role"] != "member" {
		t.Errorf("with a token: whoami %v", m)
	}
	c.cs.Close()

	// Nothing set: tenant default and the OS user.
	cmd, _ = e.command(t, nil)
	c = connect(t, &mcp.CommandTransport{Command: cmd}, "cursor", eraModern)
	if m, _, _ := c.call("whoami", map[string]any{}); m["tenant"] != server.DefaultTenant || m["user"] != server.OSUser() || m["role"] != "admin" {
		t.Errorf("with nothing set: whoami %v", m)
	}
	c.cs.Close()

	// Refusals exit non-zero with a reason on stderr and nothing on stdout.
	for _, r := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"CODITECT_TOKEN=" + secret}, []string{"--tenant", "acme"}, "drop --tenant/--user"},
		{[]string{"CODITECT_TOKEN=cdt_forged"}, nil, "CODITECT_TOKEN"},
		{nil, []string{"--toolsets", "nope"}, `unknown toolset "nope"`},
		{nil, []string{"--tenant", strings.Repeat("t", 300)}, "tenant id of 300 bytes exceeds"},
	} {
		cmd, stderr := e.command(t, r.env, r.args...)
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		cmd.Stdin = strings.NewReader(initializeLine + "\n")
		err := cmd.Run()
		if err == nil || stdout.Len() != 0 || !strings.Contains(stderr.String(), r.want) {
			t.Errorf("%v %v: err %v, stdout %q, stderr %q; want a failure saying %q", r.env, r.args, err, stdout.String(), stderr.String(), r.want)
		}
	}
}

const initializeLine = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// TestStdioRevokedToken: a long-lived stdio server notices its token's
// revocation on the next call (in-process, rechecking on every call).
func TestStdioRevokedToken(t *testing.T) {
	e := newStdioEnv(t)
	ctx := testContext(t)
	admin := e.local(t, "acme", "admin")
	secret, tok, err := admin.IssueToken(ctx, "admin", tenant.RoleMember, tenant.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := server.ResolveStdio(ctx, e.dir, server.StdioIdentity{Token: secret, StoreURL: e.storeURL})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(e.dir, server.Options{Recheck: -1})
	if err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	served := make(chan error, 1)
	go func() { served <- srv.ServeStdio(ctx, sc, inR, outW) }()
	c := connect(t, &mcp.IOTransport{Reader: outR, Writer: inW}, "host", eraLegacy)
	if _, text, isErr := c.call("whoami", map[string]any{}); isErr {
		t.Fatal(text)
	}
	if err := admin.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, text, isErr := c.call("whoami", map[string]any{}); !isErr || !strings.Contains(text, "revoked") {
		t.Errorf("after revocation: isError=%v %q", isErr, text)
	}
	c.cs.Close()
	inW.Close()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("ServeStdio: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("ServeStdio did not return at EOF")
	}
}

// A host may write its requests and close stdin at once (a script piping
// into `coditect mcp`): the calls read before the end are run to their end
// and answered, and the process exits 0. A note among them is recorded.
func TestStdioAnswersCallsReadBeforeEOF(t *testing.T) {
	e := newStdioEnv(t)
	cmd, stderr := e.command(t, nil, "--tenant", "acme", "--user", "ada")
	cmd.Stdin = strings.NewReader(strings.Join([]string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"script","version":"1"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"note","arguments":{"text":"written just before EOF"}}}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`,
	}, "\n") + "\n")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil {
		t.Fatalf("coditect mcp: %v\n%s", err, stderr)
	}
	answered := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(stdout.String()), "\n") {
		var msg answerLine
		if err := json.Unmarshal([]byte(line), &msg); err != nil {
			t.Fatalf("stdout line %q: %v", line, err)
		}
		if msg.Error != nil || msg.Result.IsError {
			t.Errorf("request %s failed: %s", msg.ID, line)
		}
		answered[string(msg.ID)] = line
	}
	for _, id := range []string{"1", "2", "3"} {
		if answered[id] == "" {
			t.Errorf("request %v was not answered; stdout:\n%s\nstderr:\n%s", id, stdout.String(), stderr)
		}
	}
	page, err := e.local(t, "acme", "ada").Log().Query(context.Background(), audit.Query{Filter: audit.Filter{Kind: "note.added"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 1 || page.Events[0].Summary != "written just before EOF" {
		t.Errorf("notes in the log: %+v, want the one written before EOF", page.Events)
	}
}

// TestStdioOddIDRefused: a request whose id is neither a string nor a
// number is refused as Invalid Request and does not run (mcp-go ran one
// with an object, array or boolean id, and dropped one with a null id
// unanswered), while a notification sent with "id": null stays one and
// the lines after them are served.
func TestStdioOddIDRefused(t *testing.T) {
	call := func(id string) string {
		return `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`
	}
	got := newStdioEnv(t).answers(t, []string{
		initializeLine,
		`{"jsonrpc":"2.0","id":null,"method":"notifications/initialized"}`,
		call(`{"a":1}`),
		call(`[1]`),
		call(`true`),
		call(`null`),
		`{"jsonrpc":"2.0","\u0069d":false,"method":"ping"}`,
		call(`"w"`),
	}, "--tenant", "acme", "--user", "ada")
	refused := func(kind string) string {
		return `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"invalid request: the id of a request must be a string or a number, not ` + kind + `"}}`
	}
	want := []string{refused("an object"), refused("an array"), refused("a boolean"),
		refused("null (a notification has no id member at all)"), refused("a boolean")}
	if len(got) != 7 || !slices.Equal(got[1:6], want) || !strings.HasPrefix(got[6], `{"jsonrpc":"2.0","id":"w","result":{"content":[{"type":"text","text":"You are agent`) {
		t.Errorf("answers:\n%s\nwant the initialize's,\n%s\nand whoami's to id \"w\"", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestStdioBatchRefused: a JSON-RPC batch line is refused with a clear
// error; a line that only starts like one gets the parse error.
func TestStdioBatchRefused(t *testing.T) {
	got := newStdioEnv(t).answers(t, []string{
		initializeLine,
		`[{"jsonrpc":"2.0","id":3,"method":"ping"}]`,
		` []`,
		`[not json`,
	}, "--tenant", "acme", "--user", "ada")
	batch := `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"JSON-RPC batches are not supported (MCP removed them in 2025-06-18): send one message at a time"}}`
	want := []string{batch, batch, `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}`}
	if len(got) != 4 || !slices.Equal(got[1:], want) {
		t.Errorf("answers:\n%s\nwant the initialize's and\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
