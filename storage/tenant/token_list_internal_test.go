package tenant

import (
	"context"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/kv/sqlite"
)

// viewCounter counts the read transactions run through a store.
type viewCounter struct {
	kv.Store
	views atomic.Int32
}

func (s *viewCounter) View(ctx context.Context, fn func(kv.ReadTx) error) error {
	s.views.Add(1)
	return s.Store.View(ctx, fn)
}

// TestListTokensPaged: a token listing reads its tokens in pages bounded
// by count and by time, one transaction each, and lists every token
// exactly once.
func TestListTokensPaged(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	vc := &viewCounter{Store: st}
	d := NewDirectory(vc, "test")
	if _, err := d.CreateTenant(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateUser(ctx, "acme", "alice", ""); err != nil {
		t.Fatal(err)
	}
	const n = 7
	var want []string
	for range n {
		_, tok, err := d.IssueToken(ctx, "acme", "alice", RoleMember, TokenOptions{TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, tok.ID)
	}
	slices.Sort(want)
	for _, tc := range []struct {
		name   string
		size   int
		budget time.Duration
		pages  int32
	}{
		{"by count", 2, time.Hour, 4},    // 2+2+2+1
		{"by time", 100, 0, n + 1},       // one token a page, then an empty page
		{"one page", 100, time.Hour, 1},  // the whole listing
		{"exact pages", 7, time.Hour, 2}, // a full page, then an empty one
	} {
		vc.views.Store(0)
		toks, err := d.listTokens(ctx, "acme", tc.size, tc.budget)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, tok := range toks {
			got = append(got, tok.ID)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: listed %v, want %v", tc.name, got, want)
		}
		if v := vc.views.Load(); v != tc.pages {
			t.Errorf("%s: %d transactions, want %d", tc.name, v, tc.pages)
		}
	}
}
