package message_test

import (
	"context"
	"testing"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/kv/kvtest"
	"github.com/coditect/coditect/storage/message"
)

// TestSendReadSet: sending reads neither the sender's nor the
// recipient's heartbeat with a read conflict — both agents heartbeat on
// every call, and on a cluster each heartbeat committed meanwhile would
// make the send retry — while it still refuses an unknown recipient.
func TestSendReadSet(t *testing.T) {
	ctx := context.Background()
	s, _ := agenttest.Open(t)
	rs := kvtest.NewReadSet(s)
	sc := agenttest.Scope(t, rs, "acme", "alice")
	from, fromSc := agenttest.Agent(t, ctx, sc, "from", agent.Registration{})
	to, _ := agenttest.Agent(t, ctx, sc, "to", agent.Registration{})
	var err error
	reads := rs.Record(func() {
		_, err = message.Send(ctx, fromSc, message.Outgoing{To: message.To{Agent: to.ID}, Body: "hello"})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{from.ID, to.ID} {
		if reads.Has(agenttest.HeartbeatKey(t, sc, id)) {
			t.Errorf("sending read agent %s's heartbeat with a read conflict", id)
		}
	}
	if _, err := message.Send(ctx, fromSc, message.Outgoing{To: message.To{Agent: "ag_nobody"}, Body: "x"}); err == nil {
		t.Error("a message to an unknown agent was sent")
	}
}
