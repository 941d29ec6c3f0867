package watch

import (
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Mode is how a workspace learns about changes.
type Mode string

// Modes.
const (
	// ModeAuto chooses per workspace: notify, unless the file system
	// delivers no events for changes made elsewhere (see Detect).
	ModeAuto Mode = ""
	// ModeNotify: inotify watches, one per directory.
	ModeNotify Mode = "notify"
	// ModePoll: a scan every PollInterval.
	ModePoll Mode = "poll"
)

// Defaults.
const (
	DefaultWindow       = 50 * time.Millisecond
	DefaultMaxHashSize  = 8 << 20
	DefaultPollInterval = 2 * time.Second
	DefaultBatchSize    = 512
	DefaultMaxPending   = 100_000
	DefaultFormatWindow = 3 * time.Second
)

// Root is a watched directory: a root of a project on this machine
// (storage/project). Every event under it names the project, with the
// path relative to the root, so that one file has one key whichever
// checkout or spelling of it changed; Register finds the roots of
// directories.
type Root struct {
	// Project is the project's id.
	Project string
	// Dir is the root directory; symbolic links in it are resolved.
	Dir string
}

// Config configures a Watcher. The zero value of every field but Roots is
// a sensible default.
type Config struct {
	// Roots are the project roots to watch. They must exist, be roots of
	// their projects on this machine and not contain one another.
	Roots []Root
	// Mode forces notify or poll for every root; ModeAuto decides per root.
	Mode Mode
	// Window is the coalescing window: the changes to one path until it has
	// been quiet this long are one event. DefaultWindow when zero.
	Window time.Duration
	// MaxDelay bounds how long a path that keeps changing waits for its
	// event; 10 × Window when zero.
	MaxDelay time.Duration
	// MaxHashSize is the largest file whose content is hashed and whose
	// lines are counted; larger files are compared by size and time.
	// DefaultMaxHashSize when zero; negative disables hashing.
	MaxHashSize int64
	// PollInterval is the pause between two scans of a polled workspace or
	// subtree. DefaultPollInterval when zero.
	PollInterval time.Duration
	// Ignore are gitignore patterns of the user's, relative to each root;
	// they outrank every .gitignore.
	Ignore []string
	// NoDefaultIgnores turns gitignore.Defaults off.
	NoDefaultIgnores bool
	// IgnorePaths are absolute paths never reported (the store's files,
	// the events file): writing them must not feed the watcher.
	IgnorePaths []string
	// BatchSize is the most events stored in one transaction.
	// DefaultBatchSize when zero.
	BatchSize int
	// MaxPending bounds the paths waiting for their window to close; past
	// it, the pending changes are dropped and found again by a rescan, so
	// memory stays bounded under any flood. DefaultMaxPending when zero.
	MaxPending int
	// FormatWindow is how long after an agent's recorded write a change
	// that matches no record is taken for a formatter run on the agent's
	// output. DefaultFormatWindow when zero; negative disables it.
	FormatWindow time.Duration
	// Tools is the registry of AI coding tools recognised by process;
	// KnownTools when nil. An empty non-nil slice disables evidence 4.
	Tools []Tool
	// ProcRoot is where the process table is read ("/proc" when empty).
	ProcRoot string
	// Session, when set, is the work session an event is filed under when
	// the evidence that explains it names none (an agent's write or an IDE
	// save names the writer's session).
	Session string
	// EventsFile, when set, receives every stored event as a JSON line.
	EventsFile io.Writer
	// OnStored, when set, is called after each batch commits, with the
	// events as stored (IDs set). It runs on the writer goroutine: keep it
	// short.
	OnStored func([]Change)
	// Logger receives the watcher's diagnostics; slog.Default when nil.
	Logger *slog.Logger

	// addWatch replaces fsnotify's Add in tests (to provoke ENOSPC).
	addWatch func(add func(string) error, path string) error
}

func (c Config) withDefaults() (Config, error) {
	if len(c.Roots) == 0 {
		return c, fmt.Errorf("watch: no directory to watch")
	}
	switch c.Mode {
	case ModeAuto, ModeNotify, ModePoll:
	default:
		return c, fmt.Errorf("watch: mode %q: want notify or poll", c.Mode)
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = 10 * c.Window
	}
	if c.MaxDelay < c.Window {
		c.MaxDelay = c.Window
	}
	if c.MaxHashSize == 0 {
		c.MaxHashSize = DefaultMaxHashSize
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchSize > 4096 {
		c.BatchSize = 4096
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.FormatWindow == 0 {
		c.FormatWindow = DefaultFormatWindow
	}
	if c.Tools == nil {
		c.Tools = KnownTools
	}
	if c.ProcRoot == "" {
		c.ProcRoot = "/proc"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}
