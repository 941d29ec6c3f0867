package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/session"
	"github.com/coditect/coditect/storage/tenant"
)

// cli runs the binary against one store; ok and fail check the outcome.
type cli struct {
	t     *testing.T
	bin   string
	store string
	env   []string
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	store := filepath.Join(t.TempDir(), "c.db")
	// An empty CODITECT_TOKEN means none, whatever the caller's shell holds.
	return &cli{t: t, bin: binary(t), store: store, env: []string{"CODITECT_STORE=" + store, "CODITECT_TOKEN="}}
}

// ok runs a command that must succeed, print nothing on stderr, and
// returns its stdout.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	out, errOut, code := run(c.t, c.bin, c.env, args...)
	if code != 0 || errOut != "" {
		c.t.Fatalf("coditect %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// fail runs a command that must fail with exit code 1, nothing on stdout
// and want in its error on stderr.
func (c *cli) fail(want string, args ...string) {
	c.t.Helper()
	out, errOut, code := run(c.t, c.bin, c.env, args...)
	if code != 1 || out != "" || !strings.Contains(errOut, want) || !strings.HasPrefix(errOut, "coditect: ") {
		c.t.Fatalf("coditect %s: exit %d\nstdout: %q\nstderr: %q\nwant exit 1, no stdout and an error saying %q", strings.Join(args, " "), code, out, errOut, want)
	}
}

// withToken returns a cli that authenticates with a token.
func (c *cli) withToken(secret string) *cli {
	d := *c
	d.env = append(slices.Clone(c.env), "CODITECT_TOKEN="+secret)
	return &d
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	return v
}

// aligned checks that a table's columns start at the same offsets on
// every line: each header word starts where the row's cell does.
func aligned(t *testing.T, out string, rows int) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != rows+1 {
		t.Fatalf("want a header and %d rows, got:\n%s", rows, out)
	}
	starts := func(s string) []int {
		var idx []int
		for _, m := range regexp.MustCompile(`(^|  )\S`).FindAllStringIndex(s, -1) {
			idx = append(idx, m[1]-1)
		}
		return idx
	}
	want := starts(lines[0])
	for _, l := range lines[1:] {
		if got := starts(l); !slices.Equal(got[:min(len(got), len(want))], want) {
			t.Fatalf("columns not aligned (%v vs header %v):\n%s", got, want, out)
		}
	}
	return lines[1:]
}

func TestOperatorCLI(t *testing.T) {
	c := newCLI(t)

	// Tenants.
	out := c.ok("tenant", "create", "acme", "--name", "Acme Inc.")
	aligned(t, out, 1)
	if !strings.Contains(out, "Acme Inc.") || !strings.Contains(out, "enabled") {
		t.Fatalf("tenant create: %s", out)
	}
	c.fail("already exists", "tenant", "create", "acme")
	c.fail("invalid", "tenant", "create", strings.Repeat("x", 300))
	if ts := decode[[]tenant.Tenant](t, c.ok("tenant", "list", "--json")); len(ts) != 1 || ts[0].ID != "acme" {
		t.Fatalf("tenant list: %+v", ts)
	}
	c.fail(`tenant "nope" does not exist`, "session", "list", "--tenant", "nope")

	// Users: the acting local user is an admin of the tenant.
	c.ok("user", "create", "bob", "--name", "Bob", "--tenant", "acme", "--as", "alice")
	us := decode[[]tenant.User](t, c.ok("user", "list", "--tenant", "acme", "--as", "alice", "--json"))
	if len(us) != 2 || us[0].ID != "alice" || us[1].ID != "bob" || us[1].Name != "Bob" {
		t.Fatalf("users: %+v", us)
	}

	// Sessions: the local operator's workspace becomes a project of its own.
	ws := filepath.Join(t.TempDir(), "app")
	if err := os.Mkdir(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	out = c.ok("session", "start", "--tenant", "acme", "--as", "alice", "--title", "fix the login redirect", "--workspace", ws+"/", "--purpose", "users loop")
	id := strings.TrimSpace(out)
	if _, err := session.ParseID(id); err != nil || out != id+"\n" {
		t.Fatalf("session start printed %q, want the id alone", out)
	}
	c.fail("title is required", "session", "start", "--tenant", "acme", "--as", "alice", "--workspace", "/w")
	c.fail("not an absolute path", "session", "start", "--tenant", "acme", "--as", "alice", "--title", "t", "--workspace", "w")
	if out := c.ok("session", "join", id, "--tenant", "acme", "--as", "bob"); !strings.Contains(out, "2 participants") {
		t.Fatalf("join: %s", out)
	}
	rows := aligned(t, c.ok("session", "list", "--tenant", "acme", "--user", "bob", "--state", "open"), 1)
	if f := strings.Fields(rows[0]); f[0] != id || f[1] != "open" || f[3] != "alice" || f[4] != "app" || !strings.HasSuffix(rows[0], "fix the login redirect") {
		t.Fatalf("session list row: %q", rows[0])
	}
	if p := decode[session.Page](t, c.ok("session", "list", "--tenant", "acme", "--state", "ended", "--json")); p.Sessions == nil || len(p.Sessions) != 0 {
		t.Fatalf("ended sessions: %+v", p)
	}
	c.fail("open, ended or abandoned", "session", "list", "--tenant", "acme", "--state", "closed")
	c.fail("--since", "session", "list", "--tenant", "acme", "--since", "last tuesday")
	if p := decode[session.Page](t, c.ok("session", "list", "--tenant", "acme", "--since", "1h", "--json")); len(p.Sessions) != 1 {
		t.Fatalf("sessions of the last hour: %+v", p)
	}
	if out := c.ok("session", "end", id, "--tenant", "acme", "--as", "alice", "--summary", "fixed in auth.go"); !strings.Contains(out, "ended: completed") {
		t.Fatalf("end: %s", out)
	}
	c.fail("start a new session", "session", "end", id, "--tenant", "acme", "--as", "alice")
	c.fail("completed, failed or cancelled", "session", "end", id, "--tenant", "acme", "--status", "done")
	out = c.ok("session", "show", id, "--tenant", "acme")
	for _, want := range []string{`state:\s+ended \(completed\)`, `project:\s+app`, `participants:\s+alice, bob`, `outcome:\s+fixed in auth.go`, `\s+session.joined\s+1`, `users:\s+alice: 2 events, bob: 1 event`} {
		if !regexp.MustCompile(`(?m)^` + want + `$`).MatchString(out) {
			t.Fatalf("session show lacks %s:\n%s", want, out)
		}
	}
	r := decode[session.Report](t, c.ok("session", "show", id, "--tenant", "acme", "--json"))
	if r.Events != 3 || r.ByKind["session.ended"] != 1 || r.Session.Outcome.Summary != "fixed in auth.go" {
		t.Fatalf("session show --json: %+v", r)
	}

	// The log.
	q := decode[struct {
		Events []audit.Event `json:"events"`
	}](t, c.ok("log", "query", "--tenant", "acme", "--session", id, "--json"))
	if len(q.Events) != 3 || q.Events[0].Kind != "session.ended" {
		t.Fatalf("log query: %+v", q.Events)
	}
	out = c.ok("log", "export", "--tenant", "acme", "--session", id)
	var exported []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		exported = append(exported, decode[audit.Event](t, l).Kind)
	}
	if !slices.Equal(exported, []string{"session.started", "session.joined", "session.ended"}) {
		t.Fatalf("log export: %v", exported)
	}
	out = c.ok("log", "tail", "--tenant", "acme", "--kind", "session.started")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "session.started") || !strings.Contains(lines[0], "session="+id) {
		t.Fatalf("log tail: %q", out)
	}
	if out := c.ok("log", "tail", "--tenant", "acme", "-n", "2"); strings.Count(out, "\n") != 2 || !strings.Contains(out, "session.ended") {
		t.Fatalf("log tail -n 2: %q", out)
	}
	c.fail("unknown event kind", "log", "tail", "--tenant", "acme", "--kind", "file.exploded")
	c.fail("malformed cursor", "log", "query", "--tenant", "acme", "--cursor", "zz")

	// Tokens: the secret alone on stdout, the notice on stderr.
	stdout, stderr, code := run(t, c.bin, c.env, "token", "create", "--tenant", "acme", "--as", "alice", "--user", "bob", "--role", "viewer", "--label", "ci")
	secret := strings.TrimSpace(stdout)
	if code != 0 || stdout != secret+"\n" || !strings.HasPrefix(secret, "cdt_") || !strings.Contains(stderr, "will not be shown again") {
		t.Fatalf("token create: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	toks := decode[[]tenant.Token](t, c.ok("token", "list", "--tenant", "acme", "--as", "alice", "--json"))
	if len(toks) != 1 || toks[0].User != "bob" || toks[0].Role != tenant.RoleViewer || strings.Contains(c.ok("token", "list", "--tenant", "acme", "--as", "alice"), secret) {
		t.Fatalf("token list: %+v", toks)
	}
	viewer := c.withToken(secret)
	if p := decode[session.Page](t, viewer.ok("session", "list", "--json")); len(p.Sessions) != 1 || p.Sessions[0].ID != id {
		t.Fatalf("viewer's session list: %+v", p)
	}
	viewer.fail("may only read", "session", "start", "--title", "t", "--workspace", ws)
	viewer.fail("needs an admin", "token", "list")
	viewer.fail("unset CODITECT_TOKEN", "tenant", "list")
	viewer.fail(`belongs to tenant "acme"`, "session", "list", "--tenant", "globex")
	viewer.fail("--as cannot be used", "session", "list", "--as", "alice")
	c.withToken("cdt_nonsense").fail("unknown or malformed token", "session", "list")
	c.ok("token", "revoke", toks[0].ID, "--tenant", "acme", "--as", "alice")
	viewer.fail("revoked", "session", "list")

	// Isolation: another tenant sees none of acme's sessions or events,
	// even by id.
	c.ok("tenant", "create", "globex")
	// A read creates no one: the OS user reads as the local operator,
	// --as must name a user of the tenant; a write adds the acting user.
	c.fail(`"alice" is not a user of tenant "globex"`, "session", "list", "--tenant", "globex", "--as", "alice")
	if us := decode[[]tenant.User](t, c.ok("user", "list", "--tenant", "globex", "--json")); len(us) != 0 {
		t.Fatalf("reads added users to globex: %+v", us)
	}
	c.ok("user", "create", "carol", "--tenant", "globex", "--as", "alice")
	if p := decode[session.Page](t, c.ok("session", "list", "--tenant", "globex", "--as", "alice", "--json")); len(p.Sessions) != 0 {
		t.Fatalf("globex lists %+v", p)
	}
	c.fail("not found", "session", "show", id, "--tenant", "globex", "--as", "alice")
	c.fail("not found", "session", "end", id, "--tenant", "globex", "--as", "alice")
	if out := c.ok("log", "export", "--tenant", "globex", "--as", "alice", "--session", id); out != "" {
		t.Fatalf("globex exports acme's events: %s", out)
	}

	// Disabling.
	c.ok("user", "disable", "bob", "--tenant", "acme", "--as", "alice")
	c.fail("disabled", "session", "list", "--tenant", "acme", "--as", "bob")
	c.ok("tenant", "disable", "acme")
	c.fail("disabled", "session", "list", "--tenant", "acme", "--as", "alice")
	c.ok("tenant", "enable", "acme")
	c.ok("session", "list", "--tenant", "acme", "--as", "alice")

	// Agents, registered by another process (this test) on the same store.
	ctx := context.Background()
	st, err := storage.Open(ctx, c.store)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := tenant.NewDirectory(st, "test").Local(ctx, "acme", "alice")
	if err == nil {
		_, err = agent.Register(ctx, sc, agent.Registration{Name: "coder", Client: "lmstudio", Model: "qwen2.5-coder-7b", Capabilities: []string{"go"}})
	}
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	rows = aligned(t, c.ok("agent", "list", "--tenant", "acme", "--as", "alice"), 1)
	if f := strings.Fields(rows[0]); f[1] != "coder" || f[2] != "lmstudio" || f[3] != "qwen2.5-coder-7b" || f[6] != "alive" {
		t.Fatalf("agent list row %q", rows[0])
	}
	if as := decode[[]agent.Agent](t, c.ok("agent", "list", "--tenant", "acme", "--json")); len(as) != 1 || as[0].Name != "coder" {
		t.Fatalf("agent list --json: %+v", as)
	}
	if as := decode[[]agent.Agent](t, c.ok("agent", "list", "--tenant", "globex", "--json")); len(as) != 0 {
		t.Fatalf("globex lists acme's agents: %+v", as)
	}
}

// TestLogTailFollow follows the log in one process while another appends.
func TestLogTailFollow(t *testing.T) {
	c := newCLI(t)
	ws := t.TempDir()
	first := strings.TrimSpace(c.ok("session", "start", "--as", "alice", "--title", "before the tail", "--workspace", ws))

	cmd := exec.Command(c.bin, "log", "tail", "-f", "--as", "alice", "--kind", "session.started")
	cmd.Env = append(os.Environ(), c.env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	t.Cleanup(func() {
		if !done {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(what string) string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("tail -f ended while waiting for %s; stderr: %s", what, stderr.String())
			}
			return l
		case <-time.After(20 * time.Second):
			t.Fatalf("no line from tail -f within 20s while waiting for %s", what)
		}
		return ""
	}
	// The backlog: the session started before the tail.
	if l := next("the backlog"); !strings.Contains(l, "session="+first) {
		t.Fatalf("backlog line %q", l)
	}
	// Another process appends: a join (filtered out), then a start.
	c.ok("session", "join", first, "--as", "bob")
	second := strings.TrimSpace(c.ok("session", "start", "--as", "bob", "--title", "from another process", "--workspace", ws))
	if l := next("the new session"); !strings.Contains(l, "session.started") || !strings.Contains(l, "session="+second) || !strings.Contains(l, "from another process") {
		t.Fatalf("followed line %q; want the start of %s (the join is filtered out)", l, second)
	}
	// An interrupt ends the follower cleanly: its output ends, nothing
	// more on it, exit code 0, nothing on stderr.
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(20 * time.Second)
	for closed := false; !closed; {
		select {
		case l, ok := <-lines:
			if ok {
				t.Fatalf("unexpected line after the interrupt: %q", l)
			}
			closed = true
		case <-deadline:
			t.Fatal("tail -f did not exit within 20s of SIGINT")
		}
	}
	err = cmd.Wait()
	done = true
	if err != nil || stderr.Len() != 0 {
		t.Fatalf("tail -f after SIGINT: %v, stderr %q", err, stderr.String())
	}
}
