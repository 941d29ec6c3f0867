package faults_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/internal/testbin"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/project"
)

// mcpCommand is `coditect mcp` on storeURL as t1/ada, serving directly
// (--core off): the tests using it kill the process that writes the store
// and keeps the spool (core_kill_test.go has the local core's variants).
func mcpCommand(t *testing.T, storeURL string) (*exec.Cmd, *syncBuffer) {
	cmd := exec.Command(testbin.Coditect(t), "mcp", "--core", "off", "--store", storeURL, "--tenant", "t1", "--user", "ada")
	cmd.Env = append(os.Environ(), "CODITECT_TOKEN=", "XDG_DATA_HOME="+t.TempDir())
	var stderr syncBuffer
	cmd.Stderr = &stderr
	return cmd, &stderr
}

// TestMCPSIGKILLMidTraffic kills `coditect mcp` while two goroutines of
// its host call tools: every acknowledged note (a write, committed before
// the answer) is in the log, and so is the tool.called record of every
// acknowledged read-only call: it was in the process's write-ahead spool
// before the answer, and the next process on the store recovers it; that
// new process works.
func TestMCPSIGKILLMidTraffic(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "coditect.db")
	storeURL := sqliteURL(dbPath)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd, stderr := mcpCommand(t, storeURL)
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "lmstudio", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, stderr)
	}
	defer cs.Close()

	killAfter := 40
	if !testing.Short() {
		killAfter = 400
	}
	var (
		mu         sync.Mutex
		acked      []string
		reads      int
		killed     = make(chan struct{})
		killOnce   sync.Once
		wg         sync.WaitGroup
		unexpected []error
	)
	kill := func() {
		killOnce.Do(func() {
			close(killed)
			_ = cmd.Process.Signal(syscall.SIGKILL)
		})
	}
	fail := func(err error) {
		select {
		case <-killed:
		default:
			mu.Lock()
			unexpected = append(unexpected, err)
			mu.Unlock()
			kill()
		}
	}
	wg.Add(2)
	go func() { // writer
		defer wg.Done()
		for n := 0; ; n++ {
			id, err := note(ctx, cs, fmt.Sprintf("note %d", n))
			if err != nil {
				fail(err)
				return
			}
			mu.Lock()
			acked = append(acked, id)
			done := len(acked) >= killAfter
			mu.Unlock()
			if done {
				kill()
			}
		}
	}()
	go func() { // reader
		defer wg.Done()
		for {
			r, err := callTool(ctx, cs, "whoami", map[string]any{})
			if err != nil || r.isError {
				if err == nil {
					err = fmt.Errorf("whoami: %s", r.text)
				}
				fail(err)
				return
			}
			mu.Lock()
			reads++
			mu.Unlock()
		}
	}()
	wg.Wait()
	if len(unexpected) > 0 {
		t.Fatalf("calls failed before the kill: %v\n%s", unexpected, stderr)
	}

	sc, _ := localScope(t, storeURL, "t1", "ada")
	notes := allEvents(t, sc, audit.Filter{Kind: "note.added"})
	inLog := map[string]bool{}
	for _, ev := range notes {
		inLog[ev.ID] = true
	}
	for _, id := range acked {
		if !inLog[id] {
			t.Errorf("acknowledged note %s lost by SIGKILL of coditect mcp", id)
		}
	}
	// A new process on the same store works, and sees the old notes.
	cmd2, stderr2 := mcpCommand(t, storeURL)
	cs2, err := mcp.NewClient(&mcp.Implementation{Name: "lmstudio", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd2}, nil)
	if err != nil {
		t.Fatalf("a new coditect mcp after SIGKILL: %v\n%s", err, stderr2)
	}
	defer cs2.Close()
	id, err := note(ctx, cs2, "after the kill")
	if err != nil {
		t.Fatalf("note after the kill: %v\n%s", err, stderr2)
	}
	r, err := callTool(ctx, cs2, "audit_query", map[string]any{"kind": "note.added", "limit": 50})
	if err != nil || r.isError || !strings.Contains(r.text+fmt.Sprint(r.structured), id) {
		t.Fatalf("audit_query after the kill: %v %+v", err, r)
	}
	// Closing stdin ends the process, which commits its queued records:
	// then the store is quiet for the consistency check.
	_ = cs2.Close()
	_ = cmd2.Wait()

	// The new process recovered, before serving, the records the killed
	// one had spooled but not committed: every acknowledged whoami has its
	// record. One more may have been in flight at the kill (spooled, not
	// answered).
	calls := 0
	for _, ev := range allEvents(t, sc, audit.Filter{Kind: "tool.called"}) {
		if ev.Attrs["tool"] == "whoami" {
			calls++
		}
	}
	if calls < reads || calls > reads+1 {
		t.Errorf("whoami: %d calls acknowledged, %d tool.called records; want every acknowledged call's record (and at most one more)", reads, calls)
	}
	t.Logf("%d notes acknowledged, all logged; whoami: %d acknowledged, %d tool.called records (%d recovered from the spool)",
		len(acked), reads, calls, recovered(stderr2.String()))
	if spools, _ := filepath.Glob(dbPath + "-spool/*.spool"); len(spools) != 0 {
		t.Errorf("spool files left after recovery and a clean exit: %v", spools)
	}
	checkStore(t, sc, dbPath)
}

// recovered returns the number of records a coditect mcp's log says it
// recovered from spools at start (0 when it says nothing).
func recovered(log string) int {
	i := strings.Index(log, "recovered audit records of killed processes")
	if i < 0 {
		return 0
	}
	var n int
	if j := strings.Index(log[i:], "records="); j >= 0 {
		fmt.Sscanf(log[i+j+len("records="):], "%d", &n)
	}
	return n
}

// ideSession is a `coditect ide` process driven with raw LSP frames.
type ideSession struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	frames chan map[string]any
	stderr *syncBuffer
}

func startIDE(t *testing.T, storeURL, ws string) *ideSession {
	t.Helper()
	cmd := exec.Command(testbin.Coditect(t), "ide", "--store", storeURL, "--tenant", "t1", "--user", "ada")
	cmd.Env = append(os.Environ(), "CODITECT_TOKEN=", "XDG_DATA_HOME="+t.TempDir())
	return spawnIDE(t, cmd, ws, nil)
}

// spawnIDE starts cmd, a `coditect ide`, in ws (unless "") and reads its
// frames into the session's channel; a window/showMessage also goes to
// messages when it is not nil and has room.
func spawnIDE(t *testing.T, cmd *exec.Cmd, ws string, messages chan map[string]any) *ideSession {
	t.Helper()
	cmd.Dir = ws
	p := &ideSession{t: t, cmd: cmd, frames: make(chan map[string]any, 1024), stderr: &syncBuffer{}}
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
			if err != nil {
				return
			}
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
			body := make([]byte, n)
			if _, err := io.ReadFull(r, body); err != nil {
				return
			}
			var m map[string]any
			if json.Unmarshal(body, &m) != nil {
				continue
			}
			if messages != nil && m["method"] == "window/showMessage" {
				select {
				case messages <- m:
				default: // the test reads few; the rest are not its concern
				}
			}
			p.frames <- m
		}
	}()
	return p
}

func (p *ideSession) send(msg map[string]any) {
	p.t.Helper()
	msg["jsonrpc"] = "2.0"
	b, _ := json.Marshal(msg)
	if _, err := fmt.Fprintf(p.stdin, "Content-Length: %d\r\n\r\n%s", len(b), b); err != nil {
		p.t.Fatalf("writing to coditect ide: %v\n%s", err, p.stderr)
	}
}

// request sends a request and returns its response.
func (p *ideSession) request(id int, method string, params any) map[string]any {
	p.t.Helper()
	p.send(map[string]any{"id": id, "method": method, "params": params})
	deadline := time.After(60 * time.Second)
	for {
		select {
		case m, ok := <-p.frames:
			if !ok {
				p.t.Fatalf("coditect ide's stdout ended\n%s", p.stderr)
			}
			if _, isReq := m["method"]; !isReq && m["id"] == float64(id) {
				return m
			}
		case <-deadline:
			p.t.Fatalf("no answer to %s\n%s", method, p.stderr)
		}
	}
}

func fileURI(p string) string { return (&url.URL{Scheme: "file", Path: p}).String() }

// TestIDESIGKILLMidSession kills `coditect ide` while the human has
// unsaved edits: the events it acknowledged are logged, its unsaved-edit
// mark stops counting at its expiry (so agents are not blocked forever)
// and the sweeper drops it, and a new process on the same store works.
func TestIDESIGKILLMidSession(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "coditect.db")
	storeURL := sqliteURL(dbPath)
	ws, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(ws, "main.go")
	if err := os.WriteFile(file, []byte("package main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startIDE(t, storeURL, ws)
	if r := p.request(1, "initialize", map[string]any{"processId": nil, "rootUri": fileURI(ws), "capabilities": map[string]any{}}); r["result"] == nil {
		t.Fatalf("initialize: %v", r)
	}
	p.send(map[string]any{"method": "initialized", "params": map[string]any{}})
	p.send(map[string]any{"method": "textDocument/didOpen", "params": map[string]any{"textDocument": map[string]any{"uri": fileURI(file), "languageId": "go", "version": 1, "text": "package main\n"}}})
	p.send(map[string]any{"method": "textDocument/didChange", "params": map[string]any{"textDocument": map[string]any{"uri": fileURI(file), "version": 2},
		"contentChanges": []any{map[string]any{"text": "package main\n\n// typing\n"}}}})
	st := p.request(2, "workspace/executeCommand", map[string]any{"command": "coditect.status"})
	if res, _ := st["result"].(map[string]any); res["unsaved"] != float64(1) {
		t.Fatalf("status before the kill: %v", st)
	}
	// The status answer came after the open and the edit were handled.
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
	killedAt := time.Now().UTC()

	sc, store := localScope(t, storeURL, "t1", "ada")
	ctx := context.Background()
	// The editor registered its workspace folder as a project: marks and
	// events name the file by its project path.
	pl, err := project.Resolve(ctx, sc, file)
	if err != nil {
		t.Fatal(err)
	}
	opened := audit.Filter{Kind: "ide.opened", Project: pl.Project.ID, Path: pl.Rel}
	if evs := allEvents(t, sc, opened); len(evs) != 1 {
		t.Errorf("%d ide.opened events for the file after SIGKILL, want 1", len(evs))
	}
	key := pl.File().String()
	// The dead editor's mark still counts now — the edits may be real —
	// but only until its expiry, at most DefaultEditingTTL after the kill.
	var eds []attrib.Editing
	if err := store.View(ctx, func(tx kv.ReadTx) error {
		var err error
		eds, err = attrib.Editors(tx, sc, key, killedAt)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(eds) != 1 {
		t.Fatalf("%d live marks right after the kill, want the dead editor's 1", len(eds))
	}
	if limit := killedAt.Add(attrib.DefaultEditingTTL); eds[0].Expires.After(limit) {
		t.Fatalf("the dead editor's mark expires at %s, after %s: agents would wait longer than the TTL", eds[0].Expires, limit)
	}
	after := eds[0].Expires.Add(time.Millisecond)
	if err := store.View(ctx, func(tx kv.ReadTx) error { return attrib.CheckNoUnsavedEdits(tx, sc, key, after) }); err != nil {
		t.Fatalf("after the dead editor's mark expired, agents are still refused: %v", err)
	}
	n, err := attrib.SweepEditing(ctx, sc, after)
	if err != nil || n != 1 {
		t.Fatalf("sweeping the expired mark: %d, %v", n, err)
	}

	// A new editor process on the same store works, and marks afresh.
	p2 := startIDE(t, storeURL, ws)
	if r := p2.request(1, "initialize", map[string]any{"processId": nil, "rootUri": fileURI(ws), "capabilities": map[string]any{}}); r["result"] == nil {
		t.Fatalf("initialize after the kill: %v", r)
	}
	p2.send(map[string]any{"method": "initialized", "params": map[string]any{}})
	p2.send(map[string]any{"method": "textDocument/didOpen", "params": map[string]any{"textDocument": map[string]any{"uri": fileURI(file), "languageId": "go", "version": 1, "text": "package main\n"}}})
	p2.send(map[string]any{"method": "textDocument/didChange", "params": map[string]any{"textDocument": map[string]any{"uri": fileURI(file), "version": 2},
		"contentChanges": []any{map[string]any{"text": "package main\n\n// again\n"}}}})
	st = p2.request(2, "workspace/executeCommand", map[string]any{"command": "coditect.status"})
	if res, _ := st["result"].(map[string]any); res["unsaved"] != float64(1) {
		t.Fatalf("status in the new process: %v", st)
	}
	if err := store.View(ctx, func(tx kv.ReadTx) error { return attrib.CheckNoUnsavedEdits(tx, sc, key, time.Now()) }); err == nil {
		t.Fatal("the new editor's unsaved edits do not protect the file")
	}
	if evs := allEvents(t, sc, opened); len(evs) != 2 {
		t.Errorf("%d ide.opened events after the second editor opened the file, want 2", len(evs))
	}
	p2.request(3, "shutdown", nil)
	p2.send(map[string]any{"method": "exit"})
	_ = p2.cmd.Wait()
	checkStore(t, sc, dbPath)
}
