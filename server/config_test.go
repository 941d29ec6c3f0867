package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// Flags beat the environment, which beats the file, which beats the
// defaults.
func TestLoadConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "coditect.json")
	if err := os.WriteFile(file, []byte(`{"addr":"127.0.0.1:4000","role":"core","watch":["/a"],"sweep_every":"1m","log_level":"debug","session_idle":"3h"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		ConfigEnv: file, "CODITECT_ROLE": "all", "CODITECT_WATCH": "/b,/c", "CODITECT_SWEEP_EVERY": "2m",
		"CODITECT_TOKEN": "cdt_secret", "CODITECT_STORE": "sqlite:///env.db",
	}
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.String("store", "", "")
	ConfigFlags(fs)
	if err := fs.Parse([]string{"--sweep-every", "3m", "--watch", "/d", "--store", "sqlite:///flag.db"}); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(fs, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Addr: "127.0.0.1:4000", Role: RoleAll, Watch: []string{"/d"}, SweepEvery: Duration(3 * time.Minute),
		LogLevel: "debug", LogFormat: "text", SessionIdle: Duration(3 * time.Hour), ShutdownTimeout: Duration(DefaultShutdownTimeout),
		Token: "cdt_secret", Store: "sqlite:///flag.db",
	}
	if c.Addr != want.Addr || c.Role != want.Role || strings.Join(c.Watch, ",") != "/d" || c.SweepEvery != want.SweepEvery ||
		c.LogLevel != want.LogLevel || c.SessionIdle != want.SessionIdle || c.Token != want.Token || c.Store != want.Store || c.ShutdownTimeout != want.ShutdownTimeout {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
	// Without flags the environment's list wins over the file's.
	c, err = LoadConfig(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Watch, ",") != "/b,/c" || c.SweepEvery != Duration(2*time.Minute) || c.Store != "sqlite:///env.db" {
		t.Fatalf("env: %+v", c)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"defaults", func(*Config) {}, true},
		{"localhost", func(c *Config) { c.Addr = "localhost:0" }, true},
		{"ipv6 loopback", func(c *Config) { c.Addr = "[::1]:3000" }, true},
		{"everywhere refused", func(c *Config) { c.Addr = ":3000" }, false},
		{"0.0.0.0 refused", func(c *Config) { c.Addr = "0.0.0.0:3000" }, false},
		{"lan refused", func(c *Config) { c.Addr = "192.168.1.5:3000" }, false},
		{"remote allowed", func(c *Config) { c.Addr = "0.0.0.0:3000"; c.AllowRemote = true }, true},
		{"bad role", func(c *Config) { c.Role = "boss" }, false},
		{"watch on dashboard", func(c *Config) { c.Role = RoleDashboard; c.Watch = []string{"/x"} }, false},
		{"bad port", func(c *Config) { c.Addr = "127.0.0.1:http" }, false},
		{"tiny sweep", func(c *Config) { c.SweepEvery = Duration(time.Millisecond) }, false},
		{"log format", func(c *Config) { c.LogFormat = "xml" }, false},
		{"public url", func(c *Config) { c.PublicURL = "dash.example.com" }, false},
	} {
		cfg := DefaultConfig()
		c.mod(&cfg)
		if err := cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if _, err := LoadConfig(nil, func(k string) string {
		if k == ConfigEnv {
			return "/nonexistent/coditect.json"
		}
		return ""
	}); err == nil {
		t.Error("a missing config file was ignored")
	}
	file := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(file, []byte(`{"adress":"x"}`), 0o600)
	if _, err := LoadConfig(nil, func(k string) string {
		if k == ConfigEnv {
			return file
		}
		return ""
	}); err == nil || !strings.Contains(err.Error(), "adress") {
		t.Errorf("a misspelt key: %v", err)
	}
}
