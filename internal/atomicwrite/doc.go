// Package atomicwrite owns the disk step of a change Coditect makes to a
// file on someone's behalf: an agent's write, move or delete through the
// files tools (package tools), and a person's accept of a proposed change
// (storage/review). Both run their checks and record their evidence in a
// transaction first; this package makes sure that, once the transaction
// has committed, only a rename (or a removal) is left to do, so that a
// reader never sees half a file and a failure leaves nothing behind:
//
//   - every path is relative to an os.Root, so a symbolic link cannot lead
//     a change out of the project's root;
//   - new content waits in a temporary file beside its file, written and
//     synced before the transaction; its name ends in "~", which the
//     watcher ignores (gitignore.Defaults), so the watcher sees the rename
//     over the file, not the temporary;
//   - a replaced file keeps its permission bits; a new one gets the mode
//     the caller gives (0o666 less the umask, as editors create files);
//   - the directories a change had to create are removed again, innermost
//     first and only while empty, when it fails;
//   - after a rename or removal the directory is synced, best effort.
//
// Callers translate its errors for their audience (NotDirError names the
// path in the way). The package imports nothing of Coditect's.
package atomicwrite
