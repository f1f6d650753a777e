package retention_test

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

type countingStore struct {
	sdk.Storage
	n atomic.Int64
}

func (c *countingStore) Put(ctx context.Context, key string, r io.Reader, o sdk.PutOptions) (sdk.ObjectInfo, error) {
	c.n.Add(1)
	return c.Storage.Put(ctx, key, r, o)
}

func (c *countingStore) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	c.n.Add(1)
	return c.Storage.Get(ctx, key, off, n)
}

func (c *countingStore) Stat(ctx context.Context, key string) (sdk.ObjectInfo, error) {
	c.n.Add(1)
	return c.Storage.Stat(ctx, key)
}

func (c *countingStore) List(ctx context.Context, prefix, after string, fn func(sdk.ObjectInfo) error) error {
	c.n.Add(1)
	return c.Storage.List(ctx, prefix, after, fn)
}

func (c *countingStore) Delete(ctx context.Context, keys ...string) error {
	c.n.Add(1)
	return c.Storage.Delete(ctx, keys...)
}

// TestDaemonIdleMaintenance: maintenance passes stop once the database is
// idle and its last uploads were compacted, so an idle database still
// costs no storage request.
func TestDaemonIdleMaintenance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSource(t)
	st := &countingStore{Storage: memstore.New()}
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
	before := st.n.Load()
	time.Sleep(500 * time.Millisecond)
	if after := st.n.Load(); after != before {
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
