package task_test

import (
	"fmt"
	"testing"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/agent/agenttest"
	"github.com/coditect/coditect/storage/task"
)

// BenchmarkClaimNext: one ClaimNext on a board whose highest-priority
// open tasks (waiting) are each blocked by an open task, so that every
// call reads past them to a ready one. Run with
//
//	go test -run '^$' -bench ClaimNext -benchtime 200x ./storage/task/
func BenchmarkClaimNext(b *testing.B) {
	for _, waiting := range []int{0, 100} {
		b.Run(fmt.Sprint("waiting=", waiting), func(b *testing.B) {
			s, _ := agenttest.Open(b)
			ctx := agenttest.Context(b, nil)
			admin := agenttest.Scope(b, s, "acme", "alice")
			_, sc := agenttest.Agent(b, ctx, admin, "puller", agent.Registration{})
			anchor, err := task.Create(ctx, admin, task.New{Title: "anchor", Plan: task.Plan{Skills: &[]string{"nobody"}}})
			if err != nil {
				b.Fatal(err)
			}
			hi := 5
			for i := range waiting {
				if _, err := task.Create(ctx, admin, task.New{Title: fmt.Sprint("w", i), Plan: task.Plan{Priority: &hi, BlockedBy: &[]string{anchor.ID}}}); err != nil {
					b.Fatal(err)
				}
			}
			for i := range b.N {
				if _, err := task.Create(ctx, admin, task.New{Title: fmt.Sprint("r", i)}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for range b.N {
				if _, ok, _, err := task.ClaimNext(ctx, sc, ""); err != nil || !ok {
					b.Fatal(ok, err)
				}
			}
		})
	}
}
