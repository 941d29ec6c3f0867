package tools

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/session"
)

// FuzzRedactPrefilter holds the redaction's and sessionArg's shortcuts to
// what the expressions and the parse alone give, on any name, text or
// arguments: a shortcut may skip work, never a secret or a session.
func FuzzRedactPrefilter(f *testing.F) {
	for _, seed := range []string{
		"token", "TOKEN", "x_api-key", "Private_Key", "session_key", "session_id", "SESSION_ID", "authoriSation",
		"to\u212Aen", "ſecret", "passw", "cookies", "credential", "title", "body", "idempotency_key", "",
		"use cdt_abcdefghijklmnopqrstuvwxyz0123", "Bearer abcdefgh123", "BEARER\tx.y.z/12345678", "bearer", "cdt_",
		"beare\u0280", "plain text", `{"session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T"}`, `{"Session_ID":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T"}`,
		`{"session\u005fid":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T"}`, `{"ſession_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T"}`, `{"text":"x"}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isSecretName(s), secretKey.MatchString(s) && !strings.EqualFold(s, "session_id"); got != want {
			t.Errorf("isSecretName(%q) = %v, the expression says %v", s, got, want)
		}
		if got, want := redactSecrets(s), secretValue.ReplaceAllString(s, "[redacted]"); got != want {
			t.Errorf("redactSecrets(%q) = %q, the expression gives %q", s, got, want)
		}
		var a struct {
			SessionID any `json:"session_id"`
		}
		want := ""
		if json.Unmarshal([]byte(s), &a) == nil {
			if v, ok := a.SessionID.(string); ok {
				want, _ = session.ParseID(v)
			}
		}
		if got := sessionArg(json.RawMessage(s)); got != want {
			t.Errorf("sessionArg(%q) = %q, the parse gives %q", s, got, want)
		}
	})
}

// BenchmarkRedactArgs is a message_send's arguments redacted for its
// tool.called record.
func BenchmarkRedactArgs(b *testing.B) {
	args := json.RawMessage(`{"to":"ag_06H4KMQ4TAASH2HM0H6HA070H0","body":"agentbench message","idempotency_key":"core-3f9a1c/000000000000002a"}`)
	b.ReportAllocs()
	for b.Loop() {
		RedactArgs(args)
		sessionArg(args)
	}
}
