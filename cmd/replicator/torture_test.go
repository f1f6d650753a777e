package main

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// The torture test's application writers are this test binary, started
// with REPLICATOR_TORTURE_WRITER=DB,ID,STOPFILE.
func init() {
	spec := os.Getenv("REPLICATOR_TORTURE_WRITER")
	if spec == "" {
		return
	}
	parts := strings.Split(spec, ",")
	id, _ := strconv.Atoi(parts[1])
	if err := tortureWriter(parts[0], id, parts[2]); err != nil {
		fmt.Fprintln(os.Stderr, "writer:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// tortureWriter commits rows (writer id, counter 1, 2, 3, ...) one per
// transaction until the stop file appears, running the application's own
// checkpoints of every mode now and then.
func tortureWriter(path string, id int, stop string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	modes := []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"}
	for n := 1; ; n++ {
		if _, err := os.Stat(stop); err == nil {
			return nil
		}
		if _, err := db.Exec("INSERT INTO rows (w, n, pad) VALUES (?, ?, randomblob(?))", id, n, rand.IntN(3000)); err != nil {
			return fmt.Errorf("insert %d/%d: %w", id, n, err)
		}
		if n%97 == 0 {
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

// TestTortureKill9 runs application writers in separate processes while
// the daemon is killed with SIGKILL at random moments and restarted, and
// restores run in between. Every restore must be a committed prefix; the
// final one must equal the source.
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

	stop := filepath.Join(dir, "stop")
	var writers []*exec.Cmd
	for i := 1; i <= 3; i++ {
		w := exec.Command(os.Args[0], "-test.run=^$")
		w.Env = append(os.Environ(), fmt.Sprintf("REPLICATOR_TORTURE_WRITER=%s,%d,%s", dbPath, i, stop))
		w.Stderr = os.Stderr
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		writers = append(writers, w)
	}
	startDaemon := func() *exec.Cmd {
		d := exec.Command(bin, "replicate", "-sync-interval", "50ms", dbPath, replicaURL)
		d.Stderr = &prefixWriter{t: t}
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		return d
	}
	restores := 0
	deadline := time.Now().Add(20 * time.Second)
	for round := 0; time.Now().Before(deadline); round++ {
		d := startDaemon()
		time.Sleep(time.Duration(200+rand.IntN(800)) * time.Millisecond)
		if err := d.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = d.Wait()
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
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, w := range writers {
		if err := w.Wait(); err != nil {
			t.Fatalf("writer: %v", err)
		}
	}
	// A last clean run: SIGTERM makes the daemon upload everything.
	d := startDaemon()
	time.Sleep(time.Second)
	if err := d.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(); err != nil {
		t.Fatalf("daemon exit after SIGTERM: %v", err)
	}
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
