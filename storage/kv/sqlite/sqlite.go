// Package sqlite owns Coditect's embedded storage backend: the kv contract
// (FoundationDB's semantics) over one SQLite file in WAL mode, through the
// pure-Go driver modernc.org/sqlite. Several processes may open the same file
// at once; they see each other's commits and watches fire across them.
//
// How the contract maps onto SQLite:
//   - One table, kv(key BLOB PRIMARY KEY, value BLOB) STRICT, WITHOUT ROWID:
//     BLOBs compare with memcmp, FoundationDB's order.
//   - Update runs under BEGIN IMMEDIATE on the process's single writer
//     connection. Writers in this process queue on a mutex; writers in other
//     processes are met with SQLITE_BUSY, which is retried with a short
//     jittered backoff (never SQLite's own sleeping busy handler, whose
//     sleeps reach 100 ms). Holding the write lock for the whole transaction
//     makes every Update serializable.
//   - View runs a deferred read transaction on a pool of reader connections:
//     one consistent WAL snapshot, concurrent with writers.
//   - Versionstamps come from a commit counter in the meta table, bumped by
//     every transaction that writes; writers are serialised, so it strictly
//     increases across processes. The 10-byte stamp is the counter as 8 bytes
//     big-endian followed by 2 bytes of batch order (FDB's commit version
//     and batch order): 0 unless Options.GroupCommit is on, when the
//     Updates committed together share the counter and are numbered in the
//     order they ran.
//   - Watches are driven by PRAGMA data_version, polled by one connection
//     while any watch is pending, and by a signal after each local commit.
//
// Durability: synchronous=FULL by default, so an Update that returned nil
// survives power loss. Synchronous NORMAL is several times faster in WAL mode
// and survives a crash of the process, but the last commits before a power
// loss or OS crash may be rolled back.
//
// This package must not import any layer above storage/kv.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coditect/coditect/storage/kv"
	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Synchronous is SQLite's durability setting for commits.
type Synchronous string

const (
	// SyncFull fsyncs the WAL at every commit: acknowledged commits survive
	// power loss. The default.
	SyncFull Synchronous = "FULL"
	// SyncNormal fsyncs only at checkpoints: acknowledged commits survive a
	// process crash but the last ones may be lost on power loss or OS crash.
	SyncNormal Synchronous = "NORMAL"
)

// checkpointPages is the WAL's size in pages (4 KiB each) past which a
// commit copies it back into the database file (SQLite's
// wal_autocheckpoint; its default is 1000). A checkpoint writes each page
// once however often the WAL holds it, and the pages every call rewrites
// (the newest leaf of the log and of each index, the counters, the audit
// clock) are most of a call's pages: with a WAL four times as long, a
// durable note writes 10 % fewer bytes (agentbench, 16 agents). The WAL
// file stays at about 16 MiB once it has grown.
const checkpointPages = 4000

// Options tune a store. The zero value is the documented default.
type Options struct {
	// Synchronous is the commit durability (default SyncFull).
	Synchronous Synchronous
	// MaxTransactionAge overrides kv.MaxTransactionAge. Tests shorten it;
	// production code leaves it alone so both backends agree.
	MaxTransactionAge time.Duration
	// LockTimeout bounds how long a transaction waits for a store another
	// process keeps locked before failing with kv.ErrUnavailable (default
	// 30 s). The caller's context can end the wait sooner.
	LockTimeout time.Duration
	// Readers is the size of the reader connection pool (default 4).
	Readers int
	// WatchPoll is how often PRAGMA data_version is polled while a watch is
	// pending (default 2 ms; one poll costs a few microseconds).
	WatchPoll time.Duration
	// GroupCommit runs the Updates queued in this process together: one
	// SQLite transaction, each Update in its own savepoint, one commit and
	// fsync for all. See group.go.
	GroupCommit bool
}

func (o Options) withDefaults() Options {
	if o.Synchronous == "" {
		o.Synchronous = SyncFull
	}
	if o.MaxTransactionAge <= 0 {
		o.MaxTransactionAge = kv.MaxTransactionAge
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = 30 * time.Second
	}
	if o.Readers <= 0 {
		o.Readers = 4
	}
	if o.WatchPoll <= 0 {
		o.WatchPoll = 2 * time.Millisecond
	}
	return o
}

// Store is an open SQLite store. It implements kv.Store.
type Store struct {
	path string
	opts Options

	writer  *sql.DB   // one connection
	wconn   *sql.Conn // that connection, pinned; guarded by writeMu
	readers *sql.DB   // snapshot reads
	rpool   *readPool // reader connections of Views, from readers
	writeMu sync.Mutex

	stmts  statements
	stamps stampBlock // guarded by writeMu
	// syncFull: the writer connection is at synchronous=FULL (it is NORMAL
	// after a relaxed transaction until the next durable one); guarded by
	// writeMu. Only consulted when opts.Synchronous is SyncFull.
	syncFull bool

	watches *watchHub
	group   groupQueue

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

var _ kv.Store = (*Store)(nil)

// Open opens (creating if needed) the store at path.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	switch opts.Synchronous {
	case SyncFull, SyncNormal:
	default:
		return nil, fmt.Errorf("kv/sqlite: synchronous must be FULL or NORMAL, not %q", opts.Synchronous)
	}
	if path == "" {
		return nil, errors.New("kv/sqlite: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("kv/sqlite: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("kv/sqlite: create directory for %s: %w", abs, err)
	}
	_, statErr := os.Stat(abs)
	created := errors.Is(statErr, os.ErrNotExist)

	s := &Store{path: abs, opts: opts, syncFull: true}
	// busy_timeout(0): SQLite's own busy handler sleeps 1..100 ms at a time;
	// we retry busy ourselves with a much shorter backoff.
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(0)")
	q.Add("_pragma", "synchronous("+string(opts.Synchronous)+")")
	q.Add("_pragma", "foreign_keys(0)")
	// temp_store(memory): the statement journal of a group commit's
	// savepoints stays in memory instead of spilling to a temporary file
	// (a write per page) once it passes 64 KiB.
	q.Add("_pragma", "temp_store(memory)")
	q.Add("_pragma", "wal_autocheckpoint("+strconv.Itoa(checkpointPages)+")")
	base := "file:" + (&url.URL{Path: abs}).EscapedPath() + "?"
	wq := cloneValues(q)
	wq.Set("_txlock", "immediate")
	s.writer, err = sql.Open("sqlite", base+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("kv/sqlite: open %s: %w", abs, err)
	}
	s.writer.SetMaxOpenConns(1)
	s.writer.SetMaxIdleConns(1)
	s.writer.SetConnMaxLifetime(0)
	s.writer.SetConnMaxIdleTime(0)

	rq := cloneValues(q)
	rq.Set("_txlock", "deferred")
	s.readers, err = sql.Open("sqlite", base+rq.Encode())
	if err != nil {
		s.writer.Close()
		return nil, fmt.Errorf("kv/sqlite: open %s: %w", abs, err)
	}
	s.rpool = newReadPool(opts.Readers)
	s.readers.SetMaxOpenConns(opts.Readers + 1) // +1: the watch poller's connection
	s.readers.SetMaxIdleConns(opts.Readers + 1)
	s.readers.SetConnMaxLifetime(0)
	s.readers.SetConnMaxIdleTime(0)

	if err := s.init(ctx, created); err != nil {
		s.writer.Close()
		s.readers.Close()
		return nil, err
	}
	s.watches = newWatchHub(s)
	return s, nil
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

const schema = `
CREATE TABLE IF NOT EXISTS kv (
	key   BLOB PRIMARY KEY NOT NULL,
	value BLOB NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
	name  TEXT PRIMARY KEY NOT NULL,
	value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT OR IGNORE INTO meta(name, value) VALUES ('commit', 0);
`

// init puts the file in WAL mode and creates the schema, retrying while
// another process holds a lock (two processes may open a new file at once).
func (s *Store) init(ctx context.Context, created bool) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.LockTimeout)
	defer cancel()
	err := retryBusy(ctx, func() error {
		conn, err := s.writer.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		// An existing store needs no lock to open: another process may be
		// in a long write transaction.
		var mode string
		if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
			return err
		}
		if !strings.EqualFold(mode, "wal") {
			if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil {
				return err
			}
			if !strings.EqualFold(mode, "wal") {
				return fmt.Errorf("journal_mode is %q, not wal (is the file on a filesystem without shared memory?)", mode)
			}
		}
		var ready int
		if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE name IN ('kv', 'meta')`).Scan(&ready); err != nil {
			return err
		}
		if ready == 2 {
			return nil
		}
		if created {
			// Tokens and audit history live here: keep the file private.
			// Chmod does not open the file, so no POSIX lock is disturbed.
			if err := os.Chmod(s.path, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		// One transaction, so a crash cannot leave meta without its row.
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, schema); err != nil {
			_ = tx.Rollback()
			return err
		}
		return tx.Commit()
	})
	if err != nil {
		if isBusy(err) || (errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil) {
			return fmt.Errorf("kv/sqlite: open %s: %w: locked by another process for %v", s.path, kv.ErrUnavailable, s.opts.LockTimeout)
		}
		return fmt.Errorf("kv/sqlite: open %s: %w", s.path, err)
	}
	s.wconn, err = s.writer.Conn(ctx)
	if err != nil {
		return fmt.Errorf("kv/sqlite: open %s: %w", s.path, err)
	}
	return s.stmts.prepare(ctx, s.wconn)
}

// Path returns the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// Close releases the store; pending watches return kv.ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.watches.close()
		// Taking the write mutex waits for an Update in flight.
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
		s.stmts.close()
		if s.wconn != nil {
			s.wconn.Close()
		}
		err1 := s.writer.Close()
		s.rpool.close()
		err2 := s.readers.Close()
		s.closeErr = errors.Join(err1, err2)
	})
	return s.closeErr
}

// isBusy reports whether err is SQLite's BUSY or LOCKED, in any extended form.
func isBusy(err error) bool {
	var se *msqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
	}
	return false
}

// backoff is the wait before busy retry n: 50 µs doubling to 2 ms, jittered
// so that processes released together do not collide again in step.
func backoff(n int) time.Duration {
	d := 50 * time.Microsecond << min(n, 6)
	if d > 2*time.Millisecond {
		d = 2 * time.Millisecond
	}
	return d/2 + rand.N(d/2+1)
}

// retryBusy runs f until it returns something other than a busy error or
// ctx is done.
func retryBusy(ctx context.Context, f func() error) error {
	for n := 0; ; n++ {
		err := f()
		if err == nil || !isBusy(err) {
			return err
		}
		if err := sleepCtx(ctx, backoff(n)); err != nil {
			return err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// lockWait tracks one transaction's wait for a busy store.
type lockWait struct {
	start   time.Time
	retries int
}

// wait sleeps before the next busy retry, or reports why not to retry.
func (s *Store) wait(ctx context.Context, w *lockWait, cause error) error {
	if w.start.IsZero() {
		w.start = time.Now()
	}
	if time.Since(w.start) > s.opts.LockTimeout {
		return fmt.Errorf("kv/sqlite: %s: %w: locked by another process for %v (%v)",
			s.path, kv.ErrUnavailable, s.opts.LockTimeout, cause)
	}
	if err := sleepCtx(ctx, backoff(w.retries)); err != nil {
		return fmt.Errorf("kv/sqlite: %s: waiting for a lock held by another process: %w", s.path, err)
	}
	w.retries++
	return nil
}

// lockContext says, when the caller's context ended a transaction that had
// been waiting for another process's lock, that this is what happened.
func (s *Store) lockContext(ctx context.Context, w *lockWait, err error) error {
	if w.start.IsZero() || ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
		return err
	}
	return fmt.Errorf("kv/sqlite: %s: waiting for a lock held by another process: %w", s.path, err)
}

// Update implements kv.Store.
func (s *Store) Update(ctx context.Context, fn func(kv.Tx) error) (kv.Versionstamp, error) {
	if s.opts.GroupCommit {
		return s.update(ctx, fn, s.groupOnce)
	}
	return s.update(ctx, fn, s.updateOnce)
}

// update runs attempt until it succeeds, fails for good, or the store
// stays locked by another process for longer than LockTimeout.
func (s *Store) update(ctx context.Context, fn func(kv.Tx) error,
	attempt func(context.Context, func(kv.Tx) error) (kv.Versionstamp, error)) (kv.Versionstamp, error) {
	var w lockWait
	for {
		if s.closed.Load() {
			return kv.Versionstamp{}, kv.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return kv.Versionstamp{}, s.lockContext(ctx, &w, err)
		}
		stamp, err := attempt(ctx, fn)
		if err == nil {
			return stamp, nil
		}
		if errors.Is(err, errBatchAborted) {
			continue
		}
		if !isBusy(err) {
			return kv.Versionstamp{}, s.lockContext(ctx, &w, err)
		}
		if err := s.wait(ctx, &w, err); err != nil {
			return kv.Versionstamp{}, err
		}
	}
}

func (s *Store) updateOnce(ctx context.Context, fn func(kv.Tx) error) (stamp kv.Versionstamp, err error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.closed.Load() {
		return stamp, kv.ErrClosed
	}
	if err := s.setDurability(ctx, !kv.RelaxedDurability(ctx)); err != nil {
		return stamp, err
	}
	st := &s.stmts
	// BEGIN and COMMIT never wait (busy_timeout(0): Update's loop does the
	// waiting) and run to completion whatever ctx does: an interrupted
	// BEGIN can leave the writer connection inside a transaction that
	// every later BEGIN then fails on, and an interrupted COMMIT can land
	// after it reported failure, so that a retry would write twice.
	if err := ctx.Err(); err != nil {
		return stamp, err
	}
	if err := s.begin(); err != nil {
		return stamp, err
	}
	t := newTxn(ctx, s, &s.stmts.w, true)
	defer func() {
		t.finish()
		if err != nil {
			// Whatever failed, end the transaction; a rollback with no
			// transaction open (a failed COMMIT already rolled back) is
			// harmless.
			_, _ = st.rollback.ExecContext(context.Background())
		}
	}()
	if stamp, err = t.run(fn); err != nil {
		return kv.Versionstamp{}, err
	}
	if err := t.applyPending(); err != nil {
		return kv.Versionstamp{}, err
	}
	if _, err := st.commit.ExecContext(context.Background()); err != nil {
		return kv.Versionstamp{}, t.wrap("commit", nil, err)
	}
	if t.haveCommit {
		s.stamps.committed(t.commit)
	}
	t.activateWatches()
	if t.wrote {
		s.watches.localCommit()
	}
	return stamp, nil
}

// setDurability puts the writer connection at synchronous=FULL (durable)
// or NORMAL for the next write transaction; writeMu is held.
func (s *Store) setDurability(ctx context.Context, durable bool) error {
	if s.opts.Synchronous != SyncFull || s.syncFull == durable {
		return nil
	}
	// SQLite takes the WAL's sync flags when the write transaction begins,
	// and a PRAGMA acts when it is compiled, so a relaxed transaction
	// (kv.WithRelaxedDurability) switches the writer connection to NORMAL,
	// unprepared, before BEGIN, and the next durable one switches it back:
	// a run of either kind costs no switch.
	q := "PRAGMA synchronous=NORMAL"
	if durable {
		q = "PRAGMA synchronous=FULL"
	}
	if _, err := s.wconn.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("kv/sqlite: set durability: %w", err)
	}
	s.syncFull = durable
	return nil
}

// begin opens the write transaction on the writer connection; writeMu is
// held.
func (s *Store) begin() error {
	if _, err := s.stmts.begin.ExecContext(context.Background()); err != nil {
		_, _ = s.stmts.rollback.ExecContext(context.Background())
		return err
	}
	return nil
}

// run runs fn in write transaction t and readies t to commit: its checks,
// its versionstamp (zero if it wrote nothing) and its watches' baselines.
func (t *txn) run(fn func(kv.Tx) error) (kv.Versionstamp, error) {
	if err := fn(t); err != nil {
		return kv.Versionstamp{}, err
	}
	if err := t.firstErr(); err != nil {
		return kv.Versionstamp{}, err
	}
	if err := t.checkAge(); err != nil {
		return kv.Versionstamp{}, err
	}
	var stamp kv.Versionstamp
	if t.wrote {
		commit, err := t.commitVersion()
		if err != nil {
			return kv.Versionstamp{}, err
		}
		stamp = stampFor(commit, t.order)
	}
	if err := t.readWatchBaselines(); err != nil {
		return kv.Versionstamp{}, err
	}
	return stamp, nil
}

// stampFor renders commit counter n and a transaction's order in its commit
// batch as FDB's 10-byte commit version (8 bytes big-endian) and 2-byte
// batch order (big-endian), with user order 0.
func stampFor(n uint64, order uint16) kv.Versionstamp {
	var v kv.Versionstamp
	binary.BigEndian.PutUint64(v[:8], n)
	binary.BigEndian.PutUint16(v[8:10], order)
	return v
}

// View implements kv.Store.
func (s *Store) View(ctx context.Context, fn func(kv.ReadTx) error) error {
	var w lockWait
	for {
		if s.closed.Load() {
			return kv.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return s.lockContext(ctx, &w, err)
		}
		err := s.viewOnce(ctx, fn)
		if err == nil {
			return nil
		}
		if !isBusy(err) {
			return s.lockContext(ctx, &w, err)
		}
		if err := s.wait(ctx, &w, err); err != nil {
			return err
		}
	}
}

func (s *Store) viewOnce(ctx context.Context, fn func(kv.ReadTx) error) error {
	rc, err := s.rpool.get(ctx, s.readers)
	if err == errPoolClosed {
		return kv.ErrClosed
	}
	if err != nil {
		return err
	}
	// BEGIN, COMMIT and ROLLBACK run without the caller's context: a
	// connection goes back to the pool only outside a transaction.
	if _, err := rc.begin.ExecContext(context.Background()); err != nil {
		_, rerr := rc.rollback.ExecContext(context.Background())
		s.rpool.put(rc, rerr != nil && !noTransaction(rerr))
		return err
	}
	t := newTxn(ctx, s, &rc.st, false)
	committed := false
	defer func() {
		t.finish()
		broken := false
		if !committed {
			if _, err := rc.rollback.ExecContext(context.Background()); err != nil && !noTransaction(err) {
				broken = true
			}
		}
		s.rpool.put(rc, broken)
	}()
	if err := fn(t); err != nil {
		return err
	}
	if err := t.firstErr(); err != nil {
		return err
	}
	if err := t.readWatchBaselines(); err != nil {
		return err
	}
	if _, err := rc.commit.ExecContext(context.Background()); err != nil {
		return t.wrap("commit", nil, err)
	}
	committed = true
	t.activateWatches()
	return nil
}

// noTransaction reports whether err is SQLite's "no transaction is
// active" (a ROLLBACK after the transaction ended by itself).
func noTransaction(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no transaction is active")
}

// Watch implements kv.Store.
func (s *Store) Watch(ctx context.Context, key []byte) error {
	var w kv.Watch
	if err := s.View(ctx, func(tx kv.ReadTx) error {
		w = tx.Watch(key)
		return nil
	}); err != nil {
		return err
	}
	defer w.Cancel()
	return w.Wait(ctx)
}
