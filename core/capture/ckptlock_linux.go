package capture

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// shmCkptByte is the byte of the WAL index (-shm) file that SQLite locks
// as its checkpointer lock: WALINDEX_LOCK_OFFSET (120) + WAL_CKPT_LOCK (1).
const shmCkptByte = 121

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
