package server

import (
	"bytes"
	"encoding/json"
	"strings"
)

// requestIDProblem says what is wrong with the id of a JSON-RPC message
// with method, as it was read (raw, nil when absent); "" when nothing is.
// A request's id is a string or a number (MCP also forbids null, and
// JSON-RPC answers any other id Invalid Request). mcp-go runs a call whose
// id is an object, an array or a boolean, and echoes it, and takes a
// request with a null id for a notification, which it drops unanswered:
// the host waits forever. A notification sent with "id": null (as
// JSON-RPC 1.0 clients do) stays a notification. A response (no method)
// is not checked: the server sends no requests.
func requestIDProblem(raw json.RawMessage, method string) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || method == "" {
		return ""
	}
	var kind string
	switch c := raw[0]; {
	case c == '"' || c == '-' || c >= '0' && c <= '9':
		return ""
	case c == 'n':
		if strings.HasPrefix(method, "notifications/") {
			return ""
		}
		kind = "null (a notification has no id member at all)"
	case c == '{':
		kind = "an object"
	case c == '[':
		kind = "an array"
	default:
		kind = "a boolean"
	}
	return "invalid request: the id of a request must be a string or a number, not " + kind
}

// mayHaveOddID reports whether the JSON body may have an "id" member whose
// value is not a string or a number: a look at its bytes that lets the
// common body skip the parse requestIDProblem needs. A key written with
// escapes (\u0069d) is found by the parse, so a body with any is looked at.
func mayHaveOddID(body []byte) bool {
	if bytes.Contains(body, []byte(`\u`)) {
		return true
	}
	for rest := body; ; {
		i := bytes.Index(rest, []byte(`"id"`))
		if i < 0 {
			return false
		}
		rest = bytes.TrimLeft(rest[i+len(`"id"`):], " \t\r\n")
		if len(rest) == 0 || rest[0] != ':' {
			continue
		}
		v := bytes.TrimLeft(rest[1:], " \t\r\n")
		if len(v) > 0 && !(v[0] == '"' || v[0] == '-' || v[0] >= '0' && v[0] <= '9') {
			return true
		}
	}
}
