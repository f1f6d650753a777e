package replicate

import (
	"time"

	"github.com/sqlitereplicator/replicator/core/localstate"
)

// DefaultMaxLocalSize is the limit on staged objects when
// Config.MaxLocalSize is zero: large against what a day of ordinary writes
// stages, small against a disk.
const DefaultMaxLocalSize int64 = 1 << 30

// replicaView is what clean-up knows of one replica: its durable position,
// and whether it keeps the staged objects it lacks (it does not while it
// awaits a re-base and its storage is not answering).
type replicaView struct {
	pos     position
	keeps   bool
	failing bool
}

// cleanup removes the staged objects that every replica holds and that
// recovery no longer needs. Then, while the staged objects exceed
// max-local-size, it marks the failing replica furthest behind for a
// re-base and drops what only it still lacked, so that an outage of one storage never
// fills the disk beside the database: capture goes on, and the replica
// starts again from a fresh snapshot once its storage answers (see
// uploader.sync). Replicas that keep up lose nothing.
func (d *DB) cleanup() {
	views := make([]replicaView, len(d.ups))
	now := time.Now()
	for i, u := range d.ups {
		views[i].pos, views[i].keeps, views[i].failing = u.cleanupView(now)
	}
	d.remove(views)
	limit := d.cfg.MaxLocalSize
	for {
		size, err := d.cap.Dir().Size()
		if err != nil {
			d.log.Warn("measure the local state", "err", err)
			return
		}
		d.mu.Lock()
		d.staged = size
		d.mu.Unlock()
		if limit <= 0 || size <= limit {
			d.overLimit = false
			return
		}
		i := d.rebaseCandidate(views)
		if hashed := d.cap.HashesTxID(); i < 0 && hashed < d.cap.Position().TxID {
			// What crash recovery needs shrinks to nothing once the page
			// hashes of the captured position are on disk.
			if err := d.cap.SaveHashes(); err != nil {
				d.log.Warn("save page hashes", "err", err)
			} else if d.cap.HashesTxID() > hashed {
				d.remove(views)
				continue
			}
		}
		if i < 0 {
			if !d.overLimit {
				d.log.Warn("the local state exceeds max-local-size, but what is left is needed for crash recovery or a re-base snapshot",
					"bytes", size, "max_local_size", limit)
			}
			d.overLimit = true
			return
		}
		u := d.ups[i]
		u.markRebase()
		views[i].keeps = false
		d.cfg.Metrics.Rebase(d.cfg.Path, u.r.Name)
		d.log.Warn("the local state exceeds max-local-size: dropping what only a lagging replica lacks; it will be re-based on a fresh snapshot when its storage answers",
			"replica", u.r.Name, "replica_txid", views[i].pos.TxID, "bytes", size, "max_local_size", limit)
		d.remove(views)
	}
}

// rebaseCandidate returns the index of the replica to re-base: of the
// failing ones that keep staged objects and lack some, the one furthest
// behind whose re-base would let something be dropped; -1 if there is none.
func (d *DB) rebaseCandidate(views []replicaView) int {
	cur := d.Captured()
	best := -1
	for i, v := range views {
		if !v.keeps || !v.failing || !lacks(v.pos, captureMark{gen: cur.Generation, txid: cur.TxID}) {
			continue
		}
		if best >= 0 && !behind(v.pos, views[best].pos) {
			continue
		}
		trial := append([]replicaView(nil), views...)
		trial[i].keeps = false
		if len(d.removable(trial)) > 0 {
			best = i
		}
	}
	return best
}

// behind reports whether position a is older than b.
func behind(a, b position) bool {
	return a.Generation < b.Generation || (a.Generation == b.Generation && a.TxID < b.TxID)
}

// remove deletes what removable returns, and the directories of past
// generations left empty.
func (d *DB) remove(views []replicaView) {
	dir := d.cap.Dir()
	for _, s := range d.removable(views) {
		if err := dir.RemoveSegment(s); err != nil {
			d.log.Warn("remove a staged object", "path", s.Path, "err", err)
		}
	}
	gens, err := dir.Generations()
	if err != nil {
		return
	}
	cur := d.cap.Position().Generation
	for _, gen := range gens {
		segs, _ := dir.Segments(gen)
		snaps, _ := dir.Snapshots(gen)
		if len(segs) == 0 && len(snaps) == 0 && gen != cur {
			_ = dir.RemoveGeneration(gen)
		}
	}
}

// removable lists the staged objects no replica that keeps objects lacks
// and that recovery no longer needs (segments of the current generation up
// to the page hash file's txid).
func (d *DB) removable(views []replicaView) []localstate.StagedSegment {
	dir := d.cap.Dir()
	cur := d.cap.Position().Generation
	hashed := d.cap.HashesTxID()
	gens, err := dir.Generations()
	if err != nil {
		return nil
	}
	held := func(gen string, max uint64, snapshot bool) bool {
		for _, v := range views {
			p := v.pos
			switch {
			case !v.keeps:
			case p.Generation > gen:
			case p.Generation < gen:
				return false
			case snapshot && p.Snapshot < max:
				return false
			case !snapshot && p.TxID < max:
				return false
			}
		}
		return true
	}
	var out []localstate.StagedSegment
	for _, gen := range gens {
		segs, _ := dir.Segments(gen)
		snaps, _ := dir.Snapshots(gen)
		for _, s := range segs {
			if held(gen, s.Max, false) && (gen != cur || s.Max <= hashed) {
				out = append(out, s)
			}
		}
		for _, s := range snaps {
			if held(gen, s.Max, true) {
				out = append(out, s)
			}
		}
	}
	return out
}
