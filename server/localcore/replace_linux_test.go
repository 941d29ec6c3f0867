package localcore

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
)

// TestForwarderResendsAfterInputEnd: a core that dies after the client
// closed its input, a call still running, is replaced, and the call is
// sent to the new core and answered, once, before the forwarder ends; the
// client sees one answer to its initialize. So in each mode (the core
// reads the input: direct; answers only: answers; neither: relay), and
// whether the dead core had read the input's end or not.
func TestForwarderResendsAfterInputEnd(t *testing.T) {
	for _, name := range []string{"direct", "answers", "relay", "direct-eof", "answers-eof", "relay-eof"} {
		mode, toEnd := strings.CutSuffix(name, "-eof")
		t.Run(name, func(t *testing.T) {
			out, err := os.CreateTemp(t.TempDir(), "out")
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			in, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			var a *Answers
			if mode != "relay" {
				if a, err = NewAnswers(out); err != nil {
					t.Fatal(err)
				}
				if mode == "direct" {
					if err := a.WithInput(in, 4096); err != nil {
						t.Fatal(err)
					}
				}
			}
			hello := Hello{Kind: "mcp"}.WithAnswers(a)
			paths, l := listenTemp(t)

			// The first core answers the handshake and never the slow call;
			// it dies once it has it.
			gotSlow := make(chan struct{})
			ctx1, kill := context.WithCancel(context.Background())
			core1 := make(chan struct{})
			go func() {
				defer close(core1)
				_ = Serve(ctx1, l, 0, testCore(toEnd, func(m message) bool {
					if m.Method == "slow" {
						close(gotSlow)
						return false
					}
					return true
				}))
			}()
			var once sync.Once
			ctx2, stop2 := context.WithCancel(context.Background())
			defer stop2()
			f := &Forwarder{In: in, Out: LineWriter(out), Answers: a, Instance: "t",
				Connect: func(ctx context.Context) (net.Conn, error) {
					<-core1
					once.Do(func() {
						l2, err := Listen(paths, nil)
						if err != nil {
							t.Error(err)
							return
						}
						go func() { _ = Serve(ctx2, l2, 0, testCore(false, func(message) bool { return true })) }()
					})
					c, _, err := Dial(ctx, paths, hello)
					return c, err
				}}
			c, _, err := Dial(context.Background(), paths, hello)
			if err != nil {
				t.Fatal(err)
			}
			if ReadsDirectly(c) != (mode == "direct") || AnswersDirectly(c) != (mode != "relay") {
				t.Fatalf("reads %v, answers %v", ReadsDirectly(c), AnswersDirectly(c))
			}
			done := make(chan error, 1)
			go func() { done <- f.Run(context.Background(), c) }()
			_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`+"\n"+
				`{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n"+
				`{"jsonrpc":"2.0","id":7,"method":"slow"}`+"\n")
			w.Close()
			<-gotSlow
			if toEnd {
				<-sawEnd
			}
			kill()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			b, err := os.ReadFile(out.Name())
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				var m message
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("output line %q: %v", line, err)
				}
				ids = append(ids, string(m.ID))
			}
			if strings.Join(ids, " ") != "1 7" {
				t.Errorf("answers to %v, want 1 and 7 once each:\n%s", ids, b)
			}
		})
	}
}

// sawEnd is closed when a testCore that reads to the end of its input
// has read it.
var sawEnd chan struct{}

// testCore is an Opener whose connections answer each request with an
// empty result when answer says so, and otherwise hold it until the core
// stops, reading on to the input's end (closing sawEnd) when toEnd.
func testCore(toEnd bool, answer func(message) bool) Opener {
	if toEnd {
		sawEnd = make(chan struct{})
	}
	return func(ctx context.Context, h Hello) (func(context.Context, net.Conn) error, error) {
		return func(ctx context.Context, c net.Conn) error {
			br := bufio.NewReader(c)
			held := false
			for {
				line, err := br.ReadBytes('\n')
				if err != nil {
					if held {
						// A call still running: the core waits for it.
						close(sawEnd)
						<-ctx.Done()
					}
					return nil
				}
				var m message
				if json.Unmarshal(line, &m) != nil || m.ID == nil {
					continue
				}
				if !answer(m) {
					if toEnd {
						held = true
						continue
					}
					<-ctx.Done()
					return nil
				}
				b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": m.ID, "result": map[string]any{}})
				if _, err := c.Write(append(b, '\n')); err != nil {
					return nil
				}
			}
		}, nil
	}
}
