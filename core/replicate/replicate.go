// Package replicate runs the replication of one database: the capture loop
// (core/capture) reacting to WAL changes, one uploader per replica, periodic
// snapshots and checkpoints, local clean-up, and a graceful shutdown that
// reports what each replica durably holds.
package replicate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/sqlitereplicator/replicator/core/capture"
	"github.com/sqlitereplicator/replicator/core/crypt"
	"github.com/sqlitereplicator/replicator/core/localstate"
	"github.com/sqlitereplicator/replicator/core/metrics"
	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/retention"
	"github.com/sqlitereplicator/replicator/core/schedule"
	"github.com/sqlitereplicator/replicator/core/segment"
	"github.com/sqlitereplicator/replicator/core/watch"
)

// Config configures the replication of one database.
type Config struct {
	Path     string
	StateDir string // empty: beside the database
	Replicas []*replica.Replica
	// SyncInterval caps how often each replica receives an upload; zero
	// means 1s. It is not a delay: a commit after a quiet period goes out
	// at once.
	SyncInterval time.Duration
	// SnapshotInterval is how often a snapshot is taken; zero means 24h.
	SnapshotInterval time.Duration
	// CheckpointPages is the WAL size, in pages, past which the daemon
	// checkpoints; zero means 2000. Past SQLite's default autocheckpoint
	// (1000 frames), which our reader keeps from finishing, the capture
	// holds SQLite's checkpointer lock, so the application's attempts fail
	// at once (capture.ckptLock); fewer checkpoints then cost a writer
	// less, since each makes it wait for the write lock at least once.
	CheckpointPages int64
	// Compression of what is captured and uploaded. The zero value is
	// segment.CompressionNone; the daemon's default is
	// segment.DefaultCompression (lz4).
	Compression segment.Compression
	// Keys, when set, encrypts what goes to every replica with
	// Keys.Primary() and opens objects sealed with any of its keys
	// (compaction re-encrypts under the primary key); it is set on each
	// replica.Replica by Open. Local staged objects stay plaintext. nil
	// leaves the replicas' own Keys as they are.
	Keys *crypt.Keyring
	// BusyTimeout is how long the capture waits for SQLite's write lock
	// when it must have it (a snapshot, a catch-up); zero means 5s.
	BusyTimeout time.Duration
	// ShutdownTimeout bounds the final upload on shutdown; zero means 30s.
	ShutdownTimeout time.Duration
	// PollInterval is how often the WAL is checked when no file-change
	// notification arrives; zero means 1s. Unused with Watcher, which
	// has its own.
	PollInterval time.Duration
	// Watcher reports changes of the database's files. A daemon with
	// many databases gives them all one (watch.New), so that they share
	// one inotify instance and one poll loop; nil: the database gets a
	// watcher of its own, closed when Run returns.
	Watcher *watch.Watcher
	// Retention is how far back point-in-time restores must keep working;
	// older objects are deleted from the replicas (core/retention). Zero
	// keeps everything.
	Retention time.Duration
	// CompactionInterval is the age past which runs of level-0 segments
	// are merged into level 1 (level 1 into 2 at ten times the age); zero
	// means 1m, negative disables compaction.
	CompactionInterval time.Duration
	// MaintenanceInterval is how long after an upload retention and
	// compaction run over the replica; zero means
	// DefaultMaintenanceInterval. Smaller values exist for tests.
	MaintenanceInterval time.Duration
	// Scheduler runs the maintenance passes. A daemon with many
	// databases gives them all one (schedule.New): one timer for the
	// whole process instead of one per database, and a bound on how many
	// passes run at once. nil: the database gets a scheduler of its own,
	// closed when Run returns.
	Scheduler *schedule.Scheduler
	// MaxLocalSize bounds, in bytes, the staged objects kept in the local
	// state for replicas that lag (an outage of their storage): past it,
	// the replica furthest behind is marked for a re-base and what only it
	// lacked is dropped; it starts again from a fresh snapshot when its
	// storage answers. Zero means DefaultMaxLocalSize (1 GiB); negative
	// means no limit. What crash recovery needs is never dropped.
	MaxLocalSize int64
	// CleanupInterval is how often staged objects are cleaned up and
	// MaxLocalSize enforced; zero means 5s. Smaller values exist for tests.
	CleanupInterval time.Duration
	Logger          *slog.Logger
	// Metrics receives the database's metrics; nil records none.
	Metrics *metrics.Registry
}

func (c *Config) defaults() {
	if c.SyncInterval == 0 {
		c.SyncInterval = time.Second
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = 24 * time.Hour
	}
	if c.CheckpointPages == 0 {
		c.CheckpointPages = 2000
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	if c.CompactionInterval == 0 {
		c.CompactionInterval = time.Minute
	}
	if c.MaintenanceInterval == 0 {
		c.MaintenanceInterval = DefaultMaintenanceInterval
	}
	if c.MaxLocalSize == 0 {
		c.MaxLocalSize = DefaultMaxLocalSize
	}
	if c.CleanupInterval == 0 {
		c.CleanupInterval = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// DB replicates one database.
type DB struct {
	cfg  Config
	log  *slog.Logger
	cap  *capture.Capturer
	ups  []*uploader
	snap chan struct{}
	// syncs carries Sync calls into the loop, which owns the capturer.
	syncs chan chan error

	// stateDir holds compaction's temporary files.
	stateDir string

	mu       sync.Mutex
	captured localstate.Position
	// marks records when each captured position was reached, oldest
	// first, back to the oldest one some replica lacks: replica lag.
	marks []captureMark
	// staged is the size of the staged objects at the last clean-up.
	staged int64

	// overLimit is set while the staged objects exceed MaxLocalSize and
	// nothing more can be dropped; only the loop uses it.
	overLimit bool

	opened  time.Time
	untrack func()
	// maint is the maintenance job, set when Run starts; nil when
	// neither retention nor compaction is configured.
	maint *maintenance
}

// captureMark is a captured position and when it was captured.
type captureMark struct {
	gen  string
	txid uint64
	at   time.Time
}

// maxMarks bounds marks while a replica is stuck; past it the marks after
// the oldest are thinned, which keeps the oldest (the largest lag) exact.
const maxMarks = 4096

// Open opens the database for replication: it takes the state lock and
// re-establishes the captured position.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	cfg.defaults()
	if len(cfg.Replicas) == 0 {
		return nil, errors.New("no replicas configured")
	}
	d := &DB{cfg: cfg, log: cfg.Logger.With("db", cfg.Path), snap: make(chan struct{}, 1), syncs: make(chan chan error), opened: time.Now()}
	c, ev, err := capture.Open(ctx, cfg.Path, capture.Options{StateDir: cfg.StateDir, Compression: cfg.Compression, BusyTimeout: cfg.BusyTimeout,
		NewestElsewhere: newestGeneration(cfg.Replicas, d.log), Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	d.cap = c
	d.stateDir = c.Dir().Path()
	d.settle(ctx)
	d.setCaptured()
	for _, r := range cfg.Replicas {
		if cfg.Keys != nil {
			r.Keys = cfg.Keys
		}
		u, err := newUploader(r, c.Dir(), cfg.SyncInterval, cfg.Compression, d.log, d.requestSnapshot, d.Captured, owner(c.Path()))
		if err != nil {
			c.Close()
			return nil, err
		}
		u.metrics, u.db = cfg.Metrics, cfg.Path
		u.caughtUp = d.uploaded
		d.ups = append(d.ups, u)
	}
	d.noteGeneration("", ev, "")
	d.logEvent(ev)
	d.untrack = cfg.Metrics.Track(d.metricsState)
	return d, nil
}

// settle leaves the database holding its read on a connection that did
// nothing else (capture.Capturer.Settle): after start-up (and before the
// daemon opens its next database, which then reuses the memory) and after
// each snapshot or catch-up, which read every page through the held
// connection and left up to its page cache's limit of them resident.
// Measured over 100 idle databases of 1 MB each: 580 KB of memory per
// database without, 90 KB with.
func (d *DB) settle(ctx context.Context) {
	if err := d.cap.Settle(ctx); err != nil {
		d.log.Warn("release the memory of start-up", "err", err)
	}
	d.cap.DropIndexPages()
}

// owner names this daemon in replica leases: stable across restarts (so a
// restarted daemon takes its lease back at once) and distinct for every
// database on every host.
func owner(dbPath string) string {
	host, _ := os.Hostname()
	return host + ":" + dbPath
}

func (d *DB) requestSnapshot() {
	select {
	case d.snap <- struct{}{}:
	default:
	}
}

func (d *DB) setCaptured() {
	var held []position
	for _, u := range d.ups {
		held = append(held, u.Position())
	}
	p := d.cap.Position()
	d.mu.Lock()
	defer d.mu.Unlock()
	if p.Generation != d.captured.Generation || p.TxID != d.captured.TxID {
		d.marks = append(d.marks, captureMark{gen: p.Generation, txid: p.TxID, at: time.Now()})
	}
	d.captured = p
	// Forget the marks every replica holds.
	n := 0
	for n < len(d.marks) && n < len(d.marks)-1 {
		all := true
		for _, h := range held {
			if lacks(h, d.marks[n]) {
				all = false
				break
			}
		}
		if !all {
			break
		}
		n++
	}
	d.marks = d.marks[n:]
	if len(d.marks) > maxMarks {
		d.marks = append(d.marks[:1], d.marks[len(d.marks)-maxMarks/2:]...)
	}
}

// lacks reports whether a replica at p lacks the captured position m.
func lacks(p position, m captureMark) bool {
	return m.gen > p.Generation || (m.gen == p.Generation && m.txid > p.TxID)
}

// lag is the time since the oldest captured position a replica at p lacks.
func (d *DB) lag(p position, now time.Time) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range d.marks {
		if lacks(p, m) {
			return max(now.Sub(m.at), 0)
		}
	}
	return 0
}

// noteGeneration counts a new generation if the captured one is not prev.
func (d *DB) noteGeneration(prev string, ev capture.Event, fallback string) {
	cur := d.Captured().Generation
	if cur == prev || (prev == "" && ev.Snapshot == nil) {
		return
	}
	reason := ev.Reason
	if reason == "" {
		reason = fallback
	}
	d.cfg.Metrics.Generation(d.cfg.Path, reason)
}

// Captured returns the last captured position.
func (d *DB) Captured() localstate.Position {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.captured
}

// Run replicates until ctx is cancelled, then captures and uploads what is
// left (bounded by the shutdown timeout), logs the position each replica
// durably holds, and closes the database.
func (d *DB) Run(ctx context.Context) error {
	// Before the uploaders start: they schedule maintenance.
	d.maint = d.startMaintenance()
	upCtx, stopUploads := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, u := range d.ups {
		u.start(upCtx, &wg)
	}
	defer func() {
		for _, u := range d.ups {
			u.stop()
		}
		stopUploads()
		wg.Wait()
		for _, u := range d.ups {
			wg.Add(1)
			go func() { defer wg.Done(); u.releaseLease() }()
		}
		wg.Wait()
		d.untrack()
		if err := d.cap.Close(); err != nil {
			d.log.Warn("close", "err", err)
		}
	}()
	changes, closeWatch := d.watch()
	watched := d.cap.WALPath()
	defer func() { closeWatch() }()
	// Capture once the watch is in place: what was committed between Open
	// and now sent no notification, and would wait for the next commit or
	// the watcher's slow poll.
	watchStarted := make(chan struct{}, 1)
	watchStarted <- struct{}{}
	defer d.maint.stop()
	snapTick := time.NewTicker(d.cfg.SnapshotInterval)
	defer snapTick.Stop()
	// quiet fires once the database has not been captured for
	// capture.IdleRelease, and again at indexQuiet.
	quiet := time.NewTimer(capture.IdleRelease)
	defer quiet.Stop()
	var lastClean, lastStep time.Time
	var locked lockedRetry
	for {
		snapshot := false
		var reply chan error
		select {
		case <-ctx.Done():
			return d.shutdown()
		case <-locked.c:
			snapshot = locked.retry()
		case <-watchStarted:
		case reply = <-d.syncs:
		case <-changes:
			// Under a stream of commits, capture in batches: each step
			// costs a few fsyncs, and a step per commit would take CPU
			// from the application.
			if wait := minStepGap - time.Since(lastStep); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return d.shutdown()
				}
			}
		case <-d.snap:
			snapshot = true
		case <-snapTick.C:
			snapshot = true
		case <-quiet.C:
			d.cap.Idle()
			if rest := indexQuiet - time.Since(lastStep); rest > 0 {
				quiet.Reset(rest)
			} else {
				d.cap.DropIndexPages()
			}
			continue
		}
		lastStep = time.Now()
		// Every step captures all that is committed, so a start-up
		// capture still pending (the loop chose a sync first) is done.
		select {
		case <-watchStarted:
		default:
		}
		var err error
		offStack(func() { err = d.step(ctx, snapshot) })
		quiet.Reset(capture.IdleRelease)
		if reply != nil {
			reply <- err
		}
		if err != nil {
			if ctx.Err() != nil {
				return d.shutdown()
			}
			if capture.IsBusy(err) && !errors.Is(err, errReopen) {
				locked.failed(d.log, err, snapshot)
				continue
			}
			return err
		}
		locked.succeeded(d.log)
		if p := d.cap.WALPath(); p != watched {
			// The database was replaced by one elsewhere (a symbolic link
			// moved to another file): watch its WAL instead.
			closeWatch()
			changes, closeWatch = d.watch()
			watched = p
			select {
			case watchStarted <- struct{}{}:
			default:
			}
		}
		if time.Since(lastClean) > d.cfg.CleanupInterval {
			offStack(d.cleanup)
			lastClean = time.Now()
		}
	}
}

// offStack runs fn on a goroutine of its own and waits for it to return.
// A capture calls deep into SQLite, whose frames (C compiled to Go) grow
// the stack of the goroutine that runs it; run by the loop, which lives
// as long as the database, that stack would stay allocated while the
// database is idle: about 4 KB per database (stack in use over 200 idle
// databases, 3.6 MB without, 2.8 MB with).
func offStack(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

// indexQuiet is how long a database goes without a capture before the
// pages of its WAL index are taken out of the daemon's memory: long
// enough that a database written every second or so keeps them, and
// short against the life of an idle daemon.
const indexQuiet = 5 * time.Second

// minStepGap is the shortest time between two captures triggered by WAL
// changes: short against any sync interval, long against a commit.
const minStepGap = 10 * time.Millisecond

// step captures what is new (and a snapshot when asked), checkpoints when
// the WAL has grown, and wakes the uploaders.
func (d *DB) step(ctx context.Context, snapshot bool) error {
	var ev capture.Event
	var err error
	prevGen := d.Captured().Generation
	if snapshot {
		ev, err = d.cap.Snapshot(ctx)
	} else {
		ev, err = d.cap.Step(ctx)
	}
	if errors.Is(err, capture.ErrReplaced) {
		return d.reopen(ctx)
	}
	if err != nil {
		return err
	}
	d.logEvent(ev)
	caughtUp := ev.Reason != ""
	if d.cap.WALSize() > d.cfg.CheckpointPages*int64(d.cap.Position().PageSize) {
		cev, ok, err := d.cap.Checkpoint(ctx, 100*time.Millisecond)
		switch {
		case err != nil:
			d.cfg.Metrics.Checkpoint(d.cfg.Path, metrics.ModePassive, metrics.ResultError)
			return err
		case ok:
			d.cfg.Metrics.Checkpoint(d.cfg.Path, metrics.ModePassive, metrics.ResultOK)
		default:
			d.cfg.Metrics.Checkpoint(d.cfg.Path, metrics.ModePassive, metrics.ResultSkipped)
		}
		d.logEvent(cev)
		ev.Segment = firstNonNil(ev.Segment, cev.Segment)
		caughtUp = caughtUp || cev.Reason != ""
	}
	if snapshot || caughtUp {
		// A snapshot or a catch-up read every page through the held
		// connection, whose page cache kept up to its limit of them.
		d.settle(ctx)
	}
	d.setCaptured()
	d.noteGeneration(prevGen, ev, "snapshot")
	if ev.Segment != nil || ev.Snapshot != nil {
		for _, u := range d.ups {
			u.poke()
		}
	}
	return nil
}

func firstNonNil(a, b *localstate.StagedSegment) *localstate.StagedSegment {
	if a != nil {
		return a
	}
	return b
}

// errReopen marks a failure to open a replaced database again, which ends
// Run whatever its cause.
var errReopen = errors.New("open the replaced database")

// ErrRemoved ends Run when the database file is deleted.
var ErrRemoved = errors.New("the database file was removed")

// reopen starts over after the database file was replaced: a new
// generation.
func (d *DB) reopen(ctx context.Context) error {
	if _, err := os.Stat(d.cfg.Path); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s; what was captured before is in the replicas", ErrRemoved, d.cfg.Path)
	}
	d.log.Warn("the database file was replaced; starting a new generation")
	if err := d.cap.Close(); err != nil {
		return err
	}
	// The same state directory, though a moved link would now put the
	// default one elsewhere: the uploaders keep their paths.
	c, ev, err := capture.Open(ctx, d.cfg.Path, capture.Options{StateDir: d.stateDir, Compression: d.cfg.Compression, BusyTimeout: d.cfg.BusyTimeout,
		NewestElsewhere: newestGeneration(d.cfg.Replicas, d.log), Logger: d.cfg.Logger})
	if err != nil {
		// The old capturer is closed: not a step to try again.
		return fmt.Errorf("%w: %w", errReopen, err)
	}
	prevGen := d.Captured().Generation
	d.cap = c
	d.settle(ctx)
	d.setCaptured()
	d.noteGeneration(prevGen, ev, "replaced")
	d.logEvent(ev)
	for _, u := range d.ups {
		u.poke() // same state directory: the uploaders keep their paths
	}
	return nil
}

func (d *DB) logEvent(ev capture.Event) {
	if ev.Segment != nil {
		d.log.Debug("captured", "generation", ev.Segment.Generation, "txids", fmt.Sprintf("%d-%d", ev.Segment.Min, ev.Segment.Max), "bytes", ev.Segment.Size)
	}
}

// Sync captures what is committed now and waits until every replica holds
// it: after Sync returns nil, every transaction committed before the call
// is durable in every replica.
//
// Sync is for a caller other than Run's loop, while Run is running.
func (d *DB) Sync(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case d.syncs <- reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	return d.waitUploaded(ctx, d.Captured(), false)
}

// waitUploaded waits until every replica holds want. With snapshots (only
// for the loop's own goroutine, which owns the capturer: at shutdown) it
// also takes the snapshots uploaders ask for meanwhile, such as the one a
// replica awaiting a re-base needs; then it waits for the position the
// snapshot reached.
func (d *DB) waitUploaded(ctx context.Context, want localstate.Position, snapshots bool) error {
	for {
		if snapshots {
			select {
			case <-d.snap:
				if err := d.step(ctx, true); err != nil {
					return err
				}
				want = d.Captured()
			default:
			}
		}
		done := true
		for _, u := range d.ups {
			p := u.Position()
			if p.Generation != want.Generation || p.TxID < want.TxID {
				done = false
				u.poke()
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// shutdown captures and uploads what is left, then logs each replica's
// durable position, so what a restore would give is never a guess.
func (d *DB) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownTimeout)
	defer cancel()
	err := d.step(ctx, false)
	if err == nil {
		err = d.waitUploaded(ctx, d.Captured(), true)
	}
	if err == nil {
		d.cleanup()
	}
	for _, r := range d.Replicas() {
		d.log.Info("replica position at shutdown", "replica", r.Name, "generation", r.Generation, "txid", r.TxID)
	}
	if err != nil {
		return fmt.Errorf("final sync: %w (the positions above are what the replicas hold)", err)
	}
	return nil
}

// watch reports changes of the WAL and of the database file (which a
// replacement changes) through the shared watcher, or a watcher of the
// database's own. The watcher's poll, not a ticker of Run's, catches what
// notifications miss: the loop wakes only when a file changed.
func (d *DB) watch() (<-chan struct{}, func()) {
	w, own := d.cfg.Watcher, false
	if w == nil {
		w, own = watch.New(watch.Options{PollInterval: d.cfg.PollInterval, Logger: d.log}), true
	}
	ch, remove, err := w.Add(d.cap.WALPath(), d.cfg.Path)
	if err != nil {
		// Only a closed shared watcher fails: the daemon is stopping.
		d.log.Warn("watch the database for changes; a private watcher takes over", "err", err)
		w, own = watch.New(watch.Options{PollInterval: d.cfg.PollInterval, Logger: d.log}), true
		ch, remove, _ = w.Add(d.cap.WALPath(), d.cfg.Path)
	}
	return ch, func() {
		remove()
		if own {
			w.Close()
		}
	}
}

// summary lists what a maintenance pass did, briefly.
func summary(rep retention.Report) []string {
	var out []string
	for _, o := range rep.Merged {
		out = append(out, "wrote "+o.String())
	}
	for _, o := range rep.Deleted {
		if len(out) >= 20 {
			out = append(out, fmt.Sprintf("... %d more", len(rep.Merged)+len(rep.Deleted)-len(out)))
			break
		}
		out = append(out, "deleted "+o.String())
	}
	return out
}
