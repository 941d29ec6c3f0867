package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/internal/testbin"
)

// nvimEvent is a line ide/testdata/nvim_bridge.lua prints.
type nvimEvent struct {
	Event        string   `json:"event"`
	Error        string   `json:"error"`
	Version      string   `json:"version"`
	Current      string   `json:"current"`
	ShowDocument bool     `json:"showDocument"`
	Type         int      `json:"type"`
	Message      string   `json:"message"`
	Actions      []string `json:"actions"`
	URI          string   `json:"uri"`
	TakeFocus    *bool    `json:"takeFocus"`
	Line         *int     `json:"line"`
	Handler      string   `json:"handler"`
	Bufname      string   `json:"bufname"`
	Loaded       bool     `json:"loaded"`
	Listed       bool     `json:"listed"`
	Code         *int     `json:"code"`
}

// startNeovim runs Neovim headless with nvim_bridge.lua as ada's editor of
// ws (main.go current, util.go open too) and returns its events.
func startNeovim(t *testing.T, ctx context.Context, env []string, bin, store, ws, showDoc string) (<-chan nvimEvent, *exec.Cmd) {
	t.Helper()
	nvim, err := exec.LookPath("nvim")
	if err != nil {
		skipOutsideCI(t, "nvim is not installed (ide/vscode/setup.sh installs Debian's neovim)")
	}
	script := filepath.Join(testbin.Root(), "ide", "testdata", "nvim_bridge.lua")
	cmd := exec.CommandContext(ctx, nvim, "--headless", "-u", "NONE", "-i", "NONE", "-n", filepath.Join(ws, "main.go"), "-c", "luafile "+script)
	cmd.Env = append(slices.Clone(env), "XDG_STATE_HOME="+t.TempDir(), "CODITECT_BIN="+bin, "CODITECT_TEST_STORE="+store,
		"CODITECT_TEST_TENANT=t1", "CODITECT_TEST_ROOT="+ws, "CODITECT_TEST_SHOWDOC="+showDoc)
	cmd.Dir = ws
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	events := make(chan nvimEvent, 64)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e nvimEvent
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Event != "" {
				events <- e
			}
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("nvim stderr:\n%s", stderr)
		}
	})
	return events, cmd
}

// nextEvent returns Neovim's next event; an error event fails the test.
func nextEvent(t *testing.T, events <-chan nvimEvent) nvimEvent {
	t.Helper()
	select {
	case e, ok := <-events:
		if !ok {
			t.Fatal("nvim ended")
		}
		if e.Event == "error" {
			t.Fatalf("nvim_bridge.lua: %s", e.Error)
		}
		return e
	case <-time.After(ideWait):
		t.Fatalf("nvim printed nothing within %v", ideWait)
	}
	return nvimEvent{}
}

// TestBridgeNeovim: Debian's Neovim, attached to `coditect ide` by its
// built-in LSP client (no Coditect bridge capability), is the human's
// editor; an agent on the official MCP Go SDK asks it through the real
// `coditect mcp`. ide_definition fails naming Neovim and plain LSP;
// ide_context lists the files Neovim has open; ide_open is a
// window/showMessage naming the file when Neovim declares no
// window/showDocument (0.7's own capabilities), and a
// window/showMessageRequest whose Open loads the file in Neovim through
// window/showDocument, without taking focus, when it does.
func TestBridgeNeovim(t *testing.T) {
	for _, showDoc := range []string{"neovim", "declared"} {
		t.Run(showDoc, func(t *testing.T) {
			bin, store, ws, env := bridgeSetup(t)
			for name, src := range map[string]string{"util.go": "package main\n\nfunc util() {}\n", "notes.go": "package main\n\n// TODO: check\nvar notes = 1\n"} {
				if err := os.WriteFile(filepath.Join(ws, name), []byte(src), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*ideWait)
			defer cancel()
			events, cmd := startNeovim(t, ctx, env, bin, store, ws, showDoc)
			ready := nextEvent(t, events)
			if ready.Event != "ready" || ready.Current != filepath.Join(ws, "main.go") {
				t.Fatalf("first event %+v", ready)
			}
			t.Logf("Neovim %s, showDocument declared: %v", ready.Version, ready.ShowDocument)

			a := startAgent(t, ctx, env, bin, store, "t1", "ada", ws)
			a.fail("ide_definition", map[string]any{"symbol": "greet"},
				fmt.Sprintf("the editor of ada (Neovim %s, plain LSP) cannot answer ide_definition; use VS Code with the Coditect extension", ready.Version))
			m := a.ok("ide_context", nil)
			var open []string
			eds, _ := m["editors"].([]any)
			for _, e := range eds {
				open = append(open, fmt.Sprint(e.(map[string]any)["path"]))
			}
			if strings.Join(open, ",") != "main.go,util.go" || m["active"] != nil {
				t.Fatalf("ide_context = %v, want the editors main.go and util.go", m)
			}
			if m = a.ok("ide_open", map[string]any{"path": "notes.go", "line": 3, "message": "is this TODO done?"}); m["shown"] != true {
				t.Fatalf("ide_open = %v", m)
			}

			e := nextEvent(t, events)
			switch showDoc {
			case "neovim":
				// Neovim 0.7 cannot show a document: a message naming it.
				if ready.ShowDocument {
					t.Skipf("Neovim %s declares window/showDocument itself", ready.Version)
				}
				if e.Event != "showMessage" || e.Type != 3 || !strings.Contains(e.Message, "builder (qwen2.5-coder-7b) (for ada) asks you to look at notes.go:3") ||
					!strings.Contains(e.Message, "is this TODO done?") || !strings.Contains(e.Message, filepath.Join(ws, "notes.go")+":3") {
					t.Fatalf("Neovim was shown %+v", e)
				}
			case "declared":
				if e.Event != "showMessageRequest" || !slices.Equal(e.Actions, []string{"Open"}) ||
					!strings.Contains(e.Message, "builder (qwen2.5-coder-7b) (for ada) asks you to look at notes.go:3") {
					t.Fatalf("Neovim was shown %+v", e)
				}
				e = nextEvent(t, events)
				if e.Event != "showDocument" || e.URI != fileURL(filepath.Join(ws, "notes.go")) || e.TakeFocus == nil || *e.TakeFocus ||
					e.Line == nil || *e.Line != 2 {
					t.Fatalf("showDocument %+v", e)
				}
				// Neovim has the file in a buffer, and the human's window
				// still shows main.go.
				if e.Bufname != filepath.Join(ws, "notes.go") || !e.Loaded || !e.Listed || e.Current != filepath.Join(ws, "main.go") {
					t.Fatalf("after showDocument (%s's handler): %+v", e.Handler, e)
				}
				t.Logf("showDocument handled by %s's handler", e.Handler)
			}
			if e = nextEvent(t, events); e.Event != "exit" || e.Code == nil || *e.Code != 0 {
				t.Fatalf("last event %+v", e)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("nvim: %v", err)
			}
			// The editor is gone with Neovim's client.
			a.fail("ide_context", nil, "no editor of ada is connected")
		})
	}
}
