package retention

import (
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/segment"
)

// TestPruneEdges: the kept snapshot is the newest at or before the txid
// last committed at or before the cutoff; a segment ending at it stays
// when the snapshot's own commit time is after the cutoff; a generation
// with nothing before the cutoff, or no snapshot before it, is untouched.
func TestPruneEdges(t *testing.T) {
	base := time.Unix(1000, 0)
	at := func(s int) int64 { return base.Add(time.Duration(s) * time.Second).UnixNano() }
	snap := func(tx uint64, s int) (replica.Object, segment.Header) {
		return replica.Object{Level: -1, Min: tx, Max: tx, Key: "s" + string(rune('0'+tx))}, segment.Header{LastCommit: at(s)}
	}
	seg := func(a, b uint64, s int) (replica.Object, segment.Header) {
		return replica.Object{Level: 0, Min: a, Max: b, Key: "g" + string(rune('0'+a))}, segment.Header{LastCommit: at(s)}
	}
	build := func(items ...func() (replica.Object, segment.Header)) ([]replica.Object, []segment.Header) {
		var ob []replica.Object
		var hs []segment.Header
		for _, f := range items {
			o, h := f()
			ob, hs = append(ob, o), append(hs, h)
		}
		return ob, hs
	}
	s1 := func() (replica.Object, segment.Header) { return snap(1, 1) }
	g2 := func() (replica.Object, segment.Header) { return seg(2, 2, 2) }
	g3 := func() (replica.Object, segment.Header) { return seg(3, 3, 3) }
	s3 := func() (replica.Object, segment.Header) { return snap(3, 3) }
	s3late := func() (replica.Object, segment.Header) { return snap(3, 9) }
	g4 := func() (replica.Object, segment.Header) { return seg(4, 4, 4) }

	objs, hdrs := build(s1, g2, g3, s3, g4)
	drop, serves := prune(objs, hdrs, base.Add(3*time.Second))
	if !serves || len(drop) != 3 { // s1, g2, g3
		t.Fatalf("drop %v serves %v", drop, serves)
	}
	objs, hdrs = build(s1, g2, g3, s3late, g4)
	drop, _ = prune(objs, hdrs, base.Add(3*time.Second))
	if len(drop) != 2 { // s1, g2: g3 makes txid 3 visible before the snapshot's time
		t.Fatalf("late snapshot: drop %v", drop)
	}
	drop, serves = prune(objs, hdrs, base)
	if serves || len(drop) != 0 {
		t.Fatalf("nothing before the cutoff: drop %v serves %v", drop, serves)
	}
	objs, hdrs = build(g2, g3, g4)
	drop, serves = prune(objs, hdrs, base.Add(10*time.Second))
	if serves || len(drop) != 0 {
		t.Fatalf("no snapshot: drop %v serves %v", drop, serves)
	}
}
