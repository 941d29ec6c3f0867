package isolation_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The file system. Each tenant's files tools reach only the roots of its
// own projects: A, in a session of its own project, aims every files tool
// at B's root next to A's — by absolute path, file URI, project path
// ("@<B's project>/…"), ".." from A's root, and through a symbolic link in
// A's checkout that points at B's root — and at B's project by id and
// name. Nothing of B's may be read (B's files carry the marker, in their
// contents and in a name) or written (world.unchanged compares B's files
// with what was written), and A's own files must read, so that the attack
// reached the file system at all.

// fsAttacks are the paths A's files tools get, relative to A's root where
// a path is relative.
func (w *world) fsAttacks() []string {
	up, _ := filepath.Rel(w.rootA, w.rootB) // ../b-root
	b, pb := "@"+w.projB.ID, "@"+w.projA.ID
	out := []string{
		w.rootB, w.rootB + "/" + fileB, w.rootB + "/src", "file://" + w.rootB + "/" + fileB,
		up, up + "/" + fileB, up + "/src/main.go", up + "/src", "src/../" + up + "/" + fileB, "./" + up + "/./" + fileB,
		strings.Repeat("../", 16) + strings.TrimPrefix(w.rootB, "/") + "/" + fileB,
		"link-to-b", "link-to-b/" + fileB, "link-to-b/src", "link-to-b/src/main.go", "./link-to-b/../link-to-b/" + fileB,
		b, b + "/" + fileB, b + "/src/main.go", pb + "/" + up + "/" + fileB,
		"%2e%2e/b-root/" + fileB, `..\b-root\` + fileB, up + "/" + fileB + "\x00", "/proc/self/root" + w.rootB + "/" + fileB,
	}
	if w.few {
		return out[:8]
	}
	return out
}

// mcpFiles runs the files attack over cs, a connection with A's token.
func (w *world) mcpFiles(ctx context.Context, t reporter, cs *mcp.ClientSession) {
	t.Helper()
	call := func(name string, args map[string]any) (string, bool) {
		t.Helper()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("mcp: %v", err)
			}
			return err.Error(), false
		}
		b, _ := json.Marshal(res)
		return string(b), !res.IsError
	}
	check := func(name string, args map[string]any) (string, bool) {
		t.Helper()
		out, ok := call(name, args)
		if leak := w.leaks(string(mustJSON(args)), out); leak != "" {
			t.Errorf("mcp: files: %s %s: shows B's %q: %s", name, clip(string(mustJSON(args))), leak, clip(out))
		}
		return out, ok
	}
	// Sessions and leases in B's project, or in B's root, are refused.
	for _, args := range []map[string]any{
		{"title": "t", "project": w.projB.ID}, {"title": "t", "project": w.projB.Name},
		{"title": "t", "workspace": w.rootB}, {"title": "t", "workspace": w.rootB + "/src"},
		{"title": "t", "workspace": w.rootA + "/link-to-b"}, {"title": "t", "project": "alpha", "workspace": w.rootB},
		{"title": "t", "workspace": filepath.Dir(w.rootA)},
	} {
		out, ok := check("session_start", args)
		if !ok {
			continue
		}
		t.Errorf("mcp: files: session_start %s: started a session in B's project or root: %s", clip(string(mustJSON(args))), clip(out))
		// What such a session reaches.
		if sid := sessionID(out); sid != "" {
			check("fs_read", map[string]any{"session_id": sid, "path": fileB})
			check("fs_list", map[string]any{"session_id": sid})
		}
	}
	for _, args := range []map[string]any{
		{"project": w.projB.ID, "resource": fileB}, {"project": w.projB.Name, "resource": "src/*.go"},
		{"session_id": w.idsB[0], "resource": fileB}, {"resource": "@" + w.projB.ID + "/" + fileB},
	} {
		check("lease_acquire", args)
		check("lease_release", args)
	}
	// A's own session, in its project: A's files read; B's do not.
	out, ok := call("session_start", map[string]any{"title": "files attack", "project": "alpha"})
	sid := sessionID(out)
	if !ok || sid == "" {
		t.Errorf("mcp: files: A could not start a session in its own project, so the files attack reached nothing: %s", clip(out))
		return
	}
	if out, ok := call("fs_read", map[string]any{"session_id": sid, "path": "a.txt"}); !ok || !strings.Contains(out, "A's file") {
		t.Errorf("mcp: files: A cannot read its own a.txt, so the files attack proves nothing: %s", clip(out))
	}
	if out, ok := call("fs_list", map[string]any{"session_id": sid}); !ok || !strings.Contains(out, "a.txt") {
		t.Errorf("mcp: files: A cannot list its own root, so the files attack proves nothing: %s", clip(out))
	}
	// Reads first, then edits, then writes: a write that replaced A's
	// link would spoil the attacks through it.
	for _, p := range w.fsAttacks() {
		check("fs_read", map[string]any{"session_id": sid, "path": p})
		check("fs_list", map[string]any{"session_id": sid, "path": p})
		check("lease_acquire", map[string]any{"session_id": sid, "resource": p})
	}
	for _, p := range w.fsAttacks() {
		check("fs_edit", map[string]any{"session_id": sid, "path": p, "search": "the secret of B", "replace": "A was here"})
	}
	for _, p := range w.fsAttacks() {
		check("fs_write", map[string]any{"session_id": sid, "path": p, "content": "written by A\n"})
	}
}

// sessionID is the session id of a session_start result.
func sessionID(result string) string {
	var s struct {
		StructuredContent struct {
			SessionID string `json:"session_id"`
		} `json:"structuredContent"`
	}
	_ = json.Unmarshal([]byte(result), &s)
	return s.StructuredContent.SessionID
}
