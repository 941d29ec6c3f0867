// Package faults_test injects faults into real coditect processes — the
// daemon, `coditect mcp`, `coditect ide` — and into the store under them
// (killed processes, a store locked by another program, a full disk, a
// flood of connections), and checks after each that nothing acknowledged
// is lost and that everything recovers. It holds only tests; faults of
// one layer (the watcher, the clock) are tested beside that layer.
package faults_test

import (
	"bufio"
	"context"
	"database/sql"
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

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	_ "modernc.org/sqlite" // the holdlock role's plain connection

	"github.com/coditect/coditect/internal/testbin"
	"github.com/coditect/coditect/server/servertest"
	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
	"github.com/coditect/coditect/webview"
)

// roleEnv names a child role: the test binary re-executed to play another
// program (a plain SQLite client holding the store's lock).
const roleEnv = "CODITECT_FAULTS_ROLE"

func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == "holdlock" {
		if err := holdLock(os.Args[len(os.Args)-1]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	testbin.Main(m)
}

// holdLock takes the store's write lock through a plain SQLite connection
// (another program's long transaction), says "locked" and keeps it until
// it is killed or its stdin closes, then rolls back.
func holdLock(path string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO kv(key, value) VALUES (x'00', x'00')"); err != nil {
		return err
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin)
	_, err = conn.ExecContext(ctx, "ROLLBACK")
	return err
}

// lockHolder is a running holdlock child.
type lockHolder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startLockHolder starts a child that holds the store's write lock and
// returns once it holds it.
func startLockHolder(t *testing.T, dbPath string) *lockHolder {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", dbPath)
	cmd.Env = append(os.Environ(), roleEnv+"=holdlock")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &lockHolder{cmd: cmd, stdin: stdin}
	t.Cleanup(func() { h.release() })
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Scan()
		line <- sc.Text()
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case l := <-line:
		if l != "locked" {
			t.Fatalf("lock holder said %q; stderr: %s", l, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("lock holder never took the lock; stderr: %s", stderr.String())
	}
	return h
}

// release ends the holder's transaction (it rolls back) and waits for it.
func (h *lockHolder) release() {
	if h.cmd.ProcessState != nil {
		return
	}
	h.stdin.Close()
	done := make(chan struct{})
	go func() { _ = h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = h.cmd.Process.Kill()
		<-done
	}
}

// syncBuffer is a strings.Builder safe for a process's writes and the
// test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// daemon is a running `coditect serve`.
type daemon struct {
	cmd    *exec.Cmd
	url    string // http://127.0.0.1:PORT
	addr   string // 127.0.0.1:PORT
	token  string // the login token, on a first start
	stderr *syncBuffer
	exited chan struct{}
}

var urlRE = regexp.MustCompile(`http://(127\.0\.0\.1:\d+)/(#token=(\S+))?`)

// startDaemon starts `coditect serve` on storeURL at addr and returns once
// it prints its URL (it does so once it serves).
func startDaemon(t *testing.T, storeURL, addr string, args ...string) *daemon {
	t.Helper()
	cmd := exec.Command(testbin.Coditect(t), append([]string{"serve", "--addr", addr, "--store", storeURL, "--log-level", "warn"}, args...)...)
	cmd.Env = append(os.Environ(), "CODITECT_TOKEN=", "XDG_DATA_HOME="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() { d.kill() })
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := urlRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case m := <-found:
		d.addr, d.token = m[1], m[3]
		d.url = "http://" + d.addr
	case <-d.exited:
		t.Fatalf("serve exited before serving; stderr:\n%s", d.stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("serve printed no URL; stderr:\n%s", d.stderr)
	}
	return d
}

// kill sends SIGKILL and waits for the process to be gone.
func (d *daemon) kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
}

func sqliteURL(path string) string { return "sqlite://" + filepath.ToSlash(path) }

// openScope opens the store as a separate client (as a test inspecting it
// from outside the daemon) and returns the scope of a token.
func openScope(t *testing.T, storeURL, secret string) *tenant.Scope {
	t.Helper()
	st, err := storage.Open(context.Background(), storeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sc, err := tenant.NewDirectory(st, "faults-test").Authenticate(context.Background(), secret)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// localScope opens the store and returns a local user's scope in ten.
func localScope(t *testing.T, storeURL, ten, user string) (*tenant.Scope, kv.Store) {
	t.Helper()
	st, err := storage.Open(context.Background(), storeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sc, err := tenant.NewDirectory(st, "faults-test").Local(context.Background(), ten, user)
	if err != nil {
		t.Fatal(err)
	}
	return sc, st
}

// allEvents reads a tenant's whole log in order.
func allEvents(t *testing.T, sc *tenant.Scope, f audit.Filter) []audit.Event {
	t.Helper()
	var out []audit.Event
	q := audit.Query{Filter: f, Limit: audit.MaxLimit}
	for {
		p, err := sc.Log().Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Events...)
		if p.Next == "" {
			return out
		}
		q.Cursor = p.Next
	}
}

// connectHTTP connects an official-SDK MCP client to the daemon's /mcp.
func connectHTTP(ctx context.Context, d *daemon, secret, name string) (*mcp.ClientSession, error) {
	c := mcp.NewClient(&mcp.Implementation{Name: name, Version: "1"}, nil)
	return c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: d.url + "/mcp", HTTPClient: servertest.BearerClient(secret), MaxRetries: -1}, nil)
}

// callResult is a tool call's outcome as a model sees it.
type callResult struct {
	structured map[string]any
	text       string
	isError    bool
}

func callTool(ctx context.Context, cs *mcp.ClientSession, name string, args map[string]any) (callResult, error) {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return callResult{}, err
	}
	var r callResult
	r.isError = res.IsError
	r.structured, _ = res.StructuredContent.(map[string]any)
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			r.text += tc.Text
		}
	}
	return r, nil
}

// note records a note and returns its event id: an acknowledged write.
func note(ctx context.Context, cs *mcp.ClientSession, text string) (string, error) {
	r, err := callTool(ctx, cs, "note", map[string]any{"text": text})
	if err != nil {
		return "", err
	}
	if r.isError {
		return "", fmt.Errorf("note: tool error: %s", r.text)
	}
	id, _ := r.structured["event_id"].(string)
	if id == "" {
		return "", fmt.Errorf("note: no event_id in %v", r.structured)
	}
	return id, nil
}

// feedClient is a dashboard's WebSocket feed subscription.
type feedClient struct {
	c *websocket.Conn
}

func dialFeed(ctx context.Context, d *daemon, secret, cursor string, f webview.FeedFilter) (*feedClient, error) {
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(d.url, "http")+"/api/v1/feed", nil)
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(8 << 20)
	if err := wsjson.Write(ctx, c, webview.Subscription{Type: "subscribe", Token: secret, Cursor: cursor, Filter: f}); err != nil {
		c.CloseNow()
		return nil, err
	}
	var m webview.FeedMessage
	if err := wsjson.Read(ctx, c, &m); err != nil {
		c.CloseNow()
		return nil, err
	}
	if m.Type != "subscribed" {
		c.CloseNow()
		return nil, fmt.Errorf("feed answered %+v, want subscribed", m)
	}
	return &feedClient{c: c}, nil
}

// read returns the next batch of events.
func (f *feedClient) read(ctx context.Context) ([]audit.Event, error) {
	for {
		var m webview.FeedMessage
		if err := wsjson.Read(ctx, f.c, &m); err != nil {
			return nil, err
		}
		if m.Type == "events" {
			return m.Events, nil
		}
	}
}

// checkSequence checks that got is exactly want's ids, in order: no gap,
// no duplicate, nothing reordered.
func checkSequence(t *testing.T, what string, got []string, want []audit.Event) {
	t.Helper()
	seen := map[string]int{}
	for i, id := range got {
		if j, dup := seen[id]; dup {
			t.Fatalf("%s: event %s delivered twice (positions %d and %d)", what, id, j, i)
		}
		seen[id] = i
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d events delivered, the log holds %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i].ID {
			t.Fatalf("%s: position %d is %s, the log's is %s (gap or reorder)", what, i, got[i], want[i].ID)
		}
	}
}

// checkStore checks the SQLite file's integrity through a plain
// connection, and the audit log's index consistency through the layer.
func checkStore(t *testing.T, sc *tenant.Scope, dbPath string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check: %q, %v", res, err)
	}
	rep, err := sc.Log().Verify(context.Background())
	if err != nil {
		t.Fatalf("audit verify: %v", err)
	}
	if !rep.OK() {
		t.Fatalf("audit verify: %+v", rep)
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// stop sends SIGTERM and waits for the daemon to exit.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop on SIGTERM; stderr:\n%s", d.stderr)
	}
}
