package tools

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// --- fs_find ---

type findArgs struct {
	SessionID  string `json:"session_id"`
	Glob       string `json:"glob"`
	Name       string `json:"name"`
	Path       string `json:"path"`
	MaxResults int    `json:"max_results"`
}

type foundEntry struct {
	Path string `json:"path"`
	Type string `json:"type"`
	Size int64  `json:"size,omitempty"`
}

type findOut struct {
	Entries []foundEntry `json:"entries"`
	// Total counts the entries found; Entries shows the first ones in path
	// order.
	Total    int  `json:"total"`
	TimedOut bool `json:"timed_out,omitempty"`
}

func (fd finder) findTool() *Tool {
	return spec{
		name: "fs_find", title: "Find files",
		description: "Find files and folders of a session's workspace by glob or part of their name; skips .gitignore'd ones.",
		hints:       readOnly,
		input: `{"type":"object","required":["session_id"],"additionalProperties":false,"properties":{
			"session_id":{"type":"string"},
			"glob":{"type":"string","description":"e.g. *.go (any depth) or src/**/*_test.go"},
			"name":{"type":"string","description":"Part of the name, any case, e.g. login"},
			"path":{"type":"string","description":"Folder to look in; default all"},
			"max_results":{"type":"integer","minimum":1,"maximum":1000,"description":"Default 100"}}}`,
		output: `{"type":"object","required":["entries","total"],"properties":{
			"entries":{"type":"array","items":{"type":"object","required":["path","type"],"properties":{
			"path":{"type":"string"},"type":{"type":"string","enum":["file","dir"]},"size":{"type":"integer"}}}},
			"total":{"type":"integer"},"timed_out":{"type":"boolean"}}}`,
		example: `{"session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T","glob":"**/*_test.go"}`,
		handler: fd.find,
	}.tool()
}

func (fd finder) find(ctx context.Context, c *Call) (Result, error) {
	var a findArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	if _, err := c.sessionID(a.SessionID, true); err != nil {
		return Result{}, err
	}
	g, err := c.glob("glob", a.Glob)
	if err != nil {
		return Result{}, err
	}
	if err := c.text("name", a.Name, maxPatternArg, false, true); err != nil {
		return Result{}, err
	}
	limit := defaultFindResults
	switch {
	case a.MaxResults < 0 || a.MaxResults > maxFindResults:
		return Result{}, c.argError("%q must be between 1 and %d, not %d", "max_results", maxFindResults, a.MaxResults)
	case a.MaxResults > 0:
		limit = a.MaxResults
	}
	t, err := fd.openTree(ctx, c, a.SessionID, a.Path)
	if err != nil {
		return Result{}, err
	}
	defer t.close()
	name := strings.ToLower(a.Name)
	start := time.Now()
	out := findOut{Entries: []foundEntry{}}
	var b strings.Builder
	t.walk(func(en entry) bool {
		rel, d := en.rel, en.d
		if !g.match(rel) || !strings.Contains(strings.ToLower(d.Name()), name) {
			return true
		}
		out.Total++
		if len(out.Entries) >= limit || b.Len() > maxFoundOutput-512 {
			return true
		}
		e := foundEntry{Path: rel, Type: "file"}
		if d.IsDir() {
			e.Type = "dir"
			fmt.Fprintf(&b, "%s/\n", rel)
		} else {
			if fi, err := en.dir.Lstat(en.name); err == nil {
				e.Size = fi.Size()
			}
			fmt.Fprintf(&b, "%s %d\n", rel, e.Size)
		}
		out.Entries = append(out.Entries, e)
		return true
	})
	out.TimedOut = t.timedOut
	c.record("found", out.Total)
	switch rest := out.Total - len(out.Entries); {
	case out.Total == 0:
		b.WriteString("Nothing found")
		if a.Glob != "" && a.Name != "" {
			b.WriteString(" (an entry must match both glob and name)")
		}
		b.WriteString(". Ignored files (.gitignore, dependency and build folders) are not listed unless path names their folder.")
	case rest > 0:
		fmt.Fprintf(&b, "%d more not shown: narrow it with path, glob or name, or raise max_results (at most %d).", rest, maxFindResults)
	default:
		fmt.Fprintf(&b, "%d found.", out.Total)
	}
	if out.TimedOut {
		fmt.Fprintf(&b, " The walk stopped after %.1f s; narrow it with path.", time.Since(start).Seconds())
	}
	return Result{Structured: out, Text: strings.TrimSuffix(b.String(), "\n")}, nil
}
