package soak

import (
	"math"
	"sync"
	"time"
)

// hist is a log-bucketed latency histogram (2% buckets from 1 µs), so a
// ten-minute run keeps millions of samples in a few kilobytes. Quantiles
// are exact to the bucket's 2%.
type hist struct {
	mu      sync.Mutex
	buckets map[int]int64
	n       int64
	sum     float64 // seconds
	max     time.Duration
}

const histBase = 1.02

func newHist() *hist { return &hist{buckets: map[int]int64{}} }

func (h *hist) add(d time.Duration) {
	us := max(float64(d)/float64(time.Microsecond), 1)
	b := int(math.Log(us) / math.Log(histBase))
	h.mu.Lock()
	h.buckets[b]++
	h.n++
	h.sum += d.Seconds()
	h.max = max(h.max, d)
	h.mu.Unlock()
}

// quantile returns the upper edge of the bucket holding quantile q.
func (h *hist) quantile(q float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return 0
	}
	lo, hi := math.MaxInt, math.MinInt
	for b := range h.buckets {
		lo, hi = min(lo, b), max(hi, b)
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	var seen int64
	for b := lo; b <= hi; b++ {
		seen += h.buckets[b]
		if seen >= rank {
			return min(time.Duration(math.Pow(histBase, float64(b+1))*float64(time.Microsecond)), h.max)
		}
	}
	return h.max
}

// latency is how a report states a distribution, in milliseconds.
type latency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

func (h *hist) summary() latency {
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
	p50, p99 := h.quantile(0.50), h.quantile(0.99)
	h.mu.Lock()
	defer h.mu.Unlock()
	l := latency{Count: h.n, P50: ms(p50), P99: ms(p99), Max: ms(h.max)}
	if h.n > 0 {
		l.Mean = math.Round(h.sum/float64(h.n)*1e6) / 1e3
	}
	return l
}

// hists is a histogram per name (per tool).
type hists struct {
	mu sync.Mutex
	m  map[string]*hist
}

func (hs *hists) get(name string) *hist {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.m == nil {
		hs.m = map[string]*hist{}
	}
	h := hs.m[name]
	if h == nil {
		h = newHist()
		hs.m[name] = h
	}
	return h
}

func (hs *hists) summaries() map[string]latency {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	out := map[string]latency{}
	for k, h := range hs.m {
		out[k] = h.summary()
	}
	return out
}
