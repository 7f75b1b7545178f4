package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// defaultPGMaxConns bounds the connections a Store opens: the
	// collector writes in batches from a few goroutines and the admin API
	// reads now and then; more connections would only queue in PostgreSQL.
	defaultPGMaxConns = 8
	// pgPingIdle is how long a connection may sit idle before it is
	// checked with a ping on reuse: past it, a PostgreSQL restart or a
	// proxy timeout may have killed it, and one round trip is cheaper than
	// failing the caller's batch.
	pgPingIdle = time.Minute
	// pgCloseTimeout bounds the polite termination of a connection.
	pgCloseTimeout = 5 * time.Second
	// pgTxIdle is the transaction status PostgreSQL reports for a
	// connection outside any transaction: the only state safe to reuse.
	pgTxIdle = 'I'
)

// errPoolClosed is returned by a pool used after Close.
var errPoolClosed = errors.New("connection pool closed")

// pgPool is a minimal pool of pgx connections. It exists because this
// module's go.sum does not carry pgxpool's dependency (jackc/puddle);
// it offers what the store needs: a bounded number of connections, reuse
// of healthy idle ones, and disposal of broken ones.
type pgPool struct {
	cfg   *pgx.ConnConfig
	slots chan struct{} // one token per open or opening connection in use

	mu     sync.Mutex
	idle   []idleConn // most recently used last
	closed bool
}

// idleConn is a pooled connection and when it was returned.
type idleConn struct {
	c     *pgx.Conn
	since time.Time
}

// newPGPool returns a pool of at most maxConns connections made from cfg.
func newPGPool(cfg *pgx.ConnConfig, maxConns int) *pgPool {
	return &pgPool{cfg: cfg, slots: make(chan struct{}, maxConns)}
}

// acquire returns a connection, waiting for a free slot until ctx ends.
func (p *pgPool) acquire(ctx context.Context) (*pgx.Conn, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a connection: %w", ctx.Err())
	}
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			<-p.slots
			return nil, errPoolClosed
		}
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		ic := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if time.Since(ic.since) < pgPingIdle || ic.c.Ping(ctx) == nil {
			return ic.c, nil
		}
		closeConn(ic.c)
	}
	c, err := pgx.ConnectConfig(ctx, p.cfg.Copy())
	if err != nil {
		<-p.slots
		return nil, fmt.Errorf("connect: %w", err)
	}
	return c, nil
}

// release returns c to the pool, or closes it when it is broken, still
// in a transaction, or the pool is closed.
func (p *pgPool) release(c *pgx.Conn) {
	defer func() { <-p.slots }()
	if c.IsClosed() || c.PgConn().TxStatus() != pgTxIdle {
		closeConn(c)
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		closeConn(c)
		return
	}
	p.idle = append(p.idle, idleConn{c: c, since: time.Now()})
	p.mu.Unlock()
}

// run calls fn with a pooled connection.
func (p *pgPool) run(ctx context.Context, fn func(*pgx.Conn) error) error {
	c, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	defer p.release(c)
	return fn(c)
}

// tx calls fn in a transaction on a pooled connection, committing when fn
// returns nil and rolling back otherwise.
func (p *pgPool) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return p.run(ctx, func(c *pgx.Conn) error { return pgx.BeginFunc(ctx, c, fn) })
}

// close closes the idle connections and makes the pool close the others
// as they are released.
func (p *pgPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, ic := range idle {
		closeConn(ic.c)
	}
}

// closeConn terminates c, bounded by pgCloseTimeout. Its error is of no
// use: the connection is discarded either way.
func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), pgCloseTimeout)
	defer cancel()
	_ = c.Close(ctx)
}
