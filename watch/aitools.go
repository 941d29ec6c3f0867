package watch

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Tool is an AI coding tool recognised by its processes (evidence 4).
type Tool struct {
	// ID names the tool in attributions, e.g. "claude-code".
	ID string
	// Name is the tool's display name.
	Name string
	// Names are executable names (a process's comm, or the base name of
	// argv[0], or of the script an interpreter runs) that identify it.
	Names []string
	// Args are substrings of an argument (an npm package path, a Python
	// module) that identify it.
	Args []string
	// Editor marks a tool that is also a human's editor (Cursor,
	// Windsurf): its process proves less about who typed.
	Editor bool
}

// KnownTools is the registry of AI coding tools the watcher recognises
// when no Config.Tools is given.
var KnownTools = []Tool{
	{ID: "claude-code", Name: "Claude Code", Names: []string{"claude"}, Args: []string{"@anthropic-ai/claude-code"}},
	{ID: "aider", Name: "Aider", Names: []string{"aider"}, Args: []string{"aider-chat", "/aider/__main__.py", "-m aider"}},
	{ID: "codex", Name: "OpenAI Codex CLI", Names: []string{"codex"}, Args: []string{"@openai/codex"}},
	{ID: "gemini-cli", Name: "Gemini CLI", Names: []string{"gemini"}, Args: []string{"@google/gemini-cli"}},
	{ID: "cursor", Name: "Cursor", Names: []string{"cursor", "Cursor", "cursor-agent"}, Args: []string{"cursor-agent", "/cursor/resources/"}, Editor: true},
	{ID: "windsurf", Name: "Windsurf", Names: []string{"windsurf", "Windsurf"}, Args: []string{"/windsurf/resources/"}, Editor: true},
	{ID: "cline", Name: "Cline", Names: []string{"cline"}, Args: []string{"saoudrizwan.claude-dev", "@cline/cli"}},
	{ID: "continue", Name: "Continue", Names: []string{"cn"}, Args: []string{"continue.continue", "@continuedev/cli"}},
	{ID: "copilot", Name: "GitHub Copilot agent", Names: []string{"copilot"}, Args: []string{"@github/copilot", "copilot-language-server", "github.copilot"}},
	{ID: "openhands", Name: "OpenHands", Names: []string{"openhands"}, Args: []string{"-m openhands", "/openhands/"}},
	{ID: "goose", Name: "goose", Names: []string{"goose", "goosed"}},
	{ID: "amp", Name: "Amp", Names: []string{"amp"}, Args: []string{"@sourcegraph/amp"}},
	{ID: "lm-studio", Name: "LM Studio", Names: []string{"lm-studio", "LM Studio", "lms"}, Args: []string{"/LM-Studio", "/lm-studio/"}},
	{ID: "opencode", Name: "OpenCode", Names: []string{"opencode"}, Args: []string{"opencode-ai"}},
	{ID: "qwen-code", Name: "Qwen Code", Names: []string{"qwen"}, Args: []string{"@qwen-code/qwen-code"}},
	{ID: "crush", Name: "Crush", Names: []string{"crush"}},
	{ID: "roo-code", Name: "Roo Code", Names: []string{"roo"}, Args: []string{"rooveterinaryinc.roo-cline"}},
	{ID: "kilo-code", Name: "Kilo Code", Names: []string{"kilocode", "kilo"}, Args: []string{"kilocode.kilo-code", "@kilocode/cli"}},
	{ID: "amazon-q", Name: "Amazon Q Developer", Names: []string{"qchat", "q-agent"}, Args: []string{"amazon-q"}},
	{ID: "kiro", Name: "Kiro", Names: []string{"kiro", "kiro-cli"}, Editor: true},
	{ID: "augment", Name: "Augment (auggie)", Names: []string{"auggie"}, Args: []string{"@augmentcode/auggie"}},
	{ID: "plandex", Name: "Plandex", Names: []string{"plandex", "pdx"}},
	{ID: "gptme", Name: "gptme", Names: []string{"gptme"}},
	{ID: "mentat", Name: "Mentat", Names: []string{"mentat"}},
	{ID: "swe-agent", Name: "SWE-agent", Names: []string{"sweagent"}, Args: []string{"-m sweagent"}},
	{ID: "open-interpreter", Name: "Open Interpreter", Names: []string{"interpreter"}, Args: []string{"open-interpreter"}},
	{ID: "droid", Name: "Factory Droid", Names: []string{"droid"}, Args: []string{"@factory/cli"}},
	{ID: "cody", Name: "Sourcegraph Cody", Names: []string{"cody"}, Args: []string{"@sourcegraph/cody"}},
	{ID: "tabnine", Name: "Tabnine", Names: []string{"TabNine", "tabnine"}},
	{ID: "trae", Name: "Trae", Names: []string{"trae", "Trae"}, Editor: true},
}

// interpreters run the script that names the tool.
var interpreters = []string{"node", "nodejs", "bun", "deno", "python", "python3", "uv", "uvx", "npx", "pipx"}

// toolProcess is a running process of a known tool.
type toolProcess struct {
	tool *Tool
	pid  int
	cwd  string
}

// identify returns the tool that comm and argv belong to, nil if none.
func identify(tools []Tool, comm string, argv []string) *Tool {
	var names []string
	if comm != "" {
		names = append(names, comm)
	}
	if len(argv) > 0 {
		exe := filepath.Base(argv[0])
		names = append(names, exe)
		if slices.Contains(interpreters, strings.TrimRight(exe, "0123456789.")) {
			for _, a := range argv[1:] {
				if !strings.HasPrefix(a, "-") {
					names = append(names, strings.TrimSuffix(filepath.Base(a), filepath.Ext(a)))
					break
				}
			}
		}
	}
	joined := strings.Join(argv, " ")
	for i := range tools {
		t := &tools[i]
		for _, n := range t.Names {
			if slices.Contains(names, n) {
				return t
			}
		}
		for _, a := range t.Args {
			if strings.Contains(joined, a) {
				return t
			}
		}
	}
	return nil
}

// processTable scans /proc for known tools, at most once per maxAge.
type processTable struct {
	root   string
	tools  []Tool
	maxAge time.Duration

	mu    sync.Mutex
	at    time.Time
	procs []toolProcess
}

// snapshot returns the running processes of known tools.
func (p *processTable) snapshot(now time.Time) []toolProcess {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.at.IsZero() && now.Sub(p.at) < p.maxAge && !now.Before(p.at) {
		return p.procs
	}
	p.at = now
	p.procs = p.procs[:0]
	if len(p.tools) == 0 {
		return nil
	}
	ents, err := os.ReadDir(p.root)
	if err != nil {
		return nil
	}
	self := os.Getpid()
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == self {
			continue
		}
		dir := filepath.Join(p.root, d.Name())
		raw, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil || len(raw) == 0 {
			continue // gone, or a kernel thread
		}
		argv := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
		t := identify(p.tools, strings.TrimSpace(string(comm)), argv)
		if t == nil {
			continue
		}
		cwd, err := os.Readlink(filepath.Join(dir, "cwd"))
		if err != nil {
			continue // another user's process: we cannot tell where it works
		}
		p.procs = append(p.procs, toolProcess{tool: t, pid: pid, cwd: cwd})
	}
	return p.procs
}

// toolsIn returns the distinct tools with a process working inside root,
// and one process of each.
func toolsIn(procs []toolProcess, root string) []toolProcess {
	var out []toolProcess
	for _, p := range procs {
		if p.cwd != root && !strings.HasPrefix(p.cwd, root+string(filepath.Separator)) {
			continue
		}
		if !slices.ContainsFunc(out, func(q toolProcess) bool { return q.tool.ID == p.tool.ID }) {
			out = append(out, p)
		}
	}
	return out
}
