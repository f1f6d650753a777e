package capture_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/capture"
)

// waitConns waits until c has want connections open, for a few seconds.
func waitConns(t *testing.T, c *capture.Capturer, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for capture.OpenConns(c) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d SQLite connections open, want %d", capture.OpenConns(c), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIdleCapturerHoldsOneConnection: a capturer starts with only the held
// reader open, and once its database is left alone it is back to that,
// whatever it did before (captures, checkpoints, snapshots), and captures
// on as before.
func TestIdleCapturerHoldsOneConnection(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	db := app(t, path)
	c, ev := open(t, path)
	if ev.Snapshot == nil {
		t.Fatal("the first start made no snapshot")
	}
	// The start took the write lock on a second connection; it is gone.
	if n := capture.OpenConns(c); n != 1 {
		t.Fatalf("%d connections open after Open, want 1", n)
	}
	capture.SetSpareIdle(c, 20*time.Millisecond)
	for round := range 3 {
		for range 20 {
			exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(300))")
		}
		step(t, c)
		if n := capture.OpenConns(c); n > 2 {
			t.Fatalf("round %d: %d connections open after a capture, want at most 2", round, n)
		}
		exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(300))")
		if _, ok, err := c.Checkpoint(ctx, time.Second); err != nil || !ok {
			t.Fatalf("round %d: checkpoint: ok=%v err=%v", round, ok, err)
		}
		exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(300))")
		if _, err := c.Snapshot(ctx); err != nil {
			t.Fatalf("round %d: snapshot: %v", round, err)
		}
		if n := capture.OpenConns(c); n > 2 {
			t.Fatalf("round %d: %d connections open after a snapshot, want at most 2", round, n)
		}
		waitConns(t, c, 1)
	}
	exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(300))")
	step(t, c)
	assertSame(t, c, path)
	waitConns(t, c, 1)
}

// TestActiveCaptureReusesConnections: a database being written does not
// open a connection per capture or checkpoint; the spare waits between.
func TestActiveCaptureReusesConnections(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	db := app(t, path)
	c, _ := open(t, path)
	capture.SetSpareIdle(c, time.Hour)
	exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(300))")
	step(t, c)
	closed := capture.ConnsClosed(c)
	for round := range 20 {
		for range 5 {
			exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(300))")
		}
		step(t, c)
		exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(300))")
		if _, ok, err := c.Checkpoint(ctx, time.Second); err != nil || !ok {
			t.Fatalf("round %d: checkpoint: ok=%v err=%v", round, ok, err)
		}
		if n := capture.OpenConns(c); n != 2 {
			t.Fatalf("round %d: %d connections open, want 2 (the held reader and one spare)", round, n)
		}
	}
	if n := capture.ConnsClosed(c) - closed; n != 0 {
		t.Fatalf("%d connections were closed (and as many opened) over 20 captures and checkpoints, want 0", n)
	}
	assertSame(t, c, path)
}

// TestNoReaderHeldCatchesUp: when no read transaction was held since the
// last capture (a read failed to begin again under the write lock), the
// WAL may have started over more than once, losing frames never captured;
// the next capture must catch up rather than continue from the new WAL.
func TestNoReaderHeldCatchesUp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db := app(t, path)
	c, _ := open(t, path)
	exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(300))")
	step(t, c)
	if err := capture.DropReader(c); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(300))")
	}
	// Nothing pins the WAL now: it is copied and truncated, and the next
	// writer starts it over, exactly one reset after the captured position.
	exec1(t, db, "PRAGMA wal_checkpoint(TRUNCATE)")
	for range 3 {
		exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(300))")
	}
	if ev := step(t, c); ev.Reason == "" {
		t.Fatal("the capture after a time without a held reader did not catch up")
	}
	assertSame(t, c, path)
}

// TestSettle: Settle moves the held read to a new connection and closes
// the old one, and the new read protects the WAL as the old one did: what
// is committed after it is captured without a catch-up, even when the
// application checkpoints meanwhile. Without a held reader it does
// nothing, so the next capture still catches up.
func TestSettle(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		dropReader bool
		wantClosed int64
		wantCatch  bool
	}{
		{name: "held reader", wantClosed: 2},
		{name: "no reader held", dropReader: true, wantClosed: 0, wantCatch: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db")
			db := app(t, path)
			c, _ := open(t, path)
			exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(300))")
			step(t, c)
			capture.SetSpareIdle(c, time.Hour)
			exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(300))")
			step(t, c) // leaves a spare waiting
			if n := capture.OpenConns(c); n != 2 {
				t.Fatalf("%d connections open after a capture, want 2 (held and spare)", n)
			}
			if tc.dropReader {
				if err := capture.DropReader(c); err != nil {
					t.Fatal(err)
				}
			}
			closed := capture.ConnsClosed(c)
			if err := c.Settle(ctx); err != nil {
				t.Fatal(err)
			}
			// The spare and the old held connection, or nothing.
			if n := capture.ConnsClosed(c) - closed; n != tc.wantClosed {
				t.Fatalf("Settle closed %d connections, want %d", n, tc.wantClosed)
			}
			if n := capture.OpenConns(c); n != 2-int(tc.wantClosed)/2 {
				t.Fatalf("%d connections open after Settle, want %d", n, 2-int(tc.wantClosed)/2)
			}
			for range 5 {
				exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(300))")
			}
			// With the read held, the copy stops at its snapshot and the next
			// writer cannot start the WAL over; without it, it can.
			exec1(t, db, "PRAGMA wal_checkpoint(PASSIVE)")
			for range 3 {
				exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(300))")
			}
			ev := step(t, c)
			if caught := ev.Reason != ""; caught != tc.wantCatch {
				t.Fatalf("capture after Settle caught up: %v (reason %q), want %v", caught, ev.Reason, tc.wantCatch)
			}
			assertSame(t, c, path)
		})
	}
}
