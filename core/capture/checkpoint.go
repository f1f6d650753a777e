package capture

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/sqlitereplicator/replicator/core/localstate"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Checkpoint copies the WAL into the database file and lets the next
// writer start the WAL again from the top, so the WAL stays short.
//
// The application is blocked only for the locked part: reading the last
// few frames into memory, one more PASSIVE checkpoint, and a new reader.
// Every millisecond counts there: a writer that finds the lock taken
// sleeps in SQLite's busy handler for 1, then 2, then 5 ms, so a hold of
// 3 ms costs it 3 ms and a hold of 4 ms costs it 8. The tail is therefore
// staged (written and fsynced) after the lock is released. If the daemon
// dies before that, the WAL may have started over without those frames;
// they are in the database file, and the next start catches up from the
// page hashes (the saved position's WAL salts no longer match), so
// nothing is lost: it was not yet reported captured.
//
// wait bounds how long to try for the write lock; when the application
// holds it that long, Checkpoint gives up (ok=false) and the caller tries
// again later.
func (c *Capturer) Checkpoint(ctx context.Context, wait time.Duration) (ev Event, ok bool, err error) {
	defer c.releaseIfBusy(&err)
	// Copy what can be copied without any lock first, so the locked part
	// has little left to do. It runs on the connection that is to take
	// the write lock next (a spare: it holds no transaction yet).
	cp, err := c.spares.get(ctx)
	if err != nil {
		return Event{}, false, err
	}
	// Our checkpoint runs with the checkpointer lock held (the lock is
	// this process's, see ckptLock), and SQLite lets the byte go when it
	// is done: take the lock again at once, waiting out an application
	// checkpoint that took the byte in between.
	held := c.ckpt.isHeld()
	_, _, err = checkpoint(ctx, cp)
	c.ckpt.retake(held, ckptLockedWait)
	c.spares.put(cp) // a checkpoint leaves no transaction open
	if err != nil {
		return Event{}, false, err
	}
	// Under the write lock the checkpoint reads what came after the last
	// capture, and SQLite syncs the WAL written since its last sync: with
	// a writer committing back to back, several milliseconds of frames
	// (what it wrote while the checkpoint above ran). So that work is done
	// now, on the daemon's time: a capture, and the WAL synced. The locked
	// part is left with the frames of the last moment.
	sev, err := c.Step(ctx)
	if err != nil || sev.Reason != "" {
		return sev, false, err
	}
	c.syncWAL()
	if c.beforeWriteLock != nil {
		c.beforeWriteLock()
	}
	unlock, err := c.checkpointWriteLock(ctx, wait)
	if err != nil || unlock == nil {
		return Event{}, false, err
	}
	// Once the lock is taken the rest is short, bounded work: finish it
	// even on shutdown, rather than leave a tail to catch up on.
	bounded := context.WithoutCancel(ctx)
	t, ev, reason, complete, err := c.lockedCheckpoint(bounded)
	unlock()
	if reason != "" {
		// Not under the lock: a catch-up reads the whole database.
		ev, err = c.catchUp(ctx, reason)
		return ev, false, err
	}
	if err != nil {
		if t != nil {
			c.broken = fmt.Sprintf("the frames read at a failed checkpoint were not staged (%v)", err)
		}
		return ev, false, err
	}
	if t != nil {
		seg, err := c.stageLate(bounded, t, "a checkpoint")
		if err != nil {
			return Event{}, false, err
		}
		ev = Event{Segment: &seg}
	}
	if ev.Segment == nil {
		ev = sev
	}
	if complete {
		c.copied = c.pos.WAL
	}
	return ev, true, nil
}

// syncWAL makes the WAL durable as far as it is written. SQLite's
// checkpoint syncs it before it copies anything; done before the write
// lock, that sync under the lock finds little left to write. An error is
// left for that sync to meet and report.
func (c *Capturer) syncWAL() {
	f, err := os.Open(c.walPath)
	if err != nil {
		return
	}
	defer f.Close()
	_ = syncData(f)
}

// stageLate stages a tail read under the write lock once the lock is
// released. If that fails, the WAL may since have started over without
// those frames, so the next step must not trust it: it catches up.
func (c *Capturer) stageLate(ctx context.Context, t *tail, when string) (localstate.StagedSegment, error) {
	var err error
	if c.beforeLateStage != nil {
		err = c.beforeLateStage()
	}
	var seg localstate.StagedSegment
	if err == nil {
		seg, err = c.stageTxns(ctx, t)
	}
	if err != nil {
		c.broken = fmt.Sprintf("the frames read at %s could not be staged (%v)", when, err)
		return seg, fmt.Errorf("stage the frames read at %s: %w", when, err)
	}
	return seg, nil
}

// maxLockedTail bounds the memory a checkpoint's tail may take; a larger
// tail is staged under the lock.
const maxLockedTail = 64 << 20

// lockedCheckpoint is the part of Checkpoint under the write lock. It
// returns the tail to stage once the lock is released, if any (a tail too
// large to hold in memory is staged here, and is in the Event), and
// whether the whole WAL is now in the database file. When continuity with
// the captured position cannot be proven it does nothing and says why.
func (c *Capturer) lockedCheckpoint(ctx context.Context) (_ *tail, _ Event, reason string, complete bool, err error) {
	// No transaction can commit now: read the tail, then let go of the
	// snapshot so the checkpoint can copy everything. The write lock keeps
	// anyone from resetting the WAL while no reader is held.
	t, f, reason, err := c.readTail(ctx)
	if f != nil {
		defer f.Close()
	}
	if err != nil || reason != "" {
		return nil, Event{}, reason, false, err
	}
	var ev Event
	if t != nil {
		small, err := t.inMemory(maxLockedTail)
		if err != nil {
			return nil, Event{}, "", false, err
		}
		if !small {
			seg, err := c.stageTxns(ctx, t)
			if err != nil {
				return nil, Event{}, "", false, err
			}
			ev, t = Event{Segment: &seg}, nil
		}
	}
	// From here on an error returns t too: the caller must then not trust
	// the WAL to keep it.
	// An automatic checkpoint the application began before the write
	// lock was taken may still be running (past its autocheckpoint mark
	// it tries one after every commit); ours would then find SQLite's
	// checkpointer lock taken and do nothing, and the WAL would not start
	// over. No new one can begin while the write lock is held: taking the
	// lock waits this one out, while our reader still keeps it from
	// copying more than our last checkpoint did (with no reader held it
	// would copy the whole WAL, on the application's time).
	held := c.ckpt.takeWithin(ckptLockedWait)
	// The checkpoint runs on the held reader's connection, which has just
	// ended its transaction: a connection inside one cannot checkpoint.
	if err := c.held.end(); err != nil {
		return t, ev, "", false, err
	}
	// SQLite lets the byte go after ours: take the lock again at once,
	// still under the write lock, so that the application's checkpoints
	// fail from the start of the new WAL on.
	complete, cerr := c.lockedPassive(ctx)
	c.ckpt.retake(held, 0)
	// A reader must be held again before the write lock goes, or resets
	// could go unseen.
	if err := c.held.begin(context.WithoutCancel(ctx)); err != nil {
		return t, ev, "", false, err
	}
	return t, ev, "", complete, cerr
}

// lockedPassive runs the checkpoint of lockedCheckpoint, waiting out
// another connection's checkpoint as takeWithin does where the
// checkpointer lock cannot be held (see ckptLock).
func (c *Capturer) lockedPassive(ctx context.Context) (complete bool, err error) {
	deadline := time.Now().Add(ckptLockedWait)
	for {
		complete, locked, err := checkpoint(ctx, c.held.conn)
		if err != nil || !locked || time.Now().After(deadline) {
			return complete, err
		}
		pause(lockPollGap)
	}
}

// ckptLockedWait bounds how long the write lock is held waiting for
// another connection's checkpoint to end.
const ckptLockedWait = 20 * time.Millisecond

// WALSize returns the bytes of WAL that a checkpoint would have to copy:
// those up to the captured position, less what the last checkpoint
// copied when the WAL has not started over since.
func (c *Capturer) WALSize() int64 {
	w := c.pos.WAL
	if w.Salt1 == c.copied.Salt1 && w.Salt2 == c.copied.Salt2 {
		return w.Offset - c.copied.Offset
	}
	return w.Offset
}

// checkpointWriteLock takes the write lock for a checkpoint, trying for
// up to wait, and returns the func that releases it, or nil when it was
// not taken.
//
// Where the WAL index can be locked directly (see ckptLock) it locks
// SQLite's write-lock byte itself, with an open file description lock,
// which every SQLite writer's lock conflicts with, this process's
// connections included: what SQLite's write lock does for the WAL, no
// commit can begin. A try is then one system call, made about every
// 0.1 ms, and against a writer committing back to back the lock is taken
// at the first try at the median (see writerPollGap). Through SQLite (BEGIN
// IMMEDIATE, pollWriteLock) a try costs far more and the runtime's timers
// space them a millisecond apart: the lock took 1–5 ms to get, and the
// frames written meanwhile were read, synced and copied under it.
func (c *Capturer) checkpointWriteLock(ctx context.Context, wait time.Duration) (unlock func(), err error) {
	if c.ckpt != nil && c.locked == 0 {
		got, err := c.ckpt.lockWriter(ctx, wait)
		if err == nil {
			if !got {
				return nil, nil
			}
			return c.ckpt.unlockWriter, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		c.log.Debug("lock the WAL index's write byte; taking the write lock through SQLite", "err", err)
	}
	got, err := c.pollWriteLock(ctx, wait)
	if err != nil || !got {
		return nil, err
	}
	return c.unlockWrite, nil
}

// pollWriteLock takes the write lock, trying again after each
// time.After(lockPollGap) for up to wait, and reports whether it got it.
// The runtime's timers make that about a millisecond, not 20 µs; waking
// every 20 µs (pause) measured no better.
//
// Why not SQLite's busy handler: it sleeps 1, 2, 5, 10 ms... between
// tries, and an application committing back to back holds the lock most
// of the time, so a try lands in one of its short gaps only after many
// sleeps (18–84 ms measured). Meanwhile the WAL passes the application's
// autocheckpoint mark and every commit of the application pays for a
// checkpoint that cannot finish. Trying steadily finds a gap sooner.
func (c *Capturer) pollWriteLock(ctx context.Context, wait time.Duration) (bool, error) {
	if c.locked > 0 {
		c.locked++
		return true, nil
	}
	w, err := c.spares.get(ctx)
	if err != nil {
		return false, err
	}
	// The busy timeout is restored before w is used again: under the lock
	// when it was taken, and before w goes back among the spares when it
	// was not.
	restore := func() {
		_, _ = w.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("PRAGMA busy_timeout = %d", c.opts.BusyTimeout.Milliseconds()))
	}
	if _, err := w.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		restore() // cut short by cancellation, it may have taken effect
		c.spares.put(w)
		return false, fmt.Errorf("set busy timeout: %w", err)
	}
	deadline := time.Now().Add(wait)
	for {
		if _, err := w.ExecContext(ctx, "BEGIN IMMEDIATE"); err == nil {
			c.writer, c.locked = w, 1
			restore()
			return true, nil
		} else if !IsBusy(err) {
			rerr := undoBegin(w)
			if rerr == nil {
				restore()
			}
			c.spareOrClose(w, rerr)
			return false, fmt.Errorf("take the write lock: %w", err)
		}
		// SQLITE_BUSY: BEGIN IMMEDIATE began nothing.
		if time.Now().After(deadline) {
			restore()
			c.spares.put(w)
			return false, nil
		}
		select {
		case <-ctx.Done():
			restore()
			c.spares.put(w)
			return false, ctx.Err()
		case <-time.After(lockPollGap):
		}
	}
}

// lockPollGap is the pause asked for between two tries for a lock.
const lockPollGap = 20 * time.Microsecond

// noTransaction reports whether err, from a ROLLBACK, says only that no
// transaction was open (SQLite reports that as a plain SQLITE_ERROR; a
// ROLLBACK that failed with a transaction open fails with a lock or I/O
// code). A nil err is not such an error.
func noTransaction(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_ERROR
}

// IsBusy reports whether err is SQLite's SQLITE_BUSY: another connection
// held a lock the capture needed for the whole busy timeout. Nothing is
// lost by it; the capture can try again.
func IsBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}
