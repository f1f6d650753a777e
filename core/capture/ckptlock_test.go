package capture_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/capture"
)

// TestCheckpointLock checks when the capture holds SQLite's checkpointer
// lock, which makes the checkpoints of an application in another process
// give up: not for a short WAL, from a long one on (the daemon's own
// checkpoint keeps it), until a quiet database or a busy one lets it go,
// and never after Close. SQLite in the daemon's own process lets the byte
// go (the lock is the process's), and the next capture takes it again.
func TestCheckpointLock(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "app.db")
	db := app(t, path)
	c, _ := openWith(t, path, capture.Options{BusyTimeout: 200 * time.Millisecond})

	write := func(n int) {
		t.Helper()
		for range n {
			exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(50))")
		}
		step(t, c)
	}
	want := func(when string, held bool) {
		t.Helper()
		if got := capture.CheckpointLockHeld(c); got != held {
			t.Fatalf("%s: lock held %v, want %v", when, got, held)
		}
		if busy := otherProcessCheckpoint(t, path); busy != held {
			t.Fatalf("%s: another process's checkpoint found the checkpointer busy: %v, want %v", when, busy, held)
		}
	}

	write(10)
	want("a short WAL", false)
	write(1000)
	want("a long WAL", true)
	write(1)
	want("a long WAL growing", true)

	if _, ok, err := c.Checkpoint(ctx, time.Second); err != nil || !ok {
		t.Fatalf("checkpoint: ok %v, %v", ok, err)
	}
	// Held from the new WAL's start on, so that the application's tries
	// fail from its autocheckpoint mark on.
	want("after the daemon's checkpoint", true)

	write(1000)
	want("a long WAL again", true)
	c.Idle()
	want("a quiet database", false)
	write(1)
	want("a long WAL growing again", true)

	// A checkpoint by a connection in the daemon's process lets the byte
	// go, and the lock with it; the next capture takes it again.
	var busy, log, done int
	if err := app(t, path).QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done); err != nil || busy != 0 {
		t.Fatalf("a checkpoint in the daemon's process: busy %d, %v", busy, err)
	}
	if otherProcessCheckpoint(t, path) {
		t.Fatal("after SQLite in this process let the byte go, another process still found it taken")
	}
	write(1)
	want("the next capture", true)

	// The application holds the write lock past the busy timeout: the
	// snapshot, which needs it, fails, and lets the checkpointer go.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t (v) VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Snapshot(ctx); !capture.IsBusy(err) {
		t.Fatalf("snapshot while the application holds the write lock: %v, want busy", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	want("after the database was busy", false)

	write(1000)
	assertSame(t, c, path)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if otherProcessCheckpoint(t, path) {
		t.Fatal("after Close another process's checkpoint still found the checkpointer busy")
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 3013 {
		t.Fatalf("rows: %d, %v", n, err)
	}
}

// checkpointEnv names the database TestAppCheckpointProcess checkpoints.
const checkpointEnv = "CAPTURE_TEST_CHECKPOINT_DB"

// TestAppCheckpointProcess is the application's checkpoint from another
// process, for otherProcessCheckpoint; it runs only there.
func TestAppCheckpointProcess(t *testing.T) {
	path := os.Getenv(checkpointEnv)
	if path == "" {
		t.Skip("run by otherProcessCheckpoint")
	}
	var busy, log, done int
	if err := app(t, path).QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("busy=%d\n", busy)
}

// otherProcessCheckpoint runs a PASSIVE checkpoint of the database at path
// in another process, as the application beside the daemon would, and
// reports whether it found the checkpointer busy.
func otherProcessCheckpoint(t *testing.T, path string) bool {
	t.Helper()
	return inOtherProcess(t, "TestAppCheckpointProcess", checkpointEnv, path, "busy=1", "busy=0")
}

// inOtherProcess runs the test named test in a process of its own, with
// env set to path, and reports which of the two outputs it printed.
func inOtherProcess(t *testing.T, test, env, path, yes, no string) bool {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.v")
	cmd.Env = append(os.Environ(), env+"="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", test, err, out)
	}
	switch {
	case strings.Contains(string(out), yes):
		return true
	case strings.Contains(string(out), no):
		return false
	}
	t.Fatalf("%s printed no result:\n%s", test, out)
	return false
}

// TestCheckpointWithoutLock: where the checkpointer lock cannot be held
// (other platforms, or no WAL index file to lock) the daemon's
// checkpoint still completes and the WAL starts over.
func TestCheckpointWithoutLock(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "app.db")
	db := app(t, path)
	c, _, err := capture.Open(ctx, path, capture.Options{})
	if err != nil {
		t.Fatal(err)
	}
	closeLock := capture.WithoutCheckpointLock(c)
	defer func() {
		c.Close()
		closeLock()
	}()
	for range 1000 {
		exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(50))")
	}
	step(t, c)
	before := walSalt(t, path)
	if _, ok, err := c.Checkpoint(ctx, time.Second); err != nil || !ok {
		t.Fatalf("checkpoint: ok %v, %v", ok, err)
	}
	exec1(t, db, "INSERT INTO t (v) VALUES (1)")
	if after := walSalt(t, path); after == before {
		t.Fatalf("the WAL did not start over after the checkpoint (salt-1 %d)", after)
	}
	step(t, c)
	assertSame(t, c, path)
}
