package audit

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// validate encodes an event's attributes once and puts those bytes in the
// stored value: the value is byte for byte what encoding the whole stored
// form writes (keys sorted, HTML characters escaped, empty attributes
// left out), and decodes back to the event.
func TestEncodeMatchesStoredForm(t *testing.T) {
	when := time.Date(2026, 12, 5, 22, 0, 0, 123456789, time.FixedZone("x", 3600))
	for _, ev := range []Event{
		{Kind: "note.added", Time: when, User: "u", Agent: "ag_1", Summary: "plain"},
		{Kind: "tool.called", Time: when, Session: "s", Project: "p", Path: "a/b.go", Summary: "<tag> & more",
			Attrs: map[string]any{"tool": "note", "z": 1.5, "a": []any{"x", json.Number("12")},
				"args": map[string]any{"text": "<b>&</b>", "n": json.Number("3")}, "unicode": "héllo\u2028"}},
		{Kind: "note.added", Time: when, Attrs: map[string]any{}},
		{Kind: "file.modified", Time: when, Attribution: &Attribution{Actor: ActorAgent, AgentID: "ag_2", Confidence: 0.5}},
	} {
		got, err := validate(&ev)
		if err != nil {
			t.Fatalf("%s: %v", ev.Summary, err)
		}
		want, err := json.Marshal(stored{ev.Time.UTC(), ev.User, ev.Session, ev.Project, ev.Agent, ev.Kind, ev.Path, ev.Summary, ev.Attrs, ev.Attribution})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n got  %s\n want %s", ev.Summary, got, want)
		}
		back, err := decode("t", [12]byte{}, got)
		if err != nil || back.Kind != ev.Kind || !back.Time.Equal(ev.Time) || back.Summary != ev.Summary || len(back.Attrs) != len(ev.Attrs) {
			t.Errorf("%s: decoded %+v, %v", ev.Summary, back, err)
		}
	}
}
