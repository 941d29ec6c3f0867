package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/kvtest"
	"github.com/coditect/coditect/storage/kv/sqlite"
)

func open(path string) (kv.Store, error) {
	return sqlite.Open(context.Background(), path, sqlite.Options{})
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
