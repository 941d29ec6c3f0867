package watch

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Ignore rules follow git's gitignore(5) exactly, because the people and
// agents using a workspace already wrote them for git: the enclosing
// repository's .gitignore files (nested ones too, deeper files first,
// later lines first), .git/info/exclude, then the built-in defaults; the
// user's own patterns come before all of them, and ".git" is always
// ignored. A path inside an ignored directory is ignored whatever a
// negation says, as in git.
//
// The matcher is our own, proved against `git check-ignore` by
// TestIgnoreAgreesWithGit. go-git's plumbing/format/gitignore was measured
// first and disagreed with git on 8 of 85 cases in five ways that a
// wrapper cannot fix: "[!x]" is not negated, "foo/**" matches foo itself,
// "**" in the middle does not backtrack ("a/**/b/c" misses a/b/x/b/c),
// "**" inside a segment never matches, and every pattern also matches
// everything below a match, so "!dir/**/" re-includes files under dir.

// DefaultIgnores are the patterns ignored unless Config.NoDefaultIgnores:
// version-control metadata, dependency trees, build output, caches and
// editors' swap and backup files. They rank below every .gitignore, so a
// repository can re-include one with a negation.
var DefaultIgnores = []string{
	".hg/", ".svn/", ".jj/", ".bzr/",
	"node_modules/", "bower_components/", ".pnpm-store/", ".yarn/cache/",
	"__pycache__/", "*.py[co]", ".venv/", ".tox/", ".nox/", ".mypy_cache/", ".pytest_cache/", ".ruff_cache/",
	".gradle/", ".next/", ".nuxt/", ".svelte-kit/", ".turbo/", ".parcel-cache/", ".angular/", ".terraform/",
	"/target/", "/dist/", "/build/", "/out/", "/coverage/", ".cache/", ".idea/",
	"*.swp", "*.swo", "*.swx", "*~", ".#*", "#*#", "4913", ".DS_Store", "Thumbs.db",
}

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

// parseIgnoreLine compiles one line of a gitignore file found in domain;
// ok is false for blank lines and comments.
func parseIgnoreLine(line, domain string) (pattern, bool) {
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
			// stop the watcher.
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

// ignoreRules decide which paths of one workspace are ignored. The match
// base is the enclosing git repository's top level when the workspace is
// inside one (so that its .gitignore files above the workspace apply), the
// workspace root otherwise. Not safe for concurrent use.
type ignoreRules struct {
	base   string // absolute match base
	prefix string // the workspace root relative to base, "" when equal
	user   []pattern
	files  map[string][]pattern // .gitignore patterns by directory, relative to base
	info   []pattern            // .git/info/exclude
	defs   []pattern
	// extra are absolute paths always ignored (the store, the events file).
	extra map[string]bool
}

// newIgnoreRules builds the rules of the workspace at root (absolute,
// symlinks resolved). It reads .gitignore files from the repository's top
// level down to root; the ones below root are loaded as the walk finds
// them (loadDir).
func newIgnoreRules(root string, user []string, defaults bool, extra []string) (*ignoreRules, error) {
	r := &ignoreRules{base: root, files: map[string][]pattern{}, extra: map[string]bool{}}
	if top := gitTopLevel(root); top != "" {
		r.base = top
		rel, err := filepath.Rel(top, root)
		if err == nil && rel != "." {
			r.prefix = filepath.ToSlash(rel)
		}
		r.info = readIgnoreFile(filepath.Join(top, ".git", "info", "exclude"), "")
		// .gitignore files from the top level down to root's parent.
		dir := ""
		for _, el := range strings.Split(r.prefix, "/") {
			if el == "" {
				break
			}
			r.loadDirRel(dir)
			dir = path.Join(dir, el)
		}
	}
	for _, l := range user {
		if p, ok := parseIgnoreLine(l, r.prefix); ok {
			r.user = append(r.user, p)
		} else if strings.TrimSpace(l) != "" && !strings.HasPrefix(l, "#") {
			return nil, fmt.Errorf("watch: ignore pattern %q matches nothing", l)
		}
	}
	if defaults {
		for _, l := range DefaultIgnores {
			p, _ := parseIgnoreLine(l, r.prefix)
			r.defs = append(r.defs, p)
		}
	}
	for _, e := range extra {
		r.extra[filepath.Clean(e)] = true
	}
	return r, nil
}

// gitTopLevel returns the top level of the git work tree that contains
// dir: the nearest ancestor (or dir itself) holding .git.
func gitTopLevel(dir string) string {
	for d := dir; ; {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			return ""
		}
		d = parent
	}
}

func readIgnoreFile(name, domain string) []pattern {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // a UTF-8 BOM, as git allows
	var out []pattern
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		if p, ok := parseIgnoreLine(sc.Text(), domain); ok {
			out = append(out, p)
		}
	}
	return out
}

// rel converts a workspace-relative path to a base-relative one.
func (r *ignoreRules) rel(wsRel string) string {
	switch {
	case r.prefix == "":
		return wsRel
	case wsRel == "":
		return r.prefix
	}
	return r.prefix + "/" + wsRel
}

// loadDir (re)reads the .gitignore of the workspace directory wsRel ("" for
// the root); it reports whether the rules changed.
func (r *ignoreRules) loadDir(wsRel string) bool { return r.loadDirRel(r.rel(wsRel)) }

func (r *ignoreRules) loadDirRel(dir string) bool {
	old, had := r.files[dir]
	ps := readIgnoreFile(filepath.Join(r.base, filepath.FromSlash(dir), ".gitignore"), dir)
	if len(ps) == 0 {
		delete(r.files, dir)
		return had
	}
	r.files[dir] = ps
	if len(old) != len(ps) {
		return true
	}
	for i := range ps {
		if old[i].src != ps[i].src {
			return true
		}
	}
	return false
}

// dropDir forgets the .gitignore files of wsRel and below (a removed
// directory).
func (r *ignoreRules) dropDir(wsRel string) {
	d := r.rel(wsRel)
	for k := range r.files {
		if k == d || strings.HasPrefix(k, d+"/") || d == "" {
			delete(r.files, k)
		}
	}
}

// Ignored reports whether the workspace-relative path wsRel ('/'
// separated) is ignored, its ancestors within the workspace included.
func (r *ignoreRules) Ignored(wsRel string, isDir bool) bool {
	if wsRel == "" {
		return false
	}
	for i := 0; i < len(wsRel); i++ {
		if wsRel[i] == '/' && r.leaf(wsRel[:i], true) {
			return true
		}
	}
	return r.leaf(wsRel, isDir)
}

// leaf reports whether wsRel is ignored by a rule that names it, given
// that its parent directory is not ignored.
func (r *ignoreRules) leaf(wsRel string, isDir bool) bool {
	name := path.Base(wsRel)
	if name == ".git" {
		return true
	}
	if len(r.extra) > 0 && r.extra[filepath.Join(r.workspaceRoot(), filepath.FromSlash(wsRel))] {
		return true
	}
	rel := r.rel(wsRel)
	if m, ok := lastMatch(r.user, rel, isDir); ok {
		return m
	}
	// .gitignore files from the path's own directory up to the base.
	for dir := path.Dir(rel); ; dir = path.Dir(dir) {
		if dir == "." {
			dir = ""
		}
		if m, ok := lastMatch(r.files[dir], rel, isDir); ok {
			return m
		}
		if dir == "" {
			break
		}
	}
	if m, ok := lastMatch(r.info, rel, isDir); ok {
		return m
	}
	m, _ := lastMatch(r.defs, rel, isDir)
	return m
}

func (r *ignoreRules) workspaceRoot() string {
	return filepath.Join(r.base, filepath.FromSlash(r.prefix))
}

// lastMatch applies ps, the last matching pattern deciding; ok is false
// when none matches.
func lastMatch(ps []pattern, rel string, isDir bool) (ignored, ok bool) {
	for i := len(ps) - 1; i >= 0; i-- {
		if ps[i].match(rel, isDir) {
			return !ps[i].negate, true
		}
	}
	return false, false
}
