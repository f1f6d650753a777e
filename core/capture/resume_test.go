package capture_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/capture"
)

// backlogWhileStopped captures one transaction, stops the capturer and
// commits 20 more, with the application's automatic checkpoints off: the
// WAL holds a backlog the next start must capture.
func backlogWhileStopped(t *testing.T) (string, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db")
	db := app(t, path, "busy_timeout(5000)", "wal_autocheckpoint(0)")
	c, _ := open(t, path)
	exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(3000))")
	step(t, c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(3000))")
	}
	return path, db
}

// TestResumeOverCheckpointedWAL: while the capturer was stopped the
// application committed and then checkpointed the whole WAL, which stays
// as it is until the next commit starts it over. The reader the capturer
// begins at start-up holds no read mark on such a WAL and keeps no writer
// from starting it over; an application commit between the start-up check
// and the first capture would discard frames never captured (they are in
// the database file, not in any segment). The first capture must see them
// all, or catch up; never skip them.
func TestResumeOverCheckpointedWAL(t *testing.T) {
	for _, mode := range []string{"PASSIVE", "RESTART", "FULL"} {
		t.Run(mode, func(t *testing.T) {
			path, db := backlogWhileStopped(t)
			var busy, log, copied int
			if err := db.QueryRow("PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &log, &copied); err != nil || busy != 0 || log != copied {
				t.Fatalf("checkpoint %s: busy %d, %d of %d frames copied, %v", mode, busy, copied, log, err)
			}
			// The application commits right at the first capture; it may
			// have to wait for the capturer's lock, so it runs beside it.
			committed := make(chan error, 1)
			var opts capture.Options
			capture.SetBeforeFirstCapture(&opts, func() {
				go func() {
					_, err := db.Exec("INSERT INTO t (v) VALUES (randomblob(3000))")
					committed <- err
				}()
				select {
				case err := <-committed:
					committed <- err
				case <-time.After(200 * time.Millisecond):
				}
			})
			c2, _, err := capture.Open(context.Background(), path, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c2.Close() })
			if err := <-committed; err != nil {
				t.Fatal(err)
			}
			step(t, c2)
			assertSame(t, c2, path)
		})
	}
}

// TestResumeLargeBacklog: a backlog too large to read under the write lock
// at start-up is caught up instead (a short lock, the comparison after
// it), and nothing is lost.
func TestResumeLargeBacklog(t *testing.T) {
	path, _ := backlogWhileStopped(t)
	var opts capture.Options
	capture.SetResumeTailLimit(&opts, 4096) // one page
	c2, ev, err := capture.Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c2.Close() })
	if !strings.Contains(ev.Reason, "too large") {
		t.Fatalf("start-up event %q, want a catch-up of the large backlog", ev.Reason)
	}
	assertSame(t, c2, path)
}

// TestSnapshotFindsCaptureLost: when a snapshot finds the database
// different from what capture recorded (a capture that went wrong, or a
// file written outside SQLite), carrying the chain on would only extend a
// history no restore can trust, and every later snapshot would fail the
// same way. A new generation starts from what the database holds.
func TestSnapshotFindsCaptureLost(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db := app(t, path)
	exec1(t, db, "INSERT INTO t (v) VALUES ('one')")
	c, _ := open(t, path)
	exec1(t, db, "INSERT INTO t (v) VALUES ('two')")
	step(t, c)
	gen := c.Position().Generation
	capture.SpoilRecordedChecksum(c)

	ev, err := c.Snapshot(context.Background())
	if err != nil {
		t.Fatalf("snapshot after capture lost track: %v, want a new generation", err)
	}
	if ev.Snapshot == nil || c.Position().Generation == gen {
		t.Fatalf("no new generation (event %+v, generation %s)", ev, c.Position().Generation)
	}
	assertSame(t, c, path)
}
