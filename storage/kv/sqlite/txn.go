package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coditect/coditect/storage/kv"
)

// statements are the prepared statements of one *sql.DB. database/sql
// prepares each lazily on every connection it runs on and keeps it there.
type stmtSet struct {
	get, set, clear, clearRange, clearFrom *sql.Stmt
	rangeFwd, rangeFwdOpen                 *sql.Stmt
	rangeRev, rangeRevOpen                 *sql.Stmt
	getCommit                              *sql.Stmt
}

// statements are the writer connection's statements, all bound to the one
// pinned connection (each reader connection has its own: readConn).
type statements struct {
	w                       stmtSet
	setCommit, dataVersion  *sql.Stmt
	begin, commit, rollback *sql.Stmt
	// savepoint, release and rollbackTo wrap each Update of a commit batch.
	savepoint, release, rollbackTo *sql.Stmt
}

// preparer is a *sql.DB or a *sql.Conn.
type preparer interface {
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

func (st *stmtSet) prepare(ctx context.Context, db preparer) error {
	var err error
	p := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var s *sql.Stmt
		s, err = db.PrepareContext(ctx, q)
		return s
	}
	st.get = p(`SELECT value FROM kv WHERE key = ?`)
	st.set = p(`INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)`)
	st.clear = p(`DELETE FROM kv WHERE key = ?`)
	st.clearRange = p(`DELETE FROM kv WHERE key >= ? AND key < ?`)
	st.clearFrom = p(`DELETE FROM kv WHERE key >= ?`)
	st.rangeFwd = p(`SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT ?`)
	st.rangeFwdOpen = p(`SELECT key, value FROM kv WHERE key >= ? ORDER BY key LIMIT ?`)
	st.rangeRev = p(`SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key DESC LIMIT ?`)
	st.rangeRevOpen = p(`SELECT key, value FROM kv WHERE key >= ? ORDER BY key DESC LIMIT ?`)
	st.getCommit = p(`SELECT value FROM meta WHERE name = 'commit'`)
	return err
}

func (st *stmtSet) close() {
	for _, s := range []*sql.Stmt{st.get, st.set, st.clear, st.clearRange, st.clearFrom,
		st.rangeFwd, st.rangeFwdOpen, st.rangeRev, st.rangeRevOpen, st.getCommit} {
		if s != nil {
			s.Close()
		}
	}
}

func (st *statements) prepare(ctx context.Context, w *sql.Conn) error {
	if err := st.w.prepare(ctx, w); err != nil {
		return fmt.Errorf("kv/sqlite: prepare: %w", err)
	}
	// BEGIN and COMMIT prepared once: the driver's own BeginTx compiles
	// its BEGIN statement at every transaction.
	for _, p := range []struct {
		s **sql.Stmt
		q string
	}{
		{&st.setCommit, `UPDATE meta SET value = ? WHERE name = 'commit'`},
		{&st.dataVersion, `PRAGMA data_version`},
		{&st.begin, `BEGIN IMMEDIATE`},
		{&st.commit, `COMMIT`},
		{&st.rollback, `ROLLBACK`},
		{&st.savepoint, `SAVEPOINT u`},
		{&st.release, `RELEASE u`},
		{&st.rollbackTo, `ROLLBACK TO u`},
	} {
		var err error
		if *p.s, err = w.PrepareContext(ctx, p.q); err != nil {
			return fmt.Errorf("kv/sqlite: prepare %s: %w", p.q, err)
		}
	}
	return nil
}

func (st *statements) close() {
	st.w.close()
	for _, s := range []*sql.Stmt{st.setCommit, st.dataVersion, st.begin, st.commit, st.rollback,
		st.savepoint, st.release, st.rollbackTo} {
		if s != nil {
			s.Close()
		}
	}
}

// txn is one attempt of a transaction. It implements kv.Tx; read-only
// transactions refuse writes.
type txn struct {
	ctx context.Context
	// sctx is ctx without its cancellation, the context of the
	// transaction's statements. With a context that can end, the driver
	// starts a goroutine per statement to interrupt it (and database/sql
	// another per query); statements here are short, so the transaction
	// checks ctx before each one instead (usable).
	sctx     context.Context
	s        *Store
	st       *stmtSet // the statements of the connection it runs on
	writable bool
	start    time.Time
	done     atomic.Bool

	mu         sync.Mutex
	err        error // first deferred write error
	size       int
	wrote      bool
	commit     uint64 // this transaction's commit counter, once read
	haveCommit bool
	batch      *batch   // the commit batch this transaction runs in, if any
	order      uint16   // its place in that batch
	unreadable [][]byte // keys written with a versionstamp in this transaction
	watches    []*watch

	// pmu guards the deferred atomic operations (atomic.go): pending, taken
	// and, while this transaction runs, its batch's pending.
	pmu     sync.Mutex
	pending pendingOps // this transaction's Adds and Maxes not yet applied
	taken   pendingOps // the batch's operations it applied or overwrote
}

// newTxn starts an attempt on the connection whose statements are st.
func newTxn(ctx context.Context, s *Store, st *stmtSet, writable bool) *txn {
	return &txn{ctx: ctx, sctx: context.WithoutCancel(ctx), s: s, st: st, writable: writable, start: time.Now()}
}

// finish ends the attempt; watches it set but did not activate fail with err.
func (t *txn) finish() {
	t.done.Store(true)
	t.mu.Lock()
	ws := t.watches
	t.watches = nil
	err := t.err
	t.mu.Unlock()
	if err == nil {
		err = errors.New("kv: the transaction that set this watch did not commit")
	}
	for _, w := range ws {
		w.fire(err)
	}
}

func (t *txn) firstErr() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

func (t *txn) fail(err error) {
	t.mu.Lock()
	if t.err == nil {
		t.err = err
	}
	t.mu.Unlock()
}

func (t *txn) checkAge() error {
	if age := time.Since(t.start); age > t.s.opts.MaxTransactionAge {
		return fmt.Errorf("kv/sqlite: %w: running for %v, the limit is %v",
			kv.ErrTransactionTooOld, age.Round(time.Millisecond), t.s.opts.MaxTransactionAge)
	}
	return nil
}

// usable reports why the transaction cannot run another operation, if so.
func (t *txn) usable() error {
	if t.done.Load() {
		return kv.ErrTransactionDone
	}
	if err := t.ctx.Err(); err != nil {
		return err
	}
	return t.checkAge()
}

// wrap turns a driver error into one that names the operation and key; busy
// errors keep their identity so the retry loop sees them.
func (t *txn) wrap(op string, key []byte, err error) error {
	return wrapErr(op, key, err)
}

func wrapErr(op string, key []byte, err error) error {
	if err == nil {
		return nil
	}
	if isBusy(err) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if key == nil {
		return fmt.Errorf("kv/sqlite: %s: %w", op, err)
	}
	return fmt.Errorf("kv/sqlite: %s %s: %w", op, kv.DisplayKey(key), err)
}

func (t *txn) isUnreadable(begin, end []byte) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range t.unreadable {
		if bytes.Compare(k, begin) >= 0 && (end == nil || bytes.Compare(k, end) < 0) {
			return true
		}
	}
	return false
}

func (t *txn) unreadableErr(key []byte) error {
	return fmt.Errorf("kv/sqlite: get %s: %w", kv.DisplayKey(key), kv.ErrAccessedUnreadable)
}

// readFailed records a failed read, which then fails the transaction (the
// contract's rule, FoundationDB's behaviour at commit), and returns err.
func (t *txn) readFailed(err error) error {
	if err != nil {
		t.fail(err)
	}
	return err
}

// Get implements kv.ReadTx. The key's read conflict range counts towards
// the transaction's size, as on FoundationDB.
func (t *txn) Get(key []byte) ([]byte, error) {
	v, err := t.pointRead("get", key)
	if err == nil {
		t.count("get", key, kv.PointRangeSize(len(key)))
	}
	return v, t.readFailed(err)
}

// GetMany implements kv.ReadTx with one Get after another: a read of the
// local database costs no round trip to batch away.
func (t *txn) GetMany(keys [][]byte) ([][]byte, error) {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		v, err := t.Get(k)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// SnapshotGet implements kv.Tx. Writers are serialised (a write
// transaction holds the database's write lock from BEGIN IMMEDIATE), so no
// other transaction can commit while this one runs: a snapshot read is a
// plain read, which adds no conflict range to count.
func (t *txn) SnapshotGet(key []byte) ([]byte, error) {
	v, err := t.pointRead("snapshot get", key)
	return v, t.readFailed(err)
}

func (t *txn) pointRead(op string, key []byte) ([]byte, error) {
	if err := t.usable(); err != nil {
		return nil, err
	}
	if err := kv.CheckKey(op, key); err != nil {
		return nil, err
	}
	if t.writable && t.isUnreadable(key, kv.KeyAfter(key)) {
		return nil, t.unreadableErr(key)
	}
	ops := t.pendingFor(key) // folded over the stored value (atomic.go)
	v, err := t.get(key)
	if err != nil {
		return nil, err
	}
	for _, op := range ops {
		v = op.apply(v)
	}
	return v, nil
}

// get reads key's stored value, without the atomic operations pending on
// it (pointRead folds them over it; other reads apply them first:
// settleKey).
func (t *txn) get(key []byte) ([]byte, error) {
	v, err := readValue(t.sctx, t.st, key)
	return v, t.wrap("get", key, err)
}

// readValue reads key's value with st: nil when absent, never nil when
// present.
func readValue(ctx context.Context, st *stmtSet, key []byte) ([]byte, error) {
	var v []byte
	err := st.get.QueryRowContext(ctx, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// GetRange implements kv.ReadTx. The range's bounds (its read conflict
// range) count towards the transaction's size.
func (t *txn) GetRange(begin, end []byte, opts kv.RangeOptions) kv.Iterator {
	if err := t.checkRange(begin, end, opts); err != nil {
		return kv.ErrIterator{E: t.readFailed(err)}
	}
	t.count("range", begin, kv.ReadRangeSize(len(begin), endSize(end)))
	if begin == nil {
		begin = []byte{}
	}
	return &iterator{t: t, begin: append([]byte{}, begin...), end: cloneOrNil(end),
		reverse: opts.Reverse, limit: opts.Limit, page: firstPage(opts.Limit)}
}

func (t *txn) checkRange(begin, end []byte, opts kv.RangeOptions) error {
	if err := t.usable(); err != nil {
		return err
	}
	if end != nil && bytes.Compare(begin, end) > 0 {
		return fmt.Errorf("kv/sqlite: range %s..%s: %w: begin is after end",
			kv.DisplayKey(begin), kv.DisplayKey(end), kv.ErrInvalidRange)
	}
	if opts.Limit < 0 {
		return fmt.Errorf("kv/sqlite: %w: negative limit %d", kv.ErrInvalidRange, opts.Limit)
	}
	if t.writable && t.isUnreadable(begin, end) {
		return fmt.Errorf("kv/sqlite: range %s..%s: %w",
			kv.DisplayKey(begin), kv.DisplayKey(end), kv.ErrAccessedUnreadable)
	}
	return nil
}

// endSize is the size FoundationDB counts for a range's end: a nil end is
// its end of the keyspace, the one byte 0xff.
func endSize(end []byte) int {
	if end == nil {
		return 1
	}
	return len(end)
}

func cloneOrNil(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// Page sizes: small first (most reads want a few keys), growing to amortise
// long scans, as FDB's iterator streaming mode does.
const (
	minPage = 64
	maxPage = 4096
)

func firstPage(limit int) int {
	if limit > 0 && limit <= maxPage {
		return limit
	}
	return minPage
}

type iterator struct {
	t       *txn
	begin   []byte
	end     []byte // nil: end of the keyspace
	reverse bool
	limit   int // 0: none
	page    int
	seen    int

	buf       []kv.KeyValue
	idx       int
	exhausted bool
	cur       kv.KeyValue
	err       error
}

func (it *iterator) Next() bool {
	if it.err != nil {
		return false
	}
	if it.idx >= len(it.buf) {
		if it.exhausted || (it.limit > 0 && it.seen >= it.limit) {
			return false
		}
		if err := it.fetch(); err != nil {
			it.err = it.t.readFailed(err)
			return false
		}
		if len(it.buf) == 0 {
			return false
		}
	}
	it.cur = it.buf[it.idx]
	it.idx++
	it.seen++
	return true
}

func (it *iterator) fetch() error {
	if err := it.t.usable(); err != nil {
		return err
	}
	// The rest of the range, as of now: operations made since the
	// previous page are seen, as a read of the key would see them.
	if err := it.t.settleRange(it.begin, it.end, true); err != nil {
		return err
	}
	n := it.page
	if it.limit > 0 && it.limit-it.seen < n {
		n = it.limit - it.seen
	}
	st := it.t.st
	var stmt *sql.Stmt
	args := []any{it.begin}
	switch {
	case !it.reverse && it.end != nil:
		stmt = st.rangeFwd
		args = append(args, it.end)
	case !it.reverse:
		stmt = st.rangeFwdOpen
	case it.end != nil:
		stmt = st.rangeRev
		args = append(args, it.end)
	default:
		stmt = st.rangeRevOpen
	}
	args = append(args, n)
	rows, err := stmt.QueryContext(it.t.sctx, args...)
	if err != nil {
		return it.t.wrap("range", it.begin, err)
	}
	defer rows.Close()
	it.buf = it.buf[:0]
	it.idx = 0
	for rows.Next() {
		var p kv.KeyValue
		if err := rows.Scan(&p.Key, &p.Value); err != nil {
			return it.t.wrap("range", it.begin, err)
		}
		if p.Value == nil {
			p.Value = []byte{}
		}
		it.buf = append(it.buf, p)
	}
	if err := rows.Err(); err != nil {
		return it.t.wrap("range", it.begin, err)
	}
	if len(it.buf) < n {
		it.exhausted = true
	} else if len(it.buf) > 0 {
		last := it.buf[len(it.buf)-1].Key
		if it.reverse {
			it.end = last
		} else {
			it.begin = kv.KeyAfter(last)
		}
	}
	if it.page < maxPage {
		it.page *= 2
	}
	return nil
}

func (it *iterator) KeyValue() kv.KeyValue { return it.cur }
func (it *iterator) Err() error            { return it.err }

// Watch implements kv.ReadTx.
func (t *txn) Watch(key []byte) kv.Watch {
	w := &watch{key: append([]byte(nil), key...), done: make(chan struct{})}
	if err := t.usable(); err != nil {
		w.fire(err)
		return w
	}
	if err := kv.CheckKey("watch", key); err != nil {
		w.fire(err)
		return w
	}
	t.mu.Lock()
	t.watches = append(t.watches, w)
	t.mu.Unlock()
	return w
}

// readWatchBaselines reads, at the end of the transaction and inside it,
// the value each watch compares against: what this transaction sees,
// including its own writes.
func (t *txn) readWatchBaselines() error {
	t.mu.Lock()
	ws := t.watches
	t.mu.Unlock()
	for _, w := range ws {
		if err := t.settleKey(w.key, true); err != nil {
			return err
		}
		v, err := t.get(w.key)
		if err != nil {
			return err
		}
		w.baseline, w.exists = v, v != nil
	}
	return nil
}

func (t *txn) activateWatches() {
	t.mu.Lock()
	ws := t.watches
	t.watches = nil
	t.mu.Unlock()
	for _, w := range ws {
		t.s.watches.register(w)
	}
}

// write runs one mutation's checks and accounting; it returns false when the
// mutation must not run.
func (t *txn) write(op string, key []byte, size int) bool {
	if !t.writable {
		t.fail(fmt.Errorf("kv/sqlite: %s in a read-only transaction", op))
		return false
	}
	if err := t.usable(); err != nil {
		t.fail(err)
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil || !t.grow(op, key, size) {
		return false
	}
	t.wrote = true
	return true
}

// count adds a read's conflict range to a write transaction's size. Past
// the limit a transaction that writes fails (here, or at its next write),
// as its FoundationDB commit would; one that only reads is not limited, as
// a read-only commit sends nothing.
func (t *txn) count(op string, key []byte, size int) {
	if !t.writable {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.size += size
	if t.wrote {
		t.grow(op, key, 0)
	}
}

// grow adds size bytes to the transaction's size, under mu, and reports
// whether it stays within kv.MaxTransactionSize; when it does not, the
// transaction fails with a *kv.LimitError.
func (t *txn) grow(op string, key []byte, size int) bool {
	t.size += size
	if t.size <= kv.MaxTransactionSize {
		return true
	}
	if t.err == nil {
		t.err = &kv.LimitError{Err: kv.ErrTransactionTooLarge, Op: op, Key: key, Size: t.size, Limit: kv.MaxTransactionSize}
	}
	return false
}

func (t *txn) exec(op string, key []byte, stmt *sql.Stmt, args ...any) {
	if _, err := stmt.ExecContext(t.sctx, args...); err != nil {
		t.fail(t.wrap(op, key, err))
	}
}

// Set implements kv.Tx.
func (t *txn) Set(key, value []byte) {
	if err := errors.Join(kv.CheckKey("set", key), kv.CheckValue("set", key, value)); err != nil {
		t.fail(err)
		return
	}
	if t.write("set", key, kv.SetSize(len(key), len(value))) {
		_ = t.settleKey(key, false) // dropping pending operations cannot fail
		t.exec("set", key, t.st.set, key, nonNil(value))
	}
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Clear implements kv.Tx.
func (t *txn) Clear(key []byte) {
	if err := kv.CheckKey("clear", key); err != nil {
		t.fail(err)
		return
	}
	if t.write("clear", key, kv.ClearSize(len(key))) {
		_ = t.settleKey(key, false)
		t.exec("clear", key, t.st.clear, key)
	}
}

// ClearRange implements kv.Tx.
func (t *txn) ClearRange(begin, end []byte) {
	if end != nil && bytes.Compare(begin, end) > 0 {
		t.fail(fmt.Errorf("kv/sqlite: clear range %s..%s: %w: begin is after end",
			kv.DisplayKey(begin), kv.DisplayKey(end), kv.ErrInvalidRange))
		return
	}
	if !t.write("clear range", begin, kv.ClearRangeSize(len(begin), endSize(end))) {
		return
	}
	_ = t.settleRange(begin, end, false)
	if end == nil {
		t.exec("clear range", begin, t.st.clearFrom, nonNil(begin))
	} else {
		t.exec("clear range", begin, t.st.clearRange, nonNil(begin), end)
	}
}

// Add implements kv.Tx: a read-modify-write inside the write transaction,
// which no other writer can interleave with, deferred until the key is
// read or the transaction (or its commit batch) commits (atomic.go).
func (t *txn) Add(key []byte, delta int64) {
	if err := kv.CheckKey("add", key); err != nil {
		t.fail(err)
		return
	}
	if !t.write("add", key, kv.SetSize(len(key), 8)) {
		return
	}
	t.deferOp(key, atomicOp{add: true, delta: delta})
}

// Max implements kv.Tx, deferred as Add is.
func (t *txn) Max(key, param []byte) {
	if err := errors.Join(kv.CheckKey("max", key), kv.CheckValue("max", key, param)); err != nil {
		t.fail(err)
		return
	}
	if !t.write("max", key, kv.SetSize(len(key), len(param))) {
		return
	}
	t.deferOp(key, atomicOp{param: bytes.Clone(param)})
}

// commitVersion returns the commit number this transaction will commit
// with, reserving it on first use. See stampBlock.
func (t *txn) commitVersion() (uint64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.haveCommit {
		return t.commit, nil
	}
	if b := t.batch; b != nil && b.reservedBy != nil {
		t.commit, t.haveCommit = b.commit, true
		return b.commit, nil
	}
	c, err := t.s.stamps.reserve(t)
	if err != nil {
		return 0, t.wrap("reserve commit number", nil, err)
	}
	t.commit, t.haveCommit = c, true
	if t.batch != nil {
		t.batch.commit, t.batch.reservedBy = c, t
	}
	return c, nil
}

func (t *txn) stamped(template []byte, offset int) ([]byte, error) {
	if err := kv.CheckStampOffset(template, offset); err != nil {
		return nil, err
	}
	c, err := t.commitVersion()
	if err != nil {
		return nil, err
	}
	stamp := stampFor(c, t.order)
	out := append([]byte(nil), template...)
	copy(out[offset:offset+kv.StampSize], stamp[:kv.StampSize])
	return out, nil
}

// SetVersionstampedKey implements kv.Tx.
func (t *txn) SetVersionstampedKey(template []byte, offset int, value []byte) {
	if err := errors.Join(kv.CheckKey("set versionstamped key", template),
		kv.CheckValue("set versionstamped key", template, value)); err != nil {
		t.fail(err)
		return
	}
	if !t.write("set versionstamped key", template, kv.VersionstampedKeySize(len(template), len(value))) {
		return
	}
	key, err := t.stamped(template, offset)
	if err != nil {
		t.fail(err)
		return
	}
	_ = t.settleKey(key, false)
	t.exec("set versionstamped key", key, t.st.set, key, nonNil(value))
	t.mu.Lock()
	t.unreadable = append(t.unreadable, key)
	t.mu.Unlock()
}

// SetVersionstampedValue implements kv.Tx.
func (t *txn) SetVersionstampedValue(key, template []byte, offset int) {
	if err := errors.Join(kv.CheckKey("set versionstamped value", key),
		kv.CheckValue("set versionstamped value", key, template)); err != nil {
		t.fail(err)
		return
	}
	if !t.write("set versionstamped value", key, kv.VersionstampedValueSize(len(key), len(template))) {
		return
	}
	value, err := t.stamped(template, offset)
	if err != nil {
		t.fail(err)
		return
	}
	_ = t.settleKey(key, false)
	t.exec("set versionstamped value", key, t.st.set, key, value)
	t.mu.Lock()
	t.unreadable = append(t.unreadable, append([]byte(nil), key...))
	t.mu.Unlock()
}
