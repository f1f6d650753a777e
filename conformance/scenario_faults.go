package conformance

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sqlitereplicator/replicator/sdk"
)

// The scenarios of things going wrong: the daemon or its plugin killed,
// the store failing, a second daemon, objects damaged in the store, and
// retention deleting objects under a restore.

// scenarioKill9: the daemon is killed with SIGKILL at random moments while
// the application writes and uploads are under way, and started again.
// Every restore in between is a committed prefix holding at least what the
// daemon had reported replicated; the final one equals the source.
func scenarioKill9(s *scen) {
	a := s.openApp(s.db)
	defer a.close()
	stop := a.writeInBackground()
	defer stop()
	for round := range 3 {
		d := s.startDaemon("")
		var reported position
		// Let at least one upload land, then kill at a random moment.
		s.eventually(20*time.Second, func() bool {
			st, err := d.statusErr()
			if err == nil && st.Replicas[0].TxID > 0 {
				reported = position{st.Replicas[0].Generation, st.Replicas[0].TxID}
			}
			return reported.TxID > 0
		})
		time.Sleep(time.Duration(100+rand.IntN(600)) * time.Millisecond)
		if st, err := d.statusErr(); err == nil {
			reported = position{st.Replicas[0].Generation, st.Replicas[0].TxID}
		}
		d.kill()
		if reported.TxID == 0 {
			s.t.Fatalf("round %d: the daemon uploaded nothing within 20s:\n%s", round, d.logTail())
		}
		r := s.restore()
		s.wantPrefix(r, fmt.Sprintf("restore after kill -9 in round %d", round))
		if r.Generation == reported.Generation && r.TxID < reported.TxID {
			s.t.Fatalf("round %d: restored txid %d, but the daemon had reported txid %d replicated before kill -9", round, r.TxID, reported.TxID)
		}
	}
	if err := stop(); err != nil {
		s.t.Fatal(err)
	}
	d := s.startDaemon("")
	last := d.waitSynced(syncTimeout)
	d.stop()
	r := s.restore()
	s.wantReached(r, last.TxID, d, "after the kill -9 rounds")
	s.wantSame(r, s.contentOf(s.db), fmt.Sprintf("final restore after kill -9 rounds (the daemon reported txid %d replicated)", last.TxID))
}

// scenarioStorageFaults: the store fails, stalls and drops connections
// (the faults layer in the daemon, see package conformance/faults) while
// the application writes; the daemon retries and loses nothing.
func scenarioStorageFaults(s *scen) {
	a := s.openApp(s.db)
	defer a.close()
	spec := fmt.Sprintf("error=0.15,drop=0.1,latency=30ms,seed=%d", rand.Uint64N(1<<31))
	d := s.startDaemon("", "REPLICATOR_FAULTS="+spec)
	stop := a.writeInBackground()
	time.Sleep(3 * time.Second)
	if err := stop(); err != nil {
		s.t.Fatal(err)
	}
	a.exec("PRAGMA wal_checkpoint(PASSIVE)")
	a.insert(20)
	reported := d.waitSynced(3 * syncTimeout)
	if !d.logContains("injected fault") {
		s.t.Fatalf("the daemon met no injected fault (spec %s): the fault layer is not active:\n%s", spec, d.logTail())
	}
	d.stop()
	r := s.restore()
	s.wantSame(r, s.contentOf(s.db), "restore after storage faults ("+spec+")")
	if r.TxID < reported.TxID {
		s.t.Fatalf("restored txid %d, but the daemon reported %d replicated", r.TxID, reported.TxID)
	}
}

// scenarioPluginKill: the daemon's plugin process is killed with SIGKILL
// in the middle of its calls; the daemon starts it again and loses
// nothing.
func scenarioPluginKill(s *scen) {
	a := s.openApp(s.db)
	defer a.close()
	d := s.startDaemon("")
	stop := a.writeInBackground()
	defer stop()
	killed := 0
	for range 3 {
		var kids []int
		ok := s.eventually(20*time.Second, func() bool {
			var err error
			if kids, err = d.children(); err != nil {
				s.t.Fatalf("harness: %v", err)
			}
			return len(kids) > 0
		})
		if !ok {
			s.t.Fatalf("the daemon has no plugin process to kill:\n%s", d.logTail())
		}
		time.Sleep(time.Duration(200+rand.IntN(400)) * time.Millisecond)
		for _, pid := range kids {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed++
			}
		}
		// Wait for the plugin to be replaced (started again on the next
		// call) before killing again.
		s.eventually(20*time.Second, func() bool {
			now, _ := d.children()
			for _, p := range now {
				if !containsInt(kids, p) {
					return true
				}
			}
			return false
		})
	}
	if err := stop(); err != nil {
		s.t.Fatal(err)
	}
	if killed == 0 {
		s.t.Fatal("no plugin process was killed")
	}
	reported := d.waitSynced(syncTimeout)
	d.stop()
	r := s.restore()
	s.wantSame(r, s.contentOf(s.db), fmt.Sprintf("restore after %d plugin kills", killed))
	if r.TxID < reported.TxID {
		s.t.Fatalf("restored txid %d, but the daemon reported %d replicated", r.TxID, reported.TxID)
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// scenarioFencing: a second daemon replicating another database to the
// same replica location is refused by the first one's lease (taken with
// conditional writes) and writes nothing; the replica still restores the
// first database.
func scenarioFencing(s *scen) {
	s.disabledUnless(s.caps.IfAbsent, "IfAbsent")
	s.disabledUnless(s.caps.IfMatch, "IfMatch")
	a := s.openApp(s.db)
	defer a.close()
	d1 := s.startDaemon("")
	a.insert(30)
	first := d1.waitSynced(syncTimeout)
	stop := a.writeInBackground()
	defer stop()

	other := filepath.Join(s.dir, "other.db")
	b := s.openApp(other)
	b.exec("CREATE TABLE rows (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, pad BLOB)")
	b.insert(30)
	defer b.close()
	d2 := s.startDaemon(s.writeConfig("other.yml", other, s.rc))
	var lastErr string
	if !s.eventually(45*time.Second, func() bool {
		st, err := d2.statusErr()
		if err == nil {
			lastErr = st.Replicas[0].LastError
		}
		return lastErr != "" || d2.exited()
	}) {
		s.t.Fatalf("the second daemon reported no refused upload within 45s; want its uploads stopped by the first daemon's lease:\n%s", d2.logTail())
	}
	if !strings.Contains(strings.ToLower(lastErr), "lease") {
		s.t.Errorf("the second daemon's upload failed with %q; want an error naming the lease and its holder", lastErr)
	}
	if st, err := d2.statusErr(); err == nil && st.Replicas[0].TxID > 0 {
		s.t.Errorf("the second daemon reports txid %d replicated despite the lease", st.Replicas[0].TxID)
	}
	_ = d2.stopErr() // its last upload is refused too: the exit status may say so
	if err := stop(); err != nil {
		s.t.Fatal(err)
	}
	last := d1.waitSynced(syncTimeout)
	d1.stop()
	gens := s.wantGenerations(1, "the fenced daemon wrote no generation")
	if gens[0].Generation != first.Generation || last.Generation != first.Generation {
		s.t.Fatalf("replica generation %s; want the first daemon's %s", gens[0].Generation, first.Generation)
	}
	s.wantSame(s.restore(), s.contentOf(s.db), "restore after a fenced second daemon")
}

// scenarioCorruption: a segment damaged in the store (a byte flipped, or
// cut short) makes the restore fail and write nothing; with the object
// repaired, the restore succeeds.
func scenarioCorruption(s *scen) {
	a := s.openApp(s.db)
	defer a.close()
	d := s.startDaemon("")
	for range 4 {
		a.insert(25)
		d.waitSynced(syncTimeout)
	}
	d.stop()
	want := s.contentOf(s.db)

	var victim sdk.ObjectInfo
	err := s.st.List(s.ctx, "", "", func(info sdk.ObjectInfo) error {
		if strings.HasSuffix(info.Key, ".segment") && info.Size > 200 {
			victim = info // the last, in key order: needed by every restore to the latest
		}
		return nil
	})
	if err != nil {
		s.t.Fatalf("list the replica's objects: %v", err)
	}
	if victim.Key == "" {
		s.t.Fatal("the replica holds no segment object to damage")
	}
	orig := s.getObject(victim.Key)
	flipped := bytes.Clone(orig)
	flipped[len(flipped)/2] ^= 0x40
	for _, damage := range []struct {
		name string
		data []byte
	}{
		{"a flipped byte", flipped},
		{"cut short", orig[:len(orig)/2]},
		{"header only", orig[:128]},
	} {
		s.putObject(victim.Key, damage.data)
		r, _, err := s.restoreErr()
		if err == nil {
			s.t.Errorf("restore succeeded with %s %s (txid %d); want it to detect the damage", victim.Key, damage.name, r.TxID)
			continue
		}
		if _, serr := os.Stat(r.Path); serr == nil {
			s.t.Errorf("a restore that failed on %s %s left its output behind", victim.Key, damage.name)
		}
		if left, _ := os.ReadDir(filepath.Dir(r.Path)); len(left) > 0 {
			s.t.Errorf("a restore that failed on %s %s left files behind: %v", victim.Key, damage.name, left[0].Name())
		}
	}
	s.putObject(victim.Key, orig)
	s.wantSame(s.restore(), want, "restore with the object repaired")
}

// getObject reads a whole object through the harness's store.
func (s *scen) getObject(key string) []byte {
	s.t.Helper()
	rc, err := s.st.Get(s.ctx, key, 0, -1)
	if err != nil {
		s.t.Fatalf("harness: Get(%q): %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		s.t.Fatalf("harness: Get(%q): %v", key, err)
	}
	return data
}

// putObject overwrites an object through the harness's store.
func (s *scen) putObject(key string, data []byte) {
	s.t.Helper()
	if _, err := s.st.Put(s.ctx, key, bytes.NewReader(data), sdk.PutOptions{}); err != nil {
		s.t.Fatalf("harness: Put(%q): %v", key, err)
	}
}

// scenarioRetention: with a short retention and frequent snapshots, the
// daemon's maintenance deletes old objects; restores taken while it runs
// all succeed, and the final one equals the source.
func scenarioRetention(s *scen) {
	a := s.openApp(s.db)
	defer a.close()
	d := s.startDaemon("")
	stop := a.writeInBackground()
	defer stop()
	d.waitUploaded()
	initial := s.keys()
	if len(initial) == 0 {
		s.t.Fatal("the replica holds no objects after the first upload")
	}
	// Restores run while retention deletes: each must succeed and be a
	// committed prefix.
	restores := 0
	deleted := func() bool {
		now := s.keys()
		for k := range initial {
			if !now[k] {
				return true
			}
		}
		return false
	}
	ctx, cancel := context.WithTimeout(s.ctx, 3*time.Minute)
	defer cancel()
	for !deleted() {
		if ctx.Err() != nil {
			s.t.Fatalf("retention (3s, snapshots every 2s) deleted none of the %d first objects within 3 minutes:\n%s", len(initial), d.logTail())
		}
		r := s.restore()
		s.wantPrefix(r, "restore while retention runs")
		restores++
		if err := os.RemoveAll(filepath.Dir(r.Path)); err != nil {
			s.t.Fatalf("harness: %v", err)
		}
		time.Sleep(time.Second)
	}
	if err := stop(); err != nil {
		s.t.Fatal(err)
	}
	last := d.waitSynced(syncTimeout)
	d.stop()
	r := s.restore()
	s.wantReached(r, last.TxID, d, "after retention")
	s.wantSame(r, s.contentOf(s.db), fmt.Sprintf("restore after retention deleted objects (%d restores during; the daemon reported txid %d replicated)", restores, last.TxID))
}

// waitUploaded waits until the replica holds something.
func (d *daemon) waitUploaded() {
	d.s.t.Helper()
	if !d.s.eventually(30*time.Second, func() bool {
		st, err := d.statusErr()
		return err == nil && st.Replicas[0].TxID > 0
	}) {
		d.s.t.Fatalf("the daemon uploaded nothing within 30s:\n%s", d.logTail())
	}
}

// keys lists the replica's object keys through the harness's store.
func (s *scen) keys() map[string]bool {
	s.t.Helper()
	keys := map[string]bool{}
	err := s.st.List(s.ctx, "", "", func(info sdk.ObjectInfo) error {
		if strings.HasSuffix(info.Key, ".segment") || strings.HasSuffix(info.Key, ".snapshot") {
			keys[info.Key] = true
		}
		return nil
	})
	if err != nil {
		s.t.Fatalf("list the replica's objects: %v", err)
	}
	return keys
}

// wantReached fails the scenario when restore r stopped short of txid, the
// position the daemon d reported replicated, showing the replica's newest
// objects.
func (s *scen) wantReached(r restored, txid uint64, d *daemon, when string) {
	s.t.Helper()
	if r.TxID >= txid {
		return
	}
	keys := slices.Sorted(maps.Keys(s.keys()))
	if len(keys) > 12 {
		keys = keys[len(keys)-12:]
	}
	s.t.Fatalf("restored txid %d %s, but the daemon reported txid %d replicated; the replica's last objects: %s\n%s", r.TxID, when, txid, strings.Join(keys, " "), d.logTail())
}
