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
	"strconv"
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
	// NewestElsewhere, when set, returns the newest generation id the
	// replicas hold (or ""). It is asked before a new generation is named,
	// which is then named to sort after it: restore takes the last
	// generation by name as the newest, and a clock that reads earlier
	// than that one began (a machine that booted with its clock behind,
	// another host's clock ahead) would otherwise name the new one first.
	NewestElsewhere func(ctx context.Context) string
	Logger          *slog.Logger

	// beforeFirstCapture, when set (by tests), runs at start-up after the
	// check that the WAL continues and before the first capture.
	beforeFirstCapture func()
	// resumeTailLimit, when set (by tests), replaces maxLockedTail for the
	// first capture after start-up.
	resumeTailLimit int64
}

// Capturer captures one database.
type Capturer struct {
	path    string
	walPath string
	ckpt    *ckptLock // nil when it cannot be held
	index   *indexPages
	scanner idleScanner
	opts    Options
	log     *slog.Logger
	dir     *localstate.Dir

	db *sql.DB
	// held is the reader holding the current snapshot. It holds none
	// only after a read failed to begin again, and then the next capture
	// catches up.
	held reader
	// spares has the connections the capturer needs only for a moment.
	spares *spares
	writer *sql.Conn // holds the write lock while locked > 0
	locked int       // nesting depth of lockWrite

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
	// beforeWriteLock, if set, runs just before a checkpoint takes the
	// write lock (tests write there what the locked part is to read).
	beforeWriteLock func()
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
	c := &Capturer{path: abs, opts: opts, log: opts.Logger.With("db", abs), scanner: idleScanner{idle: scanIdle}}
	ev, err := c.open(ctx)
	if err != nil {
		c.Close()
		return nil, Event{}, err
	}
	// Start idle: close the spare that start-up used (a sync point's
	// write lock, a first capture's leapfrog) now rather than after
	// spareIdle. SQLite's allocator gives memory back to the system only a
	// whole page at a time, so a connection closed later, once the
	// daemon has opened its other databases in between, leaves most of
	// its memory behind (about 70 KB of the 100 KB, measured).
	c.spares.release()
	return c, ev, nil
}

func (c *Capturer) open(ctx context.Context) (Event, error) {
	db, err := openDB(c.path, c.opts.BusyTimeout)
	if err != nil {
		return Event{}, err
	}
	c.db = db
	c.spares = newSpares(db, spareIdle)
	if c.held.conn, err = db.Conn(ctx); err != nil {
		return Event{}, fmt.Errorf("open connection: %w%s", err, lockedHint(err, c.opts.BusyTimeout))
	}
	if err := checkWAL(ctx, c.held.conn, c.path); err != nil {
		return Event{}, fmt.Errorf("%w%s", err, lockedHint(err, c.opts.BusyTimeout))
	}
	if c.walPath, err = walPath(ctx, c.held.conn, c.path); err != nil {
		return Event{}, err
	}
	dir, err := localstate.Open(c.opts.StateDir)
	if err != nil {
		return Event{}, err
	}
	c.dir = dir
	if err := c.held.begin(ctx); err != nil {
		return Event{}, err
	}
	c.ckpt = openCkptLock(c.walPath, c.log)
	return c.resume(ctx)
}

// Close ends the read transactions and releases the state directory. It
// captures nothing; call Step first for a final capture.
func (c *Capturer) Close() error {
	if c.held.conn != nil {
		_ = c.held.end()
		c.held.conn.Close()
		c.held.conn = nil // and the WAL index may be unmapped
	}
	if c.writer != nil {
		c.writer.Close()
	}
	if c.spares != nil {
		c.spares.close()
	}
	var err error
	if c.hashes != nil && c.dir != nil && c.savedHashes != c.pos.TxID {
		err = c.saveHashes()
	}
	if c.db != nil {
		c.db.Close()
	}
	c.ckpt.close() // only now: see ckptLock
	c.scanner.stop()
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

// leapfrog moves the held snapshot forward: a second connection begins a
// read before the held one ends, so there is never a moment without a
// reader. The connection that held the old snapshot becomes a spare.
//
// Under the write lock (a sync point, a snapshot) the held reader ends and
// begins again on its own connection instead, as a checkpoint does: no
// one can reset the WAL while we hold the write lock, so that instant
// without a reader is safe, and no second connection is opened for it.
// Should the new read fail to begin, no reader is held; the next capture
// sees that and catches up rather than trust the WAL.
func (c *Capturer) leapfrog(ctx context.Context) error {
	if c.locked > 0 {
		if err := c.held.end(); err != nil {
			return err
		}
		return c.held.begin(context.WithoutCancel(ctx))
	}
	conn, err := c.spares.get(ctx)
	if err != nil {
		return err
	}
	next := reader{conn: conn}
	if err := next.begin(ctx); err != nil {
		// begin tried to end what it may have begun; not knowing whether
		// it could, close the connection rather than keep it.
		conn.Close()
		return err
	}
	prev := c.held
	c.held = next
	err = prev.end()
	c.spareOrClose(prev.conn, err)
	return err
}

// spareOrClose gives conn back to the spares when the statement that was
// to leave it without a transaction succeeded (err is nil), and closes it
// otherwise: a connection that may still hold a read transaction or the
// write lock must not wait among the spares. Closing it ends both.
func (c *Capturer) spareOrClose(conn *sql.Conn, err error) {
	if err != nil {
		conn.Close()
		return
	}
	c.spares.put(conn)
}

// lockWrite takes SQLite's write lock (BEGIN IMMEDIATE) so that no
// transaction commits until unlockWrite.
// Calls nest: a catch-up inside a checkpoint keeps the checkpoint's lock.
func (c *Capturer) lockWrite(ctx context.Context) error {
	if c.locked > 0 {
		c.locked++
		return nil
	}
	w, err := c.spares.get(ctx)
	if err != nil {
		return err
	}
	if _, err := w.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		c.spareOrClose(w, undoBegin(w))
		return fmt.Errorf("take the write lock: %w", err)
	}
	c.writer, c.locked = w, 1
	return nil
}

// undoBegin ends whatever a failed BEGIN IMMEDIATE on w may have begun: one
// cut short by cancellation may still have taken the lock, and the
// application must never be left waiting on it. It returns nil when w
// surely holds no transaction now.
func undoBegin(w *sql.Conn) error {
	_, err := w.ExecContext(context.Background(), "ROLLBACK")
	if noTransaction(err) {
		return nil
	}
	return err
}

// unlockWrite ignores cancellation: the application must never be left
// waiting on a write lock because a shutdown cancelled our ROLLBACK.
func (c *Capturer) unlockWrite() {
	c.locked--
	if c.locked > 0 {
		return
	}
	w := c.writer
	c.writer = nil
	_, err := w.ExecContext(context.Background(), "ROLLBACK")
	if err != nil {
		c.log.Warn("release the write lock; closing the connection to release it", "err", err)
	}
	c.spareOrClose(w, err)
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

// generationTime is the time a new generation is named for: now, unless
// the clock reads no later than the start of prev, the newest generation
// it must follow (the clock was set back since, or reads behind another
// host's): then a moment after that one. Named for now, the new
// generation would sort first, and a restore of the latest generation
// would restore the old one.
func generationTime(now time.Time, prev string) time.Time {
	if t, ok := generationStart(prev); ok && !now.After(t) {
		return t.Add(time.Microsecond)
	}
	return now
}

// generationStart parses the time at the head of a generation id, of
// either form NewGenerationID has made: the latest time an id made later
// must be past to sort after it.
func generationStart(id string) (time.Time, bool) {
	const whole = "20060102T150405"
	if len(id) < len(whole)+1 {
		return time.Time{}, false
	}
	t, err := time.Parse(whole, id[:len(whole)])
	if err != nil {
		return time.Time{}, false
	}
	rest := id[len(whole):]
	if len(rest) >= 10 && rest[9] == 'Z' {
		ns, err := strconv.Atoi(rest[:9])
		if err != nil {
			return time.Time{}, false
		}
		return t.Add(time.Duration(ns)), true
	}
	// The whole-second form sorts after every nanosecond id of its
	// second ('Z' after any digit): count it as the second's end.
	return t.Add(time.Second - time.Microsecond), rest[0] == 'Z'
}

// NewGenerationID returns a generation id that sorts by creation time to
// the nanosecond (20261122T130909123456789Z-1a2b). Restore and retention
// take the last generation in name order as the newest, so two
// generations begun within one second (a database replaced twice, a
// state directory lost and a new one started at once) must not be ordered
// by their random part: a latest restore would pick the older one. The
// random part keeps apart ids made by two hosts in the same nanosecond.
// Ids of the earlier form (whole seconds: 20261122T130909Z-1a2b3c4d) sort
// correctly against these but within their own second.
func NewGenerationID(now time.Time) string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	u := now.UTC()
	return fmt.Sprintf("%s%09dZ-%s", u.Format("20060102T150405"), u.Nanosecond(), hex.EncodeToString(b[:]))
}
