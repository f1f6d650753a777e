package capture

import (
	"context"
	"fmt"
	"time"
)

// Checkpoint copies the WAL into the database file and lets the next
// writer start the WAL again from the top, so the WAL stays short.
//
// The application is blocked only for the locked part: capturing the last
// few frames and one more PASSIVE checkpoint. wait bounds how long to wait
// for the write lock; when the application holds it longer, Checkpoint
// gives up (ok=false) and the caller tries again later.
func (c *Capturer) Checkpoint(ctx context.Context, wait time.Duration) (ev Event, ok bool, err error) {
	// Copy what can be copied without any lock first, so the locked part
	// has little left to do.
	if err := checkpoint(ctx, c.ckpt); err != nil {
		return Event{}, false, err
	}
	if _, err := c.writer.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", wait.Milliseconds())); err != nil {
		return Event{}, false, err
	}
	defer c.writer.ExecContext(context.Background(), fmt.Sprintf("PRAGMA busy_timeout = %d", c.opts.BusyTimeout.Milliseconds()))
	if err := c.lockWrite(ctx); err != nil {
		return Event{}, false, nil
	}
	defer c.unlockWrite()
	// No transaction can commit now: capture the tail, then let go of the
	// snapshot so the checkpoint can copy everything. The write lock keeps
	// anyone from resetting the WAL while no reader is held.
	ev, err = c.Step(ctx)
	if err != nil {
		return ev, false, err
	}
	if err := c.readers[c.cur].end(); err != nil {
		return ev, false, err
	}
	cerr := checkpoint(ctx, c.ckpt)
	// Not cancellable: a reader must be held again before the write lock
	// goes, or resets could go unseen.
	if err := c.readers[c.cur].begin(context.Background()); err != nil {
		return ev, false, err
	}
	if cerr != nil {
		return ev, false, cerr
	}
	return ev, true, nil
}

// WALSize returns the bytes of WAL past the captured position's start:
// how much a checkpoint would have to copy.
func (c *Capturer) WALSize() int64 { return c.pos.WAL.Offset }
