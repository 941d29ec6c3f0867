//go:build unix

package tools

import (
	"path/filepath"
	"syscall"
	"testing"
)

// TestFilesNamedPipe: a named pipe is refused, never opened (opening one
// blocks until a writer comes).
func TestFilesNamedPipe(t *testing.T) {
	e := setup(t)
	w := newWorkspace(t, e.alice)
	if err := syscall.Mkfifo(filepath.Join(w.root, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustFail(t, e.alice, "fs_read", w.args("path", "pipe"), OutcomeInvalid, "not a regular file")
	mustFail(t, e.alice, "fs_edit", w.args("path", "pipe", "search", "a", "replace", "b"), OutcomeInvalid, "not a regular file")
	mustFail(t, e.alice, "fs_write", w.args("path", "pipe", "content", "x"), OutcomeInvalid, "not a regular file")
	mustFail(t, e.alice, "fs_list", w.args("path", "pipe"), OutcomeInvalid, "not a directory")
}
