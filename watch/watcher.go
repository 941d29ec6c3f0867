package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/coditect/coditect/internal/gitignore"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
)

// Change is one file event as the watcher reports and stores it.
type Change struct {
	// ID is the audit event's ID, set once stored.
	ID string `json:"id,omitempty"`
	// Kind is file.created, file.modified, file.deleted or file.renamed.
	Kind string `json:"kind"`
	// Project is the id of the file's project; Rel its path relative to
	// the project root, '/' separated: the event's path.
	Project string `json:"project"`
	Rel     string `json:"rel"`
	// Root is the watched project root the file is in.
	Root string `json:"root"`
	// Path is the file's absolute path (its new path for a rename).
	Path string `json:"path"`
	// From is a renamed file's old absolute path.
	From string `json:"from,omitempty"`
	// Session is the work session the event is filed under: the one the
	// evidence names (the agent's write, the IDE save), else
	// Config.Session.
	Session string `json:"session,omitempty"`
	// Time is when the first change of the coalesced burst was seen.
	Time time.Time `json:"time"`
	// Size, Hash and Lines describe the content after the change (zero,
	// empty and -1 for a deletion); Hash is empty for files over
	// MaxHashSize and Lines is -1 for binary or unhashed files.
	Size  int64  `json:"size"`
	Hash  string `json:"hash,omitempty"`
	Lines int    `json:"lines"`
	// LinesDelta is the change in line count, when both counts are known.
	LinesDelta *int `json:"lines_delta,omitempty"`
	// Replaced is set on a rename over an existing file.
	Replaced bool `json:"replaced,omitempty"`
	// Via is how the change was seen: notify or poll.
	Via Mode `json:"via"`
	// Attribution says who most likely made the change and why.
	Attribution audit.Attribution `json:"attribution"`
	// User is the human the evidence names (an IDE save, the user an agent
	// acts for); empty otherwise.
	User string `json:"user,omitempty"`
}

// Stats are the watcher's counters.
type Stats struct {
	Watches   int64 // directories under an inotify watch
	Files     int64 // files known
	Events    int64 // events stored
	Batches   int64 // transactions that stored them
	Overflows int64 // inotify queue overflows and pending-limit drops (each followed by a rescan)
	Rescans   int64 // full or subtree rescans, polling passes included
	Raw       int64 // raw notifications received
}

// Workspace describes one watched root.
type Workspace struct {
	Project string `json:"project"`
	Root    string `json:"root"`
	Mode    Mode   `json:"mode"`
	Reason  string `json:"reason"`
	// Polled are the subtrees polled because the watch limit was reached.
	Polled []string `json:"polled,omitempty"`
}

// Watcher watches workspaces and stores their file events, attributed, in
// the scope's audit log. Create one with New and start it with Run.
type Watcher struct {
	sc     *tenant.Scope
	cfg    Config
	log    *slog.Logger
	spaces []*space
	fsw    *fsnotify.Watcher
	procs  *processTable

	// Owned by Run's goroutine.
	pending    map[pkey]*pend
	queue      []qitem
	qhead      int
	limbo      []gone
	outbox     []Change
	rescan     map[*space]bool
	limitNoted bool
	mounts     map[mountKey]struct{} // the mount table as last read
	anchors    map[string]int        // watched anchors: spaces waiting on each
	advancing  bool                  // advance is running (see rootGone)

	ready     chan struct{}
	readyOnce sync.Once
	wsMu      sync.Mutex
	stats     struct{ watches, files, events, batches, overflows, rescans, raw atomic.Int64 }
}

// space is one workspace's state.
type space struct {
	project string
	root    string
	rules   *gitignore.Rules
	files   map[string]*entry
	dirs    map[string]*dirState
	mode    Mode
	reason  string
	polled  map[string]bool
	// missing is set while the root is gone; anchor is then the directory
	// watched for it to come back (roots.go).
	missing      bool
	anchor       string
	anchorWarned bool
}

// dirState is a known directory: whether it is watched and its children.
type dirState struct {
	watched bool
	files   map[string]struct{}
	subdirs map[string]struct{}
}

type pkey struct {
	sp  *space
	rel string
}

type pend struct{ first, last time.Time }

type qitem struct {
	key pkey
	at  time.Time
}

// gone is a file that disappeared and may yet turn out to be renamed.
type gone struct {
	key   pkey
	e     *entry
	first time.Time
	since time.Time
}

// New checks the configuration and returns a watcher for the scope's
// tenant. Nothing is watched until Run.
func New(sc *tenant.Scope, cfg Config) (*Watcher, error) {
	if sc == nil {
		return nil, errors.New("watch: a tenant scope is required")
	}
	if err := sc.CanWrite(); err != nil {
		return nil, err
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	w := &Watcher{sc: sc, cfg: cfg, log: cfg.Logger, ready: make(chan struct{}), pending: map[pkey]*pend{}, rescan: map[*space]bool{}, anchors: map[string]int{}}
	w.procs = &processTable{root: cfg.ProcRoot, tools: cfg.Tools, maxAge: time.Second}
	for _, r := range cfg.Roots {
		abs, err := checkRoot(sc, r)
		if err != nil {
			return nil, err
		}
		for _, o := range w.spaces {
			if within(abs, o.root) || within(o.root, abs) {
				return nil, fmt.Errorf("watch: %s and %s overlap: watch the outer one only", o.root, abs)
			}
		}
		rules, err := newIgnoreRules(abs, cfg.Ignore, !cfg.NoDefaultIgnores, cfg.IgnorePaths)
		if err != nil {
			return nil, err
		}
		w.spaces = append(w.spaces, &space{project: r.Project, root: abs, rules: rules, files: map[string]*entry{}, dirs: map[string]*dirState{}, polled: map[string]bool{}})
	}
	return w, nil
}

// checkRoot returns the real path of r's directory after checking that it
// is a root of r's project on this machine: the project every event under
// it names.
func checkRoot(sc *tenant.Scope, r Root) (string, error) {
	if r.Project == "" || r.Dir == "" {
		return "", fmt.Errorf("watch: root %+v: a project and its root directory are required (see Register)", r)
	}
	abs, err := filepath.Abs(r.Dir)
	if err != nil {
		return "", fmt.Errorf("watch: %s: %w", r.Dir, err)
	}
	abs, err = filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("watch: %s: %w", r.Dir, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("watch: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("watch: %s is not a directory", r.Dir)
	}
	pl, err := project.Resolve(context.Background(), sc, abs)
	if err != nil {
		return "", fmt.Errorf("watch: %s: %w", r.Dir, err)
	}
	if pl.Project.ID != r.Project || pl.Rel != "." {
		return "", fmt.Errorf("watch: %s is not a root of project %s on this machine: it lies in project %s (%s) at %s: watch that root", r.Dir, r.Project, pl.Project.Name, pl.Project.ID, pl.Root)
	}
	return abs, nil
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, string(filepath.Separator))+string(filepath.Separator))
}

// Ready is closed when the initial scan is done and every change from then
// on will be reported.
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// Stats returns the watcher's counters.
func (w *Watcher) Stats() Stats {
	return Stats{Watches: w.stats.watches.Load(), Files: w.stats.files.Load(), Events: w.stats.events.Load(),
		Batches: w.stats.batches.Load(), Overflows: w.stats.overflows.Load(), Rescans: w.stats.rescans.Load(), Raw: w.stats.raw.Load()}
}

// Workspaces describes the watched roots and how each is watched.
func (w *Watcher) Workspaces() []Workspace {
	w.wsMu.Lock()
	defer w.wsMu.Unlock()
	out := make([]Workspace, 0, len(w.spaces))
	for _, sp := range w.spaces {
		ws := Workspace{Project: sp.project, Root: sp.root, Mode: sp.mode, Reason: sp.reason}
		for d := range sp.polled {
			ws.Polled = append(ws.Polled, filepath.Join(sp.root, filepath.FromSlash(d)))
		}
		slices.Sort(ws.Polled)
		out = append(out, ws)
	}
	return out
}

// Run watches until ctx is done, then stores what is still pending and
// returns nil; it returns an error when the store fails for good or the
// watcher cannot start.
func (w *Watcher) Run(ctx context.Context) error {
	if err := w.start(); err != nil {
		return err
	}
	defer func() {
		if w.fsw != nil {
			w.fsw.Close()
		}
	}()
	// The mount table is read before the first walk, so a mount made
	// during it is rescanned.
	var mounts <-chan struct{}
	if w.fsw != nil {
		if m := w.watchMounts(); m != nil {
			defer m.stop()
			mounts = m.C
		}
	}
	for _, sp := range w.spaces {
		w.walk(sp, "", scanBaseline, time.Now())
		w.log.Info("watching", "root", sp.root, "mode", sp.mode, "reason", sp.reason, "files", len(sp.files), "dirs", len(sp.dirs))
	}
	w.readyOnce.Do(func() { close(w.ready) })

	// The writer stores batches while this goroutine watches.
	toSink := make(chan []Change)
	sinkErr := make(chan error, 1)
	sinkDone := make(chan struct{})
	sinkCtx, cancelSink := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSink()
	go func() {
		defer close(sinkDone)
		for batch := range toSink {
			if err := w.store(sinkCtx, batch); err != nil {
				sinkErr <- err
				return
			}
		}
	}()

	var events <-chan fsnotify.Event
	var errs <-chan error
	if w.fsw != nil {
		events, errs = w.fsw.Events, w.fsw.Errors
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var poll <-chan time.Time
	if w.polling() {
		t := time.NewTicker(w.cfg.PollInterval)
		defer t.Stop()
		poll = t.C
	}
	outboxLimit := 4 * w.cfg.BatchSize
	for {
		var send chan []Change
		var batch []Change
		if len(w.outbox) > 0 {
			send = toSink
			batch = w.outbox[:min(len(w.outbox), w.cfg.BatchSize)]
		}
		w.arm(timer, len(w.outbox) < outboxLimit)
		select {
		case <-ctx.Done():
			// Store what is pending, but give up on a store that does not
			// answer for finishTimeout.
			stop := time.AfterFunc(finishTimeout, cancelSink)
			defer stop.Stop()
			return w.finish(toSink, sinkErr, sinkDone)
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			now := time.Now()
			w.handle(ev, now)
			// Take what else is queued without re-arming the timer each time.
			for range 1024 {
				select {
				case ev, ok := <-events:
					if !ok {
						events = nil
						break
					}
					w.handle(ev, now)
					continue
				default:
				}
				break
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			w.notifyError(err)
		case <-timer.C:
			if len(w.outbox) < outboxLimit {
				w.flushDue(time.Now(), false)
				w.rescanNeeded(time.Now())
			}
		case <-poll:
			w.pollPass(time.Now())
		case <-mounts:
			w.mountsChanged(time.Now())
		case send <- batch:
			w.outbox = w.outbox[len(batch):]
			if len(w.outbox) == 0 {
				w.outbox = nil // let a flood's backing array go
			}
		case err := <-sinkErr:
			close(toSink)
			return err
		}
	}
}

// finishTimeout bounds how long Run, once stopped, keeps trying to store
// what was pending.
const finishTimeout = 30 * time.Second

// finish resolves everything pending, hands it to the writer and waits
// for it.
func (w *Watcher) finish(toSink chan []Change, sinkErr chan error, sinkDone chan struct{}) error {
	far := time.Now().Add(w.cfg.MaxDelay + w.cfg.Window)
	for len(w.pending) > 0 || len(w.limbo) > 0 {
		w.flushDue(far, true)
	}
	for len(w.outbox) > 0 {
		n := min(len(w.outbox), w.cfg.BatchSize)
		select {
		case toSink <- w.outbox[:n]:
			w.outbox = w.outbox[n:]
		case err := <-sinkErr:
			return err
		}
	}
	close(toSink)
	<-sinkDone
	select {
	case err := <-sinkErr:
		return err
	default:
		return nil
	}
}

// start decides each workspace's mode and opens inotify when one needs it.
func (w *Watcher) start() error {
	needNotify := false
	for _, sp := range w.spaces {
		switch w.cfg.Mode {
		case ModePoll:
			sp.mode, sp.reason = ModePoll, "polling forced (--poll)"
		case ModeNotify:
			sp.mode, sp.reason = ModeNotify, "inotify forced"
		default:
			kind, desc := fsKind(sp.root)
			switch kind {
			case "remote":
				sp.mode, sp.reason = ModePoll, desc+": changes made on the other side raise no inotify events"
			case "local":
				sp.mode, sp.reason = ModeNotify, desc
			default:
				sp.mode, sp.reason = ModeNotify, desc+": probe pending"
			}
		}
		needNotify = needNotify || sp.mode == ModeNotify
	}
	if !needNotify {
		return nil
	}
	fsw, err := fsnotify.NewBufferedWatcher(4096)
	if err != nil {
		// Out of inotify instances (fs.inotify.max_user_instances): poll
		// everything rather than fail.
		w.log.Warn("inotify is unavailable; polling every workspace", "err", err,
			"hint", "raise fs.inotify.max_user_instances or stop other watchers")
		for _, sp := range w.spaces {
			sp.mode, sp.reason = ModePoll, "inotify unavailable: "+err.Error()
		}
		return nil
	}
	w.fsw = fsw
	for _, sp := range w.spaces {
		if sp.mode == ModeNotify && strings.HasSuffix(sp.reason, ": probe pending") {
			desc := strings.TrimSuffix(sp.reason, ": probe pending")
			if w.probe(sp.root) {
				sp.reason = desc + ": a probe write raised an inotify event"
			} else {
				sp.mode, sp.reason = ModePoll, desc+": a probe write raised no inotify event"
			}
		}
	}
	return nil
}

// probe writes a file in root and reports whether inotify tells of it
// within a second.
func (w *Watcher) probe(root string) bool {
	if err := w.fsw.Add(root); err != nil {
		return false
	}
	defer w.fsw.Remove(root)
	f, err := os.CreateTemp(root, ".coditect-probe-*")
	if err != nil {
		return false
	}
	name := f.Name()
	f.Close()
	defer os.Remove(name)
	deadline := time.After(time.Second)
	for {
		select {
		case ev := <-w.fsw.Events:
			if ev.Name == name {
				// Drain the probe's own remaining events.
				return true
			}
		case <-w.fsw.Errors:
		case <-deadline:
			return false
		}
	}
}

func (w *Watcher) polling() bool {
	for _, sp := range w.spaces {
		if sp.mode == ModePoll {
			return true
		}
	}
	return w.fsw != nil // subtrees may fall back to polling when watches run out
}

// arm sets the timer for the next window to close.
func (w *Watcher) arm(t *time.Timer, room bool) {
	t.Stop()
	var next time.Time
	if room && w.qhead < len(w.queue) {
		next = w.queue[w.qhead].at.Add(w.cfg.Window)
	}
	if len(w.limbo) > 0 {
		if l := w.limbo[0].since.Add(2 * w.cfg.Window); next.IsZero() || l.Before(next) {
			next = l
		}
	}
	if len(w.rescan) > 0 && len(w.pending) < w.cfg.MaxPending/2 && room {
		next = time.Now()
	}
	if next.IsZero() {
		return
	}
	t.Reset(max(time.Until(next), 0))
}

// locate returns the workspace and relative path of an absolute path.
func (w *Watcher) locate(abs string) (*space, string) {
	for _, sp := range w.spaces {
		if abs == sp.root {
			return sp, ""
		}
		if rel, ok := strings.CutPrefix(abs, sp.root+string(filepath.Separator)); ok {
			return sp, filepath.ToSlash(rel)
		}
	}
	return nil, ""
}

// handle takes one inotify notification.
func (w *Watcher) handle(ev fsnotify.Event, now time.Time) {
	w.stats.raw.Add(1)
	if ev.Op == fsnotify.Chmod {
		return // permissions and timestamps: never a content change
	}
	if len(w.anchors) > 0 && w.anchorEvent(ev, now) {
		return
	}
	sp, rel := w.locate(ev.Name)
	if sp == nil || sp.missing {
		return // a missing root's stale events: its return is walked
	}
	if rel == "" {
		if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			w.rootGone(sp, now)
		}
		return
	}
	if _, ok := sp.dirs[rel]; ok {
		if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			w.removeDir(sp, rel, now)
		}
		// A directory moved over this name, or re-created: walk it again.
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
			if _, still := sp.dirs[rel]; !still {
				w.walk(sp, rel, scanEmit, now)
			}
		}
		return
	}
	if ev.Has(fsnotify.Create) {
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
			if !sp.rules.Ignored(rel, true) {
				w.walk(sp, rel, scanEmit, now)
			}
			if sp.files[rel] != nil {
				w.mark(sp, rel, now) // a file replaced by a directory
			}
			return
		}
	}
	if !sp.rules.Ignored(rel, false) {
		w.mark(sp, rel, now)
	}
	if path.Base(rel) == ".gitignore" {
		w.gitignoreChanged(sp, parentOf(rel), now)
	}
}

func parentOf(rel string) string {
	if d := path.Dir(rel); d != "." {
		return d
	}
	return ""
}

// notifyError handles an error inotify reports.
func (w *Watcher) notifyError(err error) {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		w.stats.overflows.Add(1)
		w.log.Warn("the inotify queue overflowed; rescanning", "hint", "fs.inotify.max_queued_events="+readProc("max_queued_events"))
		for _, sp := range w.spaces {
			if sp.mode == ModeNotify {
				w.rescan[sp] = true
			}
		}
		return
	}
	w.log.Warn("inotify error", "err", err)
}

func readProc(name string) string {
	b, err := os.ReadFile("/proc/sys/fs/inotify/" + name)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// mark records that rel changed at now. Past MaxPending, it records
// nothing and schedules a rescan of the workspace instead, which finds the
// change again once the pending ones are resolved: memory stays bounded
// under any flood, and nothing is lost.
func (w *Watcher) mark(sp *space, rel string, now time.Time) {
	k := pkey{sp, rel}
	if p := w.pending[k]; p != nil {
		p.last = now
		return
	}
	if w.rescan[sp] {
		return // the rescan that is due will find it
	}
	if len(w.pending) >= w.cfg.MaxPending {
		w.stats.overflows.Add(1)
		w.rescan[sp] = true
		w.log.Warn("more changed paths are waiting than the pending limit; the rest are found by a rescan", "limit", w.cfg.MaxPending, "root", sp.root)
		return
	}
	w.add(k, now)
}

// markAlways marks rel whatever the pending limit: the files of a removed
// directory, which no rescan would visit again.
func (w *Watcher) markAlways(sp *space, rel string, now time.Time) {
	k := pkey{sp, rel}
	if p := w.pending[k]; p != nil {
		p.last = now
		return
	}
	w.add(k, now)
}

func (w *Watcher) add(k pkey, now time.Time) {
	w.pending[k] = &pend{first: now, last: now}
	w.queue = append(w.queue, qitem{k, now})
}

// markOnce marks rel unless it is pending already: a scan that finds a
// change it already reported must not hold its window open.
func (w *Watcher) markOnce(sp *space, rel string, now time.Time) {
	if w.pending[pkey{sp, rel}] == nil {
		w.mark(sp, rel, now)
	}
}

// rescanNeeded runs the rescans overflows asked for, when there is room.
func (w *Watcher) rescanNeeded(now time.Time) {
	for sp := range w.rescan {
		if len(w.pending) >= w.cfg.MaxPending/2 {
			return
		}
		delete(w.rescan, sp)
		if sp.missing {
			// The overflow may have swallowed its anchor's news.
			w.advance(sp, now)
			continue
		}
		w.walk(sp, "", scanCompare, now)
	}
}

// pollPass scans the polled workspaces and subtrees.
func (w *Watcher) pollPass(now time.Time) {
	for _, sp := range w.spaces {
		if sp.missing {
			if sp.anchor == "" { // else its watch tells when it is back
				w.advance(sp, now)
			}
			continue
		}
		if sp.mode == ModePoll {
			w.walk(sp, "", scanCompare, now)
			continue
		}
		for d := range sp.polled {
			w.walk(sp, d, scanCompare, now)
		}
	}
}

// flushDue resolves the paths whose window has closed at now (all of them
// when all is set).
func (w *Watcher) flushDue(now time.Time, all bool) {
	const roundMax = 4096
	var due []pkey
	var firsts []time.Time
	for w.qhead < len(w.queue) && len(due) < roundMax {
		it := w.queue[w.qhead]
		if !all && it.at.Add(w.cfg.Window).After(now) {
			break
		}
		w.qhead++
		p := w.pending[it.key]
		if p == nil {
			continue
		}
		if all || !p.last.Add(w.cfg.Window).After(now) || !p.first.Add(w.cfg.MaxDelay).After(now) {
			due = append(due, it.key)
			firsts = append(firsts, p.first)
			delete(w.pending, it.key)
			continue
		}
		w.queue = append(w.queue, qitem{it.key, p.last})
	}
	if w.qhead > 1024 && w.qhead > len(w.queue)/2 {
		w.queue = append(w.queue[:0:0], w.queue[w.qhead:]...)
		w.qhead = 0
	}
	if len(due) > 0 {
		w.resolve(due, firsts, now)
	}
	w.flushLimbo(now, all || len(w.pending) == 0)
}

// resolve compares the due paths with the disk and emits their events.
func (w *Watcher) resolve(due []pkey, firsts []time.Time, now time.Time) {
	obs := make([]observation, len(due))
	parallel(len(due), func(i int) {
		k := due[i]
		obs[i] = observe(filepath.Join(k.sp.root, filepath.FromSlash(k.rel)), k.sp.files[k.rel], w.cfg.MaxHashSize)
	})
	type found struct {
		key   pkey
		old   *entry // the replaced file, for a rename over it
		e     *entry
		first time.Time
	}
	var appeared, replaced []found
	var lost []gone
	for i, k := range due {
		sp, o := k.sp, obs[i]
		old := sp.files[k.rel]
		switch {
		case o.err != nil:
			w.log.Debug("cannot read a changed file; keeping what we knew", "path", filepath.Join(sp.root, k.rel), "err", o.err)
		case o.isDir:
			if old != nil {
				lost = append(lost, gone{k, old, firsts[i], now})
				w.delFile(sp, k.rel)
			}
			if _, known := sp.dirs[k.rel]; !known && !sp.rules.Ignored(k.rel, true) {
				w.walk(sp, k.rel, scanEmit, now)
			}
		case !o.exists:
			if old != nil {
				lost = append(lost, gone{k, old, firsts[i], now})
				w.delFile(sp, k.rel)
			}
		case sp.rules.Ignored(k.rel, false):
			if old != nil {
				w.delFile(sp, k.rel)
			}
		default:
			e := o.e
			if old != nil {
				// Known, and maybe walked again since (its directory
				// removed and back): its directory lists it.
				w.linkFile(sp, k.rel)
			}
			switch {
			case old == nil:
				appeared = append(appeared, found{k, nil, &e, firsts[i]})
			case old.sameContent(&e) && old.ino == e.ino:
				*old = e
			case e.ino != old.ino && e.ino != 0:
				replaced = append(replaced, found{k, old, &e, firsts[i]})
			case old.sameContent(&e):
				*old = e
			default:
				w.emit(sp, "file.modified", k.rel, "", old, &e, firsts[i], false)
				*old = e
			}
		}
	}
	// Pair the halves of renames by inode: this round's losses, then the
	// ones waiting in limbo.
	pick := func(e *entry) (gone, bool) {
		if e.ino == 0 {
			return gone{}, false
		}
		for j, g := range lost {
			if g.e.ino == e.ino && g.e.dev == e.dev {
				lost = slices.Delete(lost, j, j+1)
				return g, true
			}
		}
		for j, g := range w.limbo {
			if g.e.ino == e.ino && g.e.dev == e.dev {
				w.limbo = slices.Delete(w.limbo, j, j+1)
				return g, true
			}
		}
		return gone{}, false
	}
	for _, a := range appeared {
		sp := a.key.sp
		if g, ok := pick(a.e); ok && g.key.sp == sp {
			w.emit(sp, "file.renamed", a.key.rel, g.key.rel, g.e, a.e, minTime(g.first, a.first), false)
		} else {
			if ok { // moved between workspaces: a deletion there, a creation here
				w.emit(g.key.sp, "file.deleted", g.key.rel, "", g.e, nil, g.first, false)
			}
			w.emit(sp, "file.created", a.key.rel, "", nil, a.e, a.first, false)
		}
		w.setFile(sp, a.key.rel, a.e)
	}
	for _, r := range replaced {
		sp := r.key.sp
		if g, ok := pick(r.e); ok && g.key.sp == sp {
			w.emit(sp, "file.renamed", r.key.rel, g.key.rel, g.e, r.e, minTime(g.first, r.first), true)
		} else if !r.old.sameContent(r.e) {
			if ok {
				w.emit(g.key.sp, "file.deleted", g.key.rel, "", g.e, nil, g.first, false)
			}
			w.emit(sp, "file.modified", r.key.rel, "", r.old, r.e, r.first, false)
		}
		*r.old = *r.e
	}
	w.limbo = append(w.limbo, lost...)
}

// flushLimbo reports the disappearances no rename claimed within a window
// (all of them when all is set).
func (w *Watcher) flushLimbo(now time.Time, all bool) {
	n := 0
	for _, g := range w.limbo {
		if all || !g.since.Add(2*w.cfg.Window).After(now) {
			w.emit(g.key.sp, "file.deleted", g.key.rel, "", g.e, nil, g.first, false)
			continue
		}
		w.limbo[n] = g
		n++
	}
	clear(w.limbo[n:])
	w.limbo = w.limbo[:n]
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// emit queues the event for the change of rel from old to e.
func (w *Watcher) emit(sp *space, kind, rel, fromRel string, old, e *entry, first time.Time, replaced bool) {
	c := Change{Kind: kind, Project: sp.project, Root: sp.root, Rel: rel, Path: filepath.Join(sp.root, filepath.FromSlash(rel)), Time: first, Lines: -1, Replaced: replaced, Via: sp.modeOf(w, rel)}
	if fromRel != "" {
		c.From = filepath.Join(sp.root, filepath.FromSlash(fromRel))
	}
	if e != nil {
		c.Size, c.Hash, c.Lines = e.size, e.hashString(), int(e.lines)
	}
	switch {
	case e != nil && old != nil && e.lines >= 0 && old.lines >= 0:
		d := int(e.lines) - int(old.lines)
		c.LinesDelta = &d
	case e == nil && old != nil && old.lines >= 0:
		d := -int(old.lines)
		c.LinesDelta = &d
	case old == nil && e != nil && e.lines >= 0:
		d := int(e.lines)
		c.LinesDelta = &d
	}
	w.outbox = append(w.outbox, c)
}

// modeOf says how changes to rel are seen.
func (sp *space) modeOf(w *Watcher, rel string) Mode {
	if sp.mode == ModePoll || w.inPolled(sp, rel) {
		return ModePoll
	}
	return ModeNotify
}

func (w *Watcher) setFile(sp *space, rel string, e *entry) {
	if _, ok := sp.files[rel]; !ok {
		w.stats.files.Add(1)
		w.linkFile(sp, rel)
	}
	sp.files[rel] = e
}

// linkFile lists rel in its directory's files.
func (w *Watcher) linkFile(sp *space, rel string) {
	if d := sp.dirs[parentOf(rel)]; d != nil {
		if d.files == nil {
			d.files = map[string]struct{}{}
		}
		d.files[path.Base(rel)] = struct{}{}
	}
}

func (w *Watcher) delFile(sp *space, rel string) {
	if _, ok := sp.files[rel]; !ok {
		return
	}
	w.stats.files.Add(-1)
	delete(sp.files, rel)
	if d := sp.dirs[parentOf(rel)]; d != nil {
		delete(d.files, path.Base(rel))
	}
}

// inPolled reports whether rel is in a subtree polled for want of watches.
func (w *Watcher) inPolled(sp *space, rel string) bool {
	if len(sp.polled) == 0 {
		return false
	}
	for d := rel; ; d = parentOf(d) {
		if sp.polled[d] {
			return true
		}
		if d == "" {
			return false
		}
	}
}

// removeDir forgets the directory rel and everything below it; its files
// become pending (they resolve as deleted, or as renamed when they turn up
// elsewhere).
func (w *Watcher) removeDir(sp *space, rel string, now time.Time) {
	ds, ok := sp.dirs[rel]
	if !ok {
		return
	}
	for name := range ds.subdirs {
		w.removeDir(sp, path.Join(rel, name), now)
	}
	for name := range ds.files {
		w.markAlways(sp, path.Join(rel, name), now)
	}
	if ds.watched && w.fsw != nil {
		_ = w.fsw.Remove(filepath.Join(sp.root, filepath.FromSlash(rel)))
		w.stats.watches.Add(-1)
	}
	delete(sp.dirs, rel)
	if rel != "" {
		if p := sp.dirs[parentOf(rel)]; p != nil {
			delete(p.subdirs, path.Base(rel))
		}
	}
	if sp.polled[rel] {
		w.wsMu.Lock()
		delete(sp.polled, rel)
		w.wsMu.Unlock()
	}
	sp.rules.DropDir(rel)
}

// gitignoreChanged reloads dir's .gitignore; when the rules changed, the
// files they now ignore are forgotten and the ones they now show are
// learnt, silently: neither changed on disk.
func (w *Watcher) gitignoreChanged(sp *space, dir string, now time.Time) {
	if !sp.rules.LoadDir(dir) {
		return
	}
	for rel := range sp.files {
		if within(rel, dir) || dir == "" {
			if sp.rules.Ignored(rel, false) {
				w.delFile(sp, rel)
				delete(w.pending, pkey{sp, rel})
			}
		}
	}
	for rel := range sp.dirs {
		if rel != "" && (within(rel, dir) || dir == "") && sp.rules.Ignored(rel, true) {
			w.forgetDir(sp, rel)
		}
	}
	w.walk(sp, dir, scanLearn, now)
}

// forgetDir drops a directory that became ignored, without events.
func (w *Watcher) forgetDir(sp *space, rel string) {
	ds, ok := sp.dirs[rel]
	if !ok {
		return
	}
	for name := range ds.subdirs {
		w.forgetDir(sp, path.Join(rel, name))
	}
	for name := range ds.files {
		w.delFile(sp, path.Join(rel, name))
	}
	if ds.watched && w.fsw != nil {
		_ = w.fsw.Remove(filepath.Join(sp.root, filepath.FromSlash(rel)))
		w.stats.watches.Add(-1)
	}
	delete(sp.dirs, rel)
	if p := sp.dirs[parentOf(rel)]; p != nil {
		delete(p.subdirs, path.Base(rel))
	}
}

// scanMode says what a walk does with the files it finds.
type scanMode int

const (
	// scanBaseline learns every file without events (the initial scan).
	scanBaseline scanMode = iota
	// scanEmit marks every file pending: a new directory, whose files were
	// created before its watch could see them.
	scanEmit
	// scanCompare marks the files whose stat differs from what is known,
	// and the known ones that are gone (rescans, polling).
	scanCompare
	// scanLearn learns the files not known yet, without events (ignore
	// rules that now show them).
	scanLearn
)

// walk visits the directory rel and everything below it that is not
// ignored, watching each directory (notify mode) before listing it so no
// creation is missed.
func (w *Watcher) walk(sp *space, rel string, mode scanMode, now time.Time) {
	if mode == scanCompare {
		w.stats.rescans.Add(1)
	}
	type job struct {
		rel  string
		prev *entry
		o    observation
	}
	var jobs []job
	run := func() {
		if len(jobs) == 0 {
			return
		}
		parallel(len(jobs), func(i int) {
			j := &jobs[i]
			abs := filepath.Join(sp.root, filepath.FromSlash(j.rel))
			if mode == scanCompare {
				fi, err := os.Lstat(abs)
				if err != nil {
					j.o = observation{}
					return
				}
				j.o = observation{exists: true, isDir: fi.IsDir(), e: statEntry(fi)}
				return
			}
			j.o = observe(abs, j.prev, w.cfg.MaxHashSize)
		})
		for _, j := range jobs {
			switch mode {
			case scanBaseline, scanLearn:
				if j.o.exists && !j.o.isDir && j.o.err == nil {
					e := j.o.e
					w.setFile(sp, j.rel, &e)
				}
			case scanCompare:
				if j.prev == nil || !j.o.exists || !j.prev.sameStat(&j.o.e) {
					w.markOnce(sp, j.rel, now)
				}
			}
		}
		jobs = jobs[:0]
	}
	stack := []string{rel}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		abs := filepath.Join(sp.root, filepath.FromSlash(d))
		ds := sp.dirs[d]
		if ds == nil {
			ds = &dirState{}
			sp.dirs[d] = ds
			if d != "" {
				if p := sp.dirs[parentOf(d)]; p != nil {
					if p.subdirs == nil {
						p.subdirs = map[string]struct{}{}
					}
					p.subdirs[path.Base(d)] = struct{}{}
				}
			}
			sp.rules.LoadDir(d)
		}
		if !ds.watched && sp.mode == ModeNotify && w.fsw != nil && !w.inPolled(sp, d) {
			if err := w.addWatch(abs); err == nil {
				ds.watched = true
				w.stats.watches.Add(1)
			} else if errors.Is(err, syscall.ENOSPC) {
				w.watchLimit(sp, d)
			} else if !errors.Is(err, fs.ErrNotExist) {
				w.log.Warn("cannot watch a directory", "dir", abs, "err", err)
			}
		}
		ents, err := os.ReadDir(abs)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				if d == "" {
					w.rootGone(sp, now)
				} else {
					w.removeDir(sp, d, now)
				}
			} else {
				w.log.Warn("cannot list a directory", "dir", abs, "err", err)
			}
			continue
		}
		var seenFiles map[string]bool
		if mode == scanCompare {
			seenFiles = make(map[string]bool, len(ds.files))
		}
		seenDirs := map[string]bool{}
		for _, de := range ents {
			name := de.Name()
			crel := name
			if d != "" {
				crel = d + "/" + name
			}
			t := de.Type()
			if t.IsDir() {
				if sp.rules.IgnoredEntry(crel, true) {
					continue
				}
				seenDirs[name] = true
				stack = append(stack, crel)
				continue
			}
			if !t.IsRegular() && t&fs.ModeSymlink == 0 {
				continue
			}
			if sp.rules.IgnoredEntry(crel, false) {
				continue
			}
			prev := sp.files[crel]
			switch mode {
			case scanEmit:
				w.mark(sp, crel, now)
			case scanLearn:
				if prev == nil && w.pending[pkey{sp, crel}] == nil {
					jobs = append(jobs, job{rel: crel})
				}
			case scanCompare:
				seenFiles[name] = true
				jobs = append(jobs, job{rel: crel, prev: prev})
			default:
				jobs = append(jobs, job{rel: crel, prev: prev})
			}
			if len(jobs) >= 2048 {
				run()
			}
		}
		if mode == scanCompare {
			for name := range ds.files {
				if !seenFiles[name] {
					w.markOnce(sp, path.Join(d, name), now)
				}
			}
			for name := range ds.subdirs {
				if !seenDirs[name] {
					w.removeDir(sp, path.Join(d, name), now)
				}
			}
		}
	}
	run()
}

// addWatch adds an inotify watch (through the test hook when set).
func (w *Watcher) addWatch(abs string) error {
	if w.cfg.addWatch != nil {
		return w.cfg.addWatch(w.fsw.Add, abs)
	}
	return w.fsw.Add(abs)
}

// watchLimit polls the subtree rel because inotify ran out of watches,
// and says so once, clearly.
func (w *Watcher) watchLimit(sp *space, rel string) {
	w.wsMu.Lock()
	sp.polled[rel] = true
	w.wsMu.Unlock()
	abs := filepath.Join(sp.root, filepath.FromSlash(rel))
	if !w.limitNoted {
		w.limitNoted = true
		limit := inotifyLimit()
		if limit == "" {
			limit = "unknown"
		}
		w.log.Warn(fmt.Sprintf("inotify watch limit reached (fs.inotify.max_user_watches = %s): %s and the directories below it, and any others that hit the limit, are polled every %s instead; raise the limit with `sudo sysctl fs.inotify.max_user_watches=524288` (and in /etc/sysctl.d/ to keep it)", limit, abs, w.cfg.PollInterval),
			"max_user_watches", limit, "dir", abs)
	} else {
		w.log.Debug("inotify watch limit: polling a subtree", "dir", abs)
	}
}

// parallel runs fn(0..n-1) on a few goroutines: file I/O overlaps even on
// a couple of cores.
func parallel(n int, fn func(i int)) {
	workers := min(max(2*runtime.GOMAXPROCS(0), 4), 16, (n+15)/16)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}
