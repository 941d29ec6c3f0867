package task_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/task"
	"github.com/coditect/coditect/storage/txhook"
)

var errHook = errors.New("hook refused")

// noting returns a hook that appends a note with the layer's Writer,
// hands what After got to got, and fails in After when asked.
func noting[P any](failAfter bool, got *P) txhook.Hook[P] {
	return txhook.Hook[P]{
		After: func(tx kv.Tx, aw *audit.Writer, p P) error {
			if _, err := aw.Append(audit.Event{Kind: "note.added", Summary: "hooked"}); err != nil {
				return err
			}
			*got = p
			if failAfter {
				return errHook
			}
			return nil
		},
	}
}

// A hook's reads and writes share the transaction of CreateWith,
// ClaimWith and ClaimNextWith: After sees the task as changed, its event
// commits with the task's (one commit stamp), and an error from After is
// returned as it is and leaves nothing changed, as one from Before does.
func TestHooksShareTheTransaction(t *testing.T) {
	f := setup(t)
	var got task.Task
	if _, err := task.CreateWith(f.ctx, f.a, task.New{Title: "refused"}, noting(true, &got)); err != errHook {
		t.Fatalf("CreateWith with a failing After: %v", err)
	}
	before := txhook.Hook[task.Task]{Before: func(kv.Tx) error { return errHook }}
	if _, err := task.CreateWith(f.ctx, f.a, task.New{Title: "refused"}, before); err != errHook {
		t.Fatalf("CreateWith with a failing Before: %v", err)
	}
	if p, err := task.List(f.ctx, f.a, task.Filter{}); err != nil || len(p.Tasks) != 0 {
		t.Fatalf("tasks %+v (%v) after refused creations, want none", p.Tasks, err)
	}
	tk, err := task.CreateWith(f.ctx, f.a, task.New{Title: "hooked"}, noting(false, &got))
	if err != nil || !reflect.DeepEqual(got, tk) {
		t.Fatalf("created %+v (%v), After got %+v", tk, err, got)
	}
	if _, err := task.ClaimWith(f.ctx, f.b, tk.ID, 1, noting(true, &got)); err != errHook {
		t.Fatalf("ClaimWith with a failing After: %v", err)
	}
	claimed, err := task.ClaimWith(f.ctx, f.a, tk.ID, 1, noting(false, &got))
	if err != nil || claimed.Assignee != f.aID || claimed.Version != 2 || !reflect.DeepEqual(got, claimed) {
		t.Fatalf("claimed %+v (%v), After got %+v: want a's claim at version 2, b's refused one undone", claimed, err, got)
	}
	next := newTask(t, f, "next")
	var pick task.Pick
	if _, _, _, err := task.ClaimNextWith(f.ctx, f.b, "", noting(true, &pick)); err != errHook {
		t.Fatalf("ClaimNextWith with a failing After: %v", err)
	}
	nt, ok, b, err := task.ClaimNextWith(f.ctx, f.b, "", noting(false, &pick))
	if err != nil || !ok || nt.ID != next || !reflect.DeepEqual(pick, task.Pick{Task: nt, OK: true, Backlog: b}) {
		t.Fatalf("claimed next %+v %v (%v), After got %+v", nt, ok, err, pick)
	}
	_, ok, b, err = task.ClaimNextWith(f.ctx, f.b, "", noting(false, &pick))
	if err != nil || ok || pick.OK || pick.Backlog != b || b.Held != 2 {
		t.Fatalf("with nothing ready: %v %+v (%v), After got %+v: want nothing claimed, 2 held", ok, b, err, pick)
	}

	page, err := f.a.Log().Query(f.ctx, audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	var evs []audit.Event
	for _, ev := range page.Events {
		switch ev.Kind {
		case "task.created", "task.claimed", "note.added":
			evs = append(evs, ev)
		}
	}
	want := []string{"task.created", "note.added", "task.claimed", "note.added", "task.created", "task.claimed", "note.added", "note.added"}
	if len(evs) != len(want) {
		t.Fatalf("%d events, want %v", len(evs), want)
	}
	for i, ev := range evs {
		if ev.Kind != want[i] {
			t.Errorf("event %d is %s, want %s", i, ev.Kind, want[i])
		}
	}
	for _, i := range []int{1, 3, 6} {
		if evs[i].ID[:2*kv.StampSize] != evs[i-1].ID[:2*kv.StampSize] {
			t.Errorf("the hook's event %s is not in the commit of %s %s", evs[i].ID, evs[i-1].Kind, evs[i-1].ID)
		}
	}
}

func newTask(t *testing.T, f *fixture, title string) string {
	t.Helper()
	tk, err := task.Create(f.ctx, f.admin, task.New{Title: title})
	if err != nil {
		t.Fatal(err)
	}
	return tk.ID
}
