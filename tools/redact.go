package tools

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/session"
)

// This file holds what a tool.called record keeps of a call's arguments:
// their redaction and the session they name.

// sessionArg returns the call's session_id argument when it is a well-formed
// session id, so that the event lands in the session's index; "" otherwise.
// Arguments in which no key can be session_id (encoding/json matches keys
// without regard to case, and a key may be written with escapes) are not
// parsed.
func sessionArg(args json.RawMessage) string {
	if !mayContainFold(args, "session_id") && bytes.IndexByte(args, '\\') < 0 {
		return ""
	}
	var a struct {
		SessionID any `json:"session_id"`
	}
	if json.Unmarshal(args, &a) != nil {
		return ""
	}
	s, ok := a.SessionID.(string)
	if !ok {
		return ""
	}
	id, err := session.ParseID(s)
	if err != nil {
		return ""
	}
	return id
}

// secretKey matches argument names whose values are never recorded.
var secretKey = regexp.MustCompile(`(?i)token|secret|passw|authori[sz]|api[-_]?key|credential|private[-_]?key|cookie|session[-_]?key`)

// secretKeyWords are words of which every match of secretKey holds one,
// in some case: a name holding none of them is not run through it.
var secretKeyWords = []string{"token", "secret", "passw", "authori", "key", "credential", "cookie"}

// secretValue matches Coditect API tokens and common bearer credentials
// inside any string value.
var secretValue = regexp.MustCompile(`cdt_[A-Za-z0-9_-]{16,}|(?i)bearer\s+[A-Za-z0-9._~+/=-]{8,}`)

// isSecretName reports whether an argument's value is never recorded.
func isSecretName(k string) bool {
	if !slices.ContainsFunc(secretKeyWords, func(w string) bool { return mayContainFold(k, w) }) {
		return false
	}
	return secretKey.MatchString(k) && !strings.EqualFold(k, "session_id")
}

// redactSecrets replaces what secretValue matches in s with "[redacted]".
// Text with neither "cdt_" nor "bearer" in any case is returned as it is,
// without running the expression.
func redactSecrets(s string) string {
	if !strings.Contains(s, "cdt_") && !mayContainFold(s, "bearer") {
		return s
	}
	return secretValue.ReplaceAllString(s, "[redacted]")
}

// mayContainFold reports whether b may hold word (lower-case ASCII) under
// the case folding of regexp's (?i) and encoding/json's key matching: true
// when b holds it in some ASCII case, and whenever b holds a byte beyond
// ASCII (under Unicode folding the Kelvin sign is a k, ſ an s).
func mayContainFold[T ~string | ~[]byte](b T, word string) bool {
	n := len(word)
	for i := range len(b) {
		c := b[i]
		if c >= 0x80 {
			return true
		}
		if i+n <= len(b) && lowerByte(c) == word[0] && equalLowerASCII(b[i+1:i+n], word[1:]) {
			return true
		}
	}
	return false
}

func lowerByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalLowerASCII reports whether b, lower-cased, is word; a byte beyond
// ASCII counts as a match (see mayContainFold).
func equalLowerASCII[T ~string | ~[]byte](b T, word string) bool {
	for i := range len(word) {
		if b[i] >= 0x80 {
			return true
		}
		if lowerByte(b[i]) != word[i] {
			return false
		}
	}
	return true
}

// RedactArgs returns the arguments as recorded in the audit log: a JSON
// value with the values of secret-looking keys replaced by "[redacted]",
// token-looking substrings replaced likewise, strings cut to 256 bytes and,
// when the result is still over 2 KiB, only the argument names.
func RedactArgs(args json.RawMessage) any { return redactArgs(args, "") }

// redactArgs is RedactArgs leaving out an idempotency_key that starts with
// added, a non-empty prefix of the keys the transport adds (Caller.AddedKeys).
func redactArgs(args json.RawMessage, added string) any {
	args = bytes.TrimSpace(args)
	if len(args) == 0 || string(args) == "null" { // no arguments, as a tool reads them
		return map[string]any{}
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return map[string]any{"_unparsed": true, "_bytes": sentSize(args, added)}
	}
	if m, ok := v.(map[string]any); ok {
		if k, ok := m[idempotencyArg].(string); ok && addedKey(k, added) {
			delete(m, idempotencyArg)
		}
	}
	v = redact(v, 0)
	b, err := json.Marshal(v)
	if err == nil && len(b) <= maxAuditArgs {
		return v
	}
	out := map[string]any{"_truncated": true, "_bytes": sentSize(args, added)}
	if m, ok := v.(map[string]any); ok {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, textclip.Clip(k, 64))
		}
		slices.Sort(keys)
		if len(keys) > 32 {
			keys = keys[:32]
		}
		out["_keys"] = keys
	}
	return out
}

func redact(v any, depth int) any {
	if depth > 8 {
		return "[too deep]"
	}
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if isSecretName(k) {
				x[k] = "[redacted]"
				continue
			}
			x[k] = redact(val, depth+1)
		}
		return x
	case []any:
		for i := range x {
			x[i] = redact(x[i], depth+1)
		}
		return x
	case string:
		return textclip.Clip(redactSecrets(x), maxAuditString)
	}
	return v
}
