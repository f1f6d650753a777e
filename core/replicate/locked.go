package replicate

import (
	"log/slog"
	"time"
)

// lockedRetry carries the capture loop through an application that holds
// SQLite's write lock longer than the busy timeout: a bulk import or a
// migration in one transaction. A snapshot or a catch-up due meanwhile
// fails with SQLITE_BUSY; that loses nothing (the commits are in the
// WAL, which the held reader keeps), so the loop tries again every
// lockedRetryGap instead of stopping the database's replication.
type lockedRetry struct {
	c        <-chan time.Time // fires when it is time to try again; nil when not waiting
	snapshot bool             // a snapshot is owed: a failed step was one
	since    time.Time        // when the lock was first found held; zero when free
}

// lockedRetryGap is how long the loop waits before trying a step the
// lock stopped again: the busy timeout has already waited.
const lockedRetryGap = time.Second

// failed records a step the lock stopped.
func (l *lockedRetry) failed(log *slog.Logger, err error, snapshot bool) {
	if l.since.IsZero() {
		l.since = time.Now()
		log.Warn("the database stayed locked past the busy timeout (a long application transaction?); nothing is lost, trying again every second",
			"err", err)
	}
	l.snapshot = l.snapshot || snapshot
	l.c = time.After(lockedRetryGap)
}

// retry is called when c fires; it reports whether the step to try again
// is a snapshot.
func (l *lockedRetry) retry() bool {
	s := l.snapshot
	l.snapshot, l.c = false, nil
	return s
}

// succeeded records a step that went through.
func (l *lockedRetry) succeeded(log *slog.Logger) {
	if !l.since.IsZero() && !l.snapshot && l.c == nil {
		log.Info("the database is free again", "locked_for", time.Since(l.since).Round(time.Millisecond))
		l.since = time.Time{}
	}
}
