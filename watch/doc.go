// Package watch owns workspace watching: recursive fsnotify watches with a
// polling fallback, ignore rules, coalescing, and the attribution of every
// file change to a human or an agent. It writes through the domain layers
// and must not import tools, ide or webview. The watcher lands with issue 5.
package watch
