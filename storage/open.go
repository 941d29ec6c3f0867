// Package storage owns the choice of backend: Open turns a store URL into an
// open kv.Store, and DefaultURL says where the embedded store lives when the
// user names none. The domain layers live in its subpackages and take a
// kv.Store; they never know which backend they run on.
//
// This package may import the backends; the backends and the layers must not
// import it.
package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/sqlite"
)

// Open opens the store a URL names:
//
//	sqlite:///abs/path/to/coditect.db[?synchronous=normal]
//	sqlite:relative/path.db
//	/abs/path/to/coditect.db             (a bare path means sqlite)
//	fdb:///etc/foundationdb/fdb.cluster[?prefix=…]   (binaries built with -tags fdb)
//	fdb://                               (the default cluster file)
func Open(ctx context.Context, rawURL string) (kv.Store, error) {
	if rawURL == "" {
		return nil, errors.New("storage: empty store URL")
	}
	if !strings.Contains(rawURL, ":") {
		rawURL = "sqlite:" + rawURL
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("storage: store URL %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "sqlite", "file":
		path, opts, err := sqliteParams(u)
		if err != nil {
			return nil, fmt.Errorf("storage: store URL %q: %w", rawURL, err)
		}
		return sqlite.Open(ctx, path, opts)
	case "fdb":
		return openFDB(ctx, u)
	default:
		return nil, fmt.Errorf("storage: store URL %q: unknown scheme %q (want sqlite: or fdb:)", rawURL, u.Scheme)
	}
}

func sqliteParams(u *url.URL) (string, sqlite.Options, error) {
	var opts sqlite.Options
	path := u.Path
	if u.Opaque != "" {
		path = u.Opaque
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", opts, fmt.Errorf("a sqlite store is a local file; host %q is not allowed", u.Host)
	}
	if path == "" {
		return "", opts, errors.New("no file path")
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "synchronous", "lock_timeout", "group_commit":
		default:
			return "", opts, fmt.Errorf("unknown parameter %q (known: synchronous, lock_timeout, group_commit)", k)
		}
	}
	switch s := strings.ToUpper(q.Get("synchronous")); s {
	case "":
	case "FULL", "NORMAL":
		opts.Synchronous = sqlite.Synchronous(s)
	default:
		return "", opts, fmt.Errorf("synchronous=%q: want full or normal", q.Get("synchronous"))
	}
	switch v := strings.ToLower(q.Get("group_commit")); v {
	case "off":
	case "", "on":
		opts.GroupCommit = true
	default:
		return "", opts, fmt.Errorf("group_commit=%q: want on or off", q.Get("group_commit"))
	}
	if v := q.Get("lock_timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return "", opts, fmt.Errorf("lock_timeout=%q: want a positive duration such as 30s", v)
		}
		opts.LockTimeout = d
	}
	return path, opts, nil
}

// DefaultPath is the embedded store's file when none is named:
// $XDG_DATA_HOME/coditect/coditect.db, else ~/.local/share/coditect/coditect.db.
func DefaultPath() (string, error) {
	dir := os.Getenv("XDG_DATA_HOME")
	if dir == "" || !filepath.IsAbs(dir) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("storage: no XDG_DATA_HOME and no home directory: %w", err)
		}
		dir = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(dir, "coditect", "coditect.db"), nil
}

// DefaultURL is the store URL used when none is named: CODITECT_STORE if set,
// else the embedded store at DefaultPath.
func DefaultURL() (string, error) {
	if v := os.Getenv("CODITECT_STORE"); v != "" {
		return v, nil
	}
	p, err := DefaultPath()
	if err != nil {
		return "", err
	}
	return "sqlite://" + (&url.URL{Path: p}).EscapedPath(), nil
}

// SpoolDir is where processes using the store at rawURL keep the
// write-ahead spools of their audit queues (tools.AuditQueue.UseSpool), so
// that whoever opens the store next on this machine recovers what a killed
// process left: beside the database file for the embedded store; for a
// FoundationDB store, a directory per cluster file and key prefix under
// $XDG_STATE_HOME/coditect/spool (~/.local/state when unset). It is "" when
// rawURL does not parse or no such directory can be named.
func SpoolDir(rawURL string) string {
	if p := localPath(rawURL); p != "" {
		return p + "-spool"
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "fdb" {
		return ""
	}
	state := os.Getenv("XDG_STATE_HOME")
	if state == "" || !filepath.IsAbs(state) {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		state = filepath.Join(home, ".local", "state")
	}
	cluster := u.Path
	if cluster != "" {
		cluster = filepath.Clean(cluster)
	}
	sum := sha256.Sum256([]byte(cluster + "\x00" + u.Query().Get("prefix")))
	return filepath.Join(state, "coditect", "spool", "fdb-"+hex.EncodeToString(sum[:8]))
}

// localPath returns the absolute path of the embedded store at rawURL, ""
// when it is not a local file.
func localPath(rawURL string) string {
	if rawURL == "" {
		return ""
	}
	if !strings.Contains(rawURL, ":") {
		rawURL = "sqlite:" + rawURL
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "sqlite" && u.Scheme != "file") {
		return ""
	}
	p, _, err := sqliteParams(u)
	if err != nil {
		return ""
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return ""
	}
	return abs
}

// OwnFiles returns the paths of Coditect's own files for the store at
// rawURL on this machine: the embedded store's database with its -wal,
// -shm and -journal files and the daemon's state file beside it, and the
// audit spool directory (of any store). No project root may hold them, no
// files tool reaches them and the watcher never reports them.
func OwnFiles(rawURL string) []string {
	var out []string
	if p := localPath(rawURL); p != "" {
		for _, suffix := range []string{"", "-wal", "-shm", "-journal", "-serve.json"} {
			out = append(out, p+suffix)
		}
	}
	if sp := SpoolDir(rawURL); sp != "" {
		out = append(out, sp)
	}
	return out
}

// DaemonStatePath is where a `coditect serve` using the embedded store at
// rawURL says where its dashboard listens, so that other processes on the
// machine using the same store (the IDE) can find it: beside the database
// file. It is "" for stores that are not a local file.
func DaemonStatePath(rawURL string) string {
	if p := localPath(rawURL); p != "" {
		return p + "-serve.json"
	}
	return ""
}
