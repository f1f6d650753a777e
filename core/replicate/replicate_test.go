package replicate_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/sqlitereplicator/replicator/core/metrics"
	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/core/restore"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
	"github.com/sqlitereplicator/replicator/sdk/storecount"
)

func openApp(t *testing.T, path string, pageSize int) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", fmt.Sprintf("file:%s?_pragma=busy_timeout(5000)&_pragma=page_size(%d)&_pragma=journal_mode(WAL)", path, pageSize))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	return db
}

// startRun runs d until the returned stop is called, which returns what
// Run returned.
func startRun(d *replicate.DB) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

func sha3(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("sqlite3", path, ".sha3sum").CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 .sha3sum %s: %v: %s", path, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestReplicateRestore(t *testing.T) {
	for _, ps := range []int{512, 4096, 65536} {
		t.Run(fmt.Sprint(ps), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			path := filepath.Join(dir, "app.db")
			app := openApp(t, path, ps)
			st := memstore.New()
			r := replica.New("mem", st, slog.Default())
			d, err := replicate.Open(ctx, replicate.Config{Path: path, Replicas: []*replica.Replica{r}, SyncInterval: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- d.Run(runCtx) }()
			for i := range 300 {
				if _, err := app.Exec("INSERT INTO t (v) VALUES (?)", strings.Repeat(fmt.Sprint(i), 50)); err != nil {
					t.Fatal(err)
				}
				if i == 150 {
					if _, err := app.Exec("DELETE FROM t WHERE id % 3 = 0"); err != nil {
						t.Fatal(err)
					}
				}
			}
			if _, err := app.Exec("VACUUM"); err != nil {
				t.Fatal(err)
			}
			if err := d.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			stop()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "restored.db")
			res, err := restore.Run(ctx, r, restore.Target{}, out, restore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := sha3(t, out), sha3(t, path); got != want {
				t.Fatalf("restored txid %d differs from source", res.TxID)
			}
			if _, err := os.Stat(out); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestLeaseFencesSecondDaemon: a second daemon (another database) writing
// to the same replica path is refused while the first holds the lease.
func TestLeaseFencesSecondDaemon(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	dir := t.TempDir()
	var dbs []*replicate.DB
	for _, name := range []string{"a.db", "b.db"} {
		path := filepath.Join(dir, name)
		app := openApp(t, path, 4096)
		if _, err := app.Exec("INSERT INTO t (v) VALUES ('x')"); err != nil {
			t.Fatal(err)
		}
		d, err := replicate.Open(ctx, replicate.Config{Path: path, Replicas: []*replica.Replica{replica.New("mem", st, slog.Default())}, SyncInterval: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		dbs = append(dbs, d)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 2)
	defer func() { stop(); <-done; <-done }()
	go func() { done <- dbs[0].Run(runCtx) }()
	if err := dbs[0].Sync(ctx); err != nil {
		t.Fatal(err)
	}
	go func() { done <- dbs[1].Run(runCtx) }()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := dbs[1].Sync(sctx); err == nil {
		t.Fatal("a second daemon synced into a replica path leased by another")
	}
	for _, r := range dbs[1].Replicas() {
		if !errors.Is(r.Err, replica.ErrLeaseHeld) {
			t.Fatalf("second daemon's replica error = %v, want ErrLeaseHeld", r.Err)
		}
	}
}

// TestReplicaAddedLater: a replica added after the staged history was
// cleaned up starts from a fresh snapshot and then follows.
func TestReplicaAddedLater(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	app := openApp(t, path, 4096)
	a := replica.New("a", memstore.New(), slog.Default())
	b := replica.New("b", memstore.New(), slog.Default())
	runWrites(t, app, path, nil, a)
	runWrites(t, app, path, nil, a, b)
	for _, r := range []*replica.Replica{a, b} {
		wantRestoresSource(t, r, path)
	}
}

// TestReplicaLostWhileStopped: when the replica no longer holds what the
// local state says was uploaded to it (emptied, its newest object lost, or
// its URL changed under the same name while the daemon was stopped), the
// daemon starts it again from a snapshot instead of adding segments no
// restore could use.
func TestReplicaLostWhileStopped(t *testing.T) {
	for _, tc := range []struct {
		name string
		lose func(t *testing.T, st *memstore.Store) *memstore.Store // returns the store the daemon finds next
	}{
		{"emptied", func(t *testing.T, st *memstore.Store) *memstore.Store {
			deleteKeys(t, st, func(keys []string) []string { return keys })
			return st
		}},
		{"snapshot lost", func(t *testing.T, st *memstore.Store) *memstore.Store {
			deleteKeys(t, st, func(keys []string) []string { return filterKeys(keys, "/snapshots/") })
			return st
		}},
		{"newest segment lost", func(t *testing.T, st *memstore.Store) *memstore.Store {
			deleteKeys(t, st, func(keys []string) []string {
				segs := filterKeys(keys, "/segments/")
				return segs[len(segs)-1:]
			})
			return st
		}},
		{"another storage, same name", func(*testing.T, *memstore.Store) *memstore.Store {
			return memstore.New()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.db")
			app := openApp(t, path, 4096)
			st := memstore.New()
			runWrites(t, app, path, nil, replica.New("a", st, slog.Default()))
			r := replica.New("a", tc.lose(t, st), slog.Default())
			reg := metrics.New()
			runWrites(t, app, path, reg, r)
			wantRestoresSource(t, r, path)
			if n := scrapeValues(t, reg)["replicator_replica_lost_total/a"]; n != 1 {
				t.Errorf("replicator_replica_lost_total = %v, want 1", n)
			}
		})
	}
}

// deleteKeys deletes the keys of st's generations that pick chooses from
// their sorted list.
func deleteKeys(t *testing.T, st *memstore.Store, pick func(keys []string) []string) {
	t.Helper()
	ctx := context.Background()
	var keys []string
	err := st.List(ctx, "generations/", "", func(oi sdk.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	if keys = pick(keys); len(keys) == 0 {
		t.Fatal("nothing to delete from the replica")
	}
	if err := st.Delete(ctx, keys...); err != nil {
		t.Fatal(err)
	}
}

func filterKeys(keys []string, part string) []string {
	var out []string
	for _, k := range keys {
		if strings.Contains(k, part) {
			out = append(out, k)
		}
	}
	return out
}

// runWrites runs a daemon for the database at path and reps (counting in
// reg, unless nil) while 20 rows are inserted, until the replicas hold them.
func runWrites(t *testing.T, app *sql.DB, path string, reg *metrics.Registry, reps ...*replica.Replica) {
	t.Helper()
	ctx := context.Background()
	d, err := replicate.Open(ctx, replicate.Config{Path: path, Replicas: reps, SyncInterval: 5 * time.Millisecond, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	for range 20 {
		if _, err := app.Exec("INSERT INTO t (v) VALUES (randomblob(300))"); err != nil {
			t.Fatal(err)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := d.Sync(sctx); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// wantRestoresSource restores the latest position of r and requires it
// equal to the database at path.
func wantRestoresSource(t *testing.T, r *replica.Replica, path string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.db")
	if _, err := restore.Run(context.Background(), r, restore.Target{}, out, restore.Options{}); err != nil {
		t.Fatalf("restore from %s: %v", r.Name, err)
	}
	if got, want := sha3(t, out), sha3(t, path); got != want {
		t.Fatalf("restore from %s differs from the source", r.Name)
	}
}

// TestIdleSendsNothing: once what was committed is uploaded, an idle
// database costs no storage request at all.
func TestIdleSendsNothing(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "app.db")
	app := openApp(t, path, 4096)
	st := storecount.New(memstore.New())
	d, err := replicate.Open(ctx, replicate.Config{Path: path, Replicas: []*replica.Replica{replica.New("mem", st, slog.Default())},
		SyncInterval: 10 * time.Millisecond, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	defer func() { stop(); <-done }()
	if _, err := app.Exec("INSERT INTO t (v) VALUES ('x')"); err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the uploader settle
	before := st.Total()
	time.Sleep(1500 * time.Millisecond)
	if after := st.Total(); after != before {
		t.Fatalf("%d storage requests while the database was idle", after-before)
	}
}

// TestCommitAfterQuietPeriodGoesOutAtOnce: sync-interval caps the upload
// rate, it is not a delay. A commit after a quiet period longer than the
// interval is uploaded at once, even when the uploader was woken in
// between with nothing to send.
func TestCommitAfterQuietPeriodGoesOutAtOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "app.db")
	app := openApp(t, path, 4096)
	d, err := replicate.Open(ctx, replicate.Config{Path: path, Replicas: []*replica.Replica{replica.New("mem", memstore.New(), slog.Default())},
		SyncInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	defer func() { stop(); <-done }()
	for range 3 {
		if _, err := app.Exec("INSERT INTO t (v) VALUES ('x')"); err != nil {
			t.Fatal(err)
		}
		// Sync wakes the uploader repeatedly while it uploads, so it also
		// runs a round with nothing to send.
		if err := d.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1200 * time.Millisecond)
		want := d.Captured().TxID + 1
		if _, err := app.Exec("INSERT INTO t (v) VALUES ('y')"); err != nil {
			t.Fatal(err)
		}
		committed := time.Now()
		for d.Replicas()[0].TxID < want {
			if time.Since(committed) > 400*time.Millisecond {
				t.Fatalf("a commit after a quiet period took over 400ms to reach the replica (sync-interval 1s)")
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}
