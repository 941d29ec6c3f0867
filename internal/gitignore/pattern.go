package gitignore

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"unicode/utf8"
)

// pattern is one gitignore line, compiled.
type pattern struct {
	src      string // the line as written, for explanations
	negate   bool
	dirOnly  bool
	anchored bool   // matched against the path below domain, else the base name
	domain   string // the directory of the file it came from, relative to the match base; "" at the base
	kind     matchKind
	literal  string         // matchLiteral: the whole name; matchSuffix: what "*" is followed by
	re       *regexp.Regexp // matchRegexp
}

// matchKind is how a pattern matches: most gitignore lines are a name or
// "*.ext", which need no regular expression.
type matchKind uint8

const (
	matchLiteral matchKind = iota
	matchSuffix
	matchRegexp
	matchNever // a malformed pattern (unclosed bracket, trailing '\\') matches nothing
)

// parseLine compiles one line of a gitignore file found in domain;
// ok is false for blank lines and comments.
func parseLine(line, domain string) (pattern, bool) {
	line = strings.TrimSuffix(line, "\r")
	p := pattern{src: line, domain: domain}
	if line == "" || line[0] == '#' {
		return p, false
	}
	// Trailing spaces are dropped unless escaped with a backslash.
	line = trimTrailingSpaces(line)
	if line == "" {
		return p, false
	}
	if line[0] == '!' {
		p.negate = true
		line = line[1:]
	} else if strings.HasPrefix(line, `\!`) || strings.HasPrefix(line, `\#`) {
		line = line[1:]
	}
	if strings.HasSuffix(line, "/") {
		p.dirOnly = true
		line = strings.TrimRight(line, "/")
	}
	if line == "" {
		return p, false
	}
	if strings.Contains(line, "/") {
		p.anchored = true
		line = strings.TrimPrefix(line, "/")
	}
	switch {
	case !strings.ContainsAny(line, `*?[\`):
		p.kind, p.literal = matchLiteral, line
	case !p.anchored && line[0] == '*' && !strings.ContainsAny(line[1:], `*?[\`):
		p.kind, p.literal = matchSuffix, line[1:]
	default:
		expr, ok := globRegexp(line)
		if !ok {
			p.kind = matchNever
			break
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			// A class git's wildmatch accepts but RE2 refuses, such as the
			// reversed range in "[~-0]", which matches no character in git:
			// the pattern matches nothing. A hostile .gitignore must never
			// stop its reader.
			p.kind = matchNever
			break
		}
		p.kind, p.re = matchRegexp, re
	}
	return p, true
}

// trimTrailingSpaces drops unescaped trailing spaces, as git does.
func trimTrailingSpaces(s string) string {
	end := len(s)
	for end > 0 && s[end-1] == ' ' {
		// Count the backslashes before this space.
		bs := 0
		for i := end - 2; i >= 0 && s[i] == '\\'; i-- {
			bs++
		}
		if bs%2 == 1 {
			break // escaped: keep it (the backslash goes with the glob)
		}
		end--
	}
	return s[:end]
}

// globRegexp translates a gitignore glob (git's wildmatch with
// WM_PATHNAME) into an anchored regular expression. ok is false for a
// glob git treats as matching nothing.
func globRegexp(g string) (string, bool) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(g); {
		c := g[i]
		switch {
		case c == '*':
			j := i
			for j < len(g) && g[j] == '*' {
				j++
			}
			atStart := i == 0 || g[i-1] == '/'
			atEnd := j == len(g) || g[j] == '/'
			if j-i == 2 && atStart && atEnd {
				switch {
				case j == len(g) && i == 0: // "**": everything
					b.WriteString(".*")
				case j == len(g): // "x/**": everything inside x
					b.WriteString(".+")
				default: // "**/" : zero or more directories
					b.WriteString("(?:.*/)?")
					j++ // the '/'
				}
			} else {
				b.WriteString("[^/]*")
			}
			i = j
		case c == '?':
			b.WriteString("[^/]")
			i++
		case c == '[':
			expr, n, ok := bracketRegexp(g[i:])
			if !ok {
				return "", false
			}
			b.WriteString(expr)
			i += n
		case c == '\\':
			if i+1 == len(g) {
				return "", false
			}
			writeByte(&b, g[i+1])
			i += 2
		default:
			writeByte(&b, c)
			i++
		}
	}
	b.WriteString("$")
	return b.String(), true
}

// bracketRegexp translates the bracket expression at the start of s and
// returns it with the number of bytes it used. A bracket never matches
// '/'. Like git, it works on bytes (see byteRunes).
func bracketRegexp(s string) (string, int, bool) {
	i := 1
	var b strings.Builder
	b.WriteString("[")
	if i < len(s) && (s[i] == '!' || s[i] == '^') {
		b.WriteString("^/")
		i++
	}
	prev := -1 // the single character before a '-', which starts a range
	for first := true; i < len(s); first = false {
		c := s[i]
		switch {
		case c == ']' && !first:
			b.WriteString("]")
			return b.String(), i + 1, true
		case c == '[' && strings.HasPrefix(s[i:], "[:"):
			end := strings.Index(s[i+2:], ":]")
			if end < 0 || !posixClasses[s[i+2:i+2+end]] {
				return "", 0, false
			}
			b.WriteString(s[i : i+2+end+2])
			i += 2 + end + 2
			prev = -1
		case c == '-' && !first && i+1 < len(s) && s[i+1] != ']':
			j := i + 1
			e := s[j]
			if e == '\\' {
				if j+1 == len(s) {
					return "", 0, false
				}
				j++
				e = s[j]
			}
			// A reversed range ("[z-a]") adds nothing in git's wildmatch
			// beyond its first character, already written; RE2 would refuse
			// it.
			if prev < 0 || int(e) >= prev {
				b.WriteString("-")
				writeByte(&b, e)
			}
			i, prev = j+1, -1
		default:
			if c == '\\' {
				if i+1 == len(s) {
					return "", 0, false
				}
				i++
				c = s[i]
			}
			writeByte(&b, c)
			i++
			prev = int(c)
		}
	}
	return "", 0, false // unclosed
}

// writeByte writes byte c for a regular expression over byteRunes:
// escaped when special, as a code point below 256 when not ASCII.
func writeByte(b *strings.Builder, c byte) {
	switch {
	case c >= utf8.RuneSelf:
		fmt.Fprintf(b, `\x{%02x}`, c)
	case strings.IndexByte(`\.+*?()|[]{}^$-`, c) >= 0:
		b.WriteByte('\\')
		b.WriteByte(c)
	default:
		b.WriteByte(c)
	}
}

// byteRunes returns s with each byte as the code point of the same value,
// so that Go's rune-based regular expressions match byte by byte, as
// git's wildmatch does: "?" matches one byte, and "uni?" does not match
// "unié". ASCII strings are returned unchanged.
func byteRunes(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	r := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		r[i] = rune(s[i])
	}
	return string(r)
}

var posixClasses = map[string]bool{
	"alnum": true, "alpha": true, "blank": true, "cntrl": true, "digit": true, "graph": true,
	"lower": true, "print": true, "punct": true, "space": true, "upper": true, "xdigit": true,
}

// match reports whether p matches rel (relative to the match base).
func (p *pattern) match(rel string, isDir bool) bool {
	if p.kind == matchNever || (p.dirOnly && !isDir) {
		return false
	}
	sub := rel
	if p.domain != "" {
		rest, ok := strings.CutPrefix(rel, p.domain)
		if !ok || rest == "" || rest[0] != '/' {
			return false
		}
		sub = rest[1:]
	}
	if !p.anchored {
		sub = path.Base(sub)
	}
	switch p.kind {
	case matchRegexp:
		return p.re.MatchString(byteRunes(sub))
	case matchSuffix:
		return strings.HasSuffix(sub, p.literal)
	}
	return sub == p.literal
}
