package lease

import (
	"fmt"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/keyspace"
)

// Limits on resources (see the package documentation for their grammar).
const (
	// MaxResource is the longest resource, in bytes.
	MaxResource = keyspace.MaxResourceSize
	// MaxSegments is the most '/'-separated segments in a path or glob.
	MaxSegments = 256
)

type resourceKind int

const (
	kindKey resourceKind = iota
	kindPath
	kindGlob
)

// resource is a parsed resource.
type resource struct {
	raw  string
	kind resourceKind
	segs []segment // paths and globs
}

// segment is one segment of a path or glob.
type segment struct {
	raw  string
	any  bool    // "**": zero or more segments
	toks []token // the segment's pattern, literal runes for plain text
}

// token is one element of a segment pattern.
type token struct {
	star   bool // '*'
	lit    bool // a literal rune r
	r      rune
	neg    bool      // a negated class ('?' is a negated class with no ranges)
	ranges [][2]rune // class ranges, inclusive
}

const resourceHelp = `send a project-relative path such as "src/a.go", a glob such as "src/**/*.go" or a key such as "task:tk_1"`

func badResource(raw, why string) error {
	return fmt.Errorf("lease: %w: resource %q: %s; %s", ErrInvalid, textclip.Clip(raw, 80), why, resourceHelp)
}

// IsKey reports whether the resource s is a key, "scheme:name" (see the
// package documentation), rather than a path or a glob.
func IsKey(s string) bool {
	i := strings.IndexByte(s, ':')
	if i < 2 || i == len(s)-1 || strings.IndexByte(s[:i], '/') >= 0 {
		return false
	}
	for j := 0; j < i; j++ {
		c := s[j]
		switch {
		case c >= 'a' && c <= 'z':
		case j > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// parseResource validates and parses a resource.
func parseResource(s string) (resource, error) {
	if err := agent.CheckText("resource", s, MaxResource, true); err != nil {
		return resource{}, badResource(s, err.Error())
	}
	if IsKey(s) {
		return resource{raw: s, kind: kindKey}, nil
	}
	switch {
	case strings.HasPrefix(s, "/"):
		return resource{}, badResource(s, "absolute path")
	case strings.HasSuffix(s, "/"):
		return resource{}, badResource(s, "trailing '/'")
	case strings.ContainsRune(s, '\\'):
		return resource{}, badResource(s, "'\\' is not allowed (use '/' between segments; escapes are not supported)")
	}
	parts := strings.Split(s, "/")
	if len(parts) > MaxSegments {
		return resource{}, badResource(s, fmt.Sprintf("%d segments exceed the limit of %d", len(parts), MaxSegments))
	}
	r := resource{raw: s, kind: kindPath, segs: make([]segment, len(parts))}
	for i, p := range parts {
		switch {
		case p == "":
			return resource{}, badResource(s, "empty path segment")
		case p == "." || p == "..":
			return resource{}, badResource(s, fmt.Sprintf("%q segment (send a clean path)", p))
		case p == "**":
			r.segs[i] = segment{raw: p, any: true}
			r.kind = kindGlob
			continue
		case strings.Contains(p, "**"):
			return resource{}, badResource(s, fmt.Sprintf("segment %q: '**' must be a whole segment, as in \"src/**/*.go\"", p))
		}
		toks, glob, err := parseSegment(p)
		if err != nil {
			return resource{}, badResource(s, fmt.Sprintf("segment %q: %v", p, err))
		}
		if i == 0 && strings.HasPrefix(p, "@") && glob {
			// "@<project>" confines a path to one project
			// (keyspace.ProjectPath): it is never a pattern.
			return resource{}, badResource(s, fmt.Sprintf("the project segment %q cannot be a pattern", p))
		}
		if glob {
			r.kind = kindGlob
		}
		r.segs[i] = segment{raw: p, toks: toks}
	}
	return r, nil
}

// parseSegment parses one segment pattern with path.Match's syntax (minus
// escapes) and reports whether it has any wildcard.
func parseSegment(p string) (toks []token, glob bool, err error) {
	if _, err := path.Match(p, ""); err != nil {
		return nil, false, fmt.Errorf("malformed pattern (%v)", err)
	}
	for i := 0; i < len(p); {
		switch p[i] {
		case '*':
			toks = append(toks, token{star: true})
			glob = true
			i++
		case '?':
			toks = append(toks, token{neg: true})
			glob = true
			i++
		case '[':
			glob = true
			i++
			t := token{}
			if i < len(p) && p[i] == '^' {
				t.neg = true
				i++
			}
			for {
				if p[i] == ']' && len(t.ranges) > 0 {
					i++
					break
				}
				lo, n := utf8.DecodeRuneInString(p[i:])
				i += n
				hi := lo
				if p[i] == '-' {
					hi, n = utf8.DecodeRuneInString(p[i+1:])
					i += 1 + n
				}
				t.ranges = append(t.ranges, [2]rune{lo, hi})
			}
			toks = append(toks, t)
		default:
			r, n := utf8.DecodeRuneInString(p[i:])
			toks = append(toks, token{lit: true, r: r})
			i += n
		}
	}
	return toks, glob, nil
}

// literalPrefix returns the part of a glob before its first wildcard: every
// path it matches starts with it.
func (r resource) literalPrefix() string {
	if r.kind != kindGlob {
		return r.raw
	}
	if i := strings.IndexAny(r.raw, "*?["); i >= 0 {
		return r.raw[:i]
	}
	return r.raw
}

// Match reports whether path p (a path resource) is matched by pattern (a
// path or glob resource). Both must be valid resources; Match returns false
// otherwise, and for keys.
func Match(pattern, p string) bool {
	pr, err := parseResource(pattern)
	if err != nil || pr.kind == kindKey {
		return false
	}
	r, err := parseResource(p)
	if err != nil || r.kind != kindPath {
		return false
	}
	return overlap(pr, r)
}

// Overlap reports whether two resources conflict: equal keys, or a path
// both match. Invalid resources overlap nothing.
func Overlap(a, b string) bool {
	ra, err := parseResource(a)
	if err != nil {
		return false
	}
	rb, err := parseResource(b)
	if err != nil {
		return false
	}
	return overlap(ra, rb)
}

func overlap(a, b resource) bool {
	if a.kind == kindKey || b.kind == kindKey {
		return a.kind == b.kind && a.raw == b.raw
	}
	if a.kind == kindPath && b.kind == kindPath {
		return a.raw == b.raw
	}
	return segsOverlap(a.segs, b.segs)
}

// segsOverlap decides whether some path matches both segment lists, by
// searching the product of their automata: state (i, j) means the first i
// segments of a and j of b have matched one common prefix of a path. "**"
// may match nothing (move past it) or one more segment (stay); two
// ordinary segments must match one common segment.
func segsOverlap(a, b []segment) bool {
	type state struct{ i, j int }
	seen := map[state]bool{}
	stack := []state{{0, 0}}
	push := func(s state) {
		if !seen[s] {
			seen[s] = true
			stack = append(stack, s)
		}
	}
	seen[state{0, 0}] = true
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if s.i == len(a) && s.j == len(b) {
			return true
		}
		var sa, sb *segment
		if s.i < len(a) {
			sa = &a[s.i]
		}
		if s.j < len(b) {
			sb = &b[s.j]
		}
		if sa != nil && sa.any {
			push(state{s.i + 1, s.j})
		}
		if sb != nil && sb.any {
			push(state{s.i, s.j + 1})
		}
		if sa == nil || sb == nil {
			continue
		}
		switch {
		case sa.any && sb.any:
			// Both absorbing one more segment changes nothing.
		case sa.any:
			if tokensOverlap(sb.toks, anySegment) {
				push(state{s.i, s.j + 1})
			}
		case sb.any:
			if tokensOverlap(sa.toks, anySegment) {
				push(state{s.i + 1, s.j})
			}
		case tokensOverlap(sa.toks, sb.toks):
			push(state{s.i + 1, s.j + 1})
		}
	}
	return false
}

// anySegment is the pattern "*", which every segment text matches.
var anySegment = []token{{star: true}}

// tokensOverlap decides whether some non-empty segment text matches both
// patterns, by the same product construction over characters. A pattern
// made only of '*' matches the empty text and also "x", so reaching the end
// without consuming a character is still a non-empty witness.
func tokensOverlap(a, b []token) bool {
	type state struct{ i, j int }
	seen := map[state]bool{{0, 0}: true}
	stack := []state{{0, 0}}
	push := func(s state) {
		if !seen[s] {
			seen[s] = true
			stack = append(stack, s)
		}
	}
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if s.i == len(a) && s.j == len(b) {
			return true
		}
		var ta, tb *token
		if s.i < len(a) {
			ta = &a[s.i]
		}
		if s.j < len(b) {
			tb = &b[s.j]
		}
		if ta != nil && ta.star {
			push(state{s.i + 1, s.j})
		}
		if tb != nil && tb.star {
			push(state{s.i, s.j + 1})
		}
		if ta == nil || tb == nil {
			continue
		}
		switch {
		case ta.star && tb.star:
		case ta.star:
			if satisfiable(tb) {
				push(state{s.i, s.j + 1})
			}
		case tb.star:
			if satisfiable(ta) {
				push(state{s.i + 1, s.j})
			}
		case charsOverlap(ta, tb):
			push(state{s.i + 1, s.j + 1})
		}
	}
	return false
}

// matches reports whether the single-character token t matches c.
func (t *token) matches(c rune) bool {
	if t.lit {
		return c == t.r
	}
	in := false
	for _, r := range t.ranges {
		if r[0] <= c && c <= r[1] {
			in = true
			break
		}
	}
	return in != t.neg
}

// breakpoints appends the characters where t's membership may change: a
// set of ranges is constant between them. A literal's only member is
// enough: an intersection with it holds that character or nothing.
func (t *token) breakpoints(dst []rune) []rune {
	if t.lit {
		return append(dst, t.r)
	}
	for _, r := range t.ranges {
		dst = append(dst, r[0], r[1]+1)
	}
	return dst
}

// charsOverlap decides whether one character (other than '/') matches both
// single-character tokens. Both membership functions are constant between
// their breakpoints, so if the intersection is not empty it holds the
// first character of one of its runs: 0, a breakpoint, or the character
// after '/'.
func charsOverlap(a, b *token) bool {
	cands := []rune{0, '/' + 1}
	cands = a.breakpoints(cands)
	cands = b.breakpoints(cands)
	for _, c := range cands {
		if c != '/' && c >= 0 && c <= utf8.MaxRune && a.matches(c) && b.matches(c) {
			return true
		}
	}
	return false
}

func satisfiable(t *token) bool { return charsOverlap(t, t) }
