package capture

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/sqlitereplicator/replicator/core/segment"
	"github.com/sqlitereplicator/replicator/core/sqliteuri"
)

// ErrNotWAL means the database is not in WAL mode.
var ErrNotWAL = errors.New("database is not in WAL mode")

// openDB opens the database read-write (never creating it) with SQLite's
// own automatic checkpoints off on our connections: the capturer decides
// when to checkpoint.
//
// Each connection's page cache is capped at captureCacheKiB: the capturer
// reads each page once (a snapshot or catch-up through sqlite_dbpage) and
// otherwise only opens snapshots, so SQLite's default cache (2 MB per
// connection) would only keep pages of the last snapshot resident, for
// every database the daemon holds.
//
// The pool keeps no idle connection of its own: closing a Conn closes the
// SQLite connection. The capturer keeps the ones it needs (see spares).
func openDB(path string, busy time.Duration) (*sql.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	q := url.Values{}
	q.Add("mode", "rw")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "wal_autocheckpoint(0)")
	q.Add("_pragma", fmt.Sprintf("cache_size(-%d)", captureCacheKiB))
	db, err := sql.Open("sqlite", sqliteuri.For(path, q))
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	db.SetMaxIdleConns(0)
	db.SetConnMaxLifetime(0)
	return db, nil
}

// captureCacheKiB is the page cache of each capture connection, in KiB.
const captureCacheKiB = 256

// checkWAL refuses a database that is not in WAL mode, saying how to fix it.
func checkWAL(ctx context.Context, c *sql.Conn, path string) error {
	var mode string
	if err := c.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode of %s: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("%w: %s has journal_mode=%s; switch it once with: sqlite3 %s 'PRAGMA journal_mode=WAL;' (the setting persists)",
			ErrNotWAL, path, mode, path)
	}
	return nil
}

// lockedHint explains an open that found the database locked for the
// whole busy timeout: what usually causes it, and the fix.
func lockedHint(err error, busy time.Duration) string {
	if !IsBusy(err) {
		return ""
	}
	return fmt.Sprintf(" (still locked after the busy timeout, %s: either a long write transaction, such as a bulk import or a migration, "+
		"which ends on its own: start again once it has; or an application with PRAGMA locking_mode=EXCLUSIVE, which holds the database for good: "+
		"replication needs it in the default NORMAL locking mode)", busy)
}

// walPath returns the WAL file SQLite uses for the database at path. It
// is the database's name as SQLite resolved it, symbolic links followed,
// plus "-wal": for a path through a link, path+"-wal" names a file no one
// writes, and a capture reading it would see no transaction at all.
func walPath(ctx context.Context, c *sql.Conn, path string) (string, error) {
	var file string
	if err := c.QueryRowContext(ctx, "SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file); err != nil {
		return "", fmt.Errorf("read the file name of %s: %w", path, err)
	}
	if file == "" {
		return "", fmt.Errorf("%s: SQLite reports no file for the database", path)
	}
	return file + "-wal", nil
}

// reader is a connection that holds a read transaction.
type reader struct {
	conn *sql.Conn
	open bool
}

// begin starts a read transaction and establishes its snapshot.
func (r *reader) begin(ctx context.Context) error {
	if _, err := r.conn.ExecContext(ctx, "BEGIN DEFERRED"); err != nil {
		// A BEGIN cut short by cancellation may still have opened the
		// transaction; the next begin would then fail.
		_, _ = r.conn.ExecContext(context.Background(), "ROLLBACK")
		return fmt.Errorf("begin read transaction: %w", err)
	}
	var n int
	if err := r.conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		_, _ = r.conn.ExecContext(context.Background(), "ROLLBACK")
		return fmt.Errorf("start read snapshot: %w", err)
	}
	r.open = true
	return nil
}

// end ends the read transaction. It ignores cancellation: a transaction
// left open by a cancelled ROLLBACK would make the next begin fail.
func (r *reader) end() error {
	if !r.open {
		return nil
	}
	r.open = false
	if _, err := r.conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		return fmt.Errorf("end read transaction: %w", err)
	}
	return nil
}

// readPages reads every page of the database as of the reader's snapshot,
// in page order, through the sqlite_dbpage virtual table, skipping the
// lock-byte page that SQLite never writes.
func (r *reader) readPages(ctx context.Context, pageSize uint32, fn func(pgno uint32, page []byte) error) (uint32, error) {
	rows, err := r.conn.QueryContext(ctx, "SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno")
	if err != nil {
		return 0, fmt.Errorf("read database pages: %w", err)
	}
	defer rows.Close()
	lock := segment.LockPage(pageSize)
	var n uint32
	for rows.Next() {
		var pgno int64
		var data []byte
		if err := rows.Scan(&pgno, &data); err != nil {
			return 0, fmt.Errorf("read database page: %w", err)
		}
		n = uint32(pgno)
		if n == lock {
			continue
		}
		if len(data) != int(pageSize) {
			data = append(data, make([]byte, int(pageSize)-len(data))...)[:pageSize]
		}
		if err := fn(n, data); err != nil {
			return 0, err
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read database pages: %w", err)
	}
	return n, nil
}

func pageSize(ctx context.Context, c *sql.Conn) (uint32, error) {
	var n int64
	if err := c.QueryRowContext(ctx, "PRAGMA page_size").Scan(&n); err != nil {
		return 0, fmt.Errorf("read page size: %w", err)
	}
	return uint32(n), nil
}

// checkpoint runs a PASSIVE checkpoint: it copies what no reader still
// needs into the database file and takes no lock that blocks writers.
// complete says the whole WAL is now in the database file; locked, that
// it did nothing because another connection was checkpointing.
func checkpoint(ctx context.Context, c *sql.Conn) (complete, locked bool, err error) {
	return checkpointResult(c.QueryRowContext(ctx, checkpointSQL))
}

const checkpointSQL = "PRAGMA wal_checkpoint(PASSIVE)"

func checkpointResult(row *sql.Row) (complete, locked bool, err error) {
	var busy, log, done int
	if err := row.Scan(&busy, &log, &done); err != nil {
		return false, false, fmt.Errorf("checkpoint: %w", err)
	}
	// SQLite reports -1 frames when it could not take the checkpointer
	// lock.
	return busy == 0 && log == done, busy != 0 && log == -1, nil
}
