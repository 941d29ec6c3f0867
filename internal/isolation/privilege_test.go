package isolation_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/coditect/coditect/server"
	"github.com/coditect/coditect/server/servertest"
	"github.com/coditect/coditect/webview"
)

// scrapeLabels are the label names a /metrics series may carry: each takes
// its values from a closed set fixed in the code (an HTTP area, a status
// code, a sweeper; and the Go runtime's and the Prometheus handler's own),
// never from a tenant, a user or anything a client sends.
var scrapeLabels = []string{"area", "code", "sweeper", "le", "quantile", "version", "cause"}

// TestMetricsShowNoTenant: /metrics answers without a token, so it serves
// process-wide totals and nothing per tenant (docs/DAEMON.md, Metrics).
// After A and B have used every surface of the daemon (REST, the feed,
// /mcp, refused tokens) and the sweepers have run, a scrape — without a
// token, with A's and with B's — names no tenant, user, token, project,
// path or id of either, has only the labels of scrapeLabels, so that no
// series counts one tenant, and shows the same series whatever token it
// carries: a token sees no more.
func TestMetricsShowNoTenant(t *testing.T) {
	w := newWorld(t)
	web := webview.New(w.dir, webview.Options{})
	defer web.Shutdown(context.Background())
	h := w.daemon(t, web)
	w.checkScrapes(t, h)
}

// TestMetricsCheckCatchesPlantedLeak plants a per-tenant series in the
// daemon's registry (a WebUI whose collector counts each tenant's events
// under a tenant label) and requires checkScrapes to report it.
func TestMetricsCheckCatchesPlantedLeak(t *testing.T) {
	w := newWorld(t)
	web := perTenantWeb{Handler: webview.New(w.dir, webview.Options{}), w: w}
	defer web.Shutdown(context.Background())
	h := w.daemon(t, web)
	rec := &recorder{t: t}
	rec.run(func(r reporter) { w.checkScrapes(r, h) })
	var label, id bool
	for _, m := range rec.all() {
		label = label || strings.Contains(m, `label "tenant"`)
		id = id || strings.Contains(m, "shows "+tenantB)
	}
	if !label || !id {
		t.Fatalf("the planted per-tenant series went unreported (label %v, B's id %v): %q", label, id, rec.all())
	}
}

// daemon is `coditect serve` (role all) over w's tenants with web mounted
// at "/", after one pass of its sweepers over both tenants.
func (w *world) daemon(t *testing.T, web server.WebUI) http.Handler {
	t.Helper()
	d, err := server.NewDaemon(server.DefaultConfig(), server.DaemonOptions{Dir: w.dir, Web: web})
	if err != nil {
		t.Fatal(err)
	}
	d.Sweep(context.Background())
	return d.Handler()
}

// checkScrapes has A and B use every surface of h, then scrapes /metrics
// and checks what it shows.
func (w *world) checkScrapes(t reporter, h http.Handler) {
	t.Helper()
	hs := httptest.NewServer(h)
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, secret := range []string{w.tokenA, w.tokenB, "cdt_refused"} {
		for _, p := range []string{"whoami", "sessions", "events", "agents", "projects", "tasks", "tenant"} {
			get(ctx, t, hs.URL+webview.APIPrefix+p, secret)
		}
		w.feedOnce(ctx, t, hs.URL, secret)
		w.mcpOnce(ctx, t, hs.URL, secret)
	}
	get(ctx, t, hs.URL+"/", "")

	forbidden := append([]string{tenantA, tenantB, marker, "alice", w.tokenA, w.tokenB, w.projA.ID, w.projA.Name,
		w.rootA, w.rootB, server.SweeperUser}, w.idsB...)
	shapes := map[string]string{}
	for _, secret := range []string{"", w.tokenA, w.tokenB} {
		who := map[string]string{"": "without a token", w.tokenA: "with A's token", w.tokenB: "with B's token"}[secret]
		code, body := get(ctx, t, hs.URL+"/metrics", secret)
		if code != http.StatusOK || !strings.Contains(body, "coditect_http_requests_total") {
			t.Fatalf("metrics: scrape %s: %d\n%s", who, code, clip(body))
		}
		for _, s := range forbidden {
			if strings.Contains(body, s) {
				t.Errorf("metrics: a scrape %s shows %s", who, s)
			}
		}
		for _, l := range strings.Split(body, "\n") {
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			for _, m := range labelRE.FindAllStringSubmatch(l, -1) {
				if !slices.Contains(scrapeLabels, m[1]) {
					t.Errorf("metrics: a scrape %s has a series with label %q (%s=%q): per-tenant or per-client series are not served", who, m[1], m[1], m[2])
				}
			}
		}
		shape := seriesShape(body)
		shapes[who] = shape
		if shapes["without a token"] != shape {
			t.Errorf("metrics: a scrape %s differs from one without a token:\n%s\nvs\n%s", who, shape, shapes["without a token"])
		}
	}
}

var (
	labelRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
	seriesRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?`)
)

// seriesShape lists a scrape's metric names with their label names, one
// per line, sorted: what a scraper can tell apart, without the values.
func seriesShape(body string) string {
	seen := map[string]bool{}
	for _, l := range strings.Split(body, "\n") {
		m := seriesRE.FindStringSubmatch(l)
		if l == "" || strings.HasPrefix(l, "#") || m == nil {
			continue
		}
		var names []string
		for _, lm := range labelRE.FindAllStringSubmatch(m[2], -1) {
			names = append(names, lm[1])
		}
		seen[m[1]+"{"+strings.Join(names, ",")+"}"] = true
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// get GETs url with secret as the bearer token (none when empty).
func get(ctx context.Context, t reporter, url, secret string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatalf("%v", err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// feedOnce subscribes to the feed with secret and, when accepted, reads
// its "subscribed" before closing.
func (w *world) feedOnce(ctx context.Context, t reporter, base, secret string) {
	t.Helper()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+webview.FeedPath,
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + secret}}})
	if err != nil {
		return // a refused token may be refused at the handshake
	}
	defer c.CloseNow()
	if err := wsjson.Write(ctx, c, webview.Subscription{Type: "subscribe", Cursor: "head"}); err != nil {
		return
	}
	var m webview.FeedMessage
	_ = wsjson.Read(ctx, c, &m)
	c.Close(websocket.StatusNormalClosure, "")
}

// mcpOnce connects to /mcp with secret and, when accepted, calls a
// read-only tool.
func (w *world) mcpOnce(ctx context.Context, t reporter, base, secret string) {
	t.Helper()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "scraped", Version: "1"}, nil).Connect(ctx,
		&mcp.StreamableClientTransport{Endpoint: base + server.MCPPath, HTTPClient: servertest.BearerClient(secret), MaxRetries: -1}, nil)
	if err != nil {
		return // a refused token
	}
	defer cs.Close()
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "audit_query", Arguments: map[string]any{"limit": 5}}); err != nil {
		t.Errorf("mcp: audit_query: %v", err)
	}
}

// perTenantWeb is the dashboard handler with a planted collector: each
// tenant's event count under a tenant label.
type perTenantWeb struct {
	*webview.Handler
	w *world
}

var descTenantEvents = prometheus.NewDesc("coditect_tenant_events", "Events per tenant (planted).", []string{"tenant"}, nil)

func (p perTenantWeb) Describe(ch chan<- *prometheus.Desc) { ch <- descTenantEvents }

func (p perTenantWeb) Collect(ch chan<- prometheus.Metric) {
	for _, id := range []string{tenantA, tenantB} {
		l, err := p.w.dir.AuditLog(id)
		if err != nil {
			continue
		}
		n, err := l.Count(context.Background())
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descTenantEvents, prometheus.GaugeValue, float64(n), id)
	}
}
