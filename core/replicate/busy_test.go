package replicate_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

// TestLongApplicationTransaction: an application write transaction that
// outlasts the busy timeout (a bulk import, a migration) while a snapshot
// is due makes the snapshot wait, not the replication stop: once the
// transaction commits, the daemon captures it, takes the snapshot and
// goes on.
func TestLongApplicationTransaction(t *testing.T) {
	if testing.Short() {
		t.Skip("holds the write lock past the busy timeout")
	}
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	app := openApp(t, path, 4096)
	if _, err := app.Exec("INSERT INTO t (v) VALUES ('before')"); err != nil {
		t.Fatal(err)
	}
	r := replica.New("mem", memstore.New(), slog.Default())
	d, err := replicate.Open(ctx, replicate.Config{Path: path, Replicas: []*replica.Replica{r},
		SyncInterval: 10 * time.Millisecond, SnapshotInterval: time.Second, BusyTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()

	// The application holds the write lock across two snapshot ticks.
	tx, err := app.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t (v) VALUES ('long')"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("replication stopped while the application held the write lock: %v", err)
	case <-time.After(2500 * time.Millisecond):
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	start := d.Captured().TxID
	if _, err := app.Exec("INSERT INTO t (v) VALUES ('after')"); err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := d.Captured().TxID; got < start+1 {
		t.Fatalf("captured txid %d after the commits, want more than %d", got, start)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	wantRestoresSource(t, r, path)
}
