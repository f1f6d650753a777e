package replicate

import (
	"context"
	"log/slog"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
)

// newestGeneration returns capture.Options.NewestElsewhere for reps: the
// newest generation id any of them holds. It is asked only when a new
// generation is about to begin (a first start, a lost local state, a
// replaced file), and it is best effort: a replica that cannot be listed
// within newestListTimeout is passed over with a warning, and the new
// generation is named for the clock and what the others hold.
func newestGeneration(reps []*replica.Replica, log *slog.Logger) func(context.Context) string {
	return func(ctx context.Context) string {
		var newest string
		for _, r := range reps {
			lctx, cancel := context.WithTimeout(ctx, newestListTimeout)
			gens, err := r.Generations(lctx)
			cancel()
			if err != nil {
				log.Warn("cannot list the replica's generations before starting a new one; naming it for the clock", "replica", r.Name, "err", err)
				continue
			}
			if n := len(gens); n > 0 {
				newest = max(newest, gens[n-1])
			}
		}
		return newest
	}
}

// newestListTimeout bounds the listing of one replica's generations
// before a new generation begins.
const newestListTimeout = 10 * time.Second
