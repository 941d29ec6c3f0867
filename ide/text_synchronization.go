package ide

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"go.lsp.dev/protocol"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/attrib"
	"github.com/coditect/coditect/storage/audit"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/project"
)

// Text synchronisation (incremental). The server keeps every open
// document's text and whether it differs from the file on disk (dirty).
// For a document in a project (project.go) it tells the store, keyed by
// the file's project key:
//
//   - when a buffer turns dirty: "the human is editing F (unsaved)", an
//     attrib mark refreshed while it stays dirty and cleared when it is
//     saved, reverted or closed, or when the connection ends; the files
//     toolset refuses to overwrite F meanwhile;
//   - on willSave (before the bytes reach the disk) and didSave: "the
//     human saved F with hash H in the editor's session"
//     (attrib.RecordIDESave), the watcher's evidence 2, which files the
//     change under that session, when the save is the human's (see
//     Provenance);
//   - ide.opened, ide.edited, ide.saved and ide.closed audit events.

// Provenance says where a document's current text came from, as gopls's
// ModificationSource does. Attribution needs it: only a human's save is
// evidence of a human change.
type Provenance int

const (
	// FromDidOpen: the text the client opened the document with.
	FromDidOpen Provenance = iota
	// FromDidChange: an edit the client reported, with no sign of a human.
	FromDidChange
	// FromKeyboard: an edit after the client's human-activity signal
	// (coditect/activity): the human typed it.
	FromKeyboard
	// FromDisk: an edit that made the text equal to the file on disk: the
	// editor reloaded a file changed outside it.
	FromDisk
	// FromDidSave: the text was just saved.
	FromDidSave
)

func (p Provenance) String() string {
	switch p {
	case FromDidOpen:
		return "didOpen"
	case FromDidChange:
		return "didChange"
	case FromKeyboard:
		return "keyboard"
	case FromDisk:
		return "disk"
	case FromDidSave:
		return "didSave"
	}
	return fmt.Sprintf("Provenance(%d)", int(p))
}

// activityMethod is the companion extension's human-activity signal.
const activityMethod = "coditect/activity"

// document is an open document.
type document struct {
	uri  string
	path string // real absolute path; "" for a document that is no file
	// file is the document's project file, when tracked: its path lies in
	// a project of the tenant's. Nothing is recorded about another.
	file    project.File
	tracked bool
	version int32
	buf     *buffer
	// disk is the file's content as last read or saved; nil when the file
	// does not exist (then any text is unsaved).
	disk []byte
	// dirty: the text differs from disk. since: when it turned dirty.
	dirty bool
	since time.Time
	// marked: this connection's unsaved-edit mark is in the store.
	marked bool
	// keys: human activity since the last save.
	keys bool
	// recorded is the hash of the last IDE save recorded (willSave).
	recorded string
	last     Provenance
}

// documents are a connection's open documents.
type documents struct {
	s  *server
	mu sync.Mutex
	m  map[string]*document
}

func newDocuments(s *server) *documents {
	return &documents{s: s, m: map[string]*document{}}
}

// openDoc is an open file document as the feed and the status see it.
type openDoc struct {
	path  string
	key   string // the project file's key; "" when untracked
	dirty bool
}

// openDocs returns the open file documents.
func (d *documents) openDocs() []openDoc {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]openDoc, 0, len(d.m))
	for _, doc := range d.m {
		if doc.path == "" {
			continue
		}
		o := openDoc{path: doc.path, dirty: doc.dirty}
		if doc.tracked {
			o.key = doc.file.String()
		}
		out = append(out, o)
	}
	return out
}

type textDocumentItem struct {
	URI     string `json:"uri"`
	Version int32  `json:"version"`
	Text    string `json:"text"`
}

type versionedID struct {
	URI     string `json:"uri"`
	Version *int32 `json:"version"`
}

// contentChange is protocol.TextDocumentContentChangeEvent with a
// pointer range: v0.12.0's value Range cannot tell a full-text change
// from an insertion at 0:0.
type contentChange struct {
	Range *protocol.Range `json:"range"`
	Text  string          `json:"text"`
}

func (s *server) didOpen(ctx context.Context, params json.RawMessage) error {
	var p struct {
		TextDocument textDocumentItem `json:"textDocument"`
	}
	if err := decode(params, &p); err != nil {
		return err
	}
	if p.TextDocument.URI == "" {
		return invalidParams("textDocument.uri is required")
	}
	doc := &document{uri: p.TextDocument.URI, version: p.TextDocument.Version, buf: newBuffer([]byte(p.TextDocument.Text)), last: FromDidOpen}
	if path, err := uriPath(doc.uri); err == nil {
		doc.path = path
		doc.disk = readDisk(path)
		f, ok, err := s.place(ctx, path)
		switch {
		case err != nil:
			s.log.Warn("cannot resolve a document's project: not tracked", "path", path, "error", err)
		case !ok:
			s.log.Info("a document outside every project of the tenant: not tracked", "path", path)
		}
		doc.file, doc.tracked = f, ok
	}
	d := s.docs
	d.mu.Lock()
	if _, dup := d.m[doc.uri]; dup {
		s.log.Warn("didOpen of an open document: replacing it", "uri", doc.uri)
	}
	d.m[doc.uri] = doc
	d.mu.Unlock()
	if doc.path == "" {
		return nil
	}
	var ev *audit.Event
	if doc.tracked {
		ev = s.event("ide.opened", doc, "opened "+filepath.Base(doc.path), nil)
	}
	return s.settle(ctx, doc, ev)
}

func (s *server) didChange(ctx context.Context, params json.RawMessage) error {
	var p struct {
		TextDocument   versionedID     `json:"textDocument"`
		ContentChanges []contentChange `json:"contentChanges"`
	}
	if err := decode(params, &p); err != nil {
		return err
	}
	d := s.docs
	d.mu.Lock()
	doc, ok := d.m[p.TextDocument.URI]
	if !ok {
		d.mu.Unlock()
		return fmt.Errorf("didChange of %s, which is not open", textclip.Clip(p.TextDocument.URI, 120))
	}
	if v := p.TextDocument.Version; v != nil {
		if *v <= doc.version {
			s.log.Warn("didChange version does not increase", "uri", doc.uri, "have", doc.version, "got", *v)
		}
		doc.version = *v
	}
	var err error
	for _, ch := range p.ContentChanges {
		if err = doc.buf.apply(ch.Range, ch.Text); err != nil {
			break
		}
	}
	doc.last = FromDidChange
	if doc.keys {
		doc.last = FromKeyboard
	}
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("didChange of %s: %w", doc.uri, err)
	}
	if doc.path == "" {
		return nil
	}
	return s.settle(ctx, doc, nil)
}

// settle recomputes doc's dirty state after a change and tells the store
// of a transition (with ev, an event to append in the same transaction)
// when doc is tracked.
func (s *server) settle(ctx context.Context, doc *document, ev *audit.Event) error {
	d := s.docs
	d.mu.Lock()
	was := doc.dirty
	doc.dirty = doc.disk == nil && len(doc.buf.text) > 0 || doc.disk != nil && !bytes.Equal(doc.buf.text, doc.disk)
	if doc.dirty && !was {
		// The file may have changed on disk: an editor reloading it sends
		// the new text as a change.
		if disk := readDisk(doc.path); disk != nil && bytes.Equal(disk, doc.buf.text) {
			doc.disk, doc.dirty, doc.last = disk, false, FromDisk
		}
	}
	mark := doc.tracked && doc.dirty && !doc.marked
	clear := !doc.dirty && doc.marked
	if doc.dirty && !was {
		doc.since = time.Now()
	}
	path, key, since, prov := doc.path, doc.file.String(), doc.since, doc.last
	d.mu.Unlock()
	var evs []*audit.Event
	if ev != nil {
		evs = append(evs, ev)
	}
	if mark {
		evs = append(evs, s.event("ide.edited", doc, "editing "+filepath.Base(path)+" (unsaved)", map[string]any{"provenance": prov.String()}))
	}
	if !mark && !clear && len(evs) == 0 {
		return nil
	}
	err := s.update(ctx, func(tx kv.Tx, w *audit.Writer) error {
		switch {
		case mark:
			if err := attrib.MarkEditing(tx, s.sc, key, s.editing(since), s.opts.EditingTTL); err != nil {
				return err
			}
		case clear:
			if err := attrib.ClearEditing(tx, s.sc, key, s.opts.Editor); err != nil {
				return err
			}
		}
		for _, ev := range evs {
			if _, err := w.Append(*ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.mu.Lock()
	switch {
	case mark:
		doc.marked = true
	case clear:
		doc.marked = false
	}
	d.mu.Unlock()
	return nil
}

// editing is this connection's mark.
func (s *server) editing(since time.Time) attrib.Editing {
	s.mu.Lock()
	defer s.mu.Unlock()
	return attrib.Editing{Editor: s.opts.Editor, Client: s.client, Since: since}
}

// activity records the human-activity signal for a document: the next
// save of it is the human's.
func (s *server) activity(_ context.Context, params json.RawMessage) error {
	var p struct {
		TextDocument struct {
			URI string `json:"uri"`
		} `json:"textDocument"`
	}
	if err := decode(params, &p); err != nil {
		return err
	}
	d := s.docs
	d.mu.Lock()
	defer d.mu.Unlock()
	if doc, ok := d.m[p.TextDocument.URI]; ok {
		doc.keys = true
	}
	return nil
}

// humanSave reports whether a save of doc is the human's: with a client
// that sends the activity signal, only after activity; with any other
// client, always (an LSP client's saves are its human's).
func (s *server) humanSave(doc *document) bool {
	s.mu.Lock()
	signals := s.signals
	s.mu.Unlock()
	return !signals || doc.keys
}

func (s *server) willSave(ctx context.Context, params json.RawMessage) error {
	var p struct {
		TextDocument struct {
			URI string `json:"uri"`
		} `json:"textDocument"`
	}
	if err := decode(params, &p); err != nil {
		return err
	}
	d := s.docs
	d.mu.Lock()
	doc, ok := d.m[p.TextDocument.URI]
	if !ok || !doc.tracked || !s.humanSave(doc) {
		d.mu.Unlock()
		return nil
	}
	hash, key := attrib.Hash(doc.buf.text), doc.file.String()
	d.mu.Unlock()
	session := s.currentSession()
	// Before the bytes reach the disk, as attrib's contract asks.
	if err := s.update(ctx, func(tx kv.Tx, _ *audit.Writer) error {
		return attrib.RecordIDESave(tx, s.sc, key, hash, session)
	}); err != nil {
		return err
	}
	d.mu.Lock()
	doc.recorded = hash
	d.mu.Unlock()
	return nil
}

func (s *server) didSave(ctx context.Context, params json.RawMessage) error {
	var p struct {
		TextDocument struct {
			URI string `json:"uri"`
		} `json:"textDocument"`
		Text *string `json:"text"`
	}
	if err := decode(params, &p); err != nil {
		return err
	}
	d := s.docs
	d.mu.Lock()
	doc, ok := d.m[p.TextDocument.URI]
	if !ok || doc.path == "" {
		d.mu.Unlock()
		return nil
	}
	if !doc.tracked {
		doc.disk, doc.dirty, doc.keys, doc.last = bytes.Clone(doc.buf.text), false, false, FromDidSave
		d.mu.Unlock()
		return nil
	}
	if p.Text != nil && *p.Text != string(doc.buf.text) {
		s.log.Warn("didSave text differs from the tracked buffer: resynchronising", "uri", doc.uri)
		doc.buf = newBuffer([]byte(*p.Text))
	}
	text := doc.buf.text
	human := s.humanSave(doc)
	hash, path, key, recorded, marked := attrib.Hash(text), doc.path, doc.file.String(), doc.recorded, doc.marked
	doc.disk = bytes.Clone(text)
	doc.dirty, doc.keys, doc.recorded, doc.last = false, false, "", FromDidSave
	d.mu.Unlock()
	attrs := map[string]any{"hash": hash, "bytes": len(text), "human": human}
	summary := "saved " + filepath.Base(path)
	if !human {
		summary += " (no human activity before the save)"
	}
	ev := s.event("ide.saved", doc, summary, attrs)
	err := s.update(ctx, func(tx kv.Tx, w *audit.Writer) error {
		if human && recorded != hash {
			if err := attrib.RecordIDESave(tx, s.sc, key, hash, ev.Session); err != nil {
				return err
			}
		}
		if marked {
			if err := attrib.ClearEditing(tx, s.sc, key, s.opts.Editor); err != nil {
				return err
			}
		}
		_, err := w.Append(*ev)
		return err
	})
	if err != nil {
		return err
	}
	d.mu.Lock()
	doc.marked = false
	d.mu.Unlock()
	return nil
}

func (s *server) didClose(ctx context.Context, params json.RawMessage) error {
	var p struct {
		TextDocument struct {
			URI string `json:"uri"`
		} `json:"textDocument"`
	}
	if err := decode(params, &p); err != nil {
		return err
	}
	d := s.docs
	d.mu.Lock()
	doc, ok := d.m[p.TextDocument.URI]
	delete(d.m, p.TextDocument.URI)
	d.mu.Unlock()
	if !ok || !doc.tracked {
		return nil
	}
	attrs := map[string]any{}
	if doc.dirty {
		attrs["discarded_unsaved"] = true
	}
	ev := s.event("ide.closed", doc, "closed "+filepath.Base(doc.path), attrs)
	return s.update(ctx, func(tx kv.Tx, w *audit.Writer) error {
		if doc.marked {
			if err := attrib.ClearEditing(tx, s.sc, doc.file.String(), s.opts.Editor); err != nil {
				return err
			}
		}
		_, err := w.Append(*ev)
		return err
	})
}

// refreshMarks renews the marks of dirty documents before they lapse.
func (s *server) refreshMarks(ctx context.Context) error {
	type mark struct {
		key   string
		since time.Time
	}
	d := s.docs
	d.mu.Lock()
	var marks []mark
	for _, doc := range d.m {
		if doc.marked && doc.dirty {
			marks = append(marks, mark{doc.file.String(), doc.since})
		}
	}
	d.mu.Unlock()
	if len(marks) == 0 {
		return nil
	}
	if err := s.authorize(ctx); err != nil {
		if refusal(err) {
			return nil // refused: the marks lapse at their expiry
		}
		return err
	}
	sort.Slice(marks, func(i, j int) bool { return marks[i].key < marks[j].key })
	return s.update(ctx, func(tx kv.Tx, _ *audit.Writer) error {
		for _, m := range marks {
			if err := attrib.MarkEditing(tx, s.sc, m.key, s.editing(m.since), s.opts.EditingTTL); err != nil {
				return err
			}
		}
		return nil
	})
}

// releaseAll clears every mark of the connection (shutdown, exit, the
// client vanishing). Documents stay tracked: a client may still close
// them.
func (d *documents) releaseAll(ctx context.Context) error {
	d.mu.Lock()
	var paths []string
	for _, doc := range d.m {
		if doc.marked {
			paths = append(paths, doc.file.String())
			doc.marked = false
		}
	}
	d.mu.Unlock()
	if len(paths) == 0 {
		return nil
	}
	return d.s.update(ctx, func(tx kv.Tx, _ *audit.Writer) error {
		for _, p := range paths {
			if err := attrib.ClearEditing(tx, d.s.sc, p, d.s.opts.Editor); err != nil {
				return err
			}
		}
		return nil
	})
}

// update runs fn in a store transaction with the scope's audit writer.
func (s *server) update(ctx context.Context, fn func(tx kv.Tx, w *audit.Writer) error) error {
	_, err := s.sc.Store().Update(ctx, func(tx kv.Tx) error {
		return fn(tx, s.sc.Log().Writer(tx))
	})
	return err
}

// event returns an audit event of the human at the editor about a tracked
// document: its project and relative path, the absolute path in attrs.
func (s *server) event(kind string, doc *document, summary string, attrs map[string]any) *audit.Event {
	ev := s.sc.Event(kind, summary)
	ev.Project, ev.Path = doc.file.Project, doc.file.Rel
	s.mu.Lock()
	ev.Session = s.session
	client := s.client
	s.mu.Unlock()
	if attrs == nil {
		attrs = map[string]any{}
	}
	attrs["client"] = client
	attrs["editor"] = s.opts.Editor
	attrs["abs"] = doc.path
	ev.Attrs = attrs
	if ev.Attribution == nil {
		ev.Attribution = &audit.Attribution{Actor: audit.ActorHuman, Evidence: "ide", Confidence: 1}
	}
	return &ev
}

// currentSession is the work session the editor is in, "" when none.
func (s *server) currentSession() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.session
}

// readDisk returns a file's content, nil when it cannot be read.
func readDisk(path string) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, DefaultMaxMessage+1))
	if err != nil || len(b) > DefaultMaxMessage {
		return nil
	}
	return b
}
