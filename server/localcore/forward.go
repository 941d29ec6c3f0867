package localcore

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ToolRetry says what a forwarder may do with a call of a tool that was
// in flight when its core died.
type ToolRetry struct {
	// Keyed: the tool takes an idempotency_key (its input schema has the
	// property), so a call sent with one runs at most once however often
	// it is sent.
	Keyed bool
	// Harmless: sending the call again cannot change anything twice (the
	// tool only reads, or is idempotent and not destructive).
	Harmless bool
}

// AddsKey reports whether a forwarder (or a core reading its client's
// input) adds an idempotency key to the tool's calls: a keyed tool's call
// then runs at most once, and a harmless tool's, which may run again when
// sent again, is recorded once (its tool.called record is keyed by it).
func (r ToolRetry) AddsKey() bool { return r.Keyed || r.Harmless }

// Forwarder relays one MCP stdio client (newline-delimited JSON-RPC on In
// and Out) to a local core, which writes its answers to Out itself when
// it agreed to (Answers; see answers.go) and otherwise sends them back to
// be relayed, and replaces a core that dies: it connects to
// a new one, replays the client's initialize and initialized (the
// client sees no second answer) and sends again the requests that were in
// flight. Before it first sends a call of a keyed tool that carries no
// idempotency_key, it adds one derived from its Instance and the request's
// seq (keyer.line), so that a call sent again runs at most once; an
// in-flight call that can be neither sent again safely is answered with a
// tool error saying the core restarted and its outcome is unknown.
type Forwarder struct {
	// In yields the client's messages, one a line.
	In io.Reader
	// Out receives the messages for the client, one line a Write; it must
	// be safe for concurrent use (LineWriter).
	Out io.Writer
	// Connect returns a new connection to a core, past its hello.
	Connect func(ctx context.Context) (net.Conn, error)
	// Tools says what may be sent again of each tool's calls; a tool not
	// named is neither keyed nor harmless.
	Tools map[string]ToolRetry
	// Instance tells this forwarder's idempotency keys from others'.
	Instance string
	Logger   *slog.Logger
	// Answers, when set, was passed to the cores (Hello.WithAnswers): a
	// core that agreed writes its answers to the client itself.
	Answers *Answers

	wmu     sync.Mutex // serialises writes to the core
	mu      sync.Mutex
	conn    net.Conn
	seq     uint64
	pending map[string]*inflight
	// direct: the current core writes its answers to the client (see
	// answers.go); pending is then pruned from the answer ring.
	direct bool
	// held is the bytes of the pending requests (at the last prune, plus
	// those sent since); prune runs when pending or held reach pruneAt
	// or pruneAtBytes.
	held, pruneAt, pruneAtBytes int
	init                        []byte // the client's initialize, as sent
	inited                      []byte // the client's notifications/initialized
	inputEnd                    bool
	restarts                    int
	// reads: the current core reads the client's input itself (see
	// journal.go); readingSelf: the forwarder does (always, once it has).
	reads, readingSelf bool
	// partial is the line a core that read the input left unfinished,
	// and skip says it continues a line too long to keep.
	partial []byte
	skip    bool
	input   chan error // the end of the forwarder's own reading
	keys    keyer      // f.keyer(), made once
}

type inflight struct {
	seq  uint64
	line []byte
	// tool is the tool a tools/call calls; "" for other requests.
	tool string
	// keyed: the call carries an idempotency key (the client's or ours).
	keyed bool
}

// message is what the forwarder reads of a JSON-RPC message.
type message struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"params"`
}

// Restarts is how many times the forwarder replaced its core.
func (f *Forwarder) Restarts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restarts
}

// Run forwards until the client's input ends and the core has answered
// (or ctx ends), starting with the connection c.
func (f *Forwarder) Run(ctx context.Context, c net.Conn) error {
	if f.Logger == nil {
		f.Logger = slog.New(slog.DiscardHandler)
	}
	f.conn = c
	f.direct = f.Answers != nil && AnswersDirectly(c)
	f.reads = f.direct && ReadsDirectly(c)
	f.pending = map[string]*inflight{}
	f.keys = f.keyer()
	f.pruneAt, f.pruneAtBytes = minPruneAt, minPruneBytes
	out := &lineWriter{w: f.Out} // the forwarder's own writes in order
	f.input = make(chan error, 1)
	f.mu.Lock()
	if f.reads {
		_, _ = c.Write([]byte(inControl + "\n"))
	} else {
		f.readSelf(out)
	}
	f.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- f.fromCore(ctx, out) }()
	var inErr, err error
	select {
	case inErr = <-f.input:
		f.mu.Lock()
		f.inputEnd = true
		_ = closeWrite(f.conn)
		f.mu.Unlock()
		select {
		case err = <-done:
		case <-ctx.Done():
			err = ctx.Err()
		}
	case err = <-done:
		// No core could be reached: nothing would answer the client, so
		// the forwarder ends (its stdout closes) instead of hanging.
	case <-ctx.Done():
		err = ctx.Err()
	}
	f.mu.Lock()
	f.conn.Close()
	f.mu.Unlock()
	if inErr != nil && !errors.Is(inErr, io.EOF) {
		return inErr
	}
	return err
}

// readSelf starts the forwarder's own reading of the client's input,
// after the line a core that read it left unfinished. f.mu is held.
func (f *Forwarder) readSelf(out *lineWriter) {
	f.readingSelf = true
	if f.Answers != nil {
		f.Answers.selfRead.Store(true)
	}
	in := f.In
	if len(f.partial) > 0 {
		in = io.MultiReader(bytes.NewReader(f.partial), in)
		f.partial = nil
	}
	go func() { f.input <- f.fromClient(in) }()
}

// fromClient sends the client's messages to the core, remembering the
// requests in flight and the handshake.
func (f *Forwarder) fromClient(in io.Reader) error {
	br := bufio.NewReaderSize(in, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 { // blank lines too: the core answers them as a direct process does
			if line[len(line)-1] != '\n' {
				line = append(line, '\n')
			}
			f.send(line)
		}
		if err != nil {
			return err
		}
	}
}

func (f *Forwarder) send(line []byte) {
	var m message
	parsed := json.Unmarshal(line, &m) == nil
	f.mu.Lock()
	if f.direct && line[0] == '@' {
		// Not a control line, and not JSON: the core answers a parse
		// error, as to any line that is not.
		line = append([]byte{' '}, line...)
	}
	if parsed {
		switch m.Method {
		case "initialize":
			f.init = bytes.Clone(line)
		case "notifications/initialized":
			f.inited = bytes.Clone(line)
		}
		if key := idKey(m.ID); key != "" && m.Method != "" {
			fl := &inflight{seq: f.seq}
			f.seq++
			if m.Method == "tools/call" {
				fl.tool = m.Params.Name
				line, fl.keyed = f.keys.line(line, m, fl.seq)
			}
			fl.line = line
			f.pending[key] = fl
			if f.direct {
				f.held += len(line)
				f.prune()
			}
			line = f.wire(key, fl)
		}
	}
	c := f.conn
	f.mu.Unlock()
	// A write to a core that died fails or is lost; the request is in
	// pending, and replace sends it again to the next core. Writes hold
	// no lock that reading the core's answers needs.
	f.wmu.Lock()
	_, _ = c.Write(line)
	f.wmu.Unlock()
}

// minPruneAt is the most requests a forwarder whose core answers
// directly sends between two prunes.
const minPruneAt = 64

// minPruneBytes is the most bytes of requests a forwarder whose core
// answers directly sends between two prunes.
const minPruneBytes = 4 << 20

// prune drops the pending requests the core answered, once minPruneAt
// requests or minPruneBytes were sent since it last ran: a forwarder
// keeps at most that many answered requests, and checks each request
// against the ring before its slot is reused (minPruneAt < ringSlots).
// f.mu is held.
func (f *Forwarder) prune() {
	if len(f.pending) < f.pruneAt && f.held < f.pruneAtBytes {
		return
	}
	f.held = f.dropAnswered()
	f.pruneAt, f.pruneAtBytes = len(f.pending)+minPruneAt, f.held+minPruneBytes
}

// dropAnswered drops the pending requests the ring says the current core
// answered (when it answers the client directly; a relayed answer drops
// its request as it passes) and returns the bytes of those left. f.mu is
// held.
func (f *Forwarder) dropAnswered() int {
	held := 0
	for key, fl := range f.pending {
		if f.direct && f.Answers.ring.isWritten(fl.seq) {
			delete(f.pending, key)
			continue
		}
		held += len(fl.line)
	}
	return held
}

// recoverInput takes from the journal of a core that read the client's
// input what the forwarder needs to replace it (recoverJournal): the
// requests it did not answer, the handshake, the unfinished line, and
// whether the input ended. f.mu is held.
func (f *Forwarder) recoverInput() {
	rec := recoverJournal(f.Answers.journal)
	r := f.Answers.ring
	for _, l := range rec.lines {
		var m message
		if json.Unmarshal(l.line, &m) != nil {
			continue
		}
		switch m.Method {
		case "initialize":
			f.init = l.line
		case "notifications/initialized":
			f.inited = l.line
		}
		key := idKey(m.ID)
		if key == "" || m.Method == "" || l.answered || r.isWritten(l.seq) {
			continue
		}
		fl := &inflight{seq: l.seq, line: l.line}
		if m.Method == "tools/call" {
			fl.tool = m.Params.Name
			fl.line, fl.keyed = f.keys.line(l.line, m, l.seq)
		}
		f.pending[key] = fl
	}
	f.partial, f.skip = rec.partial, rec.skip
	f.seq = max(f.seq, rec.next)
	f.inputEnd = f.inputEnd || rec.eof
	f.reads = false
}

// settle drops the pending requests the dead core answered directly, and
// ends with a newline an answer it may have left half written, before the
// forwarder writes anything else to the client. f.mu is held.
func (f *Forwarder) settle(out *lineWriter) {
	if !f.direct {
		return
	}
	f.dropAnswered()
	partial := false
	for _, fl := range f.pending {
		// An answer begun but not marked written may have reached the
		// client whole: the request is sent again all the same (the
		// client may see a second answer to it, rather than none).
		partial = partial || f.Answers.ring.isPartial(fl.seq)
	}
	if partial {
		_, _ = out.Write([]byte("\n"))
	}
	f.direct = false
}

// wire returns fl's line as it is sent to the current core: after its
// control line when the core answers directly. f.mu is held.
func (f *Forwarder) wire(key string, fl *inflight) []byte {
	if !f.direct {
		return fl.line
	}
	return append(controlLine(fl.seq, key), fl.line...)
}

// keyer adds idempotency keys: a forwarder to the calls it sends, a core
// that reads the client's input itself (intake) to the calls it reads,
// the same keys for the same calls.
type keyer struct {
	// keyed reports whether a tool takes an idempotency_key.
	keyed func(tool string) bool
	// instance tells this forwarder's keys from others'.
	instance string
}

// newKeyer returns the keyer of a forwarder whose Instance is instance and
// whose keyed tools are keyed (Hello.Keyed).
func newKeyer(instance string, keyed []string) keyer {
	set := make(map[string]bool, len(keyed))
	for _, t := range keyed {
		set[t] = true
	}
	return keyer{keyed: func(t string) bool { return set[t] }, instance: instance}
}

// KeyPrefix starts every idempotency key that a forwarder whose Instance
// is instance, or a core reading its client's input, adds to a call: a
// call whose key has it did not carry one of its own.
func KeyPrefix(instance string) string { return "core-" + instance + "-" }

// KeyRoom is the most bytes by which adding a key of KeyPrefix(instance)
// makes a line longer: a member "arguments" holding only the key, where
// the call had no arguments. A core allows the lines of such a forwarder
// that much more than a direct process does.
func KeyRoom(instance string) int {
	k, _ := json.Marshal(KeyPrefix(instance) + strings.Repeat("0", 16))
	return len(`,"arguments":{"idempotency_key":}`) + len(k)
}

// key returns the idempotency key of the request of line seq, as a JSON
// string: KeyPrefix and the seq in 16 hex digits.
func (k keyer) key(seq uint64) []byte {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], seq)
	b, _ := json.Marshal(KeyPrefix(k.instance) + hex.EncodeToString(n[:]))
	return b
}

func (f *Forwarder) keyer() keyer {
	return keyer{keyed: func(t string) bool { return f.Tools[t].AddsKey() }, instance: f.Instance}
}

// line returns the tools/call line with an idempotency_key when the
// tool takes one from the transport (ToolRetry.AddsKey) and the call has
// none, and whether the call has a key.
// The key names the request by its seq, the number of its line in the
// client's input, which every core it is sent to sees the same: not by its
// id, which a host may give a later request once the earlier one was
// answered (a direct process runs both). Keys of one forwarder grow with
// the seq, so the results kept under them are appended side by side.
// The line is rebuilt from its parsed members, in their order of the
// JSON-RPC specification, the key first among the arguments.
func (k keyer) line(line []byte, m message, seq uint64) ([]byte, bool) {
	if k.keyed == nil || !k.keyed(m.Params.Name) {
		return line, false
	}
	var args struct {
		Key json.RawMessage `json:"idempotency_key"` // "null" for null
	}
	if len(m.Params.Arguments) > 0 && json.Unmarshal(m.Params.Arguments, &args) != nil {
		return line, false // not an object: the tool refuses it
	}
	if args.Key != nil {
		return line, string(args.Key) != "null"
	}
	a := append([]byte(`{"idempotency_key":`), k.key(seq)...)
	a = append(a, '}')
	if rest := bytes.TrimSpace(m.Params.Arguments); len(rest) > 2 && rest[0] == '{' && !bytes.Equal(bytes.TrimSpace(rest[1:]), []byte("}")) {
		// A non-empty object (not null, not {}): its members after the key.
		a = append(append(a[:len(a)-1], ','), rest[1:]...)
	}
	if out, ok := splice(line, m.Params.Arguments, a); ok {
		return out, true
	}
	var whole, params map[string]json.RawMessage
	if json.Unmarshal(line, &whole) != nil || json.Unmarshal(whole["params"], &params) != nil {
		return line, false
	}
	params["arguments"] = a
	whole["params"] = appendObject(nil, params, "name", "arguments")
	return append(appendObject(nil, whole, "jsonrpc", "id", "method", "params"), '\n'), true
}

// splice returns line with its arguments object old, which it holds (as
// json.Unmarshal gave it), replaced by new, when old is an object that
// occurs in line only once: that occurrence is the arguments. The rest of
// the line keeps its bytes; it ends with a newline. Rebuilding the line
// instead cost the core 4 % of its CPU at 16 agents.
func splice(line, old, new []byte) ([]byte, bool) {
	if len(old) < 2 || old[0] != '{' {
		return nil, false
	}
	i := bytes.Index(line, old)
	if i < 0 || bytes.Contains(line[i+1:], old) {
		return nil, false
	}
	out := make([]byte, 0, len(line)+len(new)-len(old)+1)
	out = append(append(append(out, line[:i]...), new...), line[i+len(old):]...)
	if out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return out, true
}

// appendObject appends the JSON object of members (valid JSON values, as
// json.Unmarshal gives them) to b: the members named by first in that
// order, then the others sorted.
func appendObject(b []byte, members map[string]json.RawMessage, first ...string) []byte {
	b = append(b, '{')
	put := func(name string, v json.RawMessage) {
		if len(b) > 1 {
			b = append(b, ',')
		}
		q, _ := json.Marshal(name)
		b = append(append(append(b, q...), ':'), v...)
	}
	for _, name := range first {
		if v, ok := members[name]; ok {
			put(name, v)
		}
	}
	rest := make([]string, 0, len(members))
	for name := range members {
		if !slices.Contains(first, name) {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest)
	for _, name := range rest {
		put(name, members[name])
	}
	return append(b, '}')
}

// idKey is a JSON-RPC id as a map key ("" for none). A number's key is
// its float64 value's shortest form, so 7 and 7.0 (a server may echo one
// as the other) are one key.
func idKey(id json.RawMessage) string {
	id = bytes.TrimSpace(id)
	if len(id) == 0 || string(id) == "null" {
		return ""
	}
	// The common ids first: a small integer, a string without escapes.
	if n, err := strconv.ParseInt(string(id), 10, 64); err == nil && n > -1<<53 && n < 1<<53 {
		return "n" + strconv.FormatFloat(float64(n), 'g', -1, 64)
	}
	if len(id) >= 2 && id[0] == '"' && id[len(id)-1] == '"' && bytes.IndexByte(id[1:len(id)-1], '\\') < 0 && bytes.IndexByte(id[1:len(id)-1], '"') < 0 {
		return "s" + string(id[1:len(id)-1])
	}
	var v any
	if json.Unmarshal(id, &v) != nil {
		return ""
	}
	switch v := v.(type) {
	case string:
		return "s" + v
	case float64:
		return "n" + strconv.FormatFloat(v, 'g', -1, 64)
	}
	return ""
}

// responsePrefix begins every response mcp-go writes: its members are
// marshalled in this order, the id next.
const responsePrefix = `{"jsonrpc":"2.0","id":`

// responseID returns the id of a response line the core wrote, reading no
// more of it than the id, and false when the line does not begin as
// mcp-go's responses do (the caller then parses the line whole). The
// line's validity is the core's: the forwarder hands it on as it is.
func responseID(line []byte) (json.RawMessage, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(responsePrefix))
	if !ok || len(rest) == 0 {
		return nil, false
	}
	var end int
	if rest[0] == '"' {
		i := bytes.IndexByte(rest[1:], '"')
		if i < 0 || bytes.IndexByte(rest[1:1+i], '\\') >= 0 {
			return nil, false
		}
		end = i + 2
	} else {
		for end < len(rest) && (rest[end] >= '0' && rest[end] <= '9' || rest[end] == '-') {
			end++
		}
	}
	tail := rest[end:]
	if end == 0 || !(bytes.HasPrefix(tail, []byte(`,"result":`)) || bytes.HasPrefix(tail, []byte(`,"error":`))) {
		return nil, false
	}
	return rest[:end], true
}

// fromCore hands the core's messages to the client, and replaces the core
// when its connection ends before the client's input has.
func (f *Forwarder) fromCore(ctx context.Context, out *lineWriter) error {
	f.mu.Lock()
	br := bufio.NewReaderSize(f.conn, 64<<10)
	f.mu.Unlock()
	for {
		var err error
		for {
			var line []byte
			line, err = br.ReadBytes('\n')
			if len(line) > 0 {
				f.receive(out, line)
			}
			if err != nil {
				break
			}
		}
		f.mu.Lock()
		if f.reads {
			f.recoverInput()
		}
		f.dropAnswered()
		end := f.inputEnd && len(f.pending) == 0
		f.mu.Unlock()
		if end || ctx.Err() != nil {
			return nil
		}
		f.Logger.Warn("the local core went away; connecting to a new one", "err", err)
		if br, err = f.replace(ctx, out); err != nil {
			return err
		}
	}
}

func (f *Forwarder) receive(out *lineWriter, line []byte) {
	if id, ok := answerID(line); ok {
		f.mu.Lock()
		delete(f.pending, idKey(id))
		f.mu.Unlock()
	}
	if line[len(line)-1] != '\n' {
		line = append(line, '\n')
	}
	_, _ = out.Write(line)
}

// replace connects to a new core, replays the handshake and sends again
// what was in flight. It returns the reader of the new connection.
func (f *Forwarder) replace(ctx context.Context, out *lineWriter) (*bufio.Reader, error) {
	// What the old core answered is not sent again, and the calls that
	// cannot be sent again safely are answered now: the forwarder writes
	// to the client only before a new core may.
	f.mu.Lock()
	f.settle(out)
	lost := f.answerLost(out)
	f.mu.Unlock()
	c, err := f.Connect(ctx)
	if err != nil {
		f.mu.Lock()
		defer f.mu.Unlock()
		for key, fl := range f.pending {
			_, _ = out.Write(errorLine(fl.line, -32603, "the local Coditect core stopped and no new one could be reached: "+err.Error()))
			delete(f.pending, key)
		}
		return nil, fmt.Errorf("localcore: replacing the core: %w", err)
	}
	br := bufio.NewReaderSize(c, 64<<10)
	f.mu.Lock()
	f.restarts++
	init, n := f.init, f.restarts
	f.mu.Unlock()
	// The client's initialize first, answered before anything else is
	// sent: calls must act as the agent its clientInfo names. Requests the
	// client sends meanwhile go to the dead connection and stay pending.
	if init != nil {
		if err := f.reinitialize(c, br, init, replayPrefix+strconv.Itoa(n), out); err != nil {
			c.Close()
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conn.Close()
	f.conn = c
	f.direct = f.Answers != nil && AnswersDirectly(c)
	f.reads = f.direct && ReadsDirectly(c)
	f.pruneAt, f.pruneAtBytes = minPruneAt, minPruneBytes
	if f.inputEnd {
		defer closeWrite(c) // after what is sent again below
	}
	if f.inited != nil {
		_, _ = c.Write(f.inited)
	}
	order := make([]*inflight, 0, len(f.pending))
	keys := map[*inflight]string{}
	for k, fl := range f.pending {
		order = append(order, fl)
		keys[fl] = k
	}
	slices.SortFunc(order, func(a, b *inflight) int { return cmp.Compare(a.seq, b.seq) })
	for _, fl := range order {
		// A new seq: the old one's slot in the ring may be another's.
		fl.seq = f.seq
		f.seq++
		_, _ = c.Write(f.wire(keys[fl], fl))
	}
	f.handInput(c, out)
	f.Logger.Info("connected to a new local core", "resent", len(order), "outcome_unknown", lost, "answers_directly", f.direct, "reads_input", f.reads)
	return br, nil
}

// handInput lets the new core c read the client's input when it agreed
// to: the journal then holds the handshake and the unfinished line. A
// core that does not read it leaves it to the forwarder. f.mu is held.
func (f *Forwarder) handInput(c net.Conn, out *lineWriter) {
	if f.inputEnd {
		// Nothing to read: the core is sent only what was in flight, and
		// the journal, which it never reads, is not recovered again.
		f.reads = false
		return
	}
	if f.reads {
		var records []record
		for _, l := range [][]byte{f.init, f.inited} {
			if l != nil {
				// Marked answered: these copies are for replaying to a
				// later core, not requests in flight.
				records = append(records, record{seq: f.seq, line: l, answered: true})
				f.seq++
			}
		}
		// A handshake that does not fit beside the unfinished line (a
		// client's initialize may be as long as a line may be) is not kept
		// for a later core; a line that does not fit is skipped.
		j := f.Answers.journal
		_ = j.reset(records, f.partial, f.seq, f.skip) || j.reset(nil, f.partial, f.seq, f.skip) || j.reset(nil, nil, f.seq, true)
		f.partial = nil
		_, _ = c.Write([]byte(inControl + "\n"))
		return
	}
	if !f.readingSelf {
		f.readSelf(out)
	}
}

// answerLost answers the calls in flight that cannot be sent to a new
// core (resendable) with a tool error saying their outcome is unknown,
// and returns their tools. f.mu is held.
func (f *Forwarder) answerLost(out *lineWriter) []string {
	var lost []*inflight
	for key, fl := range f.pending {
		if !f.resendable(fl) {
			lost = append(lost, fl)
			delete(f.pending, key)
		}
	}
	slices.SortFunc(lost, func(a, b *inflight) int { return cmp.Compare(a.seq, b.seq) })
	tools := make([]string, 0, len(lost))
	for _, fl := range lost {
		tools = append(tools, fl.tool)
		_, _ = out.Write(toolErrorLine(fl.line, fmt.Sprintf("The local Coditect core serving this connection stopped while %s ran, so its outcome is unknown: "+
			"check whether it took effect before calling it again (pass an idempotency_key to make retries safe). A new core serves the next calls.", fl.tool)))
	}
	return tools
}

// resendable reports whether a request in flight when its core died may
// be sent to the next core: any request but a tool call, and a call that
// carries an idempotency key or whose tool is harmless to repeat.
func (f *Forwarder) resendable(fl *inflight) bool {
	return fl.tool == "" || fl.keyed || f.Tools[fl.tool].Harmless
}

// reinitializeTimeout bounds the wait for a new core's answer to the
// replayed initialize.
const reinitializeTimeout = 30 * time.Second

// reinitialize sends the client's initialize under id on c and waits for
// its answer, which the client does not see; what else the core sends
// meanwhile is handed on.
func (f *Forwarder) reinitialize(c net.Conn, br *bufio.Reader, init []byte, id string, out *lineWriter) error {
	line, err := withID(init, id)
	if err != nil {
		return err
	}
	if _, err := c.Write(line); err != nil {
		return fmt.Errorf("localcore: replaying initialize: %w", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(reinitializeTimeout))
	defer c.SetReadDeadline(time.Time{})
	want := idKey(json.RawMessage(strconv.Quote(id)))
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			var m message
			if json.Unmarshal(line, &m) == nil && m.Method == "" && idKey(m.ID) == want {
				return nil
			}
			f.receive(out, line)
		}
		if err != nil {
			return fmt.Errorf("localcore: the new core did not answer the replayed initialize: %w", err)
		}
	}
}

// withID returns the request line with its id replaced.
func withID(line []byte, id string) ([]byte, error) {
	var whole map[string]json.RawMessage
	if err := json.Unmarshal(line, &whole); err != nil {
		return nil, err
	}
	whole["id"], _ = json.Marshal(id)
	b, err := json.Marshal(whole)
	return append(b, '\n'), err
}

func errorLine(req []byte, code int, msg string) []byte {
	var m message
	_ = json.Unmarshal(req, &m)
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": m.ID, "error": map[string]any{"code": code, "message": msg}})
	return append(b, '\n')
}

func toolErrorLine(req []byte, text string) []byte {
	var m message
	_ = json.Unmarshal(req, &m)
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": m.ID, "result": map[string]any{
		"content": []any{map[string]any{"type": "text", "text": text}},
		"isError": true,
	}})
	return append(b, '\n')
}

// LineWriter returns w made safe for concurrent whole-line writes.
func LineWriter(w io.Writer) io.Writer { return &lineWriter{w: w} }

// lineWriter serialises whole-line writes.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
