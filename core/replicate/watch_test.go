package replicate_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/core/watch"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

// TestSharedWatcher checks that the capture loop wakes only through the
// watcher: through notifications at once, through the watcher's poll
// when notifications are off (a lost event), and not at all when neither
// is due, which is what keeps an idle daemon from working per database.
func TestSharedWatcher(t *testing.T) {
	cases := []struct {
		name string
		opts watch.Options
		// within is how long a commit may take to be captured; 0 means
		// it must not be captured in a second.
		within time.Duration
	}{
		{name: "notifications", opts: watch.Options{PollInterval: time.Hour}, within: 5 * time.Second},
		{name: "poll only", opts: watch.Options{PollInterval: 100 * time.Millisecond, PollOnly: true}, within: 5 * time.Second},
		{name: "neither due", opts: watch.Options{PollInterval: time.Hour, PollOnly: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			w := watch.New(c.opts)
			defer w.Close()
			// Two databases on one watcher, in one directory.
			dir := t.TempDir()
			var dbs []*replicate.DB
			for _, name := range []string{"a.db", "b.db"} {
				path := filepath.Join(dir, name)
				openApp(t, path, 4096)
				d, err := replicate.Open(ctx, replicate.Config{Path: path, Replicas: []*replica.Replica{replica.New("mem", memstore.New(), slog.Default())},
					SyncInterval: 10 * time.Millisecond, Watcher: w,
					// Unused with a Watcher: a poll of the database's own
					// would capture the commit in "neither due".
					PollInterval: 50 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				runCtx, stop := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() { done <- d.Run(runCtx) }()
				t.Cleanup(func() {
					stop()
					if err := <-done; err != nil {
						t.Error(err)
					}
				})
				// Sync forces a capture: the starting position.
				if err := d.Sync(ctx); err != nil {
					t.Fatal(err)
				}
				dbs = append(dbs, d)
			}
			app := openApp(t, filepath.Join(dir, "b.db"), 4096)
			before := dbs[1].Captured().TxID
			if _, err := app.Exec("INSERT INTO t (v) VALUES ('x')"); err != nil {
				t.Fatal(err)
			}
			wait := c.within
			if wait == 0 {
				wait = time.Second
			}
			deadline := time.Now().Add(wait)
			for dbs[1].Captured().TxID == before && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			captured := dbs[1].Captured().TxID > before
			if captured != (c.within > 0) {
				t.Errorf("captured = %v after %s, want %v", captured, wait, c.within > 0)
			}
			if got := dbs[0].Captured().TxID; got != 1 {
				t.Errorf("the other database moved to txid %d", got)
			}
		})
	}
}
