package follow

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/core/segment"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

const balance = 1000 // every account starts with this much

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// primary is an application database replicated into a memstore.
type primary struct {
	t    *testing.T
	path string
	app  *sql.DB
	d    *replicate.DB
	stop context.CancelFunc
	done chan error
}

// startPrimary creates a database of n accounts. tablesFirst creates the
// log table before the accounts table, so that two primaries have the
// same schema cookie but different root pages.
func startPrimary(t *testing.T, path string, r *replica.Replica, n int, logFirst bool) *primary {
	t.Helper()
	app, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=auto_vacuum(FULL)")
	if err != nil {
		t.Fatal(err)
	}
	app.SetMaxOpenConns(1)
	stmts := []string{
		"CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)",
		"CREATE TABLE log (id INTEGER PRIMARY KEY, data BLOB)",
	}
	if logFirst {
		stmts[0], stmts[1] = stmts[1], stmts[0]
	}
	for _, s := range stmts {
		if _, err := app.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= n; i++ {
		if _, err := app.Exec("INSERT INTO accounts (id, balance) VALUES (?, ?)", i, balance); err != nil {
			t.Fatal(err)
		}
	}
	d, err := replicate.Open(context.Background(), replicate.Config{Path: path, Replicas: []*replica.Replica{r},
		SyncInterval: time.Millisecond, PollInterval: 10 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	p := &primary{t: t, path: path, app: app, d: d, stop: stop, done: make(chan error, 1)}
	go func() { p.done <- d.Run(ctx) }()
	p.sync()
	return p
}

func (p *primary) sync() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.d.Sync(ctx); err != nil {
		p.t.Fatal(err)
	}
}

func (p *primary) close() {
	p.t.Helper()
	p.stop()
	if err := <-p.done; err != nil {
		p.t.Error(err)
	}
	p.app.Close()
}

// transfers moves money between two accounts per transaction until ctx is
// done; some transactions also grow or shrink the log table, so the
// database size changes both ways (auto_vacuum=FULL truncates).
func (p *primary) transfers(ctx context.Context, n int) int {
	count, err := transfers(ctx, p.app, n)
	if err != nil {
		p.t.Error(err)
	}
	return count
}

// transfers is the application's workload on db, in this process or a
// writer process: until ctx is done, or the first error.
func transfers(ctx context.Context, db *sql.DB, n int) (int, error) {
	count := 0
	for ctx.Err() == nil {
		a, b := rand.IntN(n)+1, rand.IntN(n)+1
		amount := rand.IntN(50)
		tx, err := db.Begin()
		if err != nil {
			return count, err
		}
		_, err1 := tx.Exec("UPDATE accounts SET balance = balance - ? WHERE id = ?", amount, a)
		_, err2 := tx.Exec("UPDATE accounts SET balance = balance + ? WHERE id = ?", amount, b)
		var err3 error
		switch rand.IntN(10) {
		case 0:
			_, err3 = tx.Exec("INSERT INTO log (data) VALUES (randomblob(?))", 1000+rand.IntN(8000))
		case 1:
			_, err3 = tx.Exec("DELETE FROM log WHERE id IN (SELECT id FROM log ORDER BY random() LIMIT 3)")
		}
		if err := errors.Join(err1, err2, err3); err != nil {
			tx.Rollback()
			return count, err
		}
		if err := tx.Commit(); err != nil {
			return count, err
		}
		count++
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
	}
	return count, nil
}

// readers check, on separate read-only connections, that every state of
// the follower's database they see is consistent: the total is the number
// of accounts times the initial balance, and the database is intact.
type readers struct {
	violations atomic.Int64
	reads      atomic.Int64
	checks     atomic.Int64
	errs       chan error
	stop       context.CancelFunc
	wg         sync.WaitGroup
}

func startReaders(t *testing.T, path string, n int) *readers {
	ctx, stop := context.WithCancel(context.Background())
	rs := &readers{stop: stop, errs: make(chan error, 100)}
	for i := 0; i < n; i++ {
		db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(1) // one long-lived connection: its schema cache is tested too
		rs.wg.Add(1)
		go func() {
			defer rs.wg.Done()
			defer db.Close()
			for k := 0; ctx.Err() == nil; k++ {
				var sum, count int64
				if err := db.QueryRow("SELECT coalesce(sum(balance), 0), count(*) FROM accounts").Scan(&sum, &count); err != nil {
					rs.violation(fmt.Errorf("read: %w", err))
					continue
				}
				rs.reads.Add(1)
				time.Sleep(200 * time.Microsecond) // leave the 2-CPU machines some room for the writer
				if count == 0 || sum != count*balance {
					rs.violation(fmt.Errorf("torn read: %d accounts hold %d, want %d", count, sum, count*balance))
				}
				if k%20 == 0 {
					var res string
					if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
						rs.violation(fmt.Errorf("integrity_check: %q %v", res, err))
					}
					rs.checks.Add(1)
				}
			}
		}()
	}
	return rs
}

func (rs *readers) violation(err error) {
	rs.violations.Add(1)
	select {
	case rs.errs <- err:
	default:
	}
}

func (rs *readers) finish(t *testing.T) {
	t.Helper()
	rs.stop()
	rs.wg.Wait()
	close(rs.errs)
	for err := range rs.errs {
		t.Error(err)
	}
	if v := rs.violations.Load(); v != 0 {
		t.Errorf("%d reader violations", v)
	}
	if rs.reads.Load() < 10 {
		t.Errorf("readers made only %d reads", rs.reads.Load())
	}
	t.Logf("readers: %d reads, %d integrity checks, %d violations", rs.reads.Load(), rs.checks.Load(), rs.violations.Load())
}

// follower runs a Follower in the background.
type follower struct {
	*Follower
	stop context.CancelFunc
	done chan error
}

func startFollower(t *testing.T, r *replica.Replica, path string) *follower {
	f := New(Config{Replica: r, Path: path, Interval: 10 * time.Millisecond, Logger: testLogger(t)})
	ctx, stop := context.WithCancel(context.Background())
	fl := &follower{Follower: f, stop: stop, done: make(chan error, 1)}
	go func() { fl.done <- f.Run(ctx); close(fl.done) }()
	waitFor(t, "the follower's first position", func() bool { return f.Position().TxID != 0 })
	return fl
}

func (f *follower) close(t *testing.T) {
	t.Helper()
	f.stop()
	if err, ok := <-f.done; ok && err != nil {
		t.Error(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fileChecksum computes the database checksum of the database at path
// from a fresh read-only connection, with page 1's change counter,
// version-valid-for and schema cookie zeroed (see Follower.counters and
// Follower.delta).
func fileChecksum(t *testing.T, path string) segment.Checksum {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var sum segment.Checksum
	for rows.Next() {
		var p uint32
		var data []byte
		if err := rows.Scan(&p, &data); err != nil {
			t.Fatal(err)
		}
		if p == 1 {
			setCounters(data, [8]byte{})
			copy(data[40:44], []byte{0, 0, 0, 0})
		}
		sum = sum.AddPage(p, data)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return sum
}

// converge waits until the follower holds the primary's captured position
// and checks the follower's file has the primary's checksum.
func converge(t *testing.T, p *primary, f *follower, out string) {
	t.Helper()
	p.sync()
	want := p.d.Captured()
	waitFor(t, fmt.Sprintf("the follower to reach %s/%d", want.Generation, want.TxID), func() bool {
		pos := f.Position()
		return pos.Generation == want.Generation && pos.TxID == want.TxID
	})
	if got := f.Position().Checksum; uint64(got) != want.Checksum {
		t.Fatalf("follower at checksum %s, primary %016x", got, want.Checksum)
	}
	if got, want := fileChecksum(t, out), fileChecksum(t, p.path); got != want {
		t.Fatalf("follower's file has checksum %s, the primary's %s", got, want)
	}
}

func setup(t *testing.T) (dir string, r *replica.Replica) {
	dir = t.TempDir()
	return dir, replica.New("mem", memstore.New(), testLogger(t))
}

// workload runs transfers on the primary for d: in this process and in
// two writer processes, as applications sharing a database do.
func workload(p *primary, n int, d time.Duration) int {
	p.t.Helper()
	wp := startWriterProcesses(p.t, p.path, n, d, 2)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return p.transfers(ctx, n) + wp.finish(p.t)
}

func TestFollowTransfers(t *testing.T) {
	eachStore(t, func(t *testing.T, dir string, r *replica.Replica) {
		p := startPrimary(t, filepath.Join(dir, "primary.db"), r, 20, false)
		defer p.close()
		out := filepath.Join(dir, "follower.db")
		f := startFollower(t, r, out)
		defer f.close(t)
		rs := startReaders(t, out, 3)
		rp := startReaderProcesses(t, out, 2)
		n := workload(p, 20, 3*time.Second)
		converge(t, p, f, out)
		rs.finish(t)
		rp.finish(t)
		st := f.Stats()
		t.Logf("%d transfers; follower applied %d segments in %d polls, %d re-syncs", n, st.Segments, st.Polls, st.Resyncs)
		if st.Segments == 0 {
			t.Error("the follower applied no segment")
		}
		if st.Resyncs != 0 || st.LocalWrites != 0 {
			t.Errorf("unexpected re-syncs (%d) or local writes (%d)", st.Resyncs, st.LocalWrites)
		}
	})
}

func TestFollowNewGeneration(t *testing.T) {
	eachStore(t, func(t *testing.T, dir string, r *replica.Replica) {
		p1 := startPrimary(t, filepath.Join(dir, "primary1.db"), r, 20, false)
		out := filepath.Join(dir, "follower.db")
		f := startFollower(t, r, out)
		defer f.close(t)
		rs := startReaders(t, out, 3)
		rp := startReaderProcesses(t, out, 2)
		workload(p1, 20, time.Second)
		converge(t, p1, f, out)
		gen1 := p1.d.Captured().Generation
		p1.close()
		// Generation ids have a resolution of one second.
		time.Sleep(1100 * time.Millisecond)
		// The new primary has the same schema cookie but its tables in other
		// pages, and another number of accounts.
		p2 := startPrimary(t, filepath.Join(dir, "primary2.db"), r, 7, true)
		defer p2.close()
		workload(p2, 7, time.Second)
		converge(t, p2, f, out)
		if gen2 := p2.d.Captured().Generation; gen2 <= gen1 {
			t.Fatalf("second generation %s does not sort after %s", gen2, gen1)
		}
		workload(p2, 7, 500*time.Millisecond)
		converge(t, p2, f, out)
		rs.finish(t)
		rp.finish(t)
		if st := f.Stats(); st.Resyncs != 1 {
			t.Errorf("%d re-syncs, want 1 (the generation change)", st.Resyncs)
		}
	})
}

func TestFollowLocalWrite(t *testing.T) {
	eachStore(t, func(t *testing.T, dir string, r *replica.Replica) {
		p := startPrimary(t, filepath.Join(dir, "primary.db"), r, 10, false)
		defer p.close()
		out := filepath.Join(dir, "follower.db")
		f := startFollower(t, r, out)
		defer f.close(t)
		rs := startReaders(t, out, 2)
		workload(p, 10, 500*time.Millisecond)
		converge(t, p, f, out)
		// A local write that keeps the invariant, so readers stay happy.
		w, err := sql.Open("sqlite", "file:"+out+"?_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if _, err := w.Exec("UPDATE accounts SET balance = balance + (CASE id WHEN 1 THEN 5 ELSE -5 END) WHERE id IN (1, 2)"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the local write to be detected and repaired", func() bool { st := f.Stats(); return st.LocalWrites == 1 && st.Resyncs == 1 })
		converge(t, p, f, out)
		workload(p, 10, 500*time.Millisecond)
		converge(t, p, f, out)
		rs.finish(t)
		if st := f.Stats(); st.Resyncs != 1 {
			t.Errorf("%d re-syncs, want 1", st.Resyncs)
		}
	})
}

func TestFollowRestartResumes(t *testing.T) {
	dir, r := setup(t)
	p := startPrimary(t, filepath.Join(dir, "primary.db"), r, 10, false)
	defer p.close()
	out := filepath.Join(dir, "follower.db")
	f := startFollower(t, r, out)
	workload(p, 10, 300*time.Millisecond)
	converge(t, p, f, out)
	f.close(t)
	workload(p, 10, 300*time.Millisecond)
	f = startFollower(t, r, out)
	defer f.close(t)
	converge(t, p, f, out)
	if st := f.Stats(); st.Resyncs != 0 || st.Segments == 0 {
		t.Errorf("after a restart: %d re-syncs (want 0), %d segments applied (want > 0)", st.Resyncs, st.Segments)
	}
	// A database changed while no follower ran is re-synced at start.
	f.close(t)
	w, err := sql.Open("sqlite", "file:"+out+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Exec("DELETE FROM accounts WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	f = startFollower(t, r, out)
	defer f.close(t)
	converge(t, p, f, out)
	if st := f.Stats(); st.Resyncs != 1 {
		t.Errorf("a database changed while no follower ran: %d re-syncs at start, want 1", st.Resyncs)
	}
	// After that re-sync the local schema cookie is ahead of the
	// replica's: a restart must still resume without a re-sync.
	f.close(t)
	workload(p, 10, 200*time.Millisecond)
	f = startFollower(t, r, out)
	defer f.close(t)
	converge(t, p, f, out)
	if st := f.Stats(); st.Resyncs != 0 {
		t.Errorf("restart after a re-sync: %d re-syncs, want 0", st.Resyncs)
	}
}

func TestParseKey(t *testing.T) {
	gen := "20261122T053000Z-0123abcd"
	for key, want := range map[string]replica.Object{
		"generations/" + gen + "/snapshots/0000000000000005.snapshot":                          {Generation: gen, Level: -1, Min: 5, Max: 5},
		"generations/" + gen + "/segments/0/0000000000000006-0000000000000009.segment":         {Generation: gen, Level: 0, Min: 6, Max: 9},
		"generations/" + gen + "/segments/3/0000000000000006-0000000000000009.segment":         {Generation: gen, Level: 3, Min: 6, Max: 9},
		"generations/" + gen + "/segments/03/0000000000000006-0000000000000009.segment":        {},
		"generations/" + gen + "/segments/0/0000000000000006-0000000000000009.segment.partial": {},
		"generations/" + gen + "/other":                                                        {},
		"generations/bad.gen/snapshots/0000000000000005.snapshot":                              {},
	} {
		got, ok := parseKey(key)
		if want.Generation == "" {
			if ok {
				t.Errorf("parseKey(%q) = %v, want no object", key, got)
			}
			continue
		}
		want.Key = key
		if !ok || got != want {
			t.Errorf("parseKey(%q) = %v %v, want %v", key, got, ok, want)
		}
	}
	// The cursor of a position sorts before every segment that continues it.
	pos := Position{Generation: gen, TxID: 9}
	next, _ := segment.SegmentKey(gen, 0, 10, 10)
	if c := cursor(pos); !(c < next) {
		t.Errorf("cursor %q does not sort before %q", c, next)
	}
}
