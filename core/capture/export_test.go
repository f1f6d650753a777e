package capture

import (
	"context"
	"time"
)

// SetBeforeLateStage installs a hook that runs after the write lock was
// released (at a checkpoint, or at start-up) and before the tail read
// under it is staged.
func SetBeforeLateStage(c *Capturer, f func() error) { c.beforeLateStage = f }

// SetBeforeWriteLock sets a function a checkpoint runs just before it
// takes the write lock.
func SetBeforeWriteLock(c *Capturer, f func()) { c.beforeWriteLock = f }

// SetSpareIdle sets how long c's spare connections are kept unused.
func SetSpareIdle(c *Capturer, d time.Duration) {
	s := c.spares
	s.mu.Lock()
	defer s.mu.Unlock()
	s.idle = d
	if s.timer != nil {
		s.timer.Reset(d)
	}
}

// OpenConns is the number of SQLite connections c has open.
func OpenConns(c *Capturer) int { return c.db.Stats().OpenConnections }

// ConnsClosed is the number of SQLite connections c has closed so far.
func ConnsClosed(c *Capturer) int64 { return c.db.Stats().MaxIdleClosed }

// DropReader ends c's held read transaction, as a read that failed to
// begin again under the write lock leaves it.
func DropReader(c *Capturer) error { return c.held.end() }

// GenerationTime is generationTime.
var GenerationTime = generationTime

// SetBeforeFirstCapture installs a hook that runs at start-up after the
// check that the WAL continues and before the first capture.
func SetBeforeFirstCapture(o *Options, f func()) { o.beforeFirstCapture = f }

// SetResumeTailLimit sets how many bytes of pages the first capture after
// start-up may read into memory under the write lock.
func SetResumeTailLimit(o *Options, n int64) { o.resumeTailLimit = n }

// SpoilRecordedChecksum makes c's recorded database checksum wrong, as a
// capture that lost track of the database would leave it.
func SpoilRecordedChecksum(c *Capturer) { c.pos.Checksum ^= 1 }

// CheckpointLockHeld reports whether c holds SQLite's checkpointer lock.
func CheckpointLockHeld(c *Capturer) bool { return c.ckpt.isHeld() }

// ScanBufferKept reports whether c keeps a WAL scan buffer now.
func ScanBufferKept(c *Capturer) bool {
	c.scanner.mu.Lock()
	defer c.scanner.mu.Unlock()
	return c.scanner.s.Buffered() > 0
}

// SetScanIdle sets how long c keeps its scan buffer unused.
func SetScanIdle(c *Capturer, d time.Duration) {
	c.scanner.mu.Lock()
	defer c.scanner.mu.Unlock()
	c.scanner.idle = d
}

// WithoutCheckpointLock makes c run as where the checkpointer lock cannot
// be held (ckptLock is nil). Call the returned func after c.Close: it
// closes the lock's descriptor, which must outlive c's connections.
func WithoutCheckpointLock(c *Capturer) (closeAfter func()) {
	l := c.ckpt
	l.release()
	c.ckpt = nil
	return l.close
}

// CheckpointWriteLock takes the write lock as a checkpoint does; the
// returned func, nil when the lock was not taken, releases it.
func CheckpointWriteLock(ctx context.Context, c *Capturer, wait time.Duration) (func(), error) {
	return c.checkpointWriteLock(ctx, wait)
}
