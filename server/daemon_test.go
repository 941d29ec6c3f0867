package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/tenant"
)

func daemonDir(t *testing.T) *tenant.Directory {
	t.Helper()
	st, err := storage.Open(context.Background(), "sqlite://"+filepath.ToSlash(filepath.Join(t.TempDir(), "c.db")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return tenant.NewDirectory(st, "test")
}

func get(t *testing.T, h http.Handler, path, token string) (int, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Each role serves what it should: health and metrics always, MCP (with
// its bearer check) only in the HTTP roles.
func TestDaemonRolesRoutes(t *testing.T) {
	dir := daemonDir(t)
	for _, role := range []Role{RoleAll, RoleCore, RoleDashboard} {
		cfg := DefaultConfig()
		cfg.Role = role
		d, err := NewDaemon(cfg, DaemonOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		h := d.Handler()
		if code, _ := get(t, h, "/healthz", ""); code != 200 {
			t.Errorf("%s /healthz: %d", role, code)
		}
		if code, body := get(t, h, "/readyz", ""); code != 503 || !strings.Contains(body, "not ready") {
			t.Errorf("%s /readyz before Serve: %d %s", role, code, body)
		}
		d.ready.Store(true)
		if code, body := get(t, h, "/readyz", ""); code != 200 {
			t.Errorf("%s /readyz: %d %s", role, code, body)
		}
		if code, body := get(t, h, "/metrics", ""); code != 200 || !strings.Contains(body, "coditect_ready 1") || !strings.Contains(body, "go_goroutines") {
			t.Errorf("%s /metrics: %d", role, code)
		}
		code, _ := get(t, h, MCPPath, "")
		if role.HTTP() && code != http.StatusUnauthorized {
			t.Errorf("%s /mcp without a token: %d, want 401", role, code)
		}
		if !role.HTTP() && code != http.StatusNotFound {
			t.Errorf("%s /mcp: %d, want 404", role, code)
		}
		if d.mcp != nil {
			d.mcp.Close(context.Background())
		}
	}
}

// The first start creates the tenant, its admin and a working admin token;
// a second bootstrap is refused.
func TestBootstrap(t *testing.T) {
	dir := daemonDir(t)
	ctx := context.Background()
	secret, err := Bootstrap(ctx, dir, "", "ada")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := dir.Authenticate(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	if p := sc.Principal(); p.Tenant != DefaultTenant || p.User != "ada" || p.Role != tenant.RoleAdmin {
		t.Fatalf("principal %+v", p)
	}
	if _, err := Bootstrap(ctx, dir, "", "ada"); !errors.Is(err, tenant.ErrExists) {
		t.Fatalf("second bootstrap: %v", err)
	}
}

// Sweep enforces every tenant's retention and creates its sweeper scope.
func TestDaemonSweepRetention(t *testing.T) {
	dir := daemonDir(t)
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		sc, err := dir.Local(ctx, id, "u")
		if err != nil {
			t.Fatal(err)
		}
		for range 10 {
			if _, err := sc.Log().Append(ctx, sc.Event("note.added", "n")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := dir.SetRetention(ctx, "a", audit.Retention{MaxEvents: 3}); err != nil {
		t.Fatal(err)
	}
	d, err := NewDaemon(DefaultConfig(), DaemonOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer d.mcp.Close(ctx)
	d.Sweep(ctx)
	for id, want := range map[string]func(int64) bool{"a": func(n int64) bool { return n <= 3 }, "b": func(n int64) bool { return n >= 10 }} {
		sc, _ := dir.Local(ctx, id, "u")
		n, err := sc.Log().Count(ctx)
		if err != nil || !want(n) {
			t.Errorf("tenant %s: %d events after the sweep (%v)", id, n, err)
		}
	}
}

// A serving daemon says where it listens beside the embedded store, and
// takes the note away when it stops.
func TestDaemonStateFile(t *testing.T) {
	storeURL := "sqlite://" + filepath.ToSlash(filepath.Join(t.TempDir(), "c.db"))
	st, err := storage.Open(context.Background(), storeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	outR, outW := io.Pipe()
	d, err := NewDaemon(cfg, DaemonOptions{Dir: tenant.NewDirectory(st, "test"), StoreURL: storeURL, Out: outW})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	// The welcome text is printed once the daemon serves.
	buf := make([]byte, 1)
	if _, err := outR.Read(buf); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, outR)
	path := storage.DaemonStatePath(storeURL)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no state file while serving: %v", err)
	}
	var s daemonState
	if err := json.Unmarshal(b, &s); err != nil || s.URL != d.URL() || s.PID != os.Getpid() {
		t.Fatalf("state file %s", b)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("state file left after shutdown: %v", err)
	}
}
