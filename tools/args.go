package tools

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxArgs is the largest arguments object a tool accepts, in bytes, unless
// the tool sets its own (the file writes, whose content may be larger).
// Every field has its own, smaller limit; this one refuses a huge payload
// before it is parsed.
const MaxArgs = 64 << 10

// decodeArgs decodes a call's arguments strictly into v (a pointer to a
// struct): only the properties of the tool's input schema, each of the
// declared type. Its errors are *ArgError with a sentence saying what to
// send, including an example call when the tool has one.
func decodeArgs(c *Call, v any) error {
	args := bytes.TrimSpace(c.Args)
	if limit := c.Tool.MaxArgs(); len(args) > limit {
		return c.argError("the arguments are %d bytes; the limit is %d bytes: send shorter values", len(args), limit)
	}
	if len(args) == 0 || bytes.Equal(args, []byte("null")) {
		args = []byte("{}")
	}
	if args[0] != '{' {
		return c.argError("arguments must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			return c.argError("arguments must be one JSON object")
		}
		return nil
	}
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te) && te.Field != "":
		return c.argError("%q must be %s, not %s", te.Field, typeName(te.Type), article(te.Value))
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
		return c.argError("arguments are not valid JSON (%v)", err)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return c.argError("unknown argument %q", name)
	}
	return c.argError("arguments could not be read: %v", err)
}

// argError returns an *ArgError for the call's tool that ends with the
// arguments the tool takes and an example.
func (c *Call) argError(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if names := propertyNames(c.Tool.Def.RawInputSchema); len(names) > 0 {
		msg += fmt.Sprintf(". %s takes: %s", c.Tool.Name(), strings.Join(names, ", "))
	} else {
		msg += fmt.Sprintf(". %s takes no arguments: send {}", c.Tool.Name())
	}
	if ex := c.Tool.example; ex != "" {
		msg += ". Example: " + ex
	}
	return &ArgError{msg: msg}
}

// propertyNames lists the properties of an object schema in the order the
// schema declares them.
func propertyNames(schema json.RawMessage) []string {
	var s struct {
		Properties json.RawMessage `json:"properties"`
	}
	if json.Unmarshal(schema, &s) != nil || len(s.Properties) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(s.Properties))
	if _, err := dec.Token(); err != nil { // {
		return nil
	}
	var names []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return names
		}
		names = append(names, fmt.Sprint(tok))
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return names
		}
	}
	return names
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list"
	}
	return "an object"
}

func article(jsonType string) string {
	switch jsonType {
	case "array", "object":
		return "an " + jsonType
	case "number", "string", "bool":
		if jsonType == "bool" {
			return "a boolean"
		}
		return "a " + jsonType
	}
	return jsonType
}

// text checks a free-text argument: at most max bytes of valid UTF-8,
// present when required; oneLine refuses control characters (else tabs and
// newlines are allowed).
func (c *Call) text(name, v string, max int, required, oneLine bool) error {
	switch {
	case strings.TrimSpace(v) == "" && required:
		return c.argError("%q is required", name)
	case len(v) > max:
		return c.argError("%q is %d bytes; the limit is %d bytes: shorten it", name, len(v), max)
	case !utf8.ValidString(v):
		return c.argError("%q is not valid UTF-8", name)
	}
	for _, r := range v {
		if unicode.IsControl(r) && (oneLine || (r != '\n' && r != '\t' && r != '\r')) {
			return c.argError("%q must not contain control characters (found %U)", name, r)
		}
	}
	return nil
}

// oneOf checks an enumerated argument.
func (c *Call) oneOf(name, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return c.argError("%q must be one of %s, not %q", name, strings.Join(allowed, ", "), clip(v, 40))
}

// limit checks a page size: 0 means def, else 1..max.
func (c *Call) limit(v, def, max int) (int, error) {
	switch {
	case v == 0:
		return def, nil
	case v < 1 || v > max:
		return 0, c.argError("\"limit\" must be between 1 and %d, not %d", max, v)
	}
	return v, nil
}

// clip shortens s to at most n bytes (on a rune boundary), marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}
