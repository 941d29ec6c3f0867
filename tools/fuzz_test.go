package tools

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/kv/sqlite"
	"github.com/coditect/coditect/storage/tenant"
)

// FuzzToolArgs sends arbitrary argument bytes to every tool through the
// production middleware: no input may panic, and a refusal must come with
// a text for the model.
func FuzzToolArgs(f *testing.F) {
	var (
		once  sync.Once
		sc    *tenant.Scope
		tools []*Tool
	)
	dir := f.TempDir()
	setupErr := error(nil)
	prepare := func() {
		ctx := context.Background()
		st, err := sqlite.Open(ctx, filepath.Join(dir, "s.db"), sqlite.Options{Synchronous: sqlite.SyncNormal})
		if err != nil {
			setupErr = err
			return
		}
		alice, err := tenant.NewDirectory(st, "fuzz").Local(ctx, "t1", "alice")
		if err != nil {
			setupErr = err
			return
		}
		ag, err := agent.Register(ctx, alice, agent.Registration{Name: "fuzzer", Client: "go-fuzz"})
		if err != nil {
			setupErr = err
			return
		}
		if sc, err = alice.WithAgent(ag.ID); err != nil {
			setupErr = err
			return
		}
		for _, s := range Catalog(Config{}) {
			for _, tool := range s.Tools {
				// inbox may wait up to a minute for mail by design.
				if tool.Name() != "inbox" {
					tools = append(tools, tool)
				}
			}
		}
	}
	for _, seed := range []string{`{}`, `null`, `[]`, `{"session_id":"x"}`, `{"path":"../../etc/passwd","session_id":"01M8DJPFV7YKEAPBSSD08F2A9R"}`,
		`{"limit":-1}`, `{"limit":1e99}`, `{"kind":"\u0000"}`, `{"title":` + `"` + string(make([]byte, 10)) + `"}`, `{"resource":"**/*","ttl_seconds":"1"}`} {
		for i := 0; i < 24; i++ {
			f.Add(uint8(i), []byte(seed))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, args []byte) {
		once.Do(prepare)
		if setupErr != nil {
			t.Fatal(setupErr)
		}
		tool := tools[int(which)%len(tools)]
		h := Chain(Heartbeat(0, nil), Audit(nil, nil))(tool.Handler)
		c := &Call{Caller: Caller{Scope: sc, Client: mcp.Implementation{Name: "fuzz", Version: "1"}},
			Tool: tool, Args: json.RawMessage(args), Started: time.Now()}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := h(ctx, c)
		if err != nil {
			if errorText(tool.Name(), err) == "" {
				t.Fatalf("%s refused %q without a text", tool.Name(), args)
			}
			return
		}
		if res.Text == "" {
			t.Fatalf("%s answered %q with an empty text block", tool.Name(), args)
		}
	})
}
