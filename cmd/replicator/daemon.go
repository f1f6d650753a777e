package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/sqlitereplicator/replicator/core/config"
	"github.com/sqlitereplicator/replicator/core/follow"
	"github.com/sqlitereplicator/replicator/core/metrics"
	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/core/schedule"
	"github.com/sqlitereplicator/replicator/core/segment"
	"github.com/sqlitereplicator/replicator/core/watch"
	"github.com/sqlitereplicator/replicator/sdk"
)

// daemon runs the databases and followers of one configuration, and moves
// to another on reload: entries whose settings did not change keep
// running untouched; changed ones are stopped gracefully (final sync,
// lease released) and started again from their local state, so no
// position is lost.
type daemon struct {
	e        *env
	flags    config.Settings // the command line's defaults
	stateDir string
	reg      *metrics.Registry
	follows  *metrics.Follows
	pool     *pluginPool
	// watch tells every database of changes to its files: one inotify
	// instance and one poll loop for the whole daemon.
	watch *watch.Watcher
	// sched runs every database's maintenance passes: one timer for the
	// whole daemon, none per database.
	sched *schedule.Scheduler

	// changing serializes what starts and stops runs: a reload and a
	// directory scan never start the same database twice.
	changing sync.Mutex

	mu      sync.Mutex
	dbs     map[string]*dbRun
	fols    map[string]*followRun
	dirs    []config.DirConfig
	dirErrs map[string]string // the last start error of each dir database, logged once
	failed  map[string]error  // runs that ended with an error, until started again
	changed chan struct{}     // a run ended
	wg      sync.WaitGroup
}

// dbRun is one replicated database.
type dbRun struct {
	cfg     config.DBConfig
	d       *replicate.DB
	cancel  context.CancelFunc
	done    chan struct{}
	closers []func()
	fromDir bool // found in a dir entry's directory
}

// followRun is one followed replica.
type followRun struct {
	cfg     config.FollowConfig
	f       *follow.Follower
	started time.Time
	cancel  context.CancelFunc
	done    chan struct{}
}

func newDaemon(e *env, flags config.Settings, stateDir string, reg *metrics.Registry) *daemon {
	return &daemon{
		e: e, flags: flags, stateDir: stateDir, reg: reg, follows: reg.RegisterFollows(), pool: newPluginPool(e),
		watch: watch.New(watch.Options{Logger: e.log}),
		sched: schedule.New(schedule.Options{}),
		dbs:   map[string]*dbRun{}, fols: map[string]*followRun{}, dirErrs: map[string]string{},
		failed:  map[string]error{},
		changed: make(chan struct{}, 1),
	}
}

// apply makes the running set what cfg describes. With strict (at start),
// the first database or follower that cannot start is returned; on a
// reload it is logged and the rest still applied.
func (d *daemon) apply(ctx context.Context, cfg *config.Config, strict bool) error {
	d.changing.Lock()
	defer d.changing.Unlock()
	want := map[string]config.DBConfig{}
	for _, dc := range cfg.DBs {
		want[dc.Path] = dc
	}
	d.mu.Lock()
	d.dirs = cfg.Dirs
	d.mu.Unlock()
	fromDir := map[string]bool{}
	var follows []string
	for _, fc := range cfg.Follows {
		follows = append(follows, fc.Path)
	}
	for _, dc := range d.scanDirs(want, follows) {
		want[dc.Path] = dc
		fromDir[dc.Path] = true
	}
	wantF := map[string]config.FollowConfig{}
	for _, fc := range cfg.Follows {
		if _, dup := want[fc.Path]; dup {
			return fmt.Errorf("follow %s: the database is also replicated by this daemon; a follower's database must be read-only", fc.Path)
		}
		wantF[fc.Path] = fc
	}

	// Stop what went away or changed, then start what is new.
	for _, path := range d.paths() {
		r := d.db(path)
		if r == nil {
			continue // it ended meanwhile
		}
		if nc, ok := want[path]; ok && sameDB(r.cfg, nc) {
			delete(want, path)
			continue
		}
		d.e.log.Info("stopping database", "db", path, "reason", stopReason(want, path))
		d.stopDB(path)
	}
	for path, r := range d.followers() {
		if nc, ok := wantF[path]; ok && sameFollow(r.cfg, nc) {
			delete(wantF, path)
			continue
		}
		d.e.log.Info("stopping follower", "db", path)
		d.stopFollow(path)
	}
	var errs []error
	for _, path := range sortedKeys(want) {
		if err := d.startDB(ctx, want[path], fromDir[path]); err != nil {
			if fromDir[path] {
				d.mu.Lock()
				d.dirErrs[path] = err.Error()
				d.mu.Unlock()
				d.e.log.Warn("database found in a dir entry not started; retrying at every scan", "db", path, "err", err)
				continue
			}
			if strict {
				return err
			}
			d.e.log.Error("database not started", "db", path, "err", err)
			errs = append(errs, err)
		}
	}
	for _, path := range sortedKeys(wantF) {
		if err := d.startFollow(ctx, wantF[path]); err != nil {
			if strict {
				return err
			}
			d.e.log.Error("follower not started", "db", path, "err", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func stopReason(want map[string]config.DBConfig, path string) string {
	if _, ok := want[path]; ok {
		return "settings changed"
	}
	return "no longer in the configuration"
}

// sameDB compares two entries ignoring where they were written.
func sameDB(a, b config.DBConfig) bool {
	a.Line, b.Line = 0, 0
	a.Replicas, b.Replicas = withoutLines(a.Replicas), withoutLines(b.Replicas)
	return reflect.DeepEqual(a, b)
}

func withoutLines(rs []config.ReplicaConfig) []config.ReplicaConfig {
	out := make([]config.ReplicaConfig, len(rs))
	for i, rc := range rs {
		rc.Line = 0
		out[i] = rc
	}
	return out
}

func sameFollow(a, b config.FollowConfig) bool {
	a.Line, b.Line, a.Replica.Line, b.Replica.Line = 0, 0, 0, 0
	return reflect.DeepEqual(a, b)
}

func (d *daemon) settings(s config.Settings) replicate.Config {
	f := d.flags
	// Maintenance (compaction, then retention) runs some time after
	// uploads (replicate.DefaultMaintenanceInterval), or as often as a
	// compaction interval under a minute asks.
	var maint time.Duration
	if s.CompactionInterval > 0 && s.CompactionInterval < time.Minute {
		maint = s.CompactionInterval
	}
	// Both were validated when the flags and the file were read.
	comp, err := segment.ParseCompression(cmp.Or(s.Compression, f.Compression))
	if err != nil {
		comp = segment.DefaultCompression
	}
	return replicate.Config{
		Compression:         comp,
		MaintenanceInterval: maint,
		StateDir:            d.stateDir,
		SyncInterval:        pick(s.SyncInterval, f.SyncInterval),
		SnapshotInterval:    pick(s.SnapshotInterval, f.SnapshotInterval),
		Retention:           pick(s.Retention, f.Retention),
		CompactionInterval:  s.CompactionInterval,
		CheckpointPages:     s.CheckpointPages,
		MaxLocalSize:        s.MaxLocalSize,
		Watcher:             d.watch,
		Scheduler:           d.sched,
		Logger:              d.e.log,
		Metrics:             d.reg,
	}
}

func (d *daemon) startDB(ctx context.Context, dc config.DBConfig, fromDir bool) error {
	cfg := d.settings(dc.Settings)
	cfg.Path = dc.Path
	r := &dbRun{cfg: dc, done: make(chan struct{}), fromDir: fromDir}
	fail := func(err error) error {
		for _, c := range r.closers {
			c()
		}
		return err
	}
	for _, rc := range dc.Replicas {
		rep, closeFn, err := d.pool.open(ctx, rc, func(st sdk.Storage) sdk.Storage { return d.reg.Storage(dc.Path, rc.Name, st) })
		if err != nil {
			return fail(fmt.Errorf("database %s: %w", dc.Path, err))
		}
		r.closers = append(r.closers, closeFn)
		cfg.Replicas = append(cfg.Replicas, rep)
	}
	db, err := replicate.Open(ctx, cfg)
	if err != nil {
		return fail(fmt.Errorf("replicate %s: %w", dc.Path, err))
	}
	r.d = db
	p := db.Captured()
	d.e.log.Info("replicating", "db", dc.Path, "generation", p.Generation, "txid", p.TxID, "replicas", len(cfg.Replicas))
	runCtx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	d.mu.Lock()
	d.dbs[dc.Path] = r
	delete(d.failed, "replicate "+dc.Path)
	d.mu.Unlock()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(r.done)
		err := db.Run(runCtx)
		for _, c := range r.closers {
			c()
		}
		if fromDir && errors.Is(err, replicate.ErrRemoved) {
			// Deleting a database is how a dir entry's database goes away.
			d.e.log.Info("stopping database", "db", dc.Path, "reason", "its file is gone")
			err = nil
		}
		d.ended("replicate "+dc.Path, err, func() {
			if d.dbs[dc.Path] == r {
				delete(d.dbs, dc.Path)
			}
		})
	}()
	return nil
}

func (d *daemon) startFollow(ctx context.Context, fc config.FollowConfig) error {
	rep, closeFn, err := d.pool.open(ctx, fc.Replica, func(st sdk.Storage) sdk.Storage { return d.reg.Storage(fc.Path, fc.Replica.Name, st) })
	if err != nil {
		return fmt.Errorf("follow %s: %w", fc.Path, err)
	}
	f := follow.New(follow.Config{Replica: rep, Path: fc.Path, Interval: fc.Interval, Logger: d.e.log})
	untrack := d.follows.Track(func() metrics.FollowState { return followState(fc, rep, f.Stats()) })
	runCtx, cancel := context.WithCancel(ctx)
	r := &followRun{cfg: fc, f: f, started: time.Now(), cancel: cancel, done: make(chan struct{})}
	d.mu.Lock()
	d.fols[fc.Path] = r
	delete(d.failed, "follow "+fc.Path)
	d.mu.Unlock()
	d.e.log.Info("following", "replica", fc.Replica.String(), "db", fc.Path)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(r.done)
		err := f.Run(runCtx)
		untrack()
		closeFn()
		d.ended("follow "+fc.Path, err, func() {
			if d.fols[fc.Path] == r {
				delete(d.fols, fc.Path)
			}
		})
	}()
	return nil
}

func followState(fc config.FollowConfig, rep *replica.Replica, s follow.Stats) metrics.FollowState {
	return metrics.FollowState{
		Path: fc.Path, Replica: rep.Name, TxID: s.Position.TxID, CommitTime: s.Position.CommitTime,
		UploadLag: s.UploadLag, LastPoll: s.LastPoll, Segments: s.Segments, Resyncs: s.Resyncs, LocalWrite: s.LocalWrites,
	}
}

// ended records the end of a run: an error is kept for the exit status.
// remove, called under d.mu, forgets the run.
func (d *daemon) ended(what string, err error, remove func()) {
	d.mu.Lock()
	remove()
	if err != nil {
		d.failed[what] = fmt.Errorf("%s: %w", what, err)
	}
	d.mu.Unlock()
	if err != nil {
		d.e.log.Error("stopped after an error", "what", what, "err", err)
	}
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

func (d *daemon) stopDB(path string) {
	if r := d.db(path); r != nil {
		r.cancel()
		<-r.done
	}
}

func (d *daemon) stopFollow(path string) {
	d.mu.Lock()
	r := d.fols[path]
	d.mu.Unlock()
	if r != nil {
		r.cancel()
		<-r.done
	}
}

func (d *daemon) db(path string) *dbRun {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dbs[path]
}

func (d *daemon) paths() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return sortedKeys(d.dbs)
}

func (d *daemon) followers() map[string]*followRun {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]*followRun, len(d.fols))
	for k, v := range d.fols {
		out[k] = v
	}
	return out
}

// idle reports whether nothing runs nor can start by itself (no dir
// entry may pick up a new database): the daemon then exits.
func (d *daemon) idle() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.dbs) == 0 && len(d.fols) == 0 && len(d.dirs) == 0
}

// statuses is what /healthz and /databases report.
func (d *daemon) statuses() []replicate.Status {
	d.mu.Lock()
	runs := make([]*dbRun, 0, len(d.dbs))
	for _, p := range sortedKeys(d.dbs) {
		runs = append(runs, d.dbs[p])
	}
	d.mu.Unlock()
	sts := make([]replicate.Status, len(runs))
	for i, r := range runs {
		sts[i] = r.d.Status()
	}
	return sts
}

// staleFollowPolls is how many intervals a follower may go without a
// successful poll before /healthz reports it.
const staleFollowPolls = 10

// healthReasons are the daemon's own reasons to be degraded, beyond its
// databases' replicas: followers that cannot poll, and databases or
// followers that stopped after an error.
func (d *daemon) healthReasons(now time.Time) []string {
	d.mu.Lock()
	var out []string
	for _, what := range sortedKeys(d.failed) {
		out = append(out, fmt.Sprintf("stopped: %v", d.failed[what]))
	}
	fols := make([]*followRun, 0, len(d.fols))
	for _, p := range sortedKeys(d.fols) {
		fols = append(fols, d.fols[p])
	}
	d.mu.Unlock()
	for _, r := range fols {
		st := r.f.Stats()
		since := st.LastPoll
		if since.IsZero() {
			since = r.started
		}
		interval := r.cfg.Interval
		if interval <= 0 {
			interval = time.Second
		}
		if age := now.Sub(since); age > staleFollowPolls*interval {
			why := fmt.Sprintf("follower %s: no successful poll for %s", r.cfg.Path, age.Round(time.Second))
			if st.LastErr != nil {
				why += fmt.Sprintf(" (last error: %v)", st.LastErr)
			}
			out = append(out, why)
		}
	}
	return out
}

// wait stops everything when ctx ends and returns the errors runs ended
// with.
func (d *daemon) wait() error {
	d.wg.Wait()
	d.watch.Close()
	d.sched.Close()
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for _, what := range sortedKeys(d.failed) {
		errs = append(errs, d.failed[what])
	}
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func pick(v, def time.Duration) time.Duration {
	if v != 0 {
		return v
	}
	return def
}
