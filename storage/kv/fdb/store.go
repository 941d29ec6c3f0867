package fdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"github.com/coditect/coditect/storage/kv"
)

// Options configure a Store.
type Options struct {
	// Prefix is prepended to every key: the store sees only the keys under
	// it, and callers never see it. It must not start with 0xff (the system
	// keyspace) and shortens the largest key a caller may use by its length.
	// Empty means FoundationDB's whole user keyspace, up to 0xff. Open
	// records the prefix at the cluster's root and refuses one that
	// overlaps another store's (ErrPrefixOverlap), so a store on the whole
	// keyspace must be the only one on its cluster.
	Prefix []byte

	// MaxTransactionAge is the client-side age limit of a transaction
	// attempt; 0 means kv.MaxTransactionAge. A shorter limit lets tests
	// reach kv.ErrTransactionTooOld quickly; a longer one cannot outlast
	// FoundationDB's own 5 s.
	MaxTransactionAge time.Duration

	// TransactionTimeout bounds each Update and View, its retries
	// included (FoundationDB's transaction_timeout database option); 0
	// means DefaultTransactionTimeout. A transaction that runs out of it,
	// as during an outage, fails with kv.ErrUnavailable.
	TransactionTimeout time.Duration

	// RetryLimit bounds the retries of one Update or View (FoundationDB's
	// transaction_retry_limit database option); 0 means DefaultRetryLimit.
	RetryLimit int
}

// The defaults of Options.TransactionTimeout and Options.RetryLimit: long
// enough for a busy cluster's retries, short enough that a tool call during
// an outage fails with kv.ErrUnavailable rather than hanging.
const (
	DefaultTransactionTimeout = 10 * time.Second
	DefaultRetryLimit         = 100
)

// connectTimeout bounds Open's first round trip to the cluster when ctx has
// no deadline, so that a wrong cluster file or a cluster that is down fails
// at open rather than hanging the first transaction.
const connectTimeout = 15 * time.Second

// Store is a kv.Store on a FoundationDB cluster. It is safe for concurrent
// use.
type Store struct {
	db          database
	release     func()
	clusterFile string
	prefix      []byte
	end         []byte // the first key after the store's keys
	maxAge      time.Duration

	// closing is cancelled by Close; it cancels transactions in flight.
	closing     context.Context
	closeFn     context.CancelFunc
	mu          sync.Mutex
	closed      bool
	inflight    sync.WaitGroup
	watches     map[*watch]struct{}
	releaseOnce sync.Once
}

var _ kv.Store = (*Store)(nil)

// newStore returns a store of the keys under opts.Prefix of db, after one
// round trip to the cluster, bounded by ctx or, when ctx has no deadline,
// by 15 s; a cluster that does not answer is kv.ErrUnavailable. release
// gives db back; newStore calls it when it fails.
func newStore(ctx context.Context, db database, release func(), clusterFile string, opts Options) (*Store, error) {
	s := &Store{
		db:          db,
		release:     release,
		clusterFile: clusterFile,
		prefix:      append([]byte(nil), opts.Prefix...),
		maxAge:      opts.MaxTransactionAge,
		watches:     make(map[*watch]struct{}),
	}
	if len(s.prefix) == 0 {
		s.end = []byte{0xff}
	} else {
		s.end = kv.PrefixEnd(s.prefix)
	}
	if s.maxAge <= 0 || s.maxAge > kv.MaxTransactionAge {
		s.maxAge = kv.MaxTransactionAge
	}
	s.closing, s.closeFn = context.WithCancel(context.Background())
	if err := s.setOptions(opts); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.register(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// setOptions sets the database's transaction timeout and retry limit.
// FoundationDB keeps both across OnError from API version 610 on, so they
// bound a whole retry loop, not one attempt.
func (s *Store) setOptions(opts Options) error {
	timeout, limit := opts.TransactionTimeout, opts.RetryLimit
	if timeout <= 0 {
		timeout = DefaultTransactionTimeout
	}
	if limit <= 0 {
		limit = DefaultRetryLimit
	}
	if err := s.db.SetTransactionTimeout(timeout.Milliseconds()); err != nil {
		return fmt.Errorf("fdb: set the transaction timeout: %w", err)
	}
	if err := s.db.SetTransactionRetryLimit(int64(limit)); err != nil {
		return fmt.Errorf("fdb: set the transaction retry limit: %w", err)
	}
	return nil
}

func (o Options) validate() error {
	if len(o.Prefix) > 0 && (bytes.HasPrefix(o.Prefix, registryPrefix) || bytes.HasPrefix(registryPrefix, o.Prefix)) {
		return fmt.Errorf("fdb: prefix %s: %w: it overlaps %s, where the stores of a cluster record their prefixes",
			kv.DisplayKey(o.Prefix), kv.ErrKeyOutsideLegalRange, kv.DisplayKey(registryPrefix))
	}
	if len(o.Prefix) > 0 && o.Prefix[0] == 0xff {
		return fmt.Errorf("fdb: prefix %s: %w: keys from 0xff on are FoundationDB's system keys",
			kv.DisplayKey(o.Prefix), kv.ErrKeyOutsideLegalRange)
	}
	if len(o.Prefix) >= kv.MaxKeySize {
		return &kv.LimitError{Err: kv.ErrKeyTooLarge, Op: "prefix", Key: o.Prefix, Size: len(o.Prefix), Limit: kv.MaxKeySize - 1}
	}
	return nil
}

// ping reads the cluster's current version, which needs the coordinators
// and a proxy to answer.
func (s *Store) ping(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, connectTimeout)
		defer cancel()
	}
	err := s.transact(ctx, func(*tx) error { return nil })
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("fdb: open cluster file %s: %w: no answer from the cluster in time; is it running, and does the cluster file name its coordinators?",
			describeClusterFile(s.clusterFile), kv.ErrUnavailable)
	}
	if err != nil {
		return fmt.Errorf("fdb: open cluster file %s: %w", describeClusterFile(s.clusterFile), err)
	}
	return nil
}

// Prefix returns a copy of the store's key prefix.
func (s *Store) Prefix() []byte { return append([]byte(nil), s.prefix...) }

// Update implements kv.Store. fn runs in transact's retry loop, which
// retries conflicts and commit_unknown_result (so fn may run again after a
// commit that landed; see the package documentation on idempotent appends).
// It stops, without retrying, on ctx's end, on kv.ErrTransactionTooOld, on a
// limit error, and on any error fn returns. Every commit is durable (on the
// cluster's replicated logs), so kv.WithRelaxedDurability changes nothing.
func (s *Store) Update(ctx context.Context, fn func(kv.Tx) error) (kv.Versionstamp, error) {
	var stamp stampFuture
	var committed transaction
	err := s.transact(ctx, func(t *tx) error {
		stamp = nil
		if err := fn(t); err != nil {
			return err
		}
		if err := t.finish(); err != nil {
			return err
		}
		if t.wrote {
			// The future must be taken before the commit; it is ready after
			// a successful one.
			stamp = t.tr.GetVersionstamp()
			committed = t.tr
		}
		return nil
	})
	if err != nil || stamp == nil {
		return kv.Versionstamp{}, err
	}
	b, err := stamp.Get()
	if err != nil {
		// A transaction whose writes FoundationDB reduced to nothing commits
		// read-only and has no versionstamp.
		if v, verr := committed.GetCommittedVersion(); verr == nil && v == -1 {
			return kv.Versionstamp{}, nil
		}
		return kv.Versionstamp{}, fmt.Errorf("fdb: committed, but reading the commit's versionstamp failed: %w", err)
	}
	if len(b) != kv.StampSize {
		return kv.Versionstamp{}, fmt.Errorf("fdb: committed, but the commit's versionstamp has %d bytes, not %d", len(b), kv.StampSize)
	}
	return kv.NewVersionstamp([kv.StampSize]byte(b), 0), nil
}

// View implements kv.Store. It runs fn through transact, as Update does,
// and commits the (read-only) transaction: FoundationDB activates a watch
// when the transaction that set it commits, and ReadTransact never commits,
// so ReadTx.Watch would never see another client's change. A read-only
// commit is answered by the client without a round trip.
func (s *Store) View(ctx context.Context, fn func(kv.ReadTx) error) error {
	return s.transact(ctx, func(t *tx) error {
		if err := fn(readTx{t}); err != nil {
			return err
		}
		return t.finish()
	})
}

// transact runs fn in a retry loop with one tx per attempt, the loop of the
// binding's Database.Transact: run the function, commit, and on an Error
// let OnError decide, after its backoff, whether to run again. It checks ctx
// before each attempt and cancels the FoundationDB transaction when ctx ends
// or the store closes, so that a blocked read or commit returns; errors
// that are not Errors (ctx's, the contract's) stop the loop. Each attempt
// first obtains its read version, so that its age is measured from it: a
// transaction_too_old (1007) of an attempt younger than the store's age
// limit comes from a recovery's version jump and is retried.
func (s *Store) transact(ctx context.Context, fn func(*tx) error) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.inflight.Done()
	tr, err := s.db.CreateTransaction()
	if err != nil {
		return opErr(ctx, "create transaction", nil, err, false)
	}
	// OnError resets the same transaction for every attempt, so one
	// registration covers every attempt and its commit.
	stopCtx := context.AfterFunc(ctx, tr.Cancel)
	defer stopCtx()
	stopClose := context.AfterFunc(s.closing, tr.Cancel)
	defer stopClose()
	for {
		t, err := s.attempt(ctx, tr, fn)
		if err == nil {
			return nil
		}
		old := t != nil && t.old()
		var fe Error
		if !errors.As(err, &fe) {
			return err
		}
		if fe.Code == codeTransactionTooOld && old {
			return opErr(ctx, "commit", nil, fe, true)
		}
		if oerr := tr.OnError(fe); oerr != nil {
			// As the binding's retry loop does, keep the attempt's error
			// (with its operation and key) when OnError returns its code.
			var ne Error
			if errors.As(oerr, &ne) && ne.Code == fe.Code {
				oerr = err
			}
			return s.finalErr(ctx, oerr, old)
		}
	}
}

// attempt runs fn once on tr and commits; it returns the attempt's tx once
// it has one (for its age) and the attempt's error.
func (s *Store) attempt(ctx context.Context, tr transaction, fn func(*tx) error) (*tx, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.closing.Err() != nil {
		return nil, fmt.Errorf("fdb: %w", kv.ErrClosed)
	}
	rv, err := tr.GetReadVersion()
	if err != nil {
		return nil, opErr(ctx, "read version", nil, err, false)
	}
	t := &tx{s: s, ctx: ctx, tr: tr, start: time.Now(), readVersion: rv}
	if err := t.run(fn); err != nil {
		return t, err
	}
	return t, tr.Commit()
}

// begin admits one operation unless the store is closed or ctx is done.
func (s *Store) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("fdb: %w", kv.ErrClosed)
	}
	s.inflight.Add(1)
	return nil
}

// Watch implements kv.Store: it sets a watch in a read-only transaction and
// waits for it.
func (s *Store) Watch(ctx context.Context, key []byte) error {
	var w kv.Watch
	err := s.View(ctx, func(t kv.ReadTx) error {
		if w != nil {
			w.Cancel() // from an attempt that did not commit
		}
		w = t.Watch(key)
		return nil
	})
	if w != nil {
		defer w.Cancel()
	}
	if err != nil {
		return err
	}
	return w.Wait(ctx)
}

// Close implements kv.Store. It cancels transactions in flight and waits
// for them to return, ends pending watches with kv.ErrClosed and releases
// the cluster connection. It must not be called from inside a transaction
// function. Closing a closed store does nothing.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ws := s.watches
	s.watches = nil
	s.mu.Unlock()

	if s.closeFn != nil {
		s.closeFn()
	}
	for w := range ws {
		w.finish(fmt.Errorf("fdb: %w", kv.ErrClosed))
	}
	s.inflight.Wait()
	s.releaseOnce.Do(s.release)
	return nil
}

// URL returns the store URL that OpenURL and storage.Open accept for
// clusterFile and opts: fdb:///path/to/fdb.cluster?prefix=… with the prefix's
// bytes percent-encoded, or fdb:/// for the default cluster file. A relative
// cluster file is made absolute. MaxTransactionAge is not part of the URL.
func URL(clusterFile string, opts Options) (string, error) {
	u := url.URL{Scheme: "fdb", Path: "/"}
	if clusterFile != "" {
		abs, err := filepath.Abs(clusterFile)
		if err != nil {
			return "", fmt.Errorf("fdb: cluster file %s: %w", clusterFile, err)
		}
		u.Path = filepath.ToSlash(abs)
	}
	if len(opts.Prefix) > 0 {
		u.RawQuery = url.Values{"prefix": {string(opts.Prefix)}}.Encode()
	}
	return u.String(), nil
}

// ParseURL reads a store URL: fdb://<cluster file path>[?prefix=<bytes>].
// An empty path or "/" means the default cluster file; prefix holds the
// key prefix's bytes, percent-encoded. Anything else in the URL is an error,
// so that a misspelt prefix parameter cannot silently widen the store.
func ParseURL(u *url.URL) (clusterFile string, opts Options, err error) {
	bad := func(why string) (string, Options, error) {
		return "", Options{}, fmt.Errorf("fdb: store URL %q: %s; want fdb:///path/to/fdb.cluster?prefix=…", u.Redacted(), why)
	}
	switch {
	case u.Scheme != "fdb":
		return bad("the scheme is not fdb")
	case u.Opaque != "":
		return bad("the cluster file path must be absolute")
	case u.User != nil || u.Host != "":
		return bad("a cluster is named by its cluster file, not by a host")
	case u.Fragment != "":
		return bad("unexpected fragment")
	}
	q, perr := url.ParseQuery(u.RawQuery)
	if perr != nil {
		return bad(perr.Error())
	}
	for name, vals := range q {
		if name != "prefix" {
			return bad(fmt.Sprintf("unknown parameter %q (the only one is prefix)", name))
		}
		if len(vals) != 1 {
			return bad("prefix given more than once")
		}
		if vals[0] == "" {
			return bad("the prefix is empty; leave prefix= out to mean the whole keyspace")
		}
		opts.Prefix = []byte(vals[0])
	}
	if u.Path != "" && u.Path != "/" {
		clusterFile = filepath.FromSlash(u.Path)
	}
	if err := opts.validate(); err != nil {
		return "", Options{}, err
	}
	return clusterFile, opts, nil
}

func describeClusterFile(clusterFile string) string {
	if clusterFile == "" {
		return "(the default: $FDB_CLUSTER_FILE, ./fdb.cluster or /etc/foundationdb/fdb.cluster)"
	}
	return clusterFile
}
