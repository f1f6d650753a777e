package replicate_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/core/restore"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

// slowStore delays every Put, so that what is captured meanwhile piles up
// and goes out merged.
type slowStore struct {
	sdk.Storage
	delay time.Duration
}

func (s slowStore) Put(ctx context.Context, key string, r io.Reader, o sdk.PutOptions) (sdk.ObjectInfo, error) {
	time.Sleep(s.delay)
	return s.Storage.Put(ctx, key, r, o)
}

// TestUploadsDoNotMergeAcrossSnapshots: while uploads lag behind frequent
// snapshots, no uploaded segment spans a snapshot (a restore from the
// snapshot at S needs a segment starting at S+1), and the latest restore
// equals the database.
func TestUploadsDoNotMergeAcrossSnapshots(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "app.db")
	app := openApp(t, path, 4096)
	quiet := slog.New(slog.DiscardHandler)
	r := replica.New("slow", slowStore{Storage: memstore.New(), delay: 60 * time.Millisecond}, quiet)
	d, err := replicate.Open(ctx, replicate.Config{Path: path, Replicas: []*replica.Replica{r},
		SyncInterval: 10 * time.Millisecond, SnapshotInterval: 150 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	for start := time.Now(); time.Since(start) < 2*time.Second; {
		if _, err := app.Exec("INSERT INTO t (v) VALUES (randomblob(100))"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := d.Sync(sctx); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	gens, err := r.Generations(ctx)
	if err != nil || len(gens) != 1 {
		t.Fatalf("generations %v, %v", gens, err)
	}
	objs, err := r.Objects(ctx, gens[0])
	if err != nil {
		t.Fatal(err)
	}
	snaps, merged := 0, 0
	for _, s := range objs {
		if !s.Snapshot() {
			if s.Max > s.Min {
				merged++
			}
			continue
		}
		snaps++
		for _, o := range objs {
			if !o.Snapshot() && o.Min <= s.Min && s.Min < o.Max {
				t.Errorf("%s spans %s", o, s)
			}
		}
	}
	if snaps < 3 || merged == 0 {
		t.Fatalf("%d snapshots and %d merged segments: the test did not make uploads lag behind snapshots", snaps, merged)
	}
	restoreEquals(t, r, restore.Target{}, sha3(t, path))
}
