// Package watch owns workspace watching: recursive fsnotify watches with a
// polling fallback, ignore rules, coalescing, and the attribution of every
// file change to a human or an agent. It writes through the domain layers
// and must not import tools, ide or webview (nor server or cmd, nor reach
// storage/keyspace or a backend: tenant data comes through a
// *tenant.Scope and the layers' APIs).
//
// A Watcher (New, Run) watches one or more project roots (Root: a
// project's id and its root directory on this machine; Register finds, or
// for those who may, registers the project of a directory). Every event
// names its project, with its path relative to the project root (the
// absolute path is in the event's attrs), and the work session the
// evidence that explains it names: the session of the agent's recorded
// write or of the IDE save (Config.Session otherwise). Evidence and
// leases are looked up by the file's project key (project.File), so two
// checkouts or spellings of one file are one file. How it watches:
//
//   - each directory gets an inotify watch before it is listed, so a file
//     created in a brand-new tree (mkdir -p a/b/c && touch a/b/c/f) is
//     found by the listing if the watch came too late; an inotify queue
//     overflow triggers a rescan, and so does a flood past MaxPending,
//     which bounds memory; symlinks are files, never followed;
//   - a workspace root that is removed, moved away or replaced by a file
//     has its files reported deleted, and the nearest existing directory
//     above it is watched (one watch, dropped once the root is back) until
//     it is a directory again, when what it holds is reported and watched
//     (roots.go); mounts and unmounts inside a workspace or over it, which
//     inotify does not report (fsnotify drops IN_UNMOUNT), are seen in
//     /proc/self/mountinfo on Linux and rescan the subtree they cover:
//     hidden files are reported deleted, shown ones created (mounts.go);
//   - ignore rules are git's (package gitignore, used by ignore.go), proved
//     against git check-ignore;
//   - changes to one path are coalesced until it is quiet for Window
//     (50 ms); the result is compared with what the watcher knew (size,
//     times, inode, SHA-256 and line count), so chmod and touch are no
//     event, an editor's atomic save is one file.modified, and the two
//     halves of a rename are paired by inode into one file.renamed;
//   - file systems that raise no inotify events for changes made elsewhere
//     (WSL2 drives, 9p, FUSE, NFS, SMB) are polled per workspace, found by
//     statfs or, for unknown ones, by a probe write; subtrees left without
//     a watch when fs.inotify.max_user_watches runs out are polled too,
//     and the log says so with the limit's value;
//   - events are attributed along the evidence ladder (attribute.go) and
//     appended to the scope's audit log in batches, one transaction each,
//     together with the moves of evidence that renames cause; an
//     EventsFile mirrors them as JSON lines.
//
// The watcher holds its state in one goroutine (Run's), hashes on a few
// worker goroutines, and stores on one writer goroutine.
package watch
