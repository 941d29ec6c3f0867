package server

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the daemon's Prometheus metrics, on a registry of its own
// (no process-global state): HTTP requests by area, the sweepers, the
// watcher, the Go runtime and the process, and the WebUI's own collector
// when it is one (the feed's clients and events).
//
// /metrics answers without a token, so every series is a total over the
// whole process, every tenant together: a label takes its values from a
// closed set fixed in the code (an area, a status code, a sweeper), never
// a tenant, user, token, agent, session, project or path, and nothing per
// tenant is served, with a token or without (docs/DAEMON.md, Metrics; the
// isolation suite's TestMetricsShowNoTenant holds the daemon to it).
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	swept        *prometheus.CounterVec
	sweepErrors  *prometheus.CounterVec
	sweepSeconds prometheus.Histogram
	watchEvents  prometheus.Counter
}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coditect_http_requests_total", Help: "HTTP requests by area (api, feed, mcp, dashboard, health, metrics) and status code.",
		}, []string{"area", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "coditect_http_request_duration_seconds", Help: "HTTP request latency by area (the feed counts until the upgrade).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"area"}),
		swept: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coditect_swept_total", Help: "Records removed or retired by the sweepers: agents, sessions, leases, evidence, retention.",
		}, []string{"sweeper"}),
		sweepErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coditect_sweep_errors_total", Help: "Sweeper failures by sweeper.",
		}, []string{"sweeper"}),
		sweepSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "coditect_sweep_duration_seconds", Help: "Duration of one pass of every sweeper over every tenant.",
		}),
		watchEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coditect_watch_events_total", Help: "File events the watcher stored.",
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.swept, m.sweepErrors, m.sweepSeconds, m.watchEvents,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "coditect_ready", Help: "1 when /readyz would answer ready."},
			func() float64 {
				if d.ready.Load() {
					return 1
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "coditect_watch_directories", Help: "Directories under an inotify watch."},
			func() float64 {
				if w := d.watcher; w != nil {
					return float64(w.Stats().Watches)
				}
				return 0
			}),
	)
	if c, ok := d.opts.Web.(prometheus.Collector); ok && d.cfg.Role.HTTP() {
		m.reg.MustRegister(c)
	}
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// area classifies a request path for the metrics' labels (bounded).
func area(p string) string {
	switch {
	case p == "/api/v1/feed":
		return "feed"
	case strings.HasPrefix(p, "/api/"):
		return "api"
	case p == MCPPath || strings.HasPrefix(p, MCPPath+"/"):
		return "mcp"
	case p == "/healthz" || p == "/readyz":
		return "health"
	case p == "/metrics":
		return "metrics"
	default:
		return "dashboard"
	}
}

// instrument counts and times every request.
func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		a := area(r.URL.Path)
		m.requests.WithLabelValues(a, strconv.Itoa(sw.code)).Inc()
		m.latency.WithLabelValues(a).Observe(time.Since(start).Seconds())
	})
}

// statusWriter records the status code; Unwrap lets http.ResponseController
// (and so the WebSocket upgrade's Hijack and the MCP stream's Flush) reach
// the underlying writer.
type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.code, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher for handlers that type-assert it.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
