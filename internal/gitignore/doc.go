// Package gitignore owns git's ignore rules (gitignore(5)): which paths of
// a directory tree the people and agents working in it told git to leave
// alone. The watcher (package watch) uses them to decide what it reports,
// the files tools (package tools) to decide what a search or a file finder
// looks at, so both see the same files.
//
// Rules follow git exactly: the enclosing repository's .gitignore files
// (nested ones too, deeper files first, later lines first),
// .git/info/exclude, then the caller's defaults (Defaults, usually); the
// caller's own patterns come before all of them, and ".git" is always
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
//
// Patterns compile to Go regular expressions (RE2: linear time), so a
// hostile .gitignore cannot stall its reader. The package imports nothing
// of Coditect's.
package gitignore
