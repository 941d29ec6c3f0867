package storage

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/kv"
)

func TestOpenURLs(t *testing.T) {
	dir := t.TempDir()
	good := []string{
		"sqlite://" + filepath.Join(dir, "a.db"),
		"sqlite:" + filepath.Join(dir, "b.db"),
		filepath.Join(dir, "c.db"),
		"sqlite://" + filepath.Join(dir, "d.db") + "?synchronous=normal",
		"sqlite://" + filepath.Join(dir, "e.db") + "?synchronous=FULL&lock_timeout=5s",
		"sqlite://" + filepath.Join(dir, "sub dir", "f.db"),
		"sqlite://" + filepath.Join(dir, "g.db") + "?group_commit=on",
	}
	for _, u := range good {
		s, err := Open(context.Background(), u)
		if err != nil {
			t.Errorf("Open(%q): %v", u, err)
			continue
		}
		if _, err := s.Update(context.Background(), func(tx kv.Tx) error { tx.Set([]byte("k"), nil); return nil }); err != nil {
			t.Errorf("Open(%q): write: %v", u, err)
		}
		s.Close()
	}
	if _, err := os.Stat(filepath.Join(dir, "sub dir", "f.db")); err != nil {
		t.Errorf("a path with a space did not land where named: %v", err)
	}
	bad := map[string]string{
		"":                                 "empty",
		"mysql://x/y":                      "unknown scheme",
		"sqlite://remote-host/x.db":        "local file",
		"sqlite://" + dir + "/g.db?sync=1": "unknown parameter",
		"sqlite://" + dir + "/h.db?synchronous=off":   "want full or normal",
		"sqlite://" + dir + "/i.db?lock_timeout=soon": "positive duration",
		"sqlite://" + dir + "/j.db?group_commit=yes":  "want on or off",
		"sqlite://": "no file path",
	}
	for u, want := range bad {
		_, err := Open(context.Background(), u)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want an error saying %q", u, err, want)
		}
	}
}

func TestDefaultURL(t *testing.T) {
	t.Setenv("CODITECT_STORE", "")
	t.Setenv("XDG_DATA_HOME", "/data/xdg")
	u, err := DefaultURL()
	if err != nil || u != "sqlite:///data/xdg/coditect/coditect.db" {
		t.Fatalf("DefaultURL with XDG_DATA_HOME = %q, %v", u, err)
	}
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("HOME", "/home/alice")
	if p, _ := DefaultPath(); p != "/home/alice/.local/share/coditect/coditect.db" {
		t.Fatalf("DefaultPath without XDG_DATA_HOME = %q", p)
	}
	t.Setenv("CODITECT_STORE", "fdb://")
	if u, _ := DefaultURL(); u != "fdb://" {
		t.Fatalf("CODITECT_STORE ignored: %q", u)
	}
}

func TestDaemonStatePath(t *testing.T) {
	for in, want := range map[string]string{
		"sqlite:///data/c.db":                 "/data/c.db-serve.json",
		"/data/c.db":                          "/data/c.db-serve.json",
		"sqlite:///data/c.db?lock_timeout=5s": "/data/c.db-serve.json",
		"fdb:///etc/foundationdb/fdb.cluster": "",
		"":                                    "",
		"mysql://x":                           "",
	} {
		if got := DaemonStatePath(in); got != want {
			t.Errorf("DaemonStatePath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSpoolDir: beside the embedded store's file; per cluster file and
// prefix under $XDG_STATE_HOME for FoundationDB (the same for the same
// cluster however its path is spelled); "" for anything else.
func TestSpoolDir(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/state")
	for in, want := range map[string]string{
		"sqlite:///data/c.db":                 "/data/c.db-spool",
		"/data/c.db":                          "/data/c.db-spool",
		"sqlite:///data/c.db?lock_timeout=5s": "/data/c.db-spool",
		"":                                    "",
		"mysql://x":                           "",
	} {
		if got := SpoolDir(in); got != want {
			t.Errorf("SpoolDir(%q) = %q, want %q", in, got, want)
		}
	}
	a := SpoolDir("fdb:///etc/foundationdb/fdb.cluster")
	if !strings.HasPrefix(a, "/state/coditect/spool/fdb-") {
		t.Errorf("FDB spool dir %q is not under $XDG_STATE_HOME/coditect/spool", a)
	}
	if b := SpoolDir("fdb:///etc/foundationdb/./fdb.cluster"); b != a {
		t.Errorf("the same cluster file spelt two ways: %q and %q", a, b)
	}
	if c := SpoolDir("fdb:///etc/foundationdb/fdb.cluster?prefix=team2"); c == a || c == "" {
		t.Errorf("another key prefix on the same cluster shares the spool dir: %q", c)
	}
	if d := SpoolDir("fdb:///other/fdb.cluster"); d == a || d == "" {
		t.Errorf("another cluster shares the spool dir: %q", d)
	}
}

// TestOwnFiles: the embedded store's database, journals, daemon state and
// spool however the URL is spelt; only the spool of a FoundationDB store.
func TestOwnFiles(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/state")
	want := []string{"/x/c.db", "/x/c.db-wal", "/x/c.db-shm", "/x/c.db-journal", "/x/c.db-serve.json", "/x/c.db-spool"}
	for _, u := range []string{"sqlite:///x/c.db", "/x/c.db", "file:///x/c.db", "sqlite:///x/c.db?synchronous=normal"} {
		if got := OwnFiles(u); !slices.Equal(got, want) {
			t.Errorf("OwnFiles(%q) = %v, want %v", u, got, want)
		}
	}
	fdb := OwnFiles("fdb:///etc/foundationdb/fdb.cluster")
	if len(fdb) != 1 || fdb[0] != SpoolDir("fdb:///etc/foundationdb/fdb.cluster") {
		t.Errorf("OwnFiles of an FDB store = %v, want its spool only", fdb)
	}
	if got := OwnFiles(""); len(got) != 0 {
		t.Errorf("OwnFiles(\"\") = %v", got)
	}
}

// TestGroupCommitParameter: a store named by URL commits in groups unless
// group_commit=off.
func TestGroupCommitParameter(t *testing.T) {
	for raw, want := range map[string]bool{"sqlite:///x/c.db?group_commit=on": true, "sqlite:///x/c.db?group_commit=OFF": false, "sqlite:///x/c.db": true} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		_, opts, err := sqliteParams(u)
		if err != nil || opts.GroupCommit != want {
			t.Errorf("%s: group commit %v (%v), want %v", raw, opts.GroupCommit, err, want)
		}
	}
}
