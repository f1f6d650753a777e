package capture_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/sqlitereplicator/replicator/core/capture"
	"github.com/sqlitereplicator/replicator/core/localstate"
	"github.com/sqlitereplicator/replicator/core/segment"
)

// app is the application: its own connection pool on the database.
func app(t *testing.T, path string, pragmas ...string) *sql.DB {
	t.Helper()
	if len(pragmas) == 0 {
		pragmas = []string{"busy_timeout(5000)"}
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)"
	for _, p := range pragmas {
		dsn += "&_pragma=" + p
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		t.Fatal(err)
	}
	return db
}

func exec1(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func step(t *testing.T, c *capture.Capturer) capture.Event {
	t.Helper()
	ev, err := c.Step(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// rebuild applies the staged snapshot and segments of the current
// generation, as a restore would, and returns the rebuilt file.
func rebuild(t *testing.T, c *capture.Capturer) string {
	t.Helper()
	pos := c.Position()
	snaps, err := c.Dir().Snapshots(pos.Generation)
	if err != nil || len(snaps) == 0 {
		t.Fatalf("no staged snapshot for %s: %v", pos.Generation, err)
	}
	segs, err := c.Dir().Segments(pos.Generation)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "rebuilt.db")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	objs := append([]localstate.StagedSegment{snaps[0]}, segs...)
	var last segment.Header
	txid := snaps[0].Min
	for _, o := range objs {
		if !o.Snapshot && o.Min != txid+1 {
			t.Fatalf("staged segments jump from txid %d to %d", txid, o.Min)
		}
		txid = o.Max
		last = applyFile(t, f, o.Path)
	}
	if txid != pos.TxID {
		t.Fatalf("staged objects reach txid %d, position is %d", txid, pos.TxID)
	}
	if err := f.Truncate(int64(last.DBSize) * int64(last.PageSize)); err != nil {
		t.Fatal(err)
	}
	return out
}

func applyFile(t *testing.T, dst *os.File, path string) segment.Header {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := segment.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	for {
		pgno, page, err := r.Next()
		if err == io.EOF {
			return r.Header()
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dst.WriteAt(page, int64(pgno-1)*int64(len(page))); err != nil {
			t.Fatal(err)
		}
	}
}

func sha3(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("sqlite3", path, ".sha3sum").CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %s .sha3sum: %v: %s", path, err, out)
	}
	return strings.TrimSpace(string(out))
}

func assertSame(t *testing.T, c *capture.Capturer, dbPath string) {
	t.Helper()
	if got, want := sha3(t, rebuild(t, c)), sha3(t, dbPath); got != want {
		t.Fatalf("rebuilt database (txid %d) differs from the source", c.Position().TxID)
	}
}

func open(t *testing.T, path string) (*capture.Capturer, capture.Event) {
	t.Helper()
	return openWith(t, path, capture.Options{})
}

// openWith is open with opts.
func openWith(t *testing.T, path string, opts capture.Options) (*capture.Capturer, capture.Event) {
	t.Helper()
	c, ev, err := capture.Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, ev
}

// TestAppCheckpointsOfEveryMode interleaves application writes with the
// application's own checkpoints of every mode; every transaction must be
// captured whatever the checkpoints did.
func TestAppCheckpointsOfEveryMode(t *testing.T) {
	for _, mode := range []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"} {
		t.Run(mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db")
			db := app(t, path)
			c, _ := open(t, path)
			// A checkpoint that must wait for our reader gives up quickly
			// (it reports busy; with a long busy_timeout it would wait that
			// long: replicator always holds a reader).
			ck := app(t, path, "busy_timeout(50)")
			for i := range 200 {
				exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(?))", 100+i*10)
				if i%7 == 0 {
					exec1(t, ck, fmt.Sprintf("PRAGMA wal_checkpoint(%s)", mode))
				}
				if i%3 == 0 {
					step(t, c)
				}
				if i%50 == 0 {
					if _, _, err := c.Checkpoint(context.Background(), 0); err != nil {
						t.Fatal(err)
					}
				}
			}
			step(t, c)
			assertSame(t, c, path)
		})
	}
}

// TestCatchUpAfterCheckpointWhileStopped: the application writes and
// truncates the WAL while no capturer runs; the next start ships exactly
// the changed pages, not the whole database.
func TestCatchUpAfterCheckpointWhileStopped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db := app(t, path)
	for range 500 {
		exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(1000))")
	}
	c, ev := open(t, path)
	if ev.Snapshot == nil {
		t.Fatal("first start made no snapshot")
	}
	pages := c.Position().DBSize
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	exec1(t, db, "UPDATE t SET v = randomblob(1000) WHERE id = 250")
	exec1(t, db, "PRAGMA wal_checkpoint(TRUNCATE)")

	c2, ev := open(t, path)
	if ev.Snapshot != nil || ev.Segment == nil {
		t.Fatalf("restart after a checkpoint: event %+v, want one catch-up segment and no snapshot", ev)
	}
	f, err := os.Open(ev.Segment.Path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := segment.ReadHeader(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	// One row update changes its leaf page and perhaps page 1 (the change
	// counter); never a sizeable part of a database of hundreds of pages.
	if h.PageCount == 0 || h.PageCount > 3 {
		t.Fatalf("catch-up segment holds %d pages of %d, want only the changed ones (1-3)", h.PageCount, pages)
	}
	assertSame(t, c2, path)
}

// TestRestartContinues: a clean restart with the WAL intact continues the
// generation from the saved WAL position.
func TestRestartContinues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db := app(t, path)
	c, _ := open(t, path)
	exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(100))")
	step(t, c)
	gen := c.Position().Generation
	c.Close()
	exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(100))")
	c2, ev := open(t, path)
	if ev.Snapshot != nil || c2.Position().Generation != gen {
		t.Fatalf("restart started generation %s (was %s)", c2.Position().Generation, gen)
	}
	assertSame(t, c2, path)
}

func TestDatabaseReplaced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db")
	db := app(t, path)
	exec1(t, db, "INSERT INTO t (v) VALUES (1)")
	c, _ := open(t, path)
	gen := c.Position().Generation

	other := filepath.Join(dir, "other")
	odb := app(t, other)
	exec1(t, odb, "INSERT INTO t (v) VALUES (2), (3)")
	odb.Close()
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Step(context.Background()); !errors.Is(err, capture.ErrReplaced) {
		t.Fatalf("step after the file was replaced: %v, want ErrReplaced", err)
	}
	c.Close()
	c2, ev := open(t, path)
	if ev.Snapshot == nil || c2.Position().Generation == gen {
		t.Fatal("a replaced database did not start a new generation")
	}
	assertSame(t, c2, path)
}

// TestSymlinkedPath: a database named through a symbolic link, to the
// file or to a directory on its path. SQLite follows the links and keeps
// its WAL beside the real file; the capture must read that WAL, not one
// beside the link, which no one writes.
func TestSymlinkedPath(t *testing.T) {
	for _, c := range []struct {
		name string
		link func(t *testing.T, dir, real string) string // returns the path through the link
	}{
		{"link to the file", func(t *testing.T, dir, real string) string {
			p := filepath.Join(dir, "current.db")
			if err := os.Symlink(real, p); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"link to a directory", func(t *testing.T, dir, real string) string {
			p := filepath.Join(dir, "data")
			if err := os.Symlink(filepath.Dir(real), p); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(p, filepath.Base(real))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			real := filepath.Join(dir, "real", "app.db")
			if err := os.Mkdir(filepath.Dir(real), 0o755); err != nil {
				t.Fatal(err)
			}
			db := app(t, real)
			exec1(t, db, "INSERT INTO t (v) VALUES (1)")
			linked := c.link(t, dir, real)
			cp, _ := open(t, linked)
			start := cp.Position().TxID
			for i := range 5 {
				exec1(t, db, "INSERT INTO t (v) VALUES (?)", i)
			}
			step(t, cp)
			if got := cp.Position().TxID; got != start+5 {
				t.Fatalf("captured up to txid %d after 5 commits from %d, want %d (WAL read at %s)", got, start, start+5, cp.WALPath())
			}
			assertSame(t, cp, real)
		})
	}
}

// TestSymlinkSharesLock: a database named through a link and by its own
// path is one database: a second capturer is refused either way.
func TestSymlinkSharesLock(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "app.db")
	app(t, real)
	link := filepath.Join(dir, "current.db")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	open(t, real)
	if _, _, err := capture.Open(context.Background(), link, capture.Options{}); !errors.Is(err, localstate.ErrLocked) {
		t.Fatalf("a second capturer through a link: %v, want ErrLocked", err)
	}
}

func TestRefusesNonWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	exec1(t, db, "CREATE TABLE t (x)")
	db.Close()
	_, _, err = capture.Open(context.Background(), path, capture.Options{})
	if !errors.Is(err, capture.ErrNotWAL) || !strings.Contains(err.Error(), "PRAGMA journal_mode=WAL") {
		t.Fatalf("open of a rollback-journal database: %v, want ErrNotWAL naming the PRAGMA", err)
	}
	if _, err := os.Stat(localstate.DefaultPath(path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused database got a state directory")
	}
}

// TestRefusesExclusiveLocking: an application holding the database with
// locking_mode=EXCLUSIVE leaves no room for the capture's reader; the
// error says so and names the fix.
func TestRefusesExclusiveLocking(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db := app(t, path, "busy_timeout(5000)", "locking_mode(EXCLUSIVE)")
	db.SetMaxOpenConns(1)
	exec1(t, db, "INSERT INTO t (v) VALUES (1)") // takes the exclusive lock and keeps it
	_, _, err := capture.Open(context.Background(), path, capture.Options{BusyTimeout: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "locking_mode=EXCLUSIVE") || !strings.Contains(err.Error(), "NORMAL") {
		t.Fatalf("open while the application holds the database exclusively: %v, want an error naming locking_mode and the fix", err)
	}
}

func TestSecondCapturerIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	app(t, path)
	open(t, path)
	_, _, err := capture.Open(context.Background(), path, capture.Options{})
	if !errors.Is(err, localstate.ErrLocked) {
		t.Fatalf("second capturer: %v, want ErrLocked", err)
	}
}

// TestVacuumAndShrink: VACUUM goes through the WAL like any transaction,
// shrinking the database; capture follows the truncation.
func TestVacuumAndShrink(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db := app(t, path)
	c, _ := open(t, path)
	for range 300 {
		exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(2000))")
	}
	step(t, c)
	big := c.Position().DBSize
	exec1(t, db, "DELETE FROM t WHERE id > 10")
	exec1(t, db, "VACUUM")
	step(t, c)
	if c.Position().DBSize >= big {
		t.Fatalf("database size after VACUUM is %d pages, was %d", c.Position().DBSize, big)
	}
	assertSame(t, c, path)
}

// TestCancellationLeavesNoLock cancels steps and checkpoints at random
// moments; afterwards the application must still write at once (no write
// lock left behind) and capture must go on.
func TestCancellationLeavesNoLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db := app(t, path)
	quick := app(t, path, "busy_timeout(200)")
	c, _ := open(t, path)
	for i := range 60 {
		exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(500))")
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%7)*50*time.Microsecond)
		if i%2 == 0 {
			_, _ = c.Step(ctx)
		} else {
			_, _, _ = c.Checkpoint(ctx, 10*time.Millisecond)
		}
		cancel()
		exec1(t, quick, "INSERT INTO t (v) VALUES (1)")
	}
	step(t, c)
	assertSame(t, c, path)
}

// TestGenerationAfterClockSetBack: a new generation sorts after the one
// before it even when the clock now reads earlier than that one began.
func TestGenerationAfterClockSetBack(t *testing.T) {
	now := time.Date(2026, 11, 22, 13, 9, 9, 500, time.UTC)
	prev := capture.NewGenerationID(now.Add(time.Hour))
	for _, c := range []struct {
		name, prev string
		want       time.Time // zero: after prev
	}{
		{"no generation before", "", now},
		{"the one before is older", capture.NewGenerationID(now.Add(-time.Hour)), now},
		{"the clock was set back", prev, time.Time{}},
		{"the same instant", capture.NewGenerationID(now), time.Time{}},
		{"an old whole-second id ahead", "20261122T140000Z-1a2b3c4d", time.Time{}},
		{"an unparsable id", "not-a-generation", now},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := capture.GenerationTime(now, c.prev)
			if !c.want.IsZero() && !got.Equal(c.want) {
				t.Fatalf("generation time %s, want now (%s)", got, c.want)
			}
			if id := capture.NewGenerationID(got); c.prev != "" && c.want.IsZero() && id <= c.prev {
				t.Fatalf("new generation %s does not sort after %s", id, c.prev)
			}
		})
	}
}

// TestGenerationIDsSortByTime: ids made in order sort in that order, even
// within one second, and fit a segment header.
func TestGenerationIDsSortByTime(t *testing.T) {
	base := time.Date(2026, 11, 22, 13, 9, 9, 0, time.UTC)
	var ids []string
	for _, d := range []time.Duration{0, time.Nanosecond, time.Microsecond, 999 * time.Millisecond, time.Second, time.Hour} {
		for range 20 { // the random part must never reorder them
			ids = append(ids, capture.NewGenerationID(base.Add(d)))
		}
		base = base.Add(d)
	}
	for i := 20; i < len(ids); i += 20 {
		for _, prev := range ids[i-20 : i] {
			for _, id := range ids[i : i+20] {
				if prev >= id {
					t.Fatalf("%s (earlier) does not sort before %s", prev, id)
				}
			}
		}
	}
	for _, id := range ids {
		if len(id) > segment.MaxGenerationLen {
			t.Fatalf("%s is longer than a header holds (%d)", id, segment.MaxGenerationLen)
		}
		if strings.Trim(id, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-") != "" {
			t.Fatalf("%s has characters a header does not allow", id)
		}
	}
	// An id of the earlier, whole-second form sorts before any id of a
	// later second.
	if old, id := "20261122T130909Z-1a2b3c4d", capture.NewGenerationID(time.Date(2026, 11, 22, 13, 9, 10, 0, time.UTC)); old >= id {
		t.Fatalf("%s does not sort before %s", old, id)
	}
}
