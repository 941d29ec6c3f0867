package fdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/coditect/coditect/storage/kv"
)

// memDB is the seam's database in memory, with FoundationDB's faults
// injected where a cluster raises them. It follows the binding's and
// FoundationDB's documented semantics, and the backend's retry loop, age
// rule and error translation run on it unchanged; it is a model of those
// documents, not of a cluster, and proves nothing about one.
//
//   - Every read joins the transaction, and a commit after a failed read
//     fails with the read's error (fdb_transaction_commit waits on the
//     transaction's outstanding reads).
//   - Transactions are serializable and optimistic (developer guide,
//     "Transactions" and "Conflict ranges"): reads see the database at the
//     transaction's read version plus its own writes; a commit fails with
//     not_committed (1020) when a commit after its read version wrote a
//     key or range it read without the snapshot flag. Snapshot reads add no
//     read conflict range.
//   - Transaction.OnError (binding transaction.go): "Waiting on the returned
//     future will return the same error when fatal, or return nil ... for
//     retryable errors", and it resets the transaction. Retryable here are
//     1007, 1020 and 1021 (fdb_error_predicate RETRYABLE); after the
//     retry_limit option's count of retries, OnError returns the error
//     ("additional calls to onError will throw the most recently seen error
//     code", generated.go, SetTransactionRetryLimit).
//   - The timeout option (generated.go, SetTransactionTimeout: "when
//     elapsed, will cause each transaction automatically to be cancelled";
//     TransactionOptions.SetTimeout: "If the API version is 610 or greater,
//     the timeout is not reset after an onError call"): every operation of
//     a transaction older than it fails with transaction_timed_out (1031).
//   - commit_unknown_result (1021, developer guide "Transactions with
//     unknown results"): the commit may or may not have applied; both are
//     injected.
//   - SET_VERSIONSTAMPED_KEY / _VALUE (generated.go): the operand ends in
//     a 4-byte little-endian offset; the 10-byte stamp is the commit
//     version (8 bytes big-endian) and the batch order (2). Reading a key
//     the transaction wrote with one fails with accessed_unreadable (1036).
//   - Watches (binding transaction.go, Transaction.Watch): "Until the
//     transaction that created it has been committed, a watch will not
//     report changes made by other transactions"; it fires when the key's
//     value differs from the one the transaction saw; "If the value changes
//     and then changes back to its initial value, the watch might not
//     report the change"; "If the transaction used to create a watch
//     encounters an error during commit, then the watch will be set with
//     that error. A transaction whose commit result is unknown will set all
//     of its watches with the commit_unknown_result error. If an
//     uncommitted transaction is reset or destroyed, then any watches it
//     created will be set with the transaction_cancelled error." Delivery
//     can be late (faultPlan.watchDelay).
//   - Keys from 0xff on need access_system_keys (key_outside_legal_range,
//     2004); setting \xff/minRequiredCommitVersion moves the versions of
//     later commits to at least its value (fdbcli advanceversion).
//   - transaction_too_large (2101) when a commit's mutations and conflict
//     ranges exceed 10,000,000 bytes.
type memDB struct {
	mu      sync.Mutex
	version int64
	data    map[string][]versioned
	history []commitRecord
	watches map[*memWatch]struct{}
	timeout time.Duration
	retries int64
	// activated, when set, is sent the key of each watch a commit
	// activates, when it has room.
	activated chan<- string
	faults    faultPlan
	counters  struct{ reads, commits, applied int }
}

type versioned struct {
	version int64
	value   []byte // nil: cleared
}

type commitRecord struct {
	version int64
	writes  []keyRange
}

type keyRange struct{ begin, end string } // [begin, end)

func (r keyRange) overlaps(o keyRange) bool { return r.begin < o.end && o.begin < r.end }

func point(k []byte) keyRange { return keyRange{string(k), string(k) + "\x00"} }

// faultPlan says which faults memDB injects. One-shot faults are queued
// and consumed in order; the periodic ones strike every n-th operation.
type faultPlan struct {
	readErrs   []int       // codes for the next reads, one each
	commitErrs []commitErr // for the next commits, one each

	// The periodic faults strike only a transaction's first attempt, so
	// that every transaction can make progress.
	everyRead   int // every n-th read fails with readCode (0: never)
	readCode    int
	everyCommit int // every n-th commit fails with commitCode
	commitCode  int
	// commitApplies: commitCode strikes after the commit applied (1021
	// after a commit that landed).
	commitApplies bool

	outage bool // every operation blocks until the transaction times out

	// watchDelay delays every watch notification; the watch then fires
	// only if the value still differs from the one its transaction saw,
	// so a change and change back within the delay never fires.
	watchDelay time.Duration
}

type commitErr struct {
	code    int
	applied bool // the commit applied before the error
}

func newMemDB() *memDB {
	return &memDB{data: make(map[string][]versioned), watches: make(map[*memWatch]struct{})}
}

// plan changes the fault plan under the database's lock.
func (d *memDB) plan(f func(*faultPlan)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(&d.faults)
}

func (d *memDB) SetTransactionTimeout(ms int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.timeout = time.Duration(ms) * time.Millisecond
	return nil
}

func (d *memDB) SetTransactionRetryLimit(n int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.retries = n
	return nil
}

func (d *memDB) CreateTransaction() (transaction, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := &memTx{db: d, created: time.Now(), timeout: d.timeout, limit: d.retries, readVersion: -1, committed: -1,
		cancelled: make(chan struct{})}
	return t, nil
}

// valueAt returns k's value at version v; d.mu is held.
func (d *memDB) valueAt(k string, v int64) []byte {
	vs := d.data[k]
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].version <= v {
			return vs[i].value
		}
	}
	return nil
}

// memTx is one transaction of memDB.
type memTx struct {
	db      *memDB
	created time.Time
	timeout time.Duration
	limit   int64

	mu          sync.Mutex
	retried     int64
	readVersion int64
	ops         []memOp
	reads       []keyRange
	unreadable  []keyRange
	readErr     int // the first failed read's code: the commit fails with it
	system      bool
	watches     []*memWatch
	stamp       *memStamp
	committed   int64
	cancelled   chan struct{}
	isCancelled bool
}

type memOp struct {
	kind       string // set, clear, clearRange, add, max, vkey, vvalue
	key, param []byte
	end        []byte
}

// check is the common prelude of every operation: cancellation, the
// timeout, an outage; it returns an error code or 0. t.mu is not held.
func (t *memTx) check() int {
	t.mu.Lock()
	cancelled := t.isCancelled
	t.mu.Unlock()
	if cancelled {
		return codeTransactionCancelled
	}
	t.db.mu.Lock()
	outage := t.db.faults.outage
	t.db.mu.Unlock()
	if t.timeout > 0 {
		left := time.Until(t.created.Add(t.timeout))
		if outage {
			select {
			case <-time.After(left):
			case <-t.cancelled:
				return codeTransactionCancelled
			}
			return codeTransactionTimedOut
		}
		if left <= 0 {
			return codeTransactionTimedOut
		}
	} else if outage {
		<-t.cancelled
		return codeTransactionCancelled
	}
	return 0
}

func fail(code int) error { return Error{Code: code, Message: fmt.Sprintf("injected %d", code)} }

func (t *memTx) GetReadVersion() (int64, error) {
	if c := t.check(); c != 0 {
		return 0, fail(c)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.readVersion < 0 {
		t.db.mu.Lock()
		t.readVersion = t.db.version
		t.db.mu.Unlock()
	}
	return t.readVersion, nil
}

// readFault returns the code of an injected read fault, or 0.
func (t *memTx) readFault() int {
	t.mu.Lock()
	firstAttempt := t.retried == 0
	t.mu.Unlock()
	d := t.db
	d.mu.Lock()
	defer d.mu.Unlock()
	d.counters.reads++
	if len(d.faults.readErrs) > 0 {
		c := d.faults.readErrs[0]
		d.faults.readErrs = d.faults.readErrs[1:]
		return c
	}
	if n := d.faults.everyRead; n > 0 && d.counters.reads%n == 0 && firstAttempt {
		return d.faults.readCode
	}
	return 0
}

// readable reports a read's error code, or 0, and records its conflict
// range.
func (t *memTx) readable(r keyRange, snapshot bool) int {
	c := t.readCode(r, snapshot)
	if c != 0 {
		t.mu.Lock()
		if t.readErr == 0 {
			t.readErr = c
		}
		t.mu.Unlock()
	}
	return c
}

func (t *memTx) readCode(r keyRange, snapshot bool) int {
	if c := t.check(); c != 0 {
		return c
	}
	if _, err := t.GetReadVersion(); err != nil {
		return err.(Error).Code
	}
	if c := t.readFault(); c != 0 {
		return c
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, u := range t.unreadable {
		if u.overlaps(r) {
			return codeAccessedUnreadable
		}
	}
	if !snapshot {
		t.reads = append(t.reads, r)
	}
	return 0
}

func (t *memTx) Get(key []byte, snapshot bool) ([]byte, error) {
	if c := t.readable(point(key), snapshot); c != 0 {
		return nil, fail(c)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.valueLocked(string(key)), nil
}

// valueLocked is k's value as the transaction sees it; t.mu is held.
func (t *memTx) valueLocked(k string) []byte {
	t.db.mu.Lock()
	v := t.db.valueAt(k, t.readVersion)
	t.db.mu.Unlock()
	return applyOps(t.ops, k, v)
}

// applyOps applies the mutations of ops that touch k to v.
func applyOps(ops []memOp, k string, v []byte) []byte {
	for _, op := range ops {
		switch {
		case op.kind == "clearRange":
			if k >= string(op.key) && k < string(op.end) {
				v = nil
			}
		case string(op.key) != k:
		case op.kind == "set":
			v = op.param
		case op.kind == "clear":
			v = nil
		case op.kind == "add":
			v = kv.AddLE(v, int64(binary.LittleEndian.Uint64(op.param)))
		case op.kind == "max":
			v = kv.MaxLE(v, op.param)
		}
	}
	return v
}

func (t *memTx) GetRange(begin, end []byte, limit int, reverse, _ bool) rangeIterator {
	r := keyRange{string(begin), string(end)}
	if c := t.readable(r, false); c != 0 {
		return &memRange{err: fail(c)}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := map[string]bool{}
	t.db.mu.Lock()
	for k := range t.db.data {
		if k >= r.begin && k < r.end {
			keys[k] = true
		}
	}
	t.db.mu.Unlock()
	for _, op := range t.ops {
		if k := string(op.key); op.kind != "clearRange" && k >= r.begin && k < r.end {
			keys[k] = true
		}
	}
	var out []kv.KeyValue
	for k := range keys {
		if v := t.valueLocked(k); v != nil {
			out = append(out, kv.KeyValue{Key: []byte(k), Value: slices.Clone(v)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Key, out[j].Key) < 0 })
	if reverse {
		slices.Reverse(out)
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return &memRange{kvs: out, pos: -1}
}

type memRange struct {
	kvs []kv.KeyValue
	pos int
	err error
}

func (r *memRange) Advance() bool {
	if r.err != nil {
		return true // Get reports it
	}
	r.pos++
	return r.pos < len(r.kvs)
}

func (r *memRange) Get() ([]byte, []byte, error) {
	if r.err != nil {
		return nil, nil, r.err
	}
	kv := r.kvs[r.pos]
	return kv.Key, kv.Value, nil
}

func (t *memTx) mutate(op memOp) {
	t.mu.Lock()
	defer t.mu.Unlock()
	op.key = slices.Clone(op.key)
	if op.kind != "clear" && op.kind != "clearRange" {
		op.param = append([]byte{}, op.param...) // an empty value is not a cleared one
	}
	t.ops = append(t.ops, op)
}

func (t *memTx) Set(key, value []byte) { t.mutate(memOp{kind: "set", key: key, param: value}) }
func (t *memTx) Clear(key []byte)      { t.mutate(memOp{kind: "clear", key: key}) }
func (t *memTx) ClearRange(begin, end []byte) {
	t.mutate(memOp{kind: "clearRange", key: begin, end: slices.Clone(end)})
}
func (t *memTx) Add(key, param []byte) { t.mutate(memOp{kind: "add", key: key, param: param}) }
func (t *memTx) Max(key, param []byte) { t.mutate(memOp{kind: "max", key: key, param: param}) }

// SetVersionstampedKey makes every key the template can become unreadable.
func (t *memTx) SetVersionstampedKey(key, value []byte) {
	tmpl, off := key[:len(key)-4], int(binary.LittleEndian.Uint32(key[len(key)-4:]))
	lo, hi := slices.Clone(tmpl), slices.Clone(tmpl)
	for i := range kv.StampSize {
		lo[off+i], hi[off+i] = 0, 0xff
	}
	t.mu.Lock()
	t.unreadable = append(t.unreadable, keyRange{string(lo), string(hi) + "\x00"})
	t.mu.Unlock()
	t.mutate(memOp{kind: "vkey", key: key, param: value})
}

func (t *memTx) SetVersionstampedValue(key, value []byte) {
	t.mu.Lock()
	t.unreadable = append(t.unreadable, point(key))
	t.mu.Unlock()
	t.mutate(memOp{kind: "vvalue", key: key, param: value})
}

func (t *memTx) Watch(key []byte) watchFuture {
	w := &memWatch{db: t.db, key: string(key), done: make(chan struct{})}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.readVersion < 0 {
		t.db.mu.Lock()
		t.readVersion = t.db.version
		t.db.mu.Unlock()
	}
	w.seen = slices.Clone(t.valueLocked(w.key))
	t.watches = append(t.watches, w)
	return w
}

func (t *memTx) GetVersionstamp() stampFuture {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stamp = &memStamp{done: make(chan struct{})}
	return t.stamp
}

func (t *memTx) GetCommittedVersion() (int64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.committed, nil
}

// commitFault returns the injected fault of this commit, if any.
func (d *memDB) commitFault(firstAttempt bool) (commitErr, bool) {
	d.counters.commits++
	if len(d.faults.commitErrs) > 0 {
		f := d.faults.commitErrs[0]
		d.faults.commitErrs = d.faults.commitErrs[1:]
		return f, true
	}
	if n := d.faults.everyCommit; n > 0 && d.counters.commits%n == 0 && firstAttempt {
		return commitErr{code: d.faults.commitCode, applied: d.faults.commitApplies}, true
	}
	return commitErr{}, false
}

func (t *memTx) Commit() error {
	if c := t.check(); c != 0 {
		t.endWatches(fail(c))
		return fail(c)
	}
	if _, err := t.GetReadVersion(); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.db
	d.mu.Lock()
	defer d.mu.Unlock()
	if t.readErr != 0 {
		t.endWatchesLocked(fail(t.readErr))
		return fail(t.readErr)
	}
	f, faulty := d.commitFault(t.retried == 0)
	if faulty && !f.applied {
		t.endWatchesLocked(fail(f.code))
		return fail(f.code)
	}
	size := 0
	for _, op := range t.ops {
		size += len(op.key) + len(op.param) + len(op.end)
	}
	for _, r := range t.reads {
		size += len(r.begin) + len(r.end)
	}
	if size > kv.MaxTransactionSize {
		t.endWatchesLocked(fail(codeTransactionTooLarge))
		return fail(codeTransactionTooLarge)
	}
	for _, c := range d.history {
		if c.version <= t.readVersion {
			continue
		}
		for _, w := range c.writes {
			for _, r := range t.reads {
				if w.overlaps(r) {
					t.endWatchesLocked(fail(codeNotCommitted))
					return fail(codeNotCommitted)
				}
			}
		}
	}
	var ops []memOp
	for _, op := range t.ops {
		if len(op.key) > 0 && op.key[0] == 0xff {
			if !t.system {
				t.endWatchesLocked(fail(codeKeyOutsideLegalRange))
				return fail(codeKeyOutsideLegalRange)
			}
			if string(op.key) == string(minRequiredCommitVersionKey) {
				// The cluster recovers at this version; later reads and
				// commits are past it.
				d.version = max(d.version, int64(binary.LittleEndian.Uint64(op.param)))
			}
			continue
		}
		ops = append(ops, op)
	}
	t.ops = ops
	if len(t.ops) > 0 {
		d.apply(t)
	}
	if faulty {
		// Applied, and yet reported as failed: "A transaction whose commit
		// result is unknown will set all of its watches with the
		// commit_unknown_result error."
		t.endWatchesLocked(fail(f.code))
		return fail(f.code)
	}
	for _, w := range t.watches {
		d.watches[w] = struct{}{}
		select {
		case d.activated <- w.key: // a nil channel never receives
		default:
		}
		d.checkWatch(w)
	}
	t.watches = nil
	return nil
}

// apply commits t's mutations at the next version; both locks are held.
func (d *memDB) apply(t *memTx) {
	d.version++
	d.counters.applied++
	v := d.version
	var stamp [kv.StampSize]byte
	binary.BigEndian.PutUint64(stamp[:8], uint64(v))
	var writes []keyRange
	changed := map[string]bool{}
	set := func(k string, val []byte) {
		d.data[k] = append(d.data[k], versioned{v, val})
		writes = append(writes, point([]byte(k)))
		changed[k] = true
	}
	for _, op := range t.ops {
		k := string(op.key)
		switch op.kind {
		case "set", "clear", "add", "max":
			set(k, applyOps([]memOp{op}, k, d.valueAt(k, v)))
		case "clearRange":
			for key := range d.data {
				if key >= k && key < string(op.end) && d.valueAt(key, v) != nil {
					set(key, nil)
				}
			}
			writes = append(writes, keyRange{k, string(op.end)})
		case "vkey":
			tmpl, off := slices.Clone(op.key[:len(op.key)-4]), int(binary.LittleEndian.Uint32(op.key[len(op.key)-4:]))
			copy(tmpl[off:], stamp[:])
			set(string(tmpl), op.param)
		case "vvalue":
			val, off := slices.Clone(op.param[:len(op.param)-4]), int(binary.LittleEndian.Uint32(op.param[len(op.param)-4:]))
			copy(val[off:], stamp[:])
			set(k, val)
		}
	}
	d.history = append(d.history, commitRecord{version: v, writes: writes})
	t.committed = v
	if t.stamp != nil {
		t.stamp.b = stamp[:]
		close(t.stamp.done)
	}
	for w := range d.watches {
		if changed[w.key] {
			d.checkWatch(w)
		}
	}
}

// checkWatch fires w if its key's value differs from the one it saw, now
// or, with a watch delay, later if it still does; d.mu is held.
func (d *memDB) checkWatch(w *memWatch) {
	if d.faults.watchDelay > 0 {
		time.AfterFunc(d.faults.watchDelay, func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.fireIfChanged(w)
		})
		return
	}
	d.fireIfChanged(w)
}

func (d *memDB) fireIfChanged(w *memWatch) {
	if _, ok := d.watches[w]; !ok {
		return
	}
	if !bytes.Equal(d.valueAt(w.key, d.version), w.seen) {
		delete(d.watches, w)
		w.finish(nil)
	}
}

func (t *memTx) endWatches(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.endWatchesLocked(err)
}

func (t *memTx) endWatchesLocked(err error) {
	for _, w := range t.watches {
		w.finish(err)
	}
	t.watches = nil
}

func (t *memTx) OnError(e Error) error {
	switch e.Code {
	case codeTransactionTooOld, codeNotCommitted, codeCommitUnknownResult:
	default:
		return e
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.limit >= 0 && t.retried >= t.limit {
		return e
	}
	t.retried++
	t.endWatchesLocked(fail(codeTransactionCancelled))
	t.readVersion, t.ops, t.reads, t.unreadable, t.stamp, t.readErr, t.system = -1, nil, nil, nil, nil, 0, false
	return nil
}

func (t *memTx) SetSystemAccess() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.system = true
	return nil
}

func (t *memTx) Cancel() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.isCancelled {
		t.isCancelled = true
		close(t.cancelled)
	}
	t.endWatchesLocked(fail(codeTransactionCancelled))
}

type memStamp struct {
	done chan struct{}
	b    []byte
}

func (s *memStamp) Get() ([]byte, error) {
	select {
	case <-s.done:
		return s.b, nil
	default:
		return nil, fail(2000) // client_invalid_operation: no commit
	}
}

type memWatch struct {
	db   *memDB
	key  string
	seen []byte
	once sync.Once
	done chan struct{}
	err  error
}

func (w *memWatch) finish(err error) {
	w.once.Do(func() {
		w.err = err
		close(w.done)
	})
}

func (w *memWatch) Get() error {
	<-w.done
	return w.err
}

func (w *memWatch) Cancel() {
	w.db.mu.Lock()
	delete(w.db.watches, w)
	w.db.mu.Unlock()
	w.finish(fail(codeOperationCancelled))
}

// OpenFaulty returns a store over db, as Open does over a cluster.
func OpenFaulty(ctx context.Context, db *memDB, opts Options) (*Store, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	return newStore(ctx, db, func() {}, "(in memory)", opts)
}
