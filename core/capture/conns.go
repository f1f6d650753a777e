package capture

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"time"
)

// spares holds the connections a capturer needs only now and then: the
// reader a leapfrog begins before the held one ends, the connection that
// takes the write lock, and the one a checkpoint runs on. Between uses
// they wait here, and once none was used for idle they are closed, so a
// database that is not being written costs one SQLite connection, the
// held reader, instead of four. Each SQLite connection takes about 100 KB
// even when idle (its lookaside allocator, schema and page cache), which
// a daemon pays for every database it replicates. Opening one costs
// about 0.1 ms, outside the write lock; a database captured at least once
// every idle keeps its spare and pays that once.
//
// Its methods are safe for concurrent use: the closing runs on a timer.
type spares struct {
	db   *sql.DB // with no idle pool of its own: closing a Conn closes it
	idle time.Duration

	mu     sync.Mutex
	conns  []*sql.Conn // last returned last
	timer  *time.Timer // closes conns after idle; nil when none wait
	closed bool
}

// maxSpares bounds the connections kept waiting. Besides the held reader
// the capturer never uses more than one at a time (the one that takes
// the write lock, the next reader of a leapfrog, or the one a checkpoint
// runs on before it takes the lock), so one is all that need wait.
const maxSpares = 1

// spareIdle is how long unused spare connections are kept: long against
// the gap between two captures of a database being written, so that those
// do not open a connection each, and short against the life of one that
// was written once and then left alone.
const spareIdle = 10 * time.Second

func newSpares(db *sql.DB, idle time.Duration) *spares {
	return &spares{db: db, idle: idle}
}

// get returns a connection without a transaction: a waiting one, or a new
// one.
func (s *spares) get(ctx context.Context) (*sql.Conn, error) {
	s.mu.Lock()
	if n := len(s.conns); n > 0 {
		c := s.conns[n-1]
		s.conns = s.conns[:n-1]
		s.mu.Unlock()
		return c, nil
	}
	s.mu.Unlock()
	c, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("open connection: %w", err)
	}
	return c, nil
}

// put gives back a connection that holds no transaction. One that may
// still hold one (its ROLLBACK failed) must be closed instead: kept, it
// would pin a snapshot or the write lock.
func (s *spares) put(c *sql.Conn) {
	s.mu.Lock()
	if s.closed || len(s.conns) >= maxSpares {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.conns = append(s.conns, c)
	if s.timer == nil {
		s.timer = time.AfterFunc(s.idle, s.release)
	} else {
		s.timer.Reset(s.idle)
	}
	s.mu.Unlock()
}

// release closes the waiting connections.
func (s *spares) release() {
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// close closes the waiting connections and any given back later.
func (s *spares) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.release()
}

// Settle moves the held snapshot onto a connection of its own, opened
// now, and closes every other: the connection that did the start-up's
// work (checks, a snapshot or a catch-up read through virtual tables,
// the leapfrogs) keeps what that work left behind for as long as it
// lives: SQLite's page cache and schema of the virtual tables, and
// modernc.org/libc's per-connection stack, which only grows. A new
// connection that only begins a read costs about a third less, and when
// the old one is closed before the next database is opened, that
// database's connections reuse its memory (SQLite's allocator gives it
// back to the system only a whole 64 KB page at a time). Measured over
// 200 databases: about 110 KB per database without, 75 KB with.
//
// It is a leapfrog (the new read begins before the old one ends), so the
// held reader still began after the last capture. It does nothing while
// no reader is held (the next capture must see that, and catch up) or
// while the write lock is held. On an error the held reader stays as it
// was, or is the new one: nothing to undo.
func (c *Capturer) Settle(ctx context.Context) error {
	if !c.held.open || c.locked > 0 {
		return nil
	}
	// A waiting spare did work too: begin on a new connection.
	c.spares.release()
	err := c.leapfrog(ctx)
	c.spares.release()
	if err != nil {
		return fmt.Errorf("move the held read to a new connection: %w", err)
	}
	return nil
}

// DropIndexPages takes the pages of the WAL index (the -shm file) out of
// the process's resident memory; the database's next read maps those it
// needs again. SQLite maps the index 32 KB at a time, and Linux maps all
// 32 KB on the first read of any of it (fault-around): with the daemon
// idle they would stay resident for every database, 32 MB over 1,000 of
// them, where an idle database needs none. Call it once a database has
// gone quiet, from the goroutine that runs the capturer's other methods.
func (c *Capturer) DropIndexPages() {
	// The held reader's connection keeps the index mapped from the first
	// call to Close (see indexPages).
	if c.held.conn == nil || c.walPath == "" {
		return
	}
	if c.index == nil {
		c.index = newIndexPages(strings.TrimSuffix(c.walPath, "-wal") + "-shm")
	}
	if err := c.index.drop(); err != nil {
		c.log.Debug("release the WAL index's pages", "err", err)
	}
}
