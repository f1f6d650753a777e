package main

import (
	"strings"
	"testing"
)

// closeWriterID is the writer id of the rows checkCloseKeepsWAL commits,
// apart from the torture's writers.
const closeWriterID = 9

// closeWrites is how many open-write-close transactions run under the
// daemon.
const closeWrites = 20

// checkCloseKeepsWAL: while the daemon runs, an application that opens
// the database, commits and closes its last connection must leave the WAL
// alone. SQLite checkpoints the whole WAL and deletes it on the close it
// believes is the last anywhere, which it tells by taking an exclusive
// lock on the database file; the daemon's connections hold SQLite's
// shared lock, which anything in the daemon that opens and closes the
// database file itself silently drops (closing any descriptor of a file
// drops the process's POSIX locks on it). The daemon left on a deleted WAL
// captures nothing more.
//
// First, with no daemon and no other connection, the same close must
// delete the WAL, or this check could not fail. Then the daemon starts
// (it catches up from that checkpoint), every close under it must leave
// the WAL, and each transaction must be captured as its own txid, not
// merged by a catch-up. It stops the daemon with SIGTERM: the replica then
// holds everything.
func checkCloseKeepsWAL(t *testing.T, bin, dbPath, replicaURL string) {
	t.Helper()
	gone, err := writeOnce(dbPath, closeWriterID, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !gone {
		t.Fatalf("with no daemon and no other connection, SQLite's last close left %s-wal: checkCloseKeepsWAL could not fail", dbPath)
	}
	addr := loopbackAddr(t)
	d := startDaemonProc(t, bin, addr, "-addr", addr, "-sync-interval", "50ms", dbPath, replicaURL)
	base := d.waitSynced(dbPath)[dbPath]
	before := len(d.log.String())
	for n := 2; n <= closeWrites+1; n++ {
		gone, err := writeOnce(dbPath, closeWriterID, n, 100)
		if err != nil {
			t.Fatal(err)
		}
		if gone {
			t.Fatalf("write %d of %d: the application's last close deleted the WAL while the daemon ran: the daemon did not hold SQLite's shared lock on %s",
				n-1, closeWrites, dbPath)
		}
	}
	d.waitTxID(dbPath, base+closeWrites)
	d.stop()
	if log := d.log.String()[before:]; strings.Contains(log, "caught up") || strings.Contains(log, "continuity re-established") {
		t.Errorf("the daemon had to catch up after the open-and-close writes:\n%s", log)
	}
}
