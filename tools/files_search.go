package tools

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/coditect/coditect/internal/textclip"
)

// --- fs_search ---

type searchArgs struct {
	SessionID     string `json:"session_id"`
	Pattern       string `json:"pattern"`
	Regex         bool   `json:"regex"`
	Path          string `json:"path"`
	Glob          string `json:"glob"`
	CaseSensitive *bool  `json:"case_sensitive"`
	Context       *int   `json:"context"`
	MaxResults    int    `json:"max_results"`
}

type searchMatch struct {
	Path   string   `json:"path"`
	Line   int      `json:"line"`
	Text   string   `json:"text"`
	Before []string `json:"before,omitempty"`
	After  []string `json:"after,omitempty"`
}

type searchOut struct {
	Matches []searchMatch `json:"matches"`
	// TotalMatches counts the matching lines found, TotalFiles the files
	// holding them; Matches shows the first ones in path order.
	TotalMatches  int  `json:"total_matches"`
	TotalFiles    int  `json:"total_files"`
	FilesSearched int  `json:"files_searched"`
	CaseSensitive bool `json:"case_sensitive"`
	// SkippedBinary and SkippedLarge count the files not searched: binary
	// (a NUL byte in their first 8 KiB) or over the files tools' size
	// limit. A file that vanished or cannot be read counts nowhere.
	SkippedBinary int  `json:"skipped_binary,omitempty"`
	SkippedLarge  int  `json:"skipped_large,omitempty"`
	TimedOut      bool `json:"timed_out,omitempty"`
	// counts holds the matching lines of each file with any.
	counts map[string]int
}

func (fd finder) searchTool() *Tool {
	return spec{
		name: "fs_search", title: "Search the code",
		description: "Search a session's workspace for text or a regex, as path:line: text; skips .gitignore'd and binary files.",
		hints:       readOnly,
		input: `{"type":"object","required":["session_id","pattern"],"additionalProperties":false,"properties":{
			"session_id":{"type":"string"},
			"pattern":{"type":"string","description":"Text to find on one line, e.g. func main"},
			"regex":{"type":"boolean","description":"Pattern is an RE2 regular expression"},
			"path":{"type":"string","description":"Folder or file to search; default all"},
			"glob":{"type":"string","description":"Only files matching it, e.g. *.go or src/**/*.ts"},
			"case_sensitive":{"type":"boolean","description":"Default: only if the pattern has a capital"},
			"context":{"type":"integer","minimum":0,"maximum":5,"description":"Lines around each match; default 1"},
			"max_results":{"type":"integer","minimum":1,"maximum":200,"description":"Lines shown; default 50"}}}`,
		output: `{"type":"object","required":["matches","total_matches","total_files","files_searched","case_sensitive"],"properties":{
			"matches":{"type":"array","items":{"type":"object","required":["path","line","text"],"properties":{
			"path":{"type":"string"},"line":{"type":"integer"},"text":{"type":"string"},
			"before":{"type":"array","items":{"type":"string"}},"after":{"type":"array","items":{"type":"string"}}}}},
			"total_matches":{"type":"integer"},"total_files":{"type":"integer"},"files_searched":{"type":"integer"},
			"case_sensitive":{"type":"boolean"},"skipped_binary":{"type":"integer"},"skipped_large":{"type":"integer"},
			"timed_out":{"type":"boolean"}}}`,
		example: `{"session_id":"01JZ3K5V8Q2W7X9Y4N6M1P0R3T","pattern":"func handleLogin","glob":"*.go"}`,
		handler: fd.search,
	}.tool()
}

// searchQuery is a checked fs_search request.
type searchQuery struct {
	m       lineMatcher
	glob    fileGlob
	context int
	max     int
}

func (fd finder) query(c *Call, a searchArgs) (searchQuery, error) {
	if _, err := c.sessionID(a.SessionID, true); err != nil {
		return searchQuery{}, err
	}
	q := searchQuery{context: defaultContext, max: defaultSearchResults}
	if a.Pattern == "" {
		return q, c.argError("%q is required: the text to find, e.g. func main", "pattern")
	}
	if err := c.text("pattern", a.Pattern, maxPatternArg, true, false); err != nil {
		return q, err
	}
	if strings.ContainsAny(a.Pattern, "\r\n") {
		return q, c.argError("%q must be one line: matches are found within a line; search for one line of the text", "pattern")
	}
	switch {
	case a.Context != nil && (*a.Context < 0 || *a.Context > maxContext):
		return q, c.argError("%q must be between 0 and %d, not %d", "context", maxContext, *a.Context)
	case a.Context != nil:
		q.context = *a.Context
	}
	switch {
	case a.MaxResults < 0 || a.MaxResults > maxSearchResults:
		return q, c.argError("%q must be between 1 and %d, not %d", "max_results", maxSearchResults, a.MaxResults)
	case a.MaxResults > 0:
		q.max = a.MaxResults
	}
	g, err := c.glob("glob", a.Glob)
	if err != nil {
		return q, err
	}
	q.glob = g
	sensitive := hasUpper(a.Pattern, a.Regex)
	if a.CaseSensitive != nil {
		sensitive = *a.CaseSensitive
	}
	if q.m, err = newLineMatcher(a.Pattern, a.Regex, sensitive); err != nil {
		return q, c.argError("%q is not a valid regular expression: %v. It is RE2 syntax (no look-around or back-references); send regex false to find the text as written", "pattern", err)
	}
	return q, nil
}

func (fd finder) search(ctx context.Context, c *Call) (Result, error) {
	var a searchArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	q, err := fd.query(c, a)
	if err != nil {
		return Result{}, err
	}
	t, err := fd.openTree(ctx, c, a.SessionID, a.Path)
	if err != nil {
		return Result{}, err
	}
	defer t.close()
	start := time.Now()

	// The walk lists the files in path order while the workers search
	// them, as many at once as there are processors.
	type job struct {
		i int
		e entry
	}
	jobs := make(chan job, 256)
	stop := make(chan struct{})
	res := &searchResults{max: q.max}
	var listed int
	go func() {
		defer close(jobs)
		t.walk(func(e entry) bool {
			if !e.d.Type().IsRegular() || !q.glob.match(e.rel) {
				return true
			}
			if !t.hold(e.dir) {
				e.dir, e.name = t.root, e.rel
			}
			select {
			case jobs <- job{listed, e}:
				listed++
				return true
			case <-stop:
				return false
			}
		})
	}()
	var wg sync.WaitGroup
	var once sync.Once
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			var buf, scratch []byte
			for j := range jobs {
				if time.Now().After(t.deadline) {
					once.Do(func() { close(stop) })
					res.stopped.Store(true)
					continue // drain: the walk ends at its next entry
				}
				b, why := t.readText(j.e, fd.f.maxRead, &buf)
				scratch = res.done(j.i, j.e.rel, b, why, q, scratch)
			}
		})
	}
	wg.Wait()
	out := res.out(q)
	out.TimedOut = t.timedOut || res.stopped.Load()
	c.record("matches", out.TotalMatches)
	c.record("files_searched", out.FilesSearched)
	text := searchText(&out, a, q, listed, time.Since(start))
	return Result{Structured: out, Text: text}, nil
}

// hasUpper reports whether a pattern asks for its case: it holds an upper
// case letter (in a regular expression, as a literal, not in an escape such
// as \S).
func hasUpper(p string, regex bool) bool {
	if !regex {
		return strings.IndexFunc(p, unicode.IsUpper) >= 0
	}
	re, err := syntax.Parse(p, syntax.Perl)
	if err != nil {
		return false
	}
	var upper func(*syntax.Regexp) bool
	upper = func(r *syntax.Regexp) bool {
		if r.Op == syntax.OpLiteral && slices.ContainsFunc(r.Rune, unicode.IsUpper) {
			return true
		}
		return slices.ContainsFunc(r.Sub, upper)
	}
	return upper(re)
}

// lineMatcher finds the lines of a text that hold a match.
type lineMatcher struct {
	sensitive bool
	lit       []byte // a literal: as sent, or lower-cased ASCII (fold)
	fold      bool
	re        *regexp.Regexp
}

// newLineMatcher compiles a pattern: Go's regexp (RE2, linear in the text
// whatever the pattern) for regular expressions and for case-insensitive
// literals beyond ASCII, byte comparison otherwise.
func newLineMatcher(p string, regex, sensitive bool) (lineMatcher, error) {
	m := lineMatcher{sensitive: sensitive}
	switch {
	case !regex && sensitive:
		m.lit = []byte(p)
		return m, nil
	case !regex && isASCII(p):
		m.lit, m.fold = []byte(strings.ToLower(p)), true
		return m, nil
	case !regex:
		p = regexp.QuoteMeta(p)
	}
	flags := "(?m)"
	if !sensitive {
		flags = "(?mi)"
	}
	re, err := regexp.Compile(flags + p)
	if err != nil {
		var se *syntax.Error
		if errors.As(err, &se) {
			return m, fmt.Errorf("%s in %q", se.Code, textclip.Clip(se.Expr, 80))
		}
		return m, err
	}
	m.re = re
	return m, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// lowerASCII writes b with its ASCII letters lower-cased into dst: the
// same length, so offsets carry over.
func lowerASCII(dst, b []byte) []byte {
	dst = append(dst[:0], b...)
	for i, c := range dst {
		if 'A' <= c && c <= 'Z' {
			dst[i] = c + 'a' - 'A'
		}
	}
	return dst
}

// lines calls fn with the bounds of every line of b that holds a match
// (end excludes the newline), in order, until fn returns false. A match
// never spans lines: a regular expression that matches across a newline
// counts for the line where it starts only when it matches within it.
func (m lineMatcher) lines(b, scratch []byte, fn func(start, end int) bool) []byte {
	hay := b
	if m.fold {
		scratch = lowerASCII(scratch, b)
		hay = scratch
	}
	for pos := 0; pos <= len(b); {
		var at, end int
		if m.re == nil {
			i := bytes.Index(hay[pos:], m.lit)
			if i < 0 {
				break
			}
			at, end = pos+i, pos+i+len(m.lit)
		} else {
			loc := m.re.FindIndex(b[pos:])
			if loc == nil {
				break
			}
			at, end = pos+loc[0], pos+loc[1]
		}
		ls := bytes.LastIndexByte(b[:at], '\n') + 1
		le := len(b)
		if i := bytes.IndexByte(b[at:], '\n'); i >= 0 {
			le = at + i
		}
		if ls == len(b) {
			break // an empty match after the last newline: no line there
		}
		if end <= le || (m.re != nil && m.re.Match(b[ls:le])) {
			if !fn(ls, le) {
				break
			}
		}
		pos = le + 1
	}
	return scratch
}

// searchResults collects the matches of the files of a search, searched
// in any order, so that the first max matching lines in path order are
// kept: a file's lines are kept only while the files before it (all of
// them searched) hold fewer than max.
type searchResults struct {
	mu       sync.Mutex
	files    []fileHits // by the order the walk listed them
	prefix   int        // files[:prefix] are all searched
	inPrefix int        // matching lines in files[:prefix]
	max      int
	stopped  atomic.Bool
}

type fileHits struct {
	rel     string
	count   int
	matches []searchMatch
	skipped string
	done    bool
}

// wanted reports whether file i's lines may be shown.
func (r *searchResults) wanted(i int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return i < r.prefix || r.inPrefix < r.max
}

// done records the search of file i, whose text is b (nil when skipped for
// why); scratch is the caller's buffer for the matcher, returned grown.
func (r *searchResults) done(i int, rel string, b []byte, why string, q searchQuery, scratch []byte) []byte {
	h := fileHits{rel: rel, skipped: why, done: true}
	if b != nil {
		keep := r.wanted(i)
		line, counted := 1, 0 // the line number at offset counted
		scratch = q.m.lines(b, scratch, func(start, end int) bool {
			h.count++
			if keep && len(h.matches) < q.max {
				line += bytes.Count(b[counted:start], []byte{'\n'})
				counted = start
				h.matches = append(h.matches, matchAt(b, start, end, line, rel, q.context))
			}
			return true
		})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if i >= len(r.files) {
		r.files = slices.Grow(r.files, i+1-len(r.files))[:i+1]
	}
	r.files[i] = h
	for r.prefix < len(r.files) && r.files[r.prefix].done {
		r.inPrefix += r.files[r.prefix].count
		r.prefix++
	}
	return scratch
}

// matchAt returns the match on line number line, b[start:end], with its
// context.
func matchAt(b []byte, start, end, line int, rel string, context int) searchMatch {
	m := searchMatch{Path: rel, Line: line, Text: shownLine(b[start:end])}
	for i, s := 0, start; i < context && s > 0; i++ {
		ps := bytes.LastIndexByte(b[:s-1], '\n') + 1
		m.Before = append(m.Before, shownLine(b[ps:s-1]))
		s = ps
	}
	slices.Reverse(m.Before)
	for i, e := 0, end; i < context && e < len(b); i++ {
		ns := e + 1
		if ns >= len(b) {
			break
		}
		ne := len(b)
		if j := bytes.IndexByte(b[ns:], '\n'); j >= 0 {
			ne = ns + j
		}
		m.After = append(m.After, shownLine(b[ns:ne]))
		e = ne
	}
	return m
}

// shownLine is a line as a result shows it: valid UTF-8, without its
// carriage return, at most maxShownLine bytes.
func shownLine(b []byte) string {
	b = bytes.TrimSuffix(b, []byte{'\r'})
	return textclip.Clip(strings.ToValidUTF8(string(b[:min(len(b), maxShownLine+4)]), "\uFFFD"), maxShownLine)
}

// out returns the search's result: the first q.max matching lines in path
// order, and the counts.
func (r *searchResults) out(q searchQuery) searchOut {
	out := searchOut{Matches: []searchMatch{}, CaseSensitive: q.m.sensitive, counts: map[string]int{}}
	for _, h := range r.files {
		if !h.done {
			continue
		}
		switch h.skipped {
		case "binary":
			out.SkippedBinary++
		case "large":
			out.SkippedLarge++
		case "":
			out.FilesSearched++
		}
		if h.count > 0 {
			out.TotalMatches += h.count
			out.TotalFiles++
			out.counts[h.rel] = h.count
		}
		for _, m := range h.matches {
			if len(out.Matches) < q.max {
				out.Matches = append(out.Matches, m)
			}
		}
	}
	return out
}

// searchText renders a search for a model, grep's way: "path:line: text"
// for a matching line, "path-line- text" for the lines around it, "--"
// between separate blocks; within maxFoundOutput bytes (matches past it
// are dropped from out.Matches too, so both say the same).
func searchText(out *searchOut, a searchArgs, q searchQuery, files int, took time.Duration) string {
	var b strings.Builder
	shown := matchLines(&b, out.Matches)
	out.Matches = out.Matches[:shown]
	what := fmt.Sprintf("%q", textclip.Clip(a.Pattern, 100))
	if a.Regex {
		what = "/" + textclip.Clip(a.Pattern, 100) + "/"
	}
	if !q.m.sensitive {
		what += " (ignoring case)"
	}
	where := ""
	if a.Path != "" && a.Path != "." {
		where += " under " + textclip.Clip(a.Path, 100)
	}
	if a.Glob != "" {
		where += " in files matching " + textclip.Clip(a.Glob, 100)
	}
	switch {
	case out.TotalMatches == 0:
		fmt.Fprintf(&b, "No line matches %s in %d files%s.", what, out.FilesSearched, where)
		if q.m.sensitive && a.CaseSensitive == nil {
			b.WriteString(" The search was case-sensitive because the pattern has a capital letter; send case_sensitive false to ignore case.")
		}
		if !a.Regex && strings.ContainsAny(a.Pattern, `*|\[(`) {
			b.WriteString(" The pattern was found as written; send regex true for a regular expression.")
		}
	default:
		fmt.Fprintf(&b, "%d matching lines in %d files for %s%s (%d files searched).", out.TotalMatches, out.TotalFiles, what, where, out.FilesSearched)
		if rest := out.TotalMatches - shown; rest > 0 {
			fmt.Fprintf(&b, " %d more matches in %d files not shown: narrow it with path or glob, or raise max_results (at most %d).",
				rest, filesNotShown(out), maxSearchResults)
		}
	}
	if out.SkippedBinary+out.SkippedLarge > 0 {
		fmt.Fprintf(&b, " Skipped %d binary files and %d files over the size limit.", out.SkippedBinary, out.SkippedLarge)
	}
	if out.TimedOut {
		fmt.Fprintf(&b, " The search stopped after %.1f s with %d of %d files searched (more may not have been listed); narrow it with path or glob.",
			took.Seconds(), out.FilesSearched+out.SkippedBinary+out.SkippedLarge, files)
	}
	return b.String()
}

// matchLines writes matches to b as grep does with context: each line
// once ("path:n: text" for a match, even where it is another's context,
// "path-n- text" for context), "--" where lines are skipped. It stops
// before the match that would take b past the output budget and returns
// how many it wrote.
func matchLines(b *strings.Builder, ms []searchMatch) int {
	type ctxLine struct {
		path string
		n    int
		text string
	}
	type state struct {
		path    string
		last    int // the last line written
		pending []ctxLine
	}
	var st state
	emit := func(w *strings.Builder, p string, n int, mark byte, text string) {
		if (b.Len() > 0 || w.Len() > 0) && (p != st.path || n != st.last+1) {
			w.WriteString("--\n")
		}
		fmt.Fprintf(w, "%s%c%d%c %s\n", p, mark, n, mark, text)
		st.path, st.last = p, n
	}
	// flush writes the pending context lines above line below of path p.
	flush := func(w *strings.Builder, p string, below int) {
		for _, l := range st.pending {
			if l.path != p || l.n < below {
				emit(w, l.path, l.n, '-', l.text)
			}
		}
		st.pending = nil
	}
	// Room for the context after the last match written.
	const afterMax = maxContext * (maxShownLine + 64)
	for i, m := range ms {
		saved := st
		var blk strings.Builder
		flush(&blk, m.Path, m.Line)
		for j, text := range m.Before {
			if n := m.Line - len(m.Before) + j; m.Path != st.path || n > st.last {
				emit(&blk, m.Path, n, '-', text)
			}
		}
		emit(&blk, m.Path, m.Line, ':', m.Text)
		if b.Len()+blk.Len()+afterMax > maxFoundOutput {
			st = saved
			flush(b, "", 0)
			return i
		}
		b.WriteString(blk.String())
		for j, text := range m.After {
			st.pending = append(st.pending, ctxLine{m.Path, m.Line + 1 + j, text})
		}
	}
	flush(b, "", 0)
	return len(ms)
}

// filesNotShown counts the files some of whose matching lines out does not
// show.
func filesNotShown(out *searchOut) int {
	shown := map[string]int{}
	for _, m := range out.Matches {
		shown[m.Path]++
	}
	n := 0
	for p, c := range out.counts {
		if shown[p] < c {
			n++
		}
	}
	return n
}
