package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// leaves returns every runnable command below root that has no
// subcommands, by command path ("store status").
func leaves(root *cobra.Command) map[string]*cobra.Command {
	out := map[string]*cobra.Command{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, s := range c.Commands() {
			if s.HasSubCommands() {
				walk(s)
				continue
			}
			out[strings.TrimPrefix(s.CommandPath(), root.Name()+" ")] = s
		}
	}
	walk(root)
	return out
}

// groups returns every command below root that has subcommands.
func groups(root *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, s := range c.Commands() {
			if s.HasSubCommands() {
				out = append(out, s)
				walk(s)
			}
		}
	}
	walk(root)
	return out
}

// TestEveryJSONFlagPrintsJSON runs every command that takes --json, as the
// real binary on one store, and checks that its stdout is JSON (JSON Lines
// for the commands that stream events). The table must name every such
// command: a new one is tested or the test fails.
func TestEveryJSONFlagPrintsJSON(t *testing.T) {
	c := newCLI(t)
	ws := t.TempDir()
	dir := t.TempDir()
	backup := filepath.Join(dir, "all.backup")
	sid := strings.TrimSpace(c.ok("session", "start", "--title", "json everywhere", "--workspace", ws))
	other := strings.TrimSpace(c.ok("session", "start", "--title", "to join", "--workspace", ws))
	tokenID := func() string {
		var tok struct {
			Token struct {
				ID string `json:"id"`
			} `json:"token"`
		}
		out, _, code := run(t, c.bin, c.env, "token", "create", "--json", "--label", "to revoke")
		if code != 0 {
			t.Fatalf("token create: exit %d", code)
		}
		if err := json.Unmarshal([]byte(out), &tok); err != nil {
			t.Fatal(err)
		}
		return tok.Token.ID
	}

	type cmdCase struct {
		args  []string
		lines bool // JSON Lines
	}
	// In order: later commands use what earlier ones made. Notices may go
	// to stderr (token create's "shown once").
	cases := []struct {
		path string
		cmdCase
	}{
		{"version", cmdCase{args: []string{"version"}}},
		{"store status", cmdCase{args: []string{"store", "status"}}},
		{"store verify", cmdCase{args: []string{"store", "verify"}}},
		{"store backup", cmdCase{args: []string{"store", "backup", backup}}},
		{"store restore", cmdCase{args: []string{"store", "restore", backup, "--store", filepath.Join(dir, "restored.db")}}},
		{"store copy", cmdCase{args: []string{"store", "copy", c.store, "sqlite://" + filepath.Join(dir, "copy.db")}}},
		{"tenant create", cmdCase{args: []string{"tenant", "create", "acme"}}},
		{"tenant list", cmdCase{args: []string{"tenant", "list"}}},
		{"tenant retention", cmdCase{args: []string{"tenant", "retention", "acme", "--max-events", "1000"}}},
		{"tenant disable", cmdCase{args: []string{"tenant", "disable", "acme"}}},
		{"tenant enable", cmdCase{args: []string{"tenant", "enable", "acme"}}},
		{"user create", cmdCase{args: []string{"user", "create", "bob"}}},
		{"user list", cmdCase{args: []string{"user", "list"}}},
		{"user disable", cmdCase{args: []string{"user", "disable", "bob"}}},
		{"user enable", cmdCase{args: []string{"user", "enable", "bob"}}},
		{"token create", cmdCase{args: []string{"token", "create", "--user", "bob"}}},
		{"token list", cmdCase{args: []string{"token", "list"}}},
		{"token revoke", cmdCase{args: []string{"token", "revoke", tokenID()}}},
		{"session list", cmdCase{args: []string{"session", "list"}}},
		{"session show", cmdCase{args: []string{"session", "show", sid}}},
		{"session start", cmdCase{args: []string{"session", "start", "--title", "another", "--workspace", ws}}},
		{"session join", cmdCase{args: []string{"session", "join", other, "--as", "bob"}}},
		{"session end", cmdCase{args: []string{"session", "end", sid}}},
		{"session sweep", cmdCase{args: []string{"session", "sweep"}}},
		{"project list", cmdCase{args: []string{"project", "list"}}},
		{"project show", cmdCase{args: []string{"project", "show", filepath.Base(ws)}}},
		{"project add", cmdCase{args: []string{"project", "add", "billing", t.TempDir()}}},
		{"project remove", cmdCase{args: []string{"project", "remove", "billing"}}},
		{"project policy set", cmdCase{args: []string{"project", "policy", "set", filepath.Base(ws), "--glob", "src/auth/**"}}},
		{"project policy show", cmdCase{args: []string{"project", "policy", "show"}}},
		{"project policy clear", cmdCase{args: []string{"project", "policy", "clear", filepath.Base(ws)}}},
		{"review list", cmdCase{args: []string{"review", "list", "--all"}}},
		{"agent list", cmdCase{args: []string{"agent", "list"}}},
		{"log tail", cmdCase{args: []string{"log", "tail"}, lines: true}},
		{"log query", cmdCase{args: []string{"log", "query"}}},
		{"log export", cmdCase{args: []string{"log", "export"}, lines: true}},
		{"log sweep", cmdCase{args: []string{"log", "sweep"}}},
		// watch --json is --format json: one JSON line per file event
		// until interrupted (TestWatchCommand reads them).
		{"watch", cmdCase{}},
		// People's actions need an agent: TestHumanActionsCLI runs them
		// with --json.
		{"message send", cmdCase{}},
		{"message list", cmdCase{}},
		{"message ack", cmdCase{}},
		{"task create", cmdCase{}},
		{"task assign", cmdCase{}},
		{"task move", cmdCase{}},
		{"task list", cmdCase{}},
		{"lease list", cmdCase{}},
		{"lease release", cmdCase{}},
		// Deciding needs an agent's proposal: TestReviewCLI runs them with --json.
		{"review show", cmdCase{}},
		{"review accept", cmdCase{}},
		{"review reject", cmdCase{}},
	}
	covered := map[string]bool{}
	for _, tc := range cases {
		covered[tc.path] = true
		if tc.args == nil {
			continue
		}
		args := append(tc.args, "--json")
		out, errOut, code := run(t, c.bin, c.env, args...)
		if code != 0 {
			t.Errorf("coditect %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
			continue
		}
		if strings.TrimSpace(out) == "" {
			t.Errorf("%s --json printed nothing", tc.path)
			continue
		}
		if !tc.lines {
			if !json.Valid([]byte(out)) {
				t.Errorf("%s --json printed no JSON:\n%s", tc.path, out)
			}
			continue
		}
		sc := bufio.NewScanner(strings.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if !json.Valid(sc.Bytes()) {
				t.Errorf("%s --json printed a line that is not JSON: %s", tc.path, sc.Text())
			}
		}
	}
	var missing []string
	for path, cmd := range leaves(newRootCommand()) {
		if cmd.Flag("json") != nil && !covered[path] {
			missing = append(missing, path)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("commands with --json this test does not run: %v", missing)
	}
}

// TestUnknownSubcommandFails: every command group refuses a subcommand it
// does not have (exit 1, an error naming it and the group's commands, nothing on
// stdout), and without one prints its help.
func TestUnknownSubcommandFails(t *testing.T) {
	c := newCLI(t)
	gs := groups(newRootCommand())
	if len(gs) < 8 {
		t.Fatalf("found %d command groups", len(gs))
	}
	for _, g := range gs {
		path := strings.Fields(g.CommandPath())[1:]
		c.fail(`unknown command "frobnicate" for "`+g.CommandPath()+`"`, append(path, "frobnicate")...)
		c.fail(`unknown command "frobnicate"`, append(path, "frobnicate", "--json")...)
		if out := c.ok(path...); !strings.Contains(out, "Available Commands:") {
			t.Errorf("%s alone: %q, want its help", g.CommandPath(), out)
		}
	}
	// The case the issue names: log has no list.
	c.fail("its commands: export, query, sweep, tail", "log", "list")
	if _, err := os.Stat(c.store); !os.IsNotExist(err) {
		t.Errorf("a refused subcommand opened the store (%v)", err)
	}
}

// TestMCPReadBudgetFlags: --read-lines and --read-bytes set the budget of
// one fs_read; a budget that is not positive is refused at start.
func TestMCPReadBudgetFlags(t *testing.T) {
	c := newCLI(t)
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "ten.txt"), []byte(strings.Repeat("a line\n", 10)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flag, value string
		next        float64
	}{{"--read-lines", "3", 4}, {"--read-bytes", "14", 3}} {
		a := c.mcp("--toolsets", "core,files", tc.flag, tc.value)
		sid := a.ok("session_start", map[string]any{"title": "budget", "workspace": ws})["session_id"]
		_, text, isErr := a.call("fs_read", map[string]any{"session_id": sid, "path": "ten.txt"})
		out := a.ok("fs_read", map[string]any{"session_id": sid, "path": "ten.txt"})
		if isErr || out["truncated"] != true || out["next_line"] != tc.next {
			t.Errorf("%s %s: truncated %v, next_line %v, want %v:\n%s", tc.flag, tc.value, out["truncated"], out["next_line"], tc.next, text)
		}
	}
	c.fail("--read-lines must be positive", "mcp", "--read-lines", "0")
}
