package capture

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/sqlitereplicator/replicator/core/wal"
)

// ckptLock holds SQLite's checkpointer lock on a database while the
// application writes a long WAL, so that the application's own automatic
// checkpoints give up at once instead of working in vain.
//
// Why: the daemon's held reader keeps every checkpoint from reaching the
// end of the WAL, so once the WAL passes the application's
// wal_autocheckpoint (1000 frames by default), each of its commits runs a
// checkpoint that cannot finish — sorting the whole WAL index and taking
// the reader locks — and a writer committing back to back loses about a
// third of its speed to it. With the checkpointer lock taken, that attempt
// is one failed lock request: SQLite gives up on a busy checkpointer lock
// without waiting. The daemon's own checkpoints copy the WAL instead.
//
// The lock is held only while it pays: from holdFrames frames on, and
// while the WAL keeps growing. It is let go when the database has been
// quiet for IdleRelease (the replication loop says when, through
// Capturer.Idle) and whenever one of the daemon's connections finds the
// database busy. Both matter because the same lock guards SQLite's
// rebuild of a damaged WAL index (after an application died halfway
// through writing its header): no other process can rebuild it while the
// lock is held, and quiet is what such a death looks like.
//
// The lock is a POSIX record lock (F_SETLK) on the byte SQLite uses,
// taken on a descriptor of our own. Such a lock belongs to the process,
// not to the descriptor: it stops every other process's checkpoint, but
// not the daemon's own, which run without letting it go, so an
// application's checkpoint cannot slip in while the daemon's runs. (An
// open file description lock, which conflicts with this process's own
// SQLite locks too, had to be let go for each of the daemon's
// checkpoints, and the application's next commit then took SQLite's lock
// about half the time and copied the WAL on its own time.) Two rules follow
// from the lock being the process's:
//   - When SQLite in this process lets the byte go (after the daemon's
//     checkpoint, or a rebuild of the WAL index), the lock is gone with it.
//     The checkpoint takes it again at once; every capture asserts it
//     again (a lock the process holds already costs one system call).
//   - Letting it go must never happen while one of this process's
//     connections holds the byte through SQLite, or it would drop SQLite's
//     own lock in the middle of a checkpoint or a rebuild. So it is taken
//     and let go only by the capturer's methods, which the replication
//     loop calls one at a time and in which all of the daemon's SQLite work
//     on the database happens; never from a timer. This relies on the
//     database's other connections in this process being the capturer's:
//     the application runs in a process of its own (with -exec too).
//
// The descriptor stays open until the capturer's connections are closed:
// closing any descriptor of the file drops every POSIX lock this process
// holds on it, SQLite's read locks among them.
type ckptLock struct {
	f    *os.File
	held bool
}

const (
	// holdFrames is where the lock starts to pay: a little below SQLite's
	// default wal_autocheckpoint of 1000 frames.
	holdFrames = 800
	// IdleRelease is how long a quiet database keeps the checkpointer
	// lock: the replication loop calls Capturer.Idle once a database has
	// gone that long without a capture.
	IdleRelease = time.Second
)

// openCkptLock opens the WAL index of the database whose WAL is walPath.
// Without one (a platform without the locks we need, or no WAL index
// file) it returns nil, and the lock is never held.
func openCkptLock(walPath string, log *slog.Logger) *ckptLock {
	shm := strings.TrimSuffix(walPath, "-wal") + "-shm"
	f, err := openShm(shm)
	if err != nil {
		log.Debug("the checkpointer lock will not be held", "err", err)
		return nil
	}
	return &ckptLock{f: f}
}

// grew records that the WAL now holds frames frames, and takes the lock
// once it is long enough. The lock is asked for even when it is thought
// held: SQLite may have let it go in between (see ckptLock).
func (l *ckptLock) grew(frames int64) {
	if frames >= holdFrames {
		l.retake(true, 0)
	}
}

// takeWithin takes the lock, waiting up to wait for another connection's
// checkpoint to end, and reports whether it is held.
func (l *ckptLock) takeWithin(wait time.Duration) bool {
	if l == nil {
		return false
	}
	l.lock(wait)
	return l.held
}

func (l *ckptLock) isHeld() bool { return l != nil && l.held }

// retake takes the lock again after SQLite in this process let the byte
// go (the daemon's own checkpoint), if it was held before; it waits up to
// wait for an application's checkpoint that took the byte in between.
func (l *ckptLock) retake(wasHeld bool, wait time.Duration) {
	if l == nil || !wasHeld {
		return
	}
	l.held = false
	l.lock(wait)
}

// lock takes the lock, trying again every lockPollGap for up to wait
// while another process holds it (the application checkpoints).
// Failing that, the next capture tries again.
func (l *ckptLock) lock(wait time.Duration) {
	if l.held {
		return
	}
	for deadline := time.Now().Add(wait); lockByte(l.f, true) != nil; {
		if time.Now().After(deadline) {
			return
		}
		pause(lockPollGap)
	}
	l.held = true
}

// release lets the lock go and reports whether it was held.
func (l *ckptLock) release() (held bool) {
	if l == nil {
		return false
	}
	held = l.held
	if held {
		// An error leaves nothing to do: the descriptor stays open.
		_ = lockByte(l.f, false)
		l.held = false
	}
	return held
}

// lockWriter takes SQLite's write lock on the database with an open file
// description lock on its byte of the WAL index (see
// Capturer.checkpointWriteLock), trying every writerPollGap for up to
// wait. It returns an error only when the lock cannot be asked for at
// all (or ctx ends), not when another connection holds it.
func (l *ckptLock) lockWriter(ctx context.Context, wait time.Duration) (bool, error) {
	for deadline := time.Now().Add(wait); ; {
		err := lockWriteByte(l.f, true)
		if err == nil {
			return true, nil
		}
		if !lockConflict(err) {
			return false, err
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		pause(writerPollGap)
	}
}

// unlockWriter releases what lockWriter took.
func (l *ckptLock) unlockWriter() {
	if err := lockWriteByte(l.f, false); err != nil {
		// Left held, the application could never write again. Closing
		// the descriptor would drop SQLite's read locks with it (see
		// ckptLock); the process's exit lets everything go, and the
		// next start catches up.
		panic(fmt.Sprintf("release the write lock of the WAL index: %v", err))
	}
}

// writerPollGap is the pause asked for between two tries for the write
// lock; the kernel's timers make it about 0.1 ms. A try lands in one of a
// busy writer's gaps between commits (a few microseconds every 15–20 µs)
// often enough: the first try took the lock at the median, and the 90th
// percentile was 0.2–0.3 ms.
const writerPollGap = 5 * time.Microsecond

// close lets the lock go and closes the descriptor. Call it only once the
// capturer's SQLite connections are closed.
func (l *ckptLock) close() {
	if l == nil {
		return
	}
	l.release()
	l.f.Close()
}

// walFrames is the number of frames before offset in a WAL of the given
// page size.
func walFrames(offset int64, pageSize uint32) int64 {
	return (offset - wal.HeaderSize) / (wal.FrameHeaderSize + int64(pageSize))
}

// Idle lets the checkpointer lock go: the database has gone IdleRelease
// without a capture. Call it as the capturer's other methods are called,
// one at a time (see ckptLock).
func (c *Capturer) Idle() { c.ckpt.release() }

// releaseIfBusy lets the checkpointer lock go when *err says the
// database was busy: one of the things it may have been busy with is a
// rebuild of the WAL index, which the lock blocks (see ckptLock).
func (c *Capturer) releaseIfBusy(err *error) {
	if *err != nil && IsBusy(*err) {
		c.ckpt.release()
	}
}
