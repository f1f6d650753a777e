package main

import (
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// The torture test's application processes are this test binary (see
// runTortureApp).
func init() {
	spec := os.Getenv(tortureAppEnv)
	if spec == "" {
		return
	}
	if err := runTortureApp(spec); err != nil {
		fmt.Fprintln(os.Stderr, "torture application:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// checkPrefix verifies a restored database: integrity ok, and each
// writer's counters are 1..k without a hole (a committed prefix).
func checkPrefix(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ok string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("restored %s: integrity_check %q, %v", path, ok, err)
	}
	rows, err := db.Query("SELECT w, count(*), max(n) FROM rows GROUP BY w")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	total := 0
	for rows.Next() {
		var w, c, m int
		if err := rows.Scan(&w, &c, &m); err != nil {
			t.Fatal(err)
		}
		if c != m {
			t.Fatalf("restored %s: writer %d has %d rows but counter %d: a hole, not a committed prefix", path, w, c, m)
		}
		total += c
	}
	return total
}

// TestTortureKill9 runs an application in separate processes while the
// daemon is killed with SIGKILL at random moments and restarted, and
// restores run in between. Every restore must be a committed prefix; the
// final one must equal the source.
//
// The application: three writers that keep their connection, one that
// opens the database for each transaction and closes it (the sqlite3 CLI,
// PHP, cron jobs), and checkpoints of every mode from a process of their
// own. One round in four the long writers park (close their
// connection), so that, while the daemon is dead, the open-and-close
// writer's close is the last one: SQLite then checkpoints the whole WAL
// and deletes it, which the daemon must notice when it starts again.
// While the daemon runs, its read transaction must keep that from
// happening; checkCloseKeepsWAL asserts it at the end.
//
// The other rounds the daemon starts over a WAL that was wholly
// checkpointed but not yet started over, ending with frames it never
// captured (holdCheckpointed): the application holds still from the kill
// until the daemon has checked that the WAL continues from its saved
// position, and its next commit starts the WAL over before the daemon's
// first capture (holdUntilOpen).
func TestTortureKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("long test")
	}
	bin := replicatorBin(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	replicaURL := "file://" + filepath.Join(dir, "replica")
	setup, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := setup.Exec("CREATE TABLE rows (id INTEGER PRIMARY KEY, w INTEGER, n INTEGER, pad BLOB)"); err != nil {
		t.Fatal(err)
	}
	setup.Close()

	stop, park, hold := filepath.Join(dir, "stop"), filepath.Join(dir, "park"), filepath.Join(dir, "hold")
	// Whatever ends the test, the application processes end too.
	t.Cleanup(func() { _ = os.WriteFile(stop, nil, 0o644) })
	spec := func(role string, id int) appSpec {
		return appSpec{role: role, db: dbPath, id: id, stop: stop, park: park, hold: hold}
	}
	var long []*appProc
	for i := 1; i <= 3; i++ {
		long = append(long, startApp(t, spec(roleLong, i)))
	}
	once := startApp(t, spec(roleOnce, 4))
	ckpt := startApp(t, spec(roleCheckpoint, 0))

	startDaemon := func() *exec.Cmd {
		d := exec.Command(bin, "replicate", "-sync-interval", "50ms", dbPath, replicaURL)
		d.Stderr = &prefixWriter{t: t}
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		return d
	}
	restores, parkedRounds, held, bigRows := 0, 0, 0, 0
	holding := false
	deadline := time.Now().Add(20 * time.Second)
	for round := 0; time.Now().Before(deadline); round++ {
		parked := round%4 == 3
		setFile(t, park, parked)
		d := startDaemon()
		if holding {
			holdUntilOpen(t, d.Process.Pid, dbPath+"-wal", hold)
			holding = false
		}
		time.Sleep(time.Duration(200+rand.IntN(800)) * time.Millisecond)
		if err := d.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = d.Wait()
		if !parked {
			// The WAL holds the frames committed since the daemon's
			// last capture; nothing may start it over before the next
			// daemon opens it. The long writers keep their connections
			// (and the WAL) meanwhile.
			bigRows++
			if holding = holdCheckpointed(t, dbPath, hold, bigRows); holding {
				held++
			}
		} else {
			// Long enough dead for the open-and-close writer's last
			// close to delete the WAL, often more than once.
			parkedRounds++
			time.Sleep(time.Duration(50+rand.IntN(250)) * time.Millisecond)
		}
		if round%2 == 1 {
			out := filepath.Join(dir, fmt.Sprintf("restore-%d.db", round))
			res, err := exec.Command(bin, "restore", "-o", out, replicaURL).CombinedOutput()
			if err != nil {
				t.Fatalf("restore during the torture: %v\n%s", err, res)
			}
			checkPrefix(t, out)
			restores++
		}
	}
	setFile(t, park, false)
	setFile(t, hold, false)
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, w := range long {
		w.wait(t)
	}
	rep := parseAppReport(t, once.wait(t), ckpt.wait(t))
	t.Logf("open-and-close writer: %d closes, %d of them left no WAL; checkpoints that copied the whole WAL: %v, that did not: %v; %d starts over a wholly checkpointed WAL",
		rep.closes, rep.walGone, rep.ckptComplete, rep.ckptPartial, held)
	if rep.walGone == 0 {
		t.Errorf("in %d rounds with the long writers parked, no close of the open-and-close writer (%d in all) deleted the WAL: the torture did not exercise it",
			parkedRounds, rep.closes)
	}
	if held == 0 {
		t.Errorf("no daemon started over a wholly checkpointed WAL: the torture did not exercise it")
	}
	for _, m := range checkpointModes() {
		if rep.ckptComplete[m]+rep.ckptPartial[m] == 0 {
			t.Errorf("the checkpointer never ran a %s checkpoint", m)
		}
	}

	// A last run: the WAL deleted while the daemon is down, the daemon
	// caught up, open-and-close writes under it, then SIGTERM, which
	// makes it upload everything.
	checkCloseKeepsWAL(t, bin, dbPath, replicaURL)
	final := filepath.Join(dir, "final.db")
	if out, err := exec.Command(bin, "restore", "-o", final, replicaURL).CombinedOutput(); err != nil {
		t.Fatalf("final restore: %v\n%s", err, out)
	}
	n := checkPrefix(t, final)
	if got, want := sha3sum(t, final), sha3sum(t, dbPath); got != want {
		t.Fatalf("final restore (%d rows) differs from the source", n)
	}
	t.Logf("%d rows, %d intermediate restores, all committed prefixes; final restore identical", n, restores)
}

// setFile creates or removes a file the application processes watch
// (park, hold).
func setFile(t *testing.T, path string, on bool) {
	t.Helper()
	var err error
	if on {
		err = os.WriteFile(path, nil, 0o644)
	} else if err = os.Remove(path); errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	if err != nil {
		t.Fatal(err)
	}
}

// bigWriterID is the writer id of the large rows holdCheckpointed
// commits, apart from the application's writers.
const bigWriterID = 8

// bigRow is the size of each of those rows: about 500 WAL frames for the
// daemon to read at start-up, long enough for a commit to land in
// between.
const bigRow = 2 << 20

// holdCheckpointed, run while the daemon is dead, makes the application
// hold still, commits row n of bigWriterID (the WAL then ends with many
// frames the daemon never captured), and checkpoints the whole WAL, which
// stays as it is until the next commit starts it over (salt-1 plus one);
// RESTART differs from PASSIVE only in waiting for readers first. It
// reports whether the WAL is now in that state; if not, the hold is
// lifted again.
func holdCheckpointed(t *testing.T, dbPath, hold string, n int) bool {
	t.Helper()
	setFile(t, hold, true)
	// Long enough for a commit or checkpoint under way to end.
	time.Sleep(20 * time.Millisecond)
	walGone, err := writeOnce(dbPath, bigWriterID, n, bigRow)
	if err != nil {
		t.Fatal(err)
	}
	all, err := checkpointOnce(dbPath, []string{"PASSIVE", "RESTART"}[rand.IntN(2)])
	if err != nil {
		t.Fatal(err)
	}
	if walGone || !all {
		setFile(t, hold, false)
		return false
	}
	return true
}

// holdUntilOpen lifts the hold when the daemon (pid) reads the WAL itself
// for the first time, which it does, at start-up, to see whether the WAL
// still continues from its saved position: the writers' next commit then
// starts the WAL over while the daemon is between that check and its
// first capture. Failing to see that read (it may be quick), it lifts the
// hold 100 ms after the daemon opened the WAL; without /proc, after a
// while.
func holdUntilOpen(t *testing.T, pid int, walPath, hold string) {
	t.Helper()
	defer setFile(t, hold, false)
	if !exists("/proc/self/fd") {
		time.Sleep(time.Duration(rand.IntN(50)) * time.Millisecond)
		return
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(walPath)); err == nil {
		walPath = filepath.Join(dir, filepath.Base(walPath)) // as /proc names it
	}
	fds := fmt.Sprintf("/proc/%d/fd", pid)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		// One descriptor is SQLite's; a second is the daemon's own read.
		switch n := openCount(fds, walPath); {
		case n >= 2:
			return
		case n == 1:
			if soon := time.Now().Add(100 * time.Millisecond); soon.Before(deadline) {
				deadline = soon
			}
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// openCount counts the descriptors in a process's fd directory that link
// to path.
func openCount(fds, path string) int {
	des, err := os.ReadDir(fds)
	if err != nil {
		return 0
	}
	n := 0
	for _, de := range des {
		if l, err := os.Readlink(filepath.Join(fds, de.Name())); err == nil && l == path {
			n++
		}
	}
	return n
}

func sha3sum(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("sqlite3", path, ".sha3sum").CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 .sha3sum %s: %v: %s", path, err, out)
	}
	return strings.TrimSpace(string(out))
}

// prefixWriter sends a subprocess's log to the test log, so a failure
// shows what the daemon said.
type prefixWriter struct{ t *testing.T }

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
