package tools

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/coditect/coditect/storage/audit"
)

// A spool is an AuditQueue's write-ahead file: the tool.called records of
// read-only calls are written to it (one write(2), no fsync) before the
// call is answered, and committed to the store later, in batches, each
// transaction raising the spool's mark in the tenant's log
// (audit.Log.AppendSpool). A record written to the file survives a crash
// of the process — the kernel holds it — so a read's record is not lost
// when the process is SIGKILLed, at the cost of a write instead of a
// commit in the answer's path. The next process to use the spool
// directory appends what the dead one had not committed (RecoverSpools),
// exactly once thanks to the marks. A power failure can lose what the
// kernel had not written out, as it can lose relaxed commits.
//
// The file is named <id>.spool, id being the host, the pid and a random
// suffix, and is locked (flock) while its process lives — from before it
// bears that name (createLockedSpool) — so recovery, which takes a spool it
// can lock for dead, never touches a live process's spool. It is emptied
// whenever everything written to it is committed, and removed at a clean
// shutdown.
type spool struct {
	id     string
	path   string
	logger *slog.Logger

	mu          sync.Mutex
	f           *os.File
	seq         uint64
	outstanding int
	logs        map[string]*audit.Log // tenants whose logs hold a mark of this spool
	broken      bool                  // a torn line precedes records still needed: write nothing until the file is emptied
	failing     bool                  // the last write failed (logged once)
	buf         []byte                // the line being written, kept for the next one
	enc         *spoolEncoder
}

// spoolLine is how a spoolRecord is written: the event encoded in place.
type spoolLine struct {
	Seq    uint64       `json:"seq"`
	Tenant string       `json:"tenant"`
	Key    string       `json:"key"`
	Event  *audit.Event `json:"event"`
}

// maxSpoolBuf bounds the buffer a spool keeps between writes.
const maxSpoolBuf = 64 << 10

// spoolEncoder encodes events onto the end of buf.
type spoolEncoder struct {
	buf []byte
	e   *json.Encoder
}

func newSpoolEncoder() *spoolEncoder {
	se := &spoolEncoder{}
	se.e = json.NewEncoder(se)
	return se
}

func (se *spoolEncoder) Write(p []byte) (int, error) {
	se.buf = append(se.buf, p...)
	return len(p), nil
}

// spoolRecord is one line of a spool file.
type spoolRecord struct {
	Seq    uint64 `json:"seq"`
	Tenant string `json:"tenant"`
	// Key is the event's idempotency key (audit.Event.IdempotencyKey,
	// which the event's own JSON leaves out), if it has one; recovery
	// appends the record with it. The queue's records have none: the
	// spool's mark makes their appends exactly-once.
	Key   string          `json:"key,omitempty"`
	Event json.RawMessage `json:"event"`
}

const spoolExt = ".spool"

// openSpool creates this process's spool in dir.
func openSpool(dir string, logger *slog.Logger) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit spool: %w", err)
	}
	var err error
	for range spoolCreateTries {
		id := newSpoolID()
		var f *os.File
		f, err = createLockedSpool(dir, id)
		if err == nil {
			return &spool{id: id, path: filepath.Join(dir, id+spoolExt), logger: logger, f: f, logs: map[string]*audit.Log{}, enc: newSpoolEncoder()}, nil
		}
		if !errors.Is(err, errSpoolTaken) {
			return nil, err
		}
	}
	return nil, err
}

// spoolCreateTries bounds the fresh names openSpool tries when recoveries
// running beside it take its new files (each try loses only to a recovery
// that opened that very file).
const spoolCreateTries = 8

// newSpoolExt names a spool file being created: created and locked under
// <id>.new, it becomes <id>.spool by a rename, so that a spool is never
// seen unlocked (see createLockedSpool).
const newSpoolExt = ".new"

// errSpoolTaken: a recovery took the new file before its creator locked
// it; the creator tries another name.
var errSpoolTaken = errors.New("audit spool: new file taken by a recovery")

// newSpoolID returns a spool id: the host, the pid and a random suffix.
func newSpoolID() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, host)
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(rnd[:]))
}

// createLockedSpool creates the spool file <id>.spool in dir, locked by the
// returned descriptor from before it bears that name: recovery takes a
// spool whose lock it gets for dead, and a file created under the name and
// locked after could be taken in between — removed, its owner then
// spooling records into a deleted file.
//
// The file is created and locked as <id>.new, then renamed. Recovery also
// removes .new files it can lock (left by a process killed in between, so
// empty); one that takes ours does so before we lock it or rename it, and
// the rename then fails — nothing was written to it. The lock belongs to
// the open file description, so the rename keeps it.
func createLockedSpool(dir, id string) (*os.File, error) {
	tmp, path := filepath.Join(dir, id+newSpoolExt), filepath.Join(dir, id+spoolExt)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit spool: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errSpoolTaken // the recovery that holds it removes it
		}
		os.Remove(tmp)
		return nil, fmt.Errorf("audit spool: lock %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		f.Close()
		if errors.Is(err, os.ErrNotExist) {
			return nil, errSpoolTaken
		}
		os.Remove(tmp)
		return nil, fmt.Errorf("audit spool: %w", err)
	}
	spoolVisible(path)
	// The name is ours while we hold the lock: recovery removes only
	// files whose lock it holds.
	if !sameFile(f, path) {
		f.Close()
		return nil, errSpoolTaken
	}
	return f, nil
}

// spoolVisible runs right after a new spool appears under its name in the
// directory. Tests set it to run recoveries at that moment; the fault
// tests widen it in real processes with CODITECT_SPOOL_PAUSE (a duration).
var spoolVisible = pauseFor(os.Getenv("CODITECT_SPOOL_PAUSE"))

// pauseFor returns a hook that sleeps for d, a duration; a no-op when d is
// not one.
func pauseFor(d string) func(string) {
	p, err := time.ParseDuration(d)
	if err != nil || p <= 0 {
		return func(string) {}
	}
	return func(string) { time.Sleep(p) }
}

// sameFile reports whether path names f's file.
func sameFile(f *os.File, path string) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	pi, err := os.Stat(path)
	return err == nil && os.SameFile(fi, pi)
}

// write appends ev, a record of l, and returns its sequence number; ok is
// false when the spool cannot take it (the caller then waits for the
// record's commit instead).
func (s *spool) write(l *audit.Log, ev audit.Event) (seq uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken {
		return 0, false
	}
	seq = s.seq + 1
	// The line is encoded in one pass into a buffer the spool keeps
	// (under mu), which it reuses for the next one.
	s.enc.buf = s.buf[:0]
	if err := s.enc.e.Encode(spoolLine{Seq: seq, Tenant: l.Tenant(), Key: ev.IdempotencyKey, Event: &ev}); err != nil {
		return 0, false
	}
	line := s.enc.buf // Encode ends the line with '\n'
	if cap(line) <= maxSpoolBuf {
		s.buf = line
	}
	if _, err := s.f.Write(line); err != nil {
		if !s.failing {
			s.logger.Error("audit spool write failed; reads wait for their records to commit until it works again", "spool", s.path, "err", err)
		}
		s.failing = true
		// A short write leaves a torn line. With nothing else needed in
		// the file, empty it at once; otherwise write nothing after the
		// torn line until the file is emptied (settled).
		if s.outstanding == 0 {
			if s.f.Truncate(0) != nil {
				s.broken = true
			}
		} else {
			s.broken = true
		}
		return 0, false
	}
	if s.failing {
		s.logger.Info("audit spool writable again", "spool", s.path)
		s.failing = false
	}
	s.seq = seq
	s.outstanding++
	s.logs[l.Tenant()] = l
	return seq, true
}

// settled records that n spooled records were committed (or dropped as
// invalid); when none is left outstanding the file is emptied.
func (s *spool) settled(n int) {
	if n == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outstanding -= n
	if s.outstanding == 0 {
		// Empty: nothing in it is needed any more. This also heals a
		// spool whose write failed (a full disk): the torn line goes with
		// the rest, and records are spooled again.
		if err := s.f.Truncate(0); err != nil {
			if !s.broken {
				s.logger.Error("audit spool cannot be emptied; reads wait for their records to commit", "spool", s.path, "err", err)
			}
			s.broken = true
			return
		}
		s.broken = false
	}
}

// close removes the spool when everything in it is committed (and clears
// its marks); otherwise it leaves the file for the next process's recovery.
func (s *spool) close(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.outstanding > 0 {
		s.logger.Warn("audit spool left for recovery by the next process", "spool", s.path, "records", s.outstanding)
		s.f.Close()
		return
	}
	if err := os.Remove(s.path); err != nil {
		s.logger.Warn("audit spool not removed", "spool", s.path, "err", err)
	}
	s.f.Close()
	for t, l := range s.logs {
		if err := l.ClearSpoolMark(ctx, s.id); err != nil {
			s.logger.Warn("audit spool mark not cleared", "tenant", t, "spool", s.id, "err", err)
		}
	}
}

// RecoverSpools appends to the store the records that dead processes left
// in the spool files of dir (see spool), exactly once, and removes the
// files, and the empty .new files of processes killed while creating
// their spool. Spools of live processes (locked) are left alone; so is a file
// whose records cannot be appended now (the store is unavailable), for a
// later try. logs returns a tenant's log. It returns how many records it
// appended.
func RecoverSpools(ctx context.Context, dir string, logs func(tenant string) (*audit.Log, error), logger *slog.Logger) (int, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("audit spool: %w", err)
	}
	total := 0
	var errs []error
	for _, e := range entries {
		name := e.Name()
		id, ok := strings.CutSuffix(name, spoolExt)
		if !ok {
			id, ok = strings.CutSuffix(name, newSpoolExt)
		}
		if e.IsDir() || !ok {
			continue
		}
		n, err := recoverSpool(ctx, filepath.Join(dir, name), id, logs, logger)
		total += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

func recoverSpool(ctx context.Context, path, id string, logs func(string) (*audit.Log, error), logger *slog.Logger) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil // recovered by another process meanwhile
		}
		return 0, fmt.Errorf("audit spool: %w", err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return 0, nil // its process lives
		}
		return 0, fmt.Errorf("audit spool: lock %s: %w", path, err)
	}
	// The lock is ours, so the file's process is dead (a live one locks
	// its spool before it bears its name) and appends nothing more. But
	// another recovery, or its process's clean exit, may have removed the
	// file between our open and our lock: then the path is gone or names
	// another file.
	if !sameFile(f, path) {
		return 0, nil
	}
	byTenant, order, err := readSpool(f, path, logger)
	if err != nil {
		return 0, err
	}
	n := 0
	var used []*audit.Log
	for _, t := range order {
		l, err := logs(t)
		if err != nil {
			logger.Error("audit spool records of an unknown tenant dropped", "spool", path, "tenant", t, "records", len(byTenant[t]), "err", err)
			continue
		}
		used = append(used, l)
		recs := byTenant[t]
		for len(recs) > 0 {
			chunk := recs[:min(len(recs), maxAuditBatch)]
			recs = recs[len(chunk):]
			added, err := l.AppendSpool(ctx, id, chunk)
			if err != nil {
				return n, fmt.Errorf("audit spool %s: %w", path, err)
			}
			n += added
		}
	}
	// The file goes before the marks: a crash in between leaves marks
	// without a file (harmless), never a file without its marks. Only the
	// file we locked goes: the path is checked again.
	if !sameFile(f, path) {
		return n, nil
	}
	if err := os.Remove(path); err != nil {
		return n, fmt.Errorf("audit spool: %w", err)
	}
	for _, l := range used {
		if err := l.ClearSpoolMark(ctx, id); err != nil {
			logger.Warn("audit spool mark not cleared", "tenant", l.Tenant(), "spool", id, "err", err)
		}
	}
	if n > 0 {
		logger.Info("audit records recovered from a spool", "spool", path, "records", n)
	}
	return n, nil
}

// readSpool parses a spool file into records per tenant, in sequence
// order. A line that does not parse (the torn last write of a killed
// process, or damage) is skipped and logged.
func readSpool(r io.Reader, path string, logger *slog.Logger) (map[string][]audit.SpoolRecord, []string, error) {
	by := map[string][]audit.SpoolRecord{}
	var order []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4*audit.MaxEventSize)
	line := 0
	for sc.Scan() {
		line++
		var rec spoolRecord
		var ev audit.Event
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.Seq == 0 || rec.Tenant == "" ||
			json.Unmarshal(rec.Event, &ev) != nil {
			logger.Warn("audit spool line skipped", "spool", path, "line", line, "bytes", len(bytes.TrimSpace(sc.Bytes())))
			continue
		}
		ev.IdempotencyKey = rec.Key
		if _, ok := by[rec.Tenant]; !ok {
			order = append(order, rec.Tenant)
		}
		by[rec.Tenant] = append(by[rec.Tenant], audit.SpoolRecord{Seq: rec.Seq, Event: ev})
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("audit spool %s: %w", path, err)
	}
	return by, order, nil
}
