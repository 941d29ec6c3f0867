package tools

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/sqlite"
	"github.com/coditect/coditect/storage/tenant"
)

// argsEnv is a store with a session over a real project directory, a task
// and a second agent, so that every tool's example, with the ids put in,
// is a call that can succeed.
type argsEnv struct {
	st    kv.Store
	sc    *tenant.Scope
	h     Handler
	tools map[string]*Tool
	root  string
	// ids replace the example's placeholder values of these arguments.
	ids map[string]any
}

// srcMain is src/main.go of the project: the examples edit and read it.
const srcMain = "package main\n\nfunc status() int {\n\treturn 301\n}\n"

func newArgsEnv(t *testing.T) *argsEnv {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"), sqlite.Options{Synchronous: sqlite.SyncNormal})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	dir := tenant.NewDirectory(st, "test")
	op, err := dir.Local(ctx, "t1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	e := &argsEnv{st: st, root: t.TempDir(), tools: map[string]*Tool{}}
	if e.sc, err = op.WithAgent(mustRegister(t, op, "tester")); err != nil {
		t.Fatal(err)
	}
	mustRegister(t, op, "reviewer") // the example's message_send recipient
	for rel, content := range map[string]string{
		"src/main.go": srcMain, "src/a.go": srcMain, "src/hello.go": "package main\n", "src/auth/login.go": srcMain,
	} {
		p := filepath.Join(e.root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, set := range Catalog(Config{}) {
		for _, tool := range set.Tools {
			e.tools[tool.Name()] = tool
		}
	}
	// One heartbeat per hour: the fixture's first call beats, the probes
	// after it do not, so that a probe's only write is its audit record.
	beat := Heartbeat(time.Hour, nil)
	e.h = func(ctx context.Context, c *Call) (Result, error) {
		return Chain(beat, Audit(nil, nil))(c.Tool.Handler)(ctx, c)
	}
	m := e.mustCall(t, "session_start", map[string]any{"title": "arguments", "workspace": e.root})
	sid := m["session_id"].(string)
	m = e.mustCall(t, "task_create", map[string]any{"title": "a task"})
	e.ids = map[string]any{"session_id": sid, "workspace": e.root, "task_id": m["task_id"], "version": m["version"]}
	return e
}

func mustRegister(t *testing.T, sc *tenant.Scope, name string) string {
	t.Helper()
	ag, err := agent.Register(context.Background(), sc, agent.Registration{Name: name, Client: "go-test", Model: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	return ag.ID
}

// call runs a tool through the production middleware with raw arguments.
func (e *argsEnv) call(name string, args []byte) (Result, error) {
	c := &Call{Caller: Caller{Scope: e.sc, Client: mcp.Implementation{Name: "go-test", Version: "1"}},
		Tool: e.tools[name], Args: args, Started: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return e.h(ctx, c)
}

func (e *argsEnv) mustCall(t *testing.T, name string, args map[string]any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(args)
	res, err := e.call(name, b)
	if err != nil {
		t.Fatalf("%s %s: %s", name, b, errorText(name, err))
	}
	b, _ = json.Marshal(res.Structured)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// state is everything a call may change: every key of the store but the
// audit log's own (a refused call is audited), and every file of the
// project with its mode and a hash of its content.
func (e *argsEnv) state(t *testing.T) string {
	t.Helper()
	ts, err := keyspace.Tenant(e.sc.Tenant())
	if err != nil {
		t.Fatal(err)
	}
	audited := []keyspace.Subspace{ts.Audit(), ts.AuditIndexes()}
	counter, err := ts.Counter("audit_events")
	if err != nil {
		t.Fatal(err)
	}
	single := [][]byte{ts.AuditHead(), ts.AuditHighWater(), ts.AuditRegression(), counter}
	// The idempotency markers of tool.called records (Call.recordKey):
	// keys whose id starts with recordKeyPrefix (a tuple string without
	// its terminating 0x00).
	marker, err := ts.Idempotency(recordKeyPrefix)
	if err != nil {
		t.Fatal(err)
	}
	marker = bytes.TrimSuffix(marker, []byte{0x00})
	var buf bytes.Buffer
	err = e.st.View(context.Background(), func(tx kv.ReadTx) error {
		buf.Reset()
		it := tx.GetRange([]byte{0x00}, []byte{0xff}, kv.RangeOptions{})
		for it.Next() {
			p := it.KeyValue()
			if slices.ContainsFunc(audited, func(s keyspace.Subspace) bool { return s.Contains(p.Key) }) ||
				slices.ContainsFunc(single, func(k []byte) bool { return bytes.Equal(k, p.Key) }) ||
				bytes.HasPrefix(p.Key, marker) {
				continue
			}
			fmt.Fprintf(&buf, "%x=%x\n", p.Key, p.Value)
		}
		return it.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(e.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sum := ""
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum = fmt.Sprintf("%x", sha256.Sum256(b))
		}
		fmt.Fprintf(&buf, "%s %v %s\n", p, fi.Mode(), sum)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// lastOutcome returns the outcome of the tenant's latest tool.called event
// and how many there are.
func (e *argsEnv) lastOutcome(t *testing.T) (string, int) {
	t.Helper()
	p, err := e.sc.Log().Query(context.Background(), audit.Query{Filter: audit.Filter{Kind: "tool.called"}, Order: audit.NewestFirst, Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) == 0 {
		return "", 0
	}
	o, _ := p.Events[0].Attrs["outcome"].(string)
	return o, len(p.Events)
}

// validArgs is the tool's example with the environment's ids put in.
func (e *argsEnv) validArgs(t *testing.T, tool *Tool) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(tool.example), &m); err != nil || m == nil {
		t.Fatalf("%s: the example %q is not an arguments object: %v", tool.Name(), tool.example, err)
	}
	for k, v := range e.ids {
		if _, ok := m[k]; ok {
			m[k] = v
		}
	}
	return m
}

// probe is an arguments object that breaks the schema at one argument.
type probe struct {
	what, field string
	args        any
}

// probes breaks the valid arguments args (of the object schema s) in every
// way the check must refuse: each required argument dropped, set to null
// or sent with a wrong type, each argument sent with a wrong type, each
// enumerated one with a value outside the enum, an argument sent without
// (or with a null) one its schema says it needs (dependentRequired), and
// an unknown argument. It descends into lists of objects the example
// holds.
func probes(s *argSchema, path string, args map[string]any) []probe {
	var out []probe
	with := func(name string, v any, drop bool) map[string]any {
		m := clone(args)
		if drop {
			delete(m, name)
		} else {
			m[name] = v
		}
		return m
	}
	for _, name := range s.required {
		out = append(out,
			probe{"without " + name, join(path, name), with(name, nil, true)},
			probe{name + " null", join(path, name), with(name, nil, false)})
	}
	for _, p := range s.props {
		for _, v := range wrongValues(p.schema.typ) {
			out = append(out, probe{fmt.Sprintf("%s %s", p.name, mustJSON(v)), join(path, p.name), with(p.name, v, false)})
		}
		if len(p.schema.enum) > 0 {
			out = append(out, probe{p.name + " outside the enum", join(path, p.name), with(p.name, "not-a-"+p.name, false)})
		}
		list, _ := args[p.name].([]any)
		if p.schema.items == nil || p.schema.items.typ != "object" || len(list) == 0 {
			continue
		}
		for _, inner := range probes(p.schema.items, fmt.Sprintf("%s[0]", join(path, p.name)), list[0].(map[string]any)) {
			l := slices.Clone(list)
			l[0] = inner.args
			inner.args = with(p.name, l, false)
			out = append(out, inner)
		}
	}
	for name, deps := range s.dependents {
		for _, dep := range deps {
			if _, ok := args[dep]; ok {
				continue
			}
			m := with(name, sample(s.prop(name).typ), false)
			out = append(out, probe{name + " without " + dep, join(path, dep), m})
			m = clone(m)
			m[dep] = nil
			out = append(out, probe{name + " with " + dep + " null", join(path, dep), m})
		}
	}
	if s.closed {
		out = append(out, probe{"an unknown argument", join(path, "colour"), with("colour", "blue", false)})
	}
	return out
}

// sample is a value of the schema type typ.
func sample(typ string) any {
	switch typ {
	case "string":
		return "return 301"
	case "integer", "number":
		return 1
	case "boolean":
		return true
	case "array":
		return []any{}
	}
	return map[string]any{}
}

// wrongValues are values that are not of the schema type typ.
func wrongValues(typ string) []any {
	switch typ {
	case "string":
		return []any{7, true, []any{"x"}}
	case "integer":
		return []any{"7", 1.5, 1e30, false}
	case "number":
		return []any{"7", true}
	case "boolean":
		return []any{"true", 1}
	case "array":
		return []any{"x", map[string]any{"x": 1}}
	case "object":
		return []any{"x", []any{1}}
	}
	return nil
}

func clone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestEveryToolChecksArguments walks every tool of every toolset: each
// required argument dropped, null or of a wrong type, each argument of a
// wrong type or outside its enum, an unknown argument — every such call
// fails as invalid arguments naming the argument and leaves the store
// (but for the call's own audit record) and the project's files as they
// were. The tool's example, with real ids, then does not fail for its
// arguments.
func TestEveryToolChecksArguments(t *testing.T) {
	var names []string
	for _, set := range Catalog(Config{}) {
		for _, tool := range set.Tools {
			names = append(names, tool.Name())
		}
	}
	checked := 0
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			e := newArgsEnv(t)
			tool := e.tools[name]
			valid := e.validArgs(t, tool)
			for _, p := range probes(tool.args, "", valid) {
				before := e.state(t)
				_, calls := e.lastOutcome(t)
				args := mustJSON(p.args)
				_, err := e.call(name, []byte(args))
				text := ""
				if err != nil {
					text = errorText(name, err)
				}
				switch {
				case err == nil:
					t.Errorf("%s (%s): succeeded", p.what, args)
				case Classify(err) != OutcomeInvalid:
					t.Errorf("%s (%s): outcome %s, want %s: %s", p.what, args, Classify(err), OutcomeInvalid, text)
				case !strings.Contains(text, fmt.Sprintf("%q", p.field)):
					t.Errorf("%s (%s): the error does not name %q: %s", p.what, args, p.field, text)
				}
				if after := e.state(t); after != before {
					t.Errorf("%s (%s): the call changed the store or the files:\n%s", p.what, args, diff(before, after))
				}
				if o, n := e.lastOutcome(t); n != calls+1 || o != string(OutcomeInvalid) {
					t.Errorf("%s (%s): audit: %d tool.called events after %d, the last %q", p.what, args, n, calls, o)
				}
				checked++
			}
			args := mustJSON(valid)
			if _, err := e.call(name, []byte(args)); err != nil {
				if Classify(err) == OutcomeInvalid {
					t.Errorf("the example %s: %s", args, errorText(name, err))
				} else {
					t.Logf("the example %s: %s (%s)", args, Classify(err), errorText(name, err))
				}
			}
		})
	}
	t.Logf("%d tools, %d refused calls checked", len(names), checked)
}

// diff returns the lines of a that b lacks and those b adds.
func diff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, l := range al {
		if !slices.Contains(bl, l) {
			out = append(out, "- "+textclip.Clip(l, 200))
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			out = append(out, "+ "+textclip.Clip(l, 200))
		}
	}
	return strings.Join(out, "\n")
}

// TestEditNeedsReplace: fs_edit without replace, or with replace null,
// fails and leaves the file as it was (it used to delete the search text
// and report success).
func TestEditNeedsReplace(t *testing.T) {
	e := newArgsEnv(t)
	sid := e.ids["session_id"]
	for _, args := range []map[string]any{
		{"session_id": sid, "path": "src/main.go", "search": "\treturn 301\n"},
		{"session_id": sid, "path": "src/main.go", "search": "\treturn 301\n", "replace": nil},
	} {
		before := e.state(t)
		_, err := e.call("fs_edit", []byte(mustJSON(args)))
		if err == nil || Classify(err) != OutcomeInvalid || !strings.Contains(err.Error(), `"replace" is required`) {
			t.Errorf("fs_edit %s: %v", mustJSON(args), err)
		}
		if after := e.state(t); after != before {
			t.Errorf("fs_edit %s changed the store or the files:\n%s", mustJSON(args), diff(before, after))
		}
		if b, _ := os.ReadFile(filepath.Join(e.root, "src", "main.go")); string(b) != srcMain {
			t.Errorf("src/main.go holds %q", b)
		}
	}
	// An empty replacement is a deletion the caller asked for.
	e.mustCall(t, "fs_edit", map[string]any{"session_id": sid, "path": "src/main.go", "search": "\treturn 301\n", "replace": ""})
	if b, _ := os.ReadFile(filepath.Join(e.root, "src", "main.go")); string(b) != strings.Replace(srcMain, "\treturn 301\n", "", 1) {
		t.Errorf("src/main.go holds %q", b)
	}
}

// TestArgSchemaMessages: what the check says, for a schema using every
// keyword it enforces.
func TestArgSchemaMessages(t *testing.T) {
	s, err := parseArgSchema(schema(`{"type":"object","required":["path","edits"],"additionalProperties":false,
		"dependentRequired":{"search":["replace"]},"properties":{
		"path":{"type":"string","description":"Relative to the workspace root"},
		"mode":{"type":"string","enum":["a","b"]},
		"search":{"type":"string"},"replace":{"type":"string"},
		"limit":{"type":"integer","minimum":1},
		"ratio":{"type":"number"},
		"edits":{"type":"array","items":{"type":"object","required":["search","replace"],"additionalProperties":false,"properties":{
			"search":{"type":"string"},"replace":{"type":"string"}}}},
		"tags":{"type":"array","items":{"type":"string"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	ok := `"path":"a.go","edits":[{"search":"x","replace":"y"}]`
	for _, c := range []struct{ args, want string }{
		{`{` + ok + `}`, ""},
		{`{` + ok + `,"mode":"c","limit":0,"ratio":-1.5e3,"tags":[]}`, ""}, // enum and bounds are the handlers'
		{`{` + ok + `,"limit":null}`, ""},                                  // an optional null is absent
		{`{"edits":[]}`, `"path" is required: relative to the workspace root`},
		{`{"path":null,"edits":[]}`, `"path" is required: relative to the workspace root`},
		{`{"path":"a.go"}`, `"edits" is required: a list`},
		{`{` + ok + `,"search":"x"}`, `"replace" is required with "search": a string`},
		{`{` + ok + `,"search":"x","replace":null}`, `"replace" is required with "search"`},
		{`{"path":"a.go","edits":[{"search":"x"}]}`, `"edits[0].replace" is required`},
		{`{"path":"a.go","edits":[{"search":"x","replace":"y"},{"search":"x","replace":3}]}`, `"edits[1].replace" must be a string, not a number`},
		{`{"path":"a.go","edits":[{"search":"x","replace":"y","path":"b"}]}`, `unknown argument "edits[0].path"`},
		{`{"path":"a.go","edits":[null]}`, `"edits[0]" must be an object, not null`},
		{`{` + ok + `,"tags":["a",1]}`, `"tags[1]" must be a string, not a number`},
		{`{"path":7,"edits":[]}`, `"path" must be a string, not a number`},
		{`{"path":"a.go","edits":{}}`, `"edits" must be a list, not an object`},
		{`{` + ok + `,"limit":"ten"}`, `"limit" must be a whole number, not a string`},
		{`{` + ok + `,"limit":1.5}`, `"limit" must be a whole number, not 1.5`},
		{`{` + ok + `,"limit":1e3}`, `"limit" must be a whole number, not 1e3`},
		{`{` + ok + `,"limit":99999999999999999999}`, `"limit" must be a whole number, not 99999999999999999999`},
		{`{` + ok + `,"ratio":true}`, `"ratio" must be a number, not a boolean`},
		{`{` + ok + `,"Path":"b"}`, `unknown argument "Path"`},
		{`{` + ok + `,"z":1,"colour":2}`, `unknown argument "colour"`},
		{`{` + ok + `} {}`, `arguments must be one JSON object`},
		{`{"path":`, `arguments are not valid JSON`},
		{`[1]`, `arguments must be a JSON object`},
		{`null`, `"path" is required`},
	} {
		c2 := &Call{Tool: &Tool{Def: mcp.Tool{Name: "t", RawInputSchema: schema(`{"type":"object","properties":{"path":{"type":"string"}}}`)}, args: s},
			Args: json.RawMessage(c.args)}
		err := c2.checkArgs()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.args, err)
		case c.want != "" && (err == nil || !strings.HasPrefix(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.args, err, c.want)
		}
	}
}

// TestArgSchemaRefusesUnknownKeywords: a keyword the check does not know
// fails the schema, so that no schema promises a check nobody makes.
func TestArgSchemaRefusesUnknownKeywords(t *testing.T) {
	for _, s := range []string{
		`{"type":"object","properties":{"a":{"type":"string","pattern":"^x"}}}`,
		`{"type":"object","properties":{"a":{"type":["string","null"]}}}`,
		`{"type":"object","properties":{"a":{"type":"text"}}}`,
		`{"type":"object","required":["b"],"properties":{"a":{"type":"string"}}}`,
		`{"type":"object","additionalProperties":{"type":"string"}}`,
		`{"type":"object","oneOf":[{"required":["a"]},{"required":["b"]}]}`,
	} {
		if _, err := parseArgSchema(json.RawMessage(s)); err == nil {
			t.Errorf("%s: parsed", s)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("spec.tool accepted an input schema with an unknown keyword")
		}
	}()
	spec{name: "x", input: `{"type":"object","properties":{"a":{"type":"string","format":"uri"}}}`, output: `{}`}.tool()
}

// BenchmarkCheckArgs measures what the argument check adds to a call: a
// typical fs_edit arguments object.
func BenchmarkCheckArgs(b *testing.B) {
	var tool *Tool
	for _, tl := range Files(Config{}).Tools {
		if tl.Name() == "fs_edit" {
			tool = tl
		}
	}
	args := json.RawMessage(`{"session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T","path":"src/auth/login.go","search":"\tif u == nil {\n\t\treturn http.StatusMovedPermanently\n\t}\n","replace":"\tif u == nil {\n\t\treturn http.StatusFound\n\t}\n"}`)
	c := &Call{Tool: tool, Args: args}
	b.ReportAllocs()
	for b.Loop() {
		if err := c.checkArgs(); err != nil {
			b.Fatal(err)
		}
	}
}
