package replicate_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/localstate"
	"github.com/sqlitereplicator/replicator/core/metrics"
	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/core/restore"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

// downStore fails every request with a transient error while down is set,
// as a storage service that is unreachable.
type downStore struct {
	sdk.Storage
	down atomic.Bool
}

var errDown = sdk.Errorf(sdk.Unavailable, "test: the storage is down")

func (s *downStore) Put(ctx context.Context, key string, r io.Reader, o sdk.PutOptions) (sdk.ObjectInfo, error) {
	if s.down.Load() {
		return sdk.ObjectInfo{}, errDown
	}
	return s.Storage.Put(ctx, key, r, o)
}

func (s *downStore) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if s.down.Load() {
		return nil, errDown
	}
	return s.Storage.Get(ctx, key, off, n)
}

func (s *downStore) Stat(ctx context.Context, key string) (sdk.ObjectInfo, error) {
	if s.down.Load() {
		return sdk.ObjectInfo{}, errDown
	}
	return s.Storage.Stat(ctx, key)
}

func (s *downStore) List(ctx context.Context, prefix, after string, fn func(sdk.ObjectInfo) error) error {
	if s.down.Load() {
		return errDown
	}
	return s.Storage.List(ctx, prefix, after, fn)
}

func (s *downStore) Delete(ctx context.Context, keys ...string) error {
	if s.down.Load() {
		return errDown
	}
	return s.Storage.Delete(ctx, keys...)
}

// outageRig is a database replicated to a replica that stays up ("good")
// and one whose storage can be taken down ("flaky").
type outageRig struct {
	path        string
	app         *sql.DB
	d           *replicate.DB
	good, flaky *replica.Replica
	store       *downStore
	reg         *metrics.Registry
	stop        func()
}

func newOutageRig(t *testing.T, maxLocalSize int64, withGood bool) *outageRig {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	rig := &outageRig{path: filepath.Join(t.TempDir(), "app.db"), store: &downStore{Storage: memstore.New()}, reg: metrics.New()}
	rig.app = openApp(t, rig.path, 4096)
	rig.good = replica.New("good", memstore.New(), quiet)
	rig.flaky = replica.New("flaky", rig.store, quiet)
	rig.flaky.Retries = 1 // notice the outage, and its end, quickly
	reps := []*replica.Replica{rig.flaky}
	if withGood {
		reps = append(reps, rig.good)
	}
	d, err := replicate.Open(context.Background(), replicate.Config{Path: rig.path, Replicas: reps,
		SyncInterval: 10 * time.Millisecond, CleanupInterval: 50 * time.Millisecond, MaxLocalSize: maxLocalSize,
		Metrics: rig.reg, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	rig.d = d
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	rig.stop = func() {
		rig.store.down.Store(false) // the final sync must be able to finish
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(func() {
		if cancel != nil && ctx.Err() == nil {
			rig.stop()
		}
	})
	return rig
}

// insert commits n rows of size random (incompressible) bytes each, one
// transaction each, and returns how long the commits took.
func (rig *outageRig) insert(t *testing.T, n, size int) time.Duration {
	t.Helper()
	start := time.Now()
	for range n {
		if _, err := rig.app.Exec("INSERT INTO t (v) VALUES (randomblob(?))", size); err != nil {
			t.Fatal(err)
		}
	}
	return time.Since(start)
}

// replicaStatus returns the named replica's status.
func (rig *outageRig) replicaStatus(name string) replicate.ReplicaStatus {
	for _, r := range rig.d.Replicas() {
		if r.Name == name {
			return r
		}
	}
	return replicate.ReplicaStatus{}
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// restoreEquals restores r at target and compares the result with want (a
// sha3 of the database as it was).
func restoreEquals(t *testing.T, r *replica.Replica, target restore.Target, want string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "restored.db")
	res, err := restore.Run(context.Background(), r, target, out, restore.Options{})
	if err != nil {
		t.Fatalf("restore %+v from %s: %v", target, r.Name, err)
	}
	if got := sha3(t, out); got != want {
		t.Fatalf("restore %+v from %s (txid %d) differs from the database", target, r.Name, res.TxID)
	}
}

// TestOutageDoesNotBlockCommits: while one replica's storage fails every
// request, the application commits at the same speed, the other replica
// keeps up, and when the storage returns the replica catches up with
// everything (no re-base: the local state stayed under its limit).
func TestOutageDoesNotBlockCommits(t *testing.T) {
	rig := newOutageRig(t, 0, true)
	ctx := context.Background()
	rig.insert(t, 20, 200)
	if err := rig.d.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// The speed of commits with every storage answering, then with one down.
	const n = 300
	normal := rig.insert(t, n, 200)
	rig.store.down.Store(true)
	time.Sleep(50 * time.Millisecond)
	during := rig.insert(t, n, 200)
	t.Logf("%d commits: %s with the storage up, %s with it down", n, normal, during)
	if during > 3*normal+time.Second {
		t.Fatalf("commits slowed down during the outage: %s for %d, against %s before", during, n, normal)
	}
	// The good replica keeps up; the flaky one reports its failure.
	want := rig.d.Captured().TxID
	waitUntil(t, "the good replica to hold everything captured", 10*time.Second, func() bool { return rig.replicaStatus("good").TxID >= want })
	waitUntil(t, "the flaky replica to report the outage", 10*time.Second, func() bool { return rig.replicaStatus("flaky").Err != nil })
	if st := rig.replicaStatus("flaky"); st.TxID >= want || st.Rebasing {
		t.Fatalf("flaky replica during the outage: %+v", st)
	}
	if !sdk.IsTransient(rig.replicaStatus("flaky").Err) {
		t.Fatalf("flaky replica's error %v, want the storage's transient error", rig.replicaStatus("flaky").Err)
	}
	rig.store.down.Store(false)
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := rig.d.Sync(sctx); err != nil {
		t.Fatalf("sync after the outage: %v", err)
	}
	if st := rig.replicaStatus("flaky"); st.Err != nil || st.Rebasing || st.Lag != 0 {
		t.Fatalf("flaky replica after the outage: %+v", st)
	}
	rig.stop()
	want3 := sha3(t, rig.path)
	restoreEquals(t, rig.good, restore.Target{}, want3)
	restoreEquals(t, rig.flaky, restore.Target{}, want3)
}

// TestMaxLocalSizeRebase: an outage longer than max-local-size allows.
// Capture goes on, what only the lagging replica lacked is dropped (the
// replica is marked for a re-base, durably, and metrics say so), the
// replica that keeps up is unaffected, and once the storage answers the
// lagging replica starts again from a fresh snapshot. Its restores at the
// latest position equal the database; a point in time inside the gap is
// refused, not answered with the state before it.
func TestMaxLocalSizeRebase(t *testing.T) {
	for _, tc := range []struct {
		name     string
		withGood bool
	}{
		{"beside a replica that keeps up", true},
		{"the only replica", false},
	} {
		t.Run(tc.name, func(t *testing.T) { testRebase(t, tc.withGood) })
	}
}

func testRebase(t *testing.T, withGood bool) {
	const limit = 256 << 10
	rig := newOutageRig(t, limit, withGood)
	ctx := context.Background()
	rig.insert(t, 20, 200)
	if err := rig.d.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	rig.store.down.Store(true)
	// More than recovery keeps (1000 transactions), and far more bytes
	// than the limit.
	during := rig.insert(t, 1500, 1000)
	waitUntil(t, "the flaky replica to be marked for a re-base", 20*time.Second, func() bool { return rig.replicaStatus("flaky").Rebasing })
	t.Logf("1500 commits during the outage took %s", during)
	st := rig.d.Status()
	if st.MaxLocalSize != limit {
		t.Fatalf("Status().MaxLocalSize = %d, want %d", st.MaxLocalSize, limit)
	}
	// What crash recovery needs stays until the page hash file is saved
	// again (every 1000 transactions): commit until it was.
	waitUntil(t, "the staged objects to shrink to the limit", 60*time.Second, func() bool {
		rig.insert(t, 20, 10)
		return rig.d.Status().StagedBytes <= limit
	})
	// The mark is durable: a restarted daemon still knows.
	b, err := os.ReadFile(filepath.Join(localstate.DefaultPath(rig.path), "replicas", "flaky.json"))
	if err != nil || !strings.Contains(string(b), `"rebase": true`) {
		t.Fatalf("replicas/flaky.json = %s (%v), want the re-base mark", b, err)
	}
	got := scrapeValues(t, rig.reg)
	if got["replicator_replica_rebasing/flaky"] != 1 || got["replicator_replica_rebasing/good"] != 0 || got["replicator_replica_rebases_total/flaky"] < 1 {
		t.Fatalf("metrics during the re-base: %v", got)
	}
	if got["replicator_local_state_limit_bytes/"] != limit {
		t.Fatalf("replicator_local_state_limit_bytes = %v", got["replicator_local_state_limit_bytes/"])
	}
	if withGood {
		want := rig.d.Captured().TxID
		waitUntil(t, "the good replica to hold everything captured", 10*time.Second, func() bool { return rig.replicaStatus("good").TxID >= want })
	}

	rig.store.down.Store(false)
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := rig.d.Sync(sctx); err != nil {
		t.Fatalf("sync after the outage: %v", err)
	}
	if st := rig.replicaStatus("flaky"); st.Rebasing || st.Err != nil {
		t.Fatalf("flaky replica after its re-base: %+v", st)
	}
	if got := scrapeValues(t, rig.reg); got["replicator_replica_rebasing/flaky"] != 0 {
		t.Fatalf("replicator_replica_rebasing after the re-base = %v", got["replicator_replica_rebasing/flaky"])
	}
	rig.stop()
	final := sha3(t, rig.path)
	restoreEquals(t, rig.flaky, restore.Target{}, final)
	if withGood {
		restoreEquals(t, rig.good, restore.Target{}, final)
	}
	checkGapRestores(t, rig.flaky, rig.good, withGood)
}

// checkGapRestores finds the gap the re-base left in r (a chain ending at
// M, resumed by a snapshot at N > M+1) and checks the restores around it
// against the replica that has no gap.
func checkGapRestores(t *testing.T, r, whole *replica.Replica, withWhole bool) {
	t.Helper()
	ctx := context.Background()
	gens, err := r.Generations(ctx)
	if err != nil || len(gens) != 1 {
		t.Fatalf("generations %v, %v", gens, err)
	}
	objs, err := r.Objects(ctx, gens[0])
	if err != nil {
		t.Fatal(err)
	}
	var m, n replica.Object
	for _, o := range objs {
		if o.Snapshot() || o.Max <= m.Max {
			continue
		}
		cont := false
		for _, p := range objs {
			cont = cont || (!p.Snapshot() && p.Min == o.Max+1)
		}
		if !cont {
			m = o
			break
		}
	}
	for _, o := range objs {
		if o.Snapshot() && o.Min > m.Max+1 && (n.Key == "" || o.Min < n.Min) {
			n = o
		}
	}
	if m.Key == "" || n.Key == "" {
		t.Fatalf("no gap in the re-based replica: %v", objs)
	}
	t.Logf("gap: chain ends at %s, resumes at %s", m, n)
	// Inside the gap: by txid and by time, a clear refusal.
	if _, err := restore.MakePlan(ctx, r, restore.Target{TxID: (m.Max + n.Min) / 2}); err == nil {
		t.Fatalf("a txid inside the gap (%d-%d) was planned", m.Max+1, n.Min-1)
	}
	h, err := r.ReadHeader(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := restore.MakePlan(ctx, r, restore.Target{Timestamp: h.LastCommitTime()}); !errors.Is(err, restore.ErrGap) {
		t.Fatalf("restore at %s, inside the gap: err = %v, want ErrGap", h.LastCommitTime(), err)
	}
	// At both ends of the gap: a verified restore, the same database as the
	// replica without a gap where that one can reach the txid exactly (its
	// segments were merged at other boundaries).
	for _, txid := range []uint64{m.Max, n.Min} {
		out := filepath.Join(t.TempDir(), "gap-end.db")
		if _, err := restore.Run(ctx, r, restore.Target{TxID: txid}, out, restore.Options{}); err != nil {
			t.Fatalf("restore txid %d from %s: %v", txid, r.Name, err)
		}
		if !withWhole {
			continue
		}
		ref := filepath.Join(t.TempDir(), "whole.db")
		if _, err := restore.Run(ctx, whole, restore.Target{TxID: txid}, ref, restore.Options{}); err != nil {
			t.Logf("txid %d is not exactly restorable from %s: %v", txid, whole.Name, err)
			continue
		}
		if sha3(t, out) != sha3(t, ref) {
			t.Fatalf("txid %d restored from %s differs from %s", txid, r.Name, whole.Name)
		}
	}
}

// scrapeValues returns the replicator_ gauges and counters of reg, keyed
// by "name/replica" (replica empty for per-database series).
func scrapeValues(t *testing.T, reg *metrics.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "replicator_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			rep := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "replica" {
					rep = l.GetValue()
				}
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out[mf.GetName()+"/"+rep] += v
		}
	}
	return out
}
