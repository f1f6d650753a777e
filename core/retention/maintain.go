package retention

import (
	"context"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
)

// Policy is what a maintenance pass does to a replica.
type Policy struct {
	// Retention is how far back restores must keep working; zero keeps
	// everything.
	Retention time.Duration
	// CompactionInterval is the minimum age of level-0 segments merged
	// into level 1; level-1 segments are merged into level 2 at ten times
	// that age. Zero disables compaction.
	CompactionInterval time.Duration
	// MinRun is the fewest segments merged at once; zero means 10.
	MinRun int
	// TempDir holds compaction's temporary files; empty: os.TempDir().
	TempDir string
}

// Maintainer runs maintenance passes over one replica, remembering the
// object headers it read between passes. Passes must not run concurrently.
type Maintainer struct {
	R      *replica.Replica
	Policy Policy
	// Copies, when set, holds local copies of the level-0 objects
	// uploaded to R; compaction merges them instead of downloading them,
	// and the pass drops those whose objects are gone.
	Copies *Copies
	hdrs   headers
}

// Run compacts every generation (level 0 into 1, then 1 into 2), then
// enforces retention. current is the generation being written.
//
// A pass costs few requests whatever the replica holds: it lists the
// replica once (the generations, then each one's objects), works on that
// listing, and deletes everything it merged or expired in one request at
// the end; headers come from the cache, local copies and the merges
// themselves, so only objects no pass has seen yet are read.
func (m *Maintainer) Run(ctx context.Context, now time.Time, current string) (Report, error) {
	var rep Report
	if m.Policy.Retention <= 0 && m.Policy.CompactionInterval <= 0 {
		return rep, nil
	}
	m.hdrs.copies = m.Copies
	listed := time.Now()
	gens, listing, err := list(ctx, m.R)
	if err != nil {
		return rep, err
	}
	err = m.compact(ctx, now, gens, listing, &rep)
	if err == nil {
		var r Report
		r, err = enforce(ctx, m.R, &m.hdrs, gens, listing, now, m.Policy.Retention, current)
		rep.add(r)
	}
	err = deleteObjects(ctx, m.R, &m.hdrs, &rep, err)
	if err == nil {
		m.Copies.Prune(listing, listed)
	}
	return rep, err
}

// compact runs compaction over the listing, updating it.
func (m *Maintainer) compact(ctx context.Context, now time.Time, gens []string, listing map[string][]replica.Object, rep *Report) error {
	if m.Policy.CompactionInterval <= 0 {
		return nil
	}
	for _, gen := range gens {
		// Levels 0 and 1 (copiedLevels): their ages.
		for level, age := range []time.Duration{m.Policy.CompactionInterval, 10 * m.Policy.CompactionInterval} {
			opts := CompactOptions{MinRun: m.Policy.MinRun, MinAge: age, Now: now, TempDir: m.Policy.TempDir, Copies: m.Copies, headers: &m.hdrs}
			opts.defaults()
			r, rest, err := compact(ctx, m.R, listing[gen], level, opts)
			rep.add(r)
			listing[gen] = rest
			if err != nil {
				return err
			}
		}
	}
	return nil
}
