package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// A readConn is a reader connection pinned with its own prepared
// statements, BEGIN and COMMIT among them, so that a read transaction
// (View) compiles nothing and binds nothing: database/sql's BeginTx
// compiles its BEGIN and COMMIT at every transaction, watches the context
// from a goroutine of its own, and Tx.StmtContext allocates a bound
// statement per statement and transaction.
type readConn struct {
	conn                    *sql.Conn
	st                      stmtSet
	begin, commit, rollback *sql.Stmt
}

// readPool holds the store's reader connections: at most opts.Readers,
// opened as Views need them; the readers pool keeps one more for the
// watch poller.
type readPool struct {
	mu     sync.Mutex
	idle   []*readConn
	open   int
	max    int
	freed  chan struct{} // signalled when a connection is put back
	closed bool
}

func newReadPool(max int) *readPool {
	return &readPool{max: max, freed: make(chan struct{}, 1)}
}

// get returns an idle reader connection, opens one while fewer than max
// are open, or waits for one.
func (p *readPool) get(ctx context.Context, db *sql.DB) (*readConn, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, errPoolClosed
		}
		if n := len(p.idle); n > 0 {
			rc := p.idle[n-1]
			p.idle = p.idle[:n-1]
			p.mu.Unlock()
			return rc, nil
		}
		if p.open < p.max {
			p.open++
			p.mu.Unlock()
			rc, err := openReadConn(ctx, db)
			if err != nil {
				p.mu.Lock()
				p.open--
				p.mu.Unlock()
				p.signal()
				return nil, err
			}
			return rc, nil
		}
		p.mu.Unlock()
		select {
		case <-p.freed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

var errPoolClosed = fmt.Errorf("kv/sqlite: store closed")

func (p *readPool) signal() {
	select {
	case p.freed <- struct{}{}:
	default:
	}
}

// put returns rc to the pool; a broken connection (its transaction could
// not be ended) is closed instead, as is every connection once the pool is
// closed.
func (p *readPool) put(rc *readConn, broken bool) {
	p.mu.Lock()
	if broken || p.closed {
		p.open--
		p.mu.Unlock()
		rc.close()
		p.signal()
		return
	}
	p.idle = append(p.idle, rc)
	p.mu.Unlock()
	p.signal()
}

// close closes the idle connections; those in use are closed when put
// back.
func (p *readPool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.open -= len(idle)
	p.mu.Unlock()
	for _, rc := range idle {
		rc.close()
	}
}

func openReadConn(ctx context.Context, db *sql.DB) (*readConn, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	rc := &readConn{conn: conn}
	if err := rc.st.prepare(ctx, conn); err != nil {
		rc.close()
		return nil, fmt.Errorf("kv/sqlite: prepare: %w", err)
	}
	for _, s := range []struct {
		s **sql.Stmt
		q string
	}{{&rc.begin, `BEGIN`}, {&rc.commit, `COMMIT`}, {&rc.rollback, `ROLLBACK`}} {
		if *s.s, err = conn.PrepareContext(ctx, s.q); err != nil {
			rc.close()
			return nil, fmt.Errorf("kv/sqlite: prepare %s: %w", s.q, err)
		}
	}
	return rc, nil
}

func (rc *readConn) close() {
	rc.st.close()
	for _, s := range []*sql.Stmt{rc.begin, rc.commit, rc.rollback} {
		if s != nil {
			s.Close()
		}
	}
	rc.conn.Close()
}
