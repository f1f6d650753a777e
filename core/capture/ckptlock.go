package capture

import (
	"log/slog"
	"os"
	"strings"
	"sync"
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
// while the WAL keeps growing. It is let go for each of the daemon's own
// checkpoints, which need it too, and taken again right after (see
// Capturer.Checkpoint for the race with the application this is), when
// the database has been quiet for idleRelease, and whenever one of the
// daemon's connections finds the database busy. The last matters because
// the same lock guards SQLite's rebuild of a damaged WAL index (after an
// application died halfway through writing its header): nobody can
// rebuild it while the lock is held, and quiet is what such a death
// looks like.
//
// The lock is an open file description lock (Linux's F_OFD_SETLK) on the
// byte SQLite uses, taken on a descriptor of our own. It conflicts with
// SQLite's locks in every process, this one included. The descriptor
// stays open until the capturer's connections are closed: closing any
// descriptor of the file drops every POSIX lock this process holds on it,
// SQLite's read locks among them.
type ckptLock struct {
	f    *os.File
	log  *slog.Logger
	idle time.Duration // idleRelease, but in tests

	mu     sync.Mutex
	held   bool
	active time.Time   // the last time the WAL was seen growing
	timer  *time.Timer // releases the lock once quiet; nil while not held
}

const (
	// holdFrames is where the lock starts to pay: a little below SQLite's
	// default wal_autocheckpoint of 1000 frames.
	holdFrames = 800
	// idleRelease is how long a quiet database keeps the lock.
	idleRelease = time.Second
)

// openCkptLock opens the WAL index of the database whose WAL is walPath.
// Without one (a platform without open file description locks, or no
// WAL index file) it returns nil, and the lock is never held.
func openCkptLock(walPath string, log *slog.Logger) *ckptLock {
	shm := strings.TrimSuffix(walPath, "-wal") + "-shm"
	f, err := openShm(shm)
	if err != nil {
		log.Debug("the checkpointer lock will not be held", "err", err)
		return nil
	}
	return &ckptLock{f: f, log: log, idle: idleRelease}
}

// grew records that the WAL now holds frames frames, and takes the lock
// once it is long enough.
func (l *ckptLock) grew(frames int64) {
	if l == nil || frames < holdFrames {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.active = time.Now()
	l.lock(0)
}

// takeWithin takes the lock, waiting up to wait for another connection's
// checkpoint to end, and reports whether it is held.
func (l *ckptLock) takeWithin(wait time.Duration) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lock(wait)
	return l.held
}

// lock takes the lock, trying again every lockPollGap for up to wait
// while another connection holds it (the application checkpoints).
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
	if l.timer == nil {
		l.timer = time.AfterFunc(l.idle, l.expire)
	} else {
		l.timer.Reset(l.idle)
	}
}

// expire lets the lock go once the database has been quiet for l.idle;
// until then it looks again when that much time has passed since the WAL
// last grew.
func (l *ckptLock) expire() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held {
		return
	}
	if wait := l.idle - time.Since(l.active); wait > 0 {
		l.timer.Reset(wait)
		return
	}
	l.unlock()
}

// release lets the lock go and reports whether it was held.
func (l *ckptLock) release() (held bool) {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	held = l.held
	if held {
		l.unlock()
	}
	return held
}

func (l *ckptLock) unlock() {
	if err := lockByte(l.f, false); err != nil {
		l.log.Warn("release the checkpointer lock", "err", err)
	}
	l.held = false
	l.timer.Stop()
}

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

// releaseIfBusy lets the checkpointer lock go when *err says the
// database was busy: one of the things it may have been busy with is a
// rebuild of the WAL index, which the lock blocks (see ckptLock).
func (c *Capturer) releaseIfBusy(err *error) {
	if *err != nil && IsBusy(*err) {
		c.ckpt.release()
	}
}
