package retention_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/core/restore"
	"github.com/sqlitereplicator/replicator/core/retention"
)

func byLevel(objs []replica.Object, level int) []replica.Object {
	var out []replica.Object
	for _, o := range objs {
		if !o.Snapshot() && o.Level == level {
			out = append(out, o)
		}
	}
	return out
}

// TestCompact: runs of L0 segments become L1 segments (and those L2),
// never across a snapshot; restores to the latest position, to every
// snapshot, and to the ends of every merged run give what they gave
// before.
func TestCompact(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSource(t)
	gen := s.run(t, 60, replicate.Config{SnapshotInterval: 400 * time.Millisecond})
	before := objects(t, s.r)
	snaps := snapshots(before)
	if len(snaps) < 2 {
		t.Fatalf("want a snapshot inside the history, have %d", len(snaps))
	}
	// Restore points that survive compaction: latest, each snapshot, each
	// boundary of an object (merged runs keep their ends).
	targets := []restore.Target{{}}
	for _, o := range snaps {
		targets = append(targets, restore.Target{TxID: o.Min})
	}
	for i, o := range byLevel(before, 0) {
		if i%3 == 0 {
			targets = append(targets, restore.Target{TxID: o.Max})
		}
	}
	want := map[restore.Target]outcome{}
	for _, tg := range targets {
		if want[tg] = restoreAt(t, s.r, tg); want[tg].Err {
			t.Fatalf("restore to %+v fails before compaction", tg)
		}
	}

	// Too young: nothing happens.
	rep, err := retention.Compact(ctx, s.r, gen, 0, retention.CompactOptions{MinAge: time.Hour})
	if err != nil || !rep.Empty() {
		t.Fatalf("young segments compacted: %v %+v", err, rep)
	}
	rep, err = retention.Compact(ctx, s.r, gen, 0, retention.CompactOptions{MinRun: 4, MaxRun: 4, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Merged) == 0 {
		t.Fatal("nothing merged")
	}
	after := objects(t, s.r)
	for _, m := range rep.Merged {
		if m.Level != 1 {
			t.Errorf("merged %s is not level 1", m)
		}
		for _, sn := range snaps {
			if m.Min <= sn.Min && sn.Min < m.Max {
				t.Errorf("merged %s spans snapshot %d", m, sn.Min)
			}
		}
	}
	if len(after) != len(before)-len(rep.Deleted)+len(rep.Merged) {
		t.Fatalf("objects: %d before, %d after, %d deleted, %d merged", len(before), len(after), len(rep.Deleted), len(rep.Merged))
	}
	merged := map[uint64]bool{} // txids strictly inside a merged run
	for _, m := range rep.Merged {
		for x := m.Min; x < m.Max; x++ {
			merged[x] = true
		}
	}
	check := func(stage string) {
		t.Helper()
		for _, tg := range targets {
			if tg.TxID != 0 && merged[tg.TxID] {
				continue // inside a merged run: restored whole, by design
			}
			if got := restoreAt(t, s.r, tg); got != want[tg] {
				t.Errorf("%s: restore to %+v: got %+v, want %+v", stage, tg, got, want[tg])
			}
		}
	}
	check("after L0->L1")

	// L1 -> L2.
	rep2, err := retention.Compact(ctx, s.r, gen, 1, retention.CompactOptions{MinRun: 2, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep2.Merged) == 0 {
		t.Error("no L1 run merged into L2")
	}
	for _, m := range rep2.Merged {
		if m.Level != 2 {
			t.Errorf("merged %s is not level 2", m)
		}
		for x := m.Min; x < m.Max; x++ {
			merged[x] = true
		}
	}
	check("after L1->L2")
	t.Logf("%d objects before, %d after L1, %d L2 merges", len(before), len(after), len(rep2.Merged))

	// A damaged input stops the merge before anything is deleted.
	s2 := newSource(t)
	gen2 := s2.run(t, 12, replicate.Config{})
	objs := byLevel(objects(t, s2.r), 0)
	mid := objs[len(objs)/2]
	rc, err := s2.r.Storage().Get(ctx, mid.Key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, mid.Size)
	if _, err := readFull(rc, buf); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	buf[len(buf)-20] ^= 0xff
	if _, err := s2.r.Storage().Put(ctx, mid.Key, bytesReader(buf), putOpts()); err != nil {
		t.Fatal(err)
	}
	n := len(objects(t, s2.r))
	if _, err := retention.Compact(ctx, s2.r, gen2, 0, retention.CompactOptions{MinRun: 2, TempDir: t.TempDir()}); err == nil {
		t.Fatal("compaction over a damaged segment succeeded")
	}
	if got := len(objects(t, s2.r)); got != n {
		t.Fatalf("failed compaction changed the replica: %d objects, was %d", got, n)
	}
}

// TestDaemonMaintains: with retention and compaction configured, the
// daemon merges segments and deletes old objects while it runs, and the
// replica still restores the source exactly, also inside the window.
func TestDaemonMaintains(t *testing.T) {
	t.Parallel()
	s := newSource(t)
	rec := &recorder{}
	s.run(t, 100, replicate.Config{
		Logger:              slog.New(rec),
		SnapshotInterval:    500 * time.Millisecond,
		Retention:           800 * time.Millisecond,
		CompactionInterval:  100 * time.Millisecond,
		MaintenanceInterval: 50 * time.Millisecond,
	})
	objs := objects(t, s.r)
	merged, deleted := rec.totals()
	if merged == 0 || deleted == 0 {
		t.Errorf("the daemon logged %d merged and %d deleted objects", merged, deleted)
	}
	for _, o := range snapshots(objs) {
		if o.Min == 1 {
			t.Error("the first snapshot outlived retention")
		}
	}
	got := restoreAt(t, s.r, restore.Target{})
	if got.Err || got.Rows != s.rows {
		t.Fatalf("latest restore: %+v, want %d rows", got, s.rows)
	}
	// Inside the window (the last 800ms, less the margin of the last
	// maintenance pass), a point in time restores to its row count.
	k := s.rows - 3
	if got := restoreAt(t, s.r, restore.Target{Timestamp: s.times[k]}); got.Err || got.Rows > k || got.Rows < k-15 {
		t.Fatalf("restore to row %d: %+v", k, got)
	}
}

// recorder is a slog handler that adds up what maintenance passes logged.
type recorder struct {
	mu              sync.Mutex
	merged, deleted int64
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message != "replica maintained" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rec.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "merged":
			r.merged += a.Value.Int64()
		case "deleted":
			r.deleted += a.Value.Int64()
		}
		return true
	})
	return nil
}

func (r *recorder) totals() (merged, deleted int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.merged, r.deleted
}
