package replica

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sqlitereplicator/replicator/sdk"
)

// LeaseKey is the object through which daemons fence each other.
const LeaseKey = "lease"

// ErrLeaseHeld means another daemon holds the replica's lease.
var ErrLeaseHeld = errors.New("replica is leased by another replicator")

// Lease is the right to write into a replica path. It is taken and renewed
// with conditional writes, so two daemons can never both believe they hold
// it; each renewal raises the epoch (the fencing token).
//
// A held lease is renewed once half its TTL has passed, and only when its
// holder is about to write: with the daemon's DefaultLeaseTTL that is one
// conditional Put every five minutes while a database is written, and
// none while it is idle. The TTL is what a takeover after a crash waits
// (a clean shutdown releases the lease, and the same owner takes its own
// lease back at once); the half left at a renewal is what an upload
// started under the lease may take.
type Lease struct {
	r     *Replica
	owner string
	ttl   time.Duration

	etag    string
	epoch   uint64
	renewed time.Time
	fenced  bool // false when the backend cannot do conditional writes
}

type leaseRecord struct {
	Owner   string    `json:"owner"`
	Epoch   uint64    `json:"epoch"`
	Expires time.Time `json:"expires"`
}

// DefaultLeaseTTL is how long the daemon's leases last unrenewed. Ten
// minutes keeps renewals to a dozen requests an hour under continuous
// writes (a budget of 3,700 requests an hour at one upload a second leaves
// about a hundred for everything beside the segment uploads), while
// another host taking over from a crashed daemon waits at most that long.
const DefaultLeaseTTL = 10 * time.Minute

// Ensure renews a held lease once TTL/renewAfter has passed: the other
// half is the margin for the renewal's retries and for uploads started
// just before it.
const renewAfter = 2

// NewLease prepares a lease for owner (stable across restarts of the same
// daemon on the same database, so a restart takes its lease back at once).
func (r *Replica) NewLease(owner string, ttl time.Duration) *Lease {
	return &Lease{r: r, owner: owner, ttl: ttl}
}

// Ensure takes the lease, or renews it when half of its time has passed;
// in between it sends nothing. It fails with ErrLeaseHeld while another owner's lease is live,
// and when a renewal finds that the lease was taken over.
func (l *Lease) Ensure(ctx context.Context) error {
	caps := l.r.st.Capabilities()
	if !caps.IfAbsent || !caps.IfMatch {
		if !l.fenced && l.renewed.IsZero() {
			l.r.log.Warn("the backend cannot do conditional writes: two replicators writing to this replica path would not be stopped")
			l.renewed = time.Now()
		}
		return nil
	}
	if l.etag != "" && time.Since(l.renewed) < l.ttl/renewAfter {
		return nil
	}
	if l.etag != "" {
		// Held: one conditional write renews it. It succeeds only if
		// nobody wrote the lease since we did, so no read is needed.
		err := l.write(ctx, leaseRecord{Owner: l.owner, Epoch: l.epoch + 1, Expires: time.Now().Add(l.ttl)}, sdk.PutOptions{IfMatch: l.etag})
		if !errors.Is(err, ErrLeaseHeld) {
			return err
		}
		if cur, _, rerr := l.read(ctx); rerr == nil {
			return fmt.Errorf("%w: the lease of %s was taken over by %s (epoch %d)", ErrLeaseHeld, l.r.Name, cur.Owner, cur.Epoch)
		}
		return err
	}
	cur, etag, err := l.read(ctx)
	if err != nil && !errors.Is(err, sdk.ErrNotFound) {
		return err
	}
	now := time.Now()
	switch {
	case errors.Is(err, sdk.ErrNotFound):
		return l.write(ctx, leaseRecord{Owner: l.owner, Epoch: l.epoch + 1, Expires: now.Add(l.ttl)}, sdk.PutOptions{IfAbsent: true})
	case cur.Owner != l.owner && now.Before(cur.Expires):
		l.etag = ""
		return fmt.Errorf("%w: %s holds the lease of %s until %s; stop the other replicator or replicate to another path",
			ErrLeaseHeld, cur.Owner, l.r.Name, cur.Expires.Format(time.RFC3339))
	}
	return l.write(ctx, leaseRecord{Owner: l.owner, Epoch: cur.Epoch + 1, Expires: now.Add(l.ttl)}, sdk.PutOptions{IfMatch: etag})
}

// Release lets another daemon take the lease at once.
func (l *Lease) Release(ctx context.Context) error {
	if l.etag == "" {
		return nil
	}
	rec := leaseRecord{Owner: l.owner, Epoch: l.epoch + 1, Expires: time.Now()}
	err := l.write(ctx, rec, sdk.PutOptions{IfMatch: l.etag})
	l.etag = ""
	return err
}

// Epoch is the fencing token of the lease held.
func (l *Lease) Epoch() uint64 { return l.epoch }

func (l *Lease) read(ctx context.Context) (leaseRecord, string, error) {
	var rec leaseRecord
	var etag string
	err := l.r.retry(ctx, "read lease", func() error {
		info, err := l.r.st.Stat(ctx, LeaseKey)
		if err != nil {
			return err
		}
		rc, err := l.r.st.Get(ctx, LeaseKey, 0, -1)
		if err != nil {
			return err
		}
		defer rc.Close()
		b, err := io.ReadAll(io.LimitReader(rc, 1<<16))
		if err != nil {
			return err
		}
		etag = info.ETag
		if err := json.Unmarshal(b, &rec); err != nil {
			return fmt.Errorf("lease object of %s is not a lease (%v): remove it if no replicator uses this path", l.r.Name, err)
		}
		return nil
	})
	return rec, etag, err
}

func (l *Lease) write(ctx context.Context, rec leaseRecord, opts sdk.PutOptions) error {
	b, _ := json.Marshal(rec)
	info, err := l.r.st.Put(ctx, LeaseKey, bytes.NewReader(b), opts)
	if errors.Is(err, sdk.ErrAlreadyExists) || errors.Is(err, sdk.ErrPreconditionFailed) {
		l.etag = ""
		return fmt.Errorf("%w: another replicator took the lease of %s at the same moment", ErrLeaseHeld, l.r.Name)
	}
	if err != nil {
		return fmt.Errorf("write lease of %s: %w", l.r.Name, err)
	}
	l.etag, l.epoch, l.renewed, l.fenced = info.ETag, rec.Epoch, time.Now(), true
	return nil
}
