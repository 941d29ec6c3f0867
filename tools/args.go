package tools

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/coditect/coditect/internal/textclip"
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
	args, err := argsObject(c)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
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

// argsObject returns a call's arguments, trimmed, once they are within
// the tool's size limit and start as a JSON object; none (or null) means
// {}.
func argsObject(c *Call) ([]byte, error) {
	args := bytes.TrimSpace(c.Args)
	if n, limit := sentSize(args, c.AddedKeys), c.Tool.MaxArgs(); n > limit {
		return nil, c.argError("the arguments are %d bytes; the limit is %d bytes: send shorter values", n, limit)
	}
	if len(args) == 0 || bytes.Equal(args, []byte("null")) {
		return []byte("{}"), nil
	}
	if args[0] != '{' {
		return nil, c.argError("arguments must be a JSON object")
	}
	return args, nil
}

// sentSize is the size of trimmed arguments as the caller sent them: less
// the idempotency_key member the transport added (addedKeyMember).
func sentSize(args []byte, added string) int {
	_, after, ok := addedKeyMember(args, added)
	switch {
	case !ok:
		return len(args)
	case args[after] == ',': // the caller's members follow: less "idempotency_key":"…",
		return len(args) - after
	default: // the caller sent none: {}
		return len(args) - (after - 1)
	}
}

// addedKeyMember returns the idempotency key the transport added to
// trimmed arguments (addedKey), which it puts first among them, and the
// offset just past the key's closing quote, where a ',' or the closing
// '}' follows; ok is false when the transport added none. The transport's
// key is a JSON string without escapes.
func addedKeyMember(args []byte, added string) (key string, after int, ok bool) {
	const member = `{"idempotency_key":"`
	rest, found := bytes.CutPrefix(args, []byte(member))
	end := bytes.IndexByte(rest, '"')
	if !found || end < 0 || end+1 >= len(rest) || !addedKey(string(rest[:end]), added) {
		return "", 0, false
	}
	after = len(member) + end + 1
	if c := args[after]; c != ',' && c != '}' {
		return "", 0, false
	}
	return string(rest[:end]), after, true
}

// takeAddedKey takes out of the arguments of a call to a tool that takes
// no idempotency_key the one its transport added (a local core's
// forwarder adds one to every call it may send again), so that the call
// is checked, run and recorded with the arguments the caller sent, and
// its record keyed by it (recordKey): a harmless call sent again after a
// core died runs again, but is recorded once.
func (c *Call) takeAddedKey() {
	args := bytes.TrimSpace(c.Args)
	key, after, ok := addedKeyMember(args, c.AddedKeys)
	if !ok {
		return
	}
	c.sentAs = key
	if args[after] == ',' {
		c.Args = append([]byte{'{'}, args[after+1:]...)
	} else {
		c.Args = []byte("{}")
	}
}

// argSchema is a tool's input schema as the tools enforce it before the
// tool's handler runs (see spec.tool): the subset of JSON Schema our input
// schemas use. Enforced: type (one of string, integer, number, boolean,
// array, object; an integer is written without a fraction or exponent and
// fits 64 bits, as the handlers decode it), required, properties,
// additionalProperties false, items and dependentRequired. A required property sent as null counts as missing;
// an optional one sent as null counts as absent, as the handlers decode
// it (some hosts send every property).
//
// Left to the handlers, whose messages say what to do instead (that
// claiming a task is task_claim's job, that a limit is in bytes, that 0
// means the default): enum and the bounds keywords (minimum, maximum,
// minLength, maxLength, minItems, maxItems). TestEveryToolChecksArguments
// holds every tool to its enums. Any other keyword is refused when the
// schema is parsed, so that a schema never promises a check nobody makes.
//
// It is not a general validator: github.com/google/jsonschema-go (which
// the tests use for output schemas) says "validating /properties/replace:
// type: <invalid reflect.Value> has type \"null\", want \"string\"",
// naming schema paths and Go values that a small model cannot act on;
// this check says "\"replace\" must be a string, not null".
type argSchema struct {
	typ         string
	description string
	enum        []any
	// props are the declared properties, in the schema's order; closed is
	// additionalProperties false.
	props    []argProp
	required []string
	closed   bool
	// dependents maps a property to those required when it is sent.
	dependents map[string][]string
	items      *argSchema
}

type argProp struct {
	name   string
	schema *argSchema
}

// schemaKeywords are the keywords an input schema may use: those checked
// here, then those left to the handlers or that only document.
var schemaKeywords = []string{
	"type", "properties", "required", "additionalProperties", "items", "dependentRequired",
	"enum", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems",
	"description", "title", "default", "examples",
}

// parseArgSchema parses an input schema. The schemas are literals in the
// source, so an error is a programming error (spec.tool panics on it).
func parseArgSchema(raw json.RawMessage) (*argSchema, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	for k := range m {
		if !slices.Contains(schemaKeywords, k) {
			return nil, fmt.Errorf("keyword %q is not supported by the argument checks", k)
		}
	}
	s := &argSchema{}
	if t, ok := m["type"]; ok {
		if err := json.Unmarshal(t, &s.typ); err != nil {
			return nil, fmt.Errorf("type: one type name expected: %v", err)
		}
		if typeNames[s.typ] == "" {
			return nil, fmt.Errorf("unknown type %q", s.typ)
		}
	}
	if d, ok := m["description"]; ok {
		if err := json.Unmarshal(d, &s.description); err != nil {
			return nil, fmt.Errorf("description: %v", err)
		}
	}
	if e, ok := m["enum"]; ok {
		if err := json.Unmarshal(e, &s.enum); err != nil || len(s.enum) == 0 {
			return nil, fmt.Errorf("enum: a non-empty list expected")
		}
	}
	if it, ok := m["items"]; ok {
		if s.typ != "array" {
			return nil, errors.New("items on a schema that is not of type array")
		}
		var err error
		if s.items, err = parseArgSchema(it); err != nil {
			return nil, fmt.Errorf("items: %w", err)
		}
	}
	if err := s.parseObject(raw, m); err != nil {
		return nil, err
	}
	return s, nil
}

// parseObject parses the keywords of an object schema.
func (s *argSchema) parseObject(raw json.RawMessage, m map[string]json.RawMessage) error {
	if p, ok := m["properties"]; ok {
		if s.typ != "object" {
			return errors.New("properties on a schema that is not of type object")
		}
		var props map[string]json.RawMessage
		if err := json.Unmarshal(p, &props); err != nil {
			return fmt.Errorf("properties: %v", err)
		}
		for _, name := range propertyNames(raw) {
			ps, err := parseArgSchema(props[name])
			if err != nil {
				return fmt.Errorf("property %q: %w", name, err)
			}
			s.props = append(s.props, argProp{name, ps})
		}
	}
	if r, ok := m["required"]; ok {
		if err := json.Unmarshal(r, &s.required); err != nil {
			return fmt.Errorf("required: %v", err)
		}
		for _, name := range s.required {
			if s.prop(name) == nil {
				return fmt.Errorf("required property %q is not declared", name)
			}
		}
	}
	if a, ok := m["additionalProperties"]; ok {
		var open bool
		if err := json.Unmarshal(a, &open); err != nil {
			return fmt.Errorf("additionalProperties: only true or false is supported")
		}
		s.closed = !open
	}
	if d, ok := m["dependentRequired"]; ok {
		if err := json.Unmarshal(d, &s.dependents); err != nil {
			return fmt.Errorf("dependentRequired: %v", err)
		}
		for k, names := range s.dependents {
			for _, name := range append([]string{k}, names...) {
				if s.prop(name) == nil {
					return fmt.Errorf("dependentRequired: property %q is not declared", name)
				}
			}
		}
	}
	return nil
}

func (s *argSchema) prop(name string) *argSchema {
	for _, p := range s.props {
		if p.name == name {
			return p.schema
		}
	}
	return nil
}

// typeNames say what a value of each schema type is, in an argument error.
var typeNames = map[string]string{
	"string": "a string", "integer": "a whole number", "number": "a number",
	"boolean": "true or false", "array": "a list", "object": "an object",
}

// checkArgs checks a call's arguments against its tool's input schema,
// before the tool's handler runs. Its errors are *ArgError naming the
// argument and saying what to send.
func (c *Call) checkArgs() error {
	args, err := argsObject(c)
	if err != nil || c.Tool.args == nil {
		return err
	}
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(args))
	if err := dec.Decode(&obj); err != nil {
		return c.argError("arguments are not valid JSON (%v)", err)
	}
	if _, extra := dec.Token(); extra != io.EOF {
		return c.argError("arguments must be one JSON object")
	}
	if msg := c.Tool.args.checkObject("", obj); msg != "" {
		return c.argError("%s", msg)
	}
	return nil
}

// check returns what is wrong with v (a syntactically valid JSON value)
// as a sentence starting with the argument's name (path), or "".
func (s *argSchema) check(path string, v json.RawMessage) string {
	got := jsonType(v)
	switch {
	case s.typ == "":
	case got == "null":
		return fmt.Sprintf("%q must be %s, not null", path, typeNames[s.typ])
	case s.typ == "integer" && got == "number":
		if _, err := strconv.ParseInt(string(v), 10, 64); err != nil {
			return fmt.Sprintf("%q must be a whole number, not %s", path, textclip.Clip(string(v), 40))
		}
	case s.typ != got:
		return fmt.Sprintf("%q must be %s, not %s", path, typeNames[s.typ], article(got))
	}
	switch got {
	case "object":
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(v, &obj); err != nil {
			return fmt.Sprintf("%q could not be read: %v", path, err)
		}
		return s.checkObject(path, obj)
	case "array":
		if s.items == nil {
			return ""
		}
		var elems []json.RawMessage
		if err := json.Unmarshal(v, &elems); err != nil {
			return fmt.Sprintf("%q could not be read: %v", path, err)
		}
		for i, e := range elems {
			if msg := s.items.check(fmt.Sprintf("%s[%d]", path, i), e); msg != "" {
				return msg
			}
		}
	}
	return ""
}

// checkObject checks an object's properties: unknown ones first (a
// misspelt name is the likeliest mistake), then missing ones, then each
// declared one in the schema's order.
func (s *argSchema) checkObject(path string, obj map[string]json.RawMessage) string {
	if s.closed {
		var unknown []string
		for k := range obj {
			if s.prop(k) == nil {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			slices.Sort(unknown)
			return fmt.Sprintf("unknown argument %q", join(path, unknown[0]))
		}
	}
	sent := func(name string) bool { x, ok := obj[name]; return ok && jsonType(x) != "null" }
	for _, name := range s.required {
		if !sent(name) {
			return s.prop(name).missing(join(path, name), "")
		}
	}
	for _, p := range s.props {
		if sent(p.name) {
			for _, dep := range s.dependents[p.name] {
				if !sent(dep) {
					return s.prop(dep).missing(join(path, dep), fmt.Sprintf(" with %q", join(path, p.name)))
				}
			}
		}
	}
	for _, p := range s.props {
		if x, ok := obj[p.name]; ok && sent(p.name) {
			if msg := p.schema.check(join(path, p.name), x); msg != "" {
				return msg
			}
		}
	}
	return ""
}

// missing says that the argument at path is required (with says when it
// is only required alongside another), and what it is: its allowed
// values, its description, what the argument of that name means in every
// tool (argHints) or its type.
func (s *argSchema) missing(path, with string) string {
	msg := fmt.Sprintf("%q is required%s: ", path, with)
	name := path[strings.LastIndex(path, ".")+1:]
	switch {
	case len(s.enum) > 0:
		return msg + s.enumList()
	case s.description != "":
		r, n := utf8.DecodeRuneInString(s.description)
		return msg + string(unicode.ToLower(r)) + s.description[n:]
	case argHints[name] != "":
		return msg + argHints[name]
	}
	return msg + typeNames[s.typ]
}

// argHints say what a required argument without a description is, for
// the arguments that mean the same in every tool that takes them.
var argHints = map[string]string{
	"session_id": "use the session_id that session_start returned, or find one with session_list",
	"task_id":    "use a task_id from task_list or task_create",
	"version":    "send the task's version as task_list showed it (it grows with every change)",
	"path":       "a file path relative to the workspace root, e.g. src/main.go",
}

// enumList lists the allowed values: "a, b or c".
func (s *argSchema) enumList() string {
	vals := make([]string, len(s.enum))
	for i, e := range s.enum {
		vals[i] = fmt.Sprint(e)
	}
	if len(vals) == 1 {
		return vals[0]
	}
	return strings.Join(vals[:len(vals)-1], ", ") + " or " + vals[len(vals)-1]
}

// join names a property of the object at path: "edits[0].replace".
func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// jsonType returns the JSON type of a syntactically valid value: string,
// number, boolean, null, array or object.
func jsonType(v json.RawMessage) string {
	if len(v) == 0 {
		return "null"
	}
	switch v[0] {
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	case '[':
		return "array"
	case '{':
		return "object"
	}
	return "number"
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
	case "number", "string", "bool", "boolean":
		if jsonType == "bool" || jsonType == "boolean" {
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
	return c.argError("%q must be one of %s, not %q", name, strings.Join(allowed, ", "), textclip.Clip(v, 40))
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
