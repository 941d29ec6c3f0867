package webview

import "github.com/prometheus/client_golang/prometheus"

// The handler's series are totals over every tenant, without labels:
// /metrics answers without a token (see the daemon's metrics).
var (
	descFeedClients = prometheus.NewDesc("coditect_feed_clients", "Open WebSocket feed connections.", nil, nil)
	descFeedConns   = prometheus.NewDesc("coditect_feed_connections_total", "WebSocket feed connections accepted.", nil, nil)
	descFeedEvents  = prometheus.NewDesc("coditect_feed_events_total", "Events sent on WebSocket feeds.", nil, nil)
	descFeedSlow    = prometheus.NewDesc("coditect_feed_slow_disconnects_total", "Feed clients disconnected for falling behind (they resume from their cursor).", nil, nil)
	descAuthFail    = prometheus.NewDesc("coditect_api_auth_failures_total", "REST and feed requests refused for a missing, unknown, revoked or expired token.", nil, nil)
	descAPIRequests = prometheus.NewDesc("coditect_api_requests_total", "REST requests served.", nil, nil)
)

// Describe implements prometheus.Collector, so the daemon can register the
// handler's counters.
func (h *Handler) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFeedClients, descFeedConns, descFeedEvents, descFeedSlow, descAuthFail, descAPIRequests} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (h *Handler) Collect(ch chan<- prometheus.Metric) {
	s := h.Stats()
	ch <- prometheus.MustNewConstMetric(descFeedClients, prometheus.GaugeValue, float64(s.FeedClients))
	ch <- prometheus.MustNewConstMetric(descFeedConns, prometheus.CounterValue, float64(s.FeedConnections))
	ch <- prometheus.MustNewConstMetric(descFeedEvents, prometheus.CounterValue, float64(s.FeedEvents))
	ch <- prometheus.MustNewConstMetric(descFeedSlow, prometheus.CounterValue, float64(s.FeedSlow))
	ch <- prometheus.MustNewConstMetric(descAuthFail, prometheus.CounterValue, float64(s.AuthFailures))
	ch <- prometheus.MustNewConstMetric(descAPIRequests, prometheus.CounterValue, float64(s.APIRequests))
}
