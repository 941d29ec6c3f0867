package audit

import (
	"math"
	"testing"
	"time"

	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
)

// TestHighWaterEncoding: FoundationDB's MAX over encoded times keeps the
// later time, negative times (before 1970) included, and decoding inverts
// encoding.
func TestHighWaterEncoding(t *testing.T) {
	ns := []int64{math.MinInt64, -1e18, -1, 0, 1, 1e18, math.MaxInt64}
	for _, a := range ns {
		if got, ok := decodeHighWater(encodeHighWater(a)); !ok || got != a {
			t.Errorf("decode(encode(%d)) = %d, %v", a, got, ok)
		}
		for _, b := range ns {
			got, _ := decodeHighWater(kv.MaxLE(encodeHighWater(a), encodeHighWater(b)))
			if got != max(a, b) {
				t.Errorf("MAX of encoded %d and %d decodes to %d", a, b, got)
			}
		}
	}
	if _, ok := decodeHighWater(nil); ok {
		t.Error("an absent high-water mark decoded")
	}
}

func TestRegressionArithmetic(t *testing.T) {
	for _, c := range []struct{ high, n, want int64 }{
		{5, 7, 0}, {7, 7, 0}, {7, 5, 2}, {1, -1, 2},
		{math.MaxInt64, 0, math.MaxInt64}, {math.MaxInt64, math.MinInt64, math.MaxInt64}, {0, math.MinInt64, math.MaxInt64},
		{math.MaxInt64, math.MaxInt64 - 3, 3}, {math.MinInt64 + 3, math.MinInt64, 3},
	} {
		if got := regression(c.high, c.n); got != c.want {
			t.Errorf("regression(%d, %d) = %d, want %d", c.high, c.n, got, c.want)
		}
	}
	for _, c := range []struct {
		t     time.Time
		want  int64
		exact bool
	}{
		{time.Unix(0, 0), 0, true},
		{time.Unix(-1, 0), -1e9, true},
		{time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC), math.MinInt64, false},
		{time.Date(2500, 1, 1, 0, 0, 0, 0, time.UTC), math.MaxInt64, false},
		{time.Unix(0, math.MaxInt64), math.MaxInt64, true},
	} {
		if got, exact := unixNano(c.t); got != c.want || exact != c.exact {
			t.Errorf("unixNano(%v) = %d, %v; want %d, %v", c.t, got, exact, c.want, c.exact)
		}
	}
}

// getter is a ReadTx of fixed values, for searchSkew.
type getter map[string][]byte

func (g getter) Get(key []byte) ([]byte, error)                             { return g[string(key)], nil }
func (getter) GetRange(begin, end []byte, opts kv.RangeOptions) kv.Iterator { return kv.ErrIterator{} }
func (getter) GetMany(keys [][]byte) ([][]byte, error)                      { panic("unused") }
func (getter) Watch(key []byte) kv.Watch                                    { panic("unused") }

func TestSearchSkew(t *testing.T) {
	sp, err := keyspace.Tenant("acme")
	if err != nil {
		t.Fatal(err)
	}
	l := NewLog(nil, sp)
	for _, c := range []struct {
		name string
		v    []byte
		want time.Duration
	}{
		{"absent", nil, clockSkew},
		{"an hour", kv.EncodeInt64(int64(time.Hour)), clockSkew + time.Hour},
		{"largest bounded", kv.EncodeInt64(int64(unbounded - clockSkew - 1)), unbounded - 1},
		{"too large", kv.EncodeInt64(int64(unbounded - clockSkew)), unbounded},
		{"unknown", kv.EncodeInt64(math.MaxInt64), unbounded},
		{"corrupt", kv.EncodeInt64(-1), unbounded},
	} {
		got, err := l.searchSkew(getter{string(sp.AuditRegression()): c.v})
		if err != nil || got != c.want {
			t.Errorf("%s: searchSkew = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}
