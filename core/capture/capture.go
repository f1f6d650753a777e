package capture

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sqlitereplicator/replicator/core/localstate"
	"github.com/sqlitereplicator/replicator/core/segment"
)

// Options tune a Capturer.
type Options struct {
	// StateDir is the local state directory; empty means
	// localstate.DefaultPath(db).
	StateDir string
	// Compression of captured segments and snapshots.
	Compression segment.Compression
	// BusyTimeout bounds how long the capturer waits for the write lock
	// for a sync point; zero means 5s.
	BusyTimeout time.Duration
	// HashSaveInterval is how many transactions may pass between saves of
	// the page hash file; zero means 1000.
	HashSaveInterval uint64
	Logger           *slog.Logger
}

// Capturer captures one database.
type Capturer struct {
	path    string
	walPath string
	opts    Options
	log     *slog.Logger
	dir     *localstate.Dir

	db      *sql.DB
	readers [2]reader
	cur     int // index of the reader holding the current snapshot
	writer  *sql.Conn
	locked  int // nesting depth of lockWrite
	ckpt    *sql.Conn

	pos    localstate.Position
	hashes *localstate.Hashes // at pos.TxID

	savedHashes uint64 // txid of the hash file on disk
	// copied is the WAL position of the last complete checkpoint: the WAL
	// up to it is in the database file, and the next writer starts the
	// WAL over.
	copied localstate.WALPosition
	// broken, when set, says why the next step must catch up: a tail
	// read under the write lock could not be staged after it.
	broken string
	// beforeLateStage, if set, runs between the release of a checkpoint's
	// write lock and the staging of its tail (tests simulate a crash
	// there).
	beforeLateStage func() error
}

// Event describes what a capture produced.
type Event struct {
	// Segment is the staged segment, if any.
	Segment *localstate.StagedSegment
	// Snapshot is a staged snapshot, when a new generation began.
	Snapshot *localstate.StagedSegment
	// Reason says why a generation began or a catch-up ran ("" otherwise).
	Reason string
}

// ErrReplaced means the database file was replaced under the capturer;
// close it and open a new one, which starts a new generation.
var ErrReplaced = errors.New("database file was replaced")

// Open opens the database at path for capture, locks its state directory
// and re-establishes the captured position (continuing, catching up, or
// starting a new generation). The returned Event says which.
func Open(ctx context.Context, path string, opts Options) (*Capturer, Event, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, Event{}, err
	}
	if opts.StateDir == "" {
		opts.StateDir = localstate.DefaultPath(abs)
	}
	if opts.BusyTimeout == 0 {
		opts.BusyTimeout = 5 * time.Second
	}
	if opts.HashSaveInterval == 0 {
		opts.HashSaveInterval = 1000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Capturer{path: abs, walPath: abs + "-wal", opts: opts, log: opts.Logger.With("db", abs)}
	ev, err := c.open(ctx)
	if err != nil {
		c.Close()
		return nil, Event{}, err
	}
	return c, ev, nil
}

func (c *Capturer) open(ctx context.Context) (Event, error) {
	db, err := openDB(c.path, c.opts.BusyTimeout)
	if err != nil {
		return Event{}, err
	}
	c.db = db
	if err := checkWAL(ctx, db, c.path); err != nil {
		return Event{}, err
	}
	dir, err := localstate.Open(c.opts.StateDir)
	if err != nil {
		return Event{}, err
	}
	c.dir = dir
	for i := range c.readers {
		if c.readers[i].conn, err = db.Conn(ctx); err != nil {
			return Event{}, fmt.Errorf("open connection: %w", err)
		}
	}
	if c.writer, err = db.Conn(ctx); err != nil {
		return Event{}, fmt.Errorf("open connection: %w", err)
	}
	if c.ckpt, err = db.Conn(ctx); err != nil {
		return Event{}, fmt.Errorf("open connection: %w", err)
	}
	if err := c.readers[0].begin(ctx); err != nil {
		return Event{}, err
	}
	return c.resume(ctx)
}

// Close ends the read transactions and releases the state directory. It
// captures nothing; call Step first for a final capture.
func (c *Capturer) Close() error {
	for i := range c.readers {
		if c.readers[i].conn != nil {
			_ = c.readers[i].end()
			c.readers[i].conn.Close()
		}
	}
	if c.writer != nil {
		c.writer.Close()
	}
	if c.ckpt != nil {
		c.ckpt.Close()
	}
	var err error
	if c.hashes != nil && c.dir != nil && c.savedHashes != c.pos.TxID {
		err = c.saveHashes()
	}
	if c.db != nil {
		c.db.Close()
	}
	if c.dir != nil {
		c.dir.Close()
	}
	return err
}

// Position returns the last captured position.
func (c *Capturer) Position() localstate.Position { return c.pos }

// Dir returns the state directory.
func (c *Capturer) Dir() *localstate.Dir { return c.dir }

// Path returns the database path.
func (c *Capturer) Path() string { return c.path }

// WALPath returns the path of the database's WAL.
func (c *Capturer) WALPath() string { return c.walPath }

// leapfrog moves the held snapshot forward: the other reader begins before
// the current one ends, so there is never a moment without a reader.
func (c *Capturer) leapfrog(ctx context.Context) error {
	next := 1 - c.cur
	if err := c.readers[next].begin(ctx); err != nil {
		return err
	}
	if err := c.readers[c.cur].end(); err != nil {
		return err
	}
	c.cur = next
	return nil
}

// lockWrite takes SQLite's write lock (BEGIN IMMEDIATE) so that no
// transaction commits until unlockWrite.
// Calls nest: a catch-up inside a checkpoint keeps the checkpoint's lock.
func (c *Capturer) lockWrite(ctx context.Context) error {
	if c.locked == 0 {
		if _, err := c.writer.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			// A BEGIN cut short by cancellation may still have taken the
			// lock: never leave the application waiting on it.
			_, _ = c.writer.ExecContext(context.Background(), "ROLLBACK")
			return fmt.Errorf("take the write lock: %w", err)
		}
	}
	c.locked++
	return nil
}

// unlockWrite ignores cancellation: the application must never be left
// waiting on a write lock because a shutdown cancelled our ROLLBACK.
func (c *Capturer) unlockWrite() {
	c.locked--
	if c.locked > 0 {
		return
	}
	if _, err := c.writer.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		c.log.Warn("release the write lock", "err", err)
	}
}

func (c *Capturer) saveHashes() error {
	if err := c.dir.SaveHashes(c.hashes); err != nil {
		return err
	}
	c.savedHashes = c.hashes.TxID
	return nil
}

// HashesTxID is the txid of the page hash file on disk: staged segments at
// or below it are no longer needed for recovery.
func (c *Capturer) HashesTxID() uint64 { return c.savedHashes }

// SaveHashes saves the page hashes of the captured position now rather
// than at the next interval, so that the staged segments up to it are no
// longer needed for crash recovery (when local space is short).
func (c *Capturer) SaveHashes() error {
	if c.hashes == nil || c.savedHashes == c.pos.TxID {
		return nil
	}
	return c.saveHashes()
}

func fileID(path string) (localstate.FileID, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return localstate.FileID{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return localstate.FileID{}, nil
	}
	return localstate.FileID{Dev: uint64(st.Dev), Ino: st.Ino}, nil
}

// NewGenerationID returns a generation id that sorts by creation time.
func NewGenerationID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}
