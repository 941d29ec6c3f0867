package sqlite_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/kvtest"
	"github.com/coditect/coditect/storage/kv/sqlite"
)

// groupPrefix marks a locator whose store runs with group commit on, in
// this process and in kvtest's child processes.
const groupPrefix = "group:"

func open(locator string) (kv.Store, error) {
	path, group := strings.CutPrefix(locator, groupPrefix)
	return sqlite.Open(context.Background(), path, sqlite.Options{GroupCommit: group})
}

func TestMain(m *testing.M) { kvtest.Main(m, open, rawWrite, holdLock) }

func newStore(t testing.TB, opts sqlite.Options) (*sqlite.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kv.db")
	s, err := sqlite.Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

var harness = kvtest.Harness{
	Name: "sqlite",
	New: func(t testing.TB) (kv.Store, string) {
		return newStore(t, sqlite.Options{})
	},
	Open: open,
	NewShortLived: func(t testing.TB, age time.Duration) kv.Store {
		s, _ := newStore(t, sqlite.Options{MaxTransactionAge: age})
		return s
	},
}

func TestConformance(t *testing.T) { kvtest.Run(t, harness) }

func TestCrash(t *testing.T) { kvtest.RunCrash(t, harness, kvtest.CrashKills()) }

// groupHarness runs the suite with group commit on: every store it opens,
// here and in child processes, batches its Updates.
var groupHarness = kvtest.Harness{
	Name: "sqlite-group",
	New: func(t testing.TB) (kv.Store, string) {
		s, path := newStore(t, sqlite.Options{GroupCommit: true})
		return s, groupPrefix + path
	},
	Open: open,
	NewShortLived: func(t testing.TB, age time.Duration) kv.Store {
		s, _ := newStore(t, sqlite.Options{MaxTransactionAge: age, GroupCommit: true})
		return s
	},
}

func TestConformanceGroupCommit(t *testing.T) { kvtest.Run(t, groupHarness) }

func TestCrashGroupCommit(t *testing.T) { kvtest.RunCrash(t, groupHarness, kvtest.CrashKills()) }
