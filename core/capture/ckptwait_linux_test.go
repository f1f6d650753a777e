package capture_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sqlitereplicator/replicator/core/capture"
)

// TestCheckpointWaitsOutAnother checks that the daemon's checkpoint,
// finding another connection's checkpoint under way, waits it out under
// the write lock instead of giving up: given up, the WAL would not start
// over, and the application would go on checkpointing by itself. The
// other checkpoint is played by a lock on SQLite's checkpointer byte,
// taken before the checkpoint and released while it waits, at each of
// the two places it waits.
func TestCheckpointWaitsOutAnother(t *testing.T) {
	for _, hold := range []time.Duration{5 * time.Millisecond, 30 * time.Millisecond} {
		t.Run(hold.String(), func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "app.db")
			db := app(t, path)
			c, _ := openWith(t, path, capture.Options{BusyTimeout: 200 * time.Millisecond})
			for range 1000 {
				exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(50))")
			}
			step(t, c)
			c.Idle() // the capture's own lock would stop the other's

			shm, err := os.OpenFile(path+"-shm", os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer shm.Close()
			lk := unix.Flock_t{Type: unix.F_WRLCK, Start: 121, Len: 1}
			if err := unix.FcntlFlock(shm.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
				t.Fatal(err)
			}
			released := make(chan error, 1)
			go func() {
				time.Sleep(hold)
				unlock := unix.Flock_t{Type: unix.F_UNLCK, Start: 121, Len: 1}
				released <- unix.FcntlFlock(shm.Fd(), unix.F_OFD_SETLK, &unlock)
			}()
			before := walSalt(t, path)
			if _, ok, err := c.Checkpoint(ctx, time.Second); err != nil || !ok {
				t.Fatalf("checkpoint: ok %v, %v", ok, err)
			}
			if err := <-released; err != nil {
				t.Fatal(err)
			}
			exec1(t, db, "INSERT INTO t (v) VALUES (1)")
			if after := walSalt(t, path); after == before {
				t.Fatalf("the WAL did not start over after the checkpoint (salt-1 %d)", after)
			}
			step(t, c)
			assertSame(t, c, path)
		})
	}
}

// TestCheckpointWriteLock: the write lock a checkpoint takes on the WAL
// index's byte directly stops every writer, one in the daemon's own
// process too, until it is released; and it is not taken while a writer
// holds SQLite's.
func TestCheckpointWriteLock(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "app.db")
	db := app(t, path, "busy_timeout(0)")
	exec1(t, db, "INSERT INTO t (v) VALUES (1)")
	c, _, err := capture.Open(ctx, path, capture.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	unlock, err := capture.CheckpointWriteLock(ctx, c, 100*time.Millisecond)
	if err != nil || unlock == nil {
		t.Fatalf("take the write lock: %v (taken: %v)", err, unlock != nil)
	}
	if _, err := db.Exec("INSERT INTO t (v) VALUES (2)"); !capture.IsBusy(err) {
		t.Fatalf("a commit under the lock: %v, want busy", err)
	}
	if otherProcessCommit(t, path) {
		t.Fatal("another process committed under the lock")
	}
	unlock()
	exec1(t, db, "INSERT INTO t (v) VALUES (3)")
	if !otherProcessCommit(t, path) {
		t.Fatal("another process could not commit after the lock was released")
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t (v) VALUES (4)"); err != nil {
		t.Fatal(err)
	}
	if unlock, err := capture.CheckpointWriteLock(ctx, c, 20*time.Millisecond); err != nil || unlock != nil {
		t.Fatalf("take the write lock while the application holds it: %v (taken: %v)", err, unlock != nil)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	unlock, err = capture.CheckpointWriteLock(ctx, c, 100*time.Millisecond)
	if err != nil || unlock == nil {
		t.Fatalf("take the write lock after the application's commit: %v (taken: %v)", err, unlock != nil)
	}
	unlock()
	step(t, c)
	assertSame(t, c, path)
}

// commitEnv names the database TestAppCommitProcess writes to.
const commitEnv = "CAPTURE_TEST_COMMIT_DB"

// TestAppCommitProcess is an application's commit from another process,
// for otherProcessCommit; it runs only there.
func TestAppCommitProcess(t *testing.T) {
	path := os.Getenv(commitEnv)
	if path == "" {
		t.Skip("run by otherProcessCommit")
	}
	_, err := app(t, path, "busy_timeout(0)").Exec("INSERT INTO t (v) VALUES (5)")
	fmt.Printf("busy=%v\n", capture.IsBusy(err))
	if err != nil && !capture.IsBusy(err) {
		t.Fatal(err)
	}
}

// otherProcessCommit commits a row to the database at path from another
// process and reports whether it could.
func otherProcessCommit(t *testing.T, path string) bool {
	t.Helper()
	return inOtherProcess(t, "TestAppCommitProcess", commitEnv, path, "busy=false", "busy=true")
}
