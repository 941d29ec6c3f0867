package localcore

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestForwarderKeys: a call of a keyed tool without a key gets one, the
// same for the same line (its seq) and different for another line, also
// one with the same request id, or another forwarder; keys grow with the
// seq; a call of a harmless tool gets one too (its record is keyed by
// it); a call with its own key (or null: none), a call of a tool neither
// keyed nor harmless, and arguments that are not an object are sent as
// they are.
func TestForwarderKeys(t *testing.T) {
	f := &Forwarder{Instance: "AAAA", Tools: map[string]ToolRetry{"note": {Keyed: true}, "whoami": {Harmless: true}, "fs_delete": {}}}
	g := &Forwarder{Instance: "BBBB", Tools: f.Tools}
	seq := uint64(0)
	key := func(f *Forwarder, line string) (string, bool) {
		t.Helper()
		var m message
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		seq++
		out, keyed := f.keyer().line([]byte(line), m, seq)
		var got struct {
			Params struct {
				Arguments map[string]any `json:"arguments"`
			} `json:"params"`
		}
		if err := json.Unmarshal(out, &got); err != nil && string(out) != line {
			t.Fatalf("%s: not JSON: %s", line, out)
		}
		k, _ := got.Params.Arguments["idempotency_key"].(string)
		if !strings.HasSuffix(string(out), "\n") && string(out) != line {
			t.Errorf("%s: no newline", out)
		}
		return k, keyed
	}
	call := func(id, tool, args string) string {
		return `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"` + tool + `","arguments":` + args + `}}`
	}
	k1, keyed := key(f, call("7", "note", `{"text":"x"}`))
	if !keyed || !strings.HasPrefix(k1, "core-AAAA-") || len(k1) > 128 {
		t.Errorf("added key %q (keyed %v)", k1, keyed)
	}
	seq--
	if k, _ := key(f, call("7", "note", `{"text":"x"}`)); k != k1 {
		t.Errorf("the same line sent again, key %q then %q", k1, k)
	}
	k2, _ := key(f, call("7", "note", `{"text":"x"}`))
	if k2 == k1 {
		t.Error("two requests with id 7 share a key")
	}
	if k2 <= k1 {
		t.Errorf("key %q of a later line sorts before %q", k2, k1)
	}
	seq--
	if k, _ := key(g, call("7", "note", `{"text":"x"}`)); k == k2 {
		t.Error("two forwarders share a key")
	}
	if k, keyed := key(f, call("8", "note", `{"text":"x","idempotency_key":"mine"}`)); k != "mine" || !keyed {
		t.Errorf("the client's own key: %q %v", k, keyed)
	}
	if k, keyed := key(f, call("9", "note", `{"text":"x","idempotency_key":null}`)); k != "" || keyed {
		t.Errorf("a null key: %q %v", k, keyed)
	}
	if k, keyed := key(f, call("10", "whoami", `{}`)); !keyed || !strings.HasPrefix(k, "core-AAAA-") {
		t.Errorf("a harmless tool: %q %v", k, keyed)
	}
	if k, keyed := key(f, call("10", "fs_delete", `{"path":"a"}`)); k != "" || keyed {
		t.Errorf("a tool neither keyed nor harmless: %q %v", k, keyed)
	}
	if _, keyed := key(f, call("11", "note", `"text"`)); keyed {
		t.Error("arguments that are not an object got a key")
	}
	if k, keyed := key(f, `{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"note"}}`); !keyed || k == "" {
		t.Errorf("a call without arguments: %q %v", k, keyed)
	}
	for _, args := range []string{`null`, `{}`, `{ }`} {
		if k, keyed := key(f, call("13", "note", args)); !keyed || k == "" {
			t.Errorf("arguments %s: %q %v", args, k, keyed)
		}
	}
}

// TestForwarderResendable: what is sent again to a new core.
func TestForwarderResendable(t *testing.T) {
	f := &Forwarder{Tools: map[string]ToolRetry{"note": {Keyed: true}, "whoami": {Harmless: true}, "odd": {}}}
	for _, tc := range []struct {
		fl   inflight
		want bool
	}{
		{inflight{}, true},                          // not a tool call (tools/list, ping, initialize)
		{inflight{tool: "note", keyed: true}, true}, // with a key
		{inflight{tool: "note"}, false},             // keyed tool sent without a key (null)
		{inflight{tool: "whoami"}, true},            // harmless
		{inflight{tool: "odd"}, false},              // neither
		{inflight{tool: "unknown-tool"}, false},     // not listed
		{inflight{tool: "odd", keyed: true}, true},  // the client's own key
	} {
		if got := f.resendable(&tc.fl); got != tc.want {
			t.Errorf("%+v: resendable %v, want %v", tc.fl, got, tc.want)
		}
	}
}

func TestIDKey(t *testing.T) {
	for in, want := range map[string]string{`7`: "n7", `7.0`: "n7", `"7"`: "s7", `null`: "", ``: "", `{}`: "", `[1]`: ""} {
		if got := idKey(json.RawMessage(in)); got != want {
			t.Errorf("idKey(%s) = %q, want %q", in, got, want)
		}
	}
}

// TestResponseID: the forwarder reads the id of mcp-go's responses
// without parsing them whole, and leaves every other line to the full
// parse.
func TestResponseID(t *testing.T) {
	for line, want := range map[string]string{
		`{"jsonrpc":"2.0","id":7,"result":{"content":[]}}`:                       "7",
		`{"jsonrpc":"2.0","id":-3,"error":{"code":-32600,"message":"x"}}`:        "-3",
		`{"jsonrpc":"2.0","id":"abc","result":{}}`:                               `"abc"`,
		`{"jsonrpc":"2.0","id":"a\"b","result":{}}`:                              "", // escapes: parsed whole
		`{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage","params":{}}`: "", // a request of the core
		`{"jsonrpc":"2.0","method":"notifications/progress","params":{}}`:        "",
		`{"id":7,"jsonrpc":"2.0","result":{}}`:                                   "", // another member order
		`{"jsonrpc":"2.0","id":7.5,"result":{}}`:                                 "",
	} {
		id, ok := responseID([]byte(line))
		if got := string(id); ok != (want != "") || got != want {
			t.Errorf("responseID(%s) = %q, %v; want %q", line, got, ok, want)
		}
	}
	// Whatever path reads an id, a request's key and its response's match.
	for _, pair := range [][2]string{{`1234567`, `1234567.0`}, {`7`, `7.0`}, {`"x"`, `"\u0078"`}, {`9007199254740993`, `9007199254740993`}} {
		if a, b := idKey(json.RawMessage(pair[0])), idKey(json.RawMessage(pair[1])); a != b || a == "" {
			t.Errorf("idKey(%s) = %q, idKey(%s) = %q", pair[0], a, pair[1], b)
		}
	}
}

// TestForwarderKeyKeepsTheRest: the line with an added key keeps every
// other member of the request, its params and its arguments.
func TestForwarderKeyKeepsTheRest(t *testing.T) {
	f := &Forwarder{Instance: "AAAA", Tools: map[string]ToolRetry{"note": {Keyed: true}}}
	line := `{"jsonrpc":"2.0","id":"r1","method":"tools/call","params":{"_meta":{"progressToken":5},"name":"note","arguments":{ "text":"a\nb","kind":"decision" }}}`
	var m message
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatal(err)
	}
	out, keyed := f.keyer().line([]byte(line), m, 1)
	var got, want map[string]any
	if err := json.Unmarshal(out, &got); err != nil || !keyed {
		t.Fatalf("%s: %v (keyed %v)", out, err, keyed)
	}
	_ = json.Unmarshal([]byte(line), &want)
	args := got["params"].(map[string]any)["arguments"].(map[string]any)
	if k, _ := args["idempotency_key"].(string); !strings.HasPrefix(k, "core-AAAA-") {
		t.Errorf("no key added: %s", out)
	}
	delete(args, "idempotency_key")
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("the request changed beyond its key:\n got %s\nwant %s", g, w)
	}
}

// TestForwarderKeySplice: the key goes into the arguments in place,
// leaving every other byte of the line as the client wrote it; when the
// arguments' text occurs twice in the line, the line is rebuilt and the
// key still lands in the arguments only.
func TestForwarderKeySplice(t *testing.T) {
	f := &Forwarder{Instance: "AAAA", Tools: map[string]ToolRetry{"note": {Keyed: true}}}
	add := func(line string) string {
		t.Helper()
		var m message
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		out, keyed := f.keyer().line([]byte(line), m, 1)
		if !keyed {
			t.Fatalf("%s: not keyed", line)
		}
		return string(out)
	}
	line := `{"method":"tools/call", "params":{"arguments":{"text":"x"},"name":"note"},"id":3,"jsonrpc":"2.0"}`
	out := add(line)
	i := strings.Index(out, `{"idempotency_key":"core-AAAA-`)
	j := strings.Index(out[i:], `","text":"x"}`)
	if i < 0 || j < 0 || out[:i]+`{"text":"x"}`+out[i+j+len(`","text":"x"}`):] != line+"\n" {
		t.Errorf("spliced %s\nfrom %s", out, line)
	}
	twice := `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"_meta":{"text":"x"},"name":"note","arguments":{"text":"x"}}}`
	var got struct {
		Params struct {
			Meta      map[string]any `json:"_meta"`
			Arguments map[string]any `json:"arguments"`
		} `json:"params"`
	}
	if err := json.Unmarshal([]byte(add(twice)), &got); err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Params.Meta["idempotency_key"]; ok || got.Params.Arguments["idempotency_key"] == nil || got.Params.Arguments["text"] != "x" {
		t.Errorf("arguments %v, _meta %v", got.Params.Arguments, got.Params.Meta)
	}
}

// BenchmarkKeyerLine: adding the forwarder's key to a typical call, as a
// core reading the client's input does for each keyed call.
func BenchmarkKeyerLine(b *testing.B) {
	k := newKeyer("AAAA", []string{"message_send"})
	line := []byte(`{"method":"tools/call","params":{"name":"message_send","arguments":{"to":"ag_06H4JDZDTWH6P7QWP4PEMMZH3M","body":"agentbench message"},"_meta":{"progressToken":12}},"jsonrpc":"2.0","id":12}` + "\n")
	var m message
	if err := json.Unmarshal(line, &m); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, keyed := k.line(line, m, 12); !keyed {
			b.Fatal("not keyed")
		}
	}
}
