package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/coditect/coditect/internal/testbin"
)

// block is a fenced code block of a Markdown document.
type block struct {
	lang, text string
	line       int
	indent     string // of the fence, in a list item
}

// fenced returns the fenced code blocks of a Markdown document, in order.
func fenced(doc string) []block {
	var out []block
	var cur *block
	for i, l := range strings.Split(doc, "\n") {
		trimmed := strings.TrimLeft(l, " ")
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &block{lang: strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), line: i + 1, indent: l[:len(l)-len(trimmed)]}
		case cur != nil && strings.TrimSpace(l) == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += strings.TrimPrefix(l, cur.indent) + "\n"
		}
	}
	return out
}

// inlineCommands returns the inline code spans of doc that are coditect
// commands ("coditect log tail").
func inlineCommands(doc string) []string {
	var out []string
	for _, m := range regexp.MustCompile("`(coditect [^`]+)`").FindAllStringSubmatch(doc, -1) {
		out = append(out, m[1])
	}
	return out
}

// words splits a command line as a POSIX shell does for the simple cases
// a document shows: blanks separate words, quotes group them, and a
// redirection (</dev/null) is not an argument.
func words(line string) []string {
	var out []string
	var cur strings.Builder
	in, quote := false, rune(0)
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	var args []string
	for _, w := range out {
		if !strings.HasPrefix(w, "<") && !strings.HasPrefix(w, ">") {
			args = append(args, w)
		}
	}
	return args
}

// checkCommandLine checks that args (without "coditect") name a command
// that exists, with flags it has and, when positional is set, arguments it
// accepts, without running it: for the commands a document shows, with
// placeholders such as NAME DIR. (Prose may name a command without its
// arguments: "coditect project add registers a root".)
func checkCommandLine(args []string, positional bool) error {
	root := newRootCommand()
	cmd, rest, err := root.Find(args)
	if err != nil {
		return err
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return fmt.Errorf("%s: %w", cmd.CommandPath(), err)
	}
	pos := cmd.Flags().Args()
	if cmd.HasSubCommands() {
		if len(pos) > 0 {
			return fmt.Errorf("%s has no command %q", cmd.CommandPath(), pos[0])
		}
		return nil
	}
	if positional && cmd.Args != nil {
		return cmd.Args(cmd, pos)
	}
	return nil
}

// TestLMStudioDoc runs what docs/LMSTUDIO.md shows, in order, on one
// store: every ```sh block in a shell whose PATH finds the coditect under
// test, every ```text block of tool calls through `coditect mcp` with the
// official MCP client (the ```go block is the project's file they work
// on), and every mcp.json entry's command with stdin closed
// (TestDocCommandsParse checks the commands it names in prose). The
// toolset table must match the tools/list the binary serves.
func TestLMStudioDoc(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testbin.Root(), "docs", "LMSTUDIO.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	c := newCLI(t)
	// The doc's project is /home/me/project.
	proj := filepath.Join(t.TempDir(), "project")
	subst := strings.NewReplacer("/home/me/project", proj)
	home := t.TempDir()
	c.env = append(c.env, "HOME="+home, "XDG_DATA_HOME="+filepath.Join(home, "data"))

	var agent *mcpAgent
	vars := map[string]any{}
	ran := map[string]int{}
	for _, b := range fenced(doc) {
		switch b.lang {
		case "go":
			ran[b.lang]++
			if err := os.MkdirAll(filepath.Join(proj, "src", "auth"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(proj, "src", "auth", "login.go"), []byte(b.text), 0o644); err != nil {
				t.Fatal(err)
			}
		case "sh":
			ran[b.lang]++
			sh := exec.Command("sh", "-eu", "-c", subst.Replace(b.text))
			sh.Dir = t.TempDir()
			sh.Env = append(os.Environ(), c.env...)
			sh.Env = append(sh.Env, "PATH="+filepath.Dir(c.bin)+":"+os.Getenv("PATH"))
			if out, err := sh.CombinedOutput(); err != nil {
				t.Errorf("LMSTUDIO.md:%d: the shell block failed: %v\n%s\n%s", b.line, err, b.text, out)
			}
		case "text":
			if !regexp.MustCompile(`^[a-z_]+ \{`).MatchString(b.text) {
				continue
			}
			ran[b.lang]++
			if agent == nil {
				agent = c.mcp("--agent", "coder", "--model", "qwen2.5-coder-7b-instruct", "--toolsets", "core,coord,files")
			}
			for _, l := range strings.Split(strings.TrimSpace(b.text), "\n") {
				name, args, _ := strings.Cut(l, " ")
				args = subst.Replace(args)
				for k, v := range vars {
					js, _ := json.Marshal(v)
					args = strings.ReplaceAll(args, `"<`+k+`>"`, string(js))
				}
				var m map[string]any
				if err := json.Unmarshal([]byte(args), &m); err != nil {
					t.Fatalf("LMSTUDIO.md:%d: %s: the arguments are not JSON: %v\n%s", b.line, name, err, args)
				}
				out, text, isErr := agent.call(name, m)
				if isErr {
					t.Fatalf("LMSTUDIO.md:%d: %s %s: %s", b.line, name, args, text)
				}
				t.Logf("%s → %s", name, firstLine(text))
				for _, k := range []string{"session_id", "task_id", "token"} {
					if v, ok := out[k]; ok {
						vars[k] = v
					}
				}
			}
		case "json":
			ran[b.lang]++
			checkMCPConfig(t, c, b)
		}
	}
	for _, lang := range []string{"go", "sh", "text", "json"} {
		if ran[lang] == 0 {
			t.Errorf("the doc has no %s block this test runs", lang)
		}
	}
	if agent != nil {
		if got, _ := os.ReadFile(filepath.Join(proj, "src", "auth", "login.go")); !bytes.Contains(got, []byte("return u.RequestURI()")) {
			t.Errorf("after the doc's calls login.go is:\n%s", got)
		}
	}
	checkToolsetTable(t, c, doc)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// checkMCPConfig runs every stdio entry of an mcp.json block (command
// coditect) with stdin closed: the host's command must start and exit 0.
func checkMCPConfig(t *testing.T, c *cli, b block) {
	t.Helper()
	var cfg struct {
		MCPServers map[string]struct {
			Command string            `json:"command"`
			Args    []string          `json:"args"`
			URL     string            `json:"url"`
			Env     map[string]string `json:"env"`
		} `json:"mcpServers"`
	}
	if err := json.Unmarshal([]byte(b.text), &cfg); err != nil {
		t.Errorf("LMSTUDIO.md:%d: not JSON: %v", b.line, err)
		return
	}
	for name, e := range cfg.MCPServers {
		if filepath.Base(e.Command) != "coditect" {
			continue // HTTP entries, or a bridge such as npx mcp-remote
		}
		cmd := exec.Command(c.bin, e.Args...)
		cmd.Env = append(os.Environ(), c.env...)
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "serving MCP on stdio") {
			t.Errorf("LMSTUDIO.md:%d: entry %s (coditect %s): %v\n%s", b.line, name, strings.Join(e.Args, " "), err, out)
		}
	}
}

// checkToolsetTable compares the doc's toolset table (tools and KB of
// tools/list per toolset) with what the binary serves: the counts exactly,
// the sizes within 5%; and every tool served has a row in a tool table.
func checkToolsetTable(t *testing.T, c *cli, doc string) {
	t.Helper()
	rows := regexp.MustCompile("(?m)^\\| `([a-z]+)`(?: \\(default\\))? \\| (\\d+) \\| ([\\d.]+) KB \\|$").FindAllStringSubmatch(doc, -1)
	if len(rows) != 5 {
		t.Fatalf("the toolset table has %d rows, want core, coord, files, ide and all", len(rows))
	}
	for _, r := range rows {
		a := c.mcp("--toolsets", r[1])
		res, err := a.cs.ListTools(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		js, err := json.Marshal(mcp.ListToolsResult{Tools: res.Tools})
		if err != nil {
			t.Fatal(err)
		}
		kb := float64(len(js)) / 1024
		t.Logf("toolset %-5s %2d tools, %d bytes (%.1f KB)", r[1], len(res.Tools), len(js), kb)
		n, _ := strconv.Atoi(r[2])
		docKB, _ := strconv.ParseFloat(r[3], 64)
		if n != len(res.Tools) || math.Abs(kb-docKB) > 0.05*kb {
			t.Errorf("the doc says toolset %s has %d tools, %.1f KB; it has %d, %.1f KB", r[1], n, docKB, len(res.Tools), kb)
		}
		for _, tool := range res.Tools {
			if !strings.Contains(doc, "| `"+tool.Name+"` |") {
				t.Errorf("the doc's tool tables do not describe %s", tool.Name)
			}
		}
	}
}

// TestDocCommandsParse: every coditect command README.md and
// docs/LMSTUDIO.md show, in prose or in a shell block, names a command
// that exists, with flags it has and arguments it accepts.
func TestDocCommandsParse(t *testing.T) {
	for _, name := range []string{"README.md", filepath.Join("docs", "LMSTUDIO.md")} {
		raw, err := os.ReadFile(filepath.Join(testbin.Root(), name))
		if err != nil {
			t.Fatal(err)
		}
		lines := map[string]bool{} // command line -> shown in a shell block
		for _, l := range inlineCommands(string(raw)) {
			lines[l] = false
		}
		for _, b := range fenced(string(raw)) {
			if b.lang != "sh" {
				continue
			}
			for _, l := range strings.Split(b.text, "\n") {
				if cmd, _, _ := strings.Cut(l, " #"); strings.HasPrefix(cmd, "coditect ") {
					lines[strings.TrimSpace(cmd)] = true
				}
			}
		}
		if len(lines) < 5 {
			t.Fatalf("%s: found %d commands", name, len(lines))
		}
		for l, shell := range lines {
			if err := checkCommandLine(words(l)[1:], shell); err != nil {
				t.Errorf("%s names `%s`: %v", name, l, err)
			}
		}
	}
}
