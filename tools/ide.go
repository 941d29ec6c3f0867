package tools

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/bridge"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/session"
)

// IDE is the ide toolset: what the human's editor knows about the
// session's project (problems, definitions, references, symbols, hover,
// the open editors) and asking it to show a file, answered by the
// editor's language providers through storage/bridge. The editor is the
// caller's user's own, else another user's who shares it; with none
// connected a tool fails at once, saying so. Paths are relative to the
// session's workspace, as the files toolset's; lines and columns count
// from 1. Results are bounded (limit, and a byte budget of the text) and
// say how many items they left out. The tools are in ide.go (arguments,
// the question) and ide_result.go (what a model reads).
func IDE(cfg Config) Toolset {
	f := newFiles(cfg)
	return Toolset{
		Name:    "ide",
		Summary: "the human's editor: problems, definitions, references, symbols, hover, open files",
		Tools: []*Tool{
			ideDiagnosticsTool(f), ideDefinitionTool(f, "ide_definition", bridge.KindDefinition), ideDefinitionTool(f, "ide_references", bridge.KindReferences),
			ideHoverTool(f), ideSymbolsTool(f), ideContextTool(f), ideOpenTool(f),
		},
	}
}

// ideArgs are the arguments of every ide tool (each takes a subset).
type ideArgs struct {
	SessionID   string `json:"session_id"`
	Path        string `json:"path"`
	Line        int    `json:"line"`
	Column      int    `json:"column"`
	EndLine     int    `json:"end_line"`
	Symbol      string `json:"symbol"`
	Query       string `json:"query"`
	Message     string `json:"message"`
	SeverityMin string `json:"severity_min"`
	Limit       int    `json:"limit"`
	TimeoutS    int    `json:"timeout_s"`
}

// Schema fragments of the ide tools' arguments.
const (
	ideSession = `"session_id":{"type":"string"}`
	idePath    = `"path":{"type":"string","description":"relative to the workspace"}`
	idePos     = `"line":{"type":"integer","minimum":1},"column":{"type":"integer","minimum":1}`
	ideSymbol  = `"symbol":{"type":"string","description":"a name, instead of path and line"}`
	ideLimit   = `"limit":{"type":"integer","minimum":1,"maximum":200}`
	ideTimeout = `"timeout_s":{"type":"integer","minimum":1,"maximum":60}`
)

func ideInput(props ...string) string {
	return `{"type":"object","additionalProperties":false,"required":["session_id"],"properties":{` + strings.Join(props, ",") + `}}`
}

// ideOutput is an output schema: the tool's own properties and who answered.
func ideOutput(props string) string {
	return `{"type":"object","required":["editor"],"properties":{"editor":{"type":"string"},` + props + `}}`
}

const (
	locationSchema = `{"type":"object","required":["path","line"],"properties":{"path":{"type":"string"},"line":{"type":"integer"},"column":{"type":"integer"},"end_line":{"type":"integer"},"end_column":{"type":"integer"}}}`
	moreSchema     = `"more":{"type":"integer"},"elsewhere":{"type":"integer"}`
)

func ideDiagnosticsTool(f *files) *Tool {
	return spec{
		name: "ide_diagnostics", title: "Problems in the editor",
		description: "List the problems (errors, warnings) the human's editor shows for a file or the whole project.",
		hints:       readOnly,
		input: ideInput(ideSession, `"path":{"type":"string","description":"none: the whole project"}`,
			`"severity_min":{"type":"string","enum":["error","warning","info","hint"]}`, ideLimit, ideTimeout),
		output: ideOutput(`"items":{"type":"array","items":{"type":"object","required":["path","line","severity","message"],"properties":{
			"path":{"type":"string"},"line":{"type":"integer"},"column":{"type":"integer"},"end_line":{"type":"integer"},"end_column":{"type":"integer"},
			"severity":{"type":"string"},"message":{"type":"string"},"source":{"type":"string"},"code":{"type":"string"}}}},` + moreSchema),
		example: `{"session_id":"01J…","path":"src/main.go"}`,
		handler: f.ide(bridge.KindDiagnostics),
	}.tool()
}

func ideDefinitionTool(f *files, name, kind string) *Tool {
	desc := "Find where the symbol at a position (or named) is defined, from the human's editor."
	title := "Go to definition"
	if kind == bridge.KindReferences {
		desc = "List the references to the symbol at a position (or named), from the human's editor."
		title = "Find references"
	}
	props := []string{ideSession, idePath, idePos, ideSymbol}
	if kind == bridge.KindReferences {
		props = append(props, ideLimit)
	}
	return spec{
		name: name, title: title, description: desc, hints: readOnly,
		input:   ideInput(append(props, ideTimeout)...),
		output:  ideOutput(`"locations":{"type":"array","items":` + locationSchema + `},` + moreSchema),
		example: `{"session_id":"01J…","path":"src/main.go","line":12,"column":8}`,
		handler: f.ide(kind),
	}.tool()
}

func ideHoverTool(f *files) *Tool {
	return spec{
		name: "ide_hover", title: "Hover",
		description: "Show the type and documentation of the symbol at a position (or named), from the human's editor.",
		hints:       readOnly,
		input:       ideInput(ideSession, idePath, idePos, ideSymbol, ideTimeout),
		output:      ideOutput(`"contents":{"type":"string"}`),
		example:     `{"session_id":"01J…","path":"src/main.go","line":12,"column":8}`,
		handler:     f.ide(bridge.KindHover),
	}.tool()
}

func ideSymbolsTool(f *files) *Tool {
	return spec{
		name: "ide_symbols", title: "Symbols",
		description: "List the symbols of a file (path), or search the project's symbols (query), from the human's editor.",
		hints:       readOnly,
		input:       ideInput(ideSession, idePath, `"query":{"type":"string"}`, ideLimit, ideTimeout),
		output: ideOutput(`"symbols":{"type":"array","items":{"type":"object","required":["name","kind","path","line"],"properties":{
			"name":{"type":"string"},"kind":{"type":"string"},"container":{"type":"string"},"path":{"type":"string"},"line":{"type":"integer"}}}},` + moreSchema),
		example: `{"session_id":"01J…","query":"Handler"}`,
		handler: f.ide(bridge.KindSymbols),
	}.tool()
}

func ideContextTool(f *files) *Tool {
	return spec{
		name: "ide_context", title: "Editor context",
		description: "Show the files the human has open, the active file and the selection, if the human allows it.",
		hints:       readOnly,
		input:       ideInput(ideSession, ideTimeout),
		output: ideOutput(`"editors":{"type":"array","items":{"type":"object","required":["path"],"properties":{
			"path":{"type":"string"},"first_line":{"type":"integer"},"last_line":{"type":"integer"}}}},
			"active":{"type":"object","required":["path"],"properties":{"path":{"type":"string"},"selection":` + locationSchema + `,"text":{"type":"string"}}},` + moreSchema),
		example: `{"session_id":"01J…"}`,
		handler: f.ide(bridge.KindContext),
	}.tool()
}

func ideOpenTool(f *files) *Tool {
	return spec{
		name: "ide_open", title: "Show a file to the human",
		description: "Ask the human's editor to show a file at a line, as a notification with an Open button.",
		hints:       hints{idempotent: true},
		input: ideInput(ideSession, idePath, `"line":{"type":"integer","minimum":1},"end_line":{"type":"integer","minimum":1}`,
			`"message":{"type":"string","description":"why the human should look"}`, ideTimeout),
		output:  ideOutput(`"shown":{"type":"boolean"},"opened":{"type":"boolean"}`),
		example: `{"session_id":"01J…","path":"src/main.go","line":12,"message":"is this check right?"}`,
		handler: f.ide(bridge.KindOpen),
	}.tool()
}

// Limits of the ide tools' arguments.
const (
	maxSymbolArg  = 200
	maxMessageArg = 500
	// ideWaitWrites is how many of the session's latest writes a
	// whole-project ide_diagnostics waits for the editor to see.
	ideWaitWrites = 8
)

var severities = map[string]int{"error": 1, "warning": 2, "info": 3, "hint": 4}

// ide returns the handler of the tool of kind: check the arguments,
// resolve the session's project and the path, ask the editor, show the
// answer.
func (f *files) ide(kind string) Handler {
	return func(ctx context.Context, c *Call) (Result, error) {
		var a ideArgs
		if err := decodeArgs(c, &a); err != nil {
			return Result{}, err
		}
		q, ws, err := f.ideQuestion(ctx, c, kind, a)
		if err != nil {
			return Result{}, err
		}
		ans, err := bridge.Ask(ctx, c.Scope, q)
		if err != nil {
			return Result{}, ideError(err)
		}
		c.record("editor_user", ans.Editor.User)
		return showIDE(kind, ws, ans), nil
	}
}

// ideQuestion turns a call's arguments into the question to the editor;
// ws is the session's directory relative to the project root ("." for
// the root), which the answer's paths are shown relative to.
func (f *files) ideQuestion(ctx context.Context, c *Call, kind string, a ideArgs) (bridge.Question, string, error) {
	var q bridge.Question
	for _, t := range []struct {
		name, v string
		max     int
	}{{"symbol", a.Symbol, maxSymbolArg}, {"query", a.Query, maxSymbolArg}, {"message", a.Message, maxMessageArg}} {
		if err := c.text(t.name, t.v, t.max, false, t.name != "message"); err != nil {
			return q, "", err
		}
	}
	if a.SeverityMin != "" {
		if err := c.oneOf("severity_min", a.SeverityMin, "error", "warning", "info", "hint"); err != nil {
			return q, "", err
		}
	}
	for _, n := range []struct {
		name   string
		v, max int
	}{{"line", a.Line, 0}, {"column", a.Column, 0}, {"end_line", a.EndLine, 0}, {"limit", a.Limit, bridge.MaxLimit}, {"timeout_s", a.TimeoutS, int(bridge.MaxTimeout / time.Second)}} {
		if n.v < 0 || (n.max > 0 && n.v > n.max) {
			bound := "at least 1"
			if n.max > 0 {
				bound = fmt.Sprintf("from 1 to %d", n.max)
			}
			return q, "", c.argError("%q must be %s, not %d", n.name, bound, n.v)
		}
	}
	switch kind {
	case bridge.KindDefinition, bridge.KindReferences, bridge.KindHover:
		if a.Symbol == "" && (a.Path == "" || a.Line == 0) {
			return q, "", c.argError("send %q and %q (and %q) of a symbol, or its name in %q", "path", "line", "column", "symbol")
		}
	case bridge.KindSymbols:
		if a.Path == "" && a.Query == "" {
			return q, "", c.argError("send %q for a file's symbols or %q to search the project's", "path", "query")
		}
	case bridge.KindOpen:
		if a.Path == "" {
			return q, "", c.argError("%q is required: the file to show, relative to the workspace", "path")
		}
		if a.EndLine != 0 && a.EndLine < a.Line {
			return q, "", c.argError("%q %d is before %q %d", "end_line", a.EndLine, "line", a.Line)
		}
	}
	if a.Column != 0 && a.Line == 0 {
		return q, "", c.argError("%q needs %q", "column", "line")
	}
	kindPlace := anyPlace
	if a.Path != "" {
		kindPlace = fileToRead
	}
	pl, err := f.place(ctx, c, a.SessionID, a.Path, kindPlace)
	if err != nil {
		return q, "", err
	}
	s, err := session.Get(ctx, c.Scope, pl.session)
	if err != nil {
		return q, "", err
	}
	ws := s.Dir
	if ws == "" {
		ws = "."
	}
	q = bridge.Question{Kind: kind, Project: pl.project.ID, ProjectName: pl.project.Name, Session: pl.session,
		Timeout: time.Duration(a.TimeoutS) * time.Second,
		Params: bridge.Params{Line: a.Line, Column: a.Column, EndLine: a.EndLine, Symbol: a.Symbol, Query: a.Query,
			Message: a.Message, Limit: a.Limit, SeverityMin: severities[a.SeverityMin]}}
	if a.Path != "" {
		q.Params.Path = pl.file.Rel
	} else if ws != "." && kind == bridge.KindDiagnostics {
		q.Params.Path = ws // the whole workspace: its directory's problems
	}
	if q.Params.Line != 0 && q.Params.Column == 0 && kind != bridge.KindOpen {
		q.Params.Column = 1
	}
	if id := c.Scope.Principal().Agent; id != "" {
		q.AgentLabel = id
		if ag, err := c.agentRecord(ctx); err == nil {
			q.AgentLabel = ag.Name
			if ag.Model != "" {
				q.AgentLabel += " (" + ag.Model + ")"
			}
		}
	}
	if kind == bridge.KindDiagnostics {
		if q.Params.WaitFor, err = lastWrites(ctx, c, pl.session, pl, ws, a.Path != ""); err != nil {
			return q, "", err
		}
	}
	return q, ws, nil
}

// lastWrites returns the contents the session's latest writes left (the
// hash recorded by the tool.called events of fs_write, fs_edit and
// fs_move), newest first and one per file: of the file rel only when
// one is set, else of up to ideWaitWrites files. A write the file no
// longer holds on disk (the human or another agent changed it since), a
// file a human has unsaved edits of, and a change made as a proposal
// (which records no hash) are not waited for: the editor would wait for
// a content it will never see.
func lastWrites(ctx context.Context, c *Call, sessionID string, pl place, ws string, one bool) ([]bridge.Wait, error) {
	page, err := c.Scope.Log().Query(ctx, audit.Query{Filter: audit.Filter{Session: sessionID, Kind: "tool.called"},
		Order: audit.NewestFirst, Limit: 200})
	if err != nil {
		return nil, err
	}
	projRoot := pl.root
	if ws != "." {
		projRoot = strings.TrimSuffix(pl.root, string(filepath.Separator)+filepath.FromSlash(ws))
	}
	root, err := os.OpenRoot(projRoot)
	if err != nil {
		return nil, nil // no root here: nothing to compare with, nothing to wait for
	}
	defer root.Close()
	var out []bridge.Wait
	seen := map[string]bool{}
	for _, ev := range page.Events {
		switch ev.Attrs["tool"] {
		case "fs_write", "fs_edit", "fs_move":
		default:
			continue
		}
		if ev.Attrs["outcome"] != string(OutcomeOK) || ev.Project != pl.project.ID || ev.Path == "" || seen[ev.Path] {
			continue
		}
		seen[ev.Path] = true
		h, _ := ev.Attrs["hash"].(string)
		if h == "" || (one && ev.Path != pl.file.Rel) || !holds(ctx, c, root, project.File{Project: pl.project.ID, Rel: ev.Path}, h) {
			continue
		}
		out = append(out, bridge.Wait{Path: ev.Path, SHA256: strings.TrimPrefix(h, attrib.HashPrefix)})
		if one || len(out) == ideWaitWrites {
			break
		}
	}
	return out, nil
}

// holds reports whether the project file f (under root) holds the content
// of hash on disk and no human has unsaved edits of it.
func holds(ctx context.Context, c *Call, root *os.Root, f project.File, hash string) bool {
	file, err := root.Open(filepath.FromSlash(f.Rel))
	if err != nil {
		return false
	}
	defer file.Close()
	got, err := attrib.HashReader(io.LimitReader(file, DefaultMaxFile+1))
	if err != nil || got != hash {
		return false
	}
	var eds []attrib.Editing
	err = c.Scope.Store().View(ctx, func(tx kv.ReadTx) error {
		eds, err = attrib.Editors(tx, c.Scope, f.String(), time.Now())
		return err
	})
	return err == nil && len(eds) == 0
}

// ideError tells a bridge error for a model: the bridge's sentence
// without the layer's prefixes, keeping the error's class.
func ideError(err error) error {
	msg := err.Error()
	for _, s := range []error{bridge.ErrNoEditor, bridge.ErrNotShared, bridge.ErrUnsupported, bridge.ErrTimeout, bridge.ErrEditor, bridge.ErrInvalid} {
		if errors.Is(err, s) {
			if i := strings.Index(msg, s.Error()+": "); i >= 0 {
				msg = msg[i+len(s.Error())+2:]
			}
			break
		}
	}
	msg = strings.TrimPrefix(msg, "bridge: ")
	return &toolError{err: err, msg: msg}
}

// wsPath shows a project-relative path relative to the workspace ws; ok
// is false for a file outside it.
func wsPath(ws, rel string) (string, bool) {
	if ws == "." || ws == "" {
		return rel, true
	}
	if rel == ws {
		return ".", true
	}
	if r, found := strings.CutPrefix(rel, ws+"/"); found {
		return r, true
	}
	return "", false
}

// ideLoc is a location as the tools show it.
type ideLoc struct {
	Path      string `json:"path"`
	Line      int    `json:"line"`
	Column    int    `json:"column,omitempty"`
	EndLine   int    `json:"end_line,omitempty"`
	EndColumn int    `json:"end_column,omitempty"`
}

func (l ideLoc) String() string {
	s := fmt.Sprintf("%s:%d", l.Path, l.Line)
	if l.Column > 0 {
		s += fmt.Sprintf(":%d", l.Column)
	}
	return s
}

// cleanRel is a project-relative path from an editor's answer, checked:
// relative, clean, not leaving the project.
func cleanRel(p string) (string, bool) {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") {
		return "", false
	}
	c := path.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", false
	}
	return c, true
}
