package main

import (
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"modernc.org/sqlite"
)

// The torture test's application runs in processes of its own, as real
// applications do: SQLite's locks, and what it does when a process closes
// its last connection, are per process. Each is this test binary, started
// with tortureAppEnv set to an appSpec.
const tortureAppEnv = "REPLICATOR_TORTURE_WRITER"

// Application roles.
const (
	// roleLong keeps one connection and commits on it, closing it only
	// while the park file exists (so that the open-and-close writer's
	// close can be the last one).
	roleLong = "long"
	// roleOnce opens the database, commits one row and closes it, over
	// and over: the sqlite3 CLI, a PHP request, a cron job.
	roleOnce = "once"
	// roleCheckpoint opens the database, runs one checkpoint and closes
	// it, cycling through the modes.
	roleCheckpoint = "checkpoint"
)

// appSpec says what one application process does. Writers commit rows
// (w = id, n = 1, 2, 3, ...) one per transaction, the scheme checkPrefix
// verifies.
type appSpec struct {
	role string
	db   string
	id   int
	stop string // every role ends once this file exists
	park string // a long writer closes its connection while this file exists
	// hold: nothing is committed or checkpointed while this file
	// exists; long writers keep their connection.
	hold string
}

func (s appSpec) String() string {
	return strings.Join([]string{s.role, s.db, strconv.Itoa(s.id), s.stop, s.park, s.hold}, ",")
}

func parseAppSpec(v string) (appSpec, error) {
	f := strings.Split(v, ",")
	if len(f) != 6 {
		return appSpec{}, fmt.Errorf("%s=%q: want ROLE,DB,ID,STOPFILE,PARKFILE,HOLDFILE", tortureAppEnv, v)
	}
	id, err := strconv.Atoi(f[2])
	if err != nil {
		return appSpec{}, fmt.Errorf("%s=%q: writer id: %w", tortureAppEnv, v, err)
	}
	return appSpec{role: f[0], db: f[1], id: id, stop: f[3], park: f[4], hold: f[5]}, nil
}

// runTortureApp runs the application process spec describes. What it
// reports for the test (counts of what happened) goes to stdout.
func runTortureApp(spec string) error {
	s, err := parseAppSpec(spec)
	if err != nil {
		return err
	}
	switch s.role {
	case roleLong:
		return longWriter(s)
	case roleOnce:
		return onceWriter(s)
	case roleCheckpoint:
		return checkpointer(s)
	}
	return fmt.Errorf("%s: unknown role %q (want %s, %s or %s)", tortureAppEnv, s.role, roleLong, roleOnce, roleCheckpoint)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// waitHold returns once the hold file is gone, or the stop file exists.
// It polls often: the test lifts the hold for the few milliseconds in
// which a write matters.
func waitHold(s appSpec) {
	for exists(s.hold) && !exists(s.stop) {
		time.Sleep(100 * time.Microsecond)
	}
}

// longWriter commits rows until the stop file appears, on one connection
// kept open except while parked.
func longWriter(s appSpec) error {
	n := 0
	for !exists(s.stop) {
		if err := longSession(s, &n); err != nil {
			return err
		}
		for exists(s.park) && !exists(s.stop) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// longSession commits rows n+1, n+2, ... on one connection until the park
// or the stop file appears, running the application's own checkpoints of
// every mode now and then, and closes the connection.
func longSession(s appSpec, n *int) error {
	db, err := sql.Open("sqlite", "file:"+s.db+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	modes := checkpointModes()
	for !exists(s.stop) && !exists(s.park) {
		waitHold(s)
		next := *n + 1
		if _, err := db.Exec("INSERT INTO rows (w, n, pad) VALUES (?, ?, randomblob(?))", s.id, next, rand.IntN(3000)); err != nil {
			return fmt.Errorf("insert %d/%d: %w", s.id, next, err)
		}
		*n = next
		if next%97 == 0 {
			// A short busy timeout: replicator's reader makes FULL and
			// stronger checkpoints wait, and an application gives up.
			if _, err := db.Exec("PRAGMA busy_timeout = 20"); err != nil {
				return err
			}
			if _, err := db.Exec("PRAGMA wal_checkpoint(" + modes[rand.IntN(len(modes))] + ")"); err != nil {
				return err
			}
			if _, err := db.Exec("PRAGMA busy_timeout = 10000"); err != nil {
				return err
			}
		}
		time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("close writer %d after row %d: %w", s.id, *n, err)
	}
	return nil
}

// onceWriter commits rows 1, 2, 3, ... each with a connection of its own
// that it closes before the next, until the stop file appears. It reports
// how many of those closes left no WAL behind: SQLite checkpoints the
// whole WAL and deletes it when a process closes what it believes is the
// last connection to the database anywhere.
func onceWriter(s appSpec) error {
	closes, gone := 0, 0
	for n := 1; !exists(s.stop); n++ {
		waitHold(s)
		walGone, err := writeOnce(s.db, s.id, n, rand.IntN(3000))
		if err != nil {
			return err
		}
		closes++
		if walGone {
			gone++
		}
		time.Sleep(time.Duration(rand.IntN(4)) * time.Millisecond)
	}
	fmt.Printf("closes %d wal-gone %d\n", closes, gone)
	return nil
}

// writeOnce opens the database, commits row (id, n) with pad random bytes
// and closes every connection. It reports whether the WAL was gone right
// after the close.
func writeOnce(path string, id, n, pad int) (walGone bool, err error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return false, err
	}
	if _, err := db.Exec("INSERT INTO rows (w, n, pad) VALUES (?, ?, randomblob(?))", id, n, pad); err != nil {
		db.Close()
		return false, fmt.Errorf("insert %d/%d: %w", id, n, err)
	}
	if err := db.Close(); err != nil {
		return false, fmt.Errorf("close after insert %d/%d: %w", id, n, err)
	}
	_, err = os.Stat(path + "-wal")
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	return false, err
}

// checkpointModes returns SQLite's checkpoint modes, weakest first.
func checkpointModes() []string { return []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"} }

// checkpointer runs one checkpoint every 20-120 ms, each from a connection
// of its own, cycling through the modes, until the stop file appears. It
// reports how many of each mode copied the whole WAL and how many did not
// (a reader, replicator's included, or a writer in the way).
func checkpointer(s appSpec) error {
	modes := checkpointModes()
	complete, partial := map[string]int{}, map[string]int{}
	for i := rand.IntN(len(modes)); !exists(s.stop); i++ {
		time.Sleep(time.Duration(20+rand.IntN(100)) * time.Millisecond)
		waitHold(s)
		mode := modes[i%len(modes)]
		all, err := checkpointOnce(s.db, mode)
		if err != nil {
			return err
		}
		if all {
			complete[mode]++
		} else {
			partial[mode]++
		}
	}
	for _, m := range modes {
		fmt.Printf("checkpoint %s complete %d partial %d\n", m, complete[m], partial[m])
	}
	return nil
}

// checkpointOnce opens the database with a busy timeout, as an
// application should, runs a checkpoint and closes it. complete says the
// checkpoint copied the whole WAL; a database too busy for it is not an
// error.
func checkpointOnce(path, mode string) (complete bool, err error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(100)")
	if err != nil {
		return false, err
	}
	defer db.Close()
	var busy, log, copied int
	err = db.QueryRow("PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &log, &copied)
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == 5 { // SQLITE_BUSY
		return false, db.Close()
	}
	if err != nil {
		return false, fmt.Errorf("checkpoint %s: %w", mode, err)
	}
	if err := db.Close(); err != nil {
		return false, fmt.Errorf("close after checkpoint %s: %w", mode, err)
	}
	return busy == 0 && log == copied, nil
}

// appProc is a running application process.
type appProc struct {
	spec appSpec
	cmd  *exec.Cmd
	out  *syncBuffer
}

// startApp starts an application process. It is killed when the test ends
// early; normally the stop file ends it and wait collects what it printed.
func startApp(t *testing.T, spec appSpec) *appProc {
	t.Helper()
	p := &appProc{spec: spec, out: &syncBuffer{}}
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = append(os.Environ(), tortureAppEnv+"="+spec.String())
	p.cmd.Stdout = p.out
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	return p
}

// wait waits for the process to end and returns what it printed.
func (p *appProc) wait(t *testing.T) string {
	t.Helper()
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("application %s %d: %v", p.spec.role, p.spec.id, err)
	}
	return p.out.String()
}

// appReport holds the counts the open-and-close writer and the
// checkpointer printed.
type appReport struct {
	closes, walGone int
	ckptComplete    map[string]int
	ckptPartial     map[string]int
}

func parseAppReport(t *testing.T, outs ...string) appReport {
	t.Helper()
	r := appReport{ckptComplete: map[string]int{}, ckptPartial: map[string]int{}}
	for _, out := range outs {
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var mode string
			var a, b int
			switch {
			case line == "":
			case strings.HasPrefix(line, "closes "):
				if _, err := fmt.Sscanf(line, "closes %d wal-gone %d", &a, &b); err != nil {
					t.Fatalf("open-and-close writer reported %q: %v", line, err)
				}
				r.closes += a
				r.walGone += b
			case strings.HasPrefix(line, "checkpoint "):
				if _, err := fmt.Sscanf(line, "checkpoint %s complete %d partial %d", &mode, &a, &b); err != nil {
					t.Fatalf("checkpointer reported %q: %v", line, err)
				}
				r.ckptComplete[mode] += a
				r.ckptPartial[mode] += b
			default:
				t.Fatalf("an application printed %q", line)
			}
		}
	}
	return r
}
