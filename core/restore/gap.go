package restore

import (
	"errors"
	"fmt"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
)

// ErrGap means the target time falls where the replica lacks transactions:
// its chain stops at some txid M and resumes only from a later snapshot
// (the daemon dropped what the replica lacked when its local state outgrew
// max-local-size during a storage outage, and re-based the replica). The
// state at such a time is unknown, so restore refuses rather than return
// the state at M as if nothing had been committed after it.
var ErrGap = errors.New("the replica has a gap at the target time")

// checkGap returns an ErrGap error when reached, the last txid committed at
// or before ts in gen, is followed by missing transactions: no segment
// continues from it and the next object starts later than reached+1.
func checkGap(gen string, objs []replica.Object, reached uint64, ts time.Time) error {
	var next *replica.Object
	for i, o := range objs {
		if !o.Snapshot() && o.Min <= reached+1 && o.Max > reached {
			return nil // the chain continues past reached
		}
		if o.Min > reached && (next == nil || o.Min < next.Min) {
			next = &objs[i]
		}
	}
	if next == nil || next.Min <= reached+1 {
		return nil
	}
	return fmt.Errorf("%w: %s is after txid %d, the last one generation %s holds before txids %d-%d, which the replica lacks "+
		"(it was re-based on %s after a storage outage), so the database as of that time is unknown: "+
		"restore -txid %d, or a time at or after the commit of txid %d, or use another replica",
		ErrGap, ts.Format(time.RFC3339Nano), reached, gen, reached+1, next.Min-1, next, reached, next.Min)
}
