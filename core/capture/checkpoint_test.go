package capture_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/capture"
	"github.com/sqlitereplicator/replicator/core/wal"
)

func walSalt(t *testing.T, path string) uint32 {
	t.Helper()
	f, err := os.Open(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := wal.ReadHeader(f)
	if err != nil {
		t.Fatal(err)
	}
	return h.Salt1
}

// TestCheckpointTailNotStaged: a checkpoint stages the frames it read
// under the write lock only after releasing it, and the application may
// start the WAL over at once. When the staging does not happen (an error,
// or the daemon dies), those frames exist only in the database file; the
// next step, or the next start, must catch up from the page hashes rather
// than continue from the new WAL as if nothing were missing.
func TestCheckpointTailNotStaged(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := map[bool]string{false: "next step", true: "next start"}[restart]
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db")
			db := app(t, path)
			for range 50 {
				exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(800))")
			}
			c, err := openNoCleanup(path)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { c.Close() }()
			step(t, c)
			before := c.Position().TxID
			salt := walSalt(t, path)
			// The updates come after the capture that precedes the write
			// lock, so that the locked part is what reads them.
			capture.SetBeforeWriteLock(c, func() {
				for range 20 {
					exec1(t, db, "UPDATE t SET v = randomblob(800) WHERE id = abs(random()) % 50 + 1")
				}
			})
			crash := errors.New("simulated crash before staging")
			capture.SetBeforeLateStage(c, func() error { return crash })
			if _, _, err := c.Checkpoint(context.Background(), time.Second); !errors.Is(err, crash) {
				t.Fatalf("checkpoint: %v, want the simulated crash", err)
			}
			if got := c.Position().TxID; got != before {
				t.Fatalf("position moved to txid %d without staging (was %d)", got, before)
			}
			// The application's next write starts the WAL over: the 20
			// updates are now only in the database file.
			exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(800))")
			if walSalt(t, path) == salt {
				t.Fatal("the WAL did not start over; the test does not reach the case it is for")
			}
			if restart {
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
				var ev capture.Event
				c, ev, err = capture.Open(context.Background(), path, capture.Options{})
				if err != nil {
					t.Fatal(err)
				}
				if ev.Snapshot != nil || ev.Segment == nil || !strings.Contains(ev.Reason, "no longer continues") {
					t.Fatalf("start after the lost tail: event %+v, want a catch-up", ev)
				}
			} else {
				ev := step(t, c)
				if ev.Segment == nil || !strings.Contains(ev.Reason, "could not be staged") {
					t.Fatalf("step after the lost tail: event %+v, want a catch-up", ev)
				}
			}
			exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(800))")
			step(t, c)
			assertSame(t, c, path)
		})
	}
}

func openNoCleanup(path string) (*capture.Capturer, error) {
	c, _, err := capture.Open(context.Background(), path, capture.Options{})
	return c, err
}

// TestCheckpointKeepsUp: after a checkpoint the WAL starts over and the
// next capture continues from its first frame, with every transaction
// captured.
func TestCheckpointKeepsUp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db := app(t, path)
	c, _ := open(t, path)
	for round := range 20 {
		for range 30 {
			exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(300))")
		}
		step(t, c)
		for range 10 {
			exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(300))")
		}
		before := c.Position().TxID
		_, ok, err := c.Checkpoint(context.Background(), time.Second)
		if err != nil || !ok {
			t.Fatalf("round %d: checkpoint: ok=%v err=%v", round, ok, err)
		}
		if got := c.Position().TxID; got != before+10 {
			t.Fatalf("round %d: checkpoint captured up to txid %d, want %d", round, got, before+10)
		}
		if c.WALSize() != 0 {
			t.Fatalf("round %d: %d bytes of WAL left to copy after a checkpoint", round, c.WALSize())
		}
	}
	step(t, c)
	assertSame(t, c, path)
}
