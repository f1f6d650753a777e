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
// lock, which makes the application's own checkpoints give up: not for a
// short WAL, from a long one on until the daemon's own checkpoint, a
// quiet second, or a busy database, and never after Close.
func TestCheckpointLock(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "app.db")
	db := app(t, path)
	ck := app(t, path) // the application's checkpointing connection
	c, _, err := capture.Open(ctx, path, capture.Options{BusyTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	capture.SetCheckpointLockIdle(c, time.Hour)

	// appCheckpoint runs the application's checkpoint and reports whether
	// it found the checkpointer busy.
	appCheckpoint := func() bool {
		t.Helper()
		var busy, log, done int
		if err := ck.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done); err != nil {
			t.Fatal(err)
		}
		return busy != 0
	}
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
		if busy := appCheckpoint(); busy != held {
			t.Fatalf("%s: the application's checkpoint found the checkpointer busy: %v, want %v", when, busy, held)
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
	capture.SetCheckpointLockIdle(c, 20*time.Millisecond)
	write(1)
	time.Sleep(200 * time.Millisecond)
	want("a quiet database", false)

	// The application holds the write lock past the busy timeout: the
	// snapshot, which needs it, fails, and lets the checkpointer go.
	capture.SetCheckpointLockIdle(c, time.Hour)
	write(1)
	if !capture.CheckpointLockHeld(c) {
		t.Fatal("a WAL growing again: the lock is not held")
	}
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
	if appCheckpoint() {
		t.Fatal("after Close the application's checkpoint still found the checkpointer busy")
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 3013 {
		t.Fatalf("rows: %d, %v", n, err)
	}
}

// checkpointEnv names the database TestAppCheckpointProcess checkpoints.
const checkpointEnv = "CAPTURE_TEST_CHECKPOINT_DB"

// TestAppCheckpointProcess is the application's checkpoint from another
// process, for TestCheckpointLockAcrossProcesses; it runs only there.
func TestAppCheckpointProcess(t *testing.T) {
	path := os.Getenv(checkpointEnv)
	if path == "" {
		t.Skip("run by TestCheckpointLockAcrossProcesses")
	}
	var busy, log, done int
	if err := app(t, path).QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("busy=%d\n", busy)
}

// TestCheckpointLockAcrossProcesses: the lock stops the checkpoints of an
// application in another process, as the daemon runs beside it.
func TestCheckpointLockAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	db := app(t, path)
	c, _ := open(t, path)
	otherProcess := func() string {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestAppCheckpointProcess$", "-test.v")
		cmd.Env = append(os.Environ(), checkpointEnv+"="+path)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("checkpoint process: %v\n%s", err, out)
		}
		for _, w := range []string{"busy=0", "busy=1"} {
			if strings.Contains(string(out), w) {
				return w
			}
		}
		t.Fatalf("checkpoint process printed no result:\n%s", out)
		return ""
	}
	for range 1000 {
		exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(50))")
	}
	step(t, c)
	if got := otherProcess(); got != "busy=1" {
		t.Fatalf("with the lock held, another process's checkpoint: %s, want busy=1", got)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := otherProcess(); got != "busy=0" {
		t.Fatalf("after Close, another process's checkpoint: %s, want busy=0", got)
	}
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
