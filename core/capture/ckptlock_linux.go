package capture

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// shmCkptByte is the byte of the WAL index (-shm) file that SQLite locks
// as its checkpointer lock: WALINDEX_LOCK_OFFSET (120) + WAL_CKPT_LOCK (1).
const shmCkptByte = 121

// shmWriteByte is SQLite's write lock: WALINDEX_LOCK_OFFSET (120) +
// WAL_WRITE_LOCK (0).
const shmWriteByte = 120

func openShm(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR, 0)
}

// lockByte takes (or with lock false, releases) this process's exclusive
// POSIX lock on the checkpointer byte, without waiting.
func lockByte(f *os.File, lock bool) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Start: shmCkptByte, Len: 1}
	if !lock {
		lk.Type = unix.F_UNLCK
	}
	return unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk)
}

// lockWriteByte takes (or with lock false, releases) an exclusive open
// file description lock on SQLite's write-lock byte, without waiting.
// Unlike a POSIX lock it conflicts with this process's own SQLite
// connections too, and it is let go by nothing but this call (or closing
// f).
func lockWriteByte(f *os.File, lock bool) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Start: shmWriteByte, Len: 1}
	if !lock {
		lk.Type = unix.F_UNLCK
	}
	return unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
}

// lockConflict reports whether err, from a lock request, says only that
// another lock holds the range.
func lockConflict(err error) bool {
	return errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES)
}

// pause sleeps for d, which may be well under a millisecond: the Go
// runtime wakes a goroutine from time.Sleep no sooner than about a
// millisecond later (1.1 ms measured for 20 µs on Linux), much longer
// than what it waits for here.
func pause(d time.Duration) {
	ts := unix.NsecToTimespec(d.Nanoseconds())
	_ = unix.Nanosleep(&ts, nil)
}

// syncData flushes f's data (fdatasync: the WAL's modification time
// need not reach the disk).
func syncData(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
