package restore_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/restore"
	"github.com/sqlitereplicator/replicator/core/segment"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

// TestPlanChains: the objects a plan picks for layouts a replica can hold,
// from their keys alone (planning by txid reads no object).
func TestPlanChains(t *testing.T) {
	const gen = "20261122T070000Z-0123abcd"
	snap := func(txid uint64) string { k, _ := segment.SnapshotKey(gen, txid); return k }
	seg := func(min, max uint64) string { k, _ := segment.SegmentKey(gen, 0, min, max); return k }
	for _, tc := range []struct {
		name    string
		keys    []string
		txid    uint64
		want    string // the plan's objects, or the error's text
		wantErr bool
	}{
		{name: "newest snapshot", keys: []string{snap(1), seg(2, 5), snap(5), seg(6, 10)},
			want: "snapshot 5, segment 6-10"},
		{name: "an upload merged across the newest snapshot: the older one reaches the end",
			keys: []string{snap(1), seg(2, 5), seg(6, 10), snap(8)},
			want: "snapshot 1, segment 2-5, segment 6-10"},
		{name: "txid at a snapshot inside a merged upload", keys: []string{snap(1), seg(2, 5), seg(6, 10), snap(8)}, txid: 8,
			want: "snapshot 8"},
		{name: "re-based: latest from the snapshot past the gap", keys: []string{snap(1), seg(2, 5), snap(9), seg(10, 12)},
			want: "snapshot 9, segment 10-12"},
		{name: "re-based: before the gap", keys: []string{snap(1), seg(2, 5), snap(9), seg(10, 12)}, txid: 5,
			want: "snapshot 1, segment 2-5"},
		{name: "re-based: inside the gap", keys: []string{snap(1), seg(2, 5), snap(9), seg(10, 12)}, txid: 7,
			want: "cannot reach txid 7", wantErr: true},
		{name: "no chain reaches the newest txid", keys: []string{snap(1), seg(2, 5), seg(7, 9)},
			want: "cannot reach txid 9, the newest", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := memstore.New()
			for _, k := range tc.keys {
				put(t, st, k, []byte("not read"))
			}
			r := replica.New("mem", st, slog.New(slog.DiscardHandler))
			p, err := restore.MakePlan(context.Background(), r, restore.Target{TxID: tc.txid})
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("MakePlan: %v, %v; want an error with %q", p, err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range p.Objects {
				if o.Snapshot() {
					got = append(got, fmt.Sprintf("snapshot %d", o.Min))
				} else {
					got = append(got, fmt.Sprintf("segment %d-%d", o.Min, o.Max))
				}
			}
			if strings.Join(got, ", ") != tc.want {
				t.Fatalf("plan %s, want %s", strings.Join(got, ", "), tc.want)
			}
		})
	}
}
