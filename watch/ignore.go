package watch

import (
	"fmt"

	"github.com/coditect/coditect/internal/gitignore"
)

// Ignore rules are git's (package gitignore, proved against `git
// check-ignore`): the enclosing repository's .gitignore files and
// .git/info/exclude, then gitignore.Defaults unless
// Config.NoDefaultIgnores; Config.Ignore comes before all of them, and
// Config.IgnorePaths (the store's files, the events file) are never
// reported. The watcher loads nested .gitignore files as its walk finds
// them and reloads one when it changes.

// newIgnoreRules builds the rules of the workspace at root (absolute,
// symbolic links resolved): user are the user's patterns, defaults turns
// gitignore.Defaults on, extra are absolute paths always ignored.
func newIgnoreRules(root string, user []string, defaults bool, extra []string) (*gitignore.Rules, error) {
	o := gitignore.Options{Patterns: user, Paths: extra}
	if defaults {
		o.Defaults = gitignore.Defaults
	}
	r, err := gitignore.New(root, o)
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	return r, nil
}
