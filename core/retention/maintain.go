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
	hdrs   headers
}

// Run compacts every generation (level 0 into 1, then 1 into 2), then
// enforces retention. current is the generation being written.
func (m *Maintainer) Run(ctx context.Context, now time.Time, current string) (Report, error) {
	var rep Report
	if m.Policy.CompactionInterval > 0 {
		gens, err := m.R.Generations(ctx)
		if err != nil {
			return rep, err
		}
		for _, gen := range gens {
			for level, age := range []time.Duration{m.Policy.CompactionInterval, 10 * m.Policy.CompactionInterval} {
				r, err := Compact(ctx, m.R, gen, level, CompactOptions{
					MinRun: m.Policy.MinRun, MinAge: age, Now: now, TempDir: m.Policy.TempDir, headers: &m.hdrs,
				})
				rep.add(r)
				if err != nil {
					return rep, err
				}
			}
		}
	}
	r, err := enforce(ctx, m.R, &m.hdrs, now, m.Policy.Retention, current)
	rep.add(r)
	return rep, err
}
