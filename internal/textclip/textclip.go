// Package textclip owns how text is shortened for error messages, audit
// summaries and answers: always on a rune boundary, so that valid UTF-8
// stays valid, and with the cut marked by "…" unless the caller marks it
// itself.
package textclip

import "unicode/utf8"

// Mark follows a clipped text.
const Mark = "…"

// Prefix returns the longest prefix of s of at most n bytes that ends on
// a rune boundary: s itself when it is short enough.
func Prefix(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n = max(n, 0)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Clip returns s when it has at most n bytes, and otherwise its Prefix of
// n bytes followed by Mark (n+3 bytes at most).
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return Prefix(s, n) + Mark
}

// Within returns s when it has at most n bytes, and otherwise a Prefix
// followed by Mark, n bytes at most in all (Mark alone when n is smaller
// than Mark): for a field with a size limit.
func Within(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return Prefix(s, n-len(Mark)) + Mark
}
