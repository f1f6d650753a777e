package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDirScanKeepsLocks: the periodic scan of a dir entry must leave the
// databases the daemon already replicates alone. Closing any descriptor of
// a file drops every POSIX lock the process holds on it, SQLite's shared
// lock among them. Without that lock, an application closing its last
// connection believes no one else has the database open: it checkpoints
// the whole WAL over the daemon's read snapshot and deletes the WAL and
// the shared memory, and the daemon, left on the deleted files, captures
// nothing more.
func TestDirScanKeepsLocks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the daemon and waits for a directory scan")
	}
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Skip("needs the sqlite3 CLI (scripts/test.sh installs it)")
	}
	bin := replicatorBin(t)
	dir := t.TempDir()
	app := newAppDB(t, filepath.Join(dir, "tenants", "a.db"))
	app.insert(3)
	d, rep := startDirDaemon(t, bin, dir)
	d.waitSynced(app.path)
	if err := app.db.Close(); err != nil {
		t.Fatal(err)
	}

	// Past a scan that finds the database already replicated, an
	// application that opens the database, writes twice and closes it.
	time.Sleep(dirScanInterval + time.Second)
	sql := "INSERT INTO t (v) VALUES ('four'); INSERT INTO t (v) VALUES ('five');"
	if out, err := exec.Command("sqlite3", "-cmd", ".timeout 5000", app.path, sql).CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	app.n += 2
	if _, err := os.Stat(app.path + "-wal"); errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the application's last close deleted the WAL: the daemon no longer held its lock on %s", app.path)
	} else if err != nil {
		t.Fatal(err)
	}
	// Rows written before the daemon started are txid 1, each insert after
	// one more: a catch-up would have made the two one transaction.
	d.waitTxID(app.path, 1+2)
	d.stop()
	if log := d.log.String(); strings.Contains(log, "caught up") || strings.Contains(log, "continuity re-established") {
		t.Errorf("the daemon had to catch up:\n%s", log)
	}
	if n := restoreRows(t, bin, rep+"/a.db", 0); n != app.n {
		t.Errorf("restored %d rows, want %d", n, app.n)
	}
}

// TestDirDatabaseRemoved: a database of a dir entry that is deleted stops
// quietly. The daemon stays healthy and goes on with the others; an
// explicitly configured database that is deleted is a failure instead.
func TestDirDatabaseRemoved(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the daemon")
	}
	bin := replicatorBin(t)
	dir := t.TempDir()
	a := newAppDB(t, filepath.Join(dir, "tenants", "a.db"))
	b := newAppDB(t, filepath.Join(dir, "tenants", "b.db"))
	a.insert(1)
	b.insert(1)
	d, _ := startDirDaemon(t, bin, dir)
	d.waitSynced(a.path, b.path)

	if err := a.db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(a.path + s); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	d.waitFor("a.db to stop", 2*dirScanInterval+5*time.Second, func() bool { _, ok := d.databases()[a.path]; return !ok })
	b.insert(2)
	d.waitTxID(b.path, 1+2)
	if code, body := d.get("/healthz"); code != 200 {
		t.Errorf("/healthz after a dir database was deleted: %d %s", code, body)
	}
	if d.cmd.ProcessState != nil {
		t.Fatal("the daemon exited")
	}
}

// startDirDaemon starts a daemon whose one entry is the dir entry
// dir/tenants, replicated to the returned file URL.
func startDirDaemon(t *testing.T, bin, dir string) (*daemonProc, string) {
	t.Helper()
	addr := loopbackAddr(t)
	rep := "file://" + filepath.Join(dir, "replica")
	cfg := filepath.Join(dir, "replicator.yml")
	body := fmt.Sprintf("addr: %s\ndefaults:\n  sync-interval: 50ms\ndbs:\n  - dir: %s\n    replicas: [{name: one, url: %q}]\n",
		addr, filepath.Join(dir, "tenants"), rep)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return startDaemonProc(t, bin, addr, "-config", cfg), rep
}
