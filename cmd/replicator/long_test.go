package main

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/config"
	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/core/restore"
	"github.com/sqlitereplicator/replicator/core/segment"
)

// TestLongLockBytePage grows a replicated database past 1 GiB, where
// SQLite's lock-byte page lies (never written, in no segment or checksum),
// and restores it identical. It takes a few minutes, so it runs only with
// REPLICATOR_LONG=1; scripts/test.sh sets it (without -race, which would
// make it take an hour).
func TestLongLockBytePage(t *testing.T) {
	if os.Getenv("REPLICATOR_LONG") == "" {
		t.Skip("long test: set REPLICATOR_LONG=1 (scripts/test.sh does)")
	}
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "big.db")
	app, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(OFF)")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if _, err := app.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		t.Fatal(err)
	}
	e := &env{stdout: os.Stdout, stderr: os.Stderr, log: newTestLogger(t)}
	r, closeFn, err := openReplica(ctx, e, config.ReplicaConfig{Name: "file", Type: "file", Settings: map[string]string{"path": filepath.Join(dir, "replica")}})
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	d, err := replicate.Open(ctx, replicate.Config{Path: path, Replicas: []*replica.Replica{r}, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	// 1.1 GiB in transactions of 64 MiB.
	start := time.Now()
	for i := range 18 {
		if _, err := app.Exec("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 16000) INSERT INTO t (v) SELECT randomblob(4000) FROM c"); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	if _, err := app.Exec("UPDATE t SET v = randomblob(10) WHERE id % 1000 = 0"); err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	pos := d.Captured()
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if lock := segment.LockPage(pos.PageSize); pos.DBSize <= lock {
		t.Fatalf("database has %d pages; the test needs it past the lock-byte page %d", pos.DBSize, lock)
	}
	t.Logf("replicated %d pages (%.2f GiB) in %s", pos.DBSize, float64(pos.DBSize)*float64(pos.PageSize)/(1<<30), time.Since(start).Round(time.Second))
	out := filepath.Join(dir, "restored.db")
	res, err := restore.Run(ctx, r, restore.Target{}, out, restore.Options{Check: restore.NoCheck, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sha3sum(t, out), sha3sum(t, path); got != want {
		t.Fatalf("restored database (txid %d) differs from the source", res.TxID)
	}
}
