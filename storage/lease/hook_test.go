package lease_test

import (
	"errors"
	"testing"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/lease"
	"github.com/coditect/coditect/storage/txhook"
)

var errHook = errors.New("hook refused")

// hooked returns a hook that appends a note about res with the layer's
// Writer and records the lease After got, failing in Before or After when
// asked.
func hooked(res string, failBefore, failAfter bool, got *lease.Lease) txhook.Hook[lease.Lease] {
	return txhook.Hook[lease.Lease]{
		Before: func(kv.Tx) error {
			if failBefore {
				return errHook
			}
			return nil
		},
		After: func(tx kv.Tx, aw *audit.Writer, l lease.Lease) error {
			ev := audit.Event{Kind: "note.added", Summary: "hooked", Path: res}
			if _, err := aw.Append(ev); err != nil {
				return err
			}
			*got = l
			if failAfter {
				return errHook
			}
			return nil
		},
	}
}

// A hook's reads and writes share the transaction of AcquireWith,
// RenewWith and ReleaseWith: its event commits with the lease's (one
// commit stamp), After sees the lease as changed, and an error from Before
// or After is returned as it is and leaves nothing changed — no grant, no
// fencing token used, no event.
func TestHooksShareTheTransaction(t *testing.T) {
	f := setup(t)
	const res = "key:hooked"
	var got lease.Lease
	for _, fail := range [][2]bool{{true, false}, {false, true}} {
		if _, err := lease.AcquireWith(f.ctx, f.a, lease.Request{Resource: res}, hooked(res, fail[0], fail[1], &got)); err != errHook {
			t.Fatalf("AcquireWith with a failing hook: %v, want the hook's error as it is", err)
		}
	}
	if ks := kinds(t, f.a, res); len(ks) != 0 {
		t.Fatalf("events %v after refused acquires, want none", ks)
	}
	l, err := lease.AcquireWith(f.ctx, f.a, lease.Request{Resource: res}, hooked(res, false, false, &got))
	if err != nil || l.Token != 1 || got != l {
		t.Fatalf("acquired %+v (%v), After got %+v: want token 1, the refused attempts used none", l, err, got)
	}
	l, err = lease.RenewWith(f.ctx, f.a, res, 1, 2*lease.DefaultTTL, hooked(res, false, false, &got))
	if err != nil || got != l || l.TTL != 2*lease.DefaultTTL {
		t.Fatalf("renewed %+v (%v), After got %+v", l, err, got)
	}
	if err := lease.ReleaseWith(f.ctx, f.a, res, 1, hooked(res, false, true, &got)); err != errHook {
		t.Fatalf("ReleaseWith with a failing After: %v", err)
	}
	if err := fence(f, f.a, res, f.aID, 1); err != nil {
		t.Fatalf("the refused release released: %v", err)
	}
	if err := lease.ReleaseWith(f.ctx, f.a, res, 1, hooked(res, false, false, &got)); err != nil || got.Token != 1 || got.Agent != f.aID {
		t.Fatalf("released (%v), After got %+v: want the grant with token 1", err, got)
	}
	page, err := f.a.Log().Query(f.ctx, audit.Query{Filter: audit.Filter{Path: res}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"lease.acquired", "note.added", "lease.renewed", "note.added", "lease.released", "note.added"}
	if len(page.Events) != len(want) {
		t.Fatalf("%d events, want %v", len(page.Events), want)
	}
	for i, ev := range page.Events {
		if ev.Kind != want[i] {
			t.Errorf("event %d is %s, want %s", i, ev.Kind, want[i])
		}
		if i%2 == 1 && ev.ID[:2*kv.StampSize] != page.Events[i-1].ID[:2*kv.StampSize] {
			t.Errorf("the hook's event %s is not in the commit of %s %s", ev.ID, page.Events[i-1].Kind, page.Events[i-1].ID)
		}
	}
}
