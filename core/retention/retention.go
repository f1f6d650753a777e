// Package retention keeps a replica from growing without bound: it deletes
// what no restore inside the retention window can need (Enforce), and
// merges runs of small consecutive segments into one segment of the next
// level (Compact), so that a restore downloads few objects.
//
// Both only ever delete objects that a restore to any time inside the
// window does not use, and compaction deletes its inputs only after the
// merged object is stored and read back. See docs/design.md §3,
// "Retention and compaction".
package retention

import (
	"context"
	"sync"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/segment"
)

// Report says what a pass changed in a replica.
type Report struct {
	// Deleted is every object removed, by retention or as a merged input.
	Deleted []replica.Object
	// Merged is every object written by compaction.
	Merged []replica.Object
	// LocalInputs and DownloadedInputs count the inputs of the merges
	// read from local copies (see Copies) and downloaded.
	LocalInputs, DownloadedInputs int
}

func (r *Report) add(o Report) {
	r.Deleted = append(r.Deleted, o.Deleted...)
	r.Merged = append(r.Merged, o.Merged...)
	r.LocalInputs += o.LocalInputs
	r.DownloadedInputs += o.DownloadedInputs
}

// Empty reports whether nothing changed.
func (r Report) Empty() bool { return len(r.Deleted) == 0 && len(r.Merged) == 0 }

// headers caches object headers by key: an object under a key is
// immutable (a re-upload under the same key has the same content), so a
// header once read stays valid while the object exists. An object's
// header comes from its local copy when there is one (copies), without a
// request; its encryption fields may then differ from the stored
// object's, which is why the cache is only used for commit times.
type headers struct {
	copies *Copies
	mu     sync.Mutex
	m      map[string]segment.Header
}

func (c *headers) get(ctx context.Context, r *replica.Replica, o replica.Object) (segment.Header, error) {
	c.mu.Lock()
	h, ok := c.m[o.Key]
	c.mu.Unlock()
	if ok {
		return h, nil
	}
	h, ok = c.copies.header(o)
	if !ok {
		var err error
		if h, err = r.ReadHeader(ctx, o); err != nil {
			return segment.Header{}, err
		}
	}
	c.put(o, h)
	return h, nil
}

// put records the header of o (compaction knows its outputs' headers).
func (c *headers) put(o replica.Object, h segment.Header) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]segment.Header{}
	}
	c.m[o.Key] = h
}

func (c *headers) forget(objs []replica.Object) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range objs {
		delete(c.m, o.Key)
	}
}

// Enforce deletes from r what no restore to a time inside [now-retention,
// now] needs. A retention of zero (or less) keeps everything. current is
// the generation the daemon is writing; it is never deleted, nor is the
// newest generation of the replica.
//
// Let cutoff = now-retention. A restore to time T >= cutoff uses the
// newest generation with a commit at or before T, and in it the newest
// snapshot at or before the last txid committed at or before T, then
// segments after that snapshot. So, walking generations newest first:
//
//   - a generation with a commit at or before cutoff keeps its newest
//     snapshot at or before the txid last committed at or before cutoff
//     (the window's oldest starting point) and everything after it;
//     older snapshots and segments that end at or before that snapshot go;
//   - a generation older than such a generation whose last commit is
//     before cutoff is never used by a restore in the window, and goes
//     entirely (unless it is current);
//   - a generation with nothing at or before cutoff is kept whole.
func Enforce(ctx context.Context, r *replica.Replica, now time.Time, retention time.Duration, current string) (Report, error) {
	hc := &headers{}
	if retention <= 0 {
		return Report{}, nil
	}
	gens, listing, err := list(ctx, r)
	if err != nil {
		return Report{}, err
	}
	rep, err := enforce(ctx, r, hc, gens, listing, now, retention, current)
	return rep, deleteObjects(ctx, r, hc, &rep, err)
}

// list returns the generations of r, oldest first, and the objects of
// each: one request for the generations and one per generation.
func list(ctx context.Context, r *replica.Replica) ([]string, map[string][]replica.Object, error) {
	gens, err := r.Generations(ctx)
	if err != nil {
		return nil, nil, err
	}
	listing := make(map[string][]replica.Object, len(gens))
	for _, gen := range gens {
		if listing[gen], err = r.Objects(ctx, gen); err != nil {
			return nil, nil, err
		}
	}
	return gens, listing, nil
}

// enforce is Enforce over a listing, without the deletion: rep.Deleted is
// what the caller must delete.
func enforce(ctx context.Context, r *replica.Replica, hc *headers, gens []string, listing map[string][]replica.Object, now time.Time, retention time.Duration, current string) (Report, error) {
	var rep Report
	if retention <= 0 {
		return rep, nil
	}
	cutoff := now.Add(-retention)
	covered := false // a newer generation serves every restore in the window
	for i := len(gens) - 1; i >= 0; i-- {
		gen := gens[i]
		objs := listing[gen]
		if len(objs) == 0 {
			continue
		}
		hdrs := make([]segment.Header, len(objs))
		var last time.Time
		for j, o := range objs {
			var err error
			if hdrs[j], err = hc.get(ctx, r, o); err != nil {
				return rep, err
			}
			if t := hdrs[j].LastCommitTime(); t.After(last) {
				last = t
			}
		}
		if covered && gen != current && i != len(gens)-1 && last.Before(cutoff) {
			rep.Deleted = append(rep.Deleted, objs...)
			continue
		}
		drop, serves := prune(objs, hdrs, cutoff)
		covered = covered || serves
		rep.Deleted = append(rep.Deleted, drop...)
	}
	return rep, nil
}

// prune returns the objects of one generation that restores to times at or
// after cutoff do not use, and whether the generation has a commit at or
// before cutoff (so that restores in the window never reach an older
// generation).
func prune(objs []replica.Object, hdrs []segment.Header, cutoff time.Time) (drop []replica.Object, serves bool) {
	// t0: the txid a restore to cutoff targets (what restore's txidAt
	// computes); every restore in the window targets t0 or later.
	var t0 uint64
	for j, o := range objs {
		if !hdrs[j].LastCommitTime().After(cutoff) && o.Max > t0 {
			t0 = o.Max
		}
	}
	if t0 == 0 {
		return nil, false
	}
	// keep: the newest snapshot at or before t0, where every restore in
	// the window starts or passes.
	keep := -1
	for j, o := range objs {
		if o.Snapshot() && o.Min <= t0 && (keep < 0 || o.Min > objs[keep].Min) {
			keep = j
		}
	}
	if keep < 0 {
		// No restore can start in this generation at t0: leave it whole,
		// and let older generations serve the window.
		return nil, false
	}
	s := objs[keep].Min
	// If the kept snapshot itself was committed after cutoff (it cannot be
	// with today's capture, but a header is data), a segment ending at s
	// committed before cutoff is what makes t0 visible to restores between
	// cutoff and the snapshot's commit time: keep those.
	snapLate := hdrs[keep].LastCommitTime().After(cutoff)
	for j, o := range objs {
		switch {
		case j == keep:
		case o.Snapshot() && o.Min < s:
			drop = append(drop, o)
		case !o.Snapshot() && (o.Max < s || (o.Max == s && !snapLate)):
			drop = append(drop, o)
		}
	}
	return drop, true
}
