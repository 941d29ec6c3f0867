package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/tools"
)

// filesAgents starts two `coditect mcp` processes of one user with every
// toolset, as agents alpha and beta, and a session of alpha's in ws that
// beta joined.
func filesAgents(t *testing.T, e *stdioEnv, ws string) (alpha, beta *client, sid string) {
	t.Helper()
	start := func(name string) *client {
		cmd, _ := e.command(t, nil, "--tenant", "acme", "--user", "alice", "--agent", name, "--toolsets", "all")
		return connect(t, &mcp.CommandTransport{Command: cmd}, name, eraModern)
	}
	alpha, beta = start("alpha"), start("beta")
	m, _ := alpha.ok("session_start", map[string]any{"title": "files", "workspace": ws})
	sid = m["session_id"].(string)
	beta.ok("session_join", map[string]any{"session_id": sid})
	return alpha, beta, sid
}

// TestFilesReadRangesE2E: through the real binary and the official SDK,
// fs_read of a file over the default budget returns its first 2,000 lines
// and says where to continue; reading on from there yields the file;
// a range returns exactly its lines, numbered in the text and raw in the
// structured content, with the hash of the whole file.
func TestFilesReadRangesE2E(t *testing.T) {
	e := newStdioEnv(t)
	ws := t.TempDir()
	var b strings.Builder
	for i := 1; i <= 5000; i++ {
		fmt.Fprintf(&b, "func f%d() int { return %d }\n", i, i)
	}
	whole := b.String()
	if err := os.WriteFile(filepath.Join(ws, "big.go"), []byte(whole), 0o644); err != nil {
		t.Fatal(err)
	}
	hash := attrib.Hash([]byte(whole))
	alpha, _, sid := filesAgents(t, e, ws)
	args := func(kv ...any) map[string]any {
		m := map[string]any{"session_id": sid, "path": "big.go"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}

	m, text := alpha.ok("fs_read", args())
	if m["start_line"] != float64(1) || m["end_line"] != float64(tools.DefaultReadLines) || m["truncated"] != true ||
		m["next_line"] != float64(tools.DefaultReadLines+1) || m["total_lines"] != float64(5000) || m["hash"] != hash {
		t.Errorf("default read: %v", clipMap(m))
	}
	if !strings.Contains(text, "truncated — continue at line 2001") || !strings.Contains(text, " 2000│ func f2000()") {
		t.Errorf("default read text ends %q", text[max(0, len(text)-200):])
	}
	if len(text) > 2*tools.DefaultReadBytes {
		t.Errorf("the text block is %d bytes", len(text))
	}

	var got strings.Builder
	reads := 0
	for start := 1; ; reads++ {
		m, _ := alpha.ok("fs_read", args("start_line", start))
		if len(m["content"].(string)) > tools.DefaultReadBytes || m["hash"] != hash {
			t.Fatalf("from %d: %d bytes, hash %v", start, len(m["content"].(string)), m["hash"])
		}
		got.WriteString(m["content"].(string))
		if m["truncated"] != true {
			break
		}
		start = int(m["next_line"].(float64))
	}
	if got.String() != whole {
		t.Errorf("reading on from next_line did not give the file back (%d of %d bytes)", got.Len(), len(whole))
	}
	t.Logf("a %d-byte, 5000-line file read whole in %d calls", len(whole), reads+1)

	m, text = alpha.ok("fs_read", args("start_line", 2500, "end_line", 2502))
	want := "func f2500() int { return 2500 }\nfunc f2501() int { return 2501 }\nfunc f2502() int { return 2502 }\n"
	if m["content"] != want || m["truncated"] != false || m["hash"] != hash {
		t.Errorf("lines 2500-2502: %v", clipMap(m))
	}
	if !strings.Contains(text, "lines 2500–2502 of 5000") || !strings.Contains(text, " 2501│ func f2501() int { return 2501 }\n") {
		t.Errorf("lines 2500-2502 text:\n%s", text)
	}
	alpha.fail("fs_read", args("start_line", 5001), "past the end", "5000 lines")
}

// clipMap shortens a structured result's content for a log line.
func clipMap(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		if s, ok := v.(string); ok && len(s) > 80 {
			v = s[:80] + "…"
		}
		out[k] = v
	}
	return out
}

// TestFilesMultiEditE2E: through the real binary, alpha makes two
// replacements in one fs_edit, copied from a ranged read; an edit whose
// replacements overlap changes nothing; beta, a second process of the
// same user, is refused on the file alpha holds, and its refusal leaves
// it no lease.
func TestFilesMultiEditE2E(t *testing.T) {
	e := newStdioEnv(t)
	ws := t.TempDir()
	const src = "package auth\n\nfunc redirect() int {\n\treturn 301\n}\n\nfunc target() string {\n\treturn \"/login\"\n}\n"
	if err := os.WriteFile(filepath.Join(ws, "auth.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	alpha, beta, sid := filesAgents(t, e, ws)
	file := func(kv ...any) map[string]any {
		m := map[string]any{"session_id": sid, "path": "auth.go"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	m, _ := alpha.ok("fs_read", file("start_line", 3, "end_line", 8))
	lines := strings.SplitAfter(m["content"].(string), "\n")
	m, text := alpha.ok("fs_edit", file("edits", []map[string]any{
		{"search": lines[1], "replace": "\treturn 302\n"},
		{"search": lines[5], "replace": "\treturn \"/signin\"\n"},
	}))
	want := strings.NewReplacer("return 301", "return 302", `"/login"`, `"/signin"`).Replace(src)
	if got, _ := os.ReadFile(filepath.Join(ws, "auth.go")); string(got) != want || m["edits"] != float64(2) || m["lease_taken"] != true ||
		!strings.Contains(text, "Made 2 replacements in auth.go") {
		t.Fatalf("after two replacements: %q\n%v\n%s", got, m, text)
	}
	alpha.fail("fs_edit", file("edits", []map[string]any{
		{"search": "func redirect() int {\n\treturn 302", "replace": "x"},
		{"search": "return 302\n}", "replace": "y"},
	}), "edits 1 and 2 overlap", "nothing was changed")
	alpha.fail("fs_edit", file("edits", []map[string]any{
		{"search": "return 302", "replace": "return 303"},
		{"search": "no such text", "replace": "y"},
	}), "edit 2 does not occur", "nothing was changed")
	if got, _ := os.ReadFile(filepath.Join(ws, "auth.go")); string(got) != want {
		t.Fatalf("refused edits changed the file: %q", got)
	}

	alphaID, betaID := alpha.agentID(), beta.agentID()
	beta.fail("fs_edit", file("search", "return 302", "replace", "return 307"), "is taken", alphaID)
	beta.fail("fs_delete", file(), "is taken", alphaID)
	beta.fail("fs_move", file("to", "login.go"), "is taken", alphaID)
	hs, err := lease.List(context.Background(), e.local(t, "acme", "alice"), betaID)
	if err != nil || len(hs) != 0 {
		t.Errorf("beta's leases after its refusals: %+v, %v", hs, err)
	}
	if got, _ := os.ReadFile(filepath.Join(ws, "auth.go")); string(got) != want {
		t.Errorf("beta changed the file: %q", got)
	}
}

// TestFilesMoveDeleteWatchedE2E: with `coditect watch` running on the
// workspace, an agent's fs_move and fs_delete reach the log as
// file.renamed and file.deleted attributed to the agent with certainty,
// in its session.
func TestFilesMoveDeleteWatchedE2E(t *testing.T) {
	e := newStdioEnv(t)
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "old.go"), []byte("package old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	alpha, _, sid := filesAgents(t, e, ws)
	alphaID := alpha.agentID()

	ctx, cancel := context.WithTimeout(testContext(t), 45*time.Second)
	defer cancel()
	watch := exec.CommandContext(ctx, coditectBinary(t), "watch", ws, "--tenant", "acme", "--as", "alice", "--format", "json", "--window", "20ms", "--log-level", "warn")
	watch.Env = append(os.Environ(), "CODITECT_STORE="+e.storeURL, "CODITECT_TOKEN=", "XDG_DATA_HOME="+e.data)
	out, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	watch.Stderr = &stderr
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = watch.Process.Kill(); _ = watch.Wait() }()
	changes := make(chan map[string]any, 64)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				changes <- m
			}
		}
		close(changes)
	}()
	next := func(kind, rel string) map[string]any {
		t.Helper()
		for {
			select {
			case c, ok := <-changes:
				if !ok {
					t.Fatalf("the watcher ended\n%s", stderr.String())
				}
				if c["kind"] == kind && c["rel"] == rel {
					return c
				}
			case <-ctx.Done():
				t.Fatalf("no %s %s from the watcher\n%s", kind, rel, stderr.String())
			}
		}
	}
	// The watcher is ready once it reports a change made after it started.
	for i := 0; ; i++ {
		if err := os.WriteFile(filepath.Join(ws, "probe.txt"), []byte(strconv.Itoa(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-changes:
			if c["rel"] == "probe.txt" {
				goto ready
			}
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("the watcher never reported\n%s", stderr.String())
		}
	}
ready:
	check := func(c map[string]any, evidence string) {
		t.Helper()
		a, _ := c["attribution"].(map[string]any)
		if a["actor"] != "agent" || a["agent_id"] != alphaID || a["confidence"] != float64(1) ||
			!strings.HasPrefix(fmt.Sprint(a["evidence"]), evidence+":") || c["session"] != sid {
			t.Errorf("%s %s attributed %v in session %v, want agent %s by %s in %s", c["kind"], c["rel"], a, c["session"], alphaID, evidence, sid)
		}
	}
	alpha.ok("fs_move", map[string]any{"session_id": sid, "path": "old.go", "to": "pkg/new.go"})
	check(next("file.renamed", "pkg/new.go"), "fs_write")
	alpha.ok("fs_delete", map[string]any{"session_id": sid, "path": "pkg/new.go"})
	check(next("file.deleted", "pkg/new.go"), "fs_delete")
}
