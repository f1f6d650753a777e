package replicate_test

import (
	"context"
	"database/sql"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/core/schedule"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
	"github.com/sqlitereplicator/replicator/sdk/storecount"
)

// TestMaintenanceScheduler checks that maintenance is driven by uploads
// through the scheduler, shared by several databases or one of the
// database's own: passes compact after writes, stop once the database is
// idle and what it uploaded has settled (no storage request), and start
// again with the next writes.
func TestMaintenanceScheduler(t *testing.T) {
	cases := []struct {
		name   string
		dbs    int
		shared bool
	}{
		{name: "own scheduler", dbs: 1},
		{name: "shared by three databases", dbs: 3, shared: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			var sched *schedule.Scheduler
			if c.shared {
				sched = schedule.New(schedule.Options{Workers: 2})
				defer sched.Close()
			}
			quiet := slog.New(slog.DiscardHandler)
			dir := t.TempDir()
			type rig struct {
				app *sql.DB
				d   *replicate.DB
				st  *storecount.Store
				r   *replica.Replica
			}
			var rigs []rig
			for i := range c.dbs {
				path := filepath.Join(dir, string(rune('a'+i))+".db")
				app := openApp(t, path, 4096)
				st := storecount.New(memstore.New())
				r := replica.New("mem", st, quiet)
				d, err := replicate.Open(ctx, replicate.Config{
					Path: path, Replicas: []*replica.Replica{r}, SyncInterval: time.Millisecond, Logger: quiet,
					Retention: time.Hour, CompactionInterval: 10 * time.Millisecond, MaintenanceInterval: 20 * time.Millisecond,
					Scheduler: sched,
				})
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
				rigs = append(rigs, rig{app: app, d: d, st: st, r: r})
			}
			write := func() {
				for _, g := range rigs {
					for range 15 {
						if _, err := g.app.Exec("INSERT INTO t (v) VALUES ('x')"); err != nil {
							t.Fatal(err)
						}
						if err := g.d.Sync(ctx); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			compacted := func() bool {
				for _, g := range rigs {
					if level0(t, g.r) >= 10 {
						return false
					}
				}
				return true
			}
			write()
			waitUntil(t, "compaction after writes", 10*time.Second, compacted)
			// Settling takes 10 compaction intervals plus one
			// maintenance interval after the last change.
			time.Sleep(400 * time.Millisecond)
			before := make([]int64, len(rigs))
			for i, g := range rigs {
				before[i] = g.st.Total()
			}
			time.Sleep(500 * time.Millisecond)
			for i, g := range rigs {
				if n := g.st.Total() - before[i]; n != 0 {
					t.Fatalf("database %d: %d storage requests while idle", i, n)
				}
			}
			// New writes schedule maintenance again.
			write()
			waitUntil(t, "compaction after writes that follow an idle period", 10*time.Second, compacted)
		})
	}
}

// level0 counts the level-0 segments of every generation of r.
func level0(t *testing.T, r *replica.Replica) int {
	t.Helper()
	ctx := context.Background()
	gens, err := r.Generations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, g := range gens {
		objs, err := r.Objects(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if !o.Snapshot() && o.Level == 0 {
				n++
			}
		}
	}
	return n
}
