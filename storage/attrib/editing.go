package attrib

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/errclass"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
)

// Unsaved edits. An editor connection (one `coditect ide` process) marks a
// file it holds with unsaved human edits, and refreshes the mark while the
// buffer stays dirty; saving, reverting or closing the buffer clears it,
// and a mark whose editor vanished stops counting at its expiry. The files
// toolset's write path calls CheckNoUnsavedEdits in the transaction that
// decides the write, so an agent cannot overwrite what a human is typing.
//
// A mark is keyed by the file's absolute path and the editor's id, so two
// editors with the same file open each hold their own.

// Editing is a mark: a human has unsaved edits of a file in one editor.
type Editing struct {
	// Editor is the id of the editor connection that holds the mark.
	Editor string `json:"editor"`
	// User is the human at the editor.
	User string `json:"user"`
	// Client names the editor, as it introduced itself ("Visual Studio
	// Code 1.96"), for the messages that name it.
	Client string `json:"client,omitempty"`
	// Since is when the buffer turned dirty; At when the mark was last
	// refreshed; Expires when it stops counting without a refresh.
	Since   time.Time `json:"since"`
	At      time.Time `json:"at"`
	Expires time.Time `json:"expires"`
}

// Live reports whether the mark still counts at now.
func (e Editing) Live(now time.Time) bool { return now.Before(e.Expires) }

// DefaultEditingTTL is how long a mark counts without a refresh: an editor
// refreshes its marks well within it (ide refreshes every third of it), so
// only a vanished editor's marks lapse.
const DefaultEditingTTL = 2 * time.Minute

// ErrUnsavedEdits: the file has unsaved human edits in an editor.
var ErrUnsavedEdits = errclass.New(errclass.Conflict, "the file has unsaved edits in an editor")

// UnsavedEditsError names who holds unsaved edits of a file. It matches
// ErrUnsavedEdits with errors.Is.
type UnsavedEditsError struct {
	Path    string
	Editors []Editing
}

func (e *UnsavedEditsError) Error() string {
	var who []string
	for _, ed := range e.Editors {
		s := ed.User
		if ed.Client != "" {
			s += " in " + ed.Client
		}
		who = append(who, fmt.Sprintf("%s (editing since %s)", s, ed.Since.UTC().Format(time.RFC3339)))
	}
	return fmt.Sprintf("%s has unsaved edits by %s: writing it now would overwrite a human's work; wait until they save or close it, or ask them",
		e.Path, strings.Join(who, ", "))
}

// Is makes errors.Is(err, ErrUnsavedEdits) hold.
func (e *UnsavedEditsError) Is(target error) bool { return errors.Is(ErrUnsavedEdits, target) }

// MarkEditing records, inside the caller's transaction, that the editor
// connection ed.Editor holds unsaved edits of path for the scope's user,
// until ttl from now (DefaultEditingTTL when zero, at most MaxTTL). A
// refresh keeps the mark's Since.
func MarkEditing(tx kv.Tx, sc *tenant.Scope, path string, ed Editing, ttl time.Duration) error {
	if err := sc.CanWrite(); err != nil {
		return err
	}
	if ttl <= 0 {
		ttl = DefaultEditingTTL
	}
	if ttl > MaxTTL {
		return invalid("editing ttl %s exceeds %s", ttl, MaxTTL)
	}
	if err := agent.CheckText("editor", ed.Editor, keyspace.MaxIDSize, true); err != nil {
		return invalid("%v", err)
	}
	if err := agent.CheckText("client", ed.Client, agent.MaxModel, false); err != nil {
		return invalid("%v", err)
	}
	key, err := editingKey(sc, path, ed.Editor)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	ed.User = sc.Principal().User
	ed.At, ed.Expires = now, now.Add(ttl)
	if ed.Since.IsZero() || ed.Since.After(now) {
		ed.Since = now
	}
	if old, err := tx.Get(key); err == nil && old != nil {
		var prev Editing
		if json.Unmarshal(old, &prev) == nil && prev.Live(now) && prev.Since.Before(ed.Since) {
			ed.Since = prev.Since
		}
	} else if err != nil {
		return err
	}
	ed.Since = ed.Since.UTC()
	b, err := json.Marshal(ed)
	if err != nil {
		return err
	}
	tx.Set(key, b)
	return nil
}

// ClearEditing removes, inside the caller's transaction, the mark of the
// editor connection editor on path (the buffer was saved, reverted or
// closed). Clearing a mark that does not exist is not an error.
func ClearEditing(tx kv.Tx, sc *tenant.Scope, path, editor string) error {
	if err := sc.CanWrite(); err != nil {
		return err
	}
	key, err := editingKey(sc, path, editor)
	if err != nil {
		return err
	}
	tx.Clear(key)
	return nil
}

// Editors returns the marks on path that count at now, oldest first.
func Editors(tx kv.ReadTx, sc *tenant.Scope, path string, now time.Time) ([]Editing, error) {
	p, err := CleanPath(path)
	if err != nil {
		return nil, err
	}
	sub, err := sc.Space().FileEditors(p)
	if err != nil {
		return nil, invalid("%v", err)
	}
	begin, end := sub.Range()
	it := tx.GetRange(begin, end, kv.RangeOptions{})
	var out []Editing
	for it.Next() {
		var ed Editing
		if err := json.Unmarshal(it.KeyValue().Value, &ed); err != nil {
			continue // an unreadable mark is no mark
		}
		if ed.Live(now) {
			out = append(out, ed)
		}
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Since.Before(out[j-1].Since); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

// CheckNoUnsavedEdits returns an *UnsavedEditsError (matching
// ErrUnsavedEdits) when, at now, an editor holds unsaved human edits of
// path. A writer that is about to replace the file calls it inside the
// transaction that decides the write, so that the check and the decision
// commit together.
func CheckNoUnsavedEdits(tx kv.ReadTx, sc *tenant.Scope, path string, now time.Time) error {
	eds, err := Editors(tx, sc, path, now)
	if err != nil {
		return err
	}
	if len(eds) == 0 {
		return nil
	}
	p, _ := CleanPath(path)
	return &UnsavedEditsError{Path: p, Editors: eds}
}

// SweepEditing removes the marks expired at now and returns how many it
// removed. It works in transactions of bounded size.
func SweepEditing(ctx context.Context, sc *tenant.Scope, now time.Time) (int, error) {
	if err := sc.CanWrite(); err != nil {
		return 0, err
	}
	begin, end := sc.Space().FileEditings().Range()
	removed := 0
	for {
		var next []byte
		n := 0
		_, err := sc.Store().Update(ctx, func(tx kv.Tx) error {
			next, n = nil, 0
			it := tx.GetRange(begin, end, kv.RangeOptions{Limit: sweepPage})
			seen := 0
			for it.Next() {
				p := it.KeyValue()
				seen++
				next = append(append([]byte(nil), p.Key...), 0)
				var ed Editing
				if json.Unmarshal(p.Value, &ed) != nil || !ed.Live(now) {
					tx.Clear(p.Key)
					n++
				}
			}
			if err := it.Err(); err != nil {
				return err
			}
			if seen < sweepPage {
				next = nil
			}
			return nil
		})
		if err != nil {
			return removed, err
		}
		removed += n
		if next == nil {
			return removed, nil
		}
		begin = next
	}
}

func editingKey(sc *tenant.Scope, path, editor string) ([]byte, error) {
	p, err := CleanPath(path)
	if err != nil {
		return nil, err
	}
	key, err := sc.Space().FileEditing(p, editor)
	if err != nil {
		return nil, invalid("%v", err)
	}
	return key, nil
}
