package replicate

import (
	"context"
	"time"

	"github.com/sqlitereplicator/replicator/core/retention"
	"github.com/sqlitereplicator/replicator/core/schedule"
)

// maintenance runs retention and compaction over each replica, one pass
// at a time, as a job of a scheduler shared by the daemon's databases.
// The database has no timer of its own: an idle database costs no wake-up
// and no storage request. A pass is due one maintenance interval after an
// upload (uploads meanwhile are covered by the same pass), and once more
// when what it saw has become old enough to be compacted further; then
// not until the next upload.
type maintenance struct {
	d        *DB
	interval time.Duration
	// settle is how long after a replica last changed the pass that
	// compacts what is left runs.
	settle time.Duration
	job    *schedule.Job
	own    *schedule.Scheduler // nil when the scheduler is shared

	// Only the job's runs use these; the scheduler never runs them at once.
	ms   []*retention.Maintainer
	last []seen
}

// seen is what the last pass saw of a replica.
type seen struct {
	gen           string
	txid, snap    uint64
	changed       time.Time
	settled, ever bool
}

// startMaintenance registers the database's maintenance job; nil when
// neither retention nor compaction is configured.
func (d *DB) startMaintenance() *maintenance {
	pol := retention.Policy{Retention: d.cfg.Retention, CompactionInterval: max(d.cfg.CompactionInterval, 0), TempDir: d.stateDir}
	if pol.Retention <= 0 && pol.CompactionInterval <= 0 {
		return nil
	}
	m := &maintenance{
		d:        d,
		interval: d.cfg.MaintenanceInterval,
		settle:   10*pol.CompactionInterval + d.cfg.MaintenanceInterval,
		ms:       make([]*retention.Maintainer, len(d.ups)),
		last:     make([]seen, len(d.ups)),
	}
	for i, u := range d.ups {
		m.ms[i] = &retention.Maintainer{R: u.r, Policy: pol, Copies: d.compactionCopies(u)}
	}
	s := d.cfg.Scheduler
	if s == nil {
		s = schedule.New(schedule.Options{Workers: 1})
		m.own = s
	}
	m.job = s.Add(m.pass)
	return m
}

// uploaded is called by an uploader that caught up: a maintenance pass is
// due one interval later, unless one is due sooner.
func (d *DB) uploaded() {
	if m := d.maint; m != nil {
		m.job.At(time.Now().Add(m.interval))
	}
}

// stop unregisters the job, waiting for a pass in progress to end.
func (m *maintenance) stop() {
	if m == nil {
		return
	}
	m.job.Remove()
	if m.own != nil {
		m.own.Close()
	}
}

// pass maintains each replica that changed since the previous pass, or
// whose last change has now settled, then schedules the next pass if one
// will be needed without a further upload.
func (m *maintenance) pass(ctx context.Context) {
	var next time.Time
	later := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for i, u := range m.d.ups {
		// Only a replica this daemon is writing to (it holds the lease:
		// its last upload succeeded) is maintained; the next successful
		// upload schedules a pass for the others.
		pos, synced, err := u.status()
		if err != nil || synced.IsZero() || pos.Generation == "" {
			continue
		}
		now, l := time.Now(), &m.last[i]
		switch {
		case !l.ever || pos.Generation != l.gen || pos.TxID != l.txid || pos.Snapshot != l.snap:
			*l = seen{gen: pos.Generation, txid: pos.TxID, snap: pos.Snapshot, changed: now, ever: true}
		case !l.settled && !now.Before(l.changed.Add(m.settle)):
			l.settled = true
		default:
			if !l.settled {
				later(l.changed.Add(m.settle))
			}
			continue // idle: nothing new to maintain
		}
		rep, err := m.ms[i].Run(ctx, now, pos.Generation)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			m.d.log.Warn("retention and compaction", "replica", u.r.Name, "err", err)
			l.ever = false // try again after an interval
			later(time.Now().Add(m.interval))
		} else if !l.settled {
			later(l.changed.Add(m.settle))
		}
		if !rep.Empty() {
			m.d.log.Info("replica maintained", "replica", u.r.Name, "deleted", len(rep.Deleted), "merged", len(rep.Merged), "objects", summary(rep))
		}
	}
	if !next.IsZero() {
		m.job.At(next)
	}
}
