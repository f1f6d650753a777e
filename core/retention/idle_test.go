package retention_test

import (
	"context"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
	"github.com/sqlitereplicator/replicator/sdk/storecount"
)

// TestDaemonIdleMaintenance: maintenance passes stop once the database is
// idle and its last uploads were compacted, so an idle database still
// costs no storage request.
func TestDaemonIdleMaintenance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSource(t)
	st := storecount.New(memstore.New())
	s.r = replica.New("mem", st, quiet)
	d, err := replicate.Open(ctx, replicate.Config{
		Path: s.path, Replicas: []*replica.Replica{s.r}, SyncInterval: time.Millisecond, Logger: quiet,
		Retention: time.Hour, CompactionInterval: 10 * time.Millisecond, MaintenanceInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	defer func() { stop(); <-done }()
	for range 15 {
		if _, err := s.app.Exec("INSERT INTO t (v) VALUES ('x')"); err != nil {
			t.Fatal(err)
		}
		if err := d.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Settling takes 10 compaction intervals plus a tick or two.
	time.Sleep(400 * time.Millisecond)
	before := st.Total()
	time.Sleep(500 * time.Millisecond)
	if after := st.Total(); after != before {
		t.Fatalf("%d storage requests while the database was idle", after-before)
	}
	var l0 int
	for _, o := range objects(t, s.r) {
		if !o.Snapshot() && o.Level == 0 {
			l0++
		}
	}
	if l0 >= 10 {
		t.Fatalf("%d level-0 segments left uncompacted after settling", l0)
	}
}
