// Package restore rebuilds a database from a replica: the newest snapshot
// at or before the target, then the shortest chain of segments to it
// (highest levels first), downloaded in parallel, applied in order, and
// proven equal to the database at the target by its checksum before the
// file appears at the output path.
package restore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/segment"
)

// Target says what to restore. The zero value means the latest position.
type Target struct {
	Generation string    // restrict to this generation
	TxID       uint64    // restore exactly this txid (0: no txid target)
	Timestamp  time.Time // restore the last transaction committed at or before this time
}

// ErrNoReplica means the replica holds no restorable generation.
var ErrNoReplica = errors.New("no replica found")

// Plan is the objects to apply, in order.
type Plan struct {
	Generation string
	TxID       uint64
	Objects    []replica.Object
}

// MakePlan chooses the generation and the chain of objects for t.
func MakePlan(ctx context.Context, r *replica.Replica, t Target) (Plan, error) {
	gens, err := r.Generations(ctx)
	if err != nil {
		return Plan{}, err
	}
	if t.Generation != "" {
		found := false
		for _, g := range gens {
			found = found || g == t.Generation
		}
		if !found {
			return Plan{}, fmt.Errorf("generation %s not found in %s (it has %d generations)", t.Generation, r.Name, len(gens))
		}
		gens = []string{t.Generation}
	}
	if len(gens) == 0 {
		return Plan{}, fmt.Errorf("%w in %s", ErrNoReplica, r.Name)
	}
	// Newest generation first; with a timestamp, the newest one that has a
	// snapshot taken at or before it.
	var lastErr error
	for i := len(gens) - 1; i >= 0; i-- {
		objs, err := r.Objects(ctx, gens[i])
		if err != nil {
			return Plan{}, err
		}
		p, err := planGeneration(ctx, r, gens[i], objs, t)
		if err == nil {
			return p, nil
		}
		lastErr = err
		if t.TxID != 0 || t.Generation != "" || errors.Is(err, ErrGap) {
			break
		}
	}
	return Plan{}, lastErr
}

func planGeneration(ctx context.Context, r *replica.Replica, gen string, objs []replica.Object, t Target) (Plan, error) {
	target := t.TxID
	if !t.Timestamp.IsZero() {
		tx, err := txidAt(ctx, r, gen, objs, t.Timestamp)
		if err != nil {
			return Plan{}, err
		}
		if err := checkGap(gen, objs, tx, t.Timestamp); err != nil {
			return Plan{}, err
		}
		target = tx
	}
	// From the newest snapshot at or before the target, or an older one
	// when the newer one's chain cannot reach the target (a segment merged
	// across the newer snapshot). With no target, the target is the
	// newest txid of the generation: a latest restore never stops short.
	goal := target
	if goal == 0 {
		for _, o := range objs {
			goal = max(goal, o.Max)
		}
	}
	var snaps []replica.Object
	for _, o := range objs {
		if o.Snapshot() && o.Min <= goal {
			snaps = append(snaps, o)
		}
	}
	if len(snaps) == 0 {
		return Plan{}, fmt.Errorf("generation %s has no snapshot at or before txid %d", gen, goal)
	}
	sort.Slice(snaps, func(i, j int) bool { return snaps[i].Min > snaps[j].Min })
	var best Plan
	for _, snap := range snaps {
		plan := chain(gen, objs, snap, goal)
		if plan.TxID == goal {
			return plan, nil
		}
		if plan.TxID > best.TxID {
			best = plan
		}
	}
	if target == 0 {
		return Plan{}, fmt.Errorf("cannot reach txid %d, the newest in generation %s: the replica's chains end at txid %d at most; restore -txid %d for that state",
			goal, gen, best.TxID, best.TxID)
	}
	return Plan{}, unreachable(gen, objs, best.TxID, target)
}

// Reach returns the newest txid of gen that a restore from objs (the
// generation's listing) can reach, 0 when it holds no snapshot.
func Reach(gen string, objs []replica.Object) uint64 {
	var reach uint64
	for _, o := range objs {
		if o.Snapshot() {
			reach = max(reach, chain(gen, objs, o, math.MaxUint64).TxID)
		}
	}
	return reach
}

// chain walks forward from snap: from each position it takes the segment
// that reaches furthest without passing goal (higher levels cover more).
func chain(gen string, objs []replica.Object, snap replica.Object, goal uint64) Plan {
	plan := Plan{Generation: gen, TxID: snap.Min, Objects: []replica.Object{snap}}
	for {
		var best *replica.Object
		for i := range objs {
			o := objs[i]
			if o.Snapshot() || o.Min != plan.TxID+1 || o.Max > goal {
				continue
			}
			if best == nil || o.Max > best.Max {
				best = &objs[i]
			}
		}
		if best == nil {
			return plan
		}
		plan.Objects = append(plan.Objects, *best)
		plan.TxID = best.Max
	}
}

// unreachable explains why txid target cannot be restored.
func unreachable(gen string, objs []replica.Object, reached, target uint64) error {
	for _, o := range objs {
		if !o.Snapshot() && o.Min <= target && target < o.Max && o.Min <= reached+1 {
			return fmt.Errorf("txid %d is inside segment %d-%d of generation %s, which is restored whole: the nearest restorable txids are %d and %d",
				target, o.Min, o.Max, gen, o.Min-1, o.Max)
		}
	}
	return fmt.Errorf("cannot reach txid %d in generation %s: the replica's chain ends at txid %d", target, gen, reached)
}

// headerReads bounds the header reads txidAt has in flight.
const headerReads = 16

// txidAt returns the last txid of gen committed at or before ts, reading
// segment headers for their commit times. It reads them in parallel: a
// generation holds hundreds of objects, each a round trip to the storage.
func txidAt(ctx context.Context, r *replica.Replica, gen string, objs []replica.Object, ts time.Time) (uint64, error) {
	hdrs := make([]segment.Header, len(objs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(headerReads)
	for i, o := range objs {
		g.Go(func() error {
			h, err := r.ReadHeader(gctx, o)
			hdrs[i] = h
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	var best uint64
	for i, o := range objs {
		h := hdrs[i]
		if h.LastCommitTime().After(ts) {
			continue
		}
		if o.Max > best && (o.Snapshot() || o.Level == 0 || best < o.Max) {
			best = o.Max
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("generation %s has nothing committed at or before %s", gen, ts.Format(time.RFC3339))
	}
	return best, nil
}
