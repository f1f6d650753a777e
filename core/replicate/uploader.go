package replicate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sqlitereplicator/replicator/core/localstate"
	"github.com/sqlitereplicator/replicator/core/metrics"
	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/restore"
	"github.com/sqlitereplicator/replicator/core/retention"
	"github.com/sqlitereplicator/replicator/core/segment"
)

// uploader ships staged objects to one replica, in txid order, at most
// once per sync interval: a commit after a quiet period goes out at once,
// and what arrives while an upload is running or within the interval after
// it goes out together as one merged segment.
type uploader struct {
	r        *replica.Replica
	dir      *localstate.Dir
	interval time.Duration
	comp     segment.Compression
	log      *slog.Logger
	kick     chan struct{}
	// The upload loop runs on a goroutine only while there is something
	// to upload: an idle database keeps no goroutine (nor its stack) per
	// replica. poke starts one when none runs; the loop ends when a round
	// and the interval after it passed without a poke.
	runMu   sync.Mutex
	running bool
	runCtx  context.Context // nil until start, and after stop
	runWG   *sync.WaitGroup
	// needSnapshot asks the capture loop for a snapshot when the replica
	// cannot continue from what is staged (a gap).
	needSnapshot func()
	// committed returns the capture's committed position: objects staged
	// beyond it may still be discarded by a crash, so they are not
	// uploaded yet.
	committed func() localstate.Position
	// lease fences this daemon's writes against another daemon's.
	lease *replica.Lease
	// copies keeps what was uploaded for compaction (see copies.go); nil
	// keeps nothing.
	copies *retention.Copies
	// uploads counts objects sent; only the uploader's goroutine uses it.
	uploads int
	// checked is set once the replica was seen to hold the saved position
	// (see checkReplica); only the uploader's goroutine uses it.
	checked bool
	// metrics counts uploads (nil: none), labelled with db.
	metrics *metrics.Registry
	db      string
	// caughtUp, when set, is called after each sync that reached what
	// was staged: maintenance is due after uploads, and not otherwise.
	caughtUp func()

	// saveMu orders position updates and their saves.
	saveMu  sync.Mutex
	mu      sync.Mutex
	pos     localstate.ReplicaPosition
	lastErr error
	synced  time.Time // last time the replica caught up with what was staged
	since   time.Time // when the uploader was created
	// resuming is set while the storage answers (the last sync reached it
	// and nothing failed since): a replica awaiting a re-base then keeps
	// what it needs from clean-up again; while its storage is down it
	// keeps nothing (see cleanup).
	resuming bool
}

// position records what the replica has durably stored; the last snapshot
// uploaded is kept too, so each staged snapshot is sent once.
type position = localstate.ReplicaPosition

func newUploader(r *replica.Replica, dir *localstate.Dir, interval time.Duration, comp segment.Compression, log *slog.Logger,
	needSnapshot func(), committed func() localstate.Position, owner string) (*uploader, error) {
	u := &uploader{r: r, dir: dir, interval: interval, comp: comp, log: log.With("replica", r.Name),
		kick: make(chan struct{}, 1), needSnapshot: needSnapshot, committed: committed,
		lease: r.NewLease(owner, leaseTTL), since: time.Now()}
	pos, _, err := dir.LoadReplica(r.Name)
	if err != nil {
		return nil, err
	}
	u.pos = pos
	return u, nil
}

// poke asks for an upload round soon: at once if the loop is idle,
// else after the interval of the round in progress.
func (u *uploader) poke() {
	select {
	case u.kick <- struct{}{}:
	default:
	}
	u.runMu.Lock()
	defer u.runMu.Unlock()
	if u.running || u.runCtx == nil {
		return
	}
	u.running = true
	ctx, wg := u.runCtx, u.runWG
	wg.Add(1)
	go func() {
		defer wg.Done()
		u.run(ctx)
	}()
}

// start lets pokes run the upload loop on ctx, counting its goroutines in
// wg, and pokes once.
func (u *uploader) start(ctx context.Context, wg *sync.WaitGroup) {
	u.runMu.Lock()
	u.runCtx, u.runWG = ctx, wg
	u.runMu.Unlock()
	u.poke()
}

// stop keeps pokes from starting the loop again; wait on start's wg for
// the one running to end (cancel its ctx first).
func (u *uploader) stop() {
	u.runMu.Lock()
	defer u.runMu.Unlock()
	u.runCtx = nil
}

// more reports whether a poke came since the last round; if none did, the
// loop ends. Under runMu, so that a poke either is seen here or finds no
// loop running and starts one.
func (u *uploader) more() bool {
	u.runMu.Lock()
	defer u.runMu.Unlock()
	select {
	case <-u.kick:
		return true
	default:
		u.running = false
		return false
	}
}

// Position returns the replica's durable position.
func (u *uploader) Position() position {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.pos
}

// errNeedSnapshot means the replica cannot continue from what is staged
// and a snapshot was requested from the capture loop.
var errNeedSnapshot = errors.New("a snapshot was requested")

// leaseTTL is how long a lease lasts unrenewed; it is renewed only while
// uploading, so an idle daemon sends nothing (see replica.DefaultLeaseTTL
// for the trade-off between renewals and takeover time).
const leaseTTL = replica.DefaultLeaseTTL

// releaseLease lets another daemon take the replica over at once; after
// the loop ended for good.
func (u *uploader) releaseLease() {
	rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := u.lease.Release(rctx); err != nil {
		u.log.Warn("release lease", "err", err)
	}
}

// run is the upload loop: one round per poke, at most one per interval.
// Only one runs at a time (see poke), so what it alone uses needs no lock.
func (u *uploader) run(ctx context.Context) {
	for u.more() {
		if ctx.Err() != nil {
			return
		}
		start := time.Now()
		before := u.uploads
		err := u.sync(ctx)
		if err == nil && u.uploads == before {
			// Nothing was sent: the next commit must not wait for an
			// interval that began with an empty round.
			continue
		}
		if errors.Is(err, errNeedSnapshot) {
			u.log.Info("waiting for a snapshot to upload", "reason", err)
			u.poke()
		} else if err != nil && ctx.Err() == nil {
			u.log.Error("upload failed; will retry", "err", err)
			u.mu.Lock()
			u.lastErr = err
			u.resuming = false
			u.mu.Unlock()
			u.poke()
		}
		// Cap the upload rate: wait out the rest of the interval.
		select {
		case <-ctx.Done():
			return
		case <-time.After(u.interval - time.Since(start)):
		}
	}
}

// sync uploads everything staged that the replica lacks.
func (u *uploader) sync(ctx context.Context) error {
	gens, err := u.dir.Generations()
	if err != nil {
		return err
	}
	limit := u.committed()
	if err := u.lease.Ensure(ctx); err != nil {
		return err
	}
	u.mu.Lock()
	u.resuming = true
	u.mu.Unlock()
	if err := u.checkReplica(ctx); err != nil {
		return err
	}
	// First the rest of the generation the replica is in, if it is still
	// staged; then the current one. A generation in between that the
	// replica never started is skipped: restores want the newest.
	cur := u.Position().Generation
	for _, gen := range gens {
		if gen == cur && gen != limit.Generation {
			if err := u.syncGeneration(ctx, gen, limit); err != nil {
				return err
			}
		}
	}
	if err := u.syncGeneration(ctx, limit.Generation, limit); err != nil {
		return err
	}
	if pos := u.Position(); pos.Rebase && pos.Generation == limit.Generation && pos.TxID >= limit.TxID {
		// Caught up without needing the snapshot: nothing it lacked was
		// dropped after all.
		u.update(func(p position) position {
			p.Rebase, p.RebaseSince = false, time.Time{}
			return p
		})
		u.log.Info("re-base not needed: the replica caught up from what was still staged")
	}
	u.mu.Lock()
	u.lastErr = nil
	u.synced = time.Now()
	u.mu.Unlock()
	if u.caughtUp != nil {
		u.caughtUp()
	}
	return nil
}

// checkReplica makes sure, once per run, that the replica still holds the
// position saved in the local state before anything is added to it: a
// replica emptied while the daemon was stopped, or one whose URL changed
// under the same name, would otherwise receive segments that continue a
// chain it no longer has, and no restore could use them. Such a replica
// starts again, like a new one, from a snapshot of the current
// generation. It costs one listing per replica at start-up.
func (u *uploader) checkReplica(ctx context.Context) error {
	pos := u.Position()
	if u.checked || pos.Generation == "" {
		u.checked = true
		return nil
	}
	objs, err := u.r.Objects(ctx, pos.Generation)
	if err != nil {
		return fmt.Errorf("check %s still holds generation %s: %w", u.r.Name, pos.Generation, err)
	}
	u.checked = true
	if reach := restore.Reach(pos.Generation, objs); reach < pos.TxID {
		u.log.Warn("the replica no longer holds what was uploaded to it (emptied, or its URL changed while the name stayed); starting it again from a snapshot",
			"generation", pos.Generation, "saved_txid", pos.TxID, "restorable_txid", reach, "objects", len(objs))
		u.update(func(position) position { return position{} })
		u.metrics.ReplicaLost(u.db, u.r.Name)
	}
	return nil
}

func (u *uploader) syncGeneration(ctx context.Context, gen string, limit localstate.Position) error {
	// Segments first: a snapshot staged after this listing is at or past
	// the last segment listed, so a run never spans a snapshot it missed.
	segs, err := u.dir.Segments(gen)
	if err != nil {
		return err
	}
	snaps, err := u.dir.Snapshots(gen)
	if err != nil {
		return err
	}
	if gen == limit.Generation {
		snaps = upTo(snaps, limit.TxID)
		segs = upTo(segs, limit.TxID)
	}
	pos := u.Position()
	if gen != pos.Generation {
		// A new generation starts with its first staged snapshot.
		if len(snaps) == 0 {
			u.needSnapshot()
			return fmt.Errorf("%w: generation %s has none staged to start %s from", errNeedSnapshot, gen, u.r.Name)
		}
		if err := u.upload(ctx, snaps[0]); err != nil {
			return err
		}
		u.setPos(position{Generation: gen, TxID: snaps[0].Min, Snapshot: snaps[0].Min, Updated: time.Now()})
		snaps = snaps[1:]
	}
	for {
		pos = u.Position()
		var run []localstate.StagedSegment
		expect := pos.TxID + 1
		// A run never continues past a staged snapshot: a restore from
		// the snapshot at S needs a segment that starts at S+1, not one
		// merged across S. (Snapshots are taken between captures, so
		// staged segments end at S.)
		next := nextSnapshot(snaps, pos.TxID)
		for _, s := range segs {
			if s.Max <= pos.TxID {
				continue
			}
			if s.Min != expect || (next != 0 && s.Min > next) {
				break
			}
			run = append(run, s)
			expect = s.Max + 1
		}
		// Snapshots at or before what the replica has are uploaded when
		// it has caught up to them; one past a gap bridges the gap.
		var snap *localstate.StagedSegment
		for i := range snaps {
			if snaps[i].Min > pos.Snapshot && (snaps[i].Min <= pos.TxID || len(run) == 0) {
				snap = &snaps[i]
				break
			}
		}
		switch {
		case snap != nil && snap.Min <= pos.TxID:
			if err := u.upload(ctx, *snap); err != nil {
				return err
			}
			pos.Snapshot = snap.Min
			u.setPos(pos)
		case len(run) > 0:
			if err := u.uploadRun(ctx, run); err != nil {
				return err
			}
			pos.TxID = run[len(run)-1].Max
			pos.Updated = time.Now()
			u.setPos(pos)
		case snap != nil:
			// A gap in the staged segments: continue from the snapshot.
			if err := u.upload(ctx, *snap); err != nil {
				return err
			}
			u.setPos(position{Generation: gen, TxID: snap.Min, Snapshot: snap.Min, Updated: time.Now()})
		default:
			if hasLater(segs, pos.TxID) {
				u.needSnapshot()
				return fmt.Errorf("%w: %s is at txid %d of generation %s, but the next staged segment starts later", errNeedSnapshot, u.r.Name, pos.TxID, gen)
			}
			return nil
		}
	}
}

// nextSnapshot returns the txid of the first staged snapshot after txid, 0
// if there is none.
func nextSnapshot(snaps []localstate.StagedSegment, txid uint64) uint64 {
	for _, s := range snaps {
		if s.Min > txid {
			return s.Min
		}
	}
	return 0
}

// upTo returns the objects that end at or before txid.
func upTo(objs []localstate.StagedSegment, txid uint64) []localstate.StagedSegment {
	var out []localstate.StagedSegment
	for _, o := range objs {
		if o.Max <= txid {
			out = append(out, o)
		}
	}
	return out
}

func hasLater(segs []localstate.StagedSegment, txid uint64) bool {
	for _, s := range segs {
		if s.Max > txid {
			return true
		}
	}
	return false
}

// setPos records p as the replica's durable position. A re-base mark that
// clean-up set meanwhile survives, unless p starts from a snapshot past the
// old position (or in a newer generation), which bridges what was dropped.
func (u *uploader) setPos(p position) {
	var rebased bool
	u.update(func(old position) position {
		bridged := p.Generation != old.Generation || (p.TxID == p.Snapshot && p.TxID > old.TxID && p.Snapshot > old.Snapshot)
		if old.Rebase && !bridged {
			p.Rebase, p.RebaseSince = true, old.RebaseSince
		}
		rebased = old.Rebase && !p.Rebase
		u.lastErr = nil // an upload succeeded (u.mu is held by update)
		return p
	})
	if rebased {
		u.log.Info("replica re-based on a fresh snapshot", "generation", p.Generation, "txid", p.TxID)
	}
}

// update replaces the position with what fn makes of it, durably; updates
// are saved in the order they are made.
func (u *uploader) update(fn func(position) position) {
	u.saveMu.Lock()
	defer u.saveMu.Unlock()
	u.mu.Lock()
	p := fn(u.pos)
	u.pos = p
	u.mu.Unlock()
	if err := u.dir.SaveReplica(u.r.Name, p); err != nil {
		u.log.Warn("save replica position", "err", err)
	}
}

func (u *uploader) upload(ctx context.Context, s localstate.StagedSegment) error {
	o := replica.Object{Generation: s.Generation, Level: 0, Min: s.Min, Max: s.Max}
	if s.Snapshot {
		o.Level = -1
	}
	return u.uploadFile(ctx, o, s.Path)
}

// count records an upload of the file at path in the metrics.
func (u *uploader) count(o replica.Object, path string, err error) error {
	u.uploads++
	if u.metrics == nil {
		return err
	}
	op := "segment"
	if o.Level < 0 {
		op = "snapshot"
	}
	var size int64
	if fi, serr := os.Stat(path); serr == nil {
		size = fi.Size()
	}
	u.metrics.Upload(u.db, u.r.Name, op, size, err)
	return err
}

// uploadRun uploads consecutive staged segments as one L0 segment.
func (u *uploader) uploadRun(ctx context.Context, run []localstate.StagedSegment) error {
	if len(run) == 1 {
		return u.upload(ctx, run[0])
	}
	tmp, err := os.CreateTemp(filepath.Dir(run[0].Path), "merge-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	paths := make([]string, len(run))
	for i, s := range run {
		paths[i] = s.Path
	}
	h, err := segment.MergeFiles(paths, tmp, u.comp)
	if err != nil {
		return fmt.Errorf("merge staged segments %d-%d: %w", run[0].Min, run[len(run)-1].Max, err)
	}
	o := replica.Object{Generation: h.Generation, Level: 0, Min: h.MinTXID, Max: h.MaxTXID}
	return u.uploadFile(ctx, o, tmp.Name())
}

// markRebase records that what the replica lacked was dropped from the
// local state: it must start again from a snapshot. Called by clean-up.
func (u *uploader) markRebase() {
	u.update(func(p position) position {
		u.resuming = false // u.mu is held by update
		if !p.Rebase {
			p.Rebase, p.RebaseSince = true, time.Now()
		}
		return p
	})
}

// cleanupView is what clean-up needs of the replica: its position, whether
// it keeps staged objects (it does unless it awaits a re-base and its
// storage is not answering), and whether it is failing: its last attempt
// failed, or it has not caught up for staleSyncs sync intervals. Only a
// failing replica is ever re-based; one that keeps up is never.
func (u *uploader) cleanupView(now time.Time) (pos position, keeps, failing bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	last := u.synced
	if last.IsZero() {
		last = u.since
	}
	failing = u.lastErr != nil || now.Sub(last) > max(staleSyncs*u.interval, minStale)
	return u.pos, !u.pos.Rebase || u.resuming, failing
}

// staleSyncs is how many sync intervals a replica may go without catching
// up, and without an error, before clean-up counts it as failing; minStale
// is the least time. A storage that answers slowly (a large snapshot on
// its way, a loaded machine) is not failing: re-basing it would only send
// another snapshot. One that stopped answering fails its requests soon.
const (
	staleSyncs = 10
	minStale   = 30 * time.Second
)

// status is what health and metrics report for the replica.
func (u *uploader) status() (position, time.Time, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.pos, u.synced, u.lastErr
}
