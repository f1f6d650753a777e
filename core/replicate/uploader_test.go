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

// waitUploadersRunning waits until n of d's upload loops run, for a few
// seconds.
func waitUploadersRunning(t *testing.T, d *replicate.DB, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for replicate.UploadersRunning(d) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d upload loops running, want %d", replicate.UploadersRunning(d), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIdleUploaderEnds: an uploader's goroutine ends once its replica
// holds everything and an interval passed; the next commit starts it
// again and goes out at once; and the lease is still released at
// shutdown, so another daemon can take the replica over without waiting
// for it to expire.
func TestIdleUploaderEnds(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := memstore.New()
	open := func(name string) (*replicate.DB, func() error) {
		path := filepath.Join(dir, name)
		openApp(t, path, 4096)
		d, err := replicate.Open(ctx, replicate.Config{Path: path, Replicas: []*replica.Replica{replica.New("mem", st, slog.Default())},
			SyncInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return d, startRun(d)
	}
	d, stop := open("a.db")
	app := openApp(t, filepath.Join(dir, "a.db"), 4096)
	for round := range 3 {
		if err := d.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		waitUploadersRunning(t, d, 0)
		want := d.Captured().TxID + 1
		if _, err := app.Exec("INSERT INTO t (v) VALUES ('x')"); err != nil {
			t.Fatal(err)
		}
		committed := time.Now()
		for d.Replicas()[0].TxID < want {
			if time.Since(committed) > 2*time.Second {
				t.Fatalf("round %d: a commit to an idle database did not reach the replica in 2s", round)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Another database on the same replica path: refused while a.db's
	// lease is held (TestLeaseFencesSecondDaemon).
	b, stopB := open("b.db")
	defer stopB()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := b.Sync(sctx); err != nil {
		t.Fatalf("the lease of a stopped database was not released: %v", err)
	}
}
