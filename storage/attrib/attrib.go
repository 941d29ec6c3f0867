// Package attrib owns the evidence of who wrote a file: short-lived records
// that the writers Coditect sees directly leave behind, so that the watcher
// can attribute the change it later observes on disk (ARCHITECTURE.md §3).
// Three writers leave records:
//
//   - the MCP files toolset (fs_write, fs_edit, fs_move): "agent A wrote
//     content H to path P" — evidence 1, an agent, certain, when the
//     watcher sees H; and (fs_delete, fs_move) "agent A deleted path P" —
//     an agent, certain, when the watcher sees P deleted and no newer
//     record says otherwise;
//   - the IDE: "the human saved content H to path P" — evidence 2, a human,
//     strong, when the watcher sees H;
//   - any agent through a tool: "agent A is about to edit path P" —
//     evidence 3, an agent, probable, within the record's lifetime.
//
// A record is keyed by the file's absolute path and carries a content hash
// made by Hash or HashReader (SHA-256), the writer, the time and an expiry
// (DefaultTTL unless the caller sets one). Contract for writers: commit the
// record before the bytes reach the disk (or in the transaction that
// decides the write), so that the watcher, which reads records when it
// stores the change, finds it; a record for a write that then failed does
// no harm, because its hash matches nothing and it expires, but a deletion
// record of a change that failed is taken back (Withdraw).
//
// Records are bookkeeping for attribution, not history: the mutation that
// leads to a record (the tool call, the save) appends its own audit event.
// A path keeps at most MaxRecords unexpired records, newest first; Move
// makes a renamed file inherit its old path's records; Withdraw takes back
// the record of a change that failed; Sweep removes expired ones.
//
// Beside the evidence, the package keeps unsaved-edit marks (editing.go):
// "a human has unsaved edits of path P in editor E", which the IDE protocol
// sets and refreshes while a buffer is dirty and the files toolset checks
// (CheckNoUnsavedEdits) before it replaces a file.
//
// Every function takes a *tenant.Scope. This package imports storage/kv,
// storage/keyspace, storage/tenant and storage/agent; nothing above them.
package attrib

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/errclass"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
)

// Source says which writer left a record.
type Source string

// Sources, strongest evidence first.
const (
	// AgentWrite: an agent wrote the content through Coditect (fs_write,
	// fs_edit). Evidence 1.
	AgentWrite Source = "agent_write"
	// IDESave: the IDE saved the content for its human. Evidence 2.
	IDESave Source = "ide_save"
	// Declared: an agent declared, through a tool, that it is editing the
	// file. It carries no hash. Evidence 3.
	Declared Source = "declared"
	// AgentDelete: an agent deleted the file, or moved it away, through
	// Coditect (fs_delete, fs_move). It carries no hash. Evidence 1 for a
	// deletion of the path it was made for (not one it reached through a
	// rename, see Move).
	AgentDelete Source = "agent_delete"
)

// Record is one piece of evidence about a file.
type Record struct {
	Source Source `json:"source"`
	// Hash is the content written, as Hash returns it; empty for Declared
	// and AgentDelete.
	Hash  string `json:"hash,omitempty"`
	Agent string `json:"agent,omitempty"`
	Model string `json:"model,omitempty"`
	// User is the human (IDESave) or the user the agent acts for.
	User string `json:"user,omitempty"`
	// At is when the write was recorded; the zero value means now.
	At time.Time `json:"at"`
	// Expires is when the record stops counting; the zero value means
	// At + DefaultTTL.
	Expires time.Time `json:"expires"`
	// From is the path the record was made for, when the file was renamed
	// since (see Move); empty otherwise.
	From string `json:"from,omitempty"`
	// Session is the work session the write was made in, when the writer
	// named one: the watcher files the change it explains under it.
	Session string `json:"session,omitempty"`
}

// Limits.
const (
	// DefaultTTL is how long a record counts when the writer sets no
	// expiry: long enough for a watcher that is busy or restarting, short
	// enough that an old write does not explain a new change.
	DefaultTTL = 10 * time.Minute
	// MaxTTL is the longest a record may count.
	MaxTTL = 24 * time.Hour
	// MaxRecords is the most records a path keeps; older ones are dropped.
	MaxRecords = 16
	// MaxPath is the longest path, in bytes.
	MaxPath = keyspace.MaxResourceSize
)

// HashPrefix starts every content hash.
const HashPrefix = "sha256:"

// Errors, wrapped with detail; match them with errors.Is.
var (
	// ErrInvalid: an argument is missing or malformed.
	ErrInvalid = errclass.New(errclass.Invalid, "invalid file evidence")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("attrib: %w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Hash returns the content hash of b, "sha256:" and 64 hex digits: the one
// form every writer and the watcher use.
func Hash(b []byte) string {
	sum := sha256.Sum256(b)
	return HashPrefix + hex.EncodeToString(sum[:])
}

// HashReader returns the content hash of everything r yields.
func HashReader(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return FormatHash(h), nil
}

// FormatHash renders a SHA-256 hash.Hash's sum as Hash does.
func FormatHash(h hash.Hash) string {
	return HashPrefix + hex.EncodeToString(h.Sum(nil))
}

// CheckHash validates a content hash.
func CheckHash(h string) error {
	hexPart, ok := strings.CutPrefix(h, HashPrefix)
	if !ok || len(hexPart) != 2*sha256.Size {
		return invalid("hash %q: want %s and %d hex digits (attrib.Hash)", textclip.Clip(h, 80), HashPrefix, 2*sha256.Size)
	}
	if _, err := hex.DecodeString(hexPart); err != nil || strings.ToLower(hexPart) != hexPart {
		return invalid("hash %q: want lower-case hex digits", textclip.Clip(h, 80))
	}
	return nil
}

// CleanPath validates a file's path and returns it in the form records
// are keyed by: a project's path (keyspace.ProjectPath, "@<project>/<rel>",
// the form every writer uses, so that one file has one key on every
// machine) as it is, or an absolute path cleaned.
func CleanPath(p string) (string, error) {
	if p == "" {
		return "", invalid("path is required: the file's project path (@<project>/<rel>)")
	}
	if !utf8.ValidString(p) || strings.ContainsRune(p, 0) {
		return "", invalid("path is not valid UTF-8 text")
	}
	if strings.HasPrefix(p, "@") {
		if len(p) > MaxPath {
			return "", invalid("path of %d bytes exceeds %d", len(p), MaxPath)
		}
		return p, nil
	}
	if !filepath.IsAbs(p) {
		return "", invalid("path %q is not absolute", textclip.Clip(p, 80))
	}
	p = filepath.Clean(p)
	if len(p) > MaxPath {
		return "", invalid("path of %d bytes exceeds %d", len(p), MaxPath)
	}
	return p, nil
}

// normalize checks r and fills its defaults at now.
func (r Record) normalize(now time.Time) (Record, error) {
	switch r.Source {
	case AgentWrite, IDESave:
		if err := CheckHash(r.Hash); err != nil {
			return r, err
		}
	case Declared:
		if r.Hash != "" {
			if err := CheckHash(r.Hash); err != nil {
				return r, err
			}
		}
	case AgentDelete:
		if r.Hash != "" {
			return r, invalid("%s carries no hash", r.Source)
		}
	default:
		return r, invalid("source %q: want %s, %s, %s or %s", r.Source, AgentWrite, IDESave, Declared, AgentDelete)
	}
	if (r.Source == AgentWrite || r.Source == Declared || r.Source == AgentDelete) && r.Agent == "" {
		return r, invalid("%s needs the agent's id", r.Source)
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"agent", r.Agent, keyspace.MaxIDSize}, {"model", r.Model, agent.MaxModel}, {"user", r.User, keyspace.MaxIDSize}, {"from", r.From, MaxPath}} {
		if err := agent.CheckText(f.name, f.v, f.max, false); err != nil {
			return r, invalid("%v", err)
		}
	}
	if r.At.IsZero() {
		r.At = now
	}
	r.At = r.At.UTC()
	if r.Expires.IsZero() {
		r.Expires = r.At.Add(DefaultTTL)
	}
	r.Expires = r.Expires.UTC()
	if !r.Expires.After(r.At) || r.Expires.Sub(r.At) > MaxTTL {
		return r, invalid("expiry %s: want after %s and within %s of it", r.Expires.Format(time.RFC3339), r.At.Format(time.RFC3339), MaxTTL)
	}
	return r, nil
}

// Live reports whether the record still counts at now.
func (r Record) Live(now time.Time) bool { return now.Before(r.Expires) }

// stored is the value of a path's key.
type stored struct {
	Records []Record `json:"r"`
}

func load(tx kv.ReadTx, key []byte) ([]Record, error) {
	v, err := tx.Get(key)
	if err != nil || v == nil {
		return nil, err
	}
	var s stored
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, fmt.Errorf("attrib: corrupt record at %s: %w", kv.DisplayKey(key), err)
	}
	return s.Records, nil
}

// save writes the live records of rs, newest first, at most MaxRecords;
// it clears the key when none is left.
func save(tx kv.Tx, key []byte, rs []Record, now time.Time) error {
	live := rs[:0:0]
	for _, r := range rs {
		if r.Live(now) {
			live = append(live, r)
		}
	}
	sortNewest(live)
	if len(live) > MaxRecords {
		live = live[:MaxRecords]
	}
	if len(live) == 0 {
		tx.Clear(key)
		return nil
	}
	b, err := json.Marshal(stored{live})
	if err != nil {
		return err
	}
	tx.Set(key, b)
	return nil
}

func sortNewest(rs []Record) {
	// Insertion sort: a handful of records, mostly in order already.
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].At.After(rs[j-1].At); j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

func keyOf(sc *tenant.Scope, p string) (string, []byte, error) {
	p, err := CleanPath(p)
	if err != nil {
		return "", nil, err
	}
	key, err := sc.Space().FileEvidence(p)
	if err != nil {
		return "", nil, invalid("%v", err)
	}
	return p, key, nil
}

// Put records r about the file at path inside the caller's transaction,
// so that a write and its evidence commit together. The scope must be
// allowed to write, and a scope bound to an agent may record only for that
// agent. At defaults to time.Now and Expires to At + DefaultTTL.
func Put(tx kv.Tx, sc *tenant.Scope, path string, r Record) error {
	if err := sc.CanWrite(); err != nil {
		return err
	}
	if r.Agent != "" {
		if err := agent.CheckActing(sc, r.Agent); err != nil {
			return err
		}
	}
	if r.User == "" {
		r.User = sc.Principal().User
	}
	now := time.Now().UTC()
	r, err := r.normalize(now)
	if err != nil {
		return err
	}
	_, key, err := keyOf(sc, path)
	if err != nil {
		return err
	}
	rs, err := load(tx, key)
	if err != nil {
		return err
	}
	return save(tx, key, append([]Record{r}, rs...), now)
}

// RecordAgentWrite records, inside the caller's transaction, that agentID
// (running model) writes the content whose Hash is hash to path in session
// (optional): evidence 1. Commit it before the bytes reach the disk.
func RecordAgentWrite(tx kv.Tx, sc *tenant.Scope, path, hash, agentID, model, session string) error {
	return Put(tx, sc, path, Record{Source: AgentWrite, Hash: hash, Agent: agentID, Model: model, Session: session})
}

// RecordAgentDelete records, inside the caller's transaction, that
// agentID (running model) deletes the file at path, or moves it away, in
// session (optional). Commit it before the file leaves the disk.
func RecordAgentDelete(tx kv.Tx, sc *tenant.Scope, path, agentID, model, session string) error {
	return Put(tx, sc, path, Record{Source: AgentDelete, Agent: agentID, Model: model, Session: session})
}

// RecordIDESave records, inside the caller's transaction, that the IDE
// saves the content whose Hash is hash to path for the scope's user, in
// session (optional):
// evidence 2. Commit it before the bytes reach the disk (the IDE knows the
// text when it is about to save).
func RecordIDESave(tx kv.Tx, sc *tenant.Scope, path, hash, session string) error {
	return Put(tx, sc, path, Record{Source: IDESave, Hash: hash, Session: session})
}

// RecordDeclaredEdit records, inside the caller's transaction, that
// agentID declared it is editing path: evidence 3 for the record's
// lifetime (ttl, DefaultTTL when zero).
func RecordDeclaredEdit(tx kv.Tx, sc *tenant.Scope, path, agentID, model string, ttl time.Duration) error {
	r := Record{Source: Declared, Agent: agentID, Model: model}
	if ttl > 0 {
		r.At = time.Now().UTC()
		r.Expires = r.At.Add(ttl)
	}
	return Put(tx, sc, path, r)
}

// Withdraw removes, inside the caller's transaction, the newest record of
// source that agentID left about path: the evidence of a change that
// failed after its record committed, which would otherwise explain
// another's change (a deletion record, someone else's deletion of the
// file). It does nothing when there is none.
func Withdraw(tx kv.Tx, sc *tenant.Scope, path string, source Source, agentID string) error {
	if err := sc.CanWrite(); err != nil {
		return err
	}
	if err := agent.CheckActing(sc, agentID); err != nil {
		return err
	}
	_, key, err := keyOf(sc, path)
	if err != nil {
		return err
	}
	rs, err := load(tx, key)
	if err != nil {
		return err
	}
	sortNewest(rs)
	for i, r := range rs {
		if r.Source == source && r.Agent == agentID {
			return save(tx, key, append(rs[:i:i], rs[i+1:]...), time.Now().UTC())
		}
	}
	return nil
}

// Add records r about path in a transaction of its own.
func Add(ctx context.Context, sc *tenant.Scope, path string, r Record) error {
	_, err := sc.Store().Update(ctx, func(tx kv.Tx) error { return Put(tx, sc, path, r) })
	return err
}

// Lookup returns the records about path that count at now, newest first.
func Lookup(tx kv.ReadTx, sc *tenant.Scope, path string, now time.Time) ([]Record, error) {
	_, key, err := keyOf(sc, path)
	if err != nil {
		return nil, err
	}
	rs, err := load(tx, key)
	if err != nil {
		return nil, err
	}
	live := rs[:0]
	for _, r := range rs {
		if r.Live(now) {
			live = append(live, r)
		}
	}
	sortNewest(live)
	return live, nil
}

// Get returns the records about path that count now, in a transaction of
// its own.
func Get(ctx context.Context, sc *tenant.Scope, path string) ([]Record, error) {
	var out []Record
	err := sc.Store().View(ctx, func(tx kv.ReadTx) error {
		var err error
		out, err = Lookup(tx, sc, path, time.Now())
		return err
	})
	return out, err
}

// Move makes the file now at to inherit the records of from (a rename),
// inside the caller's transaction: from's live records are added to to's,
// each remembering the path it was made for, and from's are removed.
func Move(tx kv.Tx, sc *tenant.Scope, from, to string, now time.Time) error {
	if err := sc.CanWrite(); err != nil {
		return err
	}
	from, fromKey, err := keyOf(sc, from)
	if err != nil {
		return err
	}
	_, toKey, err := keyOf(sc, to)
	if err != nil {
		return err
	}
	if bytes.Equal(fromKey, toKey) {
		return nil
	}
	moved, err := load(tx, fromKey)
	if err != nil || len(moved) == 0 {
		return err
	}
	for i := range moved {
		if moved[i].From == "" {
			moved[i].From = from
		}
	}
	existing, err := load(tx, toKey)
	if err != nil {
		return err
	}
	tx.Clear(fromKey)
	return save(tx, toKey, append(moved, existing...), now)
}

// sweepPage is how many paths one sweep transaction examines.
const sweepPage = 500

// Sweep removes every record expired at now and returns how many paths
// lost all their records. It works in transactions of bounded size.
func Sweep(ctx context.Context, sc *tenant.Scope, now time.Time) (int, error) {
	if err := sc.CanWrite(); err != nil {
		return 0, err
	}
	begin, end := sc.Space().FileEvidences().Range()
	cleared := 0
	for {
		var next []byte
		n := 0
		_, err := sc.Store().Update(ctx, func(tx kv.Tx) error {
			next, n = nil, 0
			it := tx.GetRange(begin, end, kv.RangeOptions{Limit: sweepPage})
			var seen int
			for it.Next() {
				p := it.KeyValue()
				seen++
				next = append(bytes.Clone(p.Key), 0)
				var s stored
				if err := json.Unmarshal(p.Value, &s); err != nil {
					tx.Clear(p.Key) // unreadable evidence is no evidence
					n++
					continue
				}
				live := 0
				for _, r := range s.Records {
					if r.Live(now) {
						live++
					}
				}
				if live == len(s.Records) {
					continue
				}
				if live == 0 {
					n++
				}
				if err := save(tx, p.Key, s.Records, now); err != nil {
					return err
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
			return cleared, err
		}
		cleared += n
		if next == nil {
			return cleared, nil
		}
		begin = next
	}
}
