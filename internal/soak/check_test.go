package soak

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/project"
)

// logView is what the check needs of the exported log.
type logView struct {
	ids     []string                  // every event id, in log order
	calls   map[string]map[string]int // agent id -> callKey -> tool.called events
	muts    map[string]map[string]int // agent id -> mutKey -> mutation events
	kinds   map[string]int            // events per kind
	strange []string                  // tool.called events of no agent of ours
	inRun   int                       // events appended during the load phase
	files   int                       // file.* events during the load phase
}

// checkedKinds are the mutation events the agents' ledgers predict, and
// the key each is told apart by.
var checkedKinds = map[string]func(ev *audit.Event) string{
	"session.started": func(ev *audit.Event) string { return ev.Session },
	"session.ended":   func(ev *audit.Event) string { return ev.Session },
	"note.added":      func(ev *audit.Event) string { return ev.Summary },
	"lease.acquired":  leasePath,
	"lease.renewed":   leasePath,
	"lease.released":  leasePath,
	"message.sent":    func(ev *audit.Event) string { s, _ := ev.Attrs["subject"].(string); return s },
	"message.acked":   func(*audit.Event) string { return "" },
	"task.created":    func(ev *audit.Event) string { s, _ := ev.Attrs["task"].(string); return s },
	"task.claimed":    func(ev *audit.Event) string { s, _ := ev.Attrs["task"].(string); return s },
	"task.updated":    func(ev *audit.Event) string { s, _ := ev.Attrs["task"].(string); return s },
}

// leasePath is a lease event's resource as the agent sent it: relative to
// its project's root.
func leasePath(ev *audit.Event) string {
	if f, ok := project.ParseFile(ev.Path); ok {
		return f.Rel
	}
	return ev.Path
}

// exportLog reads the whole tenant log with `coditect log export`, from
// the store, after the daemon and every agent process exited.
func exportLog(t *testing.T, e *env, agents agentSet, from, to time.Time) *logView {
	t.Helper()
	ours := map[string]bool{}
	for _, a := range agents {
		ours[a.id] = true
	}
	cmd := exec.Command(e.bin, "log", "export", "--tenant", soakTenant, "--as", soakUser)
	cmd.Env = e.environ()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	v := &logView{calls: map[string]map[string]int{}, muts: map[string]map[string]int{}, kinds: map[string]int{}}
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber() // arguments keep their literal numbers, as the ledger's do
		var ev audit.Event
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("export line %q: %v", sc.Bytes(), err)
		}
		v.ids = append(v.ids, ev.ID)
		v.kinds[ev.Kind]++
		if !ev.Time.Before(from) && !ev.Time.After(to) {
			v.inRun++
			if strings.HasPrefix(ev.Kind, "file.") {
				v.files++
			}
		}
		if ev.Kind == "tool.called" {
			if !ours[ev.Agent] {
				v.strange = append(v.strange, fmt.Sprintf("%s %s by %q", ev.ID, ev.Summary, ev.Agent))
				continue
			}
			tool, _ := ev.Attrs["tool"].(string)
			key := callKey(tool, ev.Attrs["outcome"] == "ok", canonical(ev.Attrs["args"]))
			inc(v.calls, ev.Agent, key)
		}
		if f := checkedKinds[ev.Kind]; f != nil && ours[ev.Agent] {
			inc(v.muts, ev.Agent, mutKey(ev.Kind, f(&ev)))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("coditect log export: %v\n%s", err, stderr.String())
	}
	return v
}

func inc(m map[string]map[string]int, a, k string) {
	if m[a] == nil {
		m[a] = map[string]int{}
	}
	m[a][k]++
}

// ackResult is the outcome of the exact check, for the report.
type ackResult struct {
	Calls          int `json:"calls_acknowledged"` // tool results the agents received
	ToolEvents     int `json:"tool_called_events"`
	Mutations      int `json:"mutations_acknowledged"`
	MutationEvents int `json:"mutation_events"`
	Unknown        int `json:"calls_of_unknown_outcome"` // protocol errors
	Mismatches     int `json:"mismatches"`
}

// checkAcks compares each agent's ledger with the log: every tool result
// the agent received (success or tool error) has exactly one tool.called
// event with the same tool, outcome and recorded arguments, and no event
// is left over; every mutation it was told succeeded has exactly its
// event, keyed by the session id, note text, lease resource, message
// subject or task id, and no more. A call that ended in a protocol error
// (its outcome unknown to the agent) may have one event or none.
func checkAcks(t *testing.T, agents agentSet, v *logView) ackResult {
	t.Helper()
	var r ackResult
	report := func(format string, args ...any) {
		r.Mismatches++
		if r.Mismatches <= 20 {
			t.Errorf(format, args...)
		}
	}
	for _, a := range agents {
		got := v.calls[a.id]
		for k, want := range a.calls {
			r.Calls += want
			if n := got[k]; n != want {
				report("%s (%s): %d tool.called events for %q, want %d", a.name, a.id, n, printable(k), want)
			}
		}
		for k, n := range got {
			r.ToolEvents += n
			if _, ok := a.calls[k]; ok {
				continue
			}
			if u := a.unknown[k]; u > 0 && n <= u {
				continue
			}
			report("%s (%s): %d tool.called events for %q the agent was not told of", a.name, a.id, n, printable(k))
		}
		r.Unknown += len(a.errs)
		gotM := v.muts[a.id]
		for k, want := range a.muts {
			r.Mutations += want
			if n := gotM[k]; n != want && len(a.errs) == 0 {
				report("%s (%s): %d events %q, want %d", a.name, a.id, n, printable(k), want)
			}
		}
		for k, n := range gotM {
			r.MutationEvents += n
			if _, ok := a.muts[k]; !ok && len(a.errs) == 0 {
				report("%s (%s): %d events %q no acknowledged call made", a.name, a.id, n, printable(k))
			}
		}
	}
	for _, s := range v.strange {
		report("tool.called event of no soak agent: %s", s)
	}
	if r.Mismatches > 20 {
		t.Errorf("… %d mismatches in all", r.Mismatches)
	}
	return r
}

func printable(k string) string { return strings.ReplaceAll(k, "\x00", " | ") }

// feedResult is the outcome of the feed check, for the report.
type feedResult struct {
	Clients    int   `json:"clients"`
	Events     int64 `json:"events_received"` // by all clients
	Reconnects int   `json:"reconnects"`
	Behind     int   `json:"events_not_yet_received_at_stop"` // by all clients
}

// checkFeeds checks that each feed client received, in order, with no gap
// and no duplicate, the events of the log after the cursor it first
// subscribed at: its hash of ids equals the hash of as many log ids from
// that point.
func checkFeeds(t *testing.T, feeds []*feedClient, ids []string) feedResult {
	t.Helper()
	r := feedResult{Clients: len(feeds)}
	for i, f := range feeds {
		r.Events += f.n
		r.Reconnects += f.reconnects
		if f.err != nil {
			t.Errorf("feed client %d: %v", i, f.err)
		}
		from := 0
		if f.start != "" {
			j, found := slices.BinarySearch(ids, f.start)
			if !found {
				t.Errorf("feed client %d subscribed after %s, which is not in the log", i, f.start)
				continue
			}
			from = j + 1
		}
		if int64(len(ids)-from) < f.n {
			t.Errorf("feed client %d received %d events, the log holds %d after its cursor", i, f.n, len(ids)-from)
			continue
		}
		h := fnv.New64a()
		for _, id := range ids[from : from+int(f.n)] {
			h.Write([]byte(id + "\n"))
		}
		if h.Sum64() != f.sum.Sum64() {
			t.Errorf("feed client %d: the %d events it received are not the log's %d events after %s, in order", i, f.n, f.n, f.start)
		}
		r.Behind += len(ids) - from - int(f.n)
	}
	return r
}
