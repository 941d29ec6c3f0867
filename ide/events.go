package ide

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.lsp.dev/protocol"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/lease"
)

// Server→client notifications. After initialized, the server follows the
// tenant's audit log (audit.Log.Tail: events from every process and host
// that use the store) and sends:
//
//   - coditect/event, the event itself, for every event of this workspace:
//     its file (project and relative path) is in a workspace folder, it
//     belongs to this editor's session, or it is a lease on a file the
//     human has open (lease resources and open files compared by their
//     project keys);
//   - window/showMessage (a warning) when an agent takes a lease on, writes,
//     or is refused writing, a file the human has open;
//   - window/showMessage (info) when an agent sends a message to all, and
//     when an agent or another person sends one to the editor's user
//     ("user:ID", the user's inbox), with its sender's name and subject.

// EventMethod is the notification that carries a live audit event.
const EventMethod = "coditect/event"

// feed is the connection's background work.
type feed struct {
	cancel context.CancelFunc
	once   sync.Once

	mu     sync.Mutex
	names  map[string]actor     // agent id -> who, for messages
	warned map[string]time.Time // path -> last warning, to not repeat one write's
}

func (f *feed) stop() { f.once.Do(f.cancel) }

// startBackground starts following the log and refreshing the marks.
func (s *server) startBackground() {
	ctx, cancel := context.WithCancel(s.ctx)
	f := &feed{cancel: cancel, names: map[string]actor{}, warned: map[string]time.Time{}}
	s.mu.Lock()
	if s.feed != nil || s.state != stateRunning {
		s.mu.Unlock()
		cancel()
		return
	}
	s.feed = f
	s.mu.Unlock()
	ttl := s.opts.EditingTTL
	if ttl <= 0 {
		ttl = attrib.DefaultEditingTTL
	}
	s.goBackground(func() {
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.refreshMarks(ctx); err != nil && ctx.Err() == nil {
					s.log.Warn("refreshing unsaved-edit marks", "error", err)
				}
			}
		}
	})
	s.goBackground(func() { s.watchAccess(ctx) })
	// The cursor is read here, on the dispatch loop: every event appended
	// after initialized (this client's own didOpen included) is delivered.
	cursor, err := s.sc.Log().Head(ctx)
	s.goBackground(func() { s.follow(ctx, f, cursor, err) })
}

// follow tails the log from cursor until ctx is done, resuming from its
// cursor after a store error (err is the error reading the first cursor).
func (s *server) follow(ctx context.Context, f *feed, cursor string, err error) {
	for ctx.Err() == nil {
		if err == nil {
			err = s.sc.Log().Tail(ctx, cursor, audit.Filter{}, func(ev audit.Event) error {
				cursor = ev.ID
				s.deliver(ctx, f, ev)
				return nil
			})
		}
		if ctx.Err() != nil || errors.Is(err, context.Canceled) {
			return
		}
		s.log.Warn("following the audit log", "error", err)
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if cursor == "" {
			cursor, err = s.sc.Log().Head(ctx)
		} else {
			err = nil
		}
	}
}

// deliver sends ev to the client when it concerns this workspace.
func (s *server) deliver(ctx context.Context, f *feed, ev audit.Event) {
	if refusal(s.authorize(ctx)) {
		return
	}
	if msg := s.broadcast(ctx, f, ev); msg != "" {
		s.notify("window/showMessage", protocol.ShowMessageParams{Type: protocol.MessageTypeInfo, Message: msg})
	}
	open := s.docs.openDocs()
	roots := s.workspaceRoots()
	sess := s.currentSession()

	file, isFile := eventFile(ev.Project, ev.Path)
	// An event recorded before projects names an absolute path.
	legacy := ev.Project == "" && filepath.IsAbs(ev.Path)
	key := ""
	if isFile {
		key = file.String()
	}
	openPath, dirty := "", false // the open file ev concerns, if any
	leaseOnOpen := false
	for _, d := range open {
		switch {
		case strings.HasPrefix(ev.Kind, "lease."):
			if d.key != "" && key != "" && lease.Match(key, d.key) {
				openPath, dirty, leaseOnOpen = d.path, d.dirty, true
			}
		case d.key != "" && d.key == key, legacy && d.path == ev.Path:
			openPath, dirty = d.path, d.dirty
		}
	}
	inWorkspace := false
	for _, r := range roots {
		if _, ok := relTo(r.path, ev.Path); (isFile && r.holds(file.Project, file.Rel)) || (legacy && ok) {
			inWorkspace = true
		}
	}
	if !inWorkspace && !leaseOnOpen && (sess == "" || ev.Session != sess) {
		return
	}
	s.notify(EventMethod, ev)
	if openPath == "" {
		return
	}
	if msg := s.warning(ctx, f, ev, openPath, dirty, leaseOnOpen); msg != "" {
		s.notify("window/showMessage", protocol.ShowMessageParams{Type: protocol.MessageTypeWarning, Message: msg})
	}
}

// warning is the message for an agent's action on an open file, "" when
// there is none.
func (s *server) warning(ctx context.Context, f *feed, ev audit.Event, path string, dirty, leaseOnOpen bool) string {
	who := f.who(ctx, s, ev)
	if who.human || who.unknown {
		return ""
	}
	base := filepath.Base(path)
	unsaved := ""
	if dirty {
		unsaved = " (you have unsaved edits in it)"
	}
	var msg string
	switch {
	case leaseOnOpen && ev.Kind == "lease.acquired":
		msg = fmt.Sprintf("Coditect: %s took a lease on %s, which you have open%s.", who.plain(), base, unsaved)
	case ev.Kind == "tool.called":
		tool, _ := ev.Attrs["tool"].(string)
		if tool != "fs_write" && tool != "fs_edit" {
			return ""
		}
		if _, proposed := ev.Attrs["review"]; proposed {
			return "" // nothing written yet: review.proposed tells the client
		}
		if outcome, _ := ev.Attrs["outcome"].(string); outcome != "ok" {
			if _, refused := ev.Attrs["unsaved_edits"]; refused {
				msg = fmt.Sprintf("Coditect: %s tried to write %s; it was refused because you have unsaved edits. Save or close the file to let the agent go on.", who.plain(), base)
			}
			break
		}
		msg = fmt.Sprintf("Coditect: %s wrote %s, which you have open%s.", who.plain(), base, unsaved)
	case ev.Kind == "file.modified" || ev.Kind == "file.deleted" || ev.Kind == "file.renamed":
		msg = fmt.Sprintf("Coditect: %s changed %s on disk, which you have open%s.", who.plain(), base, unsaved)
	}
	if msg == "" {
		return ""
	}
	// One write shows as tool.called then file.modified: warn once.
	f.mu.Lock()
	defer f.mu.Unlock()
	key := path + "\x00" + who.agent + "\x00" + strings.SplitN(ev.Kind, ".", 2)[0]
	if ev.Kind == "file.modified" || ev.Kind == "file.deleted" || ev.Kind == "file.renamed" {
		key = path + "\x00" + who.agent + "\x00tool"
	}
	if last, ok := f.warned[key]; ok && time.Since(last) < 30*time.Second && !strings.Contains(msg, "refused") {
		return ""
	}
	f.warned[key] = time.Now()
	return msg
}

// broadcast is the notice of an agent's message to all or of a message
// to the editor's user, "" for any other event.
func (s *server) broadcast(ctx context.Context, f *feed, ev audit.Event) string {
	if ev.Kind != "message.sent" {
		return ""
	}
	to, _ := ev.Attrs["to"].(string)
	whom := ""
	switch {
	case to == "all" && ev.Agent != "":
		whom = "everyone"
	case to == "user:"+s.sc.Principal().User && (ev.Agent != "" || ev.User != s.sc.Principal().User):
		whom = "you"
	default:
		return ""
	}
	who := f.who(ctx, s, ev)
	subject, _ := ev.Attrs["subject"].(string)
	if subject == "" {
		subject = "(no subject)"
	}
	return fmt.Sprintf("Coditect: %s messaged %s: %s", who.plain(), whom, textclip.Clip(subject, 120))
}

// who names ev's actor, caching agents' names.
func (f *feed) who(ctx context.Context, s *server, ev audit.Event) actor {
	id := ev.Agent
	if ev.Attribution != nil && ev.Attribution.AgentID != "" {
		id = ev.Attribution.AgentID
	}
	f.mu.Lock()
	a, ok := f.names[id]
	f.mu.Unlock()
	if ok && id != "" {
		return a
	}
	a = s.describe(ctx, ev)
	if id != "" && !a.human && !a.unknown {
		f.mu.Lock()
		f.names[id] = a
		f.mu.Unlock()
	}
	return a
}

// relTo returns p relative to root, '/'-separated, when p is root or below
// it.
func relTo(root, p string) (string, bool) {
	if p == "" || !filepath.IsAbs(p) {
		return "", false
	}
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	return filepath.ToSlash(rel), true
}
