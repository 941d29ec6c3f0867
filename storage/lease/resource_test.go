package lease

import (
	"errors"
	"math/rand/v2"
	"path"
	"strings"
	"testing"
)

func TestParseResource(t *testing.T) {
	for _, tc := range []struct {
		in   string
		kind resourceKind
		err  string // substring of the error; "" for valid
	}{
		{"src/a.go", kindPath, ""},
		{"a", kindPath, ""},
		{"src/**/*.go", kindGlob, ""},
		{"**", kindGlob, ""},
		{"src/[a-c]?.go", kindGlob, ""},
		{"src/[^x].go", kindGlob, ""},
		{"task:tk_01", kindKey, ""},
		{"t2+x-y.z:anything/at all", kindKey, ""},
		{"c:/windows", kindPath, ""}, // a one-letter scheme is a drive, not a key
		{"src/a:b.go", kindPath, ""},
		{"Task:x", kindPath, ""},
		{"héllo/wörld.go", kindPath, ""},
		{"", 0, "resource is empty"},
		{"/src/a.go", 0, "absolute path"},
		{"src/", 0, "trailing '/'"},
		{"src//a.go", 0, "empty path segment"},
		{"src/./a.go", 0, `"." segment`},
		{"../a.go", 0, `".." segment`},
		{`src\a.go`, 0, `'\' is not allowed`},
		{"src/a**.go", 0, "'**' must be a whole segment"},
		{"src/[a", 0, "malformed pattern"},
		{"src/[]a]", 0, "malformed pattern"},
		{"src/a\x00", 0, "control character"},
		{"src/a\n.go", 0, "control character"},
		{"src/\xff", 0, "not valid UTF-8"},
		{strings.Repeat("a", MaxResource+1), 0, "exceeds the limit"},
		{strings.Repeat("a/", MaxSegments) + "a", 0, "segments exceed"},
		{"task:", 0, ""}, // not a key (empty name): a path with a colon
		{"@pr_01JZ3K5V8Q2W7X9Y4N6M1P0R3T/src/**", kindGlob, ""},
		{"node_modules/@types/*", kindGlob, ""},
		{"@pr_*/src/a.go", 0, "project segment"},
		{"@*/**", 0, "project segment"},
	} {
		r, err := parseResource(tc.in)
		if tc.err == "" {
			if err != nil {
				t.Errorf("parseResource(%q): %v", tc.in, err)
			} else if tc.in != "task:" && r.kind != tc.kind {
				t.Errorf("parseResource(%q) kind %d, want %d", tc.in, r.kind, tc.kind)
			}
			continue
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "send a project-relative path") {
			t.Errorf("parseResource(%q) = %v; want ErrInvalid saying %q and what to send", tc.in, err, tc.err)
		}
	}
}

func TestMatchAndOverlap(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"src/a.go", "src/a.go", true},
		{"src/a.go", "src/b.go", false},
		// One relative path in two projects is two resources.
		{"@pr_01JZ3K5V8Q2W7X9Y4N6M1P0R3T/src/a.go", "@pr_01JZ3K5V8Q2W7X9Y4N6M1P0R3V/src/a.go", false},
		{"@pr_01JZ3K5V8Q2W7X9Y4N6M1P0R3T/**", "@pr_01JZ3K5V8Q2W7X9Y4N6M1P0R3V/src/a.go", false},
		{"@pr_01JZ3K5V8Q2W7X9Y4N6M1P0R3T/**", "@pr_01JZ3K5V8Q2W7X9Y4N6M1P0R3T/src/a.go", true},
		{"src/**/*.go", "src/a.go", true},
		{"src/**/*.go", "src/x/y/a.go", true},
		{"src/**/*.go", "src/a.ts", false},
		{"src/**/*.go", "lib/a.go", false},
		{"src/**", "src", true},
		{"src/**", "src/x/y", true},
		{"src/**", "srcx/y", false},
		{"**", "anything/at/all.go", true},
		{"**", "task:tk_1", false}, // globs never cover keys
		{"task:tk_1", "task:tk_1", true},
		{"task:tk_1", "task:tk_2", false},
		{"src/*.go", "src/x/a.go", false},
		{"src/?.go", "src/ab.go", false},
		{"src/[a-c].go", "src/b.go", true},
		{"src/[^a-c].go", "src/b.go", false},
		// Glob against glob.
		{"src/**/*.go", "src/**/*.ts", false},
		{"src/**/*.go", "src/pkg/*", true},
		{"src/*.go", "src/*_test.go", true},
		{"src/a*", "src/*b", true},
		{"src/a*", "src/b*", false},
		{"src/[ab]*", "src/[bc]*", true},
		{"src/[a]*", "src/[^a]*", false},
		{"src/[^a]", "src/[^b]", true},
		{"**/x", "y/**", true},
		{"a/**/b/**/c", "**/c/**", true},
		{"a/*/b", "a/**/c", false},
		{"*/*", "*", false},
		{"*/*/**", "*", false},
		{"**/*", "a", true},
		{"src/[z-a]", "src/**", false},    // an empty class matches nothing
		{"src/[a-c]", "src/[^a]", true},   // the common run starts after a range
		{"src/[.-0]", "src/[^!-.]", true}, // … or right after '/'
		{"src/[.-/]", "src/[^!-.]", false},
	} {
		if got := Overlap(tc.a, tc.b); got != tc.want {
			t.Errorf("Overlap(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := Overlap(tc.b, tc.a); got != tc.want {
			t.Errorf("Overlap(%q, %q) = %v, want %v (not symmetric)", tc.b, tc.a, got, tc.want)
		}
		if r, _ := parseResource(tc.b); r.kind == kindPath {
			if got := Match(tc.a, tc.b); got != tc.want {
				t.Errorf("Match(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
		}
	}
	if Match("src/a.go", "src/*.go") {
		t.Error("Match accepted a glob as the path")
	}
	if Overlap("/bad", "/bad") {
		t.Error("invalid resources overlap")
	}
}

// refMatch is a reference matcher built on path.Match, independent of
// the product construction Overlap uses.
func refMatch(pattern, name []string) bool {
	if len(pattern) == 0 {
		return len(name) == 0
	}
	if pattern[0] == "**" {
		for i := 0; i <= len(name); i++ {
			if refMatch(pattern[1:], name[i:]) {
				return true
			}
		}
		return false
	}
	if len(name) == 0 {
		return false
	}
	ok, err := path.Match(pattern[0], name[0])
	return err == nil && ok && refMatch(pattern[1:], name[1:])
}

// TestOverlapAgainstBruteForce compares Overlap on random globs with an
// exhaustive search for a common path. With at most two ordinary segments
// of at most two tokens each, a common path, if any, has at most four
// segments of at most two characters from the patterns' alphabet, so the
// search is complete.
func TestOverlapAgainstBruteForce(t *testing.T) {
	var segs []string
	for _, a := range []string{"a", "b", "c"} {
		segs = append(segs, a)
		for _, b := range []string{"a", "b", "c"} {
			segs = append(segs, a+b)
		}
	}
	var universe [][]string
	var grow func(prefix []string)
	grow = func(prefix []string) {
		if len(prefix) > 0 {
			universe = append(universe, prefix)
		}
		if len(prefix) == 4 {
			return
		}
		for _, s := range segs {
			grow(append(prefix[:len(prefix):len(prefix)], s))
		}
	}
	grow(nil)

	toks := []string{"a", "b", "*", "?", "[ab]", "[^a]", "[b-c]", "[a-c]", "[^a-b]"}
	rng := rand.New(rand.NewPCG(1, 2))
	randomGlob := func() string {
		var parts []string
		ordinary := 0
		for len(parts) == 0 || len(parts) < 4 && rng.IntN(2) == 0 {
			if ordinary == 2 || rng.IntN(3) == 0 {
				parts = append(parts, "**")
				continue
			}
			ordinary++
			seg := toks[rng.IntN(len(toks))]
			if rng.IntN(2) == 0 {
				seg += toks[rng.IntN(len(toks))]
			}
			parts = append(parts, strings.ReplaceAll(seg, "**", "*"))
		}
		return strings.Join(parts, "/")
	}
	n := 150
	if testing.Short() {
		n = 60
	}
	globs := []string{"**", "a/**", "**/b", "*", "a/b"}
	for len(globs) < n {
		g := randomGlob()
		if _, err := parseResource(g); err == nil {
			globs = append(globs, g)
		}
	}
	matches := make([][]bool, len(globs))
	for i, g := range globs {
		pat := strings.Split(g, "/")
		matches[i] = make([]bool, len(universe))
		for j, p := range universe {
			matches[i][j] = refMatch(pat, p)
			if j%97 == 0 { // spot-check Match against the reference
				if got := Match(g, strings.Join(p, "/")); got != matches[i][j] {
					t.Fatalf("Match(%q, %q) = %v, reference %v", g, strings.Join(p, "/"), got, matches[i][j])
				}
			}
		}
	}
	overlaps := 0
	for i := range globs {
		for j := i; j < len(globs); j++ {
			want := false
			for k := range universe {
				if matches[i][k] && matches[j][k] {
					want = true
					break
				}
			}
			if want {
				overlaps++
			}
			if got := Overlap(globs[i], globs[j]); got != want {
				t.Errorf("Overlap(%q, %q) = %v, brute force says %v", globs[i], globs[j], got, want)
			}
		}
	}
	// Both answers must occur, or the test proves little.
	pairs := len(globs) * (len(globs) + 1) / 2
	if overlaps == 0 || overlaps == pairs {
		t.Fatalf("%d of %d pairs overlap: the random globs are degenerate", overlaps, pairs)
	}
}

func TestLiteralPrefix(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"src/**/*.go", "src/"},
		{"src/a*.go", "src/a"},
		{"src/[ab].go", "src/"},
		{"**", ""},
		{"src/a.go", "src/a.go"},
	} {
		r, err := parseResource(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.literalPrefix(); got != tc.want {
			t.Errorf("literalPrefix(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzOverlapSymmetric(f *testing.F) {
	f.Add("src/**/*.go", "src/a.go")
	f.Add("a/[^b]*", "**/c")
	f.Fuzz(func(t *testing.T, a, b string) {
		if Overlap(a, b) != Overlap(b, a) {
			t.Fatalf("Overlap(%q, %q) is not symmetric", a, b)
		}
		if _, err := parseResource(a); err == nil && !strings.ContainsAny(a, ":") {
			// Every valid path or glob overlaps itself when it matches anything.
			if r, _ := parseResource(a); r.kind == kindPath && !Overlap(a, a) {
				t.Fatalf("path %q does not overlap itself", a)
			}
		}
	})
}
