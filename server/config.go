package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Role says which parts of the daemon a process runs: the seed's hybrid
// split as one flag. Any number of dashboard processes and one core per
// node share one store.
type Role string

// Roles.
const (
	// RoleAll runs everything: HTTP (dashboard, REST, feed, MCP) and the
	// watcher and sweepers.
	RoleAll Role = "all"
	// RoleCore runs the watcher and the sweepers, and serves only
	// /healthz, /readyz and /metrics.
	RoleCore Role = "core"
	// RoleDashboard serves HTTP only: dashboard, REST, feed, MCP, health
	// and metrics.
	RoleDashboard Role = "dashboard"
)

// HTTP reports whether the role serves the dashboard, the API and MCP.
func (r Role) HTTP() bool { return r == RoleAll || r == RoleDashboard }

// Background reports whether the role runs the watcher and the sweepers.
func (r Role) Background() bool { return r == RoleAll || r == RoleCore }

// Duration is a time.Duration that reads and writes as "30s" in JSON.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Config is the whole configuration of `coditect serve`. Each field is
// set, lowest precedence first, by its default, the JSON config file
// (--config or CODITECT_CONFIG; keys as in the json tags), the environment
// variable CODITECT_<KEY> (upper-case json key) and the command-line flag
// --<key with dashes>. docs/DAEMON.md lists them.
type Config struct {
	// Addr is the HTTP listen address. Default 127.0.0.1:3000.
	Addr string `json:"addr"`
	// AllowRemote must be set to listen beyond loopback. Every route but
	// /healthz, /readyz and /metrics requires a token in every case.
	AllowRemote bool `json:"allow_remote"`
	// PublicURL is the URL people open, when it is not http://Addr (a
	// reverse proxy, a Kubernetes Service); the login URL uses it.
	PublicURL string `json:"public_url"`
	// Role is all, core or dashboard.
	Role Role `json:"role"`
	// Store is the store URL; default $CODITECT_STORE, else the embedded
	// store under $XDG_DATA_HOME/coditect.
	Store string `json:"store"`
	// Watch are the workspace roots the watcher watches (roles all, core).
	Watch []string `json:"watch"`
	// Tenant and User are the local identity the watcher acts as on an
	// embedded store (default tenant "default", the OS user), and the
	// first admin of a new store. With CODITECT_TOKEN set, the token
	// decides instead.
	Tenant string `json:"tenant"`
	User   string `json:"user"`
	// Toolsets are the MCP toolsets served at /mcp; empty means the
	// defaults.
	Toolsets []string `json:"toolsets"`
	// AllowedOrigins are browser origins allowed besides the page's own
	// and loopback ones, for the feed and /mcp, e.g. "vscode-webview://*"
	// (always allowed) or "https://dash.example.com".
	AllowedOrigins []string `json:"allowed_origins"`
	// SweepEvery is the pause between two runs of the sweepers (agent
	// liveness, abandoned sessions, expired leases, file evidence, audit
	// retention). Default 30s.
	SweepEvery Duration `json:"sweep_every"`
	// SessionIdle is how long without activity makes a session abandoned.
	// Default 2h.
	SessionIdle Duration `json:"session_idle"`
	// ShutdownTimeout bounds the graceful shutdown: draining requests,
	// closing feeds, storing the watcher's pending batch. Default 15s.
	ShutdownTimeout Duration `json:"shutdown_timeout"`
	// LogLevel is debug, info, warn or error; LogFormat text or json.
	// Logs go to stderr.
	LogLevel  string `json:"log_level"`
	LogFormat string `json:"log_format"`

	// Token is an API token (CODITECT_TOKEN only, never a flag or the
	// file): the identity the watcher acts as on a shared store.
	Token string `json:"-"`
}

// Defaults of Config.
const (
	DefaultAddr            = "127.0.0.1:3000"
	DefaultSweepEvery      = 30 * time.Second
	DefaultSessionIdle     = 2 * time.Hour
	DefaultShutdownTimeout = 15 * time.Second
	// ConfigEnv names the config file when --config is not given.
	ConfigEnv = "CODITECT_CONFIG"
)

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Addr: DefaultAddr, Role: RoleAll, LogLevel: "info", LogFormat: "text",
		SweepEvery: Duration(DefaultSweepEvery), SessionIdle: Duration(DefaultSessionIdle),
		ShutdownTimeout: Duration(DefaultShutdownTimeout),
	}
}

// param is one field's flag, environment variable and usage.
type param struct {
	key   string // json key; the flag is key with dashes, the env CODITECT_KEY
	usage string
	ptr   func(*Config) any
}

func (p param) flag() string { return strings.ReplaceAll(p.key, "_", "-") }
func (p param) env() string  { return "CODITECT_" + strings.ToUpper(p.key) }

var params = []param{
	{"addr", "HTTP listen address (beyond loopback needs --allow-remote)", func(c *Config) any { return &c.Addr }},
	{"allow_remote", "allow listening beyond loopback (every data route still requires a token)", func(c *Config) any { return &c.AllowRemote }},
	{"public_url", "URL people open, for the login link (default http://ADDR)", func(c *Config) any { return &c.PublicURL }},
	{"role", "all, core (watcher + sweepers) or dashboard (HTTP only)", func(c *Config) any { return &c.Role }},
	{"watch", "workspace directory to watch (repeatable; roles all and core)", func(c *Config) any { return &c.Watch }},
	{"tenant", "tenant of the local identity the watcher acts as (default \"default\")", func(c *Config) any { return &c.Tenant }},
	{"user", "user of the local identity and first admin (default: the OS user)", func(c *Config) any { return &c.User }},
	{"toolsets", "MCP toolsets served at /mcp, comma-separated (default: the core set)", func(c *Config) any { return &c.Toolsets }},
	{"allowed_origins", "browser origins allowed besides the page's own (repeatable), e.g. https://dash.example.com", func(c *Config) any { return &c.AllowedOrigins }},
	{"sweep_every", "pause between sweeps of liveness, sessions, leases, evidence and retention", func(c *Config) any { return &c.SweepEvery }},
	{"session_idle", "inactivity after which an open session is marked abandoned", func(c *Config) any { return &c.SessionIdle }},
	{"shutdown_timeout", "bound on draining requests and flushing the watcher at shutdown", func(c *Config) any { return &c.ShutdownTimeout }},
	{"log_level", "debug, info, warn or error", func(c *Config) any { return &c.LogLevel }},
	{"log_format", "text or json", func(c *Config) any { return &c.LogFormat }},
}

// ConfigFlags adds the daemon's flags to fs (and --config). The store
// flag is the root command's --store, read by LoadConfig when fs has it.
func ConfigFlags(fs *pflag.FlagSet) {
	def := DefaultConfig()
	fs.String("config", "", "JSON config file (default $"+ConfigEnv+"); flags and CODITECT_* variables override it")
	for _, p := range params {
		usage := p.usage + " [$" + p.env() + "]"
		switch v := p.ptr(&def).(type) {
		case *string:
			fs.String(p.flag(), *v, usage)
		case *bool:
			fs.Bool(p.flag(), *v, usage)
		case *[]string:
			fs.StringArray(p.flag(), *v, usage)
		case *Duration:
			fs.Duration(p.flag(), time.Duration(*v), usage)
		case *Role:
			fs.String(p.flag(), string(*v), usage)
		}
	}
}

// FlagNames returns the flags ConfigFlags adds, for the deployment tests.
func FlagNames() []string {
	out := []string{"config"}
	for _, p := range params {
		out = append(out, p.flag())
	}
	return out
}

// LoadConfig builds the configuration from the defaults, the config file,
// the environment (getenv, os.Getenv when nil) and the flags of fs that
// were set, then checks it.
func LoadConfig(fs *pflag.FlagSet, getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := DefaultConfig()
	file := getenv(ConfigEnv)
	if fs != nil && fs.Changed("config") {
		file, _ = fs.GetString("config")
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return c, fmt.Errorf("config %s: %w", file, err)
		}
	}
	if v := getenv("CODITECT_STORE"); v != "" {
		c.Store = v
	}
	for _, p := range params {
		s := getenv(p.env())
		if s == "" {
			continue
		}
		if err := setFromString(p.ptr(&c), s); err != nil {
			return c, fmt.Errorf("$%s=%q: %w", p.env(), s, err)
		}
	}
	c.Token = getenv(TokenEnv)
	if fs != nil {
		if f := fs.Lookup("store"); f != nil && f.Changed {
			c.Store = f.Value.String()
		}
		for _, p := range params {
			if !fs.Changed(p.flag()) {
				continue
			}
			var err error
			switch v := p.ptr(&c).(type) {
			case *string:
				*v, err = fs.GetString(p.flag())
			case *bool:
				*v, err = fs.GetBool(p.flag())
			case *[]string:
				*v, err = fs.GetStringArray(p.flag())
			case *Duration:
				var d time.Duration
				d, err = fs.GetDuration(p.flag())
				*v = Duration(d)
			case *Role:
				var s string
				s, err = fs.GetString(p.flag())
				*v = Role(s)
			}
			if err != nil {
				return c, fmt.Errorf("--%s: %w", p.flag(), err)
			}
		}
	}
	return c, c.Validate()
}

// setFromString sets a field from an environment variable: lists are
// comma-separated (watch: separated by the OS path list separator, ':').
func setFromString(ptr any, s string) error {
	switch v := ptr.(type) {
	case *string:
		*v = s
	case *bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return errors.New("want true or false")
		}
		*v = b
	case *[]string:
		sep := ","
		if v == nil {
			return nil
		}
		*v = nil
		for _, e := range strings.Split(s, sep) {
			if e = strings.TrimSpace(e); e != "" {
				*v = append(*v, e)
			}
		}
	case *Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*v = Duration(d)
	case *Role:
		*v = Role(s)
	}
	return nil
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if !slices.Contains([]Role{RoleAll, RoleCore, RoleDashboard}, c.Role) {
		return fmt.Errorf("role %q: want all, core or dashboard", c.Role)
	}
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("addr %q: want host:port, e.g. %s: %w", c.Addr, DefaultAddr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("addr %q: bad port", c.Addr)
	}
	if !LoopbackHost(host) && !c.AllowRemote {
		return fmt.Errorf("addr %q listens beyond loopback: add --allow-remote (every data route requires a token) or use 127.0.0.1", c.Addr)
	}
	if c.SweepEvery < Duration(time.Second) {
		return fmt.Errorf("sweep_every %s: want at least 1s", time.Duration(c.SweepEvery))
	}
	if c.SessionIdle < Duration(time.Minute) {
		return fmt.Errorf("session_idle %s: want at least 1m", time.Duration(c.SessionIdle))
	}
	if c.ShutdownTimeout <= 0 {
		return fmt.Errorf("shutdown_timeout %s: want a positive duration", time.Duration(c.ShutdownTimeout))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("log_format %q: want text or json", c.LogFormat)
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	if len(c.Watch) > 0 && !c.Role.Background() {
		return fmt.Errorf("watch is set but role %s does not run the watcher (use all or core)", c.Role)
	}
	if c.PublicURL != "" && !strings.HasPrefix(c.PublicURL, "http://") && !strings.HasPrefix(c.PublicURL, "https://") {
		return fmt.Errorf("public_url %q: want an http:// or https:// URL", c.PublicURL)
	}
	return nil
}

// LoopbackHost reports whether a listen host is loopback only: localhost
// or a loopback IP. The empty host, 0.0.0.0 and :: listen everywhere.
func LoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && a.IsLoopback()
}
