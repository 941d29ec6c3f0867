package audit

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/sqlite"
)

// TestOutcomes: an outcome reads back as stored; it is gone from reads
// once older than IdempotencyWindow and from the store after a sweep; it
// is kept apart from the marker of an event appended with the same key.
func TestOutcomes(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"), sqlite.Options{Synchronous: sqlite.SyncNormal})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sp, err := keyspace.Tenant("acme")
	if err != nil {
		t.Fatal(err)
	}
	l := NewLog(st, sp)
	now := time.Now()
	l.now = func() time.Time { return now }
	get := func(key string) (Outcome, bool) {
		t.Helper()
		var o Outcome
		var ok bool
		err := st.View(ctx, func(tx kv.ReadTx) error {
			var err error
			o, ok, err = l.GetOutcome(tx, key)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return o, ok
	}
	update := func(f func(tx kv.Tx) error) {
		t.Helper()
		if _, err := st.Update(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	want := Outcome{Digest: "d1", Done: true, Result: json.RawMessage(`{"s":{"id":1},"t":"done"}`)}
	update(func(tx kv.Tx) error { return l.PutOutcome(tx, "k", want) })
	// An event appended under the same key is a new event: outcomes are
	// not event markers.
	evs, err := l.Append(ctx, Event{Kind: "note.added", IdempotencyKey: "k"})
	if err != nil || len(evs) != 1 {
		t.Fatal(evs, err)
	}
	if n, _ := l.Count(ctx); n != 1 {
		t.Errorf("%d events after an append under an outcome's key, want 1", n)
	}
	got, ok := get("k")
	if !ok || got.Digest != want.Digest || !got.Done || string(got.Result) != string(want.Result) || !got.Time.Equal(now) {
		t.Errorf("GetOutcome = %+v, %v; want %+v at %v", got, ok, want, now)
	}
	if _, err := st.Update(ctx, func(tx kv.Tx) error {
		return l.PutOutcome(tx, "big", Outcome{Result: json.RawMessage(`"` + string(make([]byte, MaxOutcome)) + `"`)})
	}); err == nil {
		t.Error("an outcome over MaxOutcome was stored")
	}

	now = now.Add(IdempotencyWindow + time.Minute)
	if _, ok := get("k"); ok {
		t.Error("an outcome older than IdempotencyWindow was read")
	}
	if _, err := l.Sweep(ctx, Retention{}); err != nil {
		t.Fatal(err)
	}
	key, _ := l.outcomeKey("k")
	update(func(tx kv.Tx) error {
		if v, err := tx.Get(key); err != nil || v != nil {
			t.Errorf("after a sweep the outcome is %q, %v; want it removed", v, err)
		}
		return nil
	})
	update(func(tx kv.Tx) error { return l.PutOutcome(tx, "k", want) })
	update(func(tx kv.Tx) error { return l.ClearOutcome(tx, "k") })
	if _, ok := get("k"); ok {
		t.Error("a cleared outcome was read")
	}
}
