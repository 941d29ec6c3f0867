package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/coditect/coditect/storage"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/watch"
)

// newWatchCommand is `coditect watch DIR…`: the watcher alone (the seed's
// core process), storing every file event, attributed, in the tenant's
// audit log and printing it.
func newWatchCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "watch DIR...",
		Short: "Watch projects and record every file change, with who most likely made it",
		Long: `Watch the projects of one or more directories and record every file change in
the audit log: created, modified (an editor's atomic save is one), deleted,
renamed, with size, content hash and line-count change, and who most likely made
it (an agent writing through Coditect, the human saving in the IDE, the agent
holding the file's lease, the only AI coding tool working there, or unknown).

Each DIR is in a project: its root on this machine is watched, and every event
names the project and the path relative to its root, and the work session of the
agent's write or the IDE save that explains it. A DIR in no project becomes the
root of a new project named after it when you may register roots (an admin, or
the local operator of an embedded store); otherwise an admin registers it first
with coditect project add NAME DIR. A root may not hold the store or its spool.

.gitignore files, .git/ and common build and dependency directories are not
watched. File systems that raise no inotify events for changes made elsewhere
(WSL2 drives, 9p, FUSE, NFS, SMB) are polled; --poll forces polling everywhere.
Stop with Ctrl-C: what is pending is stored first.`,
		Args: cobra.MinimumNArgs(1),
	}
	identityFlags(cmd)
	f := cmd.Flags()
	f.Bool("poll", false, "poll every workspace instead of using inotify")
	f.Duration("poll-interval", watch.DefaultPollInterval, "pause between two polling passes")
	f.Duration("window", watch.DefaultWindow, "coalescing window: changes to one file until it is quiet this long are one event")
	f.Int64("max-hash-size", watch.DefaultMaxHashSize, "largest file (bytes) whose content is hashed and lines counted; -1 to hash nothing")
	f.StringArray("ignore", nil, "gitignore pattern to ignore as well (repeatable); outranks .gitignore files")
	f.Bool("no-default-ignores", false, "watch node_modules, build output, caches and editor swap files too")
	f.String("events-file", "", "also append every event to this file as a JSON line")
	f.Int64("events-file-size", watch.DefaultEventsFileSize, "rotate the events file past this many bytes")
	f.Int("events-file-keep", watch.DefaultEventsFileKeep, "rotated events files to keep")
	f.Int("batch-size", watch.DefaultBatchSize, "most events stored in one transaction")
	f.String("session", "", "file under this work session the events whose evidence names none")
	f.String("format", "text", "what to print for each event: text, json or none")
	f.String("log-level", "info", "diagnostics on stderr: debug, info, warn or error")
	cmd.RunE = withStore(func(e *env, args []string) error {
		return runWatch(e, args)
	})
	return cmd
}

func runWatch(e *env, args []string) error {
	fl := e.cmd.Flags()
	format, _ := fl.GetString("format")
	if jsonOutput(e.cmd) {
		format = "json"
	}
	switch format {
	case "text", "json", "none":
	default:
		return fmt.Errorf("--format %q: want text, json or none", format)
	}
	var level slog.Level
	lv, _ := fl.GetString("log-level")
	if err := level.UnmarshalText([]byte(lv)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", lv)
	}
	sc, err := e.scope()
	if err != nil {
		return err
	}
	cfg := watch.Config{Logger: slog.New(slog.NewTextHandler(e.cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))}
	if poll, _ := fl.GetBool("poll"); poll {
		cfg.Mode = watch.ModePoll
	}
	cfg.PollInterval, _ = fl.GetDuration("poll-interval")
	cfg.Window, _ = fl.GetDuration("window")
	cfg.MaxHashSize, _ = fl.GetInt64("max-hash-size")
	cfg.Ignore, _ = fl.GetStringArray("ignore")
	cfg.NoDefaultIgnores, _ = fl.GetBool("no-default-ignores")
	cfg.BatchSize, _ = fl.GetInt("batch-size")
	cfg.Session, _ = fl.GetString("session")
	var protected []string
	if u, err := storeURL(e.cmd); err == nil {
		protected = storage.OwnFiles(u)
		cfg.IgnorePaths = append(cfg.IgnorePaths, protected...)
	}
	roots, found, err := watch.Register(e.ctx, sc, args, project.RootOptions{Protected: protected})
	if err != nil {
		return err
	}
	cfg.Roots = roots
	for _, f := range found {
		cfg.Logger.Info("project", "dir", f.Dir, "project", f.Project, "id", f.Root.Project, "root", f.Root.Dir)
	}
	if name, _ := fl.GetString("events-file"); name != "" {
		size, _ := fl.GetInt64("events-file-size")
		keep, _ := fl.GetInt("events-file-keep")
		ef, err := watch.OpenEventsFile(name, size, keep)
		if err != nil {
			return err
		}
		defer ef.Close()
		cfg.EventsFile = ef
		if abs, err := filepath.Abs(name); err == nil {
			cfg.IgnorePaths = append(cfg.IgnorePaths, abs)
			for i := 1; i <= keep; i++ {
				cfg.IgnorePaths = append(cfg.IgnorePaths, fmt.Sprintf("%s.%d", abs, i))
			}
		}
	}
	out := e.cmd.OutOrStdout()
	var mu sync.Mutex
	cfg.OnStored = func(cs []watch.Change) {
		if format == "none" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, c := range cs {
			printChange(out, format, c)
		}
	}
	w, err := watch.New(sc, cfg)
	if err != nil {
		return err
	}
	go func() {
		select {
		case <-w.Ready():
			for _, ws := range w.Workspaces() {
				cfg.Logger.Info("ready", "project", ws.Project, "root", ws.Root, "mode", ws.Mode, "reason", ws.Reason)
			}
		case <-e.ctx.Done():
		}
	}()
	if err := w.Run(e.ctx); err != nil && !cancelled(e.ctx, err) {
		return err
	}
	return nil
}

// printChange prints one event line.
func printChange(w io.Writer, format string, c watch.Change) {
	if format == "json" {
		b, _ := json.Marshal(c)
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	what := c.Rel
	if c.From != "" {
		if rel, err := filepath.Rel(c.Root, c.From); err == nil {
			what = filepath.ToSlash(rel) + " -> " + c.Rel
		}
	}
	lines := ""
	if c.LinesDelta != nil {
		lines = fmt.Sprintf(" %+d lines", *c.LinesDelta)
	}
	who := string(c.Attribution.Actor)
	if c.Attribution.AgentID != "" {
		who += " " + c.Attribution.AgentID
	} else if c.User != "" {
		who += " " + c.User
	}
	ev := c.Attribution.Evidence
	if i := strings.Index(ev, ":"); i > 0 {
		ev = ev[:i]
	}
	fmt.Fprintf(w, "%s  %-8s %s%s  by %s (%s, %.0f%%)\n", stamp(c.Time), strings.TrimPrefix(c.Kind, "file."), cell(what), lines, who, ev, 100*c.Attribution.Confidence)
}

// storeFiles returns the files of an embedded store, which the watcher
