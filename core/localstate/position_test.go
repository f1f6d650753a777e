package localstate_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/localstate"
)

// TestReplicaPositionRebase: the re-base mark survives a save and a load
// (a restarted daemon still knows the replica must be re-based), and a
// position written before the mark existed loads without it.
func TestReplicaPositionRebase(t *testing.T) {
	since := time.Date(2026, 11, 22, 7, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		pos  localstate.ReplicaPosition
	}{
		{"plain", localstate.ReplicaPosition{Generation: "g1", TxID: 42, Snapshot: 1, Updated: since}},
		{"rebasing", localstate.ReplicaPosition{Generation: "g1", TxID: 42, Snapshot: 1, Updated: since, Rebase: true, RebaseSince: since}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state")
			d, err := localstate.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if err := d.SaveReplica("s3", tc.pos); err != nil {
				t.Fatal(err)
			}
			got, ok, err := d.LoadReplica("s3")
			if err != nil || !ok || got != tc.pos {
				t.Fatalf("LoadReplica = %+v, %v, %v; want %+v", got, ok, err, tc.pos)
			}
		})
	}
	t.Run("written before the mark existed", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state")
		d, err := localstate.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		old := `{"generation": "g1", "txid": 7, "snapshot": 1, "updated": "2026-11-22T07:00:00Z"}`
		if err := os.WriteFile(filepath.Join(path, "replicas", "old.json"), []byte(old), 0o600); err != nil {
			t.Fatal(err)
		}
		got, ok, err := d.LoadReplica("old")
		if err != nil || !ok || got.Rebase || !got.RebaseSince.IsZero() || got.TxID != 7 {
			t.Fatalf("LoadReplica = %+v, %v, %v", got, ok, err)
		}
	})
}
