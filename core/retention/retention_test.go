package retention_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/core/restore"
	"github.com/sqlitereplicator/replicator/core/retention"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// source is a database replicated into an in-memory replica.
type source struct {
	path string
	app  *sql.DB
	r    *replica.Replica
	rows int
	// txids and times record, per row count k, the txid and a time at
	// which the table had k rows.
	txids map[int]uint64
	times map[int]time.Time
}

func newSource(t *testing.T) *source {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.db")
	app, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	if _, err := app.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	return &source{path: path, app: app, r: replica.New("mem", memstore.New(), quiet), txids: map[int]uint64{}, times: map[int]time.Time{}}
}

// run replicates n more single-row transactions, syncing after each, with
// the given config tweaks; it returns the daemon's generation.
func (s *source) run(t *testing.T, n int, cfg replicate.Config) string {
	t.Helper()
	ctx := context.Background()
	cfg.Path, cfg.Replicas, cfg.SyncInterval = s.path, []*replica.Replica{s.r}, time.Millisecond
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	d, err := replicate.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	for range n {
		s.rows++
		if _, err := s.app.Exec("INSERT INTO t (v) VALUES (?)", fmt.Sprint(s.rows, "-", time.Now())); err != nil {
			t.Fatal(err)
		}
		if err := d.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		s.txids[s.rows] = d.Captured().TxID
		s.times[s.rows] = time.Now()
		time.Sleep(8 * time.Millisecond)
	}
	gen := d.Captured().Generation
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return gen
}

// outcome is what a restore gave, comparable.
type outcome struct {
	Gen  string
	TxID uint64
	Sum  string
	Rows int
	Err  bool
}

func restoreAt(t *testing.T, r *replica.Replica, tg restore.Target) outcome {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.db")
	res, err := restore.Run(context.Background(), r, tg, out, restore.Options{Logger: quiet, Check: restore.NoCheck})
	if err != nil {
		t.Logf("restore %+v: %v", tg, err)
		return outcome{Err: true}
	}
	db, err := sql.Open("sqlite", "file:"+out+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return outcome{Gen: res.Generation, TxID: res.TxID, Sum: res.Checksum.String(), Rows: n}
}

func objects(t *testing.T, r *replica.Replica) []replica.Object {
	t.Helper()
	ctx := context.Background()
	gens, err := r.Generations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var all []replica.Object
	for _, g := range gens {
		objs, err := r.Objects(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, objs...)
	}
	return all
}

func snapshots(objs []replica.Object) []replica.Object {
	var out []replica.Object
	for _, o := range objs {
		if o.Snapshot() {
			out = append(out, o)
		}
	}
	return out
}

// windowTimes returns restore targets inside [cutoff, now]: the cutoff
// itself, every recorded time after it, and now.
func windowTimes(s *source, cutoff, now time.Time) []time.Time {
	ts := []time.Time{cutoff, now}
	var in []time.Time
	for k := 1; k <= s.rows; k++ {
		if !s.times[k].Before(cutoff) {
			in = append(in, s.times[k])
		}
	}
	// The first few (where the window's start matters) and a spread of
	// the rest, to keep the test fast.
	step := max(1, len(in)/4)
	for i, t := range in {
		if i < 3 || i%step == 0 || i == len(in)-1 {
			ts = append(ts, t)
		}
	}
	return ts
}

func checkWindow(t *testing.T, r *replica.Replica, ts []time.Time, before map[time.Time]outcome) {
	t.Helper()
	for _, ts := range ts {
		got := restoreAt(t, r, restore.Target{Timestamp: ts})
		if got.Err || got != before[ts] {
			t.Errorf("restore to %s: got %+v, before retention %+v", ts.Format(time.RFC3339Nano), got, before[ts])
		}
	}
}

func outcomes(t *testing.T, r *replica.Replica, ts []time.Time) map[time.Time]outcome {
	t.Helper()
	m := map[time.Time]outcome{}
	for _, ts := range ts {
		m[ts] = restoreAt(t, r, restore.Target{Timestamp: ts})
		if m[ts].Err {
			t.Fatalf("restore to %s fails before retention", ts)
		}
	}
	return m
}

// TestEnforceKeepsWindow: with several snapshots, retention deletes the
// snapshots and segments before the window's starting snapshot, and every
// restore to a time inside the window gives what it gave before.
func TestEnforceKeepsWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSource(t)
	gen := s.run(t, 60, replicate.Config{SnapshotInterval: 60 * time.Millisecond})
	all := objects(t, s.r)
	if n := len(snapshots(all)); n < 4 {
		t.Fatalf("history has %d snapshots, want several", n)
	}
	now := time.Now()
	for _, cutAt := range []int{30, 45} {
		cutoff := s.times[cutAt].Add(time.Millisecond)
		ts := windowTimes(s, cutoff, now)
		before := outcomes(t, s.r, ts)
		rep, err := retention.Enforce(ctx, s.r, now, now.Sub(cutoff), gen)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Deleted) == 0 {
			t.Fatalf("cutoff at row %d: nothing deleted", cutAt)
		}
		left := objects(t, s.r)
		if len(left)+len(rep.Deleted) != len(all) {
			t.Fatalf("%d objects left + %d deleted != %d before", len(left), len(rep.Deleted), len(all))
		}
		all = left
		// Exactly one snapshot at or before the window's first txid is
		// left, and no segment ending at or before it.
		t0 := s.txids[cutAt]
		var first uint64
		n := 0
		for _, o := range snapshots(left) {
			if o.Min <= t0 {
				n++
				first = o.Min
			}
		}
		if n != 1 {
			t.Fatalf("cutoff at row %d (txid %d): %d snapshots at or before it remain, want 1", cutAt, t0, n)
		}
		for _, o := range left {
			if !o.Snapshot() && o.Max <= first {
				t.Errorf("segment %s ends at or before the kept snapshot %d", o, first)
			}
		}
		checkWindow(t, s.r, ts, before)
		// Outside the window, restores may fail: the oldest are gone.
		if o := restoreAt(t, s.r, restore.Target{Timestamp: s.times[1]}); !o.Err && o.TxID == s.txids[1] {
			t.Errorf("restore to row 1 still works after retention: %+v", o)
		}
		// A second pass has nothing left to do.
		rep, err = retention.Enforce(ctx, s.r, now, now.Sub(cutoff), gen)
		if err != nil || len(rep.Deleted) != 0 {
			t.Fatalf("second pass: %v, deleted %v", err, rep.Deleted)
		}
	}
	// Zero retention keeps everything.
	if rep, err := retention.Enforce(ctx, s.r, now.Add(time.Hour), 0, gen); err != nil || !rep.Empty() {
		t.Fatalf("zero retention: %v %+v", err, rep)
	}
}

// TestEnforceGenerations: an old generation goes once a newer one serves
// the whole window, and stays while a restore to the window's start still
// needs it.
func TestEnforceGenerations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSource(t)
	genA := s.run(t, 15, replicate.Config{})
	gap := time.Now()
	newGeneration(t, s)
	genB := s.run(t, 15, replicate.Config{})
	if genA == genB {
		t.Fatal("no new generation")
	}
	now := time.Now()

	// Window starting between the generations: A serves its start.
	ts := windowTimes(s, gap, now)
	before := outcomes(t, s.r, ts)
	if before[gap].Gen != genA || before[gap].Rows != 15 {
		t.Fatalf("restore to the gap gave %+v", before[gap])
	}
	if _, err := retention.Enforce(ctx, s.r, now, now.Sub(gap), genB); err != nil {
		t.Fatal(err)
	}
	if gens, _ := s.r.Generations(ctx); len(gens) != 2 {
		t.Fatalf("generations after retention from the gap: %v", gens)
	}
	checkWindow(t, s.r, ts, before)

	// Window starting inside B: A goes.
	cutoff := s.times[20]
	ts = windowTimes(s, cutoff, now)
	before = outcomes(t, s.r, ts)
	rep, err := retention.Enforce(ctx, s.r, now, now.Sub(cutoff), genB)
	if err != nil {
		t.Fatal(err)
	}
	if gens, _ := s.r.Generations(ctx); len(gens) != 1 || gens[0] != genB {
		t.Fatalf("generations left: %v (deleted %v)", gens, rep.Deleted)
	}
	checkWindow(t, s.r, ts, before)

	// The current generation is never deleted, even when it is older.
	s2 := newSource(t)
	gA := s2.run(t, 3, replicate.Config{})
	newGeneration(t, s2)
	gB := s2.run(t, 3, replicate.Config{})
	t.Logf("gA %s gB %s", gA, gB)
	if gens, _ := s2.r.Generations(ctx); len(gens) != 2 {
		t.Fatalf("generations before: %v", gens)
	}
	if _, err := retention.Enforce(ctx, s2.r, time.Now().Add(time.Hour), time.Minute, gA); err != nil {
		t.Fatal(err)
	}
	if gens, _ := s2.r.Generations(ctx); len(gens) != 2 {
		t.Fatalf("current generation deleted: %v", gens)
	}
}

// newGeneration makes the next daemon on s start a new generation (its
// local state is lost), named in a later second than the last, since
// generation ids sort by the second they were created in.
func newGeneration(t *testing.T, s *source) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(filepath.Dir(s.path), "."+filepath.Base(s.path)+"-replicator")); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second + 10*time.Millisecond).Sub(now))
}
