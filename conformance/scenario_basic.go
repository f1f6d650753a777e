package conformance

import (
	"os"
	"strconv"
	"time"
)

// The scenarios of ordinary operation: replicate, restore to the latest
// state and to earlier points, restart the daemon, and the application
// doing what applications do (checkpoints, VACUUM, replacing the file).

const syncTimeout = 90 * time.Second

// scenarioBasic: replicate while the application writes, stop the daemon,
// restore; the restore equals the source and holds at least what the
// daemon reported replicated.
func scenarioBasic(s *scen) {
	a := s.openApp(s.db)
	defer a.close()
	d := s.startDaemon("")
	stop := a.writeInBackground()
	time.Sleep(1500 * time.Millisecond)
	if err := stop(); err != nil {
		s.t.Fatal(err)
	}
	reported := d.waitSynced(syncTimeout)
	d.stop()
	r := s.wantRestoresSource("restore after a clean stop")
	if r.Generation != reported.Generation || r.TxID < reported.TxID {
		s.t.Fatalf("restored generation %s txid %d, but the daemon reported %s txid %d replicated", r.Generation, r.TxID, reported.Generation, reported.TxID)
	}
	s.wantGenerations(1, "one daemon run on one database file")
}

// scenarioPointInTime: restore by txid and by timestamp to a state between
// two batches of writes, and to the latest state.
func scenarioPointInTime(s *scen) {
	a := s.openApp(s.db)
	defer a.close()
	d := s.startDaemon("")
	a.insert(60)
	first := d.waitSynced(syncTimeout)
	wantFirst := s.contentOf(s.db)
	// Commit times are the daemon's capture times: the first batch was
	// captured before at, the second is captured after it.
	at := time.Now().UTC()
	time.Sleep(100 * time.Millisecond)
	a.insert(60)
	a.exec("UPDATE rows SET pad = randomblob(30) WHERE n % 7 = 0")
	last := d.waitSynced(syncTimeout)
	wantLast := s.contentOf(s.db)
	d.stop()
	if last.TxID <= first.TxID {
		s.t.Fatalf("the daemon reported txid %d after the second batch, not after %d", last.TxID, first.TxID)
	}

	r := s.restore("-txid", strconv.FormatUint(first.TxID, 10))
	if r.TxID != first.TxID {
		s.t.Fatalf("restore -txid %d restored txid %d", first.TxID, r.TxID)
	}
	s.wantSame(r, wantFirst, "restore -txid of the first batch")
	r = s.restore("-timestamp", at.Format(time.RFC3339Nano))
	s.wantSame(r, wantFirst, "restore -timestamp between the batches")
	r = s.restore()
	s.wantSame(r, wantLast, "restore of the latest state")
	if r.TxID != last.TxID {
		s.t.Errorf("latest restore is txid %d, the daemon reported %d", r.TxID, last.TxID)
	}
	// A timestamp before the first commit has nothing to restore.
	if r, _, err := s.restoreErr("-timestamp", "2000-01-01T00:00:00Z"); err == nil {
		s.t.Errorf("restore -timestamp 2000-01-01 succeeded (txid %d); want an error: nothing was committed then", r.TxID)
	} else if _, serr := os.Stat(r.Path); serr == nil {
		s.t.Errorf("a failed restore left %s behind", r.Path)
	}
}

// scenarioRestart: a daemon stopped and started again continues the same
// generation.
func scenarioRestart(s *scen) {
	a := s.openApp(s.db)
	defer a.close()
	before := s.replicateRows(a, 50)
	after := s.replicateRows(a, 50)
	if after.Generation != before.Generation || after.TxID <= before.TxID {
		s.t.Fatalf("after a restart the daemon replicated %s txid %d; want generation %s continued past txid %d", after.Generation, after.TxID, before.Generation, before.TxID)
	}
	s.wantGenerations(1, "a restart continues the generation")
	s.wantRestoresSource("restore after a restart")
}

// scenarioCheckpointWhileDown: the application writes and checkpoints (the
// WAL is copied into the database and truncated) while the daemon is down;
// the restarted daemon catches up within the same generation.
func scenarioCheckpointWhileDown(s *scen) {
	a := s.openApp(s.db)
	defer a.close()
	before := s.replicateRows(a, 50)
	a.insert(80)
	a.exec("UPDATE rows SET pad = randomblob(40) WHERE n % 5 = 0")
	a.exec("PRAGMA wal_checkpoint(TRUNCATE)")
	a.insert(10) // the WAL starts again
	after := s.replicateRows(a, 10)
	if after.Generation != before.Generation {
		s.t.Fatalf("after a checkpoint while it was down the daemon started generation %s; want %s continued by catch-up", after.Generation, before.Generation)
	}
	s.wantGenerations(1, "catch-up continues the generation")
	s.wantRestoresSource("restore after a checkpoint while the daemon was down")
}

// scenarioVacuum: VACUUM (which rewrites every page and shrinks the file)
// while the daemon runs is replicated within the generation.
func scenarioVacuum(s *scen) {
	a := s.openApp(s.db)
	defer a.close()
	d := s.startDaemon("")
	a.insert(150)
	d.waitSynced(syncTimeout)
	a.exec("DELETE FROM rows WHERE n % 3 <> 0")
	a.exec("VACUUM")
	a.insert(20)
	after := d.waitSynced(syncTimeout)
	d.stop()
	gens := s.wantGenerations(1, "VACUUM stays within the generation")
	if gens[0].Generation != after.Generation {
		s.t.Fatalf("replica generation %s, daemon reported %s", gens[0].Generation, after.Generation)
	}
	s.wantRestoresSource("restore after VACUUM")
}

// scenarioReplaceDatabase: the database file replaced by another one (a
// restore from elsewhere, a copy) starts a new generation; the old one
// stays restorable by its id.
func scenarioReplaceDatabase(s *scen) {
	a := s.openApp(s.db)
	old := s.replicateRows(a, 40)
	wantOld := s.contentOf(s.db)
	a.close()

	// Build the new file beside it and rename it into place, as a
	// careful operator does (with the old WAL gone).
	next := s.db + ".new"
	b := s.openApp(next)
	b.exec("CREATE TABLE rows (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, pad BLOB)")
	b.insert(25)
	b.exec("PRAGMA wal_checkpoint(TRUNCATE)")
	b.close()
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(s.db + suffix); err != nil && !os.IsNotExist(err) {
			s.t.Fatalf("harness: %v", err)
		}
	}
	_ = os.Remove(next + "-wal")
	_ = os.Remove(next + "-shm")
	if err := os.Rename(next, s.db); err != nil {
		s.t.Fatalf("harness: %v", err)
	}

	a = s.openApp(s.db)
	defer a.close()
	cur := s.replicateRows(a, 5)
	if cur.Generation == old.Generation {
		s.t.Fatalf("a replaced database file continued generation %s; want a new generation", old.Generation)
	}
	gens := s.wantGenerations(2, "the old database's generation and the new one's")
	if gens[0].Generation != old.Generation || gens[1].Generation != cur.Generation {
		s.t.Errorf("generations %s, %s; want %s (old) then %s (new)", gens[0].Generation, gens[1].Generation, old.Generation, cur.Generation)
	}
	s.wantRestoresSource("restore of the new database")
	r := s.restore("-generation", old.Generation)
	if r.Generation != old.Generation {
		s.t.Fatalf("restore -generation %s restored generation %s", old.Generation, r.Generation)
	}
	s.wantSame(r, wantOld, "restore of the replaced database's generation")
}
